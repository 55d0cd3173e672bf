//! x86-64 AVX2 kernels (FMA and F16C for f16).
//!
//! int8 patch embedding with `vpmaddwd`: pixels zero-extended to i16 and
//! weights widened to i16 make every product and pair sum exact in i32, so
//! the result is the scalar integers bit for bit (`vpmaddubsw` would
//! saturate: 255·127·2 > 32767). Pixel pairs of a patch row are broadcast
//! and multiplied into 8 output channels per register.

use std::arch::x86_64::*;

use super::Folded;
use crate::shape::Shape;
use crate::workspace::Workspace;
use crate::{f16, int8};

/// Output channels per register.
const LANES: usize = 8;
/// Channels per pass over the pixels: four accumulators.
const GROUP: usize = 4 * LANES;

/// Weights laid out for these kernels.
#[derive(Clone, Debug, Default)]
pub(crate) struct Prepared {
    /// D rounded up to a multiple of [`GROUP`]; padding channels have zero
    /// weights, scale and bias.
    dim_pad: usize,
    /// Pixel pairs per patch row, `⌈P/2⌉`.
    pairs: usize,
    /// int8: `[P][pairs][dim_pad][2]` i16, pair-interleaved for `vpmaddwd`.
    int8_weight: Vec<i16>,
    int8_scale: Vec<i32>,
    /// `[T-1][dim_pad]`.
    int8_bias: Vec<i32>,
    /// f16, widened once: `[P²][dim_pad]` f32.
    f16_weight: Vec<f32>,
    /// f16 score and head weights, widened once.
    f16_score_weight: Vec<f32>,
    f16_head_weight: Vec<f32>,
}

pub(crate) fn prepare(weights: Folded<'_, '_>, shape: &Shape) -> Prepared {
    let (d, p, k) = (shape.dim as usize, shape.patch_side as usize, shape.patch_len());
    let dim_pad = d.div_ceil(GROUP) * GROUP;
    let pairs = p.div_ceil(2);
    let mut prepared = Prepared { dim_pad, pairs, ..Prepared::default() };
    match weights {
        Folded::Int8(w) => {
            let mut weight = vec![0i16; p * pairs * dim_pad * 2];
            for o in 0..d {
                for y in 0..p {
                    for x in 0..p {
                        let at = ((y * pairs + x / 2) * dim_pad + o) * 2 + x % 2;
                        weight[at] = w.patch_weight[o * k + y * p + x] as i16;
                    }
                }
            }
            let pad = |values: &[i32], rows: usize| {
                let mut out = vec![0; rows * dim_pad];
                for r in 0..rows {
                    out[r * dim_pad..][..d].copy_from_slice(&values[r * d..][..d]);
                }
                out
            };
            prepared.int8_weight = weight;
            prepared.int8_scale = pad(w.patch_scale, 1);
            prepared.int8_bias = pad(w.token_bias, shape.patches());
        }
        Folded::F16(w) => {
            let mut weight = vec![0f32; k * dim_pad];
            for o in 0..d {
                for i in 0..k {
                    weight[i * dim_pad + o] = w.patch_weight[o * k + i].to_f32();
                }
            }
            prepared.f16_weight = weight;
            prepared.f16_score_weight = w.score_weight.iter().map(|v| v.to_f32()).collect();
            prepared.f16_head_weight = w.head_weight.iter().map(|v| v.to_f32()).collect();
        }
    }
    prepared
}

/// Zero-extends the image to i16, with zeros past the end for the last pair
/// of an odd-width patch row.
#[target_feature(enable = "avx2")]
fn widen_image(image: &[u8], out: &mut [i16]) {
    let chunks = image.len() / 16;
    for i in 0..chunks {
        // SAFETY: i * 16 + 16 ≤ image.len() and out.len() ≥ image.len();
        // unaligned loads and stores.
        unsafe {
            let bytes = _mm_loadu_si128(image.as_ptr().add(i * 16).cast());
            _mm256_storeu_si256(out.as_mut_ptr().add(i * 16).cast(), _mm256_cvtepu8_epi16(bytes));
        }
    }
    for i in chunks * 16..image.len() {
        out[i] = image[i] as i16;
    }
    out[image.len()..].fill(0);
}

/// # Safety
/// The CPU must support AVX2 (checked by `Kernels::new`).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn int8_forward(
    w: &int8::Weights<'_>,
    prep: &Prepared,
    shape: &Shape,
    image: &[u8],
    ws: &mut Workspace,
) {
    int8_patch_embed(w, prep, shape, image, ws);
    let d = shape.dim as usize;
    for (z, n) in ws.q_tokens.chunks_exact(d).zip(ws.q_norm.chunks_exact_mut(d)) {
        int8_layer_norm(z, w.params.ln_eps, n);
    }
    if d.is_multiple_of(8) {
        int8_attend(w, shape, ws);
    } else {
        int8::attend(w, shape, ws);
    }
}

/// Sum of the eight i32 lanes.
#[target_feature(enable = "avx2")]
fn hsum(v: __m256i) -> i32 {
    let v = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let v = _mm_add_epi32(v, _mm_shuffle_epi32::<0b01_00_11_10>(v));
    let v = _mm_add_epi32(v, _mm_shuffle_epi32::<0b10_11_00_01>(v));
    _mm_cvtsi128_si32(v)
}

/// Dot product of two i16 vectors of length `d` (a multiple of 8) as i32
/// pair sums, eight lanes wide; exact while every pair sum fits i32, which
/// the int8 value ranges guarantee (docs/FIXED_POINT.md).
#[target_feature(enable = "avx2")]
fn dot_i16(a: &[i16], b: &[i16]) -> __m256i {
    debug_assert!(a.len() == b.len() && a.len().is_multiple_of(8));
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i + 16 <= a.len() {
        // SAFETY: i + 16 ≤ len of both; unaligned loads.
        let (x, y) =
            unsafe { (_mm256_loadu_si256(a.as_ptr().add(i).cast()), _mm256_loadu_si256(b.as_ptr().add(i).cast())) };
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
        i += 16;
    }
    if i < a.len() {
        // SAFETY: i + 8 = len of both; unaligned loads.
        let (x, y) = unsafe { (_mm_loadu_si128(a.as_ptr().add(i).cast()), _mm_loadu_si128(b.as_ptr().add(i).cast())) };
        acc = _mm256_add_epi32(acc, _mm256_castsi128_si256(_mm_madd_epi16(x, y)));
    }
    acc
}

/// `int8::attend` for dims that are multiples of 8: the same integers.
#[target_feature(enable = "avx2")]
fn int8_attend(w: &int8::Weights<'_>, shape: &Shape, ws: &mut Workspace) {
    let (d, heads, t_count, classes) =
        (shape.dim as usize, shape.heads as usize, shape.tokens() as usize, shape.classes as usize);
    let mut logits_acc = [0i64; 64];
    for head in 0..heads {
        let g = &w.score_weight[head * d..][..d];
        let scores = &mut ws.q_scores[..t_count];
        scores[0] = w.cls_score[head];
        for (s, token) in scores[1..].iter_mut().zip(ws.q_norm.chunks_exact(d)) {
            *s = int8::round_shift(hsum(dot_i16(g, token)) as i64, w.params.score_shift) as i32;
        }
        let probs = &mut ws.q_probs[head * t_count..][..t_count];
        int8::softmax(scores, probs);

        // mean = Σ_t p_t · n_t, eight channels per register, i32 (< 2^30).
        let mut mean32 = [0i32; 128];
        for c in (0..d).step_by(8) {
            // SAFETY: c + 8 ≤ d = cls_norm.len(); unaligned load.
            let cls = unsafe { _mm_loadu_si128(w.cls_norm.as_ptr().add(c).cast()) };
            let mut acc = _mm256_mullo_epi32(_mm256_cvtepi16_epi32(cls), _mm256_set1_epi32(probs[0]));
            for (&p, token) in probs[1..].iter().zip(ws.q_norm.chunks_exact(d)) {
                // SAFETY: c + 8 ≤ d = token.len(); unaligned load.
                let n = unsafe { _mm_loadu_si128(token.as_ptr().add(c).cast()) };
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_cvtepi16_epi32(n), _mm256_set1_epi32(p)));
            }
            // SAFETY: c + 8 ≤ d ≤ 128 = mean32.len().
            unsafe { _mm256_storeu_si256(mean32.as_mut_ptr().add(c).cast(), acc) };
        }
        let mean = &mut ws.q_mean[..d];
        for (m, &a) in mean.iter_mut().zip(&mean32[..d]) {
            *m = int8::round_shift(a as i64, int8::PROB_FRAC_BITS).clamp(i16::MIN as i64, i16::MAX as i64) as i16;
        }
        for (c, total) in logits_acc[..classes].iter_mut().enumerate() {
            let row = &w.head_weight[(head * classes + c) * d..][..d];
            *total += hsum(dot_i16(row, mean)) as i64;
        }
    }
    int8::finish_logits(w, &logits_acc[..classes], ws);
}

/// `int8::layer_norm`, eight values per step; the per-token scalars (sums,
/// the inverse square root) are the same integer code.
#[target_feature(enable = "avx2")]
fn int8_layer_norm(z: &[i16], ln_eps: i64, out: &mut [i16]) {
    let d = z.len();
    let body = d / 8 * 8;
    let (mut sum, mut sum_sq) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for i in (0..body).step_by(8) {
        // SAFETY: i + 8 ≤ d = z.len(); unaligned load.
        let v = _mm256_cvtepi16_epi32(unsafe { _mm_loadu_si128(z.as_ptr().add(i).cast()) });
        sum = _mm256_add_epi32(sum, v);
        // |z| ≤ 32767, so z² < 2^30: widen to i64 before summing.
        let sq = _mm256_mullo_epi32(v, v);
        sum_sq = _mm256_add_epi64(sum_sq, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(sq)));
        sum_sq = _mm256_add_epi64(sum_sq, _mm256_cvtepu32_epi64(_mm256_extracti128_si256::<1>(sq)));
    }
    let mut lanes32 = [0i32; 8];
    let mut lanes64 = [0i64; 4];
    // SAFETY: stores of one register into arrays of its size.
    unsafe {
        _mm256_storeu_si256(lanes32.as_mut_ptr().cast(), sum);
        _mm256_storeu_si256(lanes64.as_mut_ptr().cast(), sum_sq);
    }
    let mut total: i64 = lanes32.iter().map(|&v| v as i64).sum();
    let mut total_sq: i64 = lanes64.iter().sum();
    for &v in &z[body..] {
        total += v as i64;
        total_sq += v as i64 * v as i64;
    }
    let dl = d as i64;
    let q = (dl * total_sq - total * total + ln_eps) as u64;
    if q == 0 {
        out.fill(0);
        return;
    }
    let (recip, k) = int8::rsqrt_q14(q);
    let pre = (k + 5).saturating_sub(16);
    let post = k + 3 - pre;
    let (dv, sv, rv) = (_mm256_set1_epi32(d as i32), _mm256_set1_epi32(total as i32), _mm256_set1_epi32(recip));
    let (pre_round, post_round) =
        (_mm256_set1_epi32(((1i64 << pre) >> 1) as i32), _mm256_set1_epi32(((1i64 << post) >> 1) as i32));
    let (pre_count, post_count) = (_mm_cvtsi32_si128(pre as i32), _mm_cvtsi32_si128(post as i32));
    for i in (0..body).step_by(8) {
        // SAFETY: i + 8 ≤ d = z.len(); unaligned load.
        let v = _mm256_cvtepi16_epi32(unsafe { _mm_loadu_si128(z.as_ptr().add(i).cast()) });
        let dev = _mm256_sub_epi32(_mm256_mullo_epi32(v, dv), sv);
        let dev = _mm256_sra_epi32(_mm256_add_epi32(dev, pre_round), pre_count);
        let n = _mm256_sra_epi32(_mm256_add_epi32(_mm256_mullo_epi32(dev, rv), post_round), post_count);
        let packed = _mm256_packs_epi32(n, n); // sat16, lanes 0-3 and 8-11
        let packed = _mm256_permute4x64_epi64::<0b00_00_10_00>(packed);
        // SAFETY: i + 8 ≤ d = out.len(); unaligned store of 8 values.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), _mm256_castsi256_si128(packed)) };
    }
    let round = |x: i64, s: u32| int8::round_shift(x, s);
    for (n, &v) in out[body..].iter_mut().zip(&z[body..]) {
        let dev = round(dl * v as i64 - total, pre);
        *n = round(dev * recip as i64, post).clamp(i16::MIN as i64, i16::MAX as i64) as i16;
    }
}

#[target_feature(enable = "avx2")]
fn int8_patch_embed(w: &int8::Weights<'_>, prep: &Prepared, shape: &Shape, image: &[u8], ws: &mut Workspace) {
    widen_image(image, &mut ws.simd_image);
    // The shipped models' shape (7×7 patches, up to 32 channels) gets a
    // fully unrolled instance; every other shape the same code with run-time
    // loop bounds.
    match (shape.patch_side, prep.dim_pad) {
        (7, 32) => int8_patches::<7, 4, 1>(w, prep, shape, ws),
        _ => int8_patches::<0, 0, 0>(w, prep, shape, ws),
    }
}

/// The patch embedding proper. `P`, `PAIRS` and `GROUPS` are the patch side,
/// pairs per patch row and channel groups when known at compile time, or 0
/// to read them from the shape at run time.
#[target_feature(enable = "avx2")]
fn int8_patches<const P: usize, const PAIRS: usize, const GROUPS: usize>(
    w: &int8::Weights<'_>,
    prep: &Prepared,
    shape: &Shape,
    ws: &mut Workspace,
) {
    let (side, d, grid) = (shape.image_side as usize, shape.dim as usize, shape.grid());
    let p = if P > 0 { P } else { shape.patch_side as usize };
    let pairs = if PAIRS > 0 { PAIRS } else { prep.pairs };
    let groups = if GROUPS > 0 { GROUPS } else { prep.dim_pad / GROUP };
    let dim_pad = groups * GROUP;
    debug_assert_eq!((pairs, dim_pad), (prep.pairs, prep.dim_pad));
    let pixels = ws.simd_image.as_ptr();
    let weights = prep.int8_weight.as_ptr();
    let shift = w.params.z_shift;
    let rounding = _mm256_set1_epi32(((1i64 << shift) >> 1) as i32);
    let count = _mm_cvtsi32_si128(shift as i32);
    let floor = _mm256_set1_epi16(-i16::MAX);
    // The lanes of one patch row, for rows of up to 16 pixels (wider patch
    // rows are never skipped).
    let skip_blank = 2 * pairs <= 16;
    let lanes: [i16; 16] = std::array::from_fn(|i| if i < 2 * pairs { -1 } else { 0 });
    // SAFETY: an unaligned load of a 16-lane array.
    let row_mask = unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) };
    let mut row = [0i16; 128 + GROUP];
    for patch in 0..shape.patches() {
        let origin = (patch / grid) * p * side + (patch % grid) * p;
        for group in 0..groups {
            let mut acc = [_mm256_setzero_si256(); 4];
            for y in 0..p {
                // Most patch rows of a digit are blank, and a blank row adds
                // nothing: skip it (the integers are the same either way).
                // SAFETY: the row starts inside the image and 2 · pairs ≤ 16
                // values from it lie inside the widened buffer (S² + 16).
                let row_pixels = unsafe { _mm256_loadu_si256(pixels.add(origin + y * side).cast()) };
                if skip_blank && _mm256_testz_si256(row_pixels, row_mask) != 0 {
                    continue;
                }
                for j in 0..pairs {
                    // SAFETY: the pair starts inside the image (origin + y·side
                    // + 2j < S²) and its second pixel is at most index S², which
                    // the widened buffer holds (S² + 16 values). The weight
                    // offset is inside [P][pairs][dim_pad][2] for (group + 1) ·
                    // 32 ≤ dim_pad. Unaligned loads.
                    unsafe {
                        let pair = pixels.add(origin + y * side + 2 * j).cast::<i32>().read_unaligned();
                        let pair = _mm256_set1_epi32(pair);
                        let base = weights.add(((y * pairs + j) * dim_pad + group * GROUP) * 2);
                        for (b, a) in acc.iter_mut().enumerate() {
                            let wv = _mm256_loadu_si256(base.add(b * LANES * 2).cast());
                            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(pair, wv));
                        }
                    }
                }
            }
            // z = saturate_z(round_shift(acc · scale + bias, z_shift)), as scalar.
            let mut z = [_mm256_setzero_si256(); 4];
            for (b, (zv, a)) in z.iter_mut().zip(acc).enumerate() {
                let at = group * GROUP + b * LANES;
                // SAFETY: at + 8 ≤ dim_pad, the length of the scale row and of
                // each bias row.
                let (scale, bias) = unsafe {
                    (
                        _mm256_loadu_si256(prep.int8_scale.as_ptr().add(at).cast()),
                        _mm256_loadu_si256(prep.int8_bias.as_ptr().add(patch * dim_pad + at).cast()),
                    )
                };
                let z32 = _mm256_add_epi32(_mm256_mullo_epi32(a, scale), bias);
                *zv = _mm256_sra_epi32(_mm256_add_epi32(z32, rounding), count);
            }
            // packs saturates to [-32768, 32767] and the max makes it the
            // symmetric saturate_z; packs interleaves 128-bit halves, which
            // the permute undoes.
            let lo = _mm256_permute4x64_epi64(_mm256_packs_epi32(z[0], z[1]), 0b11_01_10_00);
            let hi = _mm256_permute4x64_epi64(_mm256_packs_epi32(z[2], z[3]), 0b11_01_10_00);
            let (lo, hi) = (_mm256_max_epi16(lo, floor), _mm256_max_epi16(hi, floor));
            // SAFETY: (group + 1) · 32 ≤ dim_pad ≤ 128 + 32 = row.len().
            unsafe {
                _mm256_storeu_si256(row.as_mut_ptr().add(group * GROUP).cast(), lo);
                _mm256_storeu_si256(row.as_mut_ptr().add(group * GROUP + 16).cast(), hi);
            }
        }
        ws.q_tokens[patch * d..][..d].copy_from_slice(&row[..d]);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C (checked by `Kernels::new`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16_forward(
    w: &f16::Weights<'_>,
    prep: &Prepared,
    shape: &Shape,
    image: &[u8],
    ws: &mut Workspace,
) {
    let (side, p, d, grid) = (shape.image_side as usize, shape.patch_side as usize, shape.dim as usize, shape.grid());
    let dim_pad = prep.dim_pad;
    let weights = prep.f16_weight.as_ptr();
    let mut row = [0f32; 128 + GROUP];
    for patch in 0..shape.patches() {
        let origin = (patch / grid) * p * side + (patch % grid) * p;
        for group in (0..dim_pad).step_by(GROUP) {
            let mut acc = [_mm256_setzero_ps(); 4];
            for y in 0..p {
                for x in 0..p {
                    let pixel = _mm256_set1_ps(image[origin + y * side + x] as f32);
                    for (b, a) in acc.iter_mut().enumerate() {
                        // SAFETY: (y·P + x)·dim_pad + group + 32 ≤ P²·dim_pad.
                        let wv = unsafe { _mm256_loadu_ps(weights.add((y * p + x) * dim_pad + group + b * LANES)) };
                        *a = _mm256_fmadd_ps(pixel, wv, *a);
                    }
                }
            }
            for (b, a) in acc.iter().enumerate() {
                // SAFETY: group + 32 ≤ dim_pad ≤ row.len().
                unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(group + b * LANES), *a) };
            }
        }
        let bias = &w.token_bias[patch * d..][..d];
        for ((z, r), b) in ws.f_tokens[patch * d..][..d].iter_mut().zip(&row).zip(bias) {
            *z = r + b;
        }
    }
    f16::attend_and_classify_with(w, &prep.f16_score_weight, &prep.f16_head_weight, shape, ws);
}

//! The f16 pass on AVX2 + FMA: weights widened to f32 once at prepare time,
//! compute in f32 like `crate::f16`, in a different order (so within the
//! stated tolerance of it, not bit-exact).
//!
//! - Patch embedding: only pixels with ink are visited (a blank pixel adds
//!   exactly zero), one 64-bit mask per patch, one FMA per 8 channels per
//!   pixel, starting from the bias.
//! - Tokens in rows of `dim_pad` f32 (padding channels zero, masked out of
//!   the LayerNorm variance, zero weights everywhere after).
//! - Dot products reduced eight at a time by a `vhaddps` tree; the
//!   attention mean and the logits stay in registers.

use alloc::vec::Vec;
use std::arch::x86_64::*;

use crate::f16;
use crate::math::{exp, sqrt};
use crate::shape::limits::MAX_CLASSES;
use crate::shape::Shape;
use crate::simd::round_up;
use crate::simd::x86::{dim_pad as padded_dim, patches_pad, Avx2, Bits, GROUP};

/// Widest patch the sparse kernel takes: 8 rows of 8 pixels, one bit each
/// in a 64-bit mask (bit `8y + x`).
const SPARSE_MAX_SIDE: usize = 8;

#[derive(Clone, Debug)]
struct Layout {
    /// `[slots][dim_pad]`: a pixel's weight for every channel. Slot `8y + x`
    /// for patches of up to 8 pixels a side, else `y·P + x`.
    pixel_weight: Vec<f32>,
    /// Offset of each slot's pixel from its patch's origin.
    pixel_offset: Vec<u32>,
    /// `[patches][dim_pad]`.
    bias: Vec<f32>,
    /// All ones in the lanes of real channels, zero in padding: `[dim_pad]`.
    lane_mask: Vec<f32>,
    /// `[heads][dim_pad]`.
    score_weight: Vec<f32>,
    /// `[dim_pad]`.
    cls_norm: Vec<f32>,
    /// `[heads][classes rounded up to 8][dim_pad]`.
    head_weight: Vec<f32>,
}

impl Layout {
    fn new(w: &f16::Weights<'_>, shape: &Shape, dim_pad: usize) -> Layout {
        let (side, p, d, k) =
            (shape.image_side as usize, shape.patch_side as usize, shape.dim as usize, shape.patch_len());
        let (heads, classes, classes_pad) =
            (shape.heads as usize, shape.classes as usize, round_up(shape.classes as usize, 8));
        let sparse = p <= SPARSE_MAX_SIDE;
        let (slots, row_len) = if sparse { (64, 8) } else { (k, p) };
        let mut pixel_weight = vec![0f32; slots * dim_pad];
        let mut pixel_offset = vec![0u32; slots];
        for slot in 0..slots {
            let (y, x) = (slot / row_len, slot % row_len);
            if y >= p || x >= p {
                continue; // outside the patch: its bit is never set
            }
            pixel_offset[slot] = (y * side + x) as u32;
            for o in 0..d {
                pixel_weight[slot * dim_pad + o] = w.patch_weight[o * k + y * p + x].to_f32();
            }
        }
        // Rows of `width` values copied into rows of `stride`, zero padded.
        let pad = |values: &[f32], width: usize, stride: usize| {
            let mut out = vec![0.0; values.len() / width * stride];
            for (r, row) in values.chunks_exact(width).enumerate() {
                out[r * stride..][..width].copy_from_slice(row);
            }
            out
        };
        let widen = |values: &[half::f16]| values.iter().map(|v| v.to_f32()).collect::<Vec<f32>>();
        let mut head_weight = vec![0.0; heads * classes_pad * dim_pad];
        for (row, values) in w.head_weight.chunks_exact(d).enumerate() {
            let (head, class) = (row / classes, row % classes);
            let out = &mut head_weight[(head * classes_pad + class) * dim_pad..][..d];
            for (o, v) in out.iter_mut().zip(values) {
                *o = v.to_f32();
            }
        }
        Layout {
            pixel_weight,
            pixel_offset,
            bias: pad(w.token_bias, d, dim_pad),
            lane_mask: (0..dim_pad).map(|c| f32::from_bits(if c < d { u32::MAX } else { 0 })).collect(),
            score_weight: pad(&widen(w.score_weight), d, dim_pad),
            cls_norm: pad(w.cls_norm, d, dim_pad),
            head_weight,
        }
    }
}

/// The AVX2 f16 kernel of one model: the CPU's token and the weights laid
/// out for it.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    cpu: Avx2,
    dim_pad: usize,
    layout: Layout,
}

impl Kernel {
    /// `None` when this CPU lacks AVX2, FMA, F16C or BMI1.
    pub(crate) fn new(w: &f16::Weights<'_>, shape: &Shape) -> Option<Kernel> {
        let cpu = Avx2::detect()?;
        let dim_pad = padded_dim(shape);
        Some(Kernel { cpu, dim_pad, layout: Layout::new(w, shape, dim_pad) })
    }

    pub(crate) fn forward(&self, w: &f16::Weights<'_>, shape: &Shape, image: &[u8], s: &mut f16::Scratch) {
        // SAFETY: `self.cpu` exists only if AVX2, FMA and F16C were detected.
        unsafe { forward(self.cpu, w, self, shape, image, s) }
    }
}

/// Buffers of the kernel: tokens `[patches_pad][dim_pad]` and one head's
/// scores, `1 + patches_pad`.
#[derive(Clone, Debug)]
pub(crate) struct Scratch {
    tokens: Vec<f32>,
    scores: Vec<f32>,
}

impl Scratch {
    pub(crate) fn new(shape: &Shape) -> Scratch {
        Scratch { tokens: vec![0.0; patches_pad(shape) * padded_dim(shape)], scores: vec![0.0; 1 + patches_pad(shape)] }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C (`_cpu` proves it).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn forward(
    _cpu: Avx2,
    w: &f16::Weights<'_>,
    kernel: &Kernel,
    shape: &Shape,
    image: &[u8],
    s: &mut f16::Scratch,
) {
    let layout = &kernel.layout;
    let (p, dim_pad, heads, classes) =
        (shape.patch_side as usize, kernel.dim_pad, shape.heads as usize, shape.classes as usize);
    let (patches, patches_pad) = (shape.patches(), patches_pad(shape));
    let slots = if p <= SPARSE_MAX_SIDE { 64 } else { shape.patch_len() };
    // Everything the unchecked accesses below rely on.
    require!(dim_pad == padded_dim(shape) && dim_pad <= 128 && image.len() == shape.pixels());
    require!(layout.pixel_weight.len() == slots * dim_pad && layout.pixel_offset.len() == slots);
    require!(layout.bias.len() == patches * dim_pad && layout.lane_mask.len() == dim_pad);
    require!(layout.score_weight.len() == heads * dim_pad && layout.cls_norm.len() == dim_pad);
    require!(layout.head_weight.len() == heads * round_up(classes, 8) * dim_pad);
    require!(s.avx2.tokens.len() == patches_pad * dim_pad && s.avx2.scores.len() == 1 + patches_pad);
    require!(s.attention.len() == heads * (patches + 1) && s.logits.len() == classes);
    // The shipped models' 32 channels get an instance with the width
    // known; wider models share one that reads it at run time (an instance
    // per width cost the installed library ~11 KB each).
    match dim_pad / 8 {
        4 => run::<4>(w, layout, shape, image, s, 4),
        regs => run::<0>(w, layout, shape, image, s, regs),
    }
}

/// The pass with `R` registers of 8 channels per token (0: `regs`, read
/// at run time; `dim_pad = 8·regs`), on buffers `forward` checked.
#[target_feature(enable = "avx2,fma,f16c")]
fn run<const R: usize>(
    w: &f16::Weights<'_>,
    layout: &Layout,
    shape: &Shape,
    image: &[u8],
    s: &mut f16::Scratch,
    regs: usize,
) {
    let b = &mut s.avx2;
    if shape.patch_side as usize <= SPARSE_MAX_SIDE {
        patch_embed_sparse::<R>(layout, shape, regs, image, &mut b.tokens);
    } else {
        patch_embed_dense::<R>(layout, shape, regs, image, &mut b.tokens);
    }
    layer_norm::<R>(w.layer_norm_eps, layout, shape, regs, &mut b.tokens);
    attend::<R>(w, layout, shape, regs, &b.tokens, &mut b.scores, &mut s.attention, &mut s.logits);
}

/// The eight bytes of a patch row from `at` (zero past the image's end).
#[inline]
fn row_bytes(image: &[u8], at: usize) -> u64 {
    match image.get(at..at + 8) {
        Some(bytes) => u64::from_le_bytes(bytes.try_into().expect("8 bytes")),
        None => {
            // The last patch rows of the image: fewer than 8 bytes remain.
            let mut bytes = [0u8; 8];
            let tail = &image[at.min(image.len())..];
            bytes[..tail.len()].copy_from_slice(tail);
            u64::from_le_bytes(bytes)
        }
    }
}

/// Stores the four accumulators of 32 channels.
///
/// # Safety
/// `out` must be valid for writing 32 f32 values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store32(acc: &[__m256; 4], out: *mut f32) {
    for (b, a) in acc.iter().enumerate() {
        // SAFETY: b·8 + 8 ≤ 32 values, the caller's promise; unaligned.
        unsafe { _mm256_storeu_ps(out.add(8 * b), *a) };
    }
}

/// `acc += pixel × weights` for channels `group..group + 32` over the pixel
/// `slots`: one FMA per 8 channels.
///
/// # Safety
/// Every slot must be below `pixel_offset.len()`, with its pixel
/// (`origin + pixel_offset[slot]`) inside `image`; `group + 32 ≤ dim_pad`,
/// the layout's channel stride.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fma_pixels(
    acc: &mut [__m256; 4],
    layout: &Layout,
    image: &[u8],
    origin: usize,
    group: usize,
    dim_pad: usize,
    slots: impl Iterator<Item = usize>,
) {
    for slot in slots {
        // SAFETY: the caller's promise: slot < pixel_offset.len(), the pixel is
        // inside `image`, and weights [slot][group..+32] lie inside
        // pixel_weight ([slots][dim_pad]); unaligned loads.
        unsafe {
            let at = origin + *layout.pixel_offset.get_unchecked(slot) as usize;
            let px = _mm256_set1_ps(*image.get_unchecked(at) as f32);
            let base = layout.pixel_weight.as_ptr().add(slot * dim_pad + group);
            for (b, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(px, _mm256_loadu_ps(base.add(8 * b)), *a);
            }
        }
    }
}

/// Patch embedding for patches of up to 8 pixels a side: a 64-bit mask of
/// the pixels with ink (bit 8y + x), then one FMA per 8 channels for each.
#[target_feature(enable = "avx2,fma,f16c")]
fn patch_embed_sparse<const R: usize>(layout: &Layout, shape: &Shape, regs: usize, image: &[u8], tokens: &mut [f32]) {
    let dim_pad = 8 * if R > 0 { R } else { regs };
    let (side, p, grid) = (shape.image_side as usize, shape.patch_side as usize, shape.grid());
    require!(
        dim_pad.is_multiple_of(GROUP)
            && p <= SPARSE_MAX_SIDE
            && image.len() == side * side
            && tokens.len() >= shape.patches() * dim_pad
    );
    require!(layout.pixel_offset.len() == 64 && layout.pixel_weight.len() == 64 * dim_pad);
    require!(layout.bias.len() == shape.patches() * dim_pad);
    let in_patch = _mm256_set1_epi64x(if p == 8 { -1 } else { (1i64 << (8 * p)) - 1 });
    let zero = _mm256_setzero_si256();
    let mut patch = 0;
    for r in 0..grid {
        for c in 0..grid {
            let origin = r * p * side + c * p;
            let row = |y: usize| if y < p { row_bytes(image, origin + y * side) as i64 } else { 0 };
            let lo = _mm256_and_si256(_mm256_set_epi64x(row(3), row(2), row(1), row(0)), in_patch);
            let hi = _mm256_and_si256(_mm256_set_epi64x(row(7), row(6), row(5), row(4)), in_patch);
            let blank_lo = _mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, zero)) as u32 as u64;
            let blank_hi = _mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, zero)) as u32 as u64;
            let ink = !(blank_lo | blank_hi << 32);
            for group in (0..dim_pad).step_by(GROUP) {
                let at = patch * dim_pad + group;
                // SAFETY: group + 32 ≤ dim_pad values of the patch's bias row
                // (asserted length); unaligned loads.
                let mut acc: [__m256; 4] =
                    std::array::from_fn(|b| unsafe { _mm256_loadu_ps(layout.bias.as_ptr().add(at + 8 * b)) });
                // SAFETY: a set bit is a slot < 64 = pixel_offset.len() inside
                // the patch; group + 32 ≤ dim_pad.
                unsafe { fma_pixels(&mut acc, layout, image, origin, group, dim_pad, Bits(ink)) };
                // SAFETY: group + 32 ≤ dim_pad values of the token row (asserted).
                unsafe { store32(&acc, tokens.as_mut_ptr().add(at)) };
            }
            patch += 1;
        }
    }
}

/// Patch embedding for wider patches: every pixel.
#[target_feature(enable = "avx2,fma,f16c")]
fn patch_embed_dense<const R: usize>(layout: &Layout, shape: &Shape, regs: usize, image: &[u8], tokens: &mut [f32]) {
    let dim_pad = 8 * if R > 0 { R } else { regs };
    let (side, p, grid) = (shape.image_side as usize, shape.patch_side as usize, shape.grid());
    let slots = layout.pixel_offset.len();
    require!(
        dim_pad.is_multiple_of(GROUP)
            && slots == p * p
            && layout.pixel_weight.len() == slots * dim_pad
            && image.len() == side * side
    );
    require!(tokens.len() >= shape.patches() * dim_pad && layout.bias.len() == shape.patches() * dim_pad);
    let mut patch = 0;
    for r in 0..grid {
        for c in 0..grid {
            let origin = r * p * side + c * p;
            for group in (0..dim_pad).step_by(GROUP) {
                let at = patch * dim_pad + group;
                // SAFETY: as in patch_embed_sparse.
                let mut acc: [__m256; 4] =
                    std::array::from_fn(|b| unsafe { _mm256_loadu_ps(layout.bias.as_ptr().add(at + 8 * b)) });
                // SAFETY: every slot < pixel_offset.len() is a pixel inside the
                // patch; group + 32 ≤ dim_pad.
                unsafe { fma_pixels(&mut acc, layout, image, origin, group, dim_pad, 0..slots) };
                // SAFETY: group + 32 ≤ dim_pad values of the token row (asserted).
                unsafe { store32(&acc, tokens.as_mut_ptr().add(at)) };
            }
            patch += 1;
        }
    }
}

/// Registers of 8 channels in the widest token row (`dim_pad` ≤ 128).
const MAX_REGS: usize = 16;

/// Register `k` of the row of 8-channel registers at `row`.
///
/// # Safety
/// `row` must be valid for reading `8·(k + 1)` values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn reg(row: *const f32, k: usize) -> __m256 {
    // SAFETY: the caller's promise; an unaligned load.
    unsafe { _mm256_loadu_ps(row.add(8 * k)) }
}

/// The sum of eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)))
}

/// The eight lane sums of `v[0..8]`, in order, by a `vhaddps` tree.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum8(v: &[__m256; 8]) -> __m256 {
    let a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    let b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    _mm256_add_ps(_mm256_permute2f128_ps::<0x20>(a, b), _mm256_permute2f128_ps::<0x31>(a, b))
}

/// Σ_k rows[i][k]·b[k] over `regs ≥ 1` registers, for eight rows against
/// one: eight partial sums each, every register of `b` loaded once.
///
/// # Safety
/// Each row and `b` must be valid for reading `8·regs` values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot8(rows: [*const f32; 8], b: *const f32, regs: usize) -> [__m256; 8] {
    // SAFETY: register 0 < regs of each row, the caller's promise.
    let b0 = unsafe { reg(b, 0) };
    // SAFETY: as above.
    let mut acc = rows.map(|row| _mm256_mul_ps(unsafe { reg(row, 0) }, b0));
    for k in 1..regs {
        // SAFETY: k < regs, the caller's promise.
        let bk = unsafe { reg(b, k) };
        for (acc, row) in acc.iter_mut().zip(rows) {
            // SAFETY: as above.
            *acc = _mm256_fmadd_ps(unsafe { reg(row, k) }, bk, *acc);
        }
    }
    acc
}

/// LayerNorm (without its affine, folded downstream) of every patch token,
/// in place: the formula of `crate::f16`, padding lanes kept at zero.
#[target_feature(enable = "avx2,fma,f16c")]
fn layer_norm<const R: usize>(eps: f32, layout: &Layout, shape: &Shape, regs: usize, tokens: &mut [f32]) {
    let regs = if R > 0 { R } else { regs };
    let (d, dim_pad) = (shape.dim as f32, 8 * regs);
    require!(tokens.len() >= shape.patches() * dim_pad && layout.lane_mask.len() == dim_pad && regs >= 1);
    let mask = layout.lane_mask.as_ptr();
    for token in tokens.chunks_exact_mut(dim_pad).take(shape.patches()) {
        let x = token.as_mut_ptr();
        // SAFETY: callers pass k < regs: inside the token's dim_pad values.
        let load = |k: usize| unsafe { reg(x, k) };
        let dev_of = |k: usize, mean: __m256| {
            // SAFETY: k < regs: inside lane_mask's dim_pad values (asserted).
            _mm256_and_ps(_mm256_sub_ps(load(k), mean), unsafe { reg(mask, k) })
        };
        let mean = _mm256_set1_ps(hsum((0..regs).fold(_mm256_setzero_ps(), |s, k| _mm256_add_ps(s, load(k)))) / d);
        let dev0 = dev_of(0, mean);
        let var = hsum((1..regs).fold(_mm256_mul_ps(dev0, dev0), |acc, k| {
            let dev = dev_of(k, mean);
            _mm256_fmadd_ps(dev, dev, acc)
        })) / d;
        let inv_std = _mm256_set1_ps(1.0 / sqrt(var + eps));
        for k in 0..regs {
            let v = _mm256_mul_ps(dev_of(k, mean), inv_std);
            // SAFETY: k·8 + 8 ≤ dim_pad values of the token; unaligned.
            unsafe { _mm256_storeu_ps(x.add(8 * k), v) };
        }
    }
}

/// `e^x` on eight lanes, `x ≤ 0`: 2^n · e^r with n = round(x/ln 2), r
/// reduced in two steps (Cody–Waite) to |r| ≤ ln(2)/2, e^r by its degree-6
/// Taylor polynomial (relative error below 2e-7, against libm's expf's
/// half an ulp). Below -87 (e^-87 ≈ 1.6e-38) the lane is clamped: a
/// probability of 1e-38 or 0 is the same softmax.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn exp8(x: __m256) -> __m256 {
    let c = _mm256_set1_ps;
    let x = _mm256_max_ps(x, c(-87.0));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        c(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, c(0.693_145_75), x);
    let r = _mm256_fnmadd_ps(n, c(1.428_606_8e-6), r);
    let mut poly = c(1.0 / 720.0);
    for k in [120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        poly = _mm256_fmadd_ps(poly, r, c(1.0 / k));
    }
    let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
    _mm256_mul_ps(poly, _mm256_castsi256_ps(pow2))
}

/// Softmax of `scores` (the CLS token's, then the patches', a multiple of
/// 8) into `probs`, as `crate::f16` computes it: e^(s - max), divided by
/// the sum.
#[target_feature(enable = "avx2,fma,f16c")]
fn softmax(scores: &[f32], probs: &mut [f32]) {
    let patches = scores.len() - 1;
    require!(patches.is_multiple_of(8) && probs.len() == scores.len());
    // SAFETY: 1 + c + 8 ≤ 1 + patches = scores.len(); an unaligned load.
    let load = |c: usize| unsafe { _mm256_loadu_ps(scores.as_ptr().add(1 + c)) };
    let mut max = _mm256_set1_ps(scores[0]);
    for c in (0..patches).step_by(8) {
        max = _mm256_max_ps(max, load(c));
    }
    let max = _mm256_max_ps(max, _mm256_permute2f128_ps::<0x01>(max, max));
    let max = _mm256_max_ps(max, _mm256_shuffle_ps::<0b01_00_11_10>(max, max));
    let max = _mm256_max_ps(max, _mm256_shuffle_ps::<0b10_11_00_01>(max, max));
    let cls = exp(scores[0] - _mm256_cvtss_f32(max));
    let mut sum = _mm256_setzero_ps();
    for c in (0..patches).step_by(8) {
        let e = exp8(_mm256_sub_ps(load(c), max));
        sum = _mm256_add_ps(sum, e);
        // SAFETY: 1 + c + 8 ≤ probs.len() (asserted); an unaligned store.
        unsafe { _mm256_storeu_ps(probs.as_mut_ptr().add(1 + c), e) };
    }
    let sum = cls + hsum(sum);
    probs[0] = cls / sum;
    let sum = _mm256_set1_ps(sum);
    for c in (0..patches).step_by(8) {
        // SAFETY: as the store above.
        unsafe {
            let at = probs.as_mut_ptr().add(1 + c);
            _mm256_storeu_ps(at, _mm256_div_ps(_mm256_loadu_ps(at), sum));
        }
    }
}

/// Scores, softmax (each head's CLS probabilities into `attention`), the
/// attention-weighted means and the logits.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
fn attend<const R: usize>(
    w: &f16::Weights<'_>,
    layout: &Layout,
    shape: &Shape,
    regs: usize,
    norm: &[f32],
    scores: &mut [f32],
    attention: &mut [f32],
    logits: &mut [f32],
) {
    let regs = if R > 0 { R } else { regs };
    let (heads, classes, patches, dim_pad) = (shape.heads as usize, shape.classes as usize, shape.patches(), 8 * regs);
    let (t_count, patches_pad, classes_pad) = (patches + 1, patches_pad(shape), round_up(classes, 8));
    require!(norm.len() == patches_pad * dim_pad && scores.len() == 1 + patches_pad);
    require!(attention.len() == heads * t_count && logits.len() == classes && layout.cls_norm.len() == dim_pad);
    require!(layout.score_weight.len() == heads * dim_pad && layout.head_weight.len() == heads * classes_pad * dim_pad);
    require!((1..=MAX_REGS).contains(&regs) && regs.is_multiple_of(4));
    // Token t's row of norm: callers pass t < patches_pad, inside norm
    // (asserted length), which the reads through it rely on.
    let token = |t: usize| norm.as_ptr().wrapping_add(t * dim_pad);
    let mut totals = [0f32; MAX_CLASSES as usize];
    for head in 0..heads {
        // SAFETY: head < heads: a row of score_weight (asserted length).
        let g = unsafe { layout.score_weight.as_ptr().add(head * dim_pad) };
        for t0 in (0..patches_pad).step_by(8) {
            // SAFETY: t0 + i < patches_pad; every row holds dim_pad values.
            let dots = unsafe { dot8(std::array::from_fn(|i| token(t0 + i)), g, regs) };
            // SAFETY: 1 + t0 + 8 ≤ 1 + patches_pad = scores.len(); unaligned.
            unsafe { _mm256_storeu_ps(scores.as_mut_ptr().add(1 + t0), hsum8(&dots)) };
        }
        scores[0] = w.cls_score[head];
        let probs = &mut attention[head * t_count..][..t_count];
        if patches.is_multiple_of(8) {
            softmax(&scores[..t_count], probs);
        } else {
            let max = scores[..t_count].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for (p, &s) in probs.iter_mut().zip(&scores[..t_count]) {
                *p = exp(s - max);
                sum += *p;
            }
            for p in probs.iter_mut() {
                *p /= sum;
            }
        }

        // mean = Σ p_t n_t, four registers of 8 channels at a time over
        // every token, so their accumulators stay in registers whatever the
        // width (a multiple of 32 channels).
        let p0 = _mm256_set1_ps(probs[0]);
        // SAFETY: callers pass k < regs, inside cls_norm's dim_pad values
        // (asserted).
        let cls = |k: usize| unsafe { reg(layout.cls_norm.as_ptr(), k) };
        // SAFETY: callers pass t < patches, a token row, and k < regs.
        let n = |t: usize, k: usize| unsafe { reg(token(t), k) };
        let mut mean = [_mm256_setzero_ps(); MAX_REGS];
        for (k0, mean) in mean[..regs].chunks_exact_mut(4).enumerate().map(|(i, m)| (4 * i, m)) {
            let mut acc: [__m256; 4] = std::array::from_fn(|j| _mm256_mul_ps(p0, cls(k0 + j)));
            for (t, &p) in probs[1..].iter().enumerate() {
                let p = _mm256_set1_ps(p);
                for (j, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(p, n(t, k0 + j), *acc);
                }
            }
            mean.copy_from_slice(&acc);
        }
        for c0 in (0..classes_pad).step_by(8) {
            // Rows head·classes_pad + c0 + i < heads·classes_pad of head_weight
            // (asserted length).
            let rows = std::array::from_fn(|i| {
                layout.head_weight.as_ptr().wrapping_add((head * classes_pad + c0 + i) * dim_pad)
            });
            // SAFETY: each row holds dim_pad values, `mean` MAX_REGS ≥ regs
            // registers.
            let dots = unsafe { dot8(rows, mean.as_ptr().cast(), regs) };
            // SAFETY: c0 + 8 ≤ classes_pad ≤ MAX_CLASSES = totals.len(); unaligned.
            unsafe {
                let at = totals.as_mut_ptr().add(c0);
                _mm256_storeu_ps(at, _mm256_add_ps(_mm256_loadu_ps(at), hsum8(&dots)));
            }
        }
    }
    for ((logit, &bias), &total) in logits.iter_mut().zip(w.head_bias).zip(&totals) {
        *logit = bias + total;
    }
}

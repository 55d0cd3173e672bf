//! The int8 pass on AVX-VNNI (the 256-bit VEX `vpdpbusd`/`vpdpwssd` of
//! Intel client CPUs since Alder Lake, which have no AVX-512): the design
//! of `avx512vnni.rs` on two registers of eight lanes, tokens 0-7 (patch
//! rows 0 and 1) and 8-15 (rows 2 and 3), with AVX2 where AVX-512 had
//! something better:
//!
//! - the dwords of pixels come from two 16-byte loads per image row and
//!   `vpshufb` (no byte permute across lanes);
//! - the weights of a dword are stored already broadcast (no embedded
//!   broadcast), 14 KB for the 32 channels;
//! - LayerNorm's 64-bit steps are `avx2.rs`'s (`floor(log2 q)` from q as a
//!   double, the products from 32-bit halves), four tokens a register;
//! - the transpose is four 8 × 8 dword transposes;
//! - the logits' i64 sum over heads and their last step are the scalar's.
//!
//! Same geometry as the AVX-512 kernel: 28 × 28 images of 7 × 7 patches,
//! at most 32 channels, 16 classes and 8 heads.

use std::arch::x86_64::*;

use super::avx2::{exp8, rsqrt4};
use super::{Weights, PROB_FRAC_BITS};
use crate::int8;
use crate::shape::Shape;
use crate::simd::x86::AvxVnni;

const SIDE: usize = 28;
const PATCH: usize = 7;
const PATCHES: usize = 16;
const DIM: usize = 32;
const GROUPS: usize = 14;
const CLASSES: usize = 16;
const HEADS: usize = 8;

/// Sixteen lanes as two registers: tokens (or classes) 0-7 and 8-15.
type Lanes = [__m256i; 2];

/// The int8 weights laid out for this kernel.
#[derive(Clone, Debug)]
struct Layout {
    /// `[channel][group]`: the 4 i8 weights of a dword of pixels, repeated
    /// in the 8 lanes (zero for the 8th pixel of a row and for padding).
    patch_weight: Vec<[[i32; 8]; GROUPS]>,
    scale: [i32; DIM],
    /// `[channel][patch]`, with the rounding offset of `z_shift` folded in.
    bias: [[i32; PATCHES]; DIM],
    /// `[head][pair]`: score weights of channels (2k, 2k+1) as an i16 pair.
    score_weight: Vec<[i32; DIM / 2]>,
    /// The CLS token's channels as (value, 0) pairs in the attention mean's
    /// lane orders (see `attend`): `[register][lo/hi][lane]`.
    cls_norm: [[[i32; 8]; 2]; 2],
    /// `[head][pair][class]`: head weights of channels (2k, 2k+1) as an i16
    /// pair, zero past the last class.
    head_weight: Vec<[[i32; CLASSES]; DIM / 2]>,
}

fn pair(lo: i16, hi: i16) -> i32 {
    (lo as u16 as u32 | (hi as u16 as u32) << 16) as i32
}

impl Layout {
    fn new(w: &Weights<'_>, shape: &Shape) -> Layout {
        let (d, k, heads, classes) =
            (shape.dim as usize, shape.patch_len(), shape.heads as usize, shape.classes as usize);
        let patch_weight = (0..DIM)
            .map(|o| {
                std::array::from_fn(|g| {
                    let (y, x0) = (g / 2, 4 * (g % 2));
                    let bytes: [u8; 4] = std::array::from_fn(|j| {
                        let x = x0 + j;
                        if o < d && x < PATCH {
                            w.patch_weight[o * k + y * PATCH + x] as u8
                        } else {
                            0
                        }
                    });
                    [i32::from_le_bytes(bytes); 8]
                })
            })
            .collect();
        let mut scale = [0; DIM];
        scale[..d].copy_from_slice(w.patch_scale);
        let rounding = ((1i64 << w.params.z_shift) >> 1) as i32;
        let mut bias = [[0; PATCHES]; DIM];
        for (patch, row) in w.token_bias.chunks_exact(d).enumerate() {
            for (o, &b) in row.iter().enumerate() {
                bias[o][patch] = b + rounding;
            }
        }
        let channel = |values: &[i16], o: usize| if o < d { values[o] } else { 0 };
        let score_weight = (0..heads)
            .map(|h| {
                let g = &w.score_weight[h * d..][..d];
                std::array::from_fn(|k| pair(channel(g, 2 * k), channel(g, 2 * k + 1)))
            })
            .collect();
        // Register r holds channels 16r..16r+15; in it, lane 4L+i of `lo` is
        // channel 16r + 8L + i, of `hi` channel 16r + 8L + 4 + i.
        let cls_norm = std::array::from_fn(|r| {
            std::array::from_fn(|part| {
                std::array::from_fn(|lane| pair(channel(w.cls_norm, 16 * r + 8 * (lane / 4) + 4 * part + lane % 4), 0))
            })
        });
        let head_weight = (0..heads)
            .map(|h| {
                std::array::from_fn(|k| {
                    std::array::from_fn(|c| {
                        if c < classes {
                            let row = &w.head_weight[(h * classes + c) * d..][..d];
                            pair(channel(row, 2 * k), channel(row, 2 * k + 1))
                        } else {
                            0
                        }
                    })
                })
            })
            .collect();
        Layout { patch_weight, scale, bias, score_weight, cls_norm, head_weight }
    }
}

/// The AVX-VNNI int8 kernel of one model.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    cpu: AvxVnni,
    layout: Layout,
}

impl Kernel {
    /// `None` when this CPU lacks AVX-VNNI (with AVX2), or the model is not
    /// of the geometry this kernel takes.
    pub(crate) fn new(w: &Weights<'_>, shape: &Shape) -> Option<Kernel> {
        let fits = shape.image_side as usize == SIDE
            && shape.patch_side as usize == PATCH
            && shape.dim as usize <= DIM
            && shape.classes as usize <= CLASSES
            && shape.heads as usize <= HEADS;
        if !fits {
            return None;
        }
        let cpu = AvxVnni::detect()?;
        Some(Kernel { cpu, layout: Layout::new(w, shape) })
    }

    pub(crate) fn forward(&self, w: &Weights<'_>, shape: &Shape, image: &[u8], s: &mut int8::Scratch) {
        // SAFETY: `self.cpu` exists only if AVX2 and AVX-VNNI were detected.
        unsafe { forward(self.cpu, w, &self.layout, shape, image, s) }
    }
}

/// # Safety
/// The CPU must have the features `_cpu` proves.
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn forward(_cpu: AvxVnni, w: &Weights<'_>, layout: &Layout, shape: &Shape, image: &[u8], s: &mut int8::Scratch) {
    let (d, heads, classes) = (shape.dim as usize, shape.heads as usize, shape.classes as usize);
    let t_count = PATCHES + 1;
    assert!(image.len() == SIDE * SIDE && d <= DIM && classes <= CLASSES && heads <= HEADS);
    assert!(
        layout.score_weight.len() == heads && layout.head_weight.len() == heads && layout.patch_weight.len() == DIM
    );
    assert!(s.probs.len() == heads * t_count && s.logits_fixed.len() == classes && s.logits.len() == classes);

    let z = embed(layout, image, w.params.z_shift);
    let pairs = layer_norm(&z, d as i32, w.params.ln_eps);
    let tokens = transpose_pairs(&pairs);
    let score_round = _mm256_set1_epi32(((1i64 << w.params.score_shift) >> 1) as i32);
    let score_shift = _mm_cvtsi32_si128(w.params.score_shift as i32);
    let mut probs = [(0, [_mm256_setzero_si256(); 2]); HEADS];
    for (head, probs) in probs.iter_mut().enumerate().take(heads) {
        let g = &layout.score_weight[head];
        let mut acc = [[_mm256_setzero_si256(); 2]; 2];
        for (k, pair) in pairs.iter().enumerate() {
            let weight = _mm256_set1_epi32(g[k]);
            for (a, &p) in acc[k % 2].iter_mut().zip(pair) {
                *a = _mm256_dpwssd_avx_epi32(*a, p, weight);
            }
        }
        let scores = std::array::from_fn(|i| {
            _mm256_sra_epi32(_mm256_add_epi32(_mm256_add_epi32(acc[0][i], acc[1][i]), score_round), score_shift)
        });
        *probs = softmax(w.cls_score[head], scores, &mut s.probs[head * t_count..][..t_count]);
    }
    let logits = attend(layout, &tokens, &probs[..heads]);
    int8::finish_logits(w, &logits[..classes], s);
}

/// Patch embedding, channel by channel with the patches in lanes:
/// `saturate_z(round_shift(acc · scale + bias, z_shift))`.
#[inline]
#[target_feature(enable = "avx2,avxvnni")]
fn embed(layout: &Layout, image: &[u8], z_shift: u32) -> [Lanes; DIM] {
    assert!(image.len() == SIDE * SIDE && layout.patch_weight.len() == DIM);
    // Per 128-bit lane (one patch row r, four patches c = lane): byte j of
    // lane c is column 7c + 4h + j of the row, from the load at column 0
    // (c = 0, 1) or at column 12 (c = 2, 3); 0x80 makes a zero (column 28,
    // the 8th pixel of the last patch, whose weight is zero anyway).
    let shuffle = |h: usize, from: usize| -> __m256i {
        let bytes: [u8; 32] = std::array::from_fn(|b| {
            let (c, j) = ((b % 16) / 4, b % 4);
            let col = 7 * c + 4 * h + j;
            match (from, c) {
                (0, 0 | 1) => col as u8,
                (12, 2 | 3) if col < 28 => (col - 12) as u8,
                _ => 0x80,
            }
        });
        // SAFETY: an unaligned load of a 32-byte array.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    };
    let shuffles = [[shuffle(0, 0), shuffle(0, 12)], [shuffle(1, 0), shuffle(1, 12)]];
    // Rows 7·r0 + y and 7·r1 + y, 16 bytes from column `col` of each.
    let rows = |r0: usize, y: usize, col: usize| -> __m256i {
        let at = |r: usize| image.as_ptr().wrapping_add((PATCH * r + y) * SIDE + col).cast::<__m128i>();
        // SAFETY: 16 bytes from column 12 of row 27 end at 784: inside the image.
        unsafe { _mm256_loadu2_m128i(at(r0 + 1), at(r0)) }
    };
    let groups: [Lanes; GROUPS] = std::array::from_fn(|g| {
        let (y, [from_a, from_b]) = (g / 2, shuffles[g % 2]);
        std::array::from_fn(|half| {
            let (a, b) = (rows(2 * half, y, 0), rows(2 * half, y, 12));
            _mm256_or_si256(_mm256_shuffle_epi8(a, from_a), _mm256_shuffle_epi8(b, from_b))
        })
    });
    let shift = _mm_cvtsi32_si128(z_shift as i32);
    let (floor, ceiling) = (_mm256_set1_epi32(-(i16::MAX as i32)), _mm256_set1_epi32(i16::MAX as i32));
    let mut z = [[_mm256_setzero_si256(); 2]; DIM];
    // Four channels (eight accumulators) at a time.
    for o0 in (0..DIM).step_by(4) {
        let mut acc = [[_mm256_setzero_si256(); 2]; 4];
        for (g, pixels) in groups.iter().enumerate() {
            for (i, a) in acc.iter_mut().enumerate() {
                // SAFETY: an unaligned load of an 8-lane array.
                let weight = unsafe { _mm256_loadu_si256(layout.patch_weight[o0 + i][g].as_ptr().cast()) };
                a[0] = _mm256_dpbusd_avx_epi32(a[0], pixels[0], weight);
                a[1] = _mm256_dpbusd_avx_epi32(a[1], pixels[1], weight);
            }
        }
        for (i, a) in acc.into_iter().enumerate() {
            let o = o0 + i;
            let scale = _mm256_set1_epi32(layout.scale[o]);
            z[o] = std::array::from_fn(|half| {
                // SAFETY: 8 of the 16 lanes of the channel's bias.
                let bias = unsafe { _mm256_loadu_si256(layout.bias[o][8 * half..].as_ptr().cast()) };
                let v = _mm256_sra_epi32(_mm256_add_epi32(_mm256_mullo_epi32(a[half], scale), bias), shift);
                _mm256_min_epi32(_mm256_max_epi32(v, floor), ceiling)
            });
        }
    }
    z
}

/// `int8::layer_norm` of the 16 tokens, lane-wise; lane t of `pairs[k]` is
/// (n_2k, n_2k+1) of token t.
#[inline]
#[target_feature(enable = "avx2")]
fn layer_norm(z: &[Lanes; DIM], d: i32, ln_eps: i64) -> [Lanes; DIM / 2] {
    let low16 = _mm256_set1_epi32(0xffff);
    let mut sum = [_mm256_setzero_si256(); 2];
    let mut sq_lo = [_mm256_setzero_si256(); 2];
    let mut sq_hi = [_mm256_setzero_si256(); 2];
    for k in 0..DIM / 2 {
        for half in 0..2 {
            let (a, b) = (z[2 * k][half], z[2 * k + 1][half]);
            sum[half] = _mm256_add_epi32(sum[half], _mm256_add_epi32(a, b));
            // (a, b) as an i16 pair: a² + b² < 2^31, in 16-bit halves.
            let ab = _mm256_blend_epi16::<0b1010_1010>(a, _mm256_slli_epi32::<16>(b));
            let sq = _mm256_madd_epi16(ab, ab);
            sq_lo[half] = _mm256_add_epi32(sq_lo[half], _mm256_and_si256(sq, low16));
            sq_hi[half] = _mm256_add_epi32(sq_hi[half], _mm256_srli_epi32::<16>(sq));
        }
    }
    let c = |v: i64| _mm256_set1_epi64x(v);
    // The constants of tokens 4q..4q+3 in u64 lanes, then their low dwords
    // gathered into the two 8-lane registers.
    let mut constants = [[_mm_setzero_si128(); 4]; 5];
    for q4 in 0..4 {
        let (half, part) = (q4 / 2, q4 % 2);
        let pick = |v: __m256i| if part == 0 { _mm256_castsi256_si128(v) } else { _mm256_extracti128_si256::<1>(v) };
        let sum64 = _mm256_cvtepi32_epi64(pick(sum[half]));
        let sum_sq = _mm256_add_epi64(
            _mm256_slli_epi64::<16>(_mm256_cvtepu32_epi64(pick(sq_hi[half]))),
            _mm256_cvtepu32_epi64(pick(sq_lo[half])),
        );
        // D·Σz² from 32-bit halves (Σz² < 2^36), then Q < 2^52.
        let d_sum_sq = _mm256_add_epi64(
            _mm256_mul_epu32(sum_sq, c(d as i64)),
            _mm256_slli_epi64::<32>(_mm256_mul_epu32(_mm256_srli_epi64::<32>(sum_sq), c(d as i64))),
        );
        let q = _mm256_add_epi64(_mm256_sub_epi64(d_sum_sq, _mm256_mul_epi32(sum64, sum64)), c(ln_eps));
        let zero = _mm256_cmpeq_epi64(q, _mm256_setzero_si256());
        let (recip, k) = rsqrt4(_mm256_or_si256(q, _mm256_and_si256(zero, c(1))));
        let recip = _mm256_andnot_si256(zero, recip);
        let pre = _mm256_sub_epi64(_mm256_max_epi32(k, c(11)), c(11));
        let post = _mm256_sub_epi64(_mm256_add_epi64(k, c(3)), pre);
        let pre_round = _mm256_srli_epi64::<1>(_mm256_sllv_epi64(c(1), pre));
        let post_round = _mm256_srli_epi64::<1>(_mm256_sllv_epi64(c(1), post));
        let offset = _mm256_sub_epi64(pre_round, sum64);
        let low_dwords = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
        for (slot, v) in constants.iter_mut().zip([recip, offset, post_round, pre, post]) {
            // Each fits i32: its low dword, sign and all.
            slot[q4] = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v, low_dwords));
        }
    }
    let [recip, offset, post_round, pre, post] =
        constants.map(|q| [_mm256_set_m128i(q[1], q[0]), _mm256_set_m128i(q[3], q[2])]);
    let dv = _mm256_set1_epi32(d);
    let normalise = |z: __m256i, h: usize| {
        let dev = _mm256_srav_epi32(_mm256_add_epi32(_mm256_mullo_epi32(z, dv), offset[h]), pre[h]);
        _mm256_srav_epi32(_mm256_add_epi32(_mm256_mullo_epi32(dev, recip[h]), post_round[h]), post[h])
    };
    // packs: four words of each source per 128-bit lane; the shuffle pairs
    // them per token.
    let interleave = _mm256_setr_epi8(
        0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15, 0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15,
    );
    std::array::from_fn(|k| {
        std::array::from_fn(|h| {
            _mm256_shuffle_epi8(
                _mm256_packs_epi32(normalise(z[2 * k][h], h), normalise(z[2 * k + 1][h], h)),
                interleave,
            )
        })
    })
}

/// The 8 × 8 dword transpose of `rows` (lane j of result i is lane i of
/// `rows[j]`).
#[inline]
#[target_feature(enable = "avx2")]
fn transpose8(rows: [__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(rows[0], rows[1]);
    let t1 = _mm256_unpackhi_epi32(rows[0], rows[1]);
    let t2 = _mm256_unpacklo_epi32(rows[2], rows[3]);
    let t3 = _mm256_unpackhi_epi32(rows[2], rows[3]);
    let t4 = _mm256_unpacklo_epi32(rows[4], rows[5]);
    let t5 = _mm256_unpackhi_epi32(rows[4], rows[5]);
    let t6 = _mm256_unpacklo_epi32(rows[6], rows[7]);
    let t7 = _mm256_unpackhi_epi32(rows[6], rows[7]);
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256::<0x20>(u0, u4),
        _mm256_permute2x128_si256::<0x20>(u1, u5),
        _mm256_permute2x128_si256::<0x20>(u2, u6),
        _mm256_permute2x128_si256::<0x20>(u3, u7),
        _mm256_permute2x128_si256::<0x31>(u0, u4),
        _mm256_permute2x128_si256::<0x31>(u1, u5),
        _mm256_permute2x128_si256::<0x31>(u2, u6),
        _mm256_permute2x128_si256::<0x31>(u3, u7),
    ]
}

/// The channel pairs transposed: token t's 32 channels in order as i16, in
/// two registers (channels 0-15, 16-31).
#[inline]
#[target_feature(enable = "avx2")]
fn transpose_pairs(pairs: &[Lanes; DIM / 2]) -> [[__m256i; 2]; PATCHES] {
    let mut tokens = [[_mm256_setzero_si256(); 2]; PATCHES];
    for (register, k0) in [0, 8].into_iter().enumerate() {
        for (half, t0) in [0, 8].into_iter().enumerate() {
            let block = transpose8(std::array::from_fn(|i| pairs[k0 + i][half]));
            for (i, row) in block.into_iter().enumerate() {
                tokens[t0 + i][register] = row;
            }
        }
    }
    tokens
}

/// `int8::softmax` of the CLS score and the 16 patch scores (two
/// registers): writes the head's Q.14 probabilities to `out` and returns
/// the CLS's and the patches'.
#[inline]
#[target_feature(enable = "avx2")]
fn softmax(cls_score: i32, scores: Lanes, out: &mut [i32]) -> (i32, Lanes) {
    assert!(out.len() == 1 + PATCHES);
    let m = _mm256_max_epi32(scores[0], scores[1]);
    let m = _mm256_max_epi32(m, _mm256_shuffle_epi32::<0b01_00_11_10>(m));
    let m = _mm256_max_epi32(m, _mm256_shuffle_epi32::<0b10_11_00_01>(m));
    let m = _mm256_max_epi32(m, _mm256_permute2x128_si256::<0x01>(m, m));
    let max = _mm256_cvtsi256_si32(m).max(cls_score);
    let e = scores.map(|v| exp8(_mm256_sub_epi32(v, _mm256_set1_epi32(max))));
    let cls = int8::exp_q30(cls_score - max);
    let low32 = _mm256_set1_epi64x(0xffff_ffff);
    let wide = |v: __m256i| _mm256_add_epi64(_mm256_and_si256(v, low32), _mm256_srli_epi64::<32>(v));
    let total = _mm256_add_epi64(wide(e[0]), wide(e[1]));
    let total = _mm_add_epi64(_mm256_castsi256_si128(total), _mm256_extracti128_si256::<1>(total));
    let sum = cls as u64 + (_mm_cvtsi128_si64(total) + _mm_extract_epi64::<1>(total)) as u64;
    let recip = (1u64 << 62) / sum;
    if recip > u32::MAX as u64 {
        // Only when every other exponential is 0: too rare to vectorise.
        let mut all = [0i32; 1 + PATCHES];
        all[0] = cls_score;
        // SAFETY: stores of two registers into 16 lanes of the array.
        unsafe {
            _mm256_storeu_si256(all[1..].as_mut_ptr().cast(), scores[0]);
            _mm256_storeu_si256(all[9..].as_mut_ptr().cast(), scores[1]);
        }
        int8::softmax(&all, out);
        // SAFETY: 16 lanes of `out` past its first.
        let p = unsafe { [_mm256_loadu_si256(out[1..].as_ptr().cast()), _mm256_loadu_si256(out[9..].as_ptr().cast())] };
        return (out[0], p);
    }
    let (r, half) = (_mm256_set1_epi64x(recip as i64), _mm256_set1_epi64x(1 << 47));
    let p = e.map(|e| {
        let even = _mm256_srli_epi64::<48>(_mm256_add_epi64(_mm256_mul_epu32(e, r), half));
        let odd = _mm256_srli_epi64::<48>(_mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64::<32>(e), r), half));
        _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd))
    });
    let cls = ((cls as u64 * recip + (1 << 47)) >> 48) as i32;
    out[0] = cls;
    // SAFETY: 16 lanes of `out` past its first (asserted length).
    unsafe {
        _mm256_storeu_si256(out[1..].as_mut_ptr().cast(), p[0]);
        _mm256_storeu_si256(out[9..].as_mut_ptr().cast(), p[1]);
    }
    (cls, p)
}

/// Attention means and head logits, summed over heads in i64.
#[inline]
#[target_feature(enable = "avx2,avxvnni")]
fn attend(layout: &Layout, tokens: &[[__m256i; 2]; PATCHES], probs: &[(i32, Lanes)]) -> [i64; CLASSES] {
    // Token pairs interleaved channel by channel, per register r (channels
    // 16r..): lane 4L+i of `lo` is channel 16r+8L+i of tokens (2j, 2j+1),
    // of `hi` channel 16r+8L+4+i.
    let pairs: [[[__m256i; 2]; 2]; 8] = std::array::from_fn(|j| {
        std::array::from_fn(|r| {
            let (a, b) = (tokens[2 * j][r], tokens[2 * j + 1][r]);
            [_mm256_unpacklo_epi16(a, b), _mm256_unpackhi_epi16(a, b)]
        })
    });
    let cls_norm: [[__m256i; 2]; 2] = std::array::from_fn(|r| {
        // SAFETY: unaligned loads of 8-lane arrays.
        std::array::from_fn(|part| unsafe { _mm256_loadu_si256(layout.cls_norm[r][part].as_ptr().cast()) })
    });
    let mean_round = _mm256_set1_epi32(1 << (PROB_FRAC_BITS - 1));
    let mut logits = [0i64; CLASSES];
    for (head, &(cls, patches)) in probs.iter().enumerate() {
        // The probabilities (≤ 2^14) as i16 pairs: dword j is (p_2j, p_2j+1).
        let p16 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(patches[0], patches[1]));
        let mut p = [0i32; 8];
        // SAFETY: a store of one register into an 8-lane array.
        unsafe { _mm256_storeu_si256(p.as_mut_ptr().cast(), p16) };
        let cls = _mm256_set1_epi32(cls);
        let mut m: [[__m256i; 2]; 2] = std::array::from_fn(|r| {
            std::array::from_fn(|part| _mm256_dpwssd_avx_epi32(_mm256_setzero_si256(), cls_norm[r][part], cls))
        });
        for (j, &pj) in p.iter().enumerate() {
            let pj = _mm256_set1_epi32(pj);
            for r in 0..2 {
                for part in 0..2 {
                    m[r][part] = _mm256_dpwssd_avx_epi32(m[r][part], pairs[j][r][part], pj);
                }
            }
        }
        // packs puts each register's channels back in order, saturating.
        let shift = |v: __m256i| _mm256_srai_epi32::<{ PROB_FRAC_BITS as i32 }>(_mm256_add_epi32(v, mean_round));
        let mut mean = [0i32; 16];
        for (r, m) in m.iter().enumerate() {
            // SAFETY: a store of one register into 8 lanes of the array.
            unsafe {
                _mm256_storeu_si256(mean[8 * r..].as_mut_ptr().cast(), _mm256_packs_epi32(shift(m[0]), shift(m[1])))
            };
        }
        let weights = &layout.head_weight[head];
        let mut acc = [[_mm256_setzero_si256(); 2]; 2];
        for (k, &mk) in mean.iter().enumerate() {
            let mk = _mm256_set1_epi32(mk);
            for (half, a) in acc[k % 2].iter_mut().enumerate() {
                // SAFETY: 8 of the 16 lanes of the pair's class row.
                let row = unsafe { _mm256_loadu_si256(weights[k][8 * half..].as_ptr().cast()) };
                *a = _mm256_dpwssd_avx_epi32(*a, row, mk);
            }
        }
        let mut sums = [0i32; CLASSES];
        for half in 0..2 {
            // SAFETY: a store of one register into 8 lanes of the array.
            unsafe {
                _mm256_storeu_si256(sums[8 * half..].as_mut_ptr().cast(), _mm256_add_epi32(acc[0][half], acc[1][half]))
            };
        }
        for (total, &sum) in logits.iter_mut().zip(&sums) {
            *total += sum as i64;
        }
    }
    logits
}

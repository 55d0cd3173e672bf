//! The int8 pass after the patch embedding, with the 16 patch tokens of the
//! shipped geometry (28 × 28 images of 7 × 7 patches) in the lanes of two
//! ymm registers, tokens 0-7 and 8-15: shared by the AVX2 and the AVX-VNNI
//! kernels, which differ only in how they embed the patches.
//!
//! - LayerNorm per lane from the channel pairs (z_2k, z_2k+1) as i16:
//!   `vpmaddwd` gives the pair's sum (× (1, 1)) and its squares (× itself);
//!   the constants are `avx2::ln_constants8`'s, eight tokens a register, and
//!   the normalisation three ops per register (`vpsubw`, `vpmullw`,
//!   `vpmulhrsw`).
//! - Scores per head: one broadcast weight pair × the 16 tokens' channel
//!   pairs; softmax on the 16 lanes (`avx2::exp8`), its reciprocal in scalar.
//! - The tokens transposed once (four 8 × 8 dword transposes) for the
//!   attention means, which pair tokens (2j, 2j+1) per channel so that
//!   `vpmaddwd` multiplies them by (p_2j, p_2j+1).
//! - The logits' i64 sum over heads and their last step are the scalar's.
//!
//! Every `vpmaddwd` + add here is written as [`dot_add`], which LLVM turns
//! into `vpdpwssd` where the caller enables AVX-VNNI. Every i32 lane sum is
//! a partial sum of a scalar i32 sum whose bound docs/FIXED_POINT.md
//! proves, and the bound holds for any subset of its terms.

use alloc::vec::Vec;
use core::mem::MaybeUninit;
use std::arch::x86_64::*;

use super::avx2::{self, exp8};
use super::{Params, Weights, PROB_FRAC_BITS};
use crate::int8;
use crate::shape::Shape;
use crate::simd;

pub(super) use super::shipped::{
    fits, patch_dwords, patch_scale, token_bias_by_channel, CLASSES, DIM, GROUPS, HEADS, PATCH, PATCHES, SIDE,
};

/// Sixteen lanes as two registers: tokens (or classes) 0-7 and 8-15.
pub(super) type Lanes = [__m256i; 2];

/// `acc + vpmaddwd(a, b)`: `vpdpwssd` under AVX-VNNI.
#[inline]
#[target_feature(enable = "avx2")]
fn dot_add(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
}

pub(super) fn pair(lo: i16, hi: i16) -> i32 {
    (lo as u16 as u32 | (hi as u16 as u32) << 16) as i32
}

/// The weights after the embedding, laid out for the tail.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    /// `[head][pair]`: score weights of channels (2k, 2k+1) as an i16 pair.
    score_weight: Vec<[i32; DIM / 2]>,
    /// The CLS token's channels as (value, 0) pairs in the attention mean's
    /// lane orders (see `attend`): `[register][lo/hi][lane]`.
    cls_norm: [[[i32; 8]; 2]; 2],
    /// `[head][pair][class]`: head weights of channels (2k, 2k+1) as an i16
    /// pair, zero past the last class.
    head_weight: Vec<[[i32; CLASSES]; DIM / 2]>,
    /// The scalar parameters, the CLS token's scores and the head bias, as
    /// in the blob: with these an inference needs no tensor lookup.
    pub(super) params: Params,
    cls_score: Vec<i32>,
    head_bias: Vec<i32>,
}

impl Layout {
    /// For a model that [`fits`].
    pub(super) fn new(w: &Weights<'_>, shape: &Shape) -> Layout {
        let d = shape.dim as usize;
        let channel = |values: &[i16], o: usize| if o < d { values[o] } else { 0 };
        // Register r holds channels 16r..16r+15; in it, lane 4L+i of `lo` is
        // channel 16r + 8L + i, of `hi` channel 16r + 8L + 4 + i.
        let cls_norm = std::array::from_fn(|r| {
            std::array::from_fn(|part| {
                std::array::from_fn(|lane| pair(channel(w.cls_norm, 16 * r + 8 * (lane / 4) + 4 * part + lane % 4), 0))
            })
        });
        Layout {
            score_weight: score_pairs(w, shape),
            cls_norm,
            head_weight: head_pairs(w, shape),
            params: w.params,
            cls_score: w.cls_score.to_vec(),
            head_bias: w.head_bias.to_vec(),
        }
    }
}

/// `[head][pair]`: the score weights of channels (2k, 2k+1) as an i16 pair.
pub(super) fn score_pairs(w: &Weights<'_>, shape: &Shape) -> Vec<[i32; DIM / 2]> {
    let d = shape.dim as usize;
    let channel = |values: &[i16], o: usize| if o < d { values[o] } else { 0 };
    (0..shape.heads as usize)
        .map(|h| {
            let g = &w.score_weight[h * d..][..d];
            std::array::from_fn(|k| pair(channel(g, 2 * k), channel(g, 2 * k + 1)))
        })
        .collect()
}

/// `[head][pair][class]`: the head weights of channels (2k, 2k+1) as an
/// i16 pair, zero past the last class.
pub(super) fn head_pairs(w: &Weights<'_>, shape: &Shape) -> Vec<[[i32; CLASSES]; DIM / 2]> {
    let (d, classes) = (shape.dim as usize, shape.classes as usize);
    let channel = |values: &[i16], o: usize| if o < d { values[o] } else { 0 };
    (0..shape.heads as usize)
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
        .collect()
}

/// The pass from the embedded tokens to the logits: `z[k]` holds the
/// channel pair (z_2k, z_2k+1) of token t in lane t, each already
/// saturated by `int8::saturate_z`, zero for channels past D.
/// Writes `s.probs`, `s.logits_fixed` and `s.logits` as `int8::forward`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn tail(layout: &Layout, shape: &Shape, z: &[Lanes; DIM / 2], s: &mut int8::Scratch) {
    let (heads, classes) = (shape.heads as usize, shape.classes as usize);
    let t_count = PATCHES + 1;
    require!(fits(shape) && layout.score_weight.len() == heads && layout.head_weight.len() == heads);
    require!(layout.cls_score.len() == heads && layout.head_bias.len() == classes);
    let params = &layout.params;
    require!(s.probs.len() == heads * t_count && s.logits_fixed.len() == classes && s.logits.len() == classes);

    let mut pairs = MaybeUninit::uninit();
    let pairs = layer_norm(z, shape.dim, params.ln_eps, &mut pairs);
    let score_round = _mm256_set1_epi32(((1i64 << params.score_shift) >> 1) as i32);
    let score_shift = _mm_cvtsi32_si128(params.score_shift as i32);
    let mut probs = [(0, [_mm256_setzero_si256(); 2]); HEADS];
    for (head, probs) in probs.iter_mut().enumerate().take(heads) {
        let g = &layout.score_weight[head];
        let mut acc = [[_mm256_setzero_si256(); 2]; 2];
        for (k, pair) in pairs.iter().enumerate() {
            let weight = _mm256_set1_epi32(g[k]);
            for (a, &p) in acc[k % 2].iter_mut().zip(pair) {
                *a = dot_add(*a, p, weight);
            }
        }
        let scores = std::array::from_fn(|i| {
            _mm256_sra_epi32(_mm256_add_epi32(_mm256_add_epi32(acc[0][i], acc[1][i]), score_round), score_shift)
        });
        *probs = softmax(layout.cls_score[head], scores, &mut s.probs[head * t_count..][..t_count]);
    }
    let tokens = transpose_pairs(pairs);
    let logits = attend(layout, &tokens, &probs[..heads]);
    int8::finish_logits_with(params.head_shift, &layout.head_bias, &logits[..classes], s);
}

/// `int8::layer_norm` of the 16 tokens, lane-wise, from and to channel
/// pairs: lane t of `z[k]` is (z_2k, z_2k+1) of token t, of the result
/// (n_2k, n_2k+1).
#[inline]
#[target_feature(enable = "avx2")]
fn layer_norm<'a>(
    z: &[Lanes; DIM / 2],
    d: u32,
    ln_eps: i32,
    out: &'a mut MaybeUninit<[Lanes; DIM / 2]>,
) -> &'a [Lanes; DIM / 2] {
    let ones = _mm256_set1_epi16(1);
    // Σz and Σz² of each token from its channel pairs: no horizontal sums.
    let mut sum = [_mm256_setzero_si256(); 2];
    let mut sum_sq = [_mm256_setzero_si256(); 2];
    for pair in z {
        for half in 0..2 {
            let ab = pair[half];
            sum[half] = dot_add(sum[half], ab, ones);
            sum_sq[half] = dot_add(sum_sq[half], ab, ab);
        }
    }
    // Each token's (m, 2^a, Y) in both i16 halves of its lane.
    let both_halves =
        |v: __m256i| _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)), _mm256_slli_epi32::<16>(v));
    let constants: [[__m256i; 3]; 2] =
        std::array::from_fn(|h| avx2::ln_constants8(sum[h], sum_sq[h], d as i32, ln_eps).map(both_halves));
    // Built where the caller keeps it: returned by value, the 1 KB array
    // was copied with memcpy in some builds (fat LTO).
    simd::fill(out, |k| {
        std::array::from_fn(|h| {
            let [m, scale, y] = constants[h];
            // |z - m|·2^a < 2^15: exact in i16 (docs/FIXED_POINT.md).
            _mm256_mulhrs_epi16(_mm256_mullo_epi16(_mm256_sub_epi16(z[k][h], m), scale), y)
        })
    })
}

/// The 8 × 8 dword transpose of `rows` (lane j of result i is lane i of
/// `rows[j]`).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn transpose8(rows: [__m256i; 8]) -> [__m256i; 8] {
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
    require!(out.len() == 1 + PATCHES);
    let m = _mm256_max_epi32(scores[0], scores[1]);
    let m = _mm256_max_epi32(m, _mm256_shuffle_epi32::<0b01_00_11_10>(m));
    let m = _mm256_max_epi32(m, _mm256_shuffle_epi32::<0b10_11_00_01>(m));
    let m = _mm256_max_epi32(m, _mm256_permute2x128_si256::<0x01>(m, m));
    let max = _mm256_cvtsi256_si32(m).max(cls_score);
    let e = scores.map(|v| exp8(_mm256_sub_epi32(v, _mm256_set1_epi32(max))));
    let cls = int8::exp2_q22(cls_score - max);
    // Σe ≤ 17 · 2^22: i32.
    let recip = int8::softmax_recip(cls + avx2::sum8(_mm256_add_epi32(e[0], e[1])) as u32);
    let r = _mm256_set1_epi32(recip as i32);
    let p = e.map(|e| avx2::prob8(e, r));
    let cls = int8::prob_q14(cls, recip);
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
#[target_feature(enable = "avx2")]
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
        let mut m: [[__m256i; 2]; 2] =
            std::array::from_fn(|r| std::array::from_fn(|part| _mm256_madd_epi16(cls_norm[r][part], cls)));
        for (j, &pj) in p.iter().enumerate() {
            let pj = _mm256_set1_epi32(pj);
            for r in 0..2 {
                for part in 0..2 {
                    m[r][part] = dot_add(m[r][part], pairs[j][r][part], pj);
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
                *a = dot_add(*a, row, mk);
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

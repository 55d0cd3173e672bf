//! The int8 pass after the patch embedding on aarch64, with the 16 patch
//! tokens of the shipped geometry (`int8::shipped`) in the lanes of two
//! `int16x8_t` (tokens 0-7, 8-15) or four `int32x4_t` (tokens 4q..4q+3):
//! shared by the NEON and the dotprod kernels, which differ only in how
//! they embed the patches. The aarch64 twin of `lanes.rs`.
//!
//! - LayerNorm per lane: Σz by widening adds, D·Σz² + eps in i64 lanes
//!   from squares of channel pairs (`smull` + `smlal`: 2·32767² < 2^31),
//!   `floor(log2 Q)` from Q as a double (Q < 2^41 is exact), the table's
//!   first guess by `tbl` on the 16 tokens' index bytes, the Newton step in
//!   u32/u64 lanes; `srshl` is `round_shift` (round half up, no overflow).
//! - Scores per head: each channel's weight × the 16 tokens (`smlal`).
//! - Softmax on the 16 lanes: the exponential's table read per lane (no
//!   gather on NEON), its reciprocal one scalar division per head.
//! - Attention means: per channel the 16 products p_t·n_t (`smlal`), four
//!   channels reduced together by an `addp` tree, `sqrshrn` for
//!   `sat16(round_shift(·, 14))`; logits likewise per class, summed over
//!   heads in i64 as the scalar does.
//!
//! Every i32 lane sum is a partial sum of a scalar i32 sum whose bound
//! docs/FIXED_POINT.md proves, and the bound holds for any subset of its
//! terms.

use alloc::vec::Vec;
use std::arch::aarch64::*;

use super::shipped::{fits, CLASSES, DIM, HEADS, PATCHES};
use super::{Params, Weights, EXP2_Q30, LOG2E_Q30, PROB_FRAC_BITS, RSQRT_Q15};
use crate::int8;
use crate::shape::Shape;
use crate::simd::fill;
use std::mem::MaybeUninit;

/// One value per token: tokens 0-7 and 8-15.
pub(super) type Tokens = [int16x8_t; 2];
/// One i32 per token: tokens 0-3, 4-7, 8-11, 12-15.
type Wide = [int32x4_t; 4];

/// The weights after the embedding, laid out for the tail.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    /// `[head][channel]`, zero past D.
    score_weight: Vec<[i16; DIM]>,
    /// `[channel]`, zero past D.
    cls_norm: [i16; DIM],
    /// `[head][class][channel]`, zero past D and past the last class.
    head_weight: Vec<[[i16; DIM]; CLASSES]>,
    /// The scalar parameters, the CLS token's scores and the head bias, as
    /// in the blob: with these an inference needs no tensor lookup.
    pub(super) params: Params,
    cls_score: Vec<i32>,
    head_bias: Vec<i32>,
}

impl Layout {
    /// For a model that [`fits`].
    pub(super) fn new(w: &Weights<'_>, shape: &Shape) -> Layout {
        let (d, classes) = (shape.dim as usize, shape.classes as usize);
        let padded = |values: &[i16]| {
            let mut row = [0; DIM];
            row[..d].copy_from_slice(values);
            row
        };
        Layout {
            score_weight: w.score_weight.chunks_exact(d).map(padded).collect(),
            cls_norm: padded(w.cls_norm),
            head_weight: w
                .head_weight
                .chunks_exact(classes * d)
                .map(|head| std::array::from_fn(|c| if c < classes { padded(&head[c * d..][..d]) } else { [0; DIM] }))
                .collect(),
            params: w.params,
            cls_score: w.cls_score.to_vec(),
            head_bias: w.head_bias.to_vec(),
        }
    }
}

/// The pass from the embedded tokens to the logits: `z[c]` holds channel c
/// of the 16 tokens, each already saturated to `int8::saturate_z`'s range,
/// zero for channels past D. Writes `s.probs`, `s.logits_fixed` and
/// `s.logits` as `int8::forward`.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn tail(layout: &Layout, shape: &Shape, z: &[Tokens; DIM], s: &mut int8::Scratch) {
    let (d, heads, classes) = (shape.dim as usize, shape.heads as usize, shape.classes as usize);
    let t_count = PATCHES + 1;
    require!(fits(shape) && layout.score_weight.len() == heads && layout.head_weight.len() == heads);
    require!(layout.cls_score.len() == heads && layout.head_bias.len() == classes);
    require!(s.probs.len() == heads * t_count && s.logits_fixed.len() == classes && s.logits.len() == classes);
    let params = &layout.params;

    let mut slot = MaybeUninit::uninit();
    let norm = layer_norm(z, d, params.ln_eps, &mut slot);
    let mut probs = [(0, [vdupq_n_s32(0); 4]); HEADS];
    for (head, probs) in probs.iter_mut().enumerate().take(heads) {
        let scores = scores(norm, &layout.score_weight[head], params.score_shift);
        *probs = softmax(layout.cls_score[head], scores, &mut s.probs[head * t_count..][..t_count]);
    }
    let logits = attend(layout, norm, classes, &probs[..heads]);
    int8::finish_logits_with(params.head_shift, &layout.head_bias, &logits[..classes], s);
}

/// Half `i` (tokens 4i..4i+3) of a channel's 16 tokens.
#[inline]
#[target_feature(enable = "neon")]
fn quarter(v: &Tokens, i: usize) -> int16x4_t {
    if i.is_multiple_of(2) {
        vget_low_s16(v[i / 2])
    } else {
        vget_high_s16(v[i / 2])
    }
}

/// `RSQRT_Q15`'s low and high bytes, each as three 64-byte `tbl` tables.
static RSQRT_BYTES: [[u8; 192]; 2] = {
    let mut bytes = [[0; 192]; 2];
    let mut i = 0;
    while i < 192 {
        bytes[0][i] = RSQRT_Q15[i] as u8;
        bytes[1][i] = (RSQRT_Q15[i] >> 8) as u8;
        i += 1;
    }
    bytes
};

/// `RSQRT_Q15[index]` for 16 indices below 192, as u16: three 64-entry
/// `tbl` lookups per byte (an index out of a table's range leaves the
/// byte as it is).
#[inline]
#[target_feature(enable = "neon")]
fn rsqrt_table(index: uint8x16_t) -> [uint16x8_t; 2] {
    let [lo, hi] = RSQRT_BYTES.each_ref().map(|plane| {
        // SAFETY: three 64-byte loads from a 192-byte array.
        let t = unsafe { [0, 64, 128].map(|at| vld1q_u8_x4(plane.as_ptr().add(at))) };
        let v = vqtbl4q_u8(t[0], index);
        let v = vqtbx4q_u8(v, t[1], vsubq_u8(index, vdupq_n_u8(64)));
        vqtbx4q_u8(v, t[2], vsubq_u8(index, vdupq_n_u8(128)))
    });
    [vreinterpretq_u16_u8(vzip1q_u8(lo, hi)), vreinterpretq_u16_u8(vzip2q_u8(lo, hi))]
}

/// `int8::layer_norm` of the 16 tokens, lane-wise, channel by channel.
#[inline]
#[target_feature(enable = "neon")]
fn layer_norm<'n>(
    z: &[Tokens; DIM],
    d: usize,
    ln_eps: i64,
    norm: &'n mut MaybeUninit<[Tokens; DIM]>,
) -> &'n [Tokens; DIM] {
    let dim = d as i32;
    let mut sum = [vdupq_n_s32(0); 4];
    // Σz² of tokens 2j, 2j+1 (< 2^35).
    let mut sum_sq = [vdupq_n_s64(0); 8];
    // Channels in pairs (zero past D): a² + b² < 2^31 fits i32.
    for pair in z.chunks_exact(2) {
        for i in 0..4 {
            let (a, b) = (quarter(&pair[0], i), quarter(&pair[1], i));
            sum[i] = vaddw_s16(vaddw_s16(sum[i], a), b);
            let sq = vmlal_s16(vmull_s16(a, a), b, b);
            sum_sq[2 * i] = vaddw_s32(sum_sq[2 * i], vget_low_s32(sq));
            sum_sq[2 * i + 1] = vaddw_high_s32(sum_sq[2 * i + 1], sq);
        }
    }
    // Q = D·Σz² - (Σz)² + eps, D·Σz² from the 32-bit halves of Σz².
    let dim2 = vdup_n_u32(dim as u32);
    let mut q: [int64x2_t; 8] = std::array::from_fn(|j| {
        let v = vreinterpretq_u64_s64(sum_sq[j]);
        let (lo, hi) = (vmovn_u64(v), vshrn_n_u64::<32>(v));
        let d_sum_sq = vaddq_u64(vmull_u32(lo, dim2), vshlq_n_u64::<32>(vmull_u32(hi, dim2)));
        vaddq_s64(vreinterpretq_s64_u64(d_sum_sq), vdupq_n_s64(ln_eps))
    });
    for i in 0..4 {
        q[2 * i] = vmlsl_s32(q[2 * i], vget_low_s32(sum[i]), vget_low_s32(sum[i]));
        q[2 * i + 1] = vmlsl_high_s32(q[2 * i + 1], sum[i], sum[i]);
    }
    // Q = 0 (eps 0, a constant token) normalises to 0: computed with Q = 1
    // and a zero reciprocal.
    let zero = q.map(|q| vceqzq_s64(q));
    let q: [uint64x2_t; 8] = std::array::from_fn(|j| vsubq_u64(vreinterpretq_u64_s64(q[j]), zero[j]));
    let narrow = |v: &[uint64x2_t; 8], i: usize| {
        vuzp1q_u32(vreinterpretq_u32_u64(v[2 * i]), vreinterpretq_u32_u64(v[2 * i + 1]))
    };
    // floor(log2 Q) from the double's exponent (Q < 2^41, exact), k = half.
    let exponent = q.map(|q| vshrq_n_u64::<52>(vreinterpretq_u64_f64(vcvtq_f64_u64(q))));
    let k: [int32x4_t; 4] = std::array::from_fn(|i| {
        vshrq_n_s32::<1>(vsubq_s32(vreinterpretq_s32_u32(narrow(&exponent, i)), vdupq_n_s32(1023)))
    });
    // m = Q · 4^(15-k) in [2^30, 2^32): ushl shifts left by 30 - 2k, right
    // (truncating) when that is negative.
    let shifted: [uint64x2_t; 8] = std::array::from_fn(|j| {
        let count = vsubq_s32(vdupq_n_s32(30), vshlq_n_s32::<1>(k[j / 2]));
        let count = if j.is_multiple_of(2) { vmovl_s32(vget_low_s32(count)) } else { vmovl_high_s32(count) };
        vshlq_u64(q[j], count)
    });
    let m: [uint32x4_t; 4] = std::array::from_fn(|i| narrow(&shifted, i));
    // The table index (m >> 24) - 64 of the 16 tokens as bytes.
    let top = |a: uint32x4_t, b: uint32x4_t| vshrn_high_n_u32::<16>(vshrn_n_u32::<16>(a), b);
    let index = vshrn_high_n_u16::<8>(vshrn_n_u16::<8>(top(m[0], m[1])), top(m[2], m[3]));
    let y0 = rsqrt_table(vsubq_u8(index, vdupq_n_u8(64)));
    let y0: [uint32x4_t; 4] = std::array::from_fn(|i| {
        if i.is_multiple_of(2) {
            vmovl_u16(vget_low_u16(y0[i / 2]))
        } else {
            vmovl_high_u16(y0[i / 2])
        }
    });
    let zero: [uint32x4_t; 4] =
        std::array::from_fn(|i| vuzp1q_u32(vreinterpretq_u32_u64(zero[2 * i]), vreinterpretq_u32_u64(zero[2 * i + 1])));
    // One Newton step: t = (y0² · (m >> 2)) >> 28 ≈ 2^30 (< 2^32), y1 =
    // (y0 · (3·2^30 - t)) >> 31 < 2^16, y = (y1 + 1) >> 1.
    let recip: [int32x4_t; 4] = std::array::from_fn(|i| {
        let (y0, m) = (y0[i], vshrq_n_u32::<2>(m[i]));
        let y0sq = vmulq_u32(y0, y0);
        let t = vshrn_high_n_u64::<28>(
            vshrn_n_u64::<28>(vmull_u32(vget_low_u32(y0sq), vget_low_u32(m))),
            vmull_high_u32(y0sq, m),
        );
        let step = vsubq_u32(vdupq_n_u32(3 << 30), t);
        let y1 = vshrn_high_n_u64::<31>(
            vshrn_n_u64::<31>(vmull_u32(vget_low_u32(y0), vget_low_u32(step))),
            vmull_high_u32(y0, step),
        );
        vreinterpretq_s32_u32(vbicq_u32(vrshrq_n_u32::<1>(y1), zero[i]))
    });
    // pre = max(k - 11, 0), post = k + 3 - pre, both negated for srshl.
    let pre: [int32x4_t; 4] = std::array::from_fn(|i| vmaxq_s32(vsubq_s32(k[i], vdupq_n_s32(11)), vdupq_n_s32(0)));
    let neg_post: [int32x4_t; 4] = std::array::from_fn(|i| vsubq_s32(pre[i], vaddq_s32(k[i], vdupq_n_s32(3))));
    let neg_pre = pre.map(|v| vnegq_s32(v));
    let neg_sum = sum.map(|v| vnegq_s32(v));
    // n = sat16(round_shift(round_shift(D·z - Σz, pre) · y, post)), for
    // every channel: past D a value no weight reads (all are zero there).
    // Built channel by channel where it lives (`fill`), neither zeroed nor
    // copied.
    fill(norm, |c| {
        let z = &z[c];
        let v: [int32x4_t; 4] = std::array::from_fn(|i| {
            let dev = if i.is_multiple_of(2) {
                vmlal_n_s16(neg_sum[i], vget_low_s16(z[i / 2]), dim as i16)
            } else {
                vmlal_high_n_s16(neg_sum[i], z[i / 2], dim as i16)
            };
            vrshlq_s32(vmulq_s32(vrshlq_s32(dev, neg_pre[i]), recip[i]), neg_post[i])
        });
        [vqmovn_high_s32(vqmovn_s32(v[0]), v[1]), vqmovn_high_s32(vqmovn_s32(v[2]), v[3])]
    })
}

/// One head's Q.16 scores of the 16 patch tokens:
/// `round_shift(Σ_c g[c] · n[c], score_shift)` (g is zero past D).
#[inline]
#[target_feature(enable = "neon")]
fn scores(norm: &[Tokens; DIM], g: &[i16; DIM], score_shift: u32) -> Wide {
    let mut acc = [vdupq_n_s32(0); 4];
    for (n, &g) in norm.iter().zip(g) {
        for (i, a) in acc.iter_mut().enumerate() {
            *a = vmlal_n_s16(*a, quarter(n, i), g);
        }
    }
    let shift = vdupq_n_s32(-(score_shift as i32));
    acc.map(|a| vrshlq_s32(a, shift))
}

/// `int8::exp_q30` of four Q.16 `x ≤ 0`.
#[inline]
#[target_feature(enable = "neon")]
fn exp4(x: int32x4_t) -> uint32x4_t {
    // Below -2^22 (e^-64) the scalar result is 0, as it is at -2^22; the
    // clamp keeps y = x·log2(e) in i32.
    let x = vmaxq_s32(x, vdupq_n_s32(-(1 << 22)));
    // y = floor(x · LOG2E_Q30 / 2^30): bits 30..61 of the i64 products.
    let l = LOG2E_Q30 as i32;
    let y = vshrn_high_n_s64::<30>(vshrn_n_s64::<30>(vmull_n_s32(vget_low_s32(x), l)), vmull_high_n_s32(x, l));
    let int = vshrq_n_s32::<16>(y);
    let y = vreinterpretq_u32_s32(y);
    let (j, lo) = (vandq_u32(vshrq_n_u32::<8>(y), vdupq_n_u32(0xff)), vandq_u32(y, vdupq_n_u32(0xff)));
    // (EXP2_Q30[j], EXP2_Q30[j + 1]) per lane: NEON has no gather.
    let mut ab = [0u32; 8];
    let mut js = [0u32; 4];
    // SAFETY: a store of one register into a 4-lane array.
    unsafe { vst1q_u32(js.as_mut_ptr(), j) };
    for (pair, &j) in ab.chunks_exact_mut(2).zip(&js) {
        let j = (j & 0xff) as usize;
        pair.copy_from_slice(&EXP2_Q30[j..j + 2]);
    }
    // SAFETY: eight u32 from an 8-lane array, deinterleaved.
    let ab = unsafe { vld2q_u32(ab.as_ptr()) };
    // a + (((b - a) · lo + 128) >> 8): (b - a) < 2^23 and lo < 2^8.
    let v = vrsraq_n_u32::<8>(ab.0, vmulq_u32(vsubq_u32(ab.1, ab.0), lo));
    // int ∈ [-93, 0]: ushl shifts right by -int, and gives 0 from 32 on.
    vshlq_u32(v, int)
}

/// `int8::softmax` of the CLS score and the 16 patch scores: writes the
/// head's Q.14 probabilities to `out` and returns the CLS's and the
/// patches'.
#[inline]
#[target_feature(enable = "neon")]
fn softmax(cls_score: i32, scores: Wide, out: &mut [i32]) -> (i32, Wide) {
    require!(out.len() == 1 + PATCHES);
    let max = vmaxvq_s32(vmaxq_s32(vmaxq_s32(scores[0], scores[1]), vmaxq_s32(scores[2], scores[3]))).max(cls_score);
    let e = scores.map(|s| exp4(vsubq_s32(s, vdupq_n_s32(max))));
    let cls = int8::exp_q30(cls_score - max);
    // Each e ≤ 2^30: two lanes added fit u32.
    let sum = cls as u64 + vaddlvq_u32(vaddq_u32(e[0], e[1])) + vaddlvq_u32(vaddq_u32(e[2], e[3]));
    let recip = (1u64 << 62) / sum;
    if recip > u32::MAX as u64 {
        // Only when every other exponential is 0: too rare to vectorise.
        let mut all = [0i32; 1 + PATCHES];
        all[0] = cls_score;
        for (i, s) in scores.iter().enumerate() {
            // SAFETY: a store of one register into 4 lanes of the array.
            unsafe { vst1q_s32(all[1 + 4 * i..].as_mut_ptr(), *s) };
        }
        int8::softmax(&all, out);
        // SAFETY: 16 lanes of `out` past its first (asserted length).
        let p = std::array::from_fn(|i| unsafe { vld1q_s32(out[1 + 4 * i..].as_ptr()) });
        return (out[0], p);
    }
    // (e · R + 2^47) >> 48: urshr is that rounding shift, without overflow.
    let r = vdup_n_u32(recip as u32);
    let p: Wide = e.map(|e| {
        let lo = vrshrq_n_u64::<48>(vmull_u32(vget_low_u32(e), r));
        let hi = vrshrq_n_u64::<48>(vmull_high_u32(e, vcombine_u32(r, r)));
        vreinterpretq_s32_u32(vuzp1q_u32(vreinterpretq_u32_u64(lo), vreinterpretq_u32_u64(hi)))
    });
    let cls = ((cls as u64 * recip + (1 << 47)) >> 48) as i32;
    out[0] = cls;
    for (i, p) in p.iter().enumerate() {
        // SAFETY: 4 of the 16 lanes of `out` past its first (asserted length).
        unsafe { vst1q_s32(out[1 + 4 * i..].as_mut_ptr(), *p) };
    }
    (cls, p)
}

/// Four i32x4 reduced lane-wise: lane i of the result is the sum of the
/// lanes of `v[i]`.
#[inline]
#[target_feature(enable = "neon")]
fn reduce4(v: [int32x4_t; 4]) -> int32x4_t {
    vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3]))
}

/// Attention means and head logits, summed over heads in i64.
#[inline]
#[target_feature(enable = "neon")]
fn attend(layout: &Layout, norm: &[Tokens; DIM], classes: usize, probs: &[(i32, Wide)]) -> [i64; CLASSES] {
    let mut logits = [0i64; CLASSES];
    for (head, &(cls, p)) in probs.iter().enumerate() {
        // The probabilities (≤ 2^14) as i16, tokens 0-7 and 8-15.
        let p16 = [vmovn_high_s32(vmovn_s32(p[0]), p[1]), vmovn_high_s32(vmovn_s32(p[2]), p[3])];
        // Channel c's Σ_t p_t · n_t[c] in four partial sums.
        let dot = |n: &Tokens| {
            let acc = vmlal_high_s16(vmull_s16(vget_low_s16(n[0]), vget_low_s16(p16[0])), n[0], p16[0]);
            vmlal_high_s16(vmlal_s16(acc, vget_low_s16(n[1]), vget_low_s16(p16[1])), n[1], p16[1])
        };
        // Channels 4g..4g+3 (past D, values no head weight reads).
        let mut mean = [vdup_n_s16(0); DIM / 4];
        for (g, m) in mean.iter_mut().enumerate() {
            let sums = reduce4(std::array::from_fn(|i| dot(&norm[4 * g + i])));
            // SAFETY: 4 of the 32 lanes of cls_norm.
            let cls_norm = unsafe { vld1_s16(layout.cls_norm[4 * g..].as_ptr()) };
            *m = vqrshrn_n_s32::<{ PROB_FRAC_BITS as i32 }>(vmlal_n_s16(sums, cls_norm, cls as i16));
        }
        let mean: [int16x8_t; DIM / 8] = std::array::from_fn(|i| vcombine_s16(mean[2 * i], mean[2 * i + 1]));
        // One i32 dot product per class (exact, below 2^30).
        let weights = &layout.head_weight[head];
        let class_dot = |c: usize| {
            let mut acc = vdupq_n_s32(0);
            for (i, &m) in mean.iter().enumerate() {
                // SAFETY: 8 of the 32 lanes of the class's row.
                let w = unsafe { vld1q_s16(weights[c][8 * i..].as_ptr()) };
                acc = vmlal_high_s16(vmlal_s16(acc, vget_low_s16(w), vget_low_s16(m)), w, m);
            }
            acc
        };
        for c0 in (0..classes).step_by(4) {
            let mut sums = [0i32; 4];
            // SAFETY: a store of one register into a 4-lane array.
            unsafe { vst1q_s32(sums.as_mut_ptr(), reduce4(std::array::from_fn(|i| class_dot(c0 + i)))) };
            for (total, &sum) in logits[c0..].iter_mut().zip(&sums) {
                *total += sum as i64;
            }
        }
    }
    logits
}

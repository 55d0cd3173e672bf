//! The int8 pass after the patch embedding on aarch64, with the 16 patch
//! tokens of the shipped geometry (`int8::shipped`) in the lanes of two
//! `int16x8_t` (tokens 0-7, 8-15) or four `int32x4_t` (tokens 4q..4q+3):
//! shared by the NEON and the dotprod kernels, which differ only in how
//! they embed the patches. The aarch64 twin of `lanes.rs`.
//!
//! - LayerNorm per lane: Σz² by widening multiply-adds (`smlal`, in the
//!   transpose that makes the lanes, `neon::to_lanes`), the constants in
//!   i32 lanes (`clz` for the exponent, no table), then two ops per 8
//!   values (`mul` by 2^a, `sqrdmulh`).
//! - Scores two heads at a time, in the same pass as the normalisation:
//!   each normalised channel is multiplied by both heads' weights (held in
//!   registers, `smlal` by lane) as soon as it exists, and stored once,
//!   for the means.
//! - Softmax on the 16 lanes: the exponential's two 8-entry tables by
//!   `tbl`, its reciprocal one u32 division per head.
//! - Attention means: per channel the 16 products p_t·n_t (`smlal`), four
//!   channels reduced together by an `addp` tree, `sqrshrn` for
//!   `sat16(round_shift(·, 14))`; logits with the classes in lanes (three
//!   registers of four for up to 12 classes, else four), each channel's
//!   mean by lane (`smlal`), summed over heads in i32 lanes
//!   (no overflow for D ≤ 32, H ≤ 8), their last step (`srshl`, bias) in
//!   the same lanes.
//!
//! Every i32 lane sum is a partial sum of a scalar i32 sum whose bound
//! docs/FIXED_POINT.md proves, and the bound holds for any subset of its
//! terms.

use alloc::vec::Vec;
use std::arch::aarch64::*;

use super::neon::{to_lanes, Rows};
use super::shipped::{fits, CLASSES, DIM, PATCHES};
use super::{Params, Weights, LOGIT_FRAC_BITS, PROB_FRAC_BITS};
use crate::int8;
use crate::shape::Shape;
use std::mem::MaybeUninit;

/// One value per token: tokens 0-7 and 8-15.
pub(super) type Tokens = [int16x8_t; 2];
/// One i32 per token: tokens 0-3, 4-7, 8-11, 12-15.
pub(super) type Wide = [int32x4_t; 4];

/// The weights after the embedding, laid out for the tail.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    /// `[head pair][head of the pair][channel]`, zero past D; an odd head
    /// count is completed by a head of zeros.
    score_weight: Vec<[[i16; DIM]; 2]>,
    /// `[channel]`, zero past D.
    cls_norm: [i16; DIM],
    /// `[head][channel][class]`, zero past D and past the last class:
    /// `head_classes` classes a channel, 12 for models of up to 12 classes
    /// (three registers of four, not four), else 16.
    head_weight: Vec<i16>,
    head_classes: usize,
    /// The scalar parameters, the CLS token's scores and the head bias, as
    /// in the blob: with these an inference needs no tensor lookup.
    pub(super) params: Params,
    cls_score: Vec<i32>,
    /// Zero past the last class.
    head_bias: [i32; CLASSES],
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
        let scores: Vec<[i16; DIM]> = w.score_weight.chunks_exact(d).map(padded).collect();
        let head_classes = if classes <= 12 { 12 } else { CLASSES };
        let mut head_weight = vec![0; shape.heads as usize * DIM * head_classes];
        for (h, head) in w.head_weight.chunks_exact(classes * d).enumerate() {
            for o in 0..d {
                for c in 0..classes {
                    head_weight[(h * DIM + o) * head_classes + c] = head[c * d + o];
                }
            }
        }
        Layout {
            score_weight: scores.chunks(2).map(|heads| [heads[0], heads.get(1).copied().unwrap_or([0; DIM])]).collect(),
            cls_norm: padded(w.cls_norm),
            head_weight,
            head_classes,
            params: w.params,
            cls_score: w.cls_score.to_vec(),
            head_bias: std::array::from_fn(|c| w.head_bias.get(c).copied().unwrap_or(0)),
        }
    }
}

/// The pass from the embedded token rows to the logits: each token's
/// channels saturated by `int8::saturate_z`, zero past D. Transposes them
/// into lanes (`neon::to_lanes`, which sums the squares too), then writes
/// `s.probs`, `s.logits_fixed` and `s.logits` as `int8::forward`.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn tail(layout: &Layout, shape: &Shape, rows: &Rows, s: &mut int8::Scratch) {
    let (heads, classes) = (shape.heads as usize, shape.classes as usize);
    let t_count = PATCHES + 1;
    // At least one head: the first head pair's pass writes `norm`.
    require!(fits(shape) && heads > 0);
    require!(
        layout.score_weight.len() == heads.div_ceil(2) && layout.head_weight.len() == heads * DIM * layout.head_classes
    );
    require!(classes <= layout.head_classes);
    require!(layout.cls_score.len() == heads);
    require!(s.probs.len() == heads * t_count && s.logits_fixed.len() == classes && s.logits.len() == classes);
    let params = &layout.params;

    let mut z = MaybeUninit::uninit();
    let (z, sum_sq) = to_lanes(rows, &mut z);
    let [scale, y] = layer_norm_constants(sum_sq, params.ln_eps);
    // n = mulhrs(z·2^a, Y): `sqrdmulh` on i16 is mulhrs, and |z|·2^a < 2^15
    // is exact (docs/FIXED_POINT.md). Past D a value no weight reads.
    let normalise = |c: usize| -> Tokens { std::array::from_fn(|h| vqrdmulhq_s16(vmulq_s16(z[c][h], scale[h]), y[h])) };
    // The normalised tokens, written by the first head pair's pass where
    // they are made (an array returned by value was copied), read by the
    // other pairs and the means.
    let mut slot = MaybeUninit::<[Tokens; DIM]>::uninit();
    let norm_at = slot.as_mut_ptr().cast::<Tokens>();
    let shift = vdupq_n_s32(-(params.score_shift as i32));
    for (pair_index, weights) in layout.score_weight.iter().enumerate() {
        let scores = if pair_index == 0 {
            scores2(weights, |c| {
                let n = normalise(c);
                // SAFETY: channel c < DIM of the array.
                unsafe { norm_at.add(c).write(n) };
                n
            })
        } else {
            // SAFETY: written by the first pass (pair_index 0).
            scores2(weights, |c| unsafe { norm_at.add(c).read() })
        };
        for (i, scores) in scores.into_iter().enumerate() {
            let head = 2 * pair_index + i;
            if head < heads {
                let scores = scores.map(|a| vrshlq_s32(a, shift));
                softmax(layout.cls_score[head], scores, &mut s.probs[head * t_count..][..t_count]);
            }
        }
    }
    // SAFETY: the first pass (there is one: heads > 0, asserted) wrote
    // every channel.
    let norm = unsafe { slot.assume_init_ref() };
    let sums = attend(layout, norm, &s.probs);
    finish_logits(sums, params.head_shift, &layout.head_bias, &mut s.logits_fixed, &mut s.logits);
}

/// `int8::finish_logits_with` on the head sums of four classes a register.
/// Each sum is the scalar's i64 and below 1.54·10^9 (`attend`), so the
/// rounding shift runs in i32 lanes: `srshl` by −s adds 2^(s−1) and shifts
/// in unbounded precision, the scalar's `round_shift` for every s (0 for
/// s ≥ 32 here); the bias (|b| ≤ 2^29; `head_bias` padded to 16 with
/// zeros) adds without reaching the scalar's clamp (1.54·10^9 + 2^29 <
/// 2^31). Only the lanes of the model's classes are stored.
#[inline]
#[target_feature(enable = "neon")]
fn finish_logits(
    sums: [int32x4_t; CLASSES / 4],
    head_shift: u32,
    head_bias: &[i32; CLASSES],
    fixed: &mut [i32],
    float: &mut [f32],
) {
    let classes = fixed.len();
    require!(classes <= CLASSES && float.len() == classes);
    let shift = vdupq_n_s32(-(head_shift as i32));
    let scale = 1.0 / (1u32 << LOGIT_FRAC_BITS) as f32;
    let (fixed_at, float_at) = (fixed.as_mut_ptr(), float.as_mut_ptr());
    for (q, &sum) in sums.iter().enumerate() {
        if 4 * q >= classes {
            break;
        }
        // SAFETY: 4 of the 16 padded biases.
        let logit = vaddq_s32(vrshlq_s32(sum, shift), unsafe { vld1q_s32(head_bias[4 * q..].as_ptr()) });
        let scaled = vmulq_n_f32(vcvtq_f32_s32(logit), scale);
        // SAFETY: the lanes of classes that exist, 4q + lane < classes,
        // inside both slices (their length); lane by lane for the last
        // group's one to three (no `memcpy` call).
        unsafe {
            let (fixed_at, float_at) = (fixed_at.add(4 * q), float_at.add(4 * q));
            match classes - 4 * q {
                1 => {
                    vst1q_lane_s32::<0>(fixed_at, logit);
                    vst1q_lane_f32::<0>(float_at, scaled);
                }
                2 => {
                    vst1_s32(fixed_at, vget_low_s32(logit));
                    vst1_f32(float_at, vget_low_f32(scaled));
                }
                3 => {
                    vst1_s32(fixed_at, vget_low_s32(logit));
                    vst1_f32(float_at, vget_low_f32(scaled));
                    vst1q_lane_s32::<2>(fixed_at.add(2), logit);
                    vst1q_lane_f32::<2>(float_at.add(2), scaled);
                }
                _ => {
                    vst1q_s32(fixed_at, logit);
                    vst1q_f32(float_at, scaled);
                }
            }
        }
    }
}

/// `int8::ln_constants` on four i32 lanes: `(2^a, Y)` of four tokens from
/// their `Σz²` (z within ±`int8::z_limit`).
#[inline]
#[target_feature(enable = "neon")]
fn ln_constants4(sum_sq: int32x4_t, eps: i32) -> [int32x4_t; 2] {
    let c = vdupq_n_s32;
    let u = vmaxq_s32(vaddq_s32(sum_sq, c(eps)), c(1));
    // k = floor(log2 U) / 2; M = U·4^(7-k) (`sshl` shifts right for a
    // negative count, truncating, as the scalar's >> does).
    let k = vshrq_n_s32::<1>(vsubq_s32(c(31), vclzq_s32(u)));
    let mm = vshlq_s32(u, vsubq_s32(c(14), vaddq_s32(k, k)));
    // int8::rsq.
    let inner = vaddq_s32(c(-12837), vshrq_n_s32::<14>(vmulq_s32(mm, c(1535))));
    let mut y = vaddq_s32(c(43195), vshrq_n_s32::<14>(vmulq_s32(mm, inner)));
    for _ in 0..2 {
        let t = vshrq_n_s32::<14>(vmulq_s32(y, y));
        let w = vshrq_n_s32::<14>(vmulq_s32(t, mm));
        y = vaddq_s32(y, vshrq_n_s32::<17>(vmulq_s32(y, vsubq_s32(c(65536), w))));
    }
    let y = vminq_s32(y, c(32767));
    // k ≤ 14: (2^(14-k), y); k = 15: (1, (y + 1) >> 1).
    let over = vmaxq_s32(vsubq_s32(k, c(14)), c(0));
    let scale = vshlq_s32(c(1), vmaxq_s32(vsubq_s32(c(14), k), c(0)));
    [scale, vshlq_s32(vaddq_s32(y, over), vnegq_s32(over))]
}

/// `int8::ln_constants` of the 16 tokens, lane-wise, from their Σz²:
/// `[2^a, Y]`, each as i16 for tokens 0-7 and 8-15 (2^a ≤ 2^14, Y < 2^15).
#[inline]
#[target_feature(enable = "neon")]
fn layer_norm_constants(sum_sq: Wide, ln_eps: i32) -> [Tokens; 2] {
    let constants: [[int32x4_t; 2]; 4] = std::array::from_fn(|i| ln_constants4(sum_sq[i], ln_eps));
    std::array::from_fn(|j| {
        std::array::from_fn(|h| vcombine_s16(vmovn_s32(constants[2 * h][j]), vmovn_s32(constants[2 * h + 1][j])))
    })
}

/// `acc[q] +=` tokens 4q..4q + 3 of `n` × lane L of `g`.
#[inline]
#[target_feature(enable = "neon")]
fn mac_lane<const L: i32>(acc: &mut Wide, n: &Tokens, g: int16x8_t) {
    acc[0] = vmlal_laneq_s16::<L>(acc[0], vget_low_s16(n[0]), g);
    acc[1] = vmlal_high_laneq_s16::<L>(acc[1], n[0], g);
    acc[2] = vmlal_laneq_s16::<L>(acc[2], vget_low_s16(n[1]), g);
    acc[3] = vmlal_high_laneq_s16::<L>(acc[3], n[1], g);
}

/// Two heads' score sums of the 16 patch tokens, `Σ_c g[c] · n[c]` (g is
/// zero past D), from each channel's normalised tokens `n(c)`, called once
/// per channel in order; the weights stay in registers (`smlal` by lane).
#[inline]
#[target_feature(enable = "neon")]
fn scores2(weights: &[[i16; DIM]; 2], mut n: impl FnMut(usize) -> Tokens) -> [Wide; 2] {
    let mut acc = [[vdupq_n_s32(0); 4]; 2];
    for chunk in 0..DIM / 8 {
        // SAFETY: 8 of the DIM lanes of each head's row. (Indexed, not
        // `weights.map`, which copied both rows to the stack every chunk.)
        let g = [0, 1].map(|head| unsafe { vld1q_s16(weights[head][8 * chunk..].as_ptr()) });
        macro_rules! channels {
            ($($lane:literal)*) => {$({
                let n = n(8 * chunk + $lane);
                mac_lane::<$lane>(&mut acc[0], &n, g[0]);
                mac_lane::<$lane>(&mut acc[1], &n, g[1]);
            })*};
        }
        channels!(0 1 2 3 4 5 6 7);
    }
    acc
}

/// `int8::exp2_q22` of four Q.16 `x ≤ 0`: the 8-entry tables by `tbl`.
#[inline]
#[target_feature(enable = "neon")]
fn exp4(x: int32x4_t) -> uint32x4_t {
    let x = vmaxq_s32(x, vdupq_n_s32(int8::EXP_FLOOR));
    let i = vshrq_n_s32::<16>(x);
    let f = vreinterpretq_u32_s32(vandq_s32(x, vdupq_n_s32(0xffff)));
    let (j, g) = (vshrq_n_u32::<13>(f), vandq_u32(f, vdupq_n_u32(0x1fff)));
    let q = vaddq_u32(vdupq_n_u32(62929), vshrq_n_u32::<16>(vmulq_n_u32(g, 15170)));
    let q = vaddq_u32(vdupq_n_u32(181705), vshrq_n_u32::<16>(vmulq_u32(g, q)));
    let h = vshrq_n_u32::<15>(vmulq_u32(g, q));
    // Bytes 4j..4j + 3 of a 32-byte table: j·0x04040404 + 0x03020100.
    let index = vreinterpretq_u8_u32(vmlaq_n_u32(vdupq_n_u32(0x0302_0100), j, 0x0404_0404));
    // SAFETY: 32-byte loads of two 8-entry u32 tables.
    let (t24, t15) =
        unsafe { (vld1q_u8_x2(int8::EXP2_Q24.as_ptr().cast()), vld1q_u8_x2(int8::EXP2_Q15.as_ptr().cast())) };
    let (t24, t15) = (vreinterpretq_u32_u8(vqtbl2q_u8(t24, index)), vreinterpretq_u32_u8(vqtbl2q_u8(t15, index)));
    let e = vaddq_u32(t24, vshrq_n_u32::<10>(vmulq_u32(t15, h)));
    // A negative count shifts right (`ushl`): by 2 - i.
    vshlq_u32(e, vsubq_s32(i, vdupq_n_s32(2)))
}

/// `int8::softmax` of the CLS score and the 16 patch scores: writes the
/// head's Q.14 probabilities to `out`.
#[inline]
#[target_feature(enable = "neon")]
fn softmax(cls_score: i32, scores: Wide, out: &mut [i32]) {
    require!(out.len() == 1 + PATCHES);
    let max = vmaxvq_s32(vmaxq_s32(vmaxq_s32(scores[0], scores[1]), vmaxq_s32(scores[2], scores[3]))).max(cls_score);
    let e = scores.map(|s| exp4(vsubq_s32(s, vdupq_n_s32(max))));
    let cls = int8::exp2_q22(cls_score - max);
    // Σe ≤ 17 · 2^22: u32.
    let recip = int8::softmax_recip(cls + vaddvq_u32(vaddq_u32(vaddq_u32(e[0], e[1]), vaddq_u32(e[2], e[3]))));
    let r = vdupq_n_u32(recip);
    out[0] = int8::prob_q14(cls, recip);
    for (i, e) in e.iter().enumerate() {
        // `int8::prob_q14`, whose `(x + 2^(s-1)) >> s` (no u32 overflow)
        // are `urshr`'s rounding shifts.
        let e16 = vrshrq_n_u32::<6>(*e);
        let p = vreinterpretq_s32_u32(vrshrq_n_u32::<17>(vshrq_n_u32::<1>(vmulq_u32(e16, r))));
        // SAFETY: 4 of the 16 lanes of `out` past its first (asserted length).
        unsafe { vst1q_s32(out[1 + 4 * i..].as_mut_ptr(), p) };
    }
}

/// Four i32x4 reduced lane-wise: lane i of the result is the sum of the
/// lanes of `v[i]`.
#[inline]
#[target_feature(enable = "neon")]
fn reduce4(v: [int32x4_t; 4]) -> int32x4_t {
    let mut sums = vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3]));
    // An empty `asm!` the sums pass through: without it LLVM splits the
    // last `addp` into `uzp1`, `uzp2` and an `add`, to fold the add that
    // follows into it (two more instructions for every four channels).
    // SAFETY: the template is empty: no instruction, `sums` unchanged.
    unsafe { std::arch::asm!("/* {0:v} */", inout(vreg) sums, options(pure, nomem, nostack, preserves_flags)) };
    sums
}

/// `logits[i] +=` classes 4i..4i + 4 of eight channels' class weights
/// (`[channel][class]`, 12 classes: 96 values, 12 registers) × their
/// means, lane l of `m` channel l's. Half j of the registers (the low of
/// register j / 2 for an even j) holds channel j / 3's classes
/// 4·(j % 3)..+4.
#[inline]
#[target_feature(enable = "neon")]
fn classes12(logits: &mut [int32x4_t; CLASSES / 4], weights: &[i16], m: int16x8_t) {
    require!(weights.len() == 96);
    let at = weights.as_ptr();
    // SAFETY: the 96 values, 32 a load.
    let w = unsafe { [vld1q_s16_x4(at), vld1q_s16_x4(at.add(32)), vld1q_s16_x4(at.add(64))] };
    let w = [w[0].0, w[0].1, w[0].2, w[0].3, w[1].0, w[1].1, w[1].2, w[1].3, w[2].0, w[2].1, w[2].2, w[2].3];
    // (register, its low half's channel and logits, its high half's).
    macro_rules! halves {
        ($(($r:literal, $lo:literal, $lo_q:literal, $hi:literal, $hi_q:literal))*) => {$(
            logits[$lo_q] = vmlal_laneq_s16::<$lo>(logits[$lo_q], vget_low_s16(w[$r]), m);
            logits[$hi_q] = vmlal_high_laneq_s16::<$hi>(logits[$hi_q], w[$r], m);
        )*};
    }
    halves! {
        (0, 0, 0, 0, 1) (1, 0, 2, 1, 0) (2, 1, 1, 1, 2) (3, 2, 0, 2, 1) (4, 2, 2, 3, 0) (5, 3, 1, 3, 2)
        (6, 4, 0, 4, 1) (7, 4, 2, 5, 0) (8, 5, 1, 5, 2) (9, 6, 0, 6, 1) (10, 6, 2, 7, 0) (11, 7, 1, 7, 2)
    }
}

/// `classes12` for 16 classes: channel l's in registers 2l and 2l + 1.
#[inline]
#[target_feature(enable = "neon")]
fn classes16(logits: &mut [int32x4_t; CLASSES / 4], weights: &[i16], m: int16x8_t) {
    require!(weights.len() == 128);
    let at = weights.as_ptr();
    // SAFETY: the 128 values, 32 a load.
    let w = unsafe { [at, at.add(32), at.add(64), at.add(96)].map(|at| vld1q_s16_x4(at)) };
    mac_lane::<0>(logits, &[w[0].0, w[0].1], m);
    mac_lane::<1>(logits, &[w[0].2, w[0].3], m);
    mac_lane::<2>(logits, &[w[1].0, w[1].1], m);
    mac_lane::<3>(logits, &[w[1].2, w[1].3], m);
    mac_lane::<4>(logits, &[w[2].0, w[2].1], m);
    mac_lane::<5>(logits, &[w[2].2, w[2].3], m);
    mac_lane::<6>(logits, &[w[3].0, w[3].1], m);
    mac_lane::<7>(logits, &[w[3].2, w[3].3], m);
}

/// Attention means and head logits from every head's probabilities
/// (`probs`, T per head): the logits summed over heads in i32 lanes,
/// classes 4i..4i + 4 in register i. Each head's sum is below 2^28 for
/// D ≤ 32 (docs/FIXED_POINT.md, step 6: at most √32·2047·(1 + 17/2^14)
/// ·(2^14 + 64) < 1.92·10^8), so eight heads' stay below 1.54·10^9 and
/// equal the scalar's i64.
#[inline]
#[target_feature(enable = "neon")]
fn attend(layout: &Layout, norm: &[Tokens; DIM], probs: &[i32]) -> [int32x4_t; CLASSES / 4] {
    let (t_count, per_head) = (PATCHES + 1, DIM * layout.head_classes);
    require!(probs.len() == layout.head_weight.len() / per_head * t_count);
    let mut logits = [vdupq_n_s32(0); CLASSES / 4];
    for (head, weights) in layout.head_weight.chunks_exact(per_head).enumerate() {
        let probs = &probs[head * t_count..][..t_count];
        // SAFETY: 16 lanes of `probs` past its first (asserted length).
        let p: Wide = std::array::from_fn(|i| unsafe { vld1q_s32(probs[1 + 4 * i..].as_ptr()) });
        // The probabilities (≤ 2^14) as i16, tokens 0-7 and 8-15.
        let p16 = [vmovn_high_s32(vmovn_s32(p[0]), p[1]), vmovn_high_s32(vmovn_s32(p[2]), p[3])];
        let cls = probs[0] as i16;
        // Channel c's Σ_t p_t · n_t[c] in four partial sums.
        let dot = |n: &Tokens| {
            let acc = vmlal_high_s16(vmull_s16(vget_low_s16(n[0]), vget_low_s16(p16[0])), n[0], p16[0]);
            vmlal_high_s16(vmlal_s16(acc, vget_low_s16(n[1]), vget_low_s16(p16[1])), n[1], p16[1])
        };
        // Channels 4g..4g+3 (past D, values no head weight reads).
        let mut mean = [vdup_n_s16(0); DIM / 4];
        // Two groups an iteration, unrolled (fewer instructions counting;
        // four spilled: +58 a digit).
        for (g2, m2) in mean.chunks_exact_mut(2).enumerate() {
            for (i, m) in m2.iter_mut().enumerate() {
                let g = 2 * g2 + i;
                let sums = reduce4(std::array::from_fn(|i| dot(&norm[4 * g + i])));
                // SAFETY: 4 of the 32 lanes of cls_norm.
                let cls_norm = unsafe { vld1_s16(layout.cls_norm[4 * g..].as_ptr()) };
                *m = vqrshrn_n_s32::<{ PROB_FRAC_BITS as i32 }>(vmlal_n_s16(sums, cls_norm, cls));
            }
        }
        // One i32 dot product per class (exact, below 2^30), the classes in
        // lanes: each channel's class weights × its mean, by lane, added
        // to the other heads' logits.
        for (chunk, weights) in weights.chunks_exact(8 * layout.head_classes).enumerate() {
            let m = vcombine_s16(mean[2 * chunk], mean[2 * chunk + 1]);
            if layout.head_classes == 12 {
                classes12(&mut logits, weights, m);
            } else {
                classes16(&mut logits, weights, m);
            }
        }
    }
    logits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::layout_check::check_last_logit_step;

    /// The last logit step against the scalar's (`check_last_logit_step`
    /// says what is checked). NEON is part of every aarch64 CPU.
    #[test]
    fn the_last_logit_step_matches_scalar_for_every_shift() {
        check_last_logit_step(|acc, shift, bias, fixed, float| {
            // SAFETY: loads of 4-lane slices of a 16-lane array.
            unsafe {
                let sums = std::array::from_fn(|q| vld1q_s32(acc[4 * q..].as_ptr()));
                finish_logits(sums, shift, bias, fixed, float);
            }
        });
    }
}

//! The int8 pass after the patch embedding, with the 16 patch tokens of the
//! shipped geometry (28 × 28 images of 7 × 7 patches) in the lanes of two
//! ymm registers, tokens 0-7 and 8-15: shared by the AVX2 and the AVX-VNNI
//! kernels, which differ only in how they embed the patches.
//!
//! - LayerNorm per lane from the channel pairs (z_2j, z_2j+1) as i16, in
//!   the order the embedding's `vpackssdw` leaves them (`packed_pair`):
//!   the embedding hands over each token's Σz² (`vpmaddwd` of a pair by
//!   itself, summed as it stores the pairs); the constants are
//!   `avx2::ln_constants8`'s, eight tokens a register, and the
//!   normalisation two ops per register (`vpmullw`, `vpmulhrsw`).
//! - Scores two heads at a time, in the same pass as the normalisation: each
//!   normalised pair is multiplied by both heads' weight pairs (stored
//!   repeated in 8 lanes, so they are memory operands) as soon as it exists,
//!   and stored once, for the means, with its two tokens' words swapped
//!   per channel (below). Softmax on the 16 lanes (`avx2::exp8`), its
//!   reciprocal in scalar.
//! - Attention means without a transpose: one `vpshufb` turns the tokens
//!   (2j, 2j+1) of a channel pair k from (n_2j[2k], n_2j[2k+1]),
//!   (n_2j+1[2k], n_2j+1[2k+1]) into (n_2j[2k], n_2j+1[2k]),
//!   (n_2j[2k+1], n_2j+1[2k+1]), so `vpmaddwd` by (p_2j, p_2j+1) gives both
//!   channels' sums over the two tokens (each qword, after both halves:
//!   token pairs (2j, 2j+1) and (8+2j, 9+2j)); a tree of unpacks and
//!   128-bit permutes then adds a register's four qwords, four channel
//!   pairs at a time, and the means' packs put the pairs in order.
//! - Logits as dot products of each class's weights with the packed means,
//!   summed over the heads in i32 lanes (no overflow for D ≤ 32, H ≤ 8)
//!   and reduced four classes at a time (`hsum4`); their last step
//!   (rounding shift, bias) in the same i32 lanes, stored masked to the
//!   model's classes.
//!
//! One instance serves both kernels (AVX2 code: `vpmaddwd` + `vpaddd`,
//! not AVX-VNNI's `vpdpwssd`): an instance compiled for AVX-VNNI, with its
//! multiply-adds fused, measured no faster (0.547 → 0.541 µs, within the
//! noise; the pass is bound by latency) and cost the libraries 9 KB. Every
//! i32 lane sum is a partial sum of a scalar i32 sum whose bound
//! docs/FIXED_POINT.md proves, and the bound holds for any subset of its
//! terms.

use alloc::vec::Vec;
use std::arch::x86_64::*;

use super::avx2::{self, exp8};
use super::{Params, Weights, LOGIT_FRAC_BITS, PROB_FRAC_BITS};
use crate::int8;
use crate::shape::Shape;

pub(super) use super::shipped::{
    fits, patch_dwords, patch_scale, quad_dwords, token_bias_and_blank, token_bias_by_channel, CLASSES, DIM, GROUPS,
    HEADS, ORIGIN, PATCH, PATCHES, SIDE,
};

/// Sixteen lanes as two registers: tokens (or classes) 0-7 and 8-15.
pub(super) type Lanes = [__m256i; 2];

/// Channel pairs a token has: the registers of `Lanes` per stage.
const PAIRS: usize = DIM / 2;

/// `acc + vpmaddwd(a, b)`.
#[inline]
#[target_feature(enable = "avx2")]
fn dot_add(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
}

/// `vpshufb`, as written: LLVM turns a constant word shuffle into
/// `vpshuflw` + `vpshufhw`, two instructions for one.
#[inline]
#[target_feature(enable = "avx2")]
fn shuffle_bytes(a: __m256i, indices: __m256i) -> __m256i {
    let out;
    // SAFETY: registers only; the caller's AVX2 (detected) makes it a
    // valid instruction.
    unsafe {
        std::arch::asm!(
            "vpshufb {out}, {a}, {indices}",
            out = lateout(ymm_reg) out,
            a = in(ymm_reg) a,
            indices = in(ymm_reg) indices,
            options(pure, nomem, nostack, preserves_flags),
        )
    };
    out
}

/// An unaligned load of eight lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn load8(lanes: &[i32; 8]) -> __m256i {
    // SAFETY: an unaligned load of an 8-lane array.
    unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) }
}

pub(super) fn pair(lo: i16, hi: i16) -> i32 {
    (lo as u16 as u32 | (hi as u16 as u32) << 16) as i32
}

/// Two i32 as one qword, `lo` in its low half: [`pair`] a size up, for a
/// `vpbroadcastq` that puts `lo` in the even lanes and `hi` in the odd.
fn qword(lo: i32, hi: i32) -> i64 {
    (lo as u32 as u64 | (hi as u32 as u64) << 32) as i64
}

/// The channel pair in dword k of registers of eight i32 lanes packed by
/// `vpackssdw`, which interleaves its sources' 128-bit halves: the order
/// of the embedded tokens' pairs (`quads::embed`). Its own inverse, so
/// means computed in this order come out of the same packs in order
/// (`attend`).
pub(super) fn packed_pair(k: usize) -> usize {
    8 * (k / 8) + [0, 1, 4, 5, 2, 3, 6, 7][k % 8]
}

/// The weights after the embedding, laid out for the tail.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    /// `[head pair][k][head of the pair]`: the score weights of channels
    /// (2j, 2j+1), j = `packed_pair(k)`, as an i16 pair repeated in 8
    /// lanes; an odd head count is completed by a head of zeros.
    score_weight: Vec<[[[i32; 8]; 2]; PAIRS]>,
    /// The CLS token's channels as (value, 1) pairs (the 1 for the means'
    /// rounding, `attend`), in `[r][lane]` channel
    /// 2·packed_pair(4r + lane / 2) + lane % 2: the order of the attention
    /// means before their packs.
    cls_norm: [[i32; 8]; 4],
    /// `[head pair][class][head of the pair][r][lane]`: the class's head
    /// weights of channel pair 8r + lane as an i16 pair, the order of the
    /// packed means; zero past the last class, and for the missing head of
    /// an odd count.
    head_weight: Vec<[[[[i32; 8]; 2]; 2]; CLASSES]>,
    /// The scalar parameters, the CLS token's scores and the head bias, as
    /// in the blob: with these an inference needs no tensor lookup.
    pub(super) params: Params,
    /// `[head pair]`: the CLS token's scores of the pair's heads, the first
    /// in the low half (the second's repeats the first past the last head
    /// of an odd count), for one `vpbroadcastq`.
    cls_score: Vec<i64>,
    head_bias: Vec<i32>,
}

impl Layout {
    /// For a model that [`fits`].
    pub(super) fn new(w: &Weights<'_>, shape: &Shape) -> Layout {
        let d = shape.dim as usize;
        let channel = |values: &[i16], o: usize| if o < d { values[o] } else { 0 };
        let scores = score_pairs(w, shape);
        let score_weight = scores
            .chunks(2)
            .map(|heads| {
                std::array::from_fn(|k| std::array::from_fn(|h| [heads.get(h).map_or(0, |g| g[packed_pair(k)]); 8]))
            })
            .collect();
        let heads = head_pairs(w, shape);
        let head_weight = heads
            .chunks(2)
            .map(|pair| {
                std::array::from_fn(|c| {
                    std::array::from_fn(|h| {
                        std::array::from_fn(|r| {
                            std::array::from_fn(|lane| pair.get(h).map_or(0, |rows| rows[8 * r + lane][c]))
                        })
                    })
                })
            })
            .collect();
        Layout {
            score_weight,
            cls_norm: std::array::from_fn(|r| {
                std::array::from_fn(|lane| pair(channel(w.cls_norm, 2 * packed_pair(4 * r + lane / 2) + lane % 2), 1))
            }),
            head_weight,
            params: w.params,
            cls_score: w.cls_score.chunks(2).map(|pair| qword(pair[0], pair[pair.len() - 1])).collect(),
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

/// The `vpshufb` that swaps the middle words of every qword: (a0, a1),
/// (b0, b1) ↔ (a0, b0), (a1, b1). Its own inverse.
#[inline]
#[target_feature(enable = "avx2")]
fn swap_words() -> __m256i {
    _mm256_setr_epi8(
        0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15, 0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15,
    )
}

/// The pass from the embedded tokens to the logits. The tokens are in
/// `s.avx2.lanes_buffer()`, as `quads::embed` writes them: register
/// (k, half) at `16·(2k + half)`, lane t of it the channel pair (z_2j,
/// z_2j+1), j = `packed_pair(k)`, of token 8·half + t, each already
/// saturated by `int8::saturate_z`, zero for channels past D; `sum_sq`
/// their Σz², tokens 0-7 and 8-15 (the embedding sums them as it writes).
/// Writes `s.probs`, `s.logits_fixed` and `s.logits` as `int8::forward`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn tail(layout: &Layout, shape: &Shape, sum_sq: Lanes, s: &mut int8::Scratch) {
    let (heads, classes) = (shape.heads as usize, shape.classes as usize);
    let t_count = PATCHES + 1;
    // At least one head: the first head pair's pass writes the normalised pairs.
    require!(fits(shape) && heads > 0);
    require!(layout.score_weight.len() == heads.div_ceil(2) && layout.head_weight.len() == heads.div_ceil(2));
    require!(layout.cls_score.len() == heads.div_ceil(2) && layout.head_bias.len() == classes);
    let params = &layout.params;
    require!(s.probs.len() == heads * t_count && s.logits_fixed.len() == classes && s.logits.len() == classes);

    // The normalised pairs with their tokens' words swapped (`swap_words`),
    // written by the first head pair's pass over the embedded pairs (each
    // register read before it is replaced), read by the others and the
    // means: register (k, half) at `16·(2k + half)`. In the scratch, not on
    // the stack: LLVM copied stack arrays of 1 KB.
    let buffer = s.avx2.lanes_buffer();
    require!(buffer.len() >= 2 * PAIRS * 16);
    let at = buffer.as_mut_ptr();
    // SAFETY: 16 values from 16·(2k + half) < 32·PAIRS, inside the buffer
    // (asserted length); unaligned.
    let embedded = |k: usize, half: usize| unsafe { _mm256_loadu_si256(at.add(16 * (2 * k + half)).cast()) };
    // Both constants are in [0, 2^15): each in both i16 halves of its
    // token's lane, for the pairs.
    let both_halves = |v: __m256i| _mm256_or_si256(v, _mm256_slli_epi32::<16>(v));
    let ln = sum_sq.map(|sum_sq| avx2::ln_constants8(sum_sq, params.ln_eps).map(both_halves));
    let score_round = _mm256_set1_epi32(((1i64 << params.score_shift) >> 1) as i32);
    let score_shift = _mm_cvtsi32_si128(params.score_shift as i32);
    let swap = swap_words();
    // Each head pair's probabilities: two heads' T, one for the last pair
    // of an odd count.
    let pair_probs = s.probs.chunks_mut(2 * t_count);
    for (pair_index, ((weights, &cls_score), probs)) in
        layout.score_weight.iter().zip(&layout.cls_score).zip(pair_probs).enumerate()
    {
        // The rounding offset of the score shift first: i32 sums wrap the
        // same in any order.
        let mut acc = [[score_round; 2]; 2];
        // Four pairs an iteration, unrolled: a loop of sixteen spent a
        // fifth of its instructions counting.
        for (k4, w4) in weights.chunks_exact(4).enumerate() {
            for (j, w) in w4.iter().enumerate() {
                let k = 4 * k4 + j;
                for half in 0..2 {
                    // SAFETY: 16 values from 16·(2k + half) < 32·PAIRS,
                    // inside the buffer (asserted length); unaligned.
                    let slot = unsafe { at.add(16 * (2 * k + half)).cast::<__m256i>() };
                    let n = if pair_index == 0 {
                        let [scale, y] = ln[half];
                        // |z|·2^a < 2^15: exact in i16 (docs/FIXED_POINT.md).
                        let n = _mm256_mulhrs_epi16(_mm256_mullo_epi16(embedded(k, half), scale), y);
                        // SAFETY: as above.
                        unsafe { _mm256_storeu_si256(slot, shuffle_bytes(n, swap)) };
                        n
                    } else {
                        // SAFETY: as above; written by the first pass.
                        shuffle_bytes(unsafe { _mm256_loadu_si256(slot) }, swap)
                    };
                    for (a, w) in acc.iter_mut().zip(w) {
                        a[half] = dot_add(a[half], n, load8(w));
                    }
                }
            }
        }
        let scores = acc.map(|acc| acc.map(|a| _mm256_sra_epi32(a, score_shift)));
        softmax2(cls_score, scores, probs);
    }
    // The first pass (score_weight has at least one head pair: a model
    // has at least one head) wrote every register.
    let sums = attend(layout, &s.avx2.lanes_buffer()[..2 * PAIRS * 16], &s.probs, heads, classes);
    finish_logits(sums, params.head_shift, &layout.head_bias, &mut s.logits_fixed, &mut s.logits);
}

/// `int8::finish_logits_with` on the head sums of four classes a register.
/// Each sum is the scalar's i64 and below 1.54·10^9 (`attend`), so the
/// rounding shift runs in i32 lanes, as `(x >> s) + ((x >> (s - 1)) & 1)`
/// (round half up; `vpsrad` fills with the sign past 31, which keeps it
/// exact for every s up to 48), and the bias (|b| ≤ 2^29) adds without
/// reaching the scalar's clamp (1.54·10^9 + 2^29 < 2^31).
#[inline]
#[target_feature(enable = "avx2")]
fn finish_logits(
    sums: [__m128i; CLASSES / 4],
    head_shift: u32,
    head_bias: &[i32],
    fixed: &mut [i32],
    float: &mut [f32],
) {
    let classes = head_bias.len();
    require!(classes <= CLASSES && fixed.len() == classes && float.len() == classes);
    let shift = _mm_cvtsi32_si128(head_shift as i32);
    let (below, round_bit) = match head_shift {
        0 => (_mm_setzero_si128(), _mm_setzero_si128()),
        _ => (_mm_cvtsi32_si128(head_shift as i32 - 1), _mm_set1_epi32(1)),
    };
    let scale = _mm_set1_ps(1.0 / (1u32 << LOGIT_FRAC_BITS) as f32);
    let count = _mm_set1_epi32(classes as i32);
    for (q, &sum) in sums.iter().enumerate() {
        if 4 * q >= classes {
            break;
        }
        // The lanes of classes that exist: 4q + lane < classes.
        let lanes = _mm_setr_epi32(4 * q as i32, 4 * q as i32 + 1, 4 * q as i32 + 2, 4 * q as i32 + 3);
        let mask = _mm_cmpgt_epi32(count, lanes);
        let rounded = _mm_add_epi32(_mm_sra_epi32(sum, shift), _mm_and_si128(_mm_sra_epi32(sum, below), round_bit));
        // SAFETY: the masked lanes, 4q + lane < classes, are inside the
        // bias and both logit slices (asserted lengths); the others are
        // neither read nor written.
        unsafe {
            let logit = _mm_add_epi32(_mm_maskload_epi32(head_bias.as_ptr().add(4 * q), mask), rounded);
            _mm_maskstore_epi32(fixed.as_mut_ptr().add(4 * q), mask, logit);
            // ×2^-16 is exact: the scalar's division by 2^16.
            _mm_maskstore_ps(float.as_mut_ptr().add(4 * q), mask, _mm_mul_ps(_mm_cvtepi32_ps(logit), scale));
        }
    }
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

/// Lanes 0 and 1 of the result: `op` over the 8 lanes of `a`, of `b`
/// (an associative, commutative lane-wise `op`: max, add).
#[inline]
#[target_feature(enable = "avx2")]
fn reduce_two(a: __m256i, b: __m256i, op: impl Fn(__m256i, __m256i) -> __m256i) -> __m256i {
    // [a0 b0 a1 b1 | a4 b4 a5 b5] op [a2 b2 a3 b3 | a6 b6 a7 b7], then the
    // qwords of each 128-bit half, then the halves.
    let v = op(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    let v = op(v, _mm256_shuffle_epi32::<0b01_00_11_10>(v));
    op(v, _mm256_permute2x128_si256::<0x01>(v, v))
}

/// `int8::softmax` of one or two heads (`out` holds one or two heads' T
/// probabilities; a missing second head's scores are computed and
/// dropped), each of the CLS score (`cls_score`: the first head's in the
/// low half, the second's in the high) and 16 patch scores (two
/// registers): the two maxima and the two sums from one reduction each,
/// the two CLS exponentials and probabilities in lanes 0 and 1 of one
/// register.
#[inline]
#[target_feature(enable = "avx2")]
fn softmax2(cls_score: i64, scores: [Lanes; 2], out: &mut [i32]) {
    let t = 1 + PATCHES;
    require!(out.len() == t || out.len() == 2 * t);
    // Even lanes the first head's, odd lanes the second's: one broadcast
    // of the pair (valgrind 3.19 cannot run the `vmovq` LLVM makes of a
    // `setr` with zeros).
    let cls = _mm256_set1_epi64x(cls_score);
    let m = scores.map(|s| _mm256_max_epi32(s[0], s[1]));
    // Lane h < 2: head h's maximum (the others: at least their CLS lane's).
    let max = _mm256_max_epi32(reduce_two(m[0], m[1], |a, b| _mm256_max_epi32(a, b)), cls);
    let lane = |v: __m256i, h: i32| _mm256_permutevar8x32_epi32(v, _mm256_set1_epi32(h));
    let e: [Lanes; 2] = std::array::from_fn(|h| {
        let max = lane(max, h as i32);
        scores[h].map(|v| exp8(_mm256_sub_epi32(v, max)))
    });
    let cls = exp8(_mm256_sub_epi32(cls, max));
    // Σe ≤ 17 · 2^22: i32.
    let sums = reduce_two(_mm256_add_epi32(e[0][0], e[0][1]), _mm256_add_epi32(e[1][0], e[1][1]), |a, b| {
        _mm256_add_epi32(a, b)
    });
    let sums = _mm256_add_epi32(sums, cls);
    let recip = [_mm256_cvtsi256_si32(sums), _mm256_extract_epi32::<1>(sums)].map(|s| int8::softmax_recip(s as u32));
    // (recip_0, recip_1) in every qword, like `cls`.
    let recips = _mm256_set1_epi64x(qword(recip[0] as i32, recip[1] as i32));
    let cls = avx2::prob8(cls, recips);
    let cls = [_mm256_cvtsi256_si32(cls), _mm256_extract_epi32::<1>(cls)];
    let recips = [_mm256_shuffle_epi32::<0b00_00_00_00>(recips), _mm256_shuffle_epi32::<0b01_01_01_01>(recips)];
    let write = |out: &mut [i32], h: usize| {
        let out = &mut out[..t];
        out[0] = cls[h];
        // SAFETY: 16 lanes of the head's T past its first.
        unsafe {
            _mm256_storeu_si256(out[1..].as_mut_ptr().cast(), avx2::prob8(e[h][0], recips[h]));
            _mm256_storeu_si256(out[9..].as_mut_ptr().cast(), avx2::prob8(e[h][1], recips[h]));
        }
    };
    let (first, second) = out.split_at_mut(t);
    write(first, 0);
    if !second.is_empty() {
        write(second, 1);
    }
}

/// Attention means and head logits from the swapped normalised pairs and
/// every head's probabilities (`probs`, T per head): the logits' sums over
/// the heads, classes 4i..4i + 4 in register i (zero past the last class).
///
/// Each class's logit is a dot product of its weight rows with the packed
/// means, both heads of a pair summed in its i32 lanes, then the lanes of
/// four classes reduced at once (`hsum4`) and summed over the head pairs
/// in i32: each head's sum is below 2^28 for D ≤ 32
/// (docs/FIXED_POINT.md, step 6, for any subset of its terms: at most
/// √32·2047 · (1 + 17/2^14)·(2^14 + 64) < 1.92·10^8), so eight heads'
/// stay below 1.54·10^9 and equal the scalar's i64.
#[inline]
#[target_feature(enable = "avx2")]
fn attend(layout: &Layout, swapped: &[i16], probs: &[i32], heads: usize, classes: usize) -> [__m128i; CLASSES / 4] {
    let t_count = PATCHES + 1;
    require!(probs.len() == heads * t_count && swapped.len() == 2 * PAIRS * 16);
    require!(layout.head_weight.len() == heads.div_ceil(2) && classes <= CLASSES);
    let swapped = |k: usize, half: usize| {
        let register = &swapped[16 * (2 * k + half)..][..16];
        // SAFETY: an unaligned load of the 16 values of the slice.
        unsafe { _mm256_loadu_si256(register.as_ptr().cast()) }
    };
    // The packed means of channel pairs 8r..8r + 8 in register r.
    let means = |head: usize| -> [__m256i; 2] {
        let probs = &probs[head * t_count..][..t_count];
        // The patches' probabilities (≤ 2^14) as i16 pairs: packs leaves
        // dwords (p_2j, p_2j+1) in the order j = 0 1 4 5 | 2 3 6 7, and the
        // unpacks repeat each in a qword, tokens 0-7 in `p[0]`, 8-15 in `p[1]`:
        // the order of the swapped pairs' qwords.
        // SAFETY: 16 lanes of `probs` past its first (asserted length).
        let packed = unsafe {
            let at = probs.as_ptr().add(1);
            _mm256_packs_epi32(_mm256_loadu_si256(at.cast()), _mm256_loadu_si256(at.add(8).cast()))
        };
        let p = [_mm256_unpacklo_epi32(packed, packed), _mm256_unpackhi_epi32(packed, packed)];
        // Qword j of sums[k]: channels (2i, 2i+1), i = packed_pair(k), over
        // tokens 2j, 2j+1 and 8 + 2j, 8 + 2j + 1.
        let sums: [__m256i; PAIRS] =
            std::array::from_fn(|k| dot_add(_mm256_madd_epi16(swapped(k, 0), p[0]), swapped(k, 1), p[1]));
        // (p_CLS, 2^13) by `cls_norm`'s (n_CLS, 1) pairs: the CLS token's
        // product and the rounding offset of the shift by 14 in one
        // multiply-add (p_CLS ≤ 2^14 is a positive i16).
        let cls = _mm256_set1_epi32(pair(probs[0] as i16, 1 << (PROB_FRAC_BITS - 1)));
        std::array::from_fn(|r| {
            // Pairs packed_pair(8r + 4i..8r + 4i + 4), each pair's channels
            // in order.
            let m: [__m256i; 2] = std::array::from_fn(|i| {
                let k = 8 * r + 4 * i;
                let add_qwords =
                    |a: __m256i, b: __m256i| _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
                let (a, b) = (add_qwords(sums[k], sums[k + 1]), add_qwords(sums[k + 2], sums[k + 3]));
                let total =
                    _mm256_add_epi32(_mm256_permute2x128_si256::<0x20>(a, b), _mm256_permute2x128_si256::<0x31>(a, b));
                let total = dot_add(total, load8(&layout.cls_norm[2 * r + i]), cls);
                _mm256_srai_epi32::<{ PROB_FRAC_BITS as i32 }>(total)
            });
            // packs saturates like saturate_i16, and interleaves halves:
            // its dword s holds pair packed_pair(packed_pair(8r + s)) = 8r + s.
            _mm256_packs_epi32(m[0], m[1])
        })
    };
    // Classes 4q..4q + 4 in sums[q]; classes past the last have zero
    // weights, so a group is computed whole.
    let mut sums = [_mm_setzero_si128(); CLASSES / 4];
    for (pair, weights) in layout.head_weight.iter().enumerate() {
        // The pair's heads (a missing second one: zero means, zero weights).
        // A loop, not two calls: LLVM would not inline the closure twice.
        let mut mean = [[_mm256_setzero_si256(); 2]; 2];
        for (h, mean) in mean.iter_mut().enumerate() {
            if 2 * pair + h < heads {
                *mean = means(2 * pair + h);
            }
        }
        // Unrolled over the four class groups, so the sums stay in
        // registers; a group past the last class is skipped whole.
        for (q, sum) in sums.iter_mut().enumerate() {
            if 4 * q >= classes {
                break;
            }
            let dots: [__m256i; 4] = std::array::from_fn(|i| {
                let w = &weights[4 * q + i];
                let dot =
                    |h: usize| dot_add(_mm256_madd_epi16(mean[h][0], load8(&w[h][0])), mean[h][1], load8(&w[h][1]));
                _mm256_add_epi32(dot(0), dot(1))
            });
            *sum = _mm_add_epi32(*sum, hsum4(dots));
        }
    }
    sums
}

/// The four lane sums of `v`, in order.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum4(v: [__m256i; 4]) -> __m128i {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::layout_check::check_last_logit_step;
    use crate::simd::x86::Avx2;

    /// The last logit step against the scalar's, where the CPU has AVX2
    /// (`check_last_logit_step` says what is checked).
    #[test]
    fn the_last_logit_step_matches_scalar_for_every_shift() {
        let Some(_cpu) = Avx2::detect() else {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        };
        check_last_logit_step(|acc, shift, bias, fixed, float| {
            let classes = fixed.len();
            // SAFETY: unaligned loads of a 16-lane array; AVX2 was detected
            // above.
            unsafe {
                let sums = std::array::from_fn(|q| _mm_loadu_si128(acc[4 * q..].as_ptr().cast()));
                finish_logits(sums, shift, &bias[..classes], fixed, float);
            }
        });
    }
}

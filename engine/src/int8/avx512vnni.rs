//! The int8 pass on AVX-512 with VNNI: exactly the integers of
//! `crate::int8`, with the sixteen patch tokens of a 28 × 28 digit in the
//! sixteen lanes of a register from the first multiply to the softmax.
//!
//! - **Patch embedding**, dense: a patch row of 7 pixels is two dwords of 4
//!   (the 8th pixel's weight is zero), so a patch is 14 dwords. For each
//!   dword position, one `vpermt2b` gathers it from the 4 image rows the 16
//!   patches read (lane = patch), and `vpdpbusd` multiplies the 4 u8 pixels
//!   by a channel's 4 i8 weights, broadcast: `u8 × i8` is exactly what it
//!   computes, and the i32 sum is the scalar's. 14 × 32 of them make the
//!   32 channels of all 16 tokens, one register per channel.
//! - **LayerNorm** of the 16 tokens at once, lane-wise: each lane made a
//!   channel pair (z_2k, z_2k+1) of its token, Σz² by `vpdpwssd`; the
//!   constants in i64 lanes, where a multiply on their long chain takes
//!   5 cycles (`vpmuldq`) instead of 10 (`vpmulld`); then two ops per
//!   register of pairs (`vpmullw`, `vpmulhrsw`).
//! - **Scores**: `vpdpwssd` of the channel pairs with the head's score
//!   weights, broadcast. **Softmax** on the 16 lanes: the fixed-point `exp2`
//!   (its 8-entry tables by `vpermd`), the one u32 division in scalar.
//! - **Attention mean**: the channel pairs transposed once (a 16 × 16 dword
//!   transpose, shared by the heads) into tokens of 32 channels, token pairs
//!   interleaved, so `vpdpwssd` adds (p_t, p_t+1) · (n_t, n_t+1) for 16
//!   channels at a time; `vpackssdw` brings them back in channel order.
//! - **Logits**: classes in lanes, `vpdpwssd` of the head weights' channel
//!   pairs with the mean's, broadcast; summed over heads in i64.
//!
//! Only the shipped geometry: 28 × 28 images of 7 × 7 patches, at most 32
//! channels and 16 classes ([`Kernel::new`] says `None` otherwise, and the
//! model looks for its kernel in the next backend). Every i32 sum is the
//! scalar's, or a partial sum of it, and docs/FIXED_POINT.md bounds those.

use alloc::vec::Vec;
use std::arch::x86_64::*;

// The geometry is `lanes::fits`'s: its 16 patches and 16 classes fill the
// lanes of a zmm.
use super::lanes::{self, pair, CLASSES, DIM, GROUPS, HEADS, PATCH, PATCHES, SIDE};
use super::{Params, Weights, PROB_FRAC_BITS};
use crate::int8;
use crate::shape::Shape;
use crate::simd::x86::Avx512Vnni;

/// The int8 weights laid out for this kernel.
#[derive(Clone, Debug)]
struct Layout {
    /// `[channel][group]`: the 4 i8 weights of a dword of pixels, as one
    /// i32 to broadcast (zero for the 8th pixel of a row, and for padding
    /// channels).
    patch_weight: [[i32; GROUPS]; DIM],
    scale: [i32; DIM],
    /// `[channel][patch]`: the token bias transposed, with the rounding
    /// offset of `z_shift` folded in (the loader bounds the sum by i32::MAX).
    bias: [[i32; PATCHES]; DIM],
    /// `[head][pair]`: score weights of channels (2k, 2k+1) as an i16 pair.
    score_weight: Vec<[i32; DIM / 2]>,
    /// The CLS token's normalised channels as (value, 0) pairs, in the
    /// attention mean's two lane orders: lane 4L+i is channel 8L+i (`lo`),
    /// channel 8L+4+i (`hi`).
    cls_norm_lo: [i32; 16],
    cls_norm_hi: [i32; 16],
    /// `[head][pair][class]`: head weights of channels (2k, 2k+1) as an i16
    /// pair, zero past the last class.
    head_weight: Vec<[[i32; CLASSES]; DIM / 2]>,
    head_bias: [i32; CLASSES],
    /// The scalar parameters and the CLS token's scores, as in the blob:
    /// with these an inference needs no tensor lookup.
    params: Params,
    cls_score: [i32; HEADS],
}

impl Layout {
    fn new(w: &Weights<'_>, shape: &Shape) -> Layout {
        let (d, heads, classes) = (shape.dim as usize, shape.heads as usize, shape.classes as usize);
        let channel = |values: &[i16], o: usize| if o < d { values[o] } else { 0 };
        let cls_norm_lo = std::array::from_fn(|lane| pair(channel(w.cls_norm, 8 * (lane / 4) + lane % 4), 0));
        let cls_norm_hi = std::array::from_fn(|lane| pair(channel(w.cls_norm, 8 * (lane / 4) + 4 + lane % 4), 0));
        let mut head_bias = [0; CLASSES];
        head_bias[..classes].copy_from_slice(w.head_bias);
        let mut cls_score = [0; HEADS];
        cls_score[..heads].copy_from_slice(w.cls_score);
        Layout {
            patch_weight: lanes::patch_dwords(w, shape),
            scale: lanes::patch_scale(w, shape),
            bias: lanes::token_bias_by_channel(w, shape),
            score_weight: lanes::score_pairs(w, shape),
            cls_norm_lo,
            cls_norm_hi,
            head_weight: lanes::head_pairs(w, shape),
            head_bias,
            params: w.params,
            cls_score,
        }
    }
}

/// The AVX-512 VNNI int8 kernel of one model: the CPU's token and the
/// weights laid out for it.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    cpu: Avx512Vnni,
    layout: Layout,
}

impl Kernel {
    /// `None` when this CPU lacks AVX-512 VNNI (with F, BW, CD, DQ, VL and
    /// VBMI), or the model is not of the geometry this kernel takes.
    pub(crate) fn new(w: &Weights<'_>, shape: &Shape) -> Option<Kernel> {
        if !lanes::fits(shape) {
            return None;
        }
        let cpu = Avx512Vnni::detect()?;
        Some(Kernel { cpu, layout: Layout::new(w, shape) })
    }

    pub(crate) fn forward(&self, shape: &Shape, image: &[u8], s: &mut int8::Scratch) {
        // SAFETY: `self.cpu` exists only if the features were detected.
        unsafe { forward(self.cpu, &self.layout, shape, image, s) }
    }
}

/// The entry point: the whole pass.
///
/// # Safety
/// The CPU must have the features `_cpu` proves.
#[target_feature(enable = "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx512vnni,avx512vbmi")]
unsafe fn forward(_cpu: Avx512Vnni, layout: &Layout, shape: &Shape, image: &[u8], s: &mut int8::Scratch) {
    let (d, heads, classes) = (shape.dim as usize, shape.heads as usize, shape.classes as usize);
    let t_count = PATCHES + 1;
    // What the unchecked accesses rely on: the image and the outputs are
    // this shape's, the layout was built for it.
    require!(image.len() == SIDE * SIDE && d <= DIM && classes <= CLASSES && heads <= HEADS);
    require!(layout.score_weight.len() == heads && layout.head_weight.len() == heads);
    require!(s.probs.len() == heads * t_count && s.logits_fixed.len() == classes && s.logits.len() == classes);

    let w = &layout.params;
    let z = embed(layout, image, w.z_shift, int8::z_limit(shape.dim));
    let pairs = layer_norm(&z, w.ln_eps);

    let tokens = transpose_pairs(&pairs);
    let score_round = _mm512_set1_epi32(((1i64 << w.score_shift) >> 1) as i32);
    let score_shift = _mm_cvtsi32_si128(w.score_shift as i32);
    // Every head's scores and softmax first: independent chains (a
    // reduction, gathers, a division) that overlap.
    let mut probs = [(0, _mm512_setzero_si512()); HEADS];
    for (head, probs) in probs.iter_mut().enumerate().take(heads) {
        let g = &layout.score_weight[head];
        let mut acc = [_mm512_setzero_si512(); 4];
        for (k, &pair) in pairs.iter().enumerate() {
            acc[k % 4] = _mm512_dpwssd_epi32(acc[k % 4], pair, _mm512_set1_epi32(g[k]));
        }
        let acc = _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
        let scores = _mm512_sra_epi32(_mm512_add_epi32(acc, score_round), score_shift);
        *probs = softmax(layout.cls_score[head], scores, &mut s.probs[head * t_count..][..t_count]);
    }
    let logits = attend(layout, &tokens, &probs[..heads]);
    finish_logits(layout, w.head_shift, &logits, classes, s);
}

/// Patch embedding: `saturate_z(round_shift(acc · scale + bias, z_shift), D)`
/// (`limit` is `int8::z_limit(D)`)
/// for every channel of every patch, channel by channel with the patches
/// in lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
fn embed(layout: &Layout, image: &[u8], z_shift: u32, limit: i32) -> [__m512i; DIM] {
    require!(image.len() == SIDE * SIDE);
    // Byte b of group (y, h) is lane b/4 = patch (r, c), pixel (y, 4h + b%4)
    // of it: row r·7 + y of the image, column 7c + 4h + b%4. `rows` below
    // holds, for one y, 32 bytes of the row of each patch row r: r = 0, 1 in
    // the first table, 2, 3 in the second.
    let index = |h: usize| -> __m512i {
        let bytes = gather_index(h);
        // SAFETY: an unaligned load of a 64-byte array.
        unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
    };
    let (index0, index1) = (index(0), index(1));
    let row = |r: usize| -> __m256i {
        let at = image.as_ptr().wrapping_add(r * SIDE);
        if r + 1 < SIDE {
            // SAFETY: 32 bytes from row r < 27 end by 27·28 + 32 ≤ 784.
            unsafe { _mm256_loadu_si256(at.cast()) }
        } else {
            // SAFETY: the last row's 28 bytes, the rest masked off (a
            // masked load does not touch masked bytes).
            unsafe { _mm256_maskz_loadu_epi8(0x0fff_ffff, at.cast()) }
        }
    };
    let mut groups = [_mm512_setzero_si512(); GROUPS];
    for y in 0..PATCH {
        let first = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(row(y)), row(PATCH + y));
        let second = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(row(2 * PATCH + y)), row(3 * PATCH + y));
        groups[2 * y] = _mm512_permutex2var_epi8(first, index0, second);
        groups[2 * y + 1] = _mm512_permutex2var_epi8(first, index1, second);
    }
    let shift = _mm_cvtsi32_si128(z_shift as i32);
    let (floor, ceiling) = (_mm512_set1_epi32(-limit), _mm512_set1_epi32(limit));
    // Sixteen channels at a time: sixteen independent accumulation chains
    // keep both vpdpbusd ports busy (5 cycles latency, two a cycle).
    let blocks: [[__m512i; 16]; DIM / 16] = std::array::from_fn(|block| {
        let o0 = 16 * block;
        let mut acc = [_mm512_setzero_si512(); 16];
        for (g, &pixels) in groups.iter().enumerate() {
            for (i, a) in acc.iter_mut().enumerate() {
                *a = _mm512_dpbusd_epi32(*a, pixels, _mm512_set1_epi32(layout.patch_weight[o0 + i][g]));
            }
        }
        std::array::from_fn(|i| {
            let o = o0 + i;
            // SAFETY: an unaligned load of a 16-lane array.
            let bias = unsafe { _mm512_loadu_si512(layout.bias[o].as_ptr().cast()) };
            let scaled = _mm512_mullo_epi32(acc[i], _mm512_set1_epi32(layout.scale[o]));
            let v = _mm512_sra_epi32(_mm512_add_epi32(scaled, bias), shift);
            _mm512_min_epi32(_mm512_max_epi32(v, floor), ceiling)
        })
    });
    std::array::from_fn(|o| blocks[o / 16][o % 16])
}

/// The `vpermt2b` indices of pixel group (y, h): byte b (lane b/4 = patch
/// (r, c), its pixel (y, 4h + b%4)) is byte 7c + 4h + b%4 of row r's 32,
/// rows 0 and 1 in the first table (bit 6 clear), 2 and 3 in the second.
fn gather_index(h: usize) -> [u8; 64] {
    std::array::from_fn(|b| {
        let (patch, j) = (b / 4, b % 4);
        let (r, c) = (patch / 4, patch % 4);
        ((r / 2) * 64 + (r % 2) * 32 + 7 * c + 4 * h + j) as u8
    })
}

/// `int8::layer_norm` of the 16 tokens, lane-wise, from the channels `z`;
/// returns the normalised channel pairs: lane t of `pairs[k]` is
/// (n_2k, n_2k+1) of token t, as two i16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx512vnni")]
fn layer_norm(z: &[__m512i; DIM], ln_eps: i32) -> [__m512i; DIM / 2] {
    // Each lane a channel pair (z_2k, z_2k+1) of its token, as two i16.
    let pairs: [__m512i; DIM / 2] =
        std::array::from_fn(|k| _mm512_mask_blend_epi16(0xaaaa_aaaa, z[2 * k], _mm512_slli_epi32::<16>(z[2 * k + 1])));
    // Σz² in four partial sums (short dependency chains), one `vpdpwssd` a
    // pair register: `vpmaddwd` and the add in one.
    let mut sum_sq = [_mm512_setzero_si512(); 4];
    for (k, &ab) in pairs.iter().enumerate() {
        sum_sq[k % 4] = _mm512_dpwssd_epi32(sum_sq[k % 4], ab, ab);
    }
    let total = |v: [__m512i; 4]| _mm512_add_epi32(_mm512_add_epi32(v[0], v[1]), _mm512_add_epi32(v[2], v[3]));
    let [scale, y] = ln_constants16(total(sum_sq), ln_eps);
    // |z|·2^a < 2^15: exact in i16 (docs/FIXED_POINT.md).
    pairs.map(|ab| _mm512_mulhrs_epi16(_mm512_mullo_epi16(ab, scale), y))
}

/// `int8::ln_constants` of 16 tokens from their Σz² (lane t, i32):
/// `(2^a, Y)`, each in both i16 halves of its token's lane.
///
/// A chain of ten multiplies, so it runs in i64 lanes (tokens 0-7, 8-15):
/// `vpmuldq` takes 5 cycles where `vpmulld` takes 10, and its i64 product
/// is the scalar's i32 one, which never overflows (docs/FIXED_POINT.md).
#[inline]
#[target_feature(enable = "avx512f,avx512cd,avx512dq")]
fn ln_constants16(sum_sq: __m512i, eps: i32) -> [__m512i; 2] {
    let c = _mm512_set1_epi64;
    let widen = |v: __m512i| {
        [_mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)), _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(v))]
    };
    let sum_sq = widen(sum_sq);
    let halves: [[__m512i; 2]; 2] = std::array::from_fn(|h| {
        let u = _mm512_max_epi64(_mm512_add_epi64(sum_sq[h], c(eps as i64)), c(1));
        // k = floor(log2 U) / 2, U in [1, 2^31).
        let k = _mm512_srli_epi64::<1>(_mm512_sub_epi64(c(63), _mm512_lzcnt_epi64(u)));
        // M = U·4^(7-k) in [2^14, 2^16): a shift by a (wrapped, huge)
        // negative count gives 0, so the OR picks the right direction.
        let two_k = _mm512_add_epi64(k, k);
        let mm = _mm512_or_si512(
            _mm512_sllv_epi64(u, _mm512_sub_epi64(c(14), two_k)),
            _mm512_srlv_epi64(u, _mm512_sub_epi64(two_k, c(14))),
        );
        let y = rsq8(mm);
        // k ≤ 14: (2^(14-k), y); k = 15: (1, (y + 1) >> 1).
        let over = _mm512_max_epi64(_mm512_sub_epi64(k, c(14)), _mm512_setzero_si512());
        let scale = _mm512_sllv_epi64(c(1), _mm512_max_epi64(_mm512_sub_epi64(c(14), k), _mm512_setzero_si512()));
        [scale, _mm512_srav_epi64(_mm512_add_epi64(y, over), over)]
    });
    // Back to 16 i32 lanes, each value in both i16 halves of its lane (both
    // are in [0, 2^15): their high halves are zero).
    std::array::from_fn(|j| {
        let both = |v: __m512i| _mm512_or_si512(v, _mm512_slli_epi64::<16>(v));
        let [lo, hi] = [0, 1].map(|h| _mm512_cvtepi64_epi32(both(halves[h][j])));
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
    })
}

/// `int8::rsq` on 8 i64 lanes (`m` in [2^14, 2^16)): every product is
/// below 2^31, so `vpmuldq` of the low halves is exact.
#[inline]
#[target_feature(enable = "avx512f")]
fn rsq8(m: __m512i) -> __m512i {
    let c = _mm512_set1_epi64;
    let inner = _mm512_add_epi64(c(-12837), _mm512_srai_epi64::<14>(_mm512_mul_epi32(m, c(1535))));
    let mut y = _mm512_add_epi64(c(43195), _mm512_srai_epi64::<14>(_mm512_mul_epi32(m, inner)));
    for _ in 0..2 {
        let t = _mm512_srai_epi64::<14>(_mm512_mul_epi32(y, y));
        let w = _mm512_srai_epi64::<14>(_mm512_mul_epi32(t, m));
        y = _mm512_add_epi64(y, _mm512_srai_epi64::<17>(_mm512_mul_epi32(y, _mm512_sub_epi64(c(65536), w))));
    }
    _mm512_min_epi64(y, c(32767))
}

/// The lane indices of step `b` of [`transpose_pairs`] for `vpermt2d`:
/// the register with bit `b` clear keeps its lanes with bit `b` clear and
/// takes its partner's lanes `j - b` for the others (`high == false`); the
/// partner keeps its lanes with bit `b` set and takes lanes `j + b` for the
/// others (`high`). Indices 16 and up name the second table, the partner.
const fn butterfly(b: usize, high: bool) -> [i32; 16] {
    let mut out = [0i32; 16];
    let mut j = 0;
    while j < 16 {
        out[j] = match (j & b == 0, high) {
            (true, false) => j as i32,
            (false, false) => (16 + j - b) as i32,
            (true, true) => (j + b) as i32,
            (false, true) => (16 + j) as i32,
        };
        j += 1;
    }
    out
}

const BUTTERFLIES: [[[i32; 16]; 2]; 4] = [
    [butterfly(8, false), butterfly(8, true)],
    [butterfly(4, false), butterfly(4, true)],
    [butterfly(2, false), butterfly(2, true)],
    [butterfly(1, false), butterfly(1, true)],
];

/// One butterfly step of the transpose on registers `i` and `i + B`.
#[inline(always)]
fn butterfly_step<const B: usize>(v: &mut [__m512i; 16], low: __m512i, high: __m512i) {
    for i in 0..16 {
        if i & B == 0 {
            let (a, c) = (v[i], v[i + B]);
            // SAFETY: vpermt2d is AVX-512F, which every caller (a
            // `target_feature` function of this module) has enabled.
            unsafe {
                v[i] = _mm512_permutex2var_epi32(a, low, c);
                v[i + B] = _mm512_permutex2var_epi32(a, high, c);
            }
        }
    }
}

/// The 16 × 16 dword transpose of the channel pairs: lane k of the result's
/// register t is lane t of `pairs[k]`, so register t is token t's 32
/// channels in order, as i16. Four butterfly steps; step `b` swaps bit `b`
/// of the register index with bit `b` of the lane index.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose_pairs(pairs: &[__m512i; 16]) -> [__m512i; 16] {
    // SAFETY: unaligned loads of 16-lane arrays.
    let load = |lanes: &[i32; 16]| unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) };
    let mut v = *pairs;
    butterfly_step::<8>(&mut v, load(&BUTTERFLIES[0][0]), load(&BUTTERFLIES[0][1]));
    butterfly_step::<4>(&mut v, load(&BUTTERFLIES[1][0]), load(&BUTTERFLIES[1][1]));
    butterfly_step::<2>(&mut v, load(&BUTTERFLIES[2][0]), load(&BUTTERFLIES[2][1]));
    butterfly_step::<1>(&mut v, load(&BUTTERFLIES[3][0]), load(&BUTTERFLIES[3][1]));
    v
}

/// `int8::exp2_q22` on sixteen lanes: the 8-entry tables by `vpermd`.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn exp16(x: __m512i) -> __m512i {
    let c = _mm512_set1_epi32;
    let x = _mm512_max_epi32(x, c(int8::EXP_FLOOR));
    let (i, f) = (_mm512_srai_epi32::<16>(x), _mm512_and_si512(x, c(0xffff)));
    let (j, g) = (_mm512_srli_epi32::<13>(f), _mm512_and_si512(f, c(0x1fff)));
    // The scalar's u32 products: vpmulld's low 32 bits, logical shifts.
    let q = _mm512_add_epi32(c(62929), _mm512_srli_epi32::<16>(_mm512_mullo_epi32(g, c(15170))));
    let q = _mm512_add_epi32(c(181705), _mm512_srli_epi32::<16>(_mm512_mullo_epi32(g, q)));
    let h = _mm512_srli_epi32::<15>(_mm512_mullo_epi32(g, q));
    // SAFETY: unaligned loads of two 8-entry u32 tables, each broadcast to
    // both halves (j < 8 reads the low one).
    let (t24, t15) = unsafe {
        (
            _mm512_broadcast_i32x8(_mm256_loadu_si256(int8::EXP2_Q24.as_ptr().cast())),
            _mm512_broadcast_i32x8(_mm256_loadu_si256(int8::EXP2_Q15.as_ptr().cast())),
        )
    };
    let (t24, t15) = (_mm512_permutexvar_epi32(j, t24), _mm512_permutexvar_epi32(j, t15));
    let e = _mm512_add_epi32(t24, _mm512_srli_epi32::<10>(_mm512_mullo_epi32(t15, h)));
    _mm512_srlv_epi32(e, _mm512_sub_epi32(c(2), i))
}

/// `int8::softmax` of the CLS score and the 16 patch scores: writes the
/// head's Q.14 probabilities to `out` and returns the CLS's and the
/// patches'.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn softmax(cls_score: i32, scores: __m512i, out: &mut [i32]) -> (i32, __m512i) {
    require!(out.len() == 1 + PATCHES);
    let max = _mm512_reduce_max_epi32(scores).max(cls_score);
    let e = exp16(_mm512_sub_epi32(scores, _mm512_set1_epi32(max)));
    let cls = int8::exp2_q22(cls_score - max);
    // Σe ≤ 17 · 2^22: i32.
    let recip = int8::softmax_recip(cls + _mm512_reduce_add_epi32(e) as u32);
    let e16 = _mm512_srli_epi32::<6>(_mm512_add_epi32(e, _mm512_set1_epi32(32)));
    let half = _mm512_srli_epi32::<1>(_mm512_mullo_epi32(e16, _mm512_set1_epi32(recip as i32)));
    let p = _mm512_srli_epi32::<17>(_mm512_add_epi32(half, _mm512_set1_epi32(1 << 16)));
    let cls = int8::prob_q14(cls, recip);
    out[0] = cls;
    // SAFETY: 16 lanes of `out` past its first (asserted length).
    unsafe { _mm512_storeu_si512(out[1..].as_mut_ptr().cast(), p) };
    (cls, p)
}

/// `acc + vpmaddwd(row, the i16 pair at *pair in every lane)`: one
/// `vpdpwssd` with the pair broadcast from memory (`{1to16}`), a load.
/// Written with `asm!` because LLVM forwards a stored pair to its
/// broadcasts and makes each two shuffles on port 5, which the transpose
/// already keeps busy (measured: 7 % of the pass).
#[inline]
#[target_feature(enable = "avx512f,avx512vnni")]
fn dot_add_broadcast(acc: __m512i, row: __m512i, pair: &i32) -> __m512i {
    let mut acc = acc;
    // SAFETY: reads the 4 bytes of `*pair` (a valid reference) and the two
    // registers, writes `acc` only; the caller's target features (AVX-512 F
    // and VNNI, detected) make it a valid instruction.
    unsafe {
        std::arch::asm!(
            "vpdpwssd {acc}, {row}, dword ptr [{pair}]{{1to16}}",
            acc = inout(zmm_reg) acc,
            row = in(zmm_reg) row,
            pair = in(reg) pair,
            options(pure, readonly, nostack, preserves_flags),
        )
    };
    acc
}

/// Attention means and head logits of every head (its CLS and patch
/// probabilities in `probs`), summed over heads: classes 0-7 and 8-15 as
/// i64.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn attend(layout: &Layout, tokens: &[__m512i; 16], probs: &[(i32, __m512i)]) -> [__m512i; 2] {
    let mut logits = [_mm512_setzero_si512(); 2];
    // Token pairs interleaved channel by channel: lane 4L+i of `lo[j]` is
    // channel 8L+i of tokens (2j, 2j+1), of `hi[j]` channel 8L+4+i.
    let lo: [__m512i; 8] = std::array::from_fn(|j| _mm512_unpacklo_epi16(tokens[2 * j], tokens[2 * j + 1]));
    let hi: [__m512i; 8] = std::array::from_fn(|j| _mm512_unpackhi_epi16(tokens[2 * j], tokens[2 * j + 1]));
    // SAFETY: unaligned loads of 16-lane arrays.
    let (cls_lo, cls_hi) = unsafe {
        (_mm512_loadu_si512(layout.cls_norm_lo.as_ptr().cast()), _mm512_loadu_si512(layout.cls_norm_hi.as_ptr().cast()))
    };
    let mean_round = _mm512_set1_epi32(1 << (PROB_FRAC_BITS - 1));
    for (head, &(cls, patches)) in probs.iter().enumerate() {
        // The probabilities (≤ 2^14) as i16: dword j is (p_2j, p_2j+1).
        let mut p16 = [0i32; 8];
        // SAFETY: a store of one 256-bit register into an 8-lane array.
        unsafe { _mm256_storeu_si256(p16.as_mut_ptr().cast(), _mm512_cvtepi32_epi16(patches)) };
        let cls = _mm512_set1_epi32(cls);
        let mut m_lo = [_mm512_dpwssd_epi32(_mm512_setzero_si512(), cls_lo, cls), _mm512_setzero_si512()];
        let mut m_hi = [_mm512_dpwssd_epi32(_mm512_setzero_si512(), cls_hi, cls), _mm512_setzero_si512()];
        for (j, p) in p16.iter().enumerate() {
            m_lo[j % 2] = dot_add_broadcast(m_lo[j % 2], lo[j], p);
            m_hi[j % 2] = dot_add_broadcast(m_hi[j % 2], hi[j], p);
        }
        let m_lo =
            _mm512_srai_epi32::<PROB_FRAC_BITS>(_mm512_add_epi32(_mm512_add_epi32(m_lo[0], m_lo[1]), mean_round));
        let m_hi =
            _mm512_srai_epi32::<PROB_FRAC_BITS>(_mm512_add_epi32(_mm512_add_epi32(m_hi[0], m_hi[1]), mean_round));
        // packs takes lanes 4L..4L+3 of each per 128-bit lane: channels
        // 8L..8L+7 in order, saturated like saturate_i16.
        let mut mean = [0i32; 16];
        // SAFETY: a store of one register into a 16-lane array.
        unsafe { _mm512_storeu_si512(mean.as_mut_ptr().cast(), _mm512_packs_epi32(m_lo, m_hi)) };
        // Classes in lanes: Σ over channel pairs of (w_2k, w_2k+1)·(m_2k, m_2k+1).
        let weights = &layout.head_weight[head];
        let mut acc = [_mm512_setzero_si512(); 4];
        for (k, m) in mean.iter().enumerate() {
            // SAFETY: an unaligned load of a 16-lane array.
            let row = unsafe { _mm512_loadu_si512(weights[k].as_ptr().cast()) };
            acc[k % 4] = dot_add_broadcast(acc[k % 4], row, m);
        }
        let acc = _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
        // Each head's sum is the scalar's i32 dot product; heads add in i64.
        logits[0] = _mm512_add_epi64(logits[0], _mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc)));
        logits[1] = _mm512_add_epi64(logits[1], _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(acc)));
    }
    logits
}

/// `int8::finish_logits` on the 16 class lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn finish_logits(layout: &Layout, head_shift: u32, acc: &[__m512i; 2], classes: usize, s: &mut int8::Scratch) {
    require!(classes <= CLASSES && s.logits_fixed.len() == classes && s.logits.len() == classes);
    let round = _mm512_set1_epi64(if head_shift == 0 { 0 } else { 1i64 << (head_shift - 1) });
    let shift = _mm_cvtsi64_si128(head_shift as i64);
    let fixed: [__m256i; 2] = std::array::from_fn(|i| {
        // SAFETY: an unaligned load of 8 of the 16 head biases.
        let bias = _mm512_cvtepi32_epi64(unsafe { _mm256_loadu_si256(layout.head_bias[8 * i..].as_ptr().cast()) });
        let logit = _mm512_add_epi64(bias, _mm512_sra_epi64(_mm512_add_epi64(acc[i], round), shift));
        let clamped = _mm512_min_epi64(
            _mm512_max_epi64(logit, _mm512_set1_epi64(i32::MIN as i64)),
            _mm512_set1_epi64(i32::MAX as i64),
        );
        _mm512_cvtepi64_epi32(clamped)
    });
    let fixed = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(fixed[0]), fixed[1]);
    let float = _mm512_mul_ps(_mm512_cvtepi32_ps(fixed), _mm512_set1_ps(1.0 / (1u32 << int8::LOGIT_FRAC_BITS) as f32));
    let mask = ((1u32 << classes) - 1) as u16;
    // SAFETY: the mask covers `classes` lanes, the length of both outputs
    // (asserted); masked-off lanes are not touched.
    unsafe {
        _mm512_mask_storeu_epi32(s.logits_fixed.as_mut_ptr(), mask, fixed);
        _mm512_mask_storeu_ps(s.logits.as_mut_ptr(), mask, float);
    }
}

/// The embedding's layout modelled without AVX-512 (so it runs on every
/// x86-64 CPU): the byte gather of `vpermt2b`, the weight dwords, the
/// folded bias, against the scalar embedding.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::layout_check::{dpbusd, finish, images, scalar_z, shipped_models, xorshift};

    /// `exp16` against `int8::exp2_q22` on every exponent from the floor to
    /// 0 (and below the floor), where the CPU has the kernel.
    #[test]
    fn the_exponential_matches_scalar_on_every_input() {
        let Some(_cpu) = Avx512Vnni::detect() else {
            eprintln!("no AVX-512 VNNI on this CPU: nothing to compare");
            return;
        };
        let step = if cfg!(miri) { 4099 } else { 1 };
        let inputs: Vec<i32> = (int8::EXP_FLOOR - 64..=0).step_by(step).chain([i32::MIN, -1]).collect();
        for chunk in inputs.chunks(16) {
            let mut lanes = [0i32; 16];
            lanes[..chunk.len()].copy_from_slice(chunk);
            let mut out = [0u32; 16];
            // SAFETY: a load and a store of 16-lane arrays; the CPU has the
            // features (detected above).
            unsafe {
                let e = exp16(_mm512_loadu_si512(lanes.as_ptr().cast()));
                _mm512_storeu_si512(out.as_mut_ptr().cast(), e);
            }
            for (x, e) in lanes.iter().zip(out) {
                assert_eq!(e, int8::exp2_q22(*x), "x = {x}");
            }
        }
    }

    /// The i64-lane constants against `int8::ln_constants` for every D up to
    /// 32, on tokens of every spread: equal channels (U = E), the extremes
    /// ±Zc (k = 15), random; run where the CPU has the kernel (the backends
    /// harness covers the rest of the pass on every model).
    #[test]
    fn the_layer_norm_constants_match_scalar() {
        let Some(_cpu) = Avx512Vnni::detect() else {
            eprintln!("no AVX-512 VNNI on this CPU: nothing to compare");
            return;
        };
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for d in 1..=DIM as u32 {
            let zc = int8::z_limit(d);
            for round in 0..200 {
                let eps = match round % 4 {
                    0 => 0,
                    1 => 1,
                    2 => int8::ln_eps_limit(d),
                    _ => (next() % (int8::ln_eps_limit(d) as u64 + 1)) as i32,
                };
                let tokens: [Vec<i16>; PATCHES] = std::array::from_fn(|t| {
                    let spread = [0, 1, 3, 64, zc, zc][(t + round) % 6];
                    let centre = (next() % (2 * zc as u64 + 1)) as i32 - zc;
                    (0..d)
                        .map(|_| {
                            let v = match t % 5 {
                                0 => [zc, -zc][(next() % 2) as usize],
                                _ => centre + (next() % (2 * spread as u64 + 1)) as i32 - spread,
                            };
                            v.clamp(-zc, zc) as i16
                        })
                        .collect()
                });
                let sums = tokens.each_ref().map(|z| crate::int8::dot::dot_i16(z, z));
                // SAFETY: an unaligned load of a 16-lane array; the CPU has
                // the features (detected above).
                let got = unsafe { ln_constants16(_mm512_loadu_si512(sums.as_ptr().cast()), eps) };
                let got: [[i32; 16]; 2] = got.map(|v| {
                    let mut lanes = [0i32; 16];
                    // SAFETY: a store of one register into a 16-lane array.
                    unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), v) };
                    lanes
                });
                for (t, &sum_sq) in sums.iter().enumerate() {
                    let (scale, y) = int8::ln_constants(sum_sq, eps);
                    for (j, want) in [scale, y].into_iter().enumerate() {
                        let lane = got[j][t];
                        assert_eq!((lane as i16 as i32, lane >> 16), (want, want), "d {d} eps {eps} Σ² {sum_sq}");
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 32 * 200 * 16);
    }

    #[test]
    fn the_embedding_layout_matches_scalar_on_any_cpu() {
        for model in shipped_models() {
            let (w, shape) = (model.int8_weights(), model.shape());
            let layout = Layout::new(&w, &shape);
            let d = shape.dim as usize;
            for image in images() {
                // 32 bytes of image row r, zero past the image's end.
                let row =
                    |r: usize| -> [u8; 32] { std::array::from_fn(|x| image.get(r * SIDE + x).copied().unwrap_or(0)) };
                let want = scalar_z(&model, &image);
                for o in 0..d {
                    let mut acc = [0i32; PATCHES];
                    for g in 0..GROUPS {
                        let (y, h) = (g / 2, g % 2);
                        let first = [row(y), row(PATCH + y)].concat();
                        let second = [row(2 * PATCH + y), row(3 * PATCH + y)].concat();
                        let index = gather_index(h);
                        let byte = |i: usize| {
                            let at = index[i] as usize;
                            if at < 64 {
                                first[at]
                            } else {
                                second[at - 64]
                            }
                        };
                        for (lane, a) in acc.iter_mut().enumerate() {
                            let pixels = std::array::from_fn(|j| byte(4 * lane + j));
                            *a = dpbusd(*a, pixels, layout.patch_weight[o][g]);
                        }
                    }
                    for (patch, &a) in acc.iter().enumerate() {
                        let z = finish(a, layout.scale[o], layout.bias[o][patch], w.params.z_shift, d as u32);
                        assert_eq!(z, want[patch * d + o], "patch {patch} channel {o}");
                    }
                }
            }
        }
    }
}

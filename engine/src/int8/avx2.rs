//! The int8 pass on AVX2: exactly the integers of `crate::int8`, reached by
//! a different order of exact integer operations.
//!
//! - Patch embedding of the shipped geometry by pixel quads: a dword of 4
//!   u8 pixels broadcast, `vpmaddubsw` by 4 weights per channel (exact for
//!   the 7-bit weights the converter writes: 2·255·63 < 2^15), `vpmaddwd`
//!   by ones to i32. Blobs with 8-bit weights, and other shapes, take pixel
//!   pairs: pixels zero-extended and weights widened to i16, `vpmaddwd` on
//!   (pixel pair × weight pair). Only quads or pairs with ink are visited: a
//!   digit is mostly blank, and a blank one adds zero, so skipping it gives
//!   the same integers.
//! - Tokens live in rows of `dim_pad` i16 (padding channels are garbage
//!   after LayerNorm, but every weight that reads them is zero).
//! - LayerNorm of eight tokens at once: Σz² reduced together, the
//!   constants in i32 lanes (`ln_constants8`), then two ops per sixteen
//!   channels (`vpmullw` by 2^a, `vpmulhrsw`).
//! - Scores and logits reduce eight dot products at once with a `vphaddd`
//!   tree instead of one horizontal sum each.
//! - Softmax: the fixed-point `exp2` on eight lanes (its two 8-entry tables
//!   by `vpermd`, no gather), the reciprocal in scalar.
//! - Attention mean: token pairs interleaved so `vpmaddwd` multiplies
//!   (p_t, p_t+1) by (n_t, n_t+1) per channel; `vpackssdw` undoes the
//!   interleave and saturates exactly like the scalar code.
//!
//! The shipped geometry (28 × 28 images of 7 × 7 patches, up to 32
//! channels) with 7-bit patch weights takes `quads.rs` and `lanes.rs`, the
//! embedding and tail shared with AVX-VNNI; the token-row pass below runs
//! every other shape, and blobs with 8-bit patch weights.
//!
//! The pass is bound by latency more than by instruction count, so work is
//! ordered for overlap: every patch's ink mask before any ink loop, every
//! token group's LayerNorm constants before any normalisation, every head's
//! softmax before any attention mean.
//!
//! Every i32 lane sum here is a partial sum of a scalar i32 sum whose bound
//! docs/FIXED_POINT.md proves by Cauchy–Schwarz or by Σp ≤ 2^14 + T, and the
//! same bound holds for any subset of the terms, so no lane overflows.

use alloc::boxed::Box;
use alloc::vec::Vec;
use std::arch::x86_64::*;

use super::{lanes, quads, Weights, PROB_FRAC_BITS};
use crate::int8;
use crate::shape::limits::MAX_CLASSES;
use crate::shape::Shape;
use crate::simd::round_up;
use crate::simd::x86::{dim_pad as padded_dim, patches_pad, widen_image, Avx2, Bits, GROUP};

/// Widest patch the sparse kernel takes: 8 rows of 4 pixel pairs, one bit
/// each in a 32-bit mask.
const SPARSE_MAX_SIDE: usize = 8;
/// Pair slots of the sparse layout, one per mask bit.
const SPARSE_SLOTS: usize = 32;

/// The (row, pair) of mask bit `b` in the sparse kernel: the order in which
/// `ink_mask`'s packs leave the rows (even rows in the low 16 bits, odd
/// rows in the high 16, four pairs per row).
fn sparse_row_pair(b: usize) -> (usize, usize) {
    (2 * ((b >> 2) & 3) + (b >> 4), b & 3)
}

/// The int8 weights laid out for this kernel.
#[derive(Clone, Debug)]
struct Layout {
    /// Pixel pair slots: [`SPARSE_SLOTS`], one per ink-mask bit, for patches
    /// of up to 8 pixels a side; else `P·⌈P/2⌉`, row by row.
    slots: usize,
    /// `[slots][dim_pad][2]`: the weights of a slot's two pixels interleaved
    /// for `vpmaddwd` (zero for pixels outside the patch).
    pair_weight: Vec<i16>,
    /// Offset of each slot's first pixel from its patch's origin.
    pair_offset: Vec<u32>,
    /// Each patch's first pixel, `[patches]`.
    patch_origin: Vec<u32>,
    /// `[dim_pad]`.
    scale: Vec<i32>,
    /// `[patches][dim_pad]`, with the rounding offset of the `z_shift`
    /// folded in: the loader's range check bounds acc·scale + |bias| +
    /// rounding by i32::MAX, so the sum is the scalar's exactly.
    bias: Vec<i32>,
    /// `[patches][dim_pad]`: the tokens of blank patches (no ink: the
    /// embedding is the bias alone), copied instead of computed.
    blank: Vec<i16>,
    /// `[heads][dim_pad]`.
    score_weight: Vec<i16>,
    /// `[dim_pad]`.
    cls_norm: Vec<i16>,
    /// `[heads][classes rounded up to 8][dim_pad]`.
    head_weight: Vec<i16>,
}

impl Layout {
    fn new(w: &Weights<'_>, shape: &Shape, dim_pad: usize) -> Layout {
        let (side, p, d, k) =
            (shape.image_side as usize, shape.patch_side as usize, shape.dim as usize, shape.patch_len());
        let (heads, classes) = (shape.heads as usize, shape.classes as usize);
        let sparse = p <= SPARSE_MAX_SIDE;
        let pairs = p.div_ceil(2);
        let slots = if sparse { SPARSE_SLOTS } else { p * pairs };
        let mut pair_weight = vec![0i16; slots * dim_pad * 2];
        let mut pair_offset = vec![0u32; slots];
        for slot in 0..slots {
            let (y, j) = if sparse { sparse_row_pair(slot) } else { (slot / pairs, slot % pairs) };
            if y >= p {
                continue; // a row past the patch: its bit is never set
            }
            pair_offset[slot] = (y * side + 2 * j) as u32;
            for x in (2 * j..2 * j + 2).filter(|&x| x < p) {
                for o in 0..d {
                    pair_weight[(slot * dim_pad + o) * 2 + x % 2] = w.patch_weight[o * k + y * p + x] as i16;
                }
            }
        }
        // Rows of `width` values copied into rows of `stride`, zero padded.
        let pad = |values: &[i16], rows: usize, width: usize, stride: usize| {
            let mut out = vec![0; rows * stride];
            for r in 0..values.len() / width {
                out[r * stride..][..width].copy_from_slice(&values[r * width..][..width]);
            }
            out
        };
        let rounding = ((1i64 << w.params.z_shift) >> 1) as i32;
        let mut scale = vec![0; dim_pad];
        scale[..d].copy_from_slice(w.patch_scale);
        let mut bias = vec![0; shape.patches() * dim_pad];
        let mut blank = vec![0; shape.patches() * dim_pad];
        for (patch, row) in w.token_bias.chunks_exact(d).enumerate() {
            for (o, &b) in row.iter().enumerate() {
                bias[patch * dim_pad + o] = b + rounding;
                blank[patch * dim_pad + o] = int8::saturate_z(int8::round_shift(b.into(), w.params.z_shift), shape.dim);
            }
        }
        let classes_pad = round_up(classes, 8);
        let mut head_weight = vec![0; heads * classes_pad * dim_pad];
        for (row, values) in w.head_weight.chunks_exact(d).enumerate() {
            let (head, class) = (row / classes, row % classes);
            head_weight[(head * classes_pad + class) * dim_pad..][..d].copy_from_slice(values);
        }
        let grid = shape.grid();
        let patch_origin = (0..shape.patches()).map(|i| ((i / grid) * p * side + (i % grid) * p) as u32).collect();
        Layout {
            slots,
            pair_weight,
            pair_offset,
            patch_origin,
            scale,
            bias,
            blank,
            score_weight: pad(w.score_weight, heads, d, dim_pad),
            cls_norm: pad(w.cls_norm, 1, d, dim_pad),
            head_weight,
        }
    }
}

/// The AVX2 int8 kernel of one model: the CPU's token and the weights laid
/// out for it.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    cpu: Avx2,
    pass: Pass,
}

/// Which pass a model takes, with the weights laid out for it. The kernel
/// is boxed once per model (`int8::Kernel`), so the variants' sizes do not
/// matter; the shipped one's 3 KB of arrays are boxed to keep it a
/// pointer.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
enum Pass {
    /// The shipped geometry with 7-bit patch weights (every blob the
    /// converter writes): the embedding by pixel quads (`vpmaddubsw`), then
    /// the tail with tokens in lanes.
    Shipped(Box<(quads::Layout, lanes::Layout)>),
    /// Every other model, token rows padded to `dim_pad` channels.
    Rows { dim_pad: usize, layout: Layout },
}

impl Kernel {
    /// `None` when this CPU lacks AVX2, FMA, F16C or BMI1.
    pub(crate) fn new(w: &Weights<'_>, shape: &Shape) -> Option<Kernel> {
        let cpu = Avx2::detect()?;
        let limit = int8::BYTE_PAIR_WEIGHT_LIMIT;
        let seven_bits = w.patch_weight.iter().all(|q| (-limit..=limit).contains(q));
        let pass = if lanes::fits(shape) && seven_bits {
            Pass::Shipped(Box::new((quads::Layout::new(w, shape), lanes::Layout::new(w, shape))))
        } else {
            let dim_pad = padded_dim(shape);
            Pass::Rows { dim_pad, layout: Layout::new(w, shape, dim_pad) }
        };
        Some(Kernel { cpu, pass })
    }

    pub(crate) fn forward<'m>(
        &self,
        weights: impl FnOnce() -> Weights<'m>,
        shape: &Shape,
        image: &[u8],
        s: &mut int8::Scratch,
    ) {
        // SAFETY: `self.cpu` exists only if AVX2 and BMI1 were detected.
        unsafe { forward(self.cpu, weights, self, shape, image, s) }
    }
}

/// Buffers of the kernel: tokens padded to a multiple of 8 and channels to a
/// multiple of 32. Padding entries start at zero and the kernel never
/// writes them, so they stay zero.
#[derive(Clone, Debug)]
pub(crate) struct Scratch {
    /// Patch tokens on the LayerNorm input grid, `[patches_pad][dim_pad]`.
    tokens: Vec<i16>,
    /// Each patch's ink mask (pixel pairs with a nonzero pixel), `patches`.
    inks: Vec<u32>,
    /// LayerNorm constants of each group of eight tokens: `2^a` and `Y` in
    /// eight i32 lanes each, `patches_pad · LN_CONSTANTS`.
    ln_params: Vec<i32>,
    /// Their LayerNorm, same layout; for the shipped geometry, the
    /// embedded and then the normalised pairs of `lanes::tail`
    /// (`lanes_buffer`).
    norm: Vec<i16>,
    /// Each head's scores: the CLS token's, then the patches',
    /// `heads × (1 + patches_pad)`.
    scores: Vec<i32>,
    /// One head's patch probabilities as i16, zero past the last patch,
    /// `patches_pad`.
    probs16: Vec<i16>,
}

impl Scratch {
    /// The buffer `lanes::tail` keeps its normalised tokens in: `norm`,
    /// which the lane-wise pass does not otherwise use (at least 16 × 32
    /// values for a model that `lanes::fits`).
    pub(super) fn lanes_buffer(&mut self) -> &mut [i16] {
        &mut self.norm
    }

    /// The buffers `quads::embed` computes its token rows in (`tokens`)
    /// and writes the tokens in lanes to (`lanes_buffer`'s), each at least
    /// 16 × 32 values for a model that `lanes::fits`.
    pub(super) fn embed_buffers(&mut self) -> (&mut [i16], &mut [i16]) {
        (&mut self.tokens, &mut self.norm)
    }

    pub(crate) fn new(shape: &Shape) -> Scratch {
        let (t, d) = (patches_pad(shape), padded_dim(shape));
        Scratch {
            tokens: vec![0; t * d],
            inks: vec![0; shape.patches()],
            ln_params: vec![0; t * LN_CONSTANTS],
            norm: vec![0; t * d],
            scores: vec![0; shape.heads as usize * (1 + t)],
            probs16: vec![0; t],
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and BMI1 (`_cpu` proves it).
#[target_feature(enable = "avx2,bmi1")]
unsafe fn forward<'m>(
    _cpu: Avx2,
    weights: impl FnOnce() -> Weights<'m>,
    kernel: &Kernel,
    shape: &Shape,
    image: &[u8],
    s: &mut int8::Scratch,
) {
    match &kernel.pass {
        Pass::Shipped(layouts) => {
            let (embed, tail) = &**layouts;
            // Exact: the weights are 7-bit (checked in `Kernel::new`).
            let dot = |acc, quad, weights| quads::maddubs_dot(acc, quad, weights);
            let (rows, z) = s.avx2.embed_buffers();
            let sum_sq = quads::embed(embed, shape, tail.params.z_shift, image, rows, z, dot);
            lanes::tail(tail, shape, sum_sq, s);
        }
        &Pass::Rows { dim_pad, ref layout } => {
            // The layout was built for this shape, the scratch for this model.
            require!(dim_pad == padded_dim(shape) && dim_pad <= 128);
            require!(image.len() == shape.pixels() && s.simd_image.len() >= image.len() + 16);
            widen_image(image, &mut s.simd_image);
            run(&weights(), layout, shape, dim_pad, s);
        }
    }
}

/// The pass for every other shape. One instance for every channel width
/// (`dim_pad` read at run time): an instance per width cost the installed
/// library ~9 KB each (docs/C_API.md, "Sizes").
#[target_feature(enable = "avx2")]
fn run(w: &Weights<'_>, layout: &Layout, shape: &Shape, dim_pad: usize, s: &mut int8::Scratch) {
    let (heads, classes) = (shape.heads as usize, shape.classes as usize);
    let (patches, patches_pad) = (shape.patches(), patches_pad(shape));
    // Everything the unchecked accesses below rely on.
    require!(layout.pair_weight.len() == layout.slots * dim_pad * 2 && layout.pair_offset.len() == layout.slots);
    require!(layout.scale.len() == dim_pad && layout.bias.len() == patches * dim_pad);
    require!(layout.score_weight.len() == heads * dim_pad && layout.cls_norm.len() == dim_pad);
    require!(layout.head_weight.len() == heads * round_up(classes, 8) * dim_pad);
    let b = &mut s.avx2;
    require!(b.tokens.len() == patches_pad * dim_pad && b.norm.len() == patches_pad * dim_pad);
    require!(b.scores.len() == heads * (1 + patches_pad) && b.probs16.len() == patches_pad);
    require!(s.probs.len() == heads * (patches + 1));
    if shape.patch_side as usize <= SPARSE_MAX_SIDE {
        ink_masks(layout, shape, &s.simd_image, &mut b.inks);
        patch_embed_sparse(w.params.z_shift, layout, shape, dim_pad, &s.simd_image, &b.inks, &mut b.tokens);
    } else {
        patch_embed_dense(w, layout, shape, dim_pad, &s.simd_image, &mut b.tokens);
    }
    layer_norm(w.params.ln_eps, shape, dim_pad, &b.tokens, &mut b.norm, &mut b.ln_params);
    let logits = attend(w, layout, shape, dim_pad, &b.norm, &mut b.scores, &mut b.probs16, &mut s.probs);
    int8::finish_logits(w, &logits[..shape.classes as usize], s);
}

/// Stores `saturate_z(round_shift(acc · scale + bias, z_shift), D)` for 32
/// channels as i16 in channel order (the rounding offset is in `bias`;
/// `limit` is `int8::z_limit(D)` in every lane).
///
/// # Safety
/// `scale` and `bias` must be valid for reading 32 i32 values, `out` for
/// writing 32 i16 values.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn finish_patch(
    acc: [__m256i; 4],
    scale: *const i32,
    bias: *const i32,
    shift: __m128i,
    limit: __m256i,
    out: *mut i16,
) {
    // SAFETY: the caller's promise.
    let packed = unsafe { finish_patch_packed(acc, scale, bias, shift, limit) };
    // packs interleaves 128-bit halves; the permute undoes it.
    let [lo, hi] = packed.map(|v| _mm256_permute4x64_epi64::<0b11_01_10_00>(v));
    // SAFETY: 32 values, the caller's promise; unaligned stores.
    unsafe {
        _mm256_storeu_si256(out.cast(), lo);
        _mm256_storeu_si256(out.add(16).cast(), hi);
    }
}

/// [`finish_patch`]'s 32 values in the order `vpackssdw` leaves them:
/// dword k of the pair of registers holds channels (2j, 2j + 1) for
/// j = `lanes::packed_pair(k)`.
///
/// # Safety
/// `scale` and `bias` must be valid for reading 32 i32 values.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn finish_patch_packed(
    acc: [__m256i; 4],
    scale: *const i32,
    bias: *const i32,
    shift: __m128i,
    limit: __m256i,
) -> [__m256i; 2] {
    let mut z = [_mm256_setzero_si256(); 4];
    for (b, (zv, a)) in z.iter_mut().zip(acc).enumerate() {
        // SAFETY: b·8 + 8 ≤ 32 values, the caller's promise; unaligned loads.
        let (s, c) =
            unsafe { (_mm256_loadu_si256(scale.add(b * 8).cast()), _mm256_loadu_si256(bias.add(b * 8).cast())) };
        *zv = _mm256_sra_epi32(_mm256_add_epi32(_mm256_mullo_epi32(a, s), c), shift);
    }
    // packs saturates to [-32768, 32767], the min and max to saturate_z's
    // ±Zc.
    let floor = _mm256_sub_epi16(_mm256_setzero_si256(), limit);
    let clamp = |v: __m256i| _mm256_min_epi16(_mm256_max_epi16(v, floor), limit);
    [clamp(_mm256_packs_epi32(z[0], z[1])), clamp(_mm256_packs_epi32(z[2], z[3]))]
}

/// The ink mask of one patch: bit `b` set when pixel pair
/// [`sparse_row_pair`]`(b)` has a nonzero pixel. `row(y)` loads row `y`'s
/// eight pixels (zero for rows past the patch); `in_patch` masks off the
/// pixels right of it.
#[inline]
#[target_feature(enable = "avx2")]
fn ink_mask(row: impl Fn(usize) -> __m128i, in_patch: __m256i) -> u32 {
    let zero = _mm256_setzero_si256();
    let blank = |y: usize| {
        let rows = _mm256_and_si256(_mm256_set_m128i(row(y + 1), row(y)), in_patch);
        _mm256_cmpeq_epi32(rows, zero) // one lane per pair: rows y | y+1
    };
    // packs: [0 2 | 1 3] and [4 6 | 5 7], then bytes [0 2 4 6 | 1 3 5 7].
    let rows_0123 = _mm256_packs_epi32(blank(0), blank(2));
    let rows_4567 = _mm256_packs_epi32(blank(4), blank(6));
    !(_mm256_movemask_epi8(_mm256_packs_epi16(rows_0123, rows_4567)) as u32)
}

/// `acc += pair × weights` for channels `group..group + 32` over the pixel
/// pair `slots`: the pair broadcast, one `vpmaddwd` per 8 channels.
///
/// # Safety
/// Every slot must be below `layout.slots`, with its pair (two values from
/// `origin + pair_offset[slot]`) inside `pixels`; `group + 32 ≤ dim_pad`,
/// the layout's channel stride.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn madd_pairs(
    acc: &mut [__m256i; 4],
    layout: &Layout,
    pixels: &[i16],
    origin: usize,
    group: usize,
    dim_pad: usize,
    slots: impl Iterator<Item = usize>,
) {
    for slot in slots {
        // SAFETY: the caller's promise: slot < pair_offset.len(), the pair is
        // inside `pixels`, and weights [slot][group..+32][2] lie inside
        // pair_weight ([slots][dim_pad][2]); unaligned loads.
        unsafe {
            let at = origin + *layout.pair_offset.get_unchecked(slot) as usize;
            let pair = _mm256_set1_epi32(pixels.as_ptr().add(at).cast::<i32>().read_unaligned());
            let base = layout.pair_weight.as_ptr().add((slot * dim_pad + group) * 2);
            for (b, a) in acc.iter_mut().enumerate() {
                let wv = _mm256_loadu_si256(base.add(b * 16).cast());
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(pair, wv));
            }
        }
    }
}

/// Every patch's ink mask (`ink_mask`), for patches of up to 8 pixels a
/// side: all before any ink loop, branch-free, so each loop starts with its
/// mask ready and a mispredicted loop exit is resolved early.
#[target_feature(enable = "avx2")]
fn ink_masks(layout: &Layout, shape: &Shape, pixels: &[i16], inks: &mut [u32]) {
    let (side, p) = (shape.image_side as usize, shape.patch_side as usize);
    require!(p <= SPARSE_MAX_SIDE && pixels.len() >= side * side + 16);
    require!(inks.len() == shape.patches() && layout.patch_origin.len() == shape.patches());
    let lanes: [i16; 16] = std::array::from_fn(|x| if x % 8 < p { -1 } else { 0 });
    // SAFETY: an unaligned load of a 16-lane array.
    let in_patch = unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) };
    for (patch, ink) in inks.iter_mut().enumerate() {
        let origin = layout.patch_origin[patch] as usize;
        let row = |y: usize| {
            if y < p {
                // SAFETY: a patch row starts at most at S² - P, and 8 values
                // from it lie in `pixels` (S² + 16, asserted).
                unsafe { _mm_loadu_si128(pixels.as_ptr().add(origin + y * side).cast()) }
            } else {
                _mm_setzero_si128()
            }
        };
        *ink = ink_mask(row, in_patch);
    }
}

/// Patch embedding for patches of up to 8 pixels a side, from every
/// patch's ink mask: one `vpmaddwd` per 8 channels for each set bit. The
/// row of a blank patch (no ink: its embedding is the bias alone) is
/// copied from `layout.blank`.
#[target_feature(enable = "avx2")]
fn patch_embed_sparse(
    z_shift: u32,
    layout: &Layout,
    shape: &Shape,
    dim_pad: usize,
    pixels: &[i16],
    inks: &[u32],
    tokens: &mut [i16],
) {
    let (side, p, grid) = (shape.image_side as usize, shape.patch_side as usize, shape.grid());
    require!(p <= SPARSE_MAX_SIDE && layout.slots == SPARSE_SLOTS);
    require!(dim_pad.is_multiple_of(GROUP) && inks.len() == shape.patches());
    require!(pixels.len() >= side * side + 16 && tokens.len() >= shape.patches() * dim_pad);
    require!(layout.pair_offset.len() == SPARSE_SLOTS && layout.pair_weight.len() == SPARSE_SLOTS * dim_pad * 2);
    require!(layout.scale.len() == dim_pad && layout.bias.len() == shape.patches() * dim_pad);
    require!(layout.blank.len() == shape.patches() * dim_pad);
    let shift = _mm_cvtsi32_si128(z_shift as i32);
    let limit = _mm256_set1_epi16(int8::z_limit(shape.dim) as i16);
    let mut patch = 0;
    for r in 0..grid {
        for c in 0..grid {
            let origin = r * p * side + c * p;
            let ink = inks[patch];
            if ink == 0 {
                // A quarter to half of a digit's patches, and every patch of
                // a blank image.
                let at = patch * dim_pad;
                tokens[at..at + dim_pad].copy_from_slice(&layout.blank[at..at + dim_pad]);
                patch += 1;
                continue;
            }
            for group in (0..dim_pad).step_by(GROUP) {
                let mut acc = [_mm256_setzero_si256(); 4];
                // SAFETY: a set bit is a slot < 32 = layout.slots whose pair lies
                // inside the patch; group + 32 ≤ dim_pad.
                unsafe { madd_pairs(&mut acc, layout, pixels, origin, group, dim_pad, Bits(u64::from(ink))) };
                let at = patch * dim_pad + group;
                // SAFETY: group + 32 ≤ dim_pad: 32 values of the scale row, of
                // the patch's bias row and of its token row (asserted lengths).
                unsafe {
                    let (scale, bias) = (layout.scale.as_ptr().add(group), layout.bias.as_ptr().add(at));
                    finish_patch(acc, scale, bias, shift, limit, tokens.as_mut_ptr().add(at));
                }
            }
            patch += 1;
        }
    }
}

/// Patch embedding for wider patches: every pixel pair.
#[target_feature(enable = "avx2")]
fn patch_embed_dense(
    w: &Weights<'_>,
    layout: &Layout,
    shape: &Shape,
    dim_pad: usize,
    pixels: &[i16],
    tokens: &mut [i16],
) {
    let (side, p, grid) = (shape.image_side as usize, shape.patch_side as usize, shape.grid());
    let slots = layout.slots;
    require!(slots == p * p.div_ceil(2) && layout.pair_offset.len() == slots && dim_pad.is_multiple_of(GROUP));
    require!(layout.pair_weight.len() == slots * dim_pad * 2);
    require!(pixels.len() >= side * side + 16 && tokens.len() >= shape.patches() * dim_pad);
    require!(layout.scale.len() == dim_pad && layout.bias.len() == shape.patches() * dim_pad);
    let shift = _mm_cvtsi32_si128(w.params.z_shift as i32);
    let limit = _mm256_set1_epi16(int8::z_limit(shape.dim) as i16);
    let mut patch = 0;
    for r in 0..grid {
        for c in 0..grid {
            let origin = r * p * side + c * p;
            for group in (0..dim_pad).step_by(GROUP) {
                let mut acc = [_mm256_setzero_si256(); 4];
                // SAFETY: every slot < layout.slots is a pair starting inside
                // the patch; group + 32 ≤ dim_pad.
                unsafe { madd_pairs(&mut acc, layout, pixels, origin, group, dim_pad, 0..slots) };
                let at = patch * dim_pad + group;
                // SAFETY: as in patch_embed_sparse.
                unsafe {
                    let (scale, bias) = (layout.scale.as_ptr().add(group), layout.bias.as_ptr().add(at));
                    finish_patch(acc, scale, bias, shift, limit, tokens.as_mut_ptr().add(at));
                }
            }
            patch += 1;
        }
    }
}

/// The eight lane sums of `v[0..8]`, in order, by a `vphaddd` tree.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum8(v: &[__m256i; 8]) -> __m256i {
    let a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    let b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    _mm256_add_epi32(_mm256_permute2x128_si256::<0x20>(a, b), _mm256_permute2x128_si256::<0x31>(a, b))
}

/// Registers of 16 channels in the widest token row (`dim_pad` ≤ 128).
const MAX_REGS: usize = 8;

/// The LayerNorm constants of a token: 2^a and Y (`int8::ln_constants`).
const LN_CONSTANTS: usize = 2;

/// Register `k` of the row of 16-channel registers at `row`.
///
/// # Safety
/// `row` must be valid for reading `16·(k + 1)` i16 values.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn reg(row: *const i16, k: usize) -> __m256i {
    // SAFETY: the caller's promise; an unaligned load.
    unsafe { _mm256_loadu_si256(row.add(16 * k).cast()) }
}

/// `Σ_k vpmaddwd(rows[i][k], b[k])` over `regs` registers, for eight rows
/// against one: eight dot products as i32 partial sums, each register of `b`
/// loaded once.
///
/// # Safety
/// Each row and `b` must be valid for reading `16·regs` i16 values.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dot8(rows: [*const i16; 8], b: *const i16, regs: usize) -> [__m256i; 8] {
    let mut acc = [_mm256_setzero_si256(); 8];
    for k in 0..regs {
        // SAFETY: k < regs, the caller's promise.
        let bk = unsafe { reg(b, k) };
        for (acc, row) in acc.iter_mut().zip(rows) {
            // SAFETY: as above.
            *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(unsafe { reg(row, k) }, bk));
        }
    }
    acc
}

/// `int8::ln_constants` on eight i32 lanes: `(2^a, Y)` of eight tokens
/// from their `Σz²` (z within ±`int8::z_limit`).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn ln_constants8(sum_sq: __m256i, eps: i32) -> [__m256i; 2] {
    let c = _mm256_set1_epi32;
    let u = _mm256_max_epi32(_mm256_add_epi32(sum_sq, c(eps)), c(1));
    // floor(log2 U) from the exponent of U as f32, one less where the
    // conversion rounded up to the next power of two (U >> e is then 0).
    let e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(_mm256_castps_si256(_mm256_cvtepi32_ps(u))), c(127));
    let e = _mm256_add_epi32(e, _mm256_cmpeq_epi32(_mm256_srlv_epi32(u, e), _mm256_setzero_si256()));
    let k = _mm256_srli_epi32::<1>(e);
    // M = U·4^(7-k) in [2^14, 2^16): vpsllvd/vpsrlvd give 0 for the
    // (wrapped, huge) negative count, so the OR picks the right direction.
    let two_k = _mm256_add_epi32(k, k);
    let mm = _mm256_or_si256(
        _mm256_sllv_epi32(u, _mm256_sub_epi32(c(14), two_k)),
        _mm256_srlv_epi32(u, _mm256_sub_epi32(two_k, c(14))),
    );
    // int8::rsq.
    let mul_shift = |a: __m256i, b: __m256i, s: __m128i| _mm256_sra_epi32(_mm256_mullo_epi32(a, b), s);
    let (s14, s17) = (_mm_cvtsi32_si128(14), _mm_cvtsi32_si128(17));
    let inner = _mm256_add_epi32(c(-12837), mul_shift(mm, c(1535), s14));
    let mut y = _mm256_add_epi32(c(43195), mul_shift(mm, inner, s14));
    for _ in 0..2 {
        let t = mul_shift(y, y, s14);
        let w = mul_shift(t, mm, s14);
        y = _mm256_add_epi32(y, mul_shift(y, _mm256_sub_epi32(c(65536), w), s17));
    }
    let y = _mm256_min_epi32(y, c(32767));
    // k ≤ 14: (2^(14-k), y); k = 15: (1, (y + 1) >> 1).
    let over = _mm256_max_epi32(_mm256_sub_epi32(k, c(14)), _mm256_setzero_si256());
    let scale = _mm256_sllv_epi32(c(1), _mm256_max_epi32(_mm256_sub_epi32(c(14), k), _mm256_setzero_si256()));
    [scale, _mm256_srav_epi32(_mm256_add_epi32(y, over), over)]
}

/// `int8::layer_norm` of every patch token: Σz² of eight tokens (reduced
/// together), their constants in one register each, then each token's
/// normalisation with its constants broadcast from their lanes, sixteen
/// channels per register.
#[target_feature(enable = "avx2")]
fn layer_norm(ln_eps: i32, shape: &Shape, dim_pad: usize, z: &[i16], n: &mut [i16], params: &mut [i32]) {
    let (patches, patches_pad) = (shape.patches(), patches_pad(shape));
    require!(z.len() == patches_pad * dim_pad && n.len() == patches_pad * dim_pad && dim_pad.is_multiple_of(16));
    require!(params.len() == patches_pad * LN_CONSTANTS && dim_pad <= 16 * MAX_REGS);
    for t0 in (0..patches_pad).step_by(8) {
        let mut sum_sq = [_mm256_setzero_si256(); 8];
        for (i, sum_sq) in sum_sq.iter_mut().enumerate() {
            // t0 + 8 ≤ patches_pad: a token row of z (asserted length).
            let row = z[(t0 + i) * dim_pad..][..dim_pad].as_ptr();
            for k in 0..dim_pad / 16 {
                // SAFETY: 16·(k + 1) ≤ dim_pad: inside the row.
                let v = unsafe { reg(row, k) };
                // Partial sums of Σz², whose bound (< 2^31) holds for any
                // subset of its terms.
                *sum_sq = _mm256_add_epi32(*sum_sq, _mm256_madd_epi16(v, v));
            }
        }
        let constants = ln_constants8(hsum8(&sum_sq), ln_eps);
        for (i, v) in constants.into_iter().enumerate() {
            // SAFETY: 2·t0 + 8·i + 8 ≤ 2·patches_pad = params.len()
            // (asserted); an unaligned store.
            unsafe { _mm256_storeu_si256(params.as_mut_ptr().add(LN_CONSTANTS * t0 + 8 * i).cast(), v) };
        }
    }
    // Then every token's normalisation: the groups' constants above are
    // independent chains the CPU overlaps; here they are ready.
    for t in 0..patches {
        let (group, lane) = (t / 8 * 8 * LN_CONSTANTS, t % 8);
        // Token t's constants, each in both halves of every dword.
        let [scale, y] = std::array::from_fn(|i| _mm256_set1_epi16(params[group + 8 * i + lane] as i16));
        let (row, out) = (z[t * dim_pad..][..dim_pad].as_ptr(), n[t * dim_pad..][..dim_pad].as_mut_ptr());
        for k in 0..dim_pad / 16 {
            // SAFETY: 16·(k + 1) ≤ dim_pad values of the token's rows of z
            // and n; unaligned. |z|·2^a < 2^15, exact in i16.
            unsafe {
                let x = _mm256_mullo_epi16(reg(row, k), scale);
                _mm256_storeu_si256(out.add(16 * k).cast(), _mm256_mulhrs_epi16(x, y));
            }
        }
    }
}

/// `int8::exp2_q22` on eight lanes: the 8-entry tables by `vpermd`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn exp8(x: __m256i) -> __m256i {
    let c = _mm256_set1_epi32;
    let x = _mm256_max_epi32(x, c(int8::EXP_FLOOR));
    let (i, f) = (_mm256_srai_epi32::<16>(x), _mm256_and_si256(x, c(0xffff)));
    let (j, g) = (_mm256_srli_epi32::<13>(f), _mm256_and_si256(f, c(0x1fff)));
    // The scalar's u32 products: vpmulld's low 32 bits, logical shifts.
    let q = _mm256_add_epi32(c(62929), _mm256_srli_epi32::<16>(_mm256_mullo_epi32(g, c(15170))));
    let q = _mm256_add_epi32(c(181705), _mm256_srli_epi32::<16>(_mm256_mullo_epi32(g, q)));
    let h = _mm256_srli_epi32::<15>(_mm256_mullo_epi32(g, q));
    // SAFETY: unaligned loads of two 8-entry u32 tables.
    let (t24, t15) = unsafe {
        (_mm256_loadu_si256(int8::EXP2_Q24.as_ptr().cast()), _mm256_loadu_si256(int8::EXP2_Q15.as_ptr().cast()))
    };
    let (t24, t15) = (_mm256_permutevar8x32_epi32(t24, j), _mm256_permutevar8x32_epi32(t15, j));
    let e = _mm256_add_epi32(t24, _mm256_srli_epi32::<10>(_mm256_mullo_epi32(t15, h)));
    _mm256_srlv_epi32(e, _mm256_sub_epi32(c(2), i))
}

/// `int8::prob_q14` on eight lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn prob8(e: __m256i, recip: __m256i) -> __m256i {
    let e16 = _mm256_srli_epi32::<6>(_mm256_add_epi32(e, _mm256_set1_epi32(32)));
    let half = _mm256_srli_epi32::<1>(_mm256_mullo_epi32(e16, recip));
    _mm256_srli_epi32::<17>(_mm256_add_epi32(half, _mm256_set1_epi32(1 << 16)))
}

/// The sum of the eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn sum8(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s)))
}

/// `int8::softmax` when the patch count is a multiple of 8: `scores[0]` is
/// the CLS score, `scores[1..]` the patches'.
#[target_feature(enable = "avx2")]
fn softmax(scores: &[i32], probs: &mut [i32]) {
    let patches = scores.len() - 1;
    require!(patches.is_multiple_of(8) && probs.len() == scores.len());
    // SAFETY: 1 + c + 8 ≤ 1 + patches = scores.len(); an unaligned load.
    let load = |c: usize| unsafe { _mm256_loadu_si256(scores.as_ptr().add(1 + c).cast()) };
    let mut max = _mm256_set1_epi32(scores[0]);
    for c in (0..patches).step_by(8) {
        max = _mm256_max_epi32(max, load(c));
    }
    let max = _mm256_max_epi32(max, _mm256_shuffle_epi32::<0b01_00_11_10>(max));
    let max = _mm256_max_epi32(max, _mm256_shuffle_epi32::<0b10_11_00_01>(max));
    let max = _mm256_max_epi32(max, _mm256_permute2x128_si256::<0x01>(max, max));
    let cls = int8::exp2_q22(scores[0] - _mm256_cvtsi256_si32(max));
    // Σe ≤ T · 2^22 < 2^31: the lanes' partial sums too.
    let mut sum = _mm256_setzero_si256();
    for c in (0..patches).step_by(8) {
        let e = exp8(_mm256_sub_epi32(load(c), max));
        // SAFETY: 1 + c + 8 ≤ probs.len() (asserted); an unaligned store.
        unsafe { _mm256_storeu_si256(probs.as_mut_ptr().add(1 + c).cast(), e) };
        sum = _mm256_add_epi32(sum, e);
    }
    let recip = int8::softmax_recip(cls + sum8(sum) as u32);
    probs[0] = int8::prob_q14(cls, recip);
    let r = _mm256_set1_epi32(recip as i32);
    for c in (0..patches).step_by(8) {
        // SAFETY: 1 + c + 8 ≤ probs.len() (asserted); unaligned.
        let e = unsafe { _mm256_loadu_si256(probs.as_ptr().add(1 + c).cast()) };
        // SAFETY: as the load above.
        unsafe { _mm256_storeu_si256(probs.as_mut_ptr().add(1 + c).cast(), prob8(e, r)) };
    }
}

/// Scores, softmax, attention means and the heads' logit sums (Q.16 before
/// the shift): `int8::attend`'s integers.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn attend(
    w: &Weights<'_>,
    layout: &Layout,
    shape: &Shape,
    dim_pad: usize,
    norm: &[i16],
    scores: &mut [i32],
    probs16: &mut [i16],
    q_probs: &mut [i32],
) -> [i64; MAX_CLASSES as usize] {
    let (heads, classes, patches, regs) = (shape.heads as usize, shape.classes as usize, shape.patches(), dim_pad / 16);
    let (t_count, patches_pad, classes_pad) = (patches + 1, patches_pad(shape), round_up(classes, 8));
    require!(dim_pad.is_multiple_of(16) && (1..=MAX_REGS).contains(&regs));
    require!(
        norm.len() == patches_pad * dim_pad
            && scores.len() == heads * (1 + patches_pad)
            && probs16.len() == patches_pad
    );
    require!(q_probs.len() == heads * t_count && layout.cls_norm.len() == dim_pad);
    require!(layout.score_weight.len() == heads * dim_pad && layout.head_weight.len() == heads * classes_pad * dim_pad);
    let score_round = _mm256_set1_epi32(((1i64 << w.params.score_shift) >> 1) as i32);
    let score_shift = _mm_cvtsi32_si128(w.params.score_shift as i32);
    let mean_round = _mm256_set1_epi32(1 << (PROB_FRAC_BITS - 1));
    // Token t's row of norm: callers pass t < patches_pad, inside norm
    // (asserted length), which the reads through it rely on.
    let token = |t: usize| norm.as_ptr().wrapping_add(t * dim_pad);
    // Scores, then softmax, of every head before any mean: the heads'
    // softmax chains (reductions, exp gathers, a division) are independent,
    // and adjacent in the program they overlap.
    let stride = 1 + patches_pad;
    for head in 0..heads {
        let scores = &mut scores[head * stride..][..stride];
        // SAFETY: head < heads: a row of score_weight (asserted length).
        let g = unsafe { layout.score_weight.as_ptr().add(head * dim_pad) };
        for t0 in (0..patches_pad).step_by(8) {
            // SAFETY: t0 + i < patches_pad; every row holds dim_pad values.
            let dots = unsafe { dot8(std::array::from_fn(|i| token(t0 + i)), g, regs) };
            let s = _mm256_sra_epi32(_mm256_add_epi32(hsum8(&dots), score_round), score_shift);
            // SAFETY: 1 + t0 + 8 ≤ 1 + patches_pad = scores.len(); unaligned.
            unsafe { _mm256_storeu_si256(scores.as_mut_ptr().add(1 + t0).cast(), s) };
        }
        scores[0] = w.cls_score[head];
    }
    for (scores, probs) in scores.chunks_exact(stride).zip(q_probs.chunks_exact_mut(t_count)) {
        if patches.is_multiple_of(8) {
            softmax(&scores[..t_count], probs);
        } else {
            int8::softmax(&scores[..t_count], probs);
        }
    }
    let mut logits = [0i64; MAX_CLASSES as usize];
    for head in 0..heads {
        let probs = &q_probs[head * t_count..][..t_count];
        // mean = Σ p_t n_t: token pairs interleaved channel by channel and
        // multiplied by their two probabilities (at most 2^14, so i16) with
        // one vpmaddwd; the CLS token is paired with itself and a zero.
        if !patches.is_multiple_of(16) {
            // Patches laid out as i16 with a zero past the last, so each pair
            // of probabilities is one i32.
            for (p16, &p) in probs16.iter_mut().zip(&probs[1..]) {
                *p16 = p as i16;
            }
        }
        // One register of 16 channels at a time over every token, so its
        // two accumulators stay in registers whatever the width.
        let cls = layout.cls_norm.as_ptr();
        let mut mean = [_mm256_setzero_si256(); MAX_REGS];
        for (k, mean) in mean.iter_mut().enumerate().take(regs) {
            let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            // Rows `a` and `b` hold dim_pad values each (the token rows and
            // cls_norm, asserted lengths).
            let mut accumulate = |a: *const i16, b: *const i16, pair: __m256i| {
                // SAFETY: 16·(k + 1) ≤ dim_pad values of each row.
                let (a, b) = unsafe { (reg(a, k), reg(b, k)) };
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), pair));
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), pair));
            };
            accumulate(cls, cls, _mm256_set1_epi32(probs[0] & 0xffff));
            if patches.is_multiple_of(16) {
                // Sixteen probabilities packed to i16 in one register: lane j
                // of it, broadcast, is the pair (p_2j, p_2j+1).
                for t0 in (0..patches).step_by(16) {
                    // SAFETY: 1 + t0 + 16 ≤ 1 + patches = probs.len(); unaligned.
                    let (a, b) = unsafe {
                        let at = probs.as_ptr().add(1 + t0);
                        (_mm256_loadu_si256(at.cast()), _mm256_loadu_si256(at.add(8).cast()))
                    };
                    let p16 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(a, b));
                    for j in 0..8 {
                        let pair = _mm256_permutevar8x32_epi32(p16, _mm256_set1_epi32(j as i32));
                        accumulate(token(t0 + 2 * j), token(t0 + 2 * j + 1), pair);
                    }
                }
            } else {
                for t in (0..patches).step_by(2) {
                    // SAFETY: t + 2 ≤ patches_pad = probs16.len(); unaligned.
                    let pair = unsafe { probs16.as_ptr().add(t).cast::<i32>().read_unaligned() };
                    // t + 1 < patches_pad: a padding row (zero) when patches is odd.
                    accumulate(token(t), token(t + 1), _mm256_set1_epi32(pair));
                }
            }
            // The unpacks split each 128-bit half into channels 0-3 | 4-7;
            // packs puts them back in order and saturates like saturate_i16.
            let lo = _mm256_srai_epi32::<{ PROB_FRAC_BITS as i32 }>(_mm256_add_epi32(lo, mean_round));
            let hi = _mm256_srai_epi32::<{ PROB_FRAC_BITS as i32 }>(_mm256_add_epi32(hi, mean_round));
            *mean = _mm256_packs_epi32(lo, hi);
        }

        // One i32 dot product per class (exact, below 2^30), summed over
        // heads in i64 as the scalar does.
        for c0 in (0..classes_pad).step_by(8) {
            // Rows head·classes_pad + c0 + i < heads·classes_pad of head_weight
            // (asserted length).
            let rows = std::array::from_fn(|i| {
                layout.head_weight.as_ptr().wrapping_add((head * classes_pad + c0 + i) * dim_pad)
            });
            // SAFETY: each row holds dim_pad values, `mean` MAX_REGS ≥ regs
            // registers.
            let dots = unsafe { dot8(rows, mean.as_ptr().cast(), regs) };
            let mut totals = [0i32; 8];
            // SAFETY: a store of one register into an array of its size.
            unsafe { _mm256_storeu_si256(totals.as_mut_ptr().cast(), hsum8(&dots)) };
            for (acc, &t) in logits[c0..].iter_mut().zip(&totals) {
                *acc += t as i64;
            }
        }
    }
    logits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::layout_check::{images_and_single_pixels, shipped_models};

    /// The ink mask `ink_mask`'s layout defines: bit b of patch (r, c) is
    /// set when pixel pair `sparse_row_pair(b)` of the patch has ink.
    fn masks_by_definition(image: &[u8]) -> [u32; lanes::PATCHES] {
        let (side, p) = (lanes::SIDE, lanes::PATCH);
        std::array::from_fn(|patch| {
            let (r, c) = (patch / 4, patch % 4);
            (0..SPARSE_SLOTS)
                .filter(|&b| {
                    let (y, j) = sparse_row_pair(b);
                    let inked = |x: usize| x < p && y < p && image[(p * r + y) * side + p * c + x] != 0;
                    inked(2 * j) || inked(2 * j + 1)
                })
                .fold(0, |mask, b| mask | 1 << b)
        })
    }

    /// The shipped blobs (7-bit patch weights) take the quad pass, a model
    /// of the same geometry with 8-bit weights the token rows': a converter
    /// or gate that regressed would keep every integer and lose the speed.
    #[test]
    fn the_shipped_models_take_the_quad_pass() {
        if Avx2::detect().is_none() {
            eprintln!("no AVX2 on this CPU: no kernel to build");
            return;
        }
        for model in shipped_models() {
            let kernel = Kernel::new(&model.int8_weights(), &model.shape()).unwrap();
            assert!(matches!(kernel.pass, Pass::Shipped(..)), "{:?}", model.shape());
        }
        let shape = Shape { image_side: 28, patch_side: 7, dim: 32, heads: 2, classes: 10 };
        let blob = crate::synthetic::random_int8_blob(shape, 1);
        let model = crate::model::Model::from_bytes(&blob).unwrap();
        let kernel = Kernel::new(&model.int8_weights(), &shape).unwrap();
        assert!(matches!(kernel.pass, Pass::Rows { .. }));
    }

    /// `ink_masks` against the definition on the shipped geometry, where
    /// the CPU has AVX2.
    #[test]
    fn the_ink_masks_match_their_definition() {
        let Some(_cpu) = Avx2::detect() else {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        };
        let model = &shipped_models()[0];
        let shape = model.shape();
        let layout = Layout::new(&model.int8_weights(), &shape, padded_dim(&shape));
        let mut pixels = vec![0; shape.pixels() + 16];
        for image in &images_and_single_pixels() {
            let mut got = [0u32; lanes::PATCHES];
            // SAFETY: AVX2 was detected above.
            unsafe {
                widen_image(image, &mut pixels);
                ink_masks(&layout, &shape, &pixels, &mut got);
            }
            assert_eq!(got, masks_by_definition(image));
        }
    }
}

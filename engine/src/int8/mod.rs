//! The int8 encoding: integer-only fixed point from u8 pixels to i32
//! logits, so the result is bit-identical on every CPU. This module is its
//! room: the weights it reads from a blob, the load-time range checks, the
//! scalar forward pass (the definition), its scratch memory, and the choice
//! of kernel ([`Kernel`]); the SIMD kernels live beside it (`avx2.rs`,
//! `avx512vnni.rs`, `avxvnni.rs`, `neon.rs`, `dotprod.rs`) and must reproduce the scalar integers exactly.
//! The scalar pass's inner loops are in `ink.rs` and `dot.rs`: portable, or
//! with the DSP instructions of Cortex-M4/M7 on those builds, the same
//! integers either way (what a microcontroller runs; see examples/cortex-m).
//! docs/FIXED_POINT.md derives every step and every bound.
//!
//! Formats: normalised tokens are i16 vectors of L2 norm 2^14 ([`NORM_BITS`]),
//! scores i32 Q.16, probabilities Q.14, logits i32 Q.16. One rounding rule everywhere:
//! [`round_shift`] (round half up).

#[cfg(all(feature = "hosted", target_arch = "x86_64"))]
mod avx2;
#[cfg(all(feature = "hosted", target_arch = "x86_64"))]
mod avx512vnni;
#[cfg(all(feature = "hosted", target_arch = "x86_64"))]
mod avxvnni;
mod dot;
#[cfg(all(feature = "hosted", target_arch = "aarch64"))]
mod dotprod;
mod ink;
#[cfg(all(feature = "hosted", target_arch = "x86_64"))]
mod lanes;
#[cfg(all(feature = "hosted", target_arch = "aarch64"))]
mod neon;
#[cfg(all(feature = "hosted", target_arch = "aarch64"))]
mod neon_lanes;
#[cfg(all(feature = "hosted", target_arch = "x86_64"))]
mod quads;

/// The geometry of the shipped models, which the lane-wise kernels of
/// every architecture take (`lanes.rs` on x86-64, `neon_lanes.rs` on
/// aarch64): 28 × 28 images of 7 × 7 patches, so 16 patch tokens fill the
/// vector lanes, with at most 32 channels, 16 classes and 8 heads.
#[cfg(all(feature = "hosted", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) mod shipped {
    use super::Weights;
    use crate::shape::Shape;

    pub(crate) const SIDE: usize = 28;
    pub(crate) const PATCH: usize = 7;
    pub(crate) const PATCHES: usize = 16;
    pub(crate) const DIM: usize = 32;
    pub(crate) const CLASSES: usize = 16;
    pub(crate) const HEADS: usize = 8;

    /// Dwords of 4 pixels a patch: 7 rows of two (`patch_dwords`: x 0..4
    /// and 4..8, the 8th byte the next patch's, with weight zero;
    /// `quad_dwords`: x 0..4 and 3..7, the byte of x = 3 weight zero).
    pub(crate) const GROUPS: usize = 14;

    /// Whether a model has this geometry.
    pub(crate) fn fits(shape: &Shape) -> bool {
        shape.image_side as usize == SIDE
            && shape.patch_side as usize == PATCH
            && shape.dim as usize <= DIM
            && shape.classes as usize <= CLASSES
            && shape.heads as usize <= HEADS
    }

    // The embedding layouts the dot-product kernels (both VNNI, AVX2's
    // quads, dotprod) build from a model that fits:

    /// The patch weights of channel o as `[group]` dwords: the 4 i8 weights
    /// of pixels (y, 4h..4h + 4) of group (y, h) = g / 2, g % 2, zero for the
    /// 8th pixel of a row and for channels past D.
    pub(crate) fn patch_dwords(w: &Weights<'_>, shape: &Shape) -> [[i32; GROUPS]; DIM] {
        let (d, k) = (shape.dim as usize, shape.patch_len());
        std::array::from_fn(|o| {
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
                i32::from_le_bytes(bytes)
            })
        })
    }

    /// `patch_dwords` as the sparse kernels read a patch row, two dwords
    /// from x = 0 and x = 3 (so no read leaves the patch): group (y, 1)'s
    /// bytes move up one, the byte of x = 3 a zero weight.
    pub(crate) fn quad_dwords(w: &Weights<'_>, shape: &Shape) -> [[i32; GROUPS]; DIM] {
        patch_dwords(w, shape).map(|row| std::array::from_fn(|g| if g % 2 == 0 { row[g] } else { row[g] << 8 }))
    }

    /// `quad_dwords` for multiplying a quad as two u8 pixel pairs (NEON's
    /// `umull`, `umlal`, `uadalp`, for 7-bit weights), each weight offset
    /// by 64 (1..=127; the byte of x = 3 in an odd group 64): `[group]
    /// [register]`, register k < 4 for pixel pair 0 (pixels 0 and 1) and
    /// 4 + k for pair 1 (pixels 2 and 3) of channel groups 2k (bytes 0..8)
    /// and 2k + 1 (bytes 8..16); byte 8·(g % 2) + 2c + j is the weight of
    /// the pair's pixel j for channel 4g + c. (x86-64 builds only test it,
    /// in a portable model.)
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    pub(crate) fn offset_pair_weights(w: &Weights<'_>, shape: &Shape) -> [[[u8; 16]; 8]; GROUPS] {
        let dwords = quad_dwords(w, shape);
        std::array::from_fn(|group| {
            std::array::from_fn(|r| {
                let (pair, k) = (r / 4, r % 4);
                std::array::from_fn(|b| {
                    let (g, c, j) = (2 * k + b / 8, b % 8 / 2, b % 2);
                    let weight = dwords[4 * g + c][group].to_le_bytes()[2 * pair + j] as i8;
                    (weight as i16 + QUAD_WEIGHT_OFFSET as i16) as u8
                })
            })
        })
    }

    /// What [`offset_pair_weights`] adds to a weight: the 7-bit weights
    /// (±`BYTE_PAIR_WEIGHT_LIMIT`) become 1..=127, and two products with
    /// pixels sum below 2^16 (2·255·127), exact in u16.
    pub(crate) const QUAD_WEIGHT_OFFSET: u8 = 64;

    /// Each patch's first pixel.
    pub(crate) const ORIGIN: [usize; PATCHES] = {
        let mut origin = [0; PATCHES];
        let mut patch = 0;
        while patch < PATCHES {
            origin[patch] = (patch / 4) * PATCH * SIDE + (patch % 4) * PATCH;
            patch += 1;
        }
        origin
    };

    /// A patch's 7 rows of 7 pixels, each read as one u64 (its 8th byte
    /// zero): rows 0-5 from their first pixel, row 6 from the pixel before
    /// it and shifted down (the last patch of the image ends at its last
    /// byte). Both are one instruction after the load for a constant row,
    /// where a shift chosen per patch cost one more a row (112 a digit).
    /// One bounds check a patch; a row's, for a constant row, vanishes.
    #[cfg(target_arch = "aarch64")]
    pub(crate) struct PatchRows<'a> {
        block: &'a [u8; BLOCK],
    }

    /// A patch's bytes from its first pixel to its last.
    const BLOCK: usize = (PATCH - 1) * SIDE + PATCH;
    // Every patch's block lies inside the image (the last patch's ends at
    // its last pixel).
    const _: () = {
        let mut patch = 0;
        while patch < PATCHES {
            assert!(ORIGIN[patch] + BLOCK <= SIDE * SIDE);
            patch += 1;
        }
    };

    #[cfg(target_arch = "aarch64")]
    impl<'a> PatchRows<'a> {
        /// Checks the image's length, which the callers' own check lets
        /// LLVM hoist out of their patch loop; each patch's block then
        /// needs no bounds check of its own (three instructions a patch).
        #[inline(always)]
        pub(crate) fn new(image: &'a [u8], patch: usize) -> PatchRows<'a> {
            require!(image.len() == SIDE * SIDE);
            let origin = ORIGIN[patch];
            // SAFETY: origin + BLOCK ≤ 784 (the const assertion above) =
            // the image's length (checked above), and a `[u8; BLOCK]` has
            // the alignment of u8.
            let block = unsafe { &*image.as_ptr().add(origin).cast::<[u8; BLOCK]>() };
            PatchRows { block }
        }

        /// Row `y`'s pixels, x in byte x.
        #[inline(always)]
        pub(crate) fn row(&self, y: usize) -> u64 {
            let load = |at: usize| u64::from_le_bytes(self.block[at..at + 8].try_into().unwrap());
            if y + 1 < PATCH {
                load(y * SIDE) & 0x00ff_ffff_ffff_ffff
            } else {
                load(y * SIDE - 1) >> 8
            }
        }

        /// The quads with ink, row by row: `quad(&weights[y][h], dword)`
        /// for quad h of row y (x 0..4 and 3..7: the byte of x = 3 is the
        /// second's first, its weight zero) when it has ink. Returns
        /// whether any row has ink (set where a row's ink is found: an OR
        /// of the seven rows cost seven instructions a patch).
        ///
        /// The 7 rows are written out (a macro over the row's literal), so
        /// each row's offset is a constant. A row's weights are reached
        /// through a barrier (`opaque`): without it LLVM hoists all of them
        /// out of the patch loop and spills them to the stack, and
        /// addresses them from one base, where rows past the fourth are
        /// beyond `ldp`'s reach (one `ldr` a register).
        #[inline(always)]
        pub(crate) fn for_each_quad<W>(&self, weights: &[[W; 2]; PATCH], mut quad: impl FnMut(&W, u32)) -> bool {
            let mut inked = false;
            macro_rules! rows {
                ($($y:literal)*) => {$({
                    let ink = self.row($y);
                    if ink != 0 {
                        inked = true;
                        let row = crate::simd::aarch64::opaque(&weights[$y]);
                        if ink as u32 != 0 {
                            quad(&row[0], ink as u32);
                        }
                        if ink >> 32 != 0 {
                            quad(&row[1], (ink >> 24) as u32);
                        }
                    }
                })*};
            }
            rows!(0 1 2 3 4 5 6);
            inked
        }
    }

    /// The patch scale, zero past D.
    pub(crate) fn patch_scale(w: &Weights<'_>, shape: &Shape) -> [i32; DIM] {
        let mut scale = [0; DIM];
        scale[..shape.dim as usize].copy_from_slice(w.patch_scale);
        scale
    }

    /// The token bias, `[patch][channel]`, with the rounding offset of
    /// `z_shift` folded in if `fold_rounding` (for a kernel whose shift
    /// truncates; the loader bounds the sum by i32::MAX), and the token of
    /// a blank patch (no ink: the bias alone); zero past D.
    pub(crate) fn token_bias_and_blank(
        w: &Weights<'_>,
        shape: &Shape,
        fold_rounding: bool,
    ) -> ([[i32; DIM]; PATCHES], [[i16; DIM]; PATCHES]) {
        let z_shift = w.params.z_shift;
        let rounding = if fold_rounding { ((1i64 << z_shift) >> 1) as i32 } else { 0 };
        let (mut bias, mut blank) = ([[0; DIM]; PATCHES], [[0; DIM]; PATCHES]);
        for (patch, row) in w.token_bias.chunks_exact(shape.dim as usize).enumerate() {
            for (o, &b) in row.iter().enumerate() {
                bias[patch][o] = b + rounding;
                blank[patch][o] = super::saturate_z(super::round_shift(b.into(), z_shift), shape.dim);
            }
        }
        (bias, blank)
    }

    /// The token bias transposed, `[channel][patch]`, with the rounding
    /// offset of `z_shift` folded in (the loader bounds the sum by
    /// i32::MAX); zero past D.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn token_bias_by_channel(w: &Weights<'_>, shape: &Shape) -> [[i32; PATCHES]; DIM] {
        let rounding = ((1i64 << w.params.z_shift) >> 1) as i32;
        let mut bias = [[0; PATCHES]; DIM];
        for (patch, row) in w.token_bias.chunks_exact(shape.dim as usize).enumerate() {
            for (o, &b) in row.iter().enumerate() {
                bias[o][patch] = b + rounding;
            }
        }
        bias
    }

    #[cfg(all(test, feature = "std"))]
    mod tests {
        use super::*;
        use crate::int8::layout_check::{finish, images_and_single_pixels, scalar_z, shipped_models};

        /// NEON's quad multiply modelled without SIMD (so it runs on every
        /// CPU): each quad of x 0..4 and 3..7 as the u8 pixel pairs (p0, p1)
        /// and (p2, p3) times `offset_pair_weights`, `umull` and `umlal`
        /// in u16 (checked: no lane wraps), `uadalp` into a channel's u32,
        /// then 64 times the quads' pixel sum taken off, against the scalar
        /// embedding.
        #[test]
        fn offset_pair_weights_model_matches_scalar() {
            for model in shipped_models() {
                let (w, shape) = (model.int8_weights(), model.shape());
                let (d, weights) = (shape.dim as usize, offset_pair_weights(&w, &shape));
                let rounding = ((1i64 << w.params.z_shift) >> 1) as i32;
                for image in images_and_single_pixels() {
                    let want = scalar_z(&model, &image);
                    for patch in 0..PATCHES {
                        let (mut acc, mut pixel_sum) = ([0u32; DIM], 0u32);
                        for (g, registers) in weights.iter().enumerate() {
                            let at = ORIGIN[patch] + g / 2 * SIDE + 3 * (g % 2);
                            let pixel = |j: usize| image[at + j] as u16;
                            pixel_sum += (0..4).map(|j| u32::from(pixel(j))).sum::<u32>();
                            for k in 0..4 {
                                let lanes: [u16; 16] = std::array::from_fn(|b| {
                                    let product =
                                        |pair: usize| pixel(2 * pair + b % 2) * u16::from(registers[4 * pair + k][b]);
                                    product(0).checked_add(product(1)).unwrap()
                                });
                                for (c, lanes) in lanes.chunks_exact(2).enumerate() {
                                    acc[4 * (2 * k + c / 4) + c % 4] += u32::from(lanes[0]) + u32::from(lanes[1]);
                                }
                            }
                        }
                        let offset = u32::from(QUAD_WEIGHT_OFFSET) * pixel_sum;
                        for (o, &acc) in acc.iter().enumerate().take(d) {
                            let bias = w.token_bias[patch * d + o] + rounding;
                            let z = finish(
                                acc.wrapping_sub(offset) as i32,
                                w.patch_scale[o],
                                bias,
                                w.params.z_shift,
                                shape.dim,
                            );
                            assert_eq!(z, want[patch * d + o], "patch {patch} channel {o}");
                        }
                    }
                }
            }
        }
    }
}

use crate::backend::Backend;
use crate::error::LoadError;
use crate::ids::{TensorId, INT8_PARAM_COUNT};
use crate::memory::{Buf, Source};
use crate::shape::limits::{MAX_CLASSES, MAX_DIM};
use crate::shape::Shape;
#[cfg(all(feature = "hosted", any(target_arch = "x86_64", target_arch = "aarch64")))]
use alloc::{boxed::Box, vec::Vec};

/// A normalised token `n` is the LayerNorm output scaled to L2 norm
/// 2^NORM_BITS: `n = z · 2^14 / √(Σz² + eps)` of a token `z` whose mean
/// over the channels the converter made zero, so `n = LayerNorm(z) · 2^14 / √D`.
pub const NORM_BITS: u32 = 14;
pub const SCORE_FRAC_BITS: u32 = 16;
pub const PROB_FRAC_BITS: u32 = 14;
pub const LOGIT_FRAC_BITS: u32 = 16;
/// Magnitude limit of the i16 score and head weights: keeps every i32 dot
/// product with a normalised vector below 2^30 (docs/FIXED_POINT.md).
pub const WIDE_WEIGHT_LIMIT: i16 = 2047;
/// Magnitude limit of the i8 patch weights (symmetric: -128 is not used).
pub const PATCH_WEIGHT_LIMIT: i8 = 127;
/// The patch weights' magnitude limit the converter writes (7 bits): two
/// products of a u8 pixel and such a weight, and their sum, fit in i16
/// (2·255·63 < 2^15), which is what AVX2's `vpmaddubsw` multiplies. The
/// loader accepts blobs up to [`PATCH_WEIGHT_LIMIT`]; the AVX2 kernel
/// checks a model's weights and takes its pixel-pair path otherwise.
pub const BYTE_PAIR_WEIGHT_LIMIT: i8 = 63;
/// `2^(j/8)` in Q.24 and in Q.15, j = 0..8: the coarse steps of the
/// fixed-point exponential [`exp2_q22`]. Generated with round(2**(j/8) * 2**24)
/// and round(2**(j/8) * 2**15); a test checks every entry.
pub static EXP2_Q24: [u32; 8] = [16777216, 18295684, 19951585, 21757357, 23726566, 25874004, 28215802, 30769550];
pub static EXP2_Q15: [u32; 8] = [32768, 35734, 38968, 42495, 46341, 50535, 55109, 60097];
/// [`exp2_q22`] clamps its exponent here: 2^-24 is below its Q.22 grid.
pub const EXP_FLOOR: i32 = -24 << 16;

/// The scalar parameters stored in `int8.params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Right shift from the i32 patch accumulator grid to the i16 LayerNorm input.
    pub z_shift: u32,
    /// LayerNorm epsilon on the i16 grid, times dim: `round(D · eps / s_z²)`,
    /// at most [`ln_eps_limit`].
    pub ln_eps: i32,
    /// Right shift from (score weight × normalised token) to Q.16 scores.
    pub score_shift: u32,
    /// Right shift from (head weight × normalised mean), summed over heads, to Q.16 logits.
    pub head_shift: u32,
}

/// The version of the int8 arithmetic definition, stored in `int8.params`
/// (index 4): version 4 is the LayerNorm of `ln_constants` without a mean
/// (version 3 subtracted the rounded mean; version 2 had version 3's
/// LayerNorm and an older softmax) and the base-2 softmax of `exp2_q22`. A blob of
/// another version computes other integers, so it is refused (convert the
/// model again).
pub const ARITHMETIC_VERSION: i32 = 4;

impl Params {
    pub fn to_raw(self) -> [i32; INT8_PARAM_COUNT] {
        let mut raw = [0; INT8_PARAM_COUNT];
        raw[0] = self.z_shift as i32;
        raw[1] = self.ln_eps;
        raw[2] = self.score_shift as i32;
        raw[3] = self.head_shift as i32;
        raw[4] = ARITHMETIC_VERSION;
        raw
    }

    /// Reads and range-checks the raw parameters; on failure, the index of
    /// the offending one and why.
    pub fn from_raw(raw: &[i32]) -> Result<Params, (usize, &'static str)> {
        const RANGE: &str = "parameter outside its documented range";
        if raw[4] != ARITHMETIC_VERSION {
            return Err((4, "int8 arithmetic of another version than this engine's: convert the model again"));
        }
        let in_range = |i: usize, max: i32| if (0..=max).contains(&raw[i]) { Ok(raw[i]) } else { Err((i, RANGE)) };
        let params = Params {
            z_shift: in_range(0, 24)? as u32,
            ln_eps: in_range(1, i32::MAX)?,
            score_shift: in_range(2, 30)? as u32,
            head_shift: in_range(3, 48)? as u32,
        };
        match raw[5..].iter().position(|&v| v != 0) {
            Some(i) => Err((5 + i, RANGE)),
            None => Ok(params),
        }
    }
}

/// The tensors of an int8 blob.
#[derive(Clone, Copy)]
pub(crate) struct Weights<'m> {
    pub patch_weight: &'m [i8],
    pub patch_scale: &'m [i32],
    pub token_bias: &'m [i32],
    pub params: Params,
    pub cls_norm: &'m [i16],
    pub score_weight: &'m [i16],
    pub cls_score: &'m [i32],
    pub head_weight: &'m [i16],
    pub head_bias: &'m [i32],
}

/// The int8 pass's scratch memory, sized once per model shape.
#[derive(Debug)]
#[cfg_attr(feature = "alloc", derive(Clone))]
pub(crate) struct Scratch<'m> {
    /// Patch embeddings on the LayerNorm input grid, `(T-1) × D`.
    pub(crate) tokens: Buf<'m, i16>,
    /// Normalised patch tokens (L2 norm 2^14), `(T-1) × D`.
    pub(crate) norm: Buf<'m, i16>,
    /// Scores of one head, Q.16, `T`.
    pub(crate) scores: Buf<'m, i32>,
    /// CLS attention probabilities, Q.14, `H × T`.
    pub(crate) probs: Buf<'m, i32>,
    /// Attention-weighted mean of the normalised tokens, `D`.
    pub(crate) mean: Buf<'m, i16>,
    /// Logits, Q.16, `C`: the result, identical on every CPU.
    pub(crate) logits_fixed: Buf<'m, i32>,
    /// One patch's inked pixels for the scalar embedding, `P² + 1`.
    pub(crate) ink: Buf<'m, u32>,
    /// The same logits as f32, `C`.
    pub(crate) logits: Buf<'m, f32>,
    /// The image widened to i16 for the SIMD kernels, `S² + 16` (zero
    /// padded). The SIMD kernels' buffers come from the heap: they exist
    /// only with `std`.
    #[cfg(all(feature = "hosted", any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub(crate) simd_image: Vec<i16>,
    /// The AVX2 kernel's padded buffers.
    #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
    pub(crate) avx2: avx2::Scratch,
}

impl<'m> Scratch<'m> {
    pub(crate) fn new(shape: &Shape, src: &mut impl Source<'m>) -> Scratch<'m> {
        let (t, d, h, c) = (shape.tokens() as usize, shape.dim as usize, shape.heads as usize, shape.classes as usize);
        Scratch {
            tokens: src.take((t - 1) * d),
            norm: src.take((t - 1) * d),
            scores: src.take(t),
            probs: src.take(h * t),
            mean: src.take(d),
            logits_fixed: src.take(c),
            ink: src.take(shape.patch_len() + 1),
            logits: src.take(c),
            #[cfg(all(feature = "hosted", any(target_arch = "x86_64", target_arch = "aarch64")))]
            simd_image: vec![0; shape.pixels() + 16],
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            avx2: avx2::Scratch::new(shape),
        }
    }

    /// Head `head`'s CLS attention of the last pass, as probabilities.
    pub(crate) fn cls_attention(&self, head: usize, t: usize, out: &mut [f32]) {
        for (a, &p) in out.iter_mut().zip(&self.probs[head * t..][..t]) {
            *a = p as f32 / (1u32 << PROB_FRAC_BITS) as f32;
        }
    }
}

/// The kernel an int8 model runs: the scalar definition or a SIMD kernel
/// with its weight layout (made once per model). Holding a SIMD kernel is
/// the proof that this CPU can run it.
#[derive(Clone, Debug)]
pub(crate) enum Kernel {
    Scalar,
    #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
    Avx2(Box<avx2::Kernel>),
    #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
    Avx512Vnni(Box<avx512vnni::Kernel>),
    #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
    AvxVnni(Box<avxvnni::Kernel>),
    #[cfg(all(feature = "hosted", target_arch = "aarch64"))]
    Dotprod(Box<dotprod::Kernel>),
    #[cfg(all(feature = "hosted", target_arch = "aarch64"))]
    Neon(Box<neon::Kernel>),
}

impl Kernel {
    /// `backend`'s int8 kernel for this model, or `None` when the backend
    /// has none or this CPU lacks it.
    pub(crate) fn of(backend: Backend, w: &Weights<'_>, shape: &Shape) -> Option<Kernel> {
        match backend {
            Backend::Scalar => Some(Kernel::Scalar),
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            Backend::Avx2 => avx2::Kernel::new(w, shape).map(|k| Kernel::Avx2(Box::new(k))),
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            Backend::Avx512Vnni => avx512vnni::Kernel::new(w, shape).map(|k| Kernel::Avx512Vnni(Box::new(k))),
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            Backend::AvxVnni => avxvnni::Kernel::new(w, shape).map(|k| Kernel::AvxVnni(Box::new(k))),
            #[cfg(all(feature = "hosted", target_arch = "aarch64"))]
            Backend::Dotprod => dotprod::Kernel::new(w, shape).map(|k| Kernel::Dotprod(Box::new(k))),
            #[cfg(all(feature = "hosted", target_arch = "aarch64"))]
            Backend::Neon => neon::Kernel::new(w, shape).map(|k| Kernel::Neon(Box::new(k))),
            #[allow(unreachable_patterns)]
            _ => {
                let _ = (w, shape); // read only where this architecture has kernels
                None
            }
        }
    }

    /// The backend whose code runs.
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Kernel::Scalar => Backend::Scalar,
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            Kernel::Avx2(_) => Backend::Avx2,
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            Kernel::Avx512Vnni(_) => Backend::Avx512Vnni,
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            Kernel::AvxVnni(_) => Backend::AvxVnni,
            #[cfg(all(feature = "hosted", target_arch = "aarch64"))]
            Kernel::Dotprod(_) => Backend::Dotprod,
            #[cfg(all(feature = "hosted", target_arch = "aarch64"))]
            Kernel::Neon(_) => Backend::Neon,
        }
    }

    /// One inference. `weights` looks the model's tensors up in its blob
    /// (~340 instructions); the kernels of the shipped geometry hold what
    /// they read and never call it.
    pub(crate) fn forward<'m>(
        &self,
        weights: impl FnOnce() -> Weights<'m>,
        shape: &Shape,
        image: &[u8],
        s: &mut Scratch,
    ) {
        match self {
            Kernel::Scalar => forward(&weights(), shape, image, s),
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            Kernel::Avx2(k) => k.forward(weights, shape, image, s),
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            Kernel::Avx512Vnni(k) => k.forward(shape, image, s),
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            Kernel::AvxVnni(k) => k.forward(shape, image, s),
            #[cfg(all(feature = "hosted", target_arch = "aarch64"))]
            Kernel::Dotprod(k) => k.forward(shape, image, s),
            #[cfg(all(feature = "hosted", target_arch = "aarch64"))]
            Kernel::Neon(k) => k.forward(weights, shape, image, s),
        }
    }
}

/// `x / 2^s`, rounded half up. The one rounding rule of the int8 path.
#[inline]
pub fn round_shift(x: i64, s: u32) -> i64 {
    if s == 0 {
        x
    } else {
        (x + (1 << (s - 1))) >> s
    }
}

#[inline]
fn saturate_i16(x: i64) -> i16 {
    x.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// Checks what the arithmetic's bounds rely on, so a hostile blob with a
/// valid checksum cannot make any intermediate overflow.
pub(crate) fn validate(w: &Weights<'_>, shape: &Shape) -> Result<(), LoadError> {
    let out_of_range = |tensor, index, reason| Err(LoadError::OutOfRange { tensor, index, reason });
    if let Some(i) = w.patch_weight.iter().position(|&q| q < -PATCH_WEIGHT_LIMIT) {
        return out_of_range(TensorId::Int8PatchWeight, i, "-128 is not a symmetric int8 weight");
    }
    // Every patch accumulator times its channel's scale, plus the largest
    // bias and the rounding offset, must fit in i32.
    let d = shape.dim as usize;
    let max_acc = shape.patch_len() as i64 * 255 * PATCH_WEIGHT_LIMIT as i64;
    let rounding = (1i64 << w.params.z_shift) >> 1;
    for (o, &scale) in w.patch_scale.iter().enumerate() {
        let max_bias = w.token_bias.iter().skip(o).step_by(d).map(|b| (*b as i64).abs()).max().unwrap_or(0);
        if scale < 1 || max_acc * scale as i64 + max_bias + rounding > i32::MAX as i64 {
            return out_of_range(TensorId::Int8PatchScale, o, "patch scale would overflow the i32 accumulator");
        }
    }
    let wide = |tensor, values: &[i16]| match values.iter().position(|v| v.unsigned_abs() > WIDE_WEIGHT_LIMIT as u16) {
        Some(i) => out_of_range(tensor, i, "i16 weight magnitude above 2047"),
        None => Ok(()),
    };
    wide(TensorId::Int8ScoreWeight, w.score_weight)?;
    wide(TensorId::Int8HeadWeight, w.head_weight)?;
    // The CLS token is a normalised vector: L2 norm 2^14 (and rounding).
    let norm2: i64 = w.cls_norm.iter().map(|&v| v as i64 * v as i64).sum();
    if norm2 > ((1i64 << NORM_BITS) + 64).pow(2) {
        return out_of_range(TensorId::Int8ClsNorm, 0, "not a normalised vector (L2 norm above 2^14)");
    }
    if w.params.ln_eps > ln_eps_limit(shape.dim) {
        return out_of_range(TensorId::Int8Params, 1, "LayerNorm epsilon would overflow the i32 variance");
    }
    let bounded = |tensor, values: &[i32]| match values.iter().position(|v| v.unsigned_abs() > 1 << 29) {
        Some(i) => out_of_range(tensor, i, "magnitude above 2^29"),
        None => Ok(()),
    };
    bounded(TensorId::Int8ClsScore, w.cls_score)?;
    bounded(TensorId::Int8HeadBias, w.head_bias)
}

/// Patch embedding: u8 pixels → the i16 grid LayerNorm reads, `(T-1) × D`.
/// About 90 % of the work; the SIMD backends replace this stage. Each
/// patch's inked pixels are gathered into `ink` (`P² + 1` words) once, then
/// the channels' dot products run over them two at a time ([`ink::Ink`]).
pub(crate) fn patch_embed(w: &Weights<'_>, shape: &Shape, image: &[u8], ink: &mut [u32], z: &mut [i16]) {
    let (side, p, d, k) = (shape.image_side as usize, shape.patch_side as usize, shape.dim as usize, shape.patch_len());
    let grid = shape.grid();
    // round_shift_i32 with the rounding made once; validate() keeps
    // acc · scale + bias + the rounding within i32.
    let (shift, rounding) = (w.params.z_shift, (1 << w.params.z_shift) >> 1);
    // saturate_z in i32.
    let zc = z_limit(shape.dim);
    let finish = |acc: i32, scale: i32, bias: i32| ((acc * scale + bias + rounding) >> shift).clamp(-zc, zc) as i16;
    for (patch, z) in z.chunks_exact_mut(d).enumerate().take(shape.patches()) {
        let (r, c) = (patch / grid, patch % grid);
        let ink = ink::Ink::gather(image, r * p * side + c * p, side, p, ink);
        let bias = &w.token_bias[patch * d..][..d];
        let pairs = z.chunks_exact_mut(2).zip(w.patch_weight.chunks_exact(2 * k));
        for ((z, rows), (scale, bias)) in pairs.zip(w.patch_scale.chunks_exact(2).zip(bias.chunks_exact(2))) {
            let (a, b) = ink.dot2(&rows[..k], &rows[k..]);
            z[0] = finish(a, scale[0], bias[0]);
            z[1] = finish(b, scale[1], bias[1]);
        }
        if d % 2 == 1 {
            let row = &w.patch_weight[(d - 1) * k..][..k];
            z[d - 1] = finish(ink.dot2(row, row).0, w.patch_scale[d - 1], bias[d - 1]);
        }
    }
}

/// The saturation of the LayerNorm input `z` for a model of `d` channels:
/// to ±[`z_limit`]`(d)`.
#[inline]
pub fn saturate_z(x: i64, d: u32) -> i16 {
    let zc = z_limit(d) as i64;
    x.clamp(-zc, zc) as i16
}

/// The LayerNorm input limit `Zc` for `d` channels: the patch embedding
/// saturates `z` to ±Zc, so that `D·Zc²` (which bounds Σz² and the
/// centring product) stays below 2^31 and `z - m` fits i16. 8191 for
/// D ≤ 32, 4095 for D ≤ 128.
#[inline]
pub const fn z_limit(d: u32) -> i32 {
    let ceil_log2 = if d <= 1 { 0 } else { 32 - (d - 1).leading_zeros() };
    let zc = (1 << ((31 - ceil_log2) / 2)) - 1;
    if zc < 16383 {
        zc
    } else {
        16383
    }
}

/// The largest LayerNorm epsilon `E` for `d` channels: `D·Zc² + E`, which
/// bounds `Σz² + E`, must fit i32.
pub const fn ln_eps_limit(d: u32) -> i32 {
    let zc = z_limit(d) as i64;
    (i32::MAX as i64 - d as i64 * zc * zc) as i32
}

/// `2^22 / √m` for `m` in [2^14, 2^16), in [2^14, 2^15): a quadratic first
/// guess (2.7 %) and two Newton steps, relative error below 6e-5 (a test
/// checks every `m`). Every product stays below 2^31.
#[inline]
pub const fn rsq(m: i32) -> i32 {
    let mut y = 43195 + ((m * (-12837 + ((m * 1535) >> 14))) >> 14);
    let mut step = 0;
    while step < 2 {
        let t = (y * y) >> 14;
        let w = (t * m) >> 14;
        y += (y * (65536 - w)) >> 17;
        step += 1;
    }
    if y < 32767 {
        y
    } else {
        32767
    }
}

/// `(a·b + 2^14) >> 15`: `vpmulhrsw`, NEON `sqrdmulh` on i16.
#[inline]
pub const fn mulhrs(a: i16, b: i16) -> i16 {
    ((a as i32 * b as i32 + (1 << 14)) >> 15) as i16
}

/// One token's LayerNorm constants from `Σz²` (z within ±[`z_limit`]) and
/// the epsilon: `(2^a, Y)`, with which every channel is
/// `n = mulhrs(z · 2^a, Y)` = `z · 2^14 / √U` with `U = Σz² + E`. No mean
/// is taken: the converter centres the patch weights and token biases over
/// the channels, so the mean of `z` is zero up to rounding, and what
/// rounding leaves is a constant on every channel that the zero-sum score
/// and head rows cancel (docs/FIXED_POINT.md).
#[inline]
pub fn ln_constants(sum_sq: i32, eps: i32) -> (i32, i32) {
    let u = (sum_sq + eps).max(1);
    // U in [4^k, 4^(k+1)), normalised to [2^14, 2^16).
    let k = (31 - u.leading_zeros()) / 2;
    let mm = if k >= 7 { u >> (2 * k - 14) } else { u << (14 - 2 * k) };
    let y = rsq(mm);
    if k <= 14 {
        (1 << (14 - k), y)
    } else {
        (1, (y + 1) >> 1)
    }
}

/// Integer LayerNorm of one token without its affine (folded downstream)
/// and without its mean (folded into the converter's centred weights):
/// `n = z · 2^14 / √U` per [`ln_constants`], an i16 vector of L2 norm
/// 2^14 (up to rounding).
/// `z` is within ±[`z_limit`] (the embedding saturates it there).
pub(crate) fn layer_norm(z: &[i16], ln_eps: i32, out: &mut [i16]) {
    let (scale, y) = ln_constants(dot::dot_i16(z, z), ln_eps);
    for (n, &v) in out.iter_mut().zip(z) {
        // |z| · 2^a < 2^15 (docs/FIXED_POINT.md): exact in i16.
        let x = v as i32 * scale;
        *n = mulhrs(x as i16, y as i16);
    }
}

/// `2^x` for a Q.16 `x ≤ 0` (scores are in log2 units: the converter folds
/// log2 e into them), in Q.22: exactly 2^22 at 0, 0 below -22. The
/// fraction's top 3 bits pick `2^(j/8)` from a table, a cubic (minimax on
/// [0, 1/8)) gives `2^(g/2^16) - 1` for the other 13 in Q.19; relative
/// error below 3e-6 before the final shift (a test checks every fraction).
/// Every product fits u32.
#[inline]
pub fn exp2_q22(x: i32) -> u32 {
    let x = x.max(EXP_FLOOR);
    let (i, f) = (x >> 16, (x & 0xffff) as u32);
    let (j, g) = ((f >> 13) as usize, f & 0x1fff);
    let q = 62929 + ((g * 15170) >> 16);
    let q = 181705 + ((g * q) >> 16);
    let h = (g * q) >> 15;
    let e = EXP2_Q24[j] + ((EXP2_Q15[j] * h) >> 10);
    e >> (2 - i) as u32
}

/// The reciprocal of a softmax's sum of exponentials (`Σ ≥ 2^22`, the
/// maximum's): `⌊(2^32 - 1) / (Σ >> 6)⌋`, one u32 division per head.
#[inline]
pub fn softmax_recip(sum: u32) -> u32 {
    u32::MAX / (sum >> 6)
}

/// A probability in Q.14 from its exponential and [`softmax_recip`]:
/// `e·2^14/Σ`. `(e + 32) >> 6 ≤ Σ >> 6`, so the product fits u32.
#[inline]
pub fn prob_q14(e: u32, recip: u32) -> i32 {
    let e16 = (e + 32) >> 6;
    ((((e16 * recip) >> 1) + (1 << 16)) >> 17) as i32
}

/// Fixed-point softmax: Q.16 scores in log2 units → Q.14 probabilities.
pub fn softmax(scores: &[i32], probs: &mut [i32]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    // Σ ≤ T · 2^22 < 2^31 for T ≤ 257.
    let mut sum = 0u32;
    for (p, &s) in probs.iter_mut().zip(scores) {
        let e = exp2_q22(s - max);
        *p = e as i32; // kept for the second pass
        sum += e;
    }
    let recip = softmax_recip(sum);
    for p in probs.iter_mut() {
        *p = prob_q14(*p as u32, recip);
    }
}

/// The whole int8 forward pass; logits land in `s.logits_fixed` (Q.16) and,
/// converted, in `s.logits`; each head's CLS probabilities (Q.14) in
/// `s.probs`.
pub(crate) fn forward(w: &Weights<'_>, shape: &Shape, image: &[u8], s: &mut Scratch) {
    patch_embed(w, shape, image, &mut s.ink, &mut s.tokens);
    attend_and_classify(w, shape, s);
}

/// Everything after the patch embedding: LayerNorm of every patch token,
/// then [`attend`]. Inlined into each backend's entry point, so it is
/// compiled for its instruction set.
#[inline(always)]
pub(crate) fn attend_and_classify(w: &Weights<'_>, shape: &Shape, s: &mut Scratch) {
    let d = shape.dim as usize;
    for (z, n) in s.tokens.chunks_exact(d).zip(s.norm.chunks_exact_mut(d)) {
        layer_norm(z, w.params.ln_eps, n);
    }
    attend(w, shape, s);
}

/// Scores, softmax, attention-weighted means and logits from the
/// normalised patch tokens in `s.norm`.
#[inline(always)]
pub(crate) fn attend(w: &Weights<'_>, shape: &Shape, s: &mut Scratch) {
    let (d, heads, t_count) = (shape.dim as usize, shape.heads as usize, shape.tokens() as usize);
    let (patches, classes) = (t_count - 1, shape.classes as usize);
    let norm = &s.norm;
    let mut logits_acc = [0i64; MAX_CLASSES as usize];
    for head in 0..heads {
        // Scores: the CLS token's own is a constant, the patches' are one
        // dot product each (W_k and the CLS query folded at convert time).
        let scores = &mut s.scores[..t_count];
        scores[0] = w.cls_score[head];
        let g = &w.score_weight[head * d..][..d];
        for t in 0..patches {
            let acc = dot::dot_i16(g, &norm[t * d..][..d]);
            scores[1 + t] = round_shift(acc as i64, w.params.score_shift) as i32;
        }
        let probs = &mut s.probs[head * t_count..][..t_count];
        softmax(scores, probs);

        // Attention-weighted mean of the normalised tokens: token by
        // token over contiguous rows, so it vectorises.
        let mut acc = [0i32; MAX_DIM as usize];
        let acc = &mut acc[..d];
        for (a, &n) in acc.iter_mut().zip(w.cls_norm) {
            *a = probs[0] * n as i32;
        }
        dot::weighted_sum(&probs[1..], &norm[..patches * d], acc);
        let mean = &mut s.mean[..d];
        for (m, &a) in mean.iter_mut().zip(acc.iter()) {
            *m = saturate_i16(round_shift(a as i64, PROB_FRAC_BITS));
        }
        for (c, total) in logits_acc.iter_mut().take(classes).enumerate() {
            let row = &w.head_weight[(head * classes + c) * d..][..d];
            *total += dot::dot_i16(row, mean) as i64;
        }
    }
    finish_logits(w, &logits_acc[..classes], s);
}

/// Q.16 logits from the head accumulators (summed over heads), and their
/// f32 form for the convenience API.
#[inline(always)]
pub(crate) fn finish_logits(w: &Weights<'_>, acc: &[i64], s: &mut Scratch) {
    finish_logits_with(w.params.head_shift, w.head_bias, acc, &mut s.logits_fixed, &mut s.logits);
}

/// [`finish_logits`] from the head shift and bias alone, into the Q.16
/// logits `fixed` and their f32 form `float`.
pub(crate) fn finish_logits_with(
    head_shift: u32,
    head_bias: &[i32],
    acc: &[i64],
    fixed: &mut [i32],
    float: &mut [f32],
) {
    let outputs = fixed.iter_mut().zip(float.iter_mut());
    for ((fixed, float), (&acc, &bias)) in outputs.zip(acc.iter().zip(head_bias)) {
        let logit = bias as i64 + round_shift(acc, head_shift);
        *fixed = logit.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        *float = *fixed as f32 / (1u32 << LOGIT_FRAC_BITS) as f32;
    }
}

/// What the portable models of the SIMD kernels' layouts (in each kernel's
/// tests, run on every x86-64 CPU whether or not it has the kernel's
/// instructions) and the aarch64 kernels' tests (under qemu) compare
/// against: the shipped int8 models, images with blank, full and random
/// pixels, and the scalar patch embedding.
#[cfg(all(test, feature = "std", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) mod layout_check {
    use crate::model::Model;

    pub(crate) fn shipped_models() -> Vec<Model<'static>> {
        ["microvit-seed.int8.mvit", "microvit-4k.int8.mvit"]
            .iter()
            .map(|name| {
                let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(name);
                Model::from_bytes(&std::fs::read(&path).unwrap()).unwrap()
            })
            .collect()
    }

    /// A deterministic xorshift64 stream from `seed` (non-zero): the kernels'
    /// tests' random inputs, the same on every run.
    pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// A kernel's last logit step, `finish(sums, head_shift, bias, fixed,
    /// float)` on 16 class lanes (`bias` zero past the classes; `fixed`
    /// and `float` as long as the class count), against the scalar's
    /// (`int8::finish_logits_with` in i64): every head shift the loader
    /// accepts (0..=48), sums up to the bound the lane-wise tails prove
    /// (eight heads of below 1.92·10^8) and biases up to the loader's
    /// 2^29, every class count; nothing written past the classes.
    pub(crate) fn check_last_logit_step(
        mut finish: impl FnMut(
            &[i32; super::shipped::CLASSES],
            u32,
            &[i32; super::shipped::CLASSES],
            &mut [i32],
            &mut [f32],
        ),
    ) {
        const CLASSES: usize = super::shipped::CLASSES;
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let bound = 8 * 192_000_000i64;
        let edges = [0, 1, -1, 2, -2, 3, -3, bound, -bound, 1 << 30, -(1 << 30), 65535, -65536, 1 << 16];
        let mut checked = 0;
        for shift in 0..=48u32 {
            for classes in 1..=CLASSES {
                for round in 0..4 {
                    let acc: [i32; CLASSES] = std::array::from_fn(|c| match round {
                        0 => edges[c % edges.len()] as i32,
                        _ => ((next() % (2 * bound as u64 + 1)) as i64 - bound) as i32,
                    });
                    let limit = 1i64 << 29;
                    let padded: [i32; CLASSES] = std::array::from_fn(|c| match ((round + c) % 3, c < classes) {
                        (_, false) => 0,
                        (0, true) => [limit, -limit][c % 2] as i32,
                        _ => ((next() % (2 * limit as u64 + 1)) as i64 - limit) as i32,
                    });
                    let bias = &padded[..classes];
                    let (mut fixed, mut float) = ([7i32; CLASSES], [7.0f32; CLASSES]);
                    finish(&acc, shift, &padded, &mut fixed[..classes], &mut float[..classes]);
                    let wide: Vec<i64> = acc[..classes].iter().map(|&v| v as i64).collect();
                    let (mut want_fixed, mut want_float) = (vec![0i32; classes], vec![0f32; classes]);
                    super::finish_logits_with(shift, bias, &wide, &mut want_fixed, &mut want_float);
                    assert_eq!(fixed[..classes], want_fixed[..], "shift {shift} sums {wide:?} bias {bias:?}");
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&float[..classes]), bits(&want_float), "shift {shift}");
                    assert!(fixed[classes..].iter().all(|&v| v == 7) && float[classes..].iter().all(|&v| v == 7.0));
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 49 * CLASSES * 4);
    }

    /// 28 × 28 images: blank, all 255, and random ones with about a fifth
    /// of the pixels inked, as digits have (one under miri, where each
    /// costs minutes in the layout models' byte-by-byte loops).
    pub(crate) fn images() -> Vec<Vec<u8>> {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut images = vec![vec![0u8; 784], vec![255u8; 784]];
        for _ in 0..if cfg!(miri) { 1 } else { 20 } {
            images.push((0..784).map(|_| if next().is_multiple_of(5) { next() as u8 } else { 0 }).collect());
        }
        images
    }

    /// `images()`, then for every pixel an image with only it inked (the
    /// first 30 under miri): what ink masks are tested on.
    pub(crate) fn images_and_single_pixels() -> Vec<Vec<u8>> {
        let mut next = xorshift(0x51_7cc1_b727_220a);
        let mut inputs = images();
        for at in 0..if cfg!(miri) { 30 } else { 784 } {
            let mut image = vec![0u8; 784];
            image[at] = 1 + (next() % 255) as u8;
            inputs.push(image);
        }
        inputs
    }

    /// The scalar embedding, `[patch][channel]`.
    pub(crate) fn scalar_z(model: &Model<'_>, image: &[u8]) -> Vec<i16> {
        let shape = model.shape();
        let mut z = vec![0i16; shape.patches() * shape.dim as usize];
        let mut ink = vec![0; shape.patch_len() + 1];
        super::patch_embed(&model.int8_weights(), &shape, image, &mut ink, &mut z);
        z
    }

    /// `saturate_z(round_shift(acc · scale + bias, z_shift), d)` with the
    /// rounding already in `bias`, as the kernels compute it in i32.
    pub(crate) fn finish(acc: i32, scale: i32, bias: i32, z_shift: u32, d: u32) -> i16 {
        let v = acc.wrapping_mul(scale).wrapping_add(bias) >> z_shift;
        let zc = super::z_limit(d);
        v.clamp(-zc, zc) as i16
    }

    /// `vpdpbusd`'s lane: four u8 × i8 products added to `acc`.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn dpbusd(acc: i32, pixels: [u8; 4], weights: i32) -> i32 {
        let w = weights.to_le_bytes();
        (0..4).fold(acc, |a, j| a + pixels[j] as i32 * w[j] as i8 as i32)
    }
}

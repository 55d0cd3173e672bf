//! The int8 pass with the Armv8.2 dot product (`udot`, every recent phone):
//! the patch embedding over the pixel quads with ink, then the tail of
//! `neon_lanes.rs`, shared with NEON.
//!
//! A patch row's seven pixels are two dwords of 4 u8 (x 0..4 and x 3..7;
//! the second's weight for x = 3 is zero, so no read leaves the patch), and
//! only dwords with ink are visited (a digit inks about 61 of its 224): a
//! blank one adds zero, so the sums are the dense ones. `udot` multiplies
//! unsigned bytes, so the weights enter as `w + 128` (1..=255) and each
//! visited quad's pixel sum, from one more `udot` by ones, takes
//! `128 · Σp` back off before the scale: `Σ p·(w + 128) - 128·Σp = Σ p·w`
//! exactly (in u32 at most 56·255·255 < 2^22, so no lane wraps: 14 dwords
//! of 4, the pixel at x = 3 counted twice).
//!
//! Per inked quad: its dword in every lane (one `dup`), eight `udot` by
//! the weight dwords of four channels each, one for the pixel sum. Each
//! patch row is read as one u64, and a blank row costs a test. The token
//! rows are then transposed into channels (`neon::to_lanes`, by the tail).
//!
//! Geometry: the shipped one (`int8::shipped`).

use std::arch::aarch64::*;
use std::arch::asm;
use std::mem::MaybeUninit;

use super::neon::{fill_rows, finish32, load_row, Rows};
use super::neon_lanes;
use super::shipped::{self, DIM, PATCH, PATCHES, SIDE};
use super::Weights;
use crate::int8;
use crate::shape::Shape;
use crate::simd::aarch64::Dotprod;

/// Registers of four channels' weight dwords.
const REGS: usize = DIM / 4;

/// The int8 weights laid out for this kernel. In this order (`repr(C)`):
/// a patch's bias rows then lie within `ldp`'s reach of their start, which
/// rustc's own order lost whenever the tail's layout changed (two `add`s
/// for eight loads, 107 instructions a digit).
#[derive(Clone, Debug)]
#[repr(C)]
struct Layout {
    /// `[patch][channel]`: the bias.
    bias: [[i32; DIM]; PATCHES],
    /// `[y][h][register]`: group (y, h)'s weight dwords `w + 128` of
    /// channels 4·register..+4, as read from x = 3h (the byte of x = 3 in
    /// h = 1 is 128: weight zero); 128 for channels past D.
    weight: [[[[u8; 16]; REGS]; 2]; PATCH],
    scale: [i32; DIM],
    /// `[patch][channel]`: a blank patch's token (the bias alone).
    blank: [[i16; DIM]; PATCHES],
    tail: neon_lanes::Layout,
}

impl Layout {
    fn new(w: &Weights<'_>, shape: &Shape) -> Layout {
        let dwords = shipped::quad_dwords(w, shape);
        let weight = std::array::from_fn(|y| {
            std::array::from_fn(|h| {
                std::array::from_fn(|r| {
                    std::array::from_fn(|b| {
                        (dwords[4 * r + b / 4][2 * y + h].to_le_bytes()[b % 4] as i8 as i32 + 128) as u8
                    })
                })
            })
        });
        // `finish32`'s `srshl` rounds.
        let (bias, blank) = shipped::token_bias_and_blank(w, shape, false);
        Layout { weight, scale: shipped::patch_scale(w, shape), bias, blank, tail: neon_lanes::Layout::new(w, shape) }
    }
}

/// The dotprod int8 kernel of one model.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    cpu: Dotprod,
    layout: Layout,
}

impl Kernel {
    /// `None` when this CPU lacks the dot product instructions, or the model
    /// is not of the geometry this kernel takes.
    pub(crate) fn new(w: &Weights<'_>, shape: &Shape) -> Option<Kernel> {
        if !shipped::fits(shape) {
            return None;
        }
        let cpu = Dotprod::detect()?;
        Some(Kernel { cpu, layout: Layout::new(w, shape) })
    }

    pub(crate) fn forward(&self, shape: &Shape, image: &[u8], s: &mut int8::Scratch) {
        // SAFETY: `self.cpu` exists only if the dot product was detected.
        unsafe { forward(self.cpu, &self.layout, shape, image, s) }
    }
}

/// # Safety
/// The CPU must have the features `_cpu` proves.
#[target_feature(enable = "neon,dotprod")]
unsafe fn forward(_cpu: Dotprod, layout: &Layout, shape: &Shape, image: &[u8], s: &mut int8::Scratch) {
    let mut rows = MaybeUninit::uninit();
    let rows = embed(layout, image, int8::z_limit(shape.dim), &mut rows);
    neon_lanes::tail(&layout.tail, shape, rows, s);
}

/// `acc[lane] += Σ_b a[4·lane + b] · b[4·lane + b]` (unsigned bytes): `udot`,
/// written with `asm!` because `vdotq_u32` is not stable.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn udot(acc: uint32x4_t, a: uint8x16_t, b: uint8x16_t) -> uint32x4_t {
    let mut acc = acc;
    // SAFETY: `udot` reads the three registers and writes `acc`, nothing
    // else (no memory, no flags, no stack); this function's target feature
    // (reached only through the `Dotprod` token's entry point) makes it a
    // valid instruction on this CPU.
    unsafe {
        asm!(
            "udot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        )
    };
    acc
}

/// The embedding, one token row per patch: each inked quad's dword
/// multiplied into the 32 channels' accumulators, the pixel sum's offset
/// taken off, then `saturate_z(round_shift(acc · scale + bias, z_shift), D)`
/// (`z_limit` is `int8::z_limit(D)`); a blank patch's row is the bias's.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn embed<'r>(layout: &Layout, image: &[u8], z_limit: i32, rows: &'r mut MaybeUninit<Rows>) -> &'r Rows {
    require!(image.len() == SIDE * SIDE);
    let z_shift = layout.tail.params.z_shift;
    let ones = vdupq_n_u8(1);
    // Named accumulators rather than an array: LLVM copies an array's
    // registers around every loop (neon.rs). Zeroed after an inked patch
    // only: a blank one leaves them zero.
    let zero = vdupq_n_u32(0);
    let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7] = [zero; 8];
    let mut sum = zero;
    fill_rows(rows, |patch| {
        let rows = shipped::PatchRows::new(image, patch);
        // The pixel sum tells a blank patch (one `umaxv`: cheaper here
        // than the returned flag, which the rows then keep), so the flag
        // goes unused (and is not computed).
        rows.for_each_quad(&layout.weight, |weights, dword| {
            let pixels = vreinterpretq_u8_u32(vdupq_n_u32(dword));
            let w = weights.as_ptr().cast::<u8>();
            // SAFETY: bytes 0..64 and 64..128 of the group's 128 (a pointer
            // to the whole `[[u8; 16]; 8]`).
            let (w0, w1) = unsafe { (vld1q_u8_x4(w), vld1q_u8_x4(w.add(64))) };
            a0 = udot(a0, pixels, w0.0);
            a1 = udot(a1, pixels, w0.1);
            a2 = udot(a2, pixels, w0.2);
            a3 = udot(a3, pixels, w0.3);
            a4 = udot(a4, pixels, w1.0);
            a5 = udot(a5, pixels, w1.1);
            a6 = udot(a6, pixels, w1.2);
            a7 = udot(a7, pixels, w1.3);
            sum = udot(sum, pixels, ones);
        });
        if vmaxvq_u32(sum) == 0 {
            return load_row(&layout.blank[patch]);
        }
        // Σ p·(w + 128) - 128·Σp, exact in i32 (both below 2^22).
        let offset = vreinterpretq_s32_u32(vshlq_n_u32::<7>(sum));
        let acc = [a0, a1, a2, a3, a4, a5, a6, a7].map(|a| vsubq_s32(vreinterpretq_s32_u32(a), offset));
        [a0, a1, a2, a3, a4, a5, a6, a7, sum] = [zero; 9];
        finish32(&layout.scale, &layout.bias[patch], z_shift, z_limit, acc)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::layout_check::{images_and_single_pixels, scalar_z, shipped_models};
    use crate::int8::neon::token_rows;

    /// The embedding's token rows against the scalar embedding, where the
    /// CPU has the dot product (under qemu in CI, which sets
    /// `MICROVIT_EXPECT_BACKEND=dotprod`: then it must be there): the
    /// shipped models and random ones with 8-bit weights (`w + 128` from 1
    /// to 255).
    #[test]
    fn the_embedding_matches_scalar() {
        let Some(_cpu) = Dotprod::detect() else {
            let expected = std::env::var("MICROVIT_EXPECT_BACKEND").unwrap_or_default();
            assert_ne!(expected, "dotprod", "MICROVIT_EXPECT_BACKEND=dotprod, but the CPU lacks the dot product");
            eprintln!("no dot product on this CPU: nothing to compare");
            return;
        };
        let shape = Shape { image_side: 28, patch_side: 7, dim: 32, heads: 2, classes: 10 };
        let wide = [1, 3].map(|seed| crate::synthetic::random_int8_blob(shape, seed));
        let wide = wide.iter().map(|blob| crate::model::Model::from_bytes(blob).unwrap());
        for model in shipped_models().into_iter().chain(wide) {
            let (w, shape) = (model.int8_weights(), model.shape());
            let (layout, d) = (Layout::new(&w, &shape), shape.dim as usize);
            for image in images_and_single_pixels() {
                let want = scalar_z(&model, &image);
                let mut rows = MaybeUninit::uninit();
                // SAFETY: the dot product was detected above.
                let rows = unsafe { embed(&layout, &image, int8::z_limit(shape.dim), &mut rows) };
                for (patch, row) in token_rows(rows).iter().enumerate() {
                    for (o, &z) in row.iter().enumerate() {
                        let expected = if o < d { want[patch * d + o] } else { 0 };
                        assert_eq!(z, expected, "patch {patch} channel {o}");
                    }
                }
            }
        }
    }
}

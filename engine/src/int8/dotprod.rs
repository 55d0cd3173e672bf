//! The int8 pass with the Armv8.2 dot product (`sdot`, every recent phone):
//! the patch embedding with the 16 patches in lanes, then the tail of
//! `neon_lanes.rs`, shared with NEON.
//!
//! `sdot` multiplies signed bytes by signed bytes, so the u8 pixels enter as
//! `p - 128` (one `eor` with 0x80) and `128 · Σ_k w[o,k] · M_o` is folded
//! into the bias at load time. Exact, with no overflow anywhere, by the
//! loader's bound `K·255·127·M_o + |bias| + rounding ≤ 2^31 - 1` (K = 49
//! pixels; the 7 padding slots of a patch have weight 0): a patch's
//! `acc' = Σ w · (p - 128)` is at most `K·128·127 < 2^20` in magnitude;
//! `|acc' · M_o| ≤ K·128·127·M_o` is below the bound; so is the folded bias
//! `|bias + rounding + 128·M_o·Σw| ≤ |bias| + rounding + K·128·127·M_o`;
//! and their sum is the scalar's `acc · M_o + bias + rounding`, which the
//! bound keeps in i32.
//!
//! Layout: lane C of `P[g][R]` is the dword of 4 pixels of group g (row
//! g / 2, columns 4(g % 2)..+4) of the patch in patch row R, column C,
//! made from an image row by one `tbl`; `sdot` by element multiplies it by
//! one channel's weight dword, four groups held in one register.
//!
//! Geometry: the shipped one (`int8::shipped`).

use std::arch::aarch64::*;
use std::arch::asm;
use std::mem::MaybeUninit;

use super::neon_lanes::{self, Tokens};
use super::shipped::{self, DIM, GROUPS, PATCH, PATCHES, SIDE};
use super::Weights;
use crate::int8;
use crate::shape::Shape;
use crate::simd::aarch64::Dotprod;

/// Patch rows (and columns) of the image.
const GRID: usize = SIDE / PATCH;
/// Registers of four weight dwords a channel: groups 4r..4r + 3.
const QUADS: usize = GROUPS.div_ceil(4);

/// The int8 weights laid out for this kernel.
#[derive(Clone, Debug)]
struct Layout {
    /// `[channel][quad]`: the weight dwords of groups 4r..4r + 3 (zero past
    /// the last group and channel D).
    weight: [[[i8; 16]; QUADS]; DIM],
    scale: [i32; DIM],
    /// `[channel][patch]`: the bias with the rounding offset of `z_shift`
    /// and the pixels' offset `128 · M_o · Σ_k w[o,k]` folded in.
    bias: [[i32; PATCHES]; DIM],
    tail: neon_lanes::Layout,
}

impl Layout {
    fn new(w: &Weights<'_>, shape: &Shape) -> Layout {
        let dwords = shipped::patch_dwords(w, shape);
        let weight = dwords.map(|row| {
            std::array::from_fn(|r| {
                let mut quad = [0i8; 16];
                for (b, q) in quad.iter_mut().enumerate() {
                    if let Some(&dword) = row.get(4 * r + b / 4) {
                        *q = dword.to_le_bytes()[b % 4] as i8;
                    }
                }
                quad
            })
        });
        let scale = shipped::patch_scale(w, shape);
        let mut bias = shipped::token_bias_by_channel(w, shape);
        for ((bias, quads), &scale) in bias.iter_mut().zip(&weight).zip(&scale) {
            let sum: i32 = quads.iter().flatten().map(|&q| q as i32).sum();
            for b in bias.iter_mut() {
                *b += 128 * scale * sum;
            }
        }
        Layout { weight, scale, bias, tail: neon_lanes::Layout::new(w, shape) }
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
    let mut z = MaybeUninit::uninit();
    neon_lanes::tail(&layout.tail, shape, embed(layout, image, int8::z_limit(shape.dim) as i16, &mut z), s);
}

/// `acc[lane] += Σ_b pixels[4·lane + b] · weights[4·L + b]` (signed bytes):
/// `sdot` by element, written with `asm!` because `vdotq_laneq_s32` is not
/// stable.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot<const L: i32>(acc: int32x4_t, pixels: int8x16_t, weights: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: `sdot` reads the three registers and writes `acc`, nothing
    // else (no memory, no flags, no stack); this function's target feature
    // (reached only through the `Dotprod` token's entry point) makes it a
    // valid instruction on this CPU.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {p:v}.16b, {w:v}.4b[{l}]",
            acc = inout(vreg) acc,
            p = in(vreg) pixels,
            w = in(vreg) weights,
            l = const L,
            options(pure, nomem, nostack, preserves_flags),
        )
    };
    acc
}

/// The `tbl` indices of the pixel dwords of groups with first column 4h
/// from a row loaded as its columns 0..16 then 12..28 (32 bytes): byte j of
/// lane C is column 7C + 4h + j; 255 (a zero) for column 28, the 8th pixel
/// of the last patch, whose weight is zero.
const fn row_index(h: usize) -> [u8; 16] {
    let mut index = [0u8; 16];
    let mut b = 0;
    while b < 16 {
        let col = 7 * (b / 4) + 4 * h + b % 4;
        index[b] = if col < 16 {
            col as u8
        } else if col < SIDE {
            (col + 4) as u8
        } else {
            255
        };
        b += 1;
    }
    index
}
static ROW_INDEX: [[u8; 16]; 2] = [row_index(0), row_index(1)];

/// Patch embedding, channel by channel with the patches in lanes:
/// `saturate_z(round_shift(acc · scale + bias, z_shift), D)` as i16
/// (`limit` is `int8::z_limit(D)`), channel
/// c's 16 tokens in `result[c]`, written into `z`. Neither `z` nor the
/// pixel table is zeroed first: two memsets of ~1 KB, ~300 instructions.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn embed<'z>(layout: &Layout, image: &[u8], limit: i16, z: &'z mut MaybeUninit<[Tokens; DIM]>) -> &'z [Tokens; DIM] {
    require!(image.len() == SIDE * SIDE);
    // SAFETY: loads of 16-byte arrays.
    let index = unsafe { ROW_INDEX.each_ref().map(|i| vld1q_u8(i.as_ptr())) };
    let offset = vdupq_n_u8(0x80);
    // pixels[g][R]: the group's dwords of the four patches of patch row R.
    let mut table = MaybeUninit::<[[int8x16_t; GRID]; GROUPS]>::uninit();
    let slots = table.as_mut_ptr().cast::<int8x16_t>();
    for (r, row) in image.chunks_exact(SIDE).enumerate() {
        // SAFETY: bytes 0..16 and 12..28 of a 28-byte row.
        let table = unsafe { uint8x16x2_t(vld1q_u8(row.as_ptr()), vld1q_u8(row[12..].as_ptr())) };
        let (patch_row, y) = (r / PATCH, r % PATCH);
        for (h, &index) in index.iter().enumerate() {
            // p - 128 as i8: the top bit flipped.
            let dwords = veorq_u8(vqtbl2q_u8(table, index), offset);
            // SAFETY: element (2y + h, patch_row) of the GROUPS × GRID array.
            unsafe { slots.add((2 * y + h) * GRID + patch_row).write(vreinterpretq_s8_u8(dwords)) };
        }
    }
    // SAFETY: the 28 rows (y < 7, patch_row < 4) and both h wrote all
    // GROUPS × GRID = 14 × 4 elements.
    let pixels = unsafe { table.assume_init_ref() };
    let shift = vdupq_n_s32(-(layout.tail.params.z_shift as i32));
    let (floor, ceiling) = (vdupq_n_s16(-limit), vdupq_n_s16(limit));
    let out = z.as_mut_ptr().cast::<Tokens>();
    // Four channels (sixteen accumulators) at a time.
    for o0 in (0..DIM).step_by(4) {
        let mut acc = [[vdupq_n_s32(0); GRID]; 4];
        for quad in 0..QUADS {
            // SAFETY: loads of 16-byte arrays.
            let w: [int8x16_t; 4] = std::array::from_fn(|i| unsafe { vld1q_s8(layout.weight[o0 + i][quad].as_ptr()) });
            // Group 4·quad + L: its dword is lane L of the weights.
            macro_rules! group {
                ($lane:literal) => {
                    for (acc, &w) in acc.iter_mut().zip(&w) {
                        for (a, &p) in acc.iter_mut().zip(&pixels[4 * quad + $lane]) {
                            *a = sdot::<$lane>(*a, p, w);
                        }
                    }
                };
            }
            group!(0);
            group!(1);
            if 4 * quad + 2 < GROUPS {
                group!(2);
                group!(3);
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            let o = o0 + i;
            let v: [int32x4_t; GRID] = std::array::from_fn(|r| {
                // SAFETY: 4 of the 16 lanes of the channel's bias.
                let bias = unsafe { vld1q_s32(layout.bias[o][4 * r..].as_ptr()) };
                vshlq_s32(vmlaq_n_s32(bias, acc[r], layout.scale[o]), shift)
            });
            // sqxtn saturates to [-32768, 32767], the min and max to
            // saturate_z's ±Zc.
            let tokens = [0, 1]
                .map(|h| vminq_s16(vmaxq_s16(vqmovn_high_s32(vqmovn_s32(v[2 * h]), v[2 * h + 1]), floor), ceiling));
            // SAFETY: element o < DIM of the array.
            unsafe { out.add(o).write(tokens) };
        }
    }
    // SAFETY: the loops wrote every channel o = o0 + i < DIM.
    unsafe { z.assume_init_ref() }
}

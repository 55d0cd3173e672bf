//! The int8 pass on AVX-VNNI (the 256-bit VEX `vpdpbusd`/`vpdpwssd` of
//! Intel client CPUs since Alder Lake and AMD Zen 5, some without
//! AVX-512): the patch embedding of `avx512vnni.rs` on two registers of
//! eight lanes, tokens 0-7 (patch rows 0 and 1) and 8-15 (rows 2 and 3),
//! then the tail of `lanes.rs`, shared with AVX2 (whose `vpmaddwd` + add
//! pairs LLVM fuses into `vpdpwssd` here). Where AVX-512 had something
//! better: the dwords of pixels come from two 16-byte loads per image row
//! and `vpshufb` (no byte permute across lanes), and the weights of a dword
//! are stored already broadcast (no embedded broadcast), 14 KB for the 32
//! channels.
//!
//! Geometry: 28 × 28 images of 7 × 7 patches, at most 32 channels, 16
//! classes and 8 heads (`lanes::fits`).

use alloc::vec::Vec;
use std::arch::x86_64::*;

use super::lanes::{self, Lanes, DIM, GROUPS, PATCH, PATCHES, SIDE};
use super::Weights;
use crate::int8;
use crate::shape::Shape;
use crate::simd::x86::AvxVnni;

/// The int8 weights laid out for this kernel.
#[derive(Clone, Debug)]
struct Layout {
    /// `[channel][group]`: the 4 i8 weights of a dword of pixels, repeated
    /// in the 8 lanes (zero for the 8th pixel of a row and for padding).
    patch_weight: Vec<[[i32; 8]; GROUPS]>,
    scale: [i32; DIM],
    /// `[channel][patch]`, with the rounding offset of `z_shift` folded in.
    bias: [[i32; PATCHES]; DIM],
    /// The weights after the embedding.
    tail: lanes::Layout,
}

impl Layout {
    fn new(w: &Weights<'_>, shape: &Shape) -> Layout {
        Layout {
            patch_weight: lanes::patch_dwords(w, shape).iter().map(|row| row.map(|dword| [dword; 8])).collect(),
            scale: lanes::patch_scale(w, shape),
            bias: lanes::token_bias_by_channel(w, shape),
            tail: lanes::Layout::new(w, shape),
        }
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
        if !lanes::fits(shape) {
            return None;
        }
        let cpu = AvxVnni::detect()?;
        Some(Kernel { cpu, layout: Layout::new(w, shape) })
    }

    pub(crate) fn forward(&self, shape: &Shape, image: &[u8], s: &mut int8::Scratch) {
        // SAFETY: `self.cpu` exists only if AVX2 and AVX-VNNI were detected.
        unsafe { forward(self.cpu, &self.layout, shape, image, s) }
    }
}

/// # Safety
/// The CPU must have the features `_cpu` proves.
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn forward(_cpu: AvxVnni, layout: &Layout, shape: &Shape, image: &[u8], s: &mut int8::Scratch) {
    require!(image.len() == SIDE * SIDE && layout.patch_weight.len() == DIM);
    let z = embed(layout, image, layout.tail.params.z_shift, int8::z_limit(shape.dim));
    lanes::tail(&layout.tail, shape, &z, s);
}

/// The `vpshufb` indices of the pixel dwords with first column 4h: per
/// 128-bit lane (one patch row, four patches c = lane), byte j of lane c is
/// column 7c + 4h + j of the row, from the load at column 0 (c = 0, 1) or
/// at column 12 (c = 2, 3); 0x80 makes a zero (column 28, the 8th pixel of
/// the last patch, whose weight is zero anyway).
fn shuffle_bytes(h: usize, from: usize) -> [u8; 32] {
    std::array::from_fn(|b| {
        let (c, j) = ((b % 16) / 4, b % 4);
        let col = 7 * c + 4 * h + j;
        match (from, c) {
            (0, 0 | 1) => col as u8,
            (12, 2 | 3) if col < 28 => (col - 12) as u8,
            _ => 0x80,
        }
    })
}

/// Patch embedding, channel by channel with the patches in lanes:
/// `saturate_z(round_shift(acc · scale + bias, z_shift), D)` (`limit` is
/// `int8::z_limit(D)`), as the channel
/// pairs (z_2k, z_2k+1) of i16 that `lanes::tail` takes.
#[inline]
#[target_feature(enable = "avx2,avxvnni")]
fn embed(layout: &Layout, image: &[u8], z_shift: u32, limit: i32) -> [Lanes; DIM / 2] {
    require!(image.len() == SIDE * SIDE && layout.patch_weight.len() == DIM);
    // Per 128-bit lane (one patch row r, four patches c = lane): byte j of
    // lane c is column 7c + 4h + j of the row, from the load at column 0
    // (c = 0, 1) or at column 12 (c = 2, 3); 0x80 makes a zero (column 28,
    // the 8th pixel of the last patch, whose weight is zero anyway).
    let shuffle = |h: usize, from: usize| -> __m256i {
        let bytes = shuffle_bytes(h, from);
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
    let (floor, ceiling) = (_mm256_set1_epi32(-limit), _mm256_set1_epi32(limit));
    let mut z = [[_mm256_setzero_si256(); 2]; DIM / 2];
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
        let channel = |i: usize, half: usize| {
            let o = o0 + i;
            // SAFETY: 8 of the 16 lanes of the channel's bias.
            let bias = unsafe { _mm256_loadu_si256(layout.bias[o][8 * half..].as_ptr().cast()) };
            let scale = _mm256_set1_epi32(layout.scale[o]);
            let v = _mm256_sra_epi32(_mm256_add_epi32(_mm256_mullo_epi32(acc[i][half], scale), bias), shift);
            _mm256_min_epi32(_mm256_max_epi32(v, floor), ceiling)
        };
        for j in 0..2 {
            // (z_2k, z_2k+1): the first channel's low word, the second's
            // shifted up (both fit i16 once saturated).
            z[o0 / 2 + j] = std::array::from_fn(|half| {
                let (a, b) = (channel(2 * j, half), channel(2 * j + 1, half));
                _mm256_blend_epi16::<0b1010_1010>(a, _mm256_slli_epi32::<16>(b))
            });
        }
    }
    z
}

/// The embedding's layout modelled without AVX-VNNI (so it runs on every
/// x86-64 CPU): the loads, the byte shuffles, the broadcast weight dwords,
/// the folded bias and the channel pairs, against the scalar embedding.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::layout_check::{dpbusd, finish, images, scalar_z, shipped_models};

    #[test]
    fn the_embedding_layout_matches_scalar_on_any_cpu() {
        for model in shipped_models() {
            let (w, shape) = (model.int8_weights(), model.shape());
            let layout = Layout::new(&w, &shape);
            let d = shape.dim as usize;
            for image in images() {
                let want = scalar_z(&model, &image);
                // `vpshufb` on the 16 bytes from column `col` of image row
                // `r`: byte i of the result, per its 128-bit lane.
                let shuffled = |r: usize, col: usize, index: &[u8], i: usize| -> u8 {
                    let at = index[i];
                    if at & 0x80 != 0 {
                        0
                    } else {
                        image[r * SIDE + col + (at & 15) as usize]
                    }
                };
                for o in 0..DIM {
                    let mut acc = [0i32; PATCHES];
                    for g in 0..GROUPS {
                        let (y, h) = (g / 2, g % 2);
                        let (from_0, from_12) = (shuffle_bytes(h, 0), shuffle_bytes(h, 12));
                        for (token, a) in acc.iter_mut().enumerate() {
                            // Lane `token % 8` of register `token / 8`: its
                            // 128-bit half is patch row 2·(token / 8) + half.
                            let (lane, r) = (token % 8, 2 * (token / 8) + (token % 8) / 4);
                            let row = PATCH * r + y;
                            let pixels = std::array::from_fn(|j| {
                                let i = 16 * (lane / 4) + 4 * (lane % 4) + j;
                                shuffled(row, 0, &from_0, i) | shuffled(row, 12, &from_12, i)
                            });
                            *a = dpbusd(*a, pixels, layout.patch_weight[o][g][lane]);
                        }
                    }
                    for (patch, &a) in acc.iter().enumerate() {
                        let z = finish(a, layout.scale[o], layout.bias[o][patch], w.params.z_shift, d as u32);
                        let expected = if o < d { want[patch * d + o] } else { 0 };
                        assert_eq!(z, expected, "patch {patch} channel {o}");
                    }
                }
            }
        }
    }
}

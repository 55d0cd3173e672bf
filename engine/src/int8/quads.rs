//! The shipped geometry's patch embedding by pixel quads, shared by the
//! AVX2 and the AVX-VNNI kernels, which differ only in how they multiply a
//! quad (the `dot` they pass) before the tail of `lanes.rs`.
//!
//! A patch row's seven pixels are two dwords of 4 u8 (x 0..4 and x 3..7;
//! the second's weight for x = 3 is zero, so no read leaves the patch).
//! Only quads with ink are visited: a digit inks about 61 of its 224 quads
//! (counted over the test set), and a blank one adds zero, so
//! skipping it gives the same integers. Per inked quad, its dword
//! broadcast, then per eight channels `dot` adds the four products to each
//! channel's i32 lane: `vpdpbusd` on AVX-VNNI; `vpmaddubsw` and `vpmaddwd`
//! by ones on AVX2, exact for the 7-bit weights the converter writes
//! (2·255·63 < 2^15), so AVX2 takes this path only for those.
//!
//! The ink masks come first for every patch, branch-free, so each loop
//! starts with its mask ready; a blank patch's token is the bias alone, read
//! from `Layout::blank`. The token rows are then transposed into the channel
//! pairs `lanes::tail` takes.

use alloc::vec::Vec;
use std::arch::x86_64::*;

use super::avx2::finish_patch_packed;
use super::lanes::{self, DIM, PATCH, PATCHES, SIDE};
use super::Weights;
use crate::int8;
use crate::shape::Shape;
use crate::simd::x86::Bits;

/// Quad slots of a patch, one per bit of its 16-bit ink mask: slot `2y + h`
/// is row y's quad h (the slots of an 8th row are never set).
const SLOTS: usize = 16;

/// Each slot's first pixel from its patch's origin: y·28 + 3h (0 for the
/// 8th row's slots).
const OFFSET: [usize; SLOTS] = {
    let mut offset = [0; SLOTS];
    let mut slot = 0;
    while slot < lanes::GROUPS {
        offset[slot] = slot / 2 * SIDE + 3 * (slot % 2);
        slot += 1;
    }
    offset
};

/// The multiply of AVX2's quads: `acc` plus, per i32 lane, the four
/// products of `quad`'s u8 pixels and `weights`' i8: `vpmaddubsw`, then
/// `vpmaddwd` by ones. Exact only for weights within
/// ±`int8::BYTE_PAIR_WEIGHT_LIMIT` (2·255·63 < 2^15: no pair saturates),
/// which the caller checks.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn maddubs_dot(acc: __m256i, quad: __m256i, weights: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(quad, weights), _mm256_set1_epi16(1)))
}

/// The patch embedding's weights, laid out for the quads.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    /// `[SLOTS][DIM]`: the dword of a slot's four i8 weights per channel,
    /// zero for the 8th row's slots and for channels past D.
    weight: Vec<i32>,
    /// `[DIM]`, zero past D.
    scale: [i32; DIM],
    /// `[patch][channel]`, with the rounding offset of the `z_shift` folded
    /// in: the loader's range check bounds acc·scale + |bias| + rounding by
    /// i32::MAX, so the sum is the scalar's exactly.
    bias: [[i32; DIM]; PATCHES],
    /// The tokens of blank patches (no ink: the embedding is the bias
    /// alone), `[patch]` rows in `vpackssdw`'s order, as `embed` computes
    /// the others: dword k holds channel pair `lanes::packed_pair(k)`.
    blank: [[i16; DIM]; PATCHES],
}

impl Layout {
    /// For a model that `lanes::fits`.
    pub(super) fn new(w: &Weights<'_>, shape: &Shape) -> Layout {
        let dwords = lanes::quad_dwords(w, shape);
        let mut weight = vec![0; SLOTS * DIM];
        for (slot, row) in weight.chunks_exact_mut(DIM).take(lanes::GROUPS).enumerate() {
            for (o, v) in row.iter_mut().enumerate() {
                *v = dwords[o][slot];
            }
        }
        let (bias, blank) = lanes::token_bias_and_blank(w, shape, true);
        let blank = blank.map(|row| std::array::from_fn(|o| row[2 * lanes::packed_pair(o / 2) + o % 2]));
        Layout { weight, scale: lanes::patch_scale(w, shape), bias, blank }
    }
}

/// Every patch's quad mask: bit `2y + h` set when pixels (y, 4h..4h + 4)
/// of the patch (x < 7) have ink. A row of four patches at a time: per
/// image row, its eight quads as dwords compared with zero, packed to bytes
/// four rows a register, then regrouped by patch so that `vpmovmskb` gives
/// two patches' masks.
#[inline]
#[target_feature(enable = "avx2")]
fn ink_masks(image: &[u8]) -> [u16; PATCHES] {
    require!(image.len() == SIDE * SIDE);
    // Dword 2(c mod 2) + h of 128-bit lane L is quad h of patch c = 2L +
    // dword / 2 (from the load at column 0 for L = 0, at column 12 for
    // L = 1); 0x80, a zero, for x = 7, the next patch's pixel.
    let quads = {
        let bytes: [u8; 32] = std::array::from_fn(|b| {
            let (lane, dword, j) = (b / 16, (b % 16) / 4, b % 4);
            let (c, x) = (2 * lane + dword / 2, 4 * (dword % 2) + j);
            if x == PATCH {
                0x80
            } else {
                (PATCH * c + x - 12 * lane) as u8
            }
        });
        // SAFETY: an unaligned load of a 32-byte array.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    };
    // After the packs, byte 4y + 2(c mod 2) + h of a lane is row y's quad h
    // of its patch c; this gathers each patch's eight bytes, rows in order.
    let by_patch = {
        let bytes: [u8; 32] = std::array::from_fn(|b| {
            let (half, y, h) = ((b % 16) / 8, (b % 8) / 2, b % 2);
            (4 * y + 2 * half + h) as u8
        });
        // SAFETY: as above.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    };
    let zero = _mm256_setzero_si256();
    // Two patches' masks a u32 (x86-64 is little-endian: the first patch's
    // in the low half, as the [u16] it is read as).
    let mut inks = [0u32; PATCHES / 2];
    for (r, inks) in inks.chunks_exact_mut(2).enumerate() {
        // All ones (blank) in every quad of row y.
        let blank = |y: usize| {
            if y == PATCH {
                return _mm256_cmpeq_epi32(zero, zero);
            }
            let at = image.as_ptr().wrapping_add((PATCH * r + y) * SIDE);
            // SAFETY: 16 bytes from column 0 and from column 12 of an image
            // row: inside the image (row 27's end at 784, asserted length).
            let row = unsafe { _mm256_loadu2_m128i(at.add(12).cast(), at.cast()) };
            _mm256_cmpeq_epi32(_mm256_shuffle_epi8(row, quads), zero)
        };
        let four_rows = |y: usize| {
            let (a, b) = (_mm256_packs_epi32(blank(y), blank(y + 1)), _mm256_packs_epi32(blank(y + 2), blank(y + 3)));
            _mm256_shuffle_epi8(_mm256_packs_epi16(a, b), by_patch)
        };
        // Qwords (patch 2L's eight bytes, patch 2L + 1's) in lane L,
        // reordered to patches 0, 2 | 1, 3: the unpacks then leave patches
        // 0 | 1 in one register, 2 | 3 in the other, so each `vpmovmskb` is
        // two patches' masks in order.
        let regroup = |v: __m256i| _mm256_permute4x64_epi64::<0b11_01_10_00>(v);
        let (top, bottom) = (regroup(four_rows(0)), regroup(four_rows(4)));
        inks[0] = !(_mm256_movemask_epi8(_mm256_unpacklo_epi64(top, bottom)) as u32);
        inks[1] = !(_mm256_movemask_epi8(_mm256_unpackhi_epi64(top, bottom)) as u32);
    }
    bytemuck::cast(inks)
}

/// The 16 patch tokens as the channel pairs of `lanes::tail`, written to
/// `z` (at least 32 × 16 values): lane t of register (k, half), at
/// `16·(2k + half)`, is (z_2j, z_2j+1) of token 8·half + t, j =
/// `lanes::packed_pair(k)`. Every inked patch's row computed into `rows`
/// (at least 16 × 32 values), `dot(acc, quad, weights)` adding each dword
/// lane's four u8 × i8 products to acc; blank patches' rows copied from
/// `layout.blank`; then four 8 × 8 dword transposes (dword k of a row is
/// its channel pair `packed_pair(k)`, as `vpackssdw` left it: the tail
/// takes the pairs in that order, and no permute is spent on a row).
/// Returns each token's Σz² (`lanes::tail` takes them), tokens 0-7 and
/// 8-15 in the lanes of two registers.
#[inline]
#[target_feature(enable = "avx2,bmi1")]
pub(super) fn embed(
    layout: &Layout,
    shape: &Shape,
    z_shift: u32,
    image: &[u8],
    rows: &mut [i16],
    z: &mut [i16],
    dot: impl Fn(__m256i, __m256i, __m256i) -> __m256i,
) -> lanes::Lanes {
    require!(image.len() == SIDE * SIDE && rows.len() >= PATCHES * DIM && layout.weight.len() == SLOTS * DIM);
    require!(z.len() >= DIM * 16);
    let inks = ink_masks(image);
    let shift = _mm_cvtsi32_si128(z_shift as i32);
    let limit = _mm256_set1_epi16(int8::z_limit(shape.dim) as i16);
    // The 16 patches written out (a macro over the patch's literal), so
    // that each one's mask, row, blank row, bias and origin sit at
    // constant offsets and its branches are its own, which the predictor
    // learns patch by patch: a loop spent 5 of a blank patch's 12
    // instructions counting and stepping pointers (94 a digit, ~5 % of
    // the time, for ~4 KB of code in each kernel; unrolled by four
    // instead it saved 19, and a loop over a list of the inked patches
    // cost 28: docs/BENCHMARKS.md).
    macro_rules! patches {
        ($($patch:literal)*) => {$({
            let (ink, origin) = (inks[$patch], lanes::ORIGIN[$patch]);
            // A blank patch's row is copied, not computed, so the
            // transposes below read every row from one buffer at fixed
            // offsets.
            let [lo, hi] = if ink == 0 {
                let blank = &layout.blank[$patch];
                // SAFETY: two unaligned loads of the row's 32 values.
                unsafe { [_mm256_loadu_si256(blank.as_ptr().cast()), _mm256_loadu_si256(blank[16..].as_ptr().cast())] }
            } else {
                let mut acc = [_mm256_setzero_si256(); 4];
                for slot in Bits(u64::from(ink)) {
                    // SAFETY: slot < 16 = SLOTS: an entry of `OFFSET` and a
                    // row of `weight` (asserted length). The slot's 4
                    // pixels, at most 6·28 + 3 past an origin of at most
                    // 21·28 + 21, end by 784: inside the image (asserted
                    // length); unaligned.
                    unsafe {
                        let at = origin + *OFFSET.get_unchecked(slot);
                        let quad = _mm256_set1_epi32(image.as_ptr().add(at).cast::<i32>().read_unaligned());
                        let weights = layout.weight.as_ptr().add(slot * DIM);
                        for (b, a) in acc.iter_mut().enumerate() {
                            *a = dot(*a, quad, _mm256_loadu_si256(weights.add(8 * b).cast()));
                        }
                    }
                }
                // SAFETY: 32 values of the scale and of the patch's bias row.
                unsafe { finish_patch_packed(acc, layout.scale.as_ptr(), layout.bias[$patch].as_ptr(), shift, limit) }
            };
            let row = &mut rows[$patch * DIM..][..DIM];
            // SAFETY: the 32 values of the patch's row; unaligned stores.
            unsafe {
                _mm256_storeu_si256(row.as_mut_ptr().cast(), lo);
                _mm256_storeu_si256(row[16..].as_mut_ptr().cast(), hi);
            }
        })*};
    }
    patches!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    // Dwords k0..k0 + 8 (channel pairs) of tokens 8·half..8·half + 8.
    let block = |k0: usize, half: usize| {
        lanes::transpose8(std::array::from_fn(|i| {
            // SAFETY: 16 values from 2·k0 ≤ 16 of a token's row of 32
            // values, inside `rows` (asserted length); an unaligned load.
            unsafe { _mm256_loadu_si256(rows.as_ptr().add((8 * half + i) * DIM + 2 * k0).cast()) }
        }))
    };
    // Each block stored as it is made, into the scratch: a returned array
    // was spilled and copied, 50 instructions a digit. Its squares summed
    // while it is in registers: the tail would load every register again.
    let mut sum_sq = [_mm256_setzero_si256(); 2];
    let mut put = |k0: usize, half: usize, block: [__m256i; 8]| {
        for (i, v) in block.into_iter().enumerate() {
            sum_sq[half] = _mm256_add_epi32(sum_sq[half], _mm256_madd_epi16(v, v));
            // SAFETY: 16 values from 16·(2(k0 + i) + half) < 32·16, inside
            // `z` (asserted length); an unaligned store.
            unsafe { _mm256_storeu_si256(z.as_mut_ptr().add(16 * (2 * (k0 + i) + half)).cast(), v) };
        }
    };
    put(0, 0, block(0, 0));
    put(0, 1, block(0, 1));
    put(8, 0, block(8, 0));
    put(8, 1, block(8, 1));
    sum_sq
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::layout_check::{dpbusd, finish, images, images_and_single_pixels, scalar_z, shipped_models};
    use crate::shape::Shape;
    use crate::simd::x86::Avx2;

    /// The masks `ink_masks` defines: bit 2y + h of patch (r, c) is set
    /// when pixel (y, x) of it has ink for some x in 4h..4h + 4 below 7.
    fn masks_by_definition(image: &[u8]) -> [u16; PATCHES] {
        std::array::from_fn(|patch| {
            let (r, c) = (patch / 4, patch % 4);
            (0..SLOTS)
                .filter(|&b| {
                    let (y, h) = (b / 2, b % 2);
                    (4 * h..4 * h + 4)
                        .any(|x| x < PATCH && y < PATCH && image[(PATCH * r + y) * SIDE + PATCH * c + x] != 0)
                })
                .fold(0, |mask, b| mask | 1 << b)
        })
    }

    /// `ink_masks` against the definition, where the CPU has AVX2.
    #[test]
    fn the_ink_masks_match_their_definition() {
        let Some(_cpu) = Avx2::detect() else {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        };
        for image in &images_and_single_pixels() {
            // SAFETY: AVX2 was detected above.
            let got = unsafe { ink_masks(image) };
            assert_eq!(got, masks_by_definition(image));
        }
    }

    /// `embed`'s channel pairs against the scalar embedding, where the CPU
    /// has AVX2: the shipped models with AVX2's multiply (`vpmaddubsw`, exact
    /// for their 7-bit weights), and random models of the shipped geometry
    /// with 8-bit weights with `vpdpbusd`'s, modelled on AVX2 (bytes widened
    /// to i16, `vpmaddwd` on the even and the odd ones), as AVX-VNNI takes
    /// them.
    #[test]
    fn the_embedding_matches_scalar_with_either_multiply() {
        let Some(_cpu) = Avx2::detect() else {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        };
        let shape = Shape { image_side: 28, patch_side: 7, dim: 32, heads: 2, classes: 10 };
        let wide = [1, 3].map(|seed| crate::synthetic::random_int8_blob(shape, seed));
        let wide: Vec<_> = wide.iter().map(|blob| crate::model::Model::from_bytes(blob).unwrap()).collect();
        // SAFETY: AVX2 was detected above.
        let bytes = |acc, quad, weights| unsafe { maddubs_dot(acc, quad, weights) };
        let dpbusd = |acc, quad, weights| {
            // SAFETY: AVX2 was detected above.
            unsafe {
                let (p0, p1) = (_mm256_and_si256(quad, _mm256_set1_epi16(0xff)), _mm256_srli_epi16::<8>(quad));
                let (w0, w1) =
                    (_mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(weights)), _mm256_srai_epi16::<8>(weights));
                _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(p0, w0), _mm256_madd_epi16(p1, w1)))
            }
        };
        let check = |model: &crate::model::Model<'_>, seven_bits: bool| {
            let (w, shape) = (model.int8_weights(), model.shape());
            let d = shape.dim as usize;
            let limit = if seven_bits { crate::int8::BYTE_PAIR_WEIGHT_LIMIT } else { crate::int8::PATCH_WEIGHT_LIMIT };
            assert!(w.patch_weight.iter().all(|q| q.unsigned_abs() <= limit as u8));
            assert_eq!(!seven_bits, w.patch_weight.iter().any(|q| q.unsigned_abs() > 63), "a model of the other kind");
            let layout = Layout::new(&w, &shape);
            let (mut rows, mut z) = (vec![0i16; PATCHES * DIM], vec![0i16; DIM * 16]);
            for image in images() {
                let want = scalar_z(model, &image);
                // SAFETY: AVX2 (and BMI1, with it on every AVX2 CPU the
                // token accepts) was detected above.
                let sum_sq = unsafe {
                    match seven_bits {
                        true => embed(&layout, &shape, w.params.z_shift, &image, &mut rows, &mut z, bytes),
                        false => embed(&layout, &shape, w.params.z_shift, &image, &mut rows, &mut z, dpbusd),
                    }
                };
                let sum_sq: [i32; PATCHES] = bytemuck::cast(sum_sq);
                for (t, &got) in sum_sq.iter().enumerate() {
                    let expected: i32 = want[t * d..][..d].iter().map(|&v| i32::from(v) * i32::from(v)).sum();
                    assert_eq!(got, expected, "token {t}'s Σz²");
                }
                for k in 0..DIM / 2 {
                    let registers = &z[32 * k..][..32];
                    for t in 0..PATCHES {
                        // Lane t % 8 of register (k, t / 8): the dword
                        // (z_2j, z_2j+1).
                        let (at, j) = (16 * (t / 8) + 2 * (t % 8), lanes::packed_pair(k));
                        for (o, &got) in [2 * j, 2 * j + 1].iter().zip(&registers[at..at + 2]) {
                            let expected = if *o < d { want[t * d + o] } else { 0 };
                            assert_eq!(got, expected, "token {t} channel {o}");
                        }
                    }
                }
            }
        };
        for model in shipped_models() {
            check(&model, true);
        }
        for model in &wide {
            check(model, false);
        }
    }

    /// The layout modelled without SIMD (so it runs on every CPU): each
    /// inked slot's offset and weight dwords, the folded bias and the blank
    /// rows, against the scalar embedding.
    #[test]
    fn the_layout_matches_scalar_on_any_cpu() {
        for model in shipped_models() {
            let (w, shape) = (model.int8_weights(), model.shape());
            let layout = Layout::new(&w, &shape);
            let d = shape.dim as usize;
            for image in images() {
                let want = scalar_z(&model, &image);
                for (patch, ink) in masks_by_definition(&image).into_iter().enumerate() {
                    let origin = lanes::ORIGIN[patch];
                    for o in 0..DIM {
                        let z = if ink == 0 {
                            // Rows in packs order: packed_pair is its own inverse.
                            layout.blank[patch][2 * lanes::packed_pair(o / 2) + o % 2]
                        } else {
                            let acc = (0..SLOTS).filter(|b| ink >> b & 1 == 1).fold(0, |acc, slot| {
                                let at = origin + OFFSET[slot];
                                dpbusd(acc, std::array::from_fn(|j| image[at + j]), layout.weight[slot * DIM + o])
                            });
                            finish(acc, layout.scale[o], layout.bias[patch][o], w.params.z_shift, d as u32)
                        };
                        let expected = if o < d { want[patch * d + o] } else { 0 };
                        assert_eq!(z, expected, "patch {patch} channel {o}");
                    }
                }
            }
        }
    }
}

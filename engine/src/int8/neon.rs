//! aarch64 Advanced SIMD (NEON) kernels: baseline on every aarch64 CPU.
//!
//! int8 patch embedding with `smlal`/`smlal2` by element: pixels
//! zero-extended to i16 and weights widened to i16 make every product exact
//! in i32 (|acc| ≤ K·255·127 < 2^28), so the result is the scalar integers
//! bit for bit. Four pixels of a patch row sit in one `int16x4_t`; each lane
//! multiplies the weights of 32 output channels (four `int16x8_t`) into eight
//! i32x4 accumulators. Weights are laid out once per model in [`prepare`]:
//! `[P][cols][dim_pad]`, patch rows padded with zero weights to `cols`, a
//! multiple of four, so the kernel has no tail loop.
//!
//! The epilogue is the scalar one, lane-wise: `acc · scale + bias` (i32, the
//! loader bounds it), `srshl` by `-z_shift` (a rounding right shift computed
//! without intermediate overflow: exactly `round_shift`'s round half up), a
//! saturating narrow to i16 and a clamp to ±`int8::z_limit(D)` on eight
//! lanes at a time (together `int8::saturate_z`, as Zc ≤ 16383).
//!
//! For the shipped geometry (`int8::shipped`) the embedding visits only the
//! pixels with ink (a zero pixel adds zero: same sums): with the 7-bit
//! weights the converter writes, by quads of four pixels (x 0..4 and 3..7
//! of a patch row, the weight of x = 3 zero in the second), each quad two
//! u8 pixel pairs against the weights `w + 64` (u8), per eight channels
//! two `umull`, two `umlal` and two `uadalp` (two products below
//! 2·255·127 fit u16: exact), `64·Σp` taken off at the end; with 8-bit
//! weights, pixel by pixel with `smlal`. The 16 token rows, written by
//! blocks of eight channels, are then transposed (`ld4` and `uzp`) so
//! that each channel's 16 tokens fill two registers, and the rest is
//! `neon_lanes.rs`, the tail shared with dotprod; other shapes run the
//! dense embedding and the scalar tail.

use alloc::boxed::Box;
use alloc::vec::Vec;
use std::arch::aarch64::*;

use super::neon_lanes::{self, Tokens, Wide};
use super::shipped::{self, DIM, PATCH, PATCHES, SIDE};
use super::Weights;
use crate::int8;
use crate::shape::limits::MAX_DIM;
use crate::shape::Shape;
use crate::simd::aarch64::{opaque, Neon};
use crate::simd::round_up;
use std::mem::MaybeUninit;

/// Output channels per register (i32 accumulators).
const LANES: usize = 4;
/// Channels per pass over the pixels: eight accumulators.
const GROUP: usize = 8 * LANES;
/// Pixels per `int16x4_t`: patch rows are padded to a multiple of this.
const PIXELS: usize = 4;

/// The NEON int8 kernel of one model: the weights laid out for it.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    cpu: Neon,
    /// D rounded up to a multiple of [`GROUP`]; padding channels have zero
    /// weights, scale and bias.
    dim_pad: usize,
    /// Weight columns per patch row, P rounded up to a multiple of [`PIXELS`].
    cols: usize,
    /// `[P][cols][dim_pad]` i16 (zero past column P-1 and channel D-1).
    weight: Vec<i16>,
    /// `[dim_pad]`.
    scale: Vec<i32>,
    /// `[T-1][dim_pad]`.
    bias: Vec<i32>,
    z_shift: u32,
    /// `int8::z_limit(D)`: the embedding's saturation.
    z_limit: i32,
    /// The tail with tokens in lanes, for the shipped geometry.
    lanes: Option<neon_lanes::Layout>,
    /// The quad embedding's weights, for the shipped geometry with 7-bit
    /// patch weights.
    quads: Option<Box<Quads>>,
}

/// A quad's weights, `shipped::offset_pair_weights`: registers 0-3 for
/// its pixels 0 and 1, 4-7 for 2 and 3, two groups of four channels a
/// register.
type QuadWeights = [[u8; 16]; 8];

/// The weights of [`embed_quads`].
#[derive(Clone, Debug)]
struct Quads {
    /// `[y][quad]`, quad h of row y being group 2y + h.
    weight: [[QuadWeights; 2]; PATCH],
    /// `[patch][channel]`: a blank patch's token (the bias alone).
    blank: [[i16; DIM]; PATCHES],
}

impl Kernel {
    pub(crate) fn new(w: &Weights<'_>, shape: &Shape) -> Option<Kernel> {
        let cpu = Neon::detect()?;
        let (d, p, k) = (shape.dim as usize, shape.patch_side as usize, shape.patch_len());
        let (dim_pad, cols) = (round_up(d, GROUP), round_up(p, PIXELS));
        let mut weight = vec![0i16; p * cols * dim_pad];
        for o in 0..d {
            for y in 0..p {
                for x in 0..p {
                    weight[(y * cols + x) * dim_pad + o] = w.patch_weight[o * k + y * p + x] as i16;
                }
            }
        }
        let pad = |values: &[i32], rows: usize| {
            let mut out = vec![0; rows * dim_pad];
            for r in 0..rows {
                out[r * dim_pad..][..d].copy_from_slice(&values[r * d..][..d]);
            }
            out
        };
        let (scale, bias) = (pad(w.patch_scale, 1), pad(w.token_bias, shape.patches()));
        // The shipped geometry: dim_pad = 32 and cols = 8 (`embed_sparse`).
        let lanes = shipped::fits(shape).then(|| neon_lanes::Layout::new(w, shape));
        let limit = int8::BYTE_PAIR_WEIGHT_LIMIT;
        let seven_bits = w.patch_weight.iter().all(|q| (-limit..=limit).contains(q));
        let quads = (shipped::fits(shape) && seven_bits).then(|| {
            let blank = shipped::token_bias_and_blank(w, shape, false).1;
            let groups = shipped::offset_pair_weights(w, shape);
            Box::new(Quads { weight: std::array::from_fn(|y| [groups[2 * y], groups[2 * y + 1]]), blank })
        });
        let (z_shift, z_limit) = (w.params.z_shift, int8::z_limit(shape.dim));
        Some(Kernel { cpu, dim_pad, cols, weight, scale, bias, z_shift, z_limit, lanes, quads })
    }

    /// `weights` is called only for shapes without the lane-wise tail.
    pub(crate) fn forward<'m>(
        &self,
        weights: impl FnOnce() -> Weights<'m>,
        shape: &Shape,
        image: &[u8],
        s: &mut int8::Scratch,
    ) {
        // SAFETY: `self.cpu` proves Advanced SIMD (baseline on aarch64).
        unsafe { forward(self.cpu, weights, self, shape, image, s) }
    }
}

/// `acc[2i] += lo(w_i) · px[L]`, `acc[2i+1] += hi(w_i) · px[L]` for the four
/// `int16x8_t` of `w`: one pixel times the weights of 32 channels, exact in
/// i32. A macro, so it expands inside the `neon` entry point.
macro_rules! mac_lane {
    ($acc:ident, $w:expr, $px:ident, $lane:literal) => {{
        let w: int16x8x4_t = $w;
        for (i, wv) in [w.0, w.1, w.2, w.3].into_iter().enumerate() {
            $acc[2 * i] = vmlal_lane_s16::<$lane>($acc[2 * i], vget_low_s16(wv), $px);
            $acc[2 * i + 1] = vmlal_high_lane_s16::<$lane>($acc[2 * i + 1], wv, $px);
        }
    }};
}

/// # Safety
/// The CPU must support Advanced SIMD (`_cpu` proves it).
#[target_feature(enable = "neon")]
unsafe fn forward<'m>(
    _cpu: Neon,
    weights: impl FnOnce() -> Weights<'m>,
    prep: &Kernel,
    shape: &Shape,
    image: &[u8],
    s: &mut int8::Scratch,
) {
    // First, so that the shipped geometry skips the checks of the dense
    // path below (its embeddings check what they rely on).
    if let Some(layout) = &prep.lanes {
        let mut rows = MaybeUninit::uninit();
        let rows = match &prep.quads {
            Some(quads) => embed_quads(prep, quads, image, &mut rows),
            None => embed_sparse(prep, image, &mut rows),
        };
        return neon_lanes::tail(layout, shape, rows, s);
    }

    let (side, p, d, grid) = (shape.image_side as usize, shape.patch_side as usize, shape.dim as usize, shape.grid());
    let (dim_pad, cols) = (prep.dim_pad, prep.cols);
    // What the pointer arithmetic below relies on (checked once per digit).
    require!(image.len() == side * side && s.simd_image.len() >= image.len() + PIXELS);
    require!(
        dim_pad.is_multiple_of(GROUP)
            && dim_pad <= MAX_DIM as usize
            && d <= dim_pad
            && cols >= p
            && cols.is_multiple_of(PIXELS)
    );
    require!(prep.weight.len() == p * cols * dim_pad && prep.scale.len() == dim_pad);
    require!(prep.bias.len() == shape.patches() * dim_pad && s.tokens.len() == shape.patches() * d);

    // The image zero-extended to i16, 16 pixels at a time.
    let chunks = image.len() / 16;
    for i in 0..chunks {
        // SAFETY: i·16 + 16 ≤ image.len() < simd_image.len() (asserted);
        // vld1q/vst1q need only the element's alignment.
        unsafe {
            let bytes = vld1q_u8(image.as_ptr().add(i * 16));
            let out = s.simd_image.as_mut_ptr().add(i * 16);
            vst1q_s16(out, vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(bytes))));
            vst1q_s16(out.add(8), vreinterpretq_s16_u16(vmovl_high_u8(bytes)));
        }
    }
    for (out, &px) in s.simd_image[chunks * 16..].iter_mut().zip(&image[chunks * 16..]) {
        *out = px as i16;
    }

    let pixels = s.simd_image.as_ptr();
    let weight = prep.weight.as_ptr();
    let mut row = [0i16; MAX_DIM as usize];
    for patch in 0..shape.patches() {
        let origin = (patch / grid) * p * side + (patch % grid) * p;
        for group in (0..dim_pad).step_by(GROUP) {
            let mut acc = [vdupq_n_s32(0); 8];
            for y in 0..p {
                for x in (0..cols).step_by(PIXELS) {
                    // SAFETY: the four pixels start inside the image row
                    // (x < P) and end at most at origin + (P-1)·S + cols - 1
                    // ≤ S² - 1 + 3, inside the widened buffer (≥ S² + 4
                    // values, asserted); past the row they meet zero weights.
                    // The 32 weights of lane l are at (y·cols + x + l)·dim_pad
                    // + group, and that + 32 ≤ P·cols·dim_pad, the asserted
                    // length. Unaligned loads of i16.
                    unsafe {
                        let px = vld1_s16(pixels.add(origin + y * side + x));
                        let base = weight.add((y * cols + x) * dim_pad + group);
                        mac_lane!(acc, vld1q_s16_x4(base), px, 0);
                        mac_lane!(acc, vld1q_s16_x4(base.add(dim_pad)), px, 1);
                        mac_lane!(acc, vld1q_s16_x4(base.add(2 * dim_pad)), px, 2);
                        mac_lane!(acc, vld1q_s16_x4(base.add(3 * dim_pad)), px, 3);
                    }
                }
            }
            finish(prep, acc, patch * dim_pad + group, &mut row[group..][..GROUP]);
        }
        s.tokens[patch * d..][..d].copy_from_slice(&row[..d]);
    }
    int8::attend_and_classify(&weights(), shape, s);
}

/// `row = saturate_z(round_shift(acc · scale + bias, z_shift), D)` for the 32
/// channels from `at` of a patch's bias row (`at % dim_pad` of the scale),
/// as scalar.
#[inline]
#[target_feature(enable = "neon")]
fn finish(prep: &Kernel, acc: [int32x4_t; 8], at: usize, row: &mut [i16]) {
    require!(row.len() == GROUP);
    let (scale, bias) = (&prep.scale[at % prep.dim_pad..][..GROUP], &prep.bias[at..][..GROUP]);
    for (i, z) in finish32(scale, bias, prep.z_shift, prep.z_limit, acc).into_iter().enumerate() {
        // SAFETY: 8 of the 32 values of the row (asserted length).
        unsafe { vst1q_s16(row[8 * i..].as_mut_ptr(), z) };
    }
}

/// `saturate_z(round_shift(acc · scale + bias, z_shift), D)` for 32
/// channels (`z_limit` is `int8::z_limit(D)`), as scalar: channels 8i..8i + 8
/// in register i.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn finish32(scale: &[i32], bias: &[i32], z_shift: u32, z_limit: i32, acc: [int32x4_t; 8]) -> Row {
    require!(scale.len() == GROUP && bias.len() == GROUP);
    // srshl by a negative count: (x + 2^(s-1)) >> s without overflow, x for s = 0.
    let shift = vdupq_n_s32(-(z_shift as i32));
    // ±Zc (at most 16383) as i16: `sqxtn` saturates to [-32768, 32767], then
    // the min and max on eight values at a time clamp to ±Zc.
    let (z_min, z_max) = (vdupq_n_s16(-z_limit as i16), vdupq_n_s16(z_limit as i16));
    let z32: [int32x4_t; 8] = std::array::from_fn(|i| {
        // SAFETY: 4 of the 32 values of each (checked lengths).
        let (scale, bias) = unsafe { (vld1q_s32(scale[4 * i..].as_ptr()), vld1q_s32(bias[4 * i..].as_ptr())) };
        vrshlq_s32(vmlaq_s32(bias, acc[i], scale), shift)
    });
    std::array::from_fn(|i| {
        let z = vqmovn_high_s32(vqmovn_s32(z32[2 * i]), z32[2 * i + 1]);
        vminq_s16(vmaxq_s16(z, z_min), z_max)
    })
}

/// A token's 32 channels, eight a register.
pub(super) type Row = [int16x8_t; DIM / 8];

/// The 16 token rows as the sparse embeddings write them, `[block][token]`:
/// block b holds channels 8b..8b + 8, so four tokens' block is 32
/// contiguous values, which `ld4` de-interleaves ([`to_lanes`]).
pub(super) type Rows = [[int16x8_t; PATCHES]; DIM / 8];

/// Builds `rows` where it lives from `row(t)`, token t's channels: an array
/// built on the stack and then moved (or zeroed, then filled) cost a
/// `memcpy` (`memset`) of 1 KB, ~150 instructions on aarch64 glibc.
#[inline(always)]
pub(super) fn fill_rows(rows: &mut MaybeUninit<Rows>, mut row: impl FnMut(usize) -> Row) -> &Rows {
    let at = rows.as_mut_ptr().cast::<int16x8_t>();
    for t in 0..PATCHES {
        for (block, v) in row(t).into_iter().enumerate() {
            // SAFETY: element (block, t) of the DIM / 8 × PATCHES array.
            unsafe { at.add(block * PATCHES + t).write(v) };
        }
    }
    // SAFETY: the loops wrote every (block, t).
    unsafe { rows.assume_init_ref() }
}

/// A stored row (a blank patch's) as registers.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn load_row(row: &[i16; DIM]) -> Row {
    // SAFETY: 32 values of the array.
    let v = unsafe { vld1q_s16_x4(row.as_ptr()) };
    [v.0, v.1, v.2, v.3]
}

/// The embedding of the shipped geometry (dim_pad = 32, `cols` = 8), one
/// token row per patch, skipping blank pixels: a digit is mostly blank, and
/// a zero pixel adds zero, so the sums are the dense ones. A patch row's 7
/// pixels are read as one u64; each nonzero byte multiplies its 32 weights
/// (`smlal` by element, exact in i32).
#[inline]
#[target_feature(enable = "neon")]
fn embed_sparse<'r>(prep: &Kernel, image: &[u8], rows: &'r mut MaybeUninit<Rows>) -> &'r Rows {
    require!(image.len() == SIDE * SIDE && prep.dim_pad == DIM && prep.cols == 8);
    require!(prep.weight.len() == PATCH * 8 * DIM && prep.bias.len() == PATCHES * DIM);
    fill_rows(rows, |patch| {
        // Eight named accumulators rather than an array: with an array, LLVM
        // copied all of them between registers around every ink loop (14
        // `mov`s per pixel).
        let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7] = [vdupq_n_s32(0); 8];
        let rows = shipped::PatchRows::new(image, patch);
        // The 7 rows written out (a macro over the row's literal): as a loop,
        // LLVM kept a counter and multiplied it by the row stride, 4 of the
        // 8 instructions a row spends finding its ink.
        macro_rules! rows {
            ($($y:literal)*) => {$({
                let mut ink = rows.row($y);
                while ink != 0 {
                    let x = ink.trailing_zeros() / 8;
                    let px = vdupq_n_s16((ink >> (8 * x)) as u8 as i16);
                    ink &= !(0xff << (8 * x));
                    // SAFETY: slot (y, x) with x < 7: its 32 weights end at
                    // (y·8 + x + 1)·32 ≤ 7·8·32, the asserted length.
                    let w = unsafe { vld1q_s16_x4(prep.weight.as_ptr().add(($y * 8 + x as usize) * DIM)) };
                    a0 = vmlal_s16(a0, vget_low_s16(w.0), vget_low_s16(px));
                    a1 = vmlal_high_s16(a1, w.0, px);
                    a2 = vmlal_s16(a2, vget_low_s16(w.1), vget_low_s16(px));
                    a3 = vmlal_high_s16(a3, w.1, px);
                    a4 = vmlal_s16(a4, vget_low_s16(w.2), vget_low_s16(px));
                    a5 = vmlal_high_s16(a5, w.2, px);
                    a6 = vmlal_s16(a6, vget_low_s16(w.3), vget_low_s16(px));
                    a7 = vmlal_high_s16(a7, w.3, px);
                }
            })*};
        }
        rows!(0 1 2 3 4 5 6);
        let (scale, bias) = (&prep.scale[..DIM], &prep.bias[patch * DIM..][..DIM]);
        finish32(scale, bias, prep.z_shift, prep.z_limit, [a0, a1, a2, a3, a4, a5, a6, a7])
    })
}

/// The embedding of the shipped geometry with 7-bit patch weights, one
/// token row per patch, over the pixel quads with ink (a digit inks about
/// 58 of its 224): each quad's u8 pixel pairs (p0, p1) and (p2, p3) in
/// every byte pair, then per two groups of four channels `umull` by the
/// first pair's weights `w + 64`, `umlal` by the second's (two products
/// below 2·255·127 < 2^16: exact in u16), and `uadalp` adding the lane
/// pairs into the channels' u32; each quad's pixels summed too (`uadalp`),
/// and `64·Σp` taken off before the scale: `Σ p·(w + 64) - 64·Σp = Σ p·w`.
/// u8 weights are half the loads of i16 ones. A blank patch's row is the
/// bias's.
#[inline]
#[target_feature(enable = "neon")]
fn embed_quads<'r>(prep: &Kernel, quads: &Quads, image: &[u8], rows: &'r mut MaybeUninit<Rows>) -> &'r Rows {
    require!(image.len() == SIDE * SIDE && prep.dim_pad == DIM && prep.bias.len() == PATCHES * DIM);
    // Named accumulators rather than an array (see `embed_sparse`), zeroed
    // after an inked patch only: a blank one leaves them zero.
    let zero = vdupq_n_u32(0);
    let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7] = [zero; 8];
    // Pixel pairs' sums: each quad's pixels twice over the four lanes.
    let mut sum = vdup_n_u16(0);
    fill_rows(rows, |patch| {
        let rows = shipped::PatchRows::new(image, patch);
        let inked = rows.for_each_quad(&quads.weight, |weights, dword| {
            let px = vreinterpretq_u16_u32(vdupq_n_u32(dword));
            sum = vpadal_u8(sum, vreinterpret_u8_u16(vget_low_u16(px)));
            // (p0, p1) and (p2, p3) in every byte pair.
            let first = vreinterpretq_u8_u16(vuzp1q_u16(px, px));
            let second = vreinterpretq_u8_u16(vuzp2q_u16(px, px));
            let w = weights.as_ptr().cast::<u8>();
            // SAFETY: bytes 0..64 and 64..128 of the quad's 128 (a pointer
            // to the whole `[[u8; 16]; 8]`).
            let (f, s) = unsafe { (vld1q_u8_x4(w), vld1q_u8_x4(w.add(64))) };
            // Channel groups 2k (low halves) and 2k + 1 (high halves).
            macro_rules! groups {
                ($(($k:tt, $lo:ident, $hi:ident))*) => {$(
                    let lo = vmlal_u8(vmull_u8(vget_low_u8(f.$k), vget_low_u8(first)), vget_low_u8(s.$k), vget_low_u8(second));
                    $lo = vpadalq_u16($lo, lo);
                    $hi = vpadalq_u16($hi, vmlal_high_u8(vmull_high_u8(f.$k, first), s.$k, second));
                )*};
            }
            groups!((0, a0, a1) (1, a2, a3) (2, a4, a5) (3, a6, a7));
        });
        if !inked {
            return load_row(&quads.blank[patch]);
        }
        // 64·Σp, the lanes holding each pixel twice; below 2^20.
        let offset = vdupq_n_u32(vaddlv_u16(sum) * u32::from(shipped::QUAD_WEIGHT_OFFSET) / 2);
        // Exact in i32 (|Σ p·w| < 2^22): the u32 difference wraps to it.
        let acc = [a0, a1, a2, a3, a4, a5, a6, a7].map(|a| vreinterpretq_s32_u32(vsubq_u32(a, offset)));
        [a0, a1, a2, a3, a4, a5, a6, a7] = [zero; 8];
        sum = vdup_n_u16(0);
        let (scale, bias) = (&prep.scale[..DIM], &prep.bias[patch * DIM..][..DIM]);
        finish32(scale, bias, prep.z_shift, prep.z_limit, acc)
    })
}

/// The 16 token rows transposed: channel c's 16 tokens, and each token's
/// Σz² (`neon_lanes::tail` takes both), summed from the registers as they
/// are written (reading them back cost about 50 instructions). For each
/// block of eight channels and each half of the tokens, two `ld4` (four
/// tokens' 32 values each, de-interleaved by four: register j holds
/// channels j and 4 + j of its four tokens, alternately) and one `uzp1`
/// and one `uzp2` per pair of registers (the even and the odd values:
/// channel j, channel 4 + j, of all eight tokens): 10 instructions where
/// an 8 × 8 `trn` transpose of loaded rows takes 32.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn to_lanes<'z>(rows: &Rows, z: &'z mut MaybeUninit<[Tokens; DIM]>) -> (&'z [Tokens; DIM], Wide) {
    // Written in place, neither zeroed nor copied: every channel's two
    // halves once.
    let out = z.as_mut_ptr().cast::<int16x8_t>();
    // Σz² of tokens 4q..4q + 3 (z within ±Zc, zero past D): below 2^31.
    let mut sum_sq: Wide = [vdupq_n_s32(0); 4];
    let mut square = |v: Tokens| {
        sum_sq[0] = vmlal_s16(sum_sq[0], vget_low_s16(v[0]), vget_low_s16(v[0]));
        sum_sq[1] = vmlal_high_s16(sum_sq[1], v[0], v[0]);
        sum_sq[2] = vmlal_s16(sum_sq[2], vget_low_s16(v[1]), vget_low_s16(v[1]));
        sum_sq[3] = vmlal_high_s16(sum_sq[3], v[1], v[1]);
    };
    for (block, tokens) in rows.iter().enumerate() {
        // A block at a time: without the barrier LLVM issues all 16 `ld4`
        // first, and 64 registers do not fit in 32.
        let tokens = opaque(tokens);
        // SAFETY: tokens 8h..8h + 4 and 8h + 4..8h + 8 of the block, 32
        // contiguous i16 each (four registers of the array).
        let load = |t: usize| unsafe { vld4q_s16(tokens[t..].as_ptr().cast()) };
        let halves = [[load(0), load(4)], [load(8), load(12)]];
        for j in 0..4 {
            let part = |v: &int16x8x4_t| [v.0, v.1, v.2, v.3][j];
            // Per half of the tokens: (channel 8·block + j, channel 8·block + 4 + j).
            let [first, second] = halves.map(|[a, b]| (vuzp1q_s16(part(&a), part(&b)), vuzp2q_s16(part(&a), part(&b))));
            // SAFETY: elements (8·block + j) and (8·block + 4 + j) of the
            // DIM × 2 array, both halves.
            unsafe {
                out.add(2 * (8 * block + j)).write(first.0);
                out.add(2 * (8 * block + j) + 1).write(second.0);
                out.add(2 * (8 * block + 4 + j)).write(first.1);
                out.add(2 * (8 * block + 4 + j) + 1).write(second.1);
            }
            square([first.0, second.0]);
            square([first.1, second.1]);
        }
    }
    // SAFETY: the loops wrote all DIM × 2 registers (block and j covering
    // every channel, both halves).
    (unsafe { z.assume_init_ref() }, sum_sq)
}

/// The rows as values, `[token][channel]` (for tests).
#[cfg(test)]
pub(super) fn token_rows(rows: &Rows) -> [[i16; DIM]; PATCHES] {
    std::array::from_fn(|t| {
        let mut row = [0i16; DIM];
        for (block, tokens) in rows.iter().enumerate() {
            // SAFETY: 8 of the row's 32 values.
            unsafe { vst1q_s16(row[8 * block..].as_mut_ptr(), tokens[t]) };
        }
        row
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::layout_check::{images_and_single_pixels, scalar_z, shipped_models, xorshift};

    /// `to_lanes` is a transpose: lane l of channel c's half h is channel c
    /// of token 8h + l, for rows of random values; and it sums each
    /// token's squares.
    #[test]
    fn to_lanes_transposes_the_rows() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let values: [[i16; DIM]; PATCHES] = std::array::from_fn(|_| std::array::from_fn(|_| next() as i16));
        let mut rows = MaybeUninit::uninit();
        // SAFETY: Advanced SIMD is baseline on aarch64.
        let rows = fill_rows(&mut rows, |t| unsafe { load_row(&values[t]) });
        assert_eq!(token_rows(rows), values);
        let mut z = MaybeUninit::uninit();
        // SAFETY: as above.
        let (z, sum_sq) = unsafe { to_lanes(rows, &mut z) };
        for (q, &sums) in sum_sq.iter().enumerate() {
            let mut lanes = [0i32; 4];
            // SAFETY: a store of one register into 4 values.
            unsafe { vst1q_s32(lanes.as_mut_ptr(), sums) };
            for (l, &got) in lanes.iter().enumerate() {
                // Random values sum past i32 (real ones, within ±Zc, do
                // not): the lanes wrap as this does.
                let want = values[4 * q + l].iter().fold(0i32, |sum, &v| sum.wrapping_add(i32::from(v) * i32::from(v)));
                assert_eq!(got, want, "Σz² of token {}", 4 * q + l);
            }
        }
        for (c, halves) in z.iter().enumerate() {
            for (h, &v) in halves.iter().enumerate() {
                let mut lanes = [0i16; 8];
                // SAFETY: a store of one register into 8 values.
                unsafe { vst1q_s16(lanes.as_mut_ptr(), v) };
                for (l, &got) in lanes.iter().enumerate() {
                    assert_eq!(got, values[8 * h + l][c], "channel {c}, token {}", 8 * h + l);
                }
            }
        }
    }

    /// Both sparse embeddings' token rows against the scalar embedding:
    /// the quads for 7-bit weights (the shipped models, a random one), the
    /// pixels for 8-bit ones (random).
    #[test]
    fn the_sparse_embeddings_match_scalar() {
        let shape = Shape { image_side: 28, patch_side: 7, dim: 32, heads: 2, classes: 10 };
        // Even seeds draw 7-bit patch weights, odd ones 8-bit.
        let random = [2, 3].map(|seed| crate::synthetic::random_int8_blob(shape, seed));
        let random = random.iter().map(|blob| crate::model::Model::from_bytes(blob).unwrap());
        let mut kinds = [0; 2];
        for model in shipped_models().into_iter().chain(random) {
            let (w, shape) = (model.int8_weights(), model.shape());
            let (kernel, d) = (Kernel::new(&w, &shape).unwrap(), shape.dim as usize);
            kinds[usize::from(kernel.quads.is_some())] += 1;
            for image in images_and_single_pixels() {
                let want = scalar_z(&model, &image);
                let mut rows = MaybeUninit::uninit();
                // SAFETY: Advanced SIMD is baseline on aarch64.
                let rows = unsafe {
                    match &kernel.quads {
                        Some(quads) => embed_quads(&kernel, quads, &image, &mut rows),
                        None => embed_sparse(&kernel, &image, &mut rows),
                    }
                };
                for (patch, row) in token_rows(rows).iter().enumerate() {
                    for (o, &z) in row.iter().enumerate() {
                        let expected = if o < d { want[patch * d + o] } else { 0 };
                        assert_eq!(z, expected, "patch {patch} channel {o}");
                    }
                }
            }
        }
        assert_eq!(kinds, [1, 3], "models per embedding: [pixels, quads]");
    }
}

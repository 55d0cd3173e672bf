//! The f16 pass on aarch64 Advanced SIMD (NEON): the patch embedding on
//! f32 lanes with the weights widened from f16 once per model; the rest is
//! the scalar `f16::attend_and_classify`, compiled for NEON.

use alloc::vec::Vec;
use std::arch::aarch64::*;

use super::Weights;
use crate::f16;
use crate::shape::limits::MAX_DIM;
use crate::shape::Shape;
use crate::simd::aarch64::Neon;
use crate::simd::round_up;

/// Output channels per register (f32 accumulators).
const LANES: usize = 4;
/// Channels per pass over the pixels: eight accumulators.
const GROUP: usize = 8 * LANES;

/// The NEON f16 kernel of one model: the weights widened to f32.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    cpu: Neon,
    /// D rounded up to a multiple of [`GROUP`]; padding channels have zero weights.
    dim_pad: usize,
    /// `[P²][dim_pad]` f32.
    weight: Vec<f32>,
}

impl Kernel {
    pub(crate) fn new(w: &Weights<'_>, shape: &Shape) -> Option<Kernel> {
        let cpu = Neon::detect()?;
        let (d, k) = (shape.dim as usize, shape.patch_len());
        let dim_pad = round_up(d, GROUP);
        let mut weight = vec![0f32; k * dim_pad];
        for o in 0..d {
            for i in 0..k {
                weight[i * dim_pad + o] = w.patch_weight[o * k + i].to_f32();
            }
        }
        Some(Kernel { cpu, dim_pad, weight })
    }

    pub(crate) fn forward(&self, w: &Weights<'_>, shape: &Shape, image: &[u8], s: &mut f16::Scratch) {
        // SAFETY: `self.cpu` proves Advanced SIMD (baseline on aarch64).
        unsafe { forward(self.cpu, w, self, shape, image, s) }
    }
}

/// # Safety
/// The CPU must support Advanced SIMD (`_cpu` proves it).
#[target_feature(enable = "neon")]
unsafe fn forward(_cpu: Neon, w: &Weights<'_>, prep: &Kernel, shape: &Shape, image: &[u8], s: &mut f16::Scratch) {
    let (side, p, d, grid) = (shape.image_side as usize, shape.patch_side as usize, shape.dim as usize, shape.grid());
    let dim_pad = prep.dim_pad;
    require!(dim_pad.is_multiple_of(GROUP) && dim_pad <= MAX_DIM as usize && d <= dim_pad);
    require!(prep.weight.len() == shape.patch_len() * dim_pad && s.tokens.len() == shape.patches() * d);
    let weights = prep.weight.as_ptr();
    let mut row = [0f32; MAX_DIM as usize];
    for patch in 0..shape.patches() {
        let origin = (patch / grid) * p * side + (patch % grid) * p;
        for group in (0..dim_pad).step_by(GROUP) {
            let mut acc = [vdupq_n_f32(0.0); 8];
            for y in 0..p {
                for x in 0..p {
                    let pixel = image[origin + y * side + x] as f32;
                    // SAFETY: (y·P + x)·dim_pad + group + 32 ≤ P²·dim_pad, the
                    // length of the weights (asserted). Unaligned f32 loads.
                    let (lo, hi) = unsafe {
                        let base = weights.add((y * p + x) * dim_pad + group);
                        (vld1q_f32_x4(base), vld1q_f32_x4(base.add(4 * LANES)))
                    };
                    for (a, wv) in acc.iter_mut().zip([lo.0, lo.1, lo.2, lo.3, hi.0, hi.1, hi.2, hi.3]) {
                        *a = vfmaq_n_f32(*a, wv, pixel);
                    }
                }
            }
            for (i, a) in acc.iter().enumerate() {
                // SAFETY: group + 32 ≤ dim_pad ≤ MAX_DIM = row.len().
                unsafe { vst1q_f32(row.as_mut_ptr().add(group + i * LANES), *a) };
            }
        }
        let bias = &w.token_bias[patch * d..][..d];
        for ((z, r), b) in s.tokens[patch * d..][..d].iter_mut().zip(&row).zip(bias) {
            *z = r + b;
        }
    }
    f16::attend_and_classify(w, shape, s);
}

//! The f16 pass: weights widened to f32 once at prepare time, the patch
//! embedding as FMA over eight output channels per register, the tail in
//! the shared f32 code compiled for this instruction set.

use std::arch::x86_64::*;

use super::{Prepared, GROUP};
use crate::f16;
use crate::shape::Shape;
use crate::workspace::Workspace;

/// Output channels per register.
const LANES: usize = 8;

#[derive(Clone, Debug, Default)]
pub(super) struct Layout {
    /// `[P²][dim_pad]` f32.
    patch_weight: Vec<f32>,
    score_weight: Vec<f32>,
    head_weight: Vec<f32>,
}

impl Layout {
    pub(super) fn new(w: &f16::Weights<'_>, shape: &Shape, dim_pad: usize) -> Layout {
        let (d, k) = (shape.dim as usize, shape.patch_len());
        let mut patch_weight = vec![0f32; k * dim_pad];
        for o in 0..d {
            for i in 0..k {
                patch_weight[i * dim_pad + o] = w.patch_weight[o * k + i].to_f32();
            }
        }
        Layout {
            patch_weight,
            score_weight: w.score_weight.iter().map(|v| v.to_f32()).collect(),
            head_weight: w.head_weight.iter().map(|v| v.to_f32()).collect(),
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C (checked by `Kernels::new`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16_forward(
    w: &f16::Weights<'_>,
    prep: &Prepared,
    shape: &Shape,
    image: &[u8],
    ws: &mut Workspace,
) {
    let (side, p, d, grid) = (shape.image_side as usize, shape.patch_side as usize, shape.dim as usize, shape.grid());
    let dim_pad = prep.dim_pad;
    let layout = &prep.f16;
    assert!(layout.patch_weight.len() == p * p * dim_pad && image.len() == side * side);
    let weights = layout.patch_weight.as_ptr();
    let mut row = [0f32; 128 + GROUP];
    for patch in 0..shape.patches() {
        let origin = (patch / grid) * p * side + (patch % grid) * p;
        for group in (0..dim_pad).step_by(GROUP) {
            let mut acc = [_mm256_setzero_ps(); 4];
            for y in 0..p {
                for x in 0..p {
                    let pixel = _mm256_set1_ps(image[origin + y * side + x] as f32);
                    for (b, a) in acc.iter_mut().enumerate() {
                        // SAFETY: (y·P + x)·dim_pad + group + 32 ≤ P²·dim_pad (asserted).
                        let wv = unsafe { _mm256_loadu_ps(weights.add((y * p + x) * dim_pad + group + b * LANES)) };
                        *a = _mm256_fmadd_ps(pixel, wv, *a);
                    }
                }
            }
            for (b, a) in acc.iter().enumerate() {
                // SAFETY: group + 32 ≤ dim_pad ≤ 128 + 32 = row.len().
                unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(group + b * LANES), *a) };
            }
        }
        let bias = &w.token_bias[patch * d..][..d];
        for ((z, r), b) in ws.f_tokens[patch * d..][..d].iter_mut().zip(&row).zip(bias) {
            *z = r + b;
        }
    }
    f16::attend_and_classify_with(w, &layout.score_weight, &layout.head_weight, shape, ws);
}

//! The int8 pass on AVX-VNNI (the 256-bit VEX `vpdpbusd`/`vpdpwssd` of
//! Intel client CPUs since Alder Lake and AMD Zen 5, some without
//! AVX-512): AVX2's pass on the shipped geometry with each pixel quad's
//! four products added by one `vpdpbusd` per eight channels (exact for any
//! i8 weight, so 8-bit blobs take it too), then the tail of `lanes.rs`,
//! AVX2's instance (`lanes.rs` says why).
//!
//! Geometry: 28 × 28 images of 7 × 7 patches, at most 32 channels, 16
//! classes and 8 heads (`lanes::fits`).

use std::arch::x86_64::*;

use super::{lanes, quads, Weights};
use crate::int8;
use crate::shape::Shape;
use crate::simd::x86::AvxVnni;

/// The AVX-VNNI int8 kernel of one model.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    cpu: AvxVnni,
    embed: quads::Layout,
    tail: lanes::Layout,
}

impl Kernel {
    /// `None` when this CPU lacks AVX-VNNI (with AVX2), or the model is not
    /// of the geometry this kernel takes.
    pub(crate) fn new(w: &Weights<'_>, shape: &Shape) -> Option<Kernel> {
        if !lanes::fits(shape) {
            return None;
        }
        let cpu = AvxVnni::detect()?;
        Some(Kernel { cpu, embed: quads::Layout::new(w, shape), tail: lanes::Layout::new(w, shape) })
    }

    pub(crate) fn forward(&self, shape: &Shape, image: &[u8], s: &mut int8::Scratch) {
        // SAFETY: `self.cpu` exists only if AVX2, BMI1 and AVX-VNNI were
        // detected.
        unsafe { forward(self.cpu, self, shape, image, s) }
    }
}

/// # Safety
/// The CPU must have the features `_cpu` proves.
#[target_feature(enable = "avx2,fma,bmi1,avxvnni")]
unsafe fn forward(_cpu: AvxVnni, kernel: &Kernel, shape: &Shape, image: &[u8], s: &mut int8::Scratch) {
    let dot = |acc, quad, weights| _mm256_dpbusd_avx_epi32(acc, quad, weights);
    let (rows, z) = s.avx2.embed_buffers();
    let sum_sq = quads::embed(&kernel.embed, shape, kernel.tail.params.z_shift, image, rows, z, dot);
    lanes::tail(&kernel.tail, shape, sum_sq, s);
}

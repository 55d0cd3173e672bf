//! The f16 encoding: the model folded at convert time (the same algebra as
//! the int8 path, docs/FIXED_POINT.md), weights stored as IEEE half,
//! compute in f32. Its room: the weights, the scalar pass, its scratch and
//! the kernel choice ([`Kernel`]); SIMD kernels beside it (`avx2.rs`,
//! `neon.rs`) may differ from the scalar pass by float rounding only.

#[cfg(all(feature = "hosted", target_arch = "x86_64"))]
mod avx2;
#[cfg(all(feature = "hosted", target_arch = "aarch64"))]
mod neon;

use half::f16;

use crate::backend::Backend;
use crate::math::{exp, sqrt};
use crate::memory::{Buf, Source};
use crate::shape::Shape;
#[cfg(all(feature = "hosted", any(target_arch = "x86_64", target_arch = "aarch64")))]
use alloc::boxed::Box;

/// The tensors of an f16 blob.
pub(crate) struct Weights<'m> {
    pub patch_weight: &'m [f16],
    pub token_bias: &'m [f32],
    pub cls_norm: &'m [f32],
    pub score_weight: &'m [f16],
    pub cls_score: &'m [f32],
    pub head_weight: &'m [f16],
    pub head_bias: &'m [f32],
    pub layer_norm_eps: f32,
}

/// The f16 pass's scratch memory, sized once per model shape.
#[derive(Debug)]
#[cfg_attr(feature = "alloc", derive(Clone))]
pub(crate) struct Scratch<'m> {
    /// Patch tokens, then normalised in place, `(T-1) × D`.
    pub(crate) tokens: Buf<'m, f32>,
    /// Attention-weighted mean of the normalised tokens, `D`.
    pub(crate) mean: Buf<'m, f32>,
    /// Each head's CLS attention row, `H × T`.
    pub(crate) attention: Buf<'m, f32>,
    /// Logits, `C`.
    pub(crate) logits: Buf<'m, f32>,
    /// The AVX2 kernel's padded buffers (on the heap: SIMD kernels come
    /// with `std`).
    #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
    pub(crate) avx2: avx2::Scratch,
}

impl<'m> Scratch<'m> {
    pub(crate) fn new(shape: &Shape, src: &mut impl Source<'m>) -> Scratch<'m> {
        let (t, d, h, c) = (shape.tokens() as usize, shape.dim as usize, shape.heads as usize, shape.classes as usize);
        Scratch {
            tokens: src.take((t - 1) * d),
            mean: src.take(d),
            attention: src.take(h * t),
            logits: src.take(c),
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            avx2: avx2::Scratch::new(shape),
        }
    }
}

/// The kernel an f16 model runs: the scalar pass or a SIMD kernel with its
/// weight layout. Holding a SIMD kernel is the proof that this CPU can run it.
#[derive(Clone, Debug)]
pub(crate) enum Kernel {
    Scalar,
    #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
    Avx2(Box<avx2::Kernel>),
    #[cfg(all(feature = "hosted", target_arch = "aarch64"))]
    Neon(Box<neon::Kernel>),
}

impl Kernel {
    /// `backend`'s f16 kernel for this model, or `None` when the backend has
    /// none or this CPU lacks it.
    pub(crate) fn of(backend: Backend, w: &Weights<'_>, shape: &Shape) -> Option<Kernel> {
        match backend {
            Backend::Scalar => Some(Kernel::Scalar),
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            Backend::Avx2 => avx2::Kernel::new(w, shape).map(|k| Kernel::Avx2(Box::new(k))),
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
            #[cfg(all(feature = "hosted", target_arch = "aarch64"))]
            Kernel::Neon(_) => Backend::Neon,
        }
    }

    pub(crate) fn forward(&self, w: &Weights<'_>, shape: &Shape, image: &[u8], s: &mut Scratch) {
        match self {
            Kernel::Scalar => forward(w, shape, image, s),
            #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
            Kernel::Avx2(k) => k.forward(w, shape, image, s),
            #[cfg(all(feature = "hosted", target_arch = "aarch64"))]
            Kernel::Neon(k) => k.forward(w, shape, image, s),
        }
    }
}

/// Patch embedding, u8 pixels straight in (the normalisation is folded into
/// the weights), `(T-1) × D`.
pub(crate) fn patch_embed(w: &Weights<'_>, shape: &Shape, image: &[u8], z: &mut [f32]) {
    let (side, p, d, k) = (shape.image_side as usize, shape.patch_side as usize, shape.dim as usize, shape.patch_len());
    let grid = shape.grid();
    for patch in 0..shape.patches() {
        let (r, c) = (patch / grid, patch % grid);
        for o in 0..d {
            let row = &w.patch_weight[o * k..][..k];
            let mut acc = 0.0f32;
            for y in 0..p {
                let pixels = &image[(r * p + y) * side + c * p..][..p];
                for (q, &px) in row[y * p..][..p].iter().zip(pixels) {
                    acc += q.widen() * px as f32;
                }
            }
            z[patch * d + o] = acc + w.token_bias[patch * d + o];
        }
    }
}

/// LayerNorm without its affine (folded downstream), in place.
fn layer_norm(x: &mut [f32], eps: f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv_std = 1.0 / sqrt(var + eps);
    for v in x.iter_mut() {
        *v = (*v - mean) * inv_std;
    }
}

/// A stored weight: half precision in the blob, or widened once by a
/// backend that prepares its weights.
pub(crate) trait Weight: Copy {
    fn widen(self) -> f32;
}

impl Weight for f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

impl Weight for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

#[inline(always)]
fn dot<W: Weight>(a: &[W], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(w, x)| w.widen() * x).sum()
}

pub(crate) fn forward(w: &Weights<'_>, shape: &Shape, image: &[u8], s: &mut Scratch) {
    patch_embed(w, shape, image, &mut s.tokens);
    attend_and_classify(w, shape, s);
}

/// Everything after the patch embedding, shared by every backend (inlined
/// into each backend's entry point, so it is compiled for its instruction
/// set).
#[inline(always)]
pub(crate) fn attend_and_classify(w: &Weights<'_>, shape: &Shape, s: &mut Scratch) {
    attend_and_classify_with(w, w.score_weight, w.head_weight, shape, s);
}

/// [`attend_and_classify`] with the score and head weights given apart, so
/// a backend can pass copies it widened to f32 at load.
#[inline(always)]
pub(crate) fn attend_and_classify_with<W: Weight>(
    w: &Weights<'_>,
    score_weight: &[W],
    head_weight: &[W],
    shape: &Shape,
    s: &mut Scratch,
) {
    let (d, heads, t_count, classes) =
        (shape.dim as usize, shape.heads as usize, shape.tokens() as usize, shape.classes as usize);
    for token in s.tokens.chunks_exact_mut(d) {
        layer_norm(token, w.layer_norm_eps);
    }
    s.logits.copy_from_slice(w.head_bias);
    for head in 0..heads {
        let g = &score_weight[head * d..][..d];
        let probs = &mut s.attention[head * t_count..][..t_count];
        probs[0] = w.cls_score[head];
        for (p, token) in probs[1..].iter_mut().zip(s.tokens.chunks_exact(d)) {
            *p = dot(g, token);
        }
        let max = probs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for p in probs.iter_mut() {
            *p = exp(*p - max);
            sum += *p;
        }
        for p in probs.iter_mut() {
            *p /= sum;
        }
        let mean = &mut s.mean;
        for (i, m) in mean.iter_mut().enumerate() {
            *m = probs[0] * w.cls_norm[i];
        }
        for (&p, token) in probs[1..].iter().zip(s.tokens.chunks_exact(d)) {
            for (m, &n) in mean.iter_mut().zip(token) {
                *m += p * n;
            }
        }
        for (c, logit) in s.logits.iter_mut().enumerate() {
            *logit += dot(&head_weight[(head * classes + c) * d..][..d], mean);
        }
    }
}

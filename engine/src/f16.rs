//! The f16 forward pass: the model folded at convert time (the same algebra
//! as the int8 path, docs/FIXED_POINT.md), weights stored as IEEE half,
//! compute in f32.

use half::f16;

use crate::shape::Shape;
use crate::workspace::Workspace;

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
    let inv_std = 1.0 / (var + eps).sqrt();
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

pub(crate) fn forward(w: &Weights<'_>, shape: &Shape, image: &[u8], ws: &mut Workspace) {
    patch_embed(w, shape, image, &mut ws.f_tokens);
    attend_and_classify(w, shape, ws);
}

/// Everything after the patch embedding, shared by every backend (inlined
/// into each backend's entry point, so it is compiled for its instruction
/// set).
#[inline(always)]
pub(crate) fn attend_and_classify(w: &Weights<'_>, shape: &Shape, ws: &mut Workspace) {
    attend_and_classify_with(w, w.score_weight, w.head_weight, shape, ws);
}

/// [`attend_and_classify`] with the score and head weights given apart, so
/// a backend can pass copies it widened to f32 at load.
#[inline(always)]
pub(crate) fn attend_and_classify_with<W: Weight>(
    w: &Weights<'_>,
    score_weight: &[W],
    head_weight: &[W],
    shape: &Shape,
    ws: &mut Workspace,
) {
    let (d, heads, t_count, classes) =
        (shape.dim as usize, shape.heads as usize, shape.tokens() as usize, shape.classes as usize);
    for token in ws.f_tokens.chunks_exact_mut(d) {
        layer_norm(token, w.layer_norm_eps);
    }
    ws.logits.copy_from_slice(w.head_bias);
    for head in 0..heads {
        let g = &score_weight[head * d..][..d];
        let probs = &mut ws.attention[head * t_count..][..t_count];
        probs[0] = w.cls_score[head];
        for (p, token) in probs[1..].iter_mut().zip(ws.f_tokens.chunks_exact(d)) {
            *p = dot(g, token);
        }
        let max = probs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for p in probs.iter_mut() {
            *p = (*p - max).exp();
            sum += *p;
        }
        for p in probs.iter_mut() {
            *p /= sum;
        }
        let mean = &mut ws.f_mean;
        for (i, m) in mean.iter_mut().enumerate() {
            *m = probs[0] * w.cls_norm[i];
        }
        for (&p, token) in probs[1..].iter().zip(ws.f_tokens.chunks_exact(d)) {
            for (m, &n) in mean.iter_mut().zip(token) {
                *m += p * n;
            }
        }
        for (c, logit) in ws.logits.iter_mut().enumerate() {
            *logit += dot(&head_weight[(head * classes + c) * d..][..d], mean);
        }
    }
}

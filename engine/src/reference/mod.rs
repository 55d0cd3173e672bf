//! The f32 encoding, the reference: plain scalar f32, step for step what
//! PyTorch computes, including all T rows of the attention even though only
//! the CLS row reaches the logits. Every faster path is checked against this
//! one, so it stays obvious rather than fast, and has no SIMD kernels.

use crate::format::ModelConfig;
use crate::math::{exp, sqrt};
use crate::memory::{Buf, Source};
use crate::shape::Shape;

/// The PyTorch tensors, row-major as PyTorch stores them (`nn.Linear`
/// weights are `[out, in]`).
pub(crate) struct Weights<'m> {
    pub patch_embed_weight: &'m [f32],
    pub patch_embed_bias: &'m [f32],
    pub cls_token: &'m [f32],
    pub pos_embed: &'m [f32],
    pub norm_weight: &'m [f32],
    pub norm_bias: &'m [f32],
    pub in_proj_weight: &'m [f32],
    pub in_proj_bias: &'m [f32],
    pub out_proj_weight: &'m [f32],
    pub out_proj_bias: &'m [f32],
    pub head_weight: &'m [f32],
    pub head_bias: &'m [f32],
}

/// The reference pass's scratch memory, sized once per model shape.
#[derive(Debug)]
#[cfg_attr(feature = "alloc", derive(Clone))]
pub(crate) struct Scratch<'m> {
    /// One patch of normalised pixels, `P²`.
    patch: Buf<'m, f32>,
    /// Token embeddings, then the residual stream, `T × D`.
    x: Buf<'m, f32>,
    /// LayerNorm output, `T × D`.
    h: Buf<'m, f32>,
    /// Q, K and V per token, `T × 3D`.
    qkv: Buf<'m, f32>,
    /// Attention probabilities, `H × T × T`.
    pub(crate) attention: Buf<'m, f32>,
    /// Attention output before the output projection, `T × D`.
    context: Buf<'m, f32>,
    /// Logits, `C`.
    pub(crate) logits: Buf<'m, f32>,
}

impl<'m> Scratch<'m> {
    pub(crate) fn new(shape: &Shape, src: &mut impl Source<'m>) -> Scratch<'m> {
        let (t, d, h, c) = (shape.tokens() as usize, shape.dim as usize, shape.heads as usize, shape.classes as usize);
        Scratch {
            patch: src.take(shape.patch_len()),
            x: src.take(t * d),
            h: src.take(t * d),
            qkv: src.take(t * 3 * d),
            attention: src.take(h * t * t),
            context: src.take(t * d),
            logits: src.take(c),
        }
    }

    /// Head `head`'s CLS attention row of the last pass.
    pub(crate) fn cls_attention(&self, head: usize, t: usize) -> &[f32] {
        &self.attention[head * t * t..][..t]
    }
}

/// `out[o] = bias[o] + Σ_i weight[o, i] · input[i]`, as `nn.Linear`.
fn linear(weight: &[f32], bias: &[f32], input: &[f32], out: &mut [f32]) {
    let n_in = input.len();
    for (o, y) in out.iter_mut().enumerate() {
        let row = &weight[o * n_in..][..n_in];
        *y = bias[o] + row.iter().zip(input).map(|(w, x)| w * x).sum::<f32>();
    }
}

/// `nn.LayerNorm` over one token: biased variance, eps inside the root.
fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv_std = 1.0 / sqrt(var + eps);
    for i in 0..x.len() {
        out[i] = (x[i] - mean) * inv_std * weight[i] + bias[i];
    }
}

/// In-place softmax.
fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in values.iter_mut() {
        *v = exp(*v - max);
        sum += *v;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

pub(crate) fn forward(w: &Weights<'_>, config: &ModelConfig, image: &[u8], s: &mut Scratch) {
    let shape = config.shape;
    let (side, p, d) = (shape.image_side as usize, shape.patch_side as usize, shape.dim as usize);
    let (t_count, grid) = (shape.tokens() as usize, shape.grid());
    let (heads, hd) = (shape.heads as usize, shape.head_dim());

    // Token 0 is the CLS token; token 1 + r·grid + c is the patch in grid
    // row r, column c, its pixels flattened row-major.
    s.x[..d].copy_from_slice(w.cls_token);
    for patch in 0..grid * grid {
        let (r, c) = (patch / grid, patch % grid);
        for y in 0..p {
            for x in 0..p {
                let pixel = image[(r * p + y) * side + c * p + x] as f32;
                s.patch[y * p + x] = (pixel / 255.0 - config.pixel_mean) / config.pixel_std;
            }
        }
        let token = &mut s.x[(1 + patch) * d..][..d];
        linear(w.patch_embed_weight, w.patch_embed_bias, &s.patch, token);
    }
    for (x, pos) in s.x.iter_mut().zip(w.pos_embed) {
        *x += pos;
    }

    for t in 0..t_count {
        let (x, h) = (&s.x[t * d..][..d], &mut s.h[t * d..][..d]);
        layer_norm(x, w.norm_weight, w.norm_bias, config.layer_norm_eps, h);
        linear(w.in_proj_weight, w.in_proj_bias, h, &mut s.qkv[t * 3 * d..][..3 * d]);
    }

    // Per head: scores = q·kᵀ/√hd, softmax over keys, context = Σ p·v.
    let scale = 1.0 / sqrt(hd as f32);
    for head in 0..heads {
        let (q_off, k_off, v_off) = (head * hd, d + head * hd, 2 * d + head * hd);
        for i in 0..t_count {
            let q = &s.qkv[i * 3 * d + q_off..][..hd];
            let probs = &mut s.attention[(head * t_count + i) * t_count..][..t_count];
            for (j, score) in probs.iter_mut().enumerate() {
                let k = &s.qkv[j * 3 * d + k_off..][..hd];
                *score = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            softmax(probs);
            let context = &mut s.context[i * d + head * hd..][..hd];
            context.fill(0.0);
            for (j, &pj) in probs.iter().enumerate() {
                let v = &s.qkv[j * 3 * d + v_off..][..hd];
                for (c, &vj) in context.iter_mut().zip(v) {
                    *c += pj * vj;
                }
            }
        }
    }

    // Output projection and residual, for every token as PyTorch does; the
    // LayerNorm buffer is free again and holds the projection.
    for t in 0..t_count {
        let projected = &mut s.h[t * d..][..d];
        linear(w.out_proj_weight, w.out_proj_bias, &s.context[t * d..][..d], projected);
        for (x, a) in s.x[t * d..][..d].iter_mut().zip(projected.iter()) {
            *x += a;
        }
    }
    linear(w.head_weight, w.head_bias, &s.x[..d], &mut s.logits);
}

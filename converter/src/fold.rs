//! Folding the Micro-ViT at convert time (in f64), so the engine does only
//! the work that depends on the image. docs/FIXED_POINT.md derives it:
//!
//! - the input normalisation is affine: it folds into the patch embedding,
//!   which then takes raw u8 pixels; the position embedding folds into a
//!   per-token bias;
//! - only the CLS row of the attention reaches the logits, and the CLS
//!   token does not depend on the image: its LayerNorm output and its query
//!   are constants, so each head's scores are one dot product
//!   `g_j · n_t` with `g_j = γ ⊙ W_kjᵀ q_j / √hd` over the normalised
//!   patch tokens `n_t` (constant terms cancel in the softmax);
//! - V, the output projection and the head are linear and the attention
//!   weights sum to 1, so `logits = c0 + Σ_j G_j m_j` with
//!   `G_j = head · out_proj_j · W_vj · diag(γ)` and `m_j = Σ_t p_jt n_t`.

use microvit_engine::format::{ModelConfig, TensorId};
use microvit_engine::Shape;

use crate::StateDict;

/// The folded model, f64.
#[derive(Clone, Debug)]
pub struct Folded {
    pub shape: Shape,
    pub layer_norm_eps: f64,
    /// `[D, P²]`: applies to raw pixels.
    pub patch_weight: Vec<f64>,
    /// `[T-1, D]`: patch bias, normalisation offset and position embedding.
    pub token_bias: Vec<f64>,
    /// `[D]`: the CLS token, layer-normalised without the affine.
    pub cls_norm: Vec<f64>,
    /// `[H, D]`.
    pub score_weight: Vec<f64>,
    /// `[H]`: `g_j · cls_norm`.
    pub cls_score: Vec<f64>,
    /// `[H, C, D]`.
    pub head_weight: Vec<f64>,
    /// `[C]`.
    pub head_bias: Vec<f64>,
}

fn tensor(sd: &StateDict, id: TensorId) -> Vec<f64> {
    sd.get(id.name()).expect("converter checked the state_dict").data.iter().map(|&v| v as f64).collect()
}

/// `y = W x` for a row-major `[rows, cols]` W.
fn matvec(w: &[f64], x: &[f64]) -> Vec<f64> {
    w.chunks_exact(x.len()).map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum()).collect()
}

/// LayerNorm without the affine.
pub fn normalise(x: &[f64], eps: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    x.iter().map(|v| (v - mean) / (var + eps).sqrt()).collect()
}

impl Folded {
    pub fn new(sd: &StateDict, config: &ModelConfig) -> Folded {
        let shape = config.shape;
        let (d, k, c, heads) = (shape.dim as usize, shape.patch_len(), shape.classes as usize, shape.heads as usize);
        let (hd, patches) = (shape.head_dim(), shape.patches());
        let eps = config.layer_norm_eps as f64;
        let w = tensor(sd, TensorId::PatchEmbedWeight);
        let bias = tensor(sd, TensorId::PatchEmbedBias);
        let pos = tensor(sd, TensorId::PosEmbed);
        let cls = tensor(sd, TensorId::ClsToken);
        let gamma = tensor(sd, TensorId::NormWeight);
        let beta = tensor(sd, TensorId::NormBias);
        let in_w = tensor(sd, TensorId::InProjWeight);
        let in_b = tensor(sd, TensorId::InProjBias);
        let out_w = tensor(sd, TensorId::OutProjWeight);
        let out_b = tensor(sd, TensorId::OutProjBias);
        let head_w = tensor(sd, TensorId::HeadWeight);
        let head_b = tensor(sd, TensorId::HeadBias);

        // x = pixel · a + b per pixel.
        let a = 1.0 / (255.0 * config.pixel_std as f64);
        let b = -(config.pixel_mean as f64) / config.pixel_std as f64;
        let patch_weight: Vec<f64> = w.iter().map(|v| v * a).collect();
        let folded_bias: Vec<f64> = (0..d).map(|o| bias[o] + b * w[o * k..][..k].iter().sum::<f64>()).collect();
        let token_bias =
            (0..patches).flat_map(|t| (0..d).map(move |o| (t, o))).map(|(t, o)| folded_bias[o] + pos[(1 + t) * d + o]);
        let token_bias: Vec<f64> = token_bias.collect();

        let z0: Vec<f64> = (0..d).map(|o| cls[o] + pos[o]).collect();
        let cls_norm = normalise(&z0, eps);
        let h0: Vec<f64> = (0..d).map(|o| gamma[o] * cls_norm[o] + beta[o]).collect();
        let qkv_w = |part: usize, row: usize| &in_w[(part * d + row) * d..][..d];
        let q0: Vec<f64> =
            (0..d).map(|r| in_b[r] + qkv_w(0, r).iter().zip(&h0).map(|(a, b)| a * b).sum::<f64>()).collect();

        let mut score_weight = vec![0.0; heads * d];
        let mut head_weight = vec![0.0; heads * c * d];
        let scale = 1.0 / (hd as f64).sqrt();
        for j in 0..heads {
            for i in 0..d {
                let wk_q: f64 = (0..hd).map(|e| qkv_w(1, j * hd + e)[i] * q0[j * hd + e]).sum();
                score_weight[j * d + i] = gamma[i] * wk_q * scale;
            }
            // head · out_proj restricted to head j's columns: [C, hd].
            let ho: Vec<f64> = (0..c)
                .flat_map(|cl| (0..hd).map(move |e| (cl, e)))
                .map(|(cl, e)| (0..d).map(|r| head_w[cl * d + r] * out_w[r * d + j * hd + e]).sum())
                .collect();
            for cl in 0..c {
                for i in 0..d {
                    let v: f64 = (0..hd).map(|e| ho[cl * hd + e] * qkv_w(2, j * hd + e)[i]).sum();
                    head_weight[(j * c + cl) * d + i] = v * gamma[i];
                }
            }
        }
        let cls_score: Vec<f64> =
            (0..heads).map(|j| score_weight[j * d..][..d].iter().zip(&cls_norm).map(|(a, b)| a * b).sum()).collect();

        // c0 = head·z0 + head_b + head·(out_proj·b_v + out_b) + Σ_j head·out_proj_j·W_vj·β
        let v_bias: Vec<f64> = (0..d).map(|i| in_b[2 * d + i]).collect();
        let w_v = &in_w[2 * d * d..][..d * d];
        let v_of_beta: Vec<f64> = matvec(w_v, &beta);
        let attn_const: Vec<f64> =
            matvec(&out_w, &v_bias.iter().zip(&v_of_beta).map(|(a, b)| a + b).collect::<Vec<_>>());
        let x0: Vec<f64> = (0..d).map(|i| z0[i] + attn_const[i] + out_b[i]).collect();
        let head_bias: Vec<f64> = matvec(&head_w, &x0).iter().zip(&head_b).map(|(a, b)| a + b).collect();

        Folded {
            shape,
            layer_norm_eps: eps,
            patch_weight,
            token_bias,
            cls_norm,
            score_weight,
            cls_score,
            head_weight,
            head_bias,
        }
    }

    /// The patch tokens before LayerNorm, `[T-1, D]`.
    pub fn patch_tokens(&self, image: &[u8]) -> Vec<f64> {
        let s = &self.shape;
        let (side, p, d, k, grid) =
            (s.image_side as usize, s.patch_side as usize, s.dim as usize, s.patch_len(), s.grid());
        let mut z = self.token_bias.clone();
        for patch in 0..s.patches() {
            let (r, c) = (patch / grid, patch % grid);
            for o in 0..d {
                let row = &self.patch_weight[o * k..][..k];
                let mut acc = 0.0;
                for y in 0..p {
                    for x in 0..p {
                        acc += row[y * p + x] * image[(r * p + y) * side + c * p + x] as f64;
                    }
                }
                z[patch * d + o] += acc;
            }
        }
        z
    }

    /// Logits and each head's attention probabilities (`[H, T]`), in f64:
    /// the folded model's truth, for measuring quantisation error.
    pub fn forward(&self, image: &[u8]) -> (Vec<f64>, Vec<f64>) {
        let s = &self.shape;
        let (d, heads, c, t_count) = (s.dim as usize, s.heads as usize, s.classes as usize, s.tokens() as usize);
        let z = self.patch_tokens(image);
        let norm: Vec<Vec<f64>> = z.chunks_exact(d).map(|t| normalise(t, self.layer_norm_eps)).collect();
        let mut logits = self.head_bias.clone();
        let mut probs_all = Vec::with_capacity(heads * t_count);
        for j in 0..heads {
            let g = &self.score_weight[j * d..][..d];
            let mut scores = vec![self.cls_score[j]];
            scores.extend(norm.iter().map(|n| g.iter().zip(n).map(|(a, b)| a * b).sum::<f64>()));
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            let probs: Vec<f64> = exps.iter().map(|e| e / sum).collect();
            let mut mean: Vec<f64> = self.cls_norm.iter().map(|v| v * probs[0]).collect();
            for (p, n) in probs[1..].iter().zip(&norm) {
                for (m, v) in mean.iter_mut().zip(n) {
                    *m += p * v;
                }
            }
            for (cl, logit) in logits.iter_mut().enumerate().take(c) {
                *logit += self.head_weight[(j * c + cl) * d..][..d].iter().zip(&mean).map(|(a, b)| a * b).sum::<f64>();
            }
            probs_all.extend(probs);
        }
        (logits, probs_all)
    }
}

//! Per-thread scratch memory for inference, sized once per model shape so
//! that an inference never allocates.

use crate::shape::Shape;

/// Scratch buffers for one model shape. Make one with
/// [`Model::workspace`](crate::Model::workspace) and reuse it; it is not
/// shared between threads (each thread makes its own).
#[derive(Clone, Debug)]
pub struct Workspace {
    shape: Shape,
    /// One patch of normalised pixels, `P²`.
    pub(crate) patch: Vec<f32>,
    /// Token embeddings, then the residual stream, `T × D`.
    pub(crate) x: Vec<f32>,
    /// LayerNorm output, `T × D`.
    pub(crate) h: Vec<f32>,
    /// Q, K and V per token, `T × 3D`.
    pub(crate) qkv: Vec<f32>,
    /// Attention probabilities, `H × T × T`.
    pub(crate) attention: Vec<f32>,
    /// Attention output before the output projection, `T × D`.
    pub(crate) context: Vec<f32>,
    /// Logits, `C`.
    pub(crate) logits: Vec<f32>,
}

impl Workspace {
    pub fn new(shape: Shape) -> Workspace {
        let (t, d, h) = (shape.tokens() as usize, shape.dim as usize, shape.heads as usize);
        Workspace {
            shape,
            patch: vec![0.0; shape.patch_len()],
            x: vec![0.0; t * d],
            h: vec![0.0; t * d],
            qkv: vec![0.0; t * 3 * d],
            attention: vec![0.0; h * t * t],
            context: vec![0.0; t * d],
            logits: vec![0.0; shape.classes as usize],
        }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The logits of the last inference.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// The CLS token's attention over all tokens (the CLS token itself at
    /// index 0, then the patches row-major) for `head`, from the last
    /// inference. Sums to 1.
    pub fn cls_attention(&self, head: usize) -> &[f32] {
        let t = self.shape.tokens() as usize;
        &self.attention[head * t * t..][..t]
    }
}

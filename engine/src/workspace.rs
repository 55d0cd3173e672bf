//! Per-thread scratch memory for inference, sized once per model so that an
//! inference never allocates.

use crate::format::Encoding;
use crate::preprocess::Scratch;
use crate::shape::Shape;

/// Scratch buffers for one model shape and encoding. Make one with
/// [`Model::workspace`](crate::Model::workspace) and reuse it; it is not
/// shared between threads (each thread makes its own).
#[derive(Clone, Debug)]
pub struct Workspace {
    shape: Shape,
    encoding: Encoding,
    // f32 reference.
    /// One patch of normalised pixels, `P²`.
    pub(crate) patch: Vec<f32>,
    /// Token embeddings, then the residual stream, `T × D`.
    pub(crate) x: Vec<f32>,
    /// LayerNorm output, `T × D`.
    pub(crate) h: Vec<f32>,
    /// Q, K and V per token, `T × 3D`.
    pub(crate) qkv: Vec<f32>,
    /// Attention probabilities, `H × T × T` (the folded paths fill only each
    /// head's CLS row).
    pub(crate) attention: Vec<f32>,
    /// Attention output before the output projection, `T × D`.
    pub(crate) context: Vec<f32>,
    // f16 (folded, f32 compute).
    /// Patch tokens, then normalised in place, `(T-1) × D`.
    pub(crate) f_tokens: Vec<f32>,
    /// Attention-weighted mean of the normalised tokens, `D`.
    pub(crate) f_mean: Vec<f32>,
    /// The AVX2 f16 kernel's tokens, `[patches_pad][dim_pad]` (see [`Padded`]),
    /// and one head's scores, `1 + patches_pad`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) f_padded: Vec<f32>,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) f_scores: Vec<f32>,
    // int8.
    /// Patch embeddings on the LayerNorm input grid, `(T-1) × D`.
    pub(crate) q_tokens: Vec<i16>,
    /// Normalised patch tokens, Q4.11, `(T-1) × D`.
    pub(crate) q_norm: Vec<i16>,
    /// Scores of one head, Q.16, `T`.
    pub(crate) q_scores: Vec<i32>,
    /// CLS attention probabilities, Q.14, `H × T`.
    pub(crate) q_probs: Vec<i32>,
    /// Attention-weighted mean of the normalised tokens, Q4.11, `D`.
    pub(crate) q_mean: Vec<i16>,
    /// Logits, Q.16, `C`.
    pub(crate) logits_q: Vec<i32>,
    /// The image widened to i16 for SIMD kernels, `S² + 16` (zero padded).
    #[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
    pub(crate) simd_image: Vec<i16>,
    /// The AVX2 int8 kernel's padded buffers.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) padded: Padded,
    /// Logits, `C`.
    pub(crate) logits: Vec<f32>,
    // Images (Model::infer_image).
    /// The model input preprocessing made, `S²`.
    pub(crate) input: Vec<u8>,
    /// Preprocessing's fixed-size scratch (about 100 KB).
    pub(crate) preprocess: Box<Scratch>,
}

impl Workspace {
    pub fn new(shape: Shape, encoding: Encoding) -> Workspace {
        let (t, d, h, c) = (shape.tokens() as usize, shape.dim as usize, shape.heads as usize, shape.classes as usize);
        let sized = |used: bool, n: usize| if used { n } else { 0 };
        let (reference, f16, int8) = (encoding == Encoding::F32, encoding == Encoding::F16, encoding == Encoding::Int8);
        Workspace {
            shape,
            encoding,
            patch: vec![0.0; sized(reference, shape.patch_len())],
            x: vec![0.0; sized(reference, t * d)],
            h: vec![0.0; sized(reference, t * d)],
            qkv: vec![0.0; sized(reference, t * 3 * d)],
            attention: vec![0.0; if reference { h * t * t } else { h * t }],
            context: vec![0.0; sized(reference, t * d)],
            f_tokens: vec![0.0; sized(f16, (t - 1) * d)],
            f_mean: vec![0.0; sized(f16, d)],
            f_padded: vec![0.0; sized(f16, Padded::patches_pad(&shape) * Padded::dim_pad(&shape))],
            f_scores: vec![0.0; sized(f16, 1 + Padded::patches_pad(&shape))],
            q_tokens: vec![0; sized(int8, (t - 1) * d)],
            q_norm: vec![0; sized(int8, (t - 1) * d)],
            q_scores: vec![0; sized(int8, t)],
            q_probs: vec![0; sized(int8, h * t)],
            q_mean: vec![0; sized(int8, d)],
            logits_q: vec![0; sized(int8, c)],
            simd_image: vec![0; sized(int8, shape.pixels() + 16)],
            padded: if int8 { Padded::new(&shape) } else { Padded::default() },
            logits: vec![0.0; c],
            input: vec![0; shape.pixels()],
            preprocess: Scratch::boxed(),
        }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The logits of the last inference.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// The int8 path's logits of the last inference, Q.16 fixed point:
    /// identical on every CPU and backend. Empty for other encodings.
    pub fn logits_fixed(&self) -> &[i32] {
        &self.logits_q
    }

    /// The CLS token's attention over all tokens (the CLS token itself at
    /// index 0, then the patches row-major) for `head`, from the last
    /// inference of an f32 or f16 model. Sums to 1. For int8 models use
    /// [`Model::infer_with_attention`](crate::Model::infer_with_attention).
    pub fn cls_attention(&self, head: usize) -> &[f32] {
        let t = self.shape.tokens() as usize;
        let stride = if self.encoding == Encoding::F32 { t * t } else { t };
        &self.attention[head * stride..][..t]
    }
}

/// Buffers of a kernel that pads tokens to a multiple of 8 and channels to
/// a multiple of 32. Padding entries start at zero and the kernel never
/// writes them, so they stay zero.
#[derive(Clone, Debug, Default)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct Padded {
    /// Patch tokens on the LayerNorm input grid, `[patches_pad][dim_pad]`.
    pub(crate) tokens: Vec<i16>,
    /// Each patch's ink mask (pixel pairs with a nonzero pixel), `patches`.
    pub(crate) inks: Vec<u32>,
    /// LayerNorm constants of each group of four tokens: five vectors of
    /// four i64 lanes, `patches_pad / 4 · 20`.
    pub(crate) ln_params: Vec<i64>,
    /// Their LayerNorm, Q4.11, same layout.
    pub(crate) norm: Vec<i16>,
    /// Each head's scores: the CLS token's, then the patches',
    /// `heads × (1 + patches_pad)`.
    pub(crate) scores: Vec<i32>,
    /// One head's patch probabilities as i16, zero past the last patch,
    /// `patches_pad`.
    pub(crate) probs16: Vec<i16>,
}

impl Padded {
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn patches_pad(shape: &Shape) -> usize {
        shape.patches().div_ceil(8) * 8
    }

    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn dim_pad(shape: &Shape) -> usize {
        (shape.dim as usize).div_ceil(32) * 32
    }

    fn new(shape: &Shape) -> Padded {
        let (t, d) = (Padded::patches_pad(shape), Padded::dim_pad(shape));
        Padded {
            tokens: vec![0; t * d],
            inks: vec![0; shape.patches()],
            ln_params: vec![0; t / 4 * 20],
            norm: vec![0; t * d],
            scores: vec![0; shape.heads as usize * (1 + t)],
            probs16: vec![0; t],
        }
    }
}

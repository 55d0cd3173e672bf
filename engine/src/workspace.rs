//! Per-thread scratch memory, sized once per model so that an inference
//! never allocates: the scratch of the model's encoding (each encoding
//! defines its own, kernels' buffers included), the model input made from
//! an image, and preprocessing's fixed scratch.

use crate::ids::Encoding;
use crate::preprocess;
use crate::shape::Shape;
use crate::{f16, int8, reference};

/// Scratch buffers for one model shape and encoding. Make one with
/// [`Model::workspace`](crate::Model::workspace) and reuse it; it is not
/// shared between threads (each thread makes its own).
#[derive(Clone, Debug)]
pub struct Workspace {
    shape: Shape,
    pub(crate) scratch: Scratch,
    /// The model input preprocessing made, `S²`.
    pub(crate) input: Vec<u8>,
    /// Preprocessing's fixed-size scratch (about 100 KB).
    pub(crate) preprocess: Box<preprocess::Scratch>,
}

/// The scratch of one encoding's forward pass.
#[derive(Clone, Debug)]
pub(crate) enum Scratch {
    F32(reference::Scratch),
    F16(f16::Scratch),
    Int8(int8::Scratch),
}

impl Workspace {
    pub fn new(shape: Shape, encoding: Encoding) -> Workspace {
        let scratch = match encoding {
            Encoding::F32 => Scratch::F32(reference::Scratch::new(&shape)),
            Encoding::F16 => Scratch::F16(f16::Scratch::new(&shape)),
            Encoding::Int8 => Scratch::Int8(int8::Scratch::new(&shape)),
        };
        Workspace { shape, scratch, input: vec![0; shape.pixels()], preprocess: preprocess::Scratch::boxed() }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn encoding(&self) -> Encoding {
        match self.scratch {
            Scratch::F32(_) => Encoding::F32,
            Scratch::F16(_) => Encoding::F16,
            Scratch::Int8(_) => Encoding::Int8,
        }
    }

    /// The logits of the last inference.
    pub fn logits(&self) -> &[f32] {
        match &self.scratch {
            Scratch::F32(s) => &s.logits,
            Scratch::F16(s) => &s.logits,
            Scratch::Int8(s) => &s.logits,
        }
    }

    /// The int8 path's logits of the last inference, Q.16 fixed point:
    /// identical on every CPU and backend. Empty for other encodings.
    pub fn logits_fixed(&self) -> &[i32] {
        match &self.scratch {
            Scratch::Int8(s) => &s.logits_fixed,
            _ => &[],
        }
    }

    /// The CLS token's attention over all tokens (the CLS token itself at
    /// index 0, then the patches row-major) for `head`, from the last
    /// inference of an f32 or f16 model. Sums to 1. For int8 models use
    /// [`Model::infer_with_attention`](crate::Model::infer_with_attention);
    /// empty here.
    pub fn cls_attention(&self, head: usize) -> &[f32] {
        let t = self.shape.tokens() as usize;
        match &self.scratch {
            Scratch::F32(s) => s.cls_attention(head, t),
            Scratch::F16(s) => &s.attention[head * t..][..t],
            Scratch::Int8(_) => &[],
        }
    }
}

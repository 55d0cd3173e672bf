//! Per-thread scratch memory, sized once per model so that an inference
//! never allocates: the scratch of the model's encoding (each encoding
//! defines its own, kernels' buffers included), and, for a workspace on the
//! heap, the model input made from an image and preprocessing's fixed
//! scratch. A workspace in caller memory ([`WorkspaceIn::in_memory`]) holds
//! the encoding's scratch only: it is what a microcontroller without a heap
//! runs in.

#[cfg(feature = "alloc")]
use alloc::{boxed::Box, vec, vec::Vec};

use crate::error::InferError;
use crate::ids::Encoding;
#[cfg(feature = "alloc")]
use crate::memory::Heap;
use crate::memory::{Arena, Source};
#[cfg(feature = "alloc")]
use crate::preprocess;
use crate::shape::Shape;
use crate::{f16, int8, reference};

/// Scratch buffers for one model shape and encoding, in memory `'m`: the
/// heap ([`Workspace`]) or a caller's buffer ([`WorkspaceIn::in_memory`]).
/// Make one and reuse it; it is not shared between threads (each thread
/// makes its own).
#[derive(Debug)]
#[cfg_attr(feature = "alloc", derive(Clone))]
pub struct WorkspaceIn<'m> {
    shape: Shape,
    pub(crate) scratch: Scratch<'m>,
    /// What [`Model::preprocess`](crate::Model::preprocess) needs; only a
    /// workspace on the heap has it.
    #[cfg(feature = "alloc")]
    pub(crate) images: Option<Images>,
}

/// A workspace on the heap: [`Workspace::new`], or
/// [`Model::workspace`](crate::Model::workspace).
pub type Workspace = WorkspaceIn<'static>;

/// The buffers of image inference.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug)]
pub(crate) struct Images {
    /// The model input preprocessing made, `S²`.
    pub(crate) input: Vec<u8>,
    /// Preprocessing's fixed-size scratch (about 100 KB).
    pub(crate) preprocess: Box<preprocess::Scratch>,
}

/// The scratch of one encoding's forward pass.
#[derive(Debug)]
#[cfg_attr(feature = "alloc", derive(Clone))]
pub(crate) enum Scratch<'m> {
    F32(reference::Scratch<'m>),
    F16(f16::Scratch<'m>),
    Int8(int8::Scratch<'m>),
}

impl<'m> Scratch<'m> {
    fn new(shape: &Shape, encoding: Encoding, src: &mut impl Source<'m>) -> Scratch<'m> {
        match encoding {
            Encoding::F32 => Scratch::F32(reference::Scratch::new(shape, src)),
            Encoding::F16 => Scratch::F16(f16::Scratch::new(shape, src)),
            Encoding::Int8 => Scratch::Int8(int8::Scratch::new(shape, src)),
        }
    }
}

#[cfg(feature = "alloc")]
impl Workspace {
    /// A workspace on the heap, with the image buffers.
    pub fn new(shape: Shape, encoding: Encoding) -> Workspace {
        let scratch = Scratch::new(&shape, encoding, &mut Heap);
        let images = Images { input: vec![0; shape.pixels()], preprocess: preprocess::Scratch::boxed() };
        WorkspaceIn { shape, scratch, images: Some(images) }
    }
}

impl<'m> WorkspaceIn<'m> {
    /// The u32 words of memory [`WorkspaceIn::in_memory`] needs for a model
    /// of this shape and encoding (649 words, 2,596 bytes, for the seed int8 model).
    pub fn words(shape: Shape, encoding: Encoding) -> usize {
        let mut count = Arena::new(&mut []);
        Scratch::new(&shape, encoding, &mut count);
        count.needed()
    }

    /// A workspace in `mem`, which must hold at least
    /// [`WorkspaceIn::words`] words: allocation-free, for targets with no
    /// heap. It runs [`Model::infer`](crate::Model::infer) and the other
    /// inferences of a model input; it has no image buffers, so
    /// [`Model::preprocess`](crate::Model::preprocess) refuses it (call
    /// [`preprocess::preprocess`](crate::preprocess::preprocess) with a
    /// scratch of your own instead). With `std`, on CPUs with SIMD kernels,
    /// those kernels' own buffers still come from the heap.
    pub fn in_memory(shape: Shape, encoding: Encoding, mem: &'m mut [u32]) -> Result<WorkspaceIn<'m>, InferError> {
        let found = mem.len();
        let mut arena = Arena::new(mem);
        let scratch = Scratch::new(&shape, encoding, &mut arena);
        if arena.needed() > found {
            return Err(InferError::WorkspaceMemory { needed: arena.needed(), found });
        }
        #[cfg(feature = "alloc")]
        return Ok(WorkspaceIn { shape, scratch, images: None });
        #[cfg(not(feature = "alloc"))]
        Ok(WorkspaceIn { shape, scratch })
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

//! A loaded, validated model: the blob bytes (owned or borrowed) and their
//! layout.

#[cfg(feature = "alloc")]
use alloc::{vec, vec::Vec};

use half::f16;

use crate::backend::{Backend, BackendError};
use crate::error::{InferError, LoadError};
use crate::format::{self, Layout, ModelConfig, TENSOR_ALIGN};
use crate::ids::{ElemType, Encoding, TensorId};
use crate::int8;
use crate::math::exp;
#[cfg(feature = "alloc")]
use crate::preprocess::{self, Polarity, SourceImage};
use crate::preprocess::{Digit, PreprocessError};
use crate::shape::Shape;
#[cfg(feature = "alloc")]
use crate::workspace::Workspace;
use crate::workspace::{Scratch, WorkspaceIn};
#[cfg(feature = "float")]
use crate::{f16 as half_path, reference};

/// The alignment a caller-owned buffer needs for [`Model::from_bytes_borrowed`]:
/// that of the widest stored element. Every `malloc` and `mmap` gives it.
pub const BORROWED_ALIGN: usize = 4;

/// One cache line of blob bytes; an owned blob is a vector of these so every
/// tensor (at a 64-byte offset) starts on a cache line.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([u8; TENSOR_ALIGN]);

enum Bytes<'a> {
    #[cfg(feature = "alloc")]
    Owned {
        lines: Vec<Line>,
        len: usize,
    },
    Borrowed(&'a [u8]),
}

impl Bytes<'_> {
    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self {
            #[cfg(feature = "alloc")]
            Bytes::Owned { lines, len } => &bytemuck::cast_slice(lines)[..*len],
            Bytes::Borrowed(b) => b,
        }
    }
}

/// A Micro-ViT ready to run. Immutable after load, so one model can be
/// shared by any number of threads, each with its own [`Workspace`].
pub struct Model<'a> {
    bytes: Bytes<'a>,
    layout: Layout,
    /// The int8 scalar parameters, checked once at load.
    int8_params: Option<int8::Params>,
    /// The kernel inference runs, with its weight layout.
    kernel: Kernel,
}

/// The kernel of a model's encoding.
#[derive(Clone, Debug)]
enum Kernel {
    /// The f32 reference has one pass, scalar.
    F32,
    #[cfg(feature = "float")]
    F16(half_path::Kernel),
    Int8(int8::Kernel),
}

#[cfg(feature = "alloc")]
impl Model<'static> {
    /// Validates a blob and copies it into an aligned buffer of its own.
    pub fn from_bytes(blob: &[u8]) -> Result<Model<'static>, LoadError> {
        let layout = format::parse(blob)?;
        let mut lines = vec![Line([0; TENSOR_ALIGN]); blob.len().div_ceil(TENSOR_ALIGN)];
        bytemuck::cast_slice_mut::<Line, u8>(&mut lines)[..blob.len()].copy_from_slice(blob);
        Model::validated(Bytes::Owned { lines, len: blob.len() }, layout)
    }
}

impl<'a> Model<'a> {
    /// Validates a blob and uses it in place, without copying: for a mmapped
    /// file or a model in flash. The buffer must be [`BORROWED_ALIGN`]-aligned.
    pub fn from_bytes_borrowed(blob: &'a [u8]) -> Result<Model<'a>, LoadError> {
        // Parse first: an empty or garbage buffer is better reported as such
        // than as misaligned.
        let layout = format::parse(blob)?;
        let address = blob.as_ptr() as usize;
        if !address.is_multiple_of(BORROWED_ALIGN) {
            return Err(LoadError::MisalignedBuffer { required: BORROWED_ALIGN, address });
        }
        Model::validated(Bytes::Borrowed(blob), layout)
    }

    fn validated(bytes: Bytes<'a>, layout: Layout) -> Result<Model<'a>, LoadError> {
        let mut model = Model { bytes, layout, int8_params: None, kernel: Kernel::F32 };
        for t in &model.layout.tensors {
            let non_finite = match t.elem {
                ElemType::F32 => model.tensor::<f32>(t.id).iter().position(|v| !v.is_finite()),
                ElemType::F16 => model.tensor::<f16>(t.id).iter().position(|v| !v.is_finite()),
                ElemType::I8 | ElemType::I16 | ElemType::I32 => None,
            };
            if let Some(index) = non_finite {
                return Err(LoadError::NonFinite { tensor: t.id, index });
            }
            // Finite is not enough: see ModelConfig::value_limit.
            if let (Some(limit), ElemType::F32) = (model.config().value_limit(t.id), t.elem) {
                let values = model.tensor::<f32>(t.id);
                if let Some(index) = values.iter().position(|v| v.abs() as f64 > limit) {
                    return Err(LoadError::TooLarge { tensor: t.id, index, value: values[index], limit });
                }
            }
        }
        if model.encoding() == Encoding::Int8 {
            let raw = model.tensor::<i32>(TensorId::Int8Params);
            let params = int8::Params::from_raw(raw).map_err(|(index, reason)| LoadError::OutOfRange {
                tensor: TensorId::Int8Params,
                index,
                reason,
            })?;
            model.int8_params = Some(params);
            int8::validate(&model.int8_weights(), &model.shape())?;
        }
        model.use_fastest_backend();
        Ok(model)
    }

    /// The backend whose code this model's inferences run: a SIMD backend,
    /// or [`Backend::Scalar`] (always for f32 models, which run the
    /// reference pass; for a backend with no kernel for this encoding).
    pub fn backend(&self) -> Backend {
        match &self.kernel {
            Kernel::F32 => Backend::Scalar,
            #[cfg(feature = "float")]
            Kernel::F16(k) => k.backend(),
            Kernel::Int8(k) => k.backend(),
        }
    }

    /// Runs this model's inferences on `backend`'s kernel for its encoding
    /// from now on, or on the scalar pass if the backend has none (an f32
    /// model always runs scalar). Prepares the weight layout the kernel
    /// reads, so do it before sharing the model. Fails, changing nothing,
    /// if this CPU lacks the backend.
    pub fn set_backend(&mut self, backend: Backend) -> Result<(), BackendError> {
        let backend = backend.checked()?;
        self.kernel = self.kernel_of(backend).unwrap_or_else(|| self.kernel_of(Backend::Scalar).unwrap_or(Kernel::F32));
        Ok(())
    }

    /// Runs on the fastest kernel this CPU has for the model's encoding (how
    /// every model starts).
    pub fn use_fastest_backend(&mut self) {
        let fastest = Backend::FASTEST_FIRST.into_iter().filter(|b| b.is_available()).find_map(|b| self.kernel_of(b));
        self.kernel = fastest.unwrap_or(Kernel::F32);
    }

    /// `backend`'s kernel for this model's encoding, if it has one and this
    /// CPU can run it.
    fn kernel_of(&self, backend: Backend) -> Option<Kernel> {
        let shape = self.shape();
        match self.encoding() {
            #[cfg(feature = "float")]
            Encoding::F32 => (backend == Backend::Scalar).then_some(Kernel::F32),
            #[cfg(feature = "float")]
            Encoding::F16 => half_path::Kernel::of(backend, &self.f16_weights(), &shape).map(Kernel::F16),
            // Not loaded in this build (format::parse refuses them).
            #[cfg(not(feature = "float"))]
            Encoding::F32 | Encoding::F16 => None,
            Encoding::Int8 => int8::Kernel::of(backend, &self.int8_weights(), &shape).map(Kernel::Int8),
        }
    }

    pub fn shape(&self) -> Shape {
        self.layout.header.config.shape
    }

    pub fn config(&self) -> &ModelConfig {
        &self.layout.header.config
    }

    pub fn encoding(&self) -> Encoding {
        self.layout.header.encoding
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The blob this model was loaded from.
    pub fn blob(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Scratch memory for this model's inferences; make one per thread and
    /// reuse it, so inference never touches the heap.
    #[cfg(feature = "alloc")]
    pub fn workspace(&self) -> Workspace {
        Workspace::new(self.shape(), self.encoding())
    }

    /// The u32 words of memory [`Model::workspace_in`] needs.
    pub fn workspace_words(&self) -> usize {
        WorkspaceIn::words(self.shape(), self.encoding())
    }

    /// A workspace for this model in caller memory, which must hold
    /// [`Model::workspace_words`] words: no heap needed
    /// ([`WorkspaceIn::in_memory`]).
    pub fn workspace_in<'m>(&self, mem: &'m mut [u32]) -> Result<WorkspaceIn<'m>, InferError> {
        WorkspaceIn::in_memory(self.shape(), self.encoding(), mem)
    }

    /// Runs one image (`side × side` u8 pixels, row-major) and returns the
    /// logits, which live in the workspace until its next use.
    pub fn infer<'w>(&self, image: &[u8], ws: &'w mut WorkspaceIn<'_>) -> Result<&'w [f32], InferError> {
        let shape = self.shape();
        if image.len() != shape.pixels() {
            return Err(InferError::ImageSize { expected: shape.pixels(), found: image.len() });
        }
        self.check_workspace(ws)?;
        self.forward(image, ws)?;
        Ok(ws.logits())
    }

    /// Runs `count` images stored back to back in `images` (`count × side²`
    /// bytes) and writes image i's logits to `logits[i·classes..][..classes]`
    /// (`count × classes` values): the results of [`Model::infer`] on each,
    /// with the sizes checked once for the whole batch.
    pub fn infer_batch(&self, images: &[u8], ws: &mut WorkspaceIn<'_>, logits: &mut [f32]) -> Result<(), InferError> {
        let shape = self.shape();
        let (pixels, classes) = (shape.pixels(), shape.classes as usize);
        if !images.len().is_multiple_of(pixels) || logits.len() != images.len() / pixels * classes {
            return Err(InferError::BatchSize { image_bytes: images.len(), logits: logits.len(), pixels, classes });
        }
        self.check_workspace(ws)?;
        let pairs = images.chunks_exact(pixels).zip(logits.chunks_exact_mut(classes));
        // The kernel and its weights looked up once for the whole batch, not
        // per image as `forward` does.
        match (&self.kernel, &mut ws.scratch) {
            #[cfg(feature = "float")]
            (Kernel::F32, Scratch::F32(s)) => {
                let w = self.f32_weights();
                for (image, out) in pairs {
                    reference::forward(&w, self.config(), image, s);
                    out.copy_from_slice(&s.logits);
                }
            }
            #[cfg(feature = "float")]
            (Kernel::F16(k), Scratch::F16(s)) => {
                let w = self.f16_weights();
                for (image, out) in pairs {
                    k.forward(&w, &shape, image, s);
                    out.copy_from_slice(&s.logits);
                }
            }
            (Kernel::Int8(k), Scratch::Int8(s)) => {
                let w = self.int8_weights();
                for (image, out) in pairs {
                    k.forward(|| w, &shape, image, s);
                    out.copy_from_slice(&s.logits);
                }
            }
            _ => return Err(InferError::WorkspaceMismatch),
        }
        Ok(())
    }

    fn check_workspace(&self, ws: &WorkspaceIn<'_>) -> Result<(), InferError> {
        if ws.shape() != self.shape() || ws.encoding() != self.encoding() {
            return Err(InferError::WorkspaceMismatch);
        }
        Ok(())
    }

    /// One image of the right size into a workspace of this model's shape.
    fn forward(&self, image: &[u8], ws: &mut WorkspaceIn<'_>) -> Result<(), InferError> {
        let shape = self.shape();
        match (&self.kernel, &mut ws.scratch) {
            #[cfg(feature = "float")]
            (Kernel::F32, Scratch::F32(s)) => reference::forward(&self.f32_weights(), self.config(), image, s),
            #[cfg(feature = "float")]
            (Kernel::F16(k), Scratch::F16(s)) => k.forward(&self.f16_weights(), &shape, image, s),
            (Kernel::Int8(k), Scratch::Int8(s)) => k.forward(|| self.int8_weights(), &shape, image, s),
            _ => return Err(InferError::WorkspaceMismatch),
        }
        Ok(())
    }

    /// Runs one image like [`Model::infer`] and also writes the CLS token's
    /// attention, `heads × tokens` (token 0 is the CLS token itself, then the
    /// patches row-major; each head's row sums to 1), as that path computed
    /// it. Opt-in, so plain inference does not pay for it.
    pub fn infer_with_attention<'w>(
        &self,
        image: &[u8],
        ws: &'w mut WorkspaceIn<'_>,
        cls_attention: &mut [f32],
    ) -> Result<&'w [f32], InferError> {
        let shape = self.shape();
        let expected = shape.heads as usize * shape.tokens() as usize;
        if cls_attention.len() != expected {
            return Err(InferError::AttentionBufferSize { expected, found: cls_attention.len() });
        }
        self.infer(image, ws)?;
        let t = shape.tokens() as usize;
        for (head, row) in cls_attention.chunks_exact_mut(t).enumerate() {
            match &ws.scratch {
                // The probabilities the int8 path used, Q.14, made readable.
                Scratch::Int8(s) => s.cls_attention(head, t, row),
                _ => row.copy_from_slice(ws.cls_attention(head)),
            }
        }
        Ok(ws.logits())
    }

    /// Turns a photo or drawing of a digit into this model's input, MNIST
    /// style (docs/PREPROCESSING.md): returns where the digit was found and
    /// the `side × side` input, which lives in the workspace until its next
    /// use. Allocation-free, integer-only: the same bytes on every CPU. Needs
    /// a workspace on the heap (one in caller memory has no image buffers:
    /// [`InferError::WorkspaceMismatch`]).
    #[cfg(feature = "alloc")]
    pub fn preprocess<'w>(
        &self,
        image: &SourceImage<'_>,
        polarity: Polarity,
        ws: &'w mut WorkspaceIn<'_>,
    ) -> Result<(Digit, &'w [u8]), InferError> {
        self.check_workspace(ws)?;
        let side = self.shape().image_side as usize;
        let images = ws.images.as_mut().ok_or(InferError::WorkspaceMismatch)?;
        let digit = preprocess::preprocess(image, polarity, &mut images.preprocess, side, &mut images.input)
            .map_err(InferError::from)?;
        Ok((digit, &images.input))
    }

    /// [`Model::preprocess`] then [`Model::infer`]: classifies a photo or
    /// drawing of any size. A blank image, or one with no digit-like ink,
    /// is [`InferError::NoDigit`], never a class.
    #[cfg(feature = "alloc")]
    pub fn infer_image<'w>(
        &self,
        image: &SourceImage<'_>,
        polarity: Polarity,
        ws: &'w mut WorkspaceIn<'_>,
    ) -> Result<ImageInference<'w>, InferError> {
        let (digit, _) = self.preprocess(image, polarity, ws)?;
        // The image buffers move out of the workspace for the forward pass
        // (no copy, no allocation) and back in.
        let images = ws.images.take().ok_or(InferError::WorkspaceMismatch)?;
        let result = self.forward(&images.input, ws);
        ws.images = Some(images);
        result?;
        let input = ws.images.as_ref().map_or(&[][..], |i| &i.input[..]);
        Ok(ImageInference { digit, input, logits: ws.logits() })
    }

    /// Runs one image and returns the index of the largest logit.
    pub fn classify(&self, image: &[u8], ws: &mut WorkspaceIn<'_>) -> Result<usize, InferError> {
        self.infer(image, ws).map(argmax)
    }

    /// A tensor's values; `T` matches its element type (checked at load).
    /// Inlined: the weights of an inference are looked up on every call.
    #[inline(always)]
    fn tensor<T: bytemuck::Pod>(&self, id: TensorId) -> &[T] {
        let t = self.layout.tensor(id);
        // Alignment holds: tensors sit at 64-byte offsets in a buffer that is
        // 64-byte aligned (owned) or checked to be 4-byte aligned (borrowed).
        bytemuck::cast_slice(&self.bytes.as_slice()[t.offset..t.offset + t.len])
    }

    #[cfg(feature = "float")]
    fn f32_weights(&self) -> reference::Weights<'_> {
        reference::Weights {
            patch_embed_weight: self.tensor(TensorId::PatchEmbedWeight),
            patch_embed_bias: self.tensor(TensorId::PatchEmbedBias),
            cls_token: self.tensor(TensorId::ClsToken),
            pos_embed: self.tensor(TensorId::PosEmbed),
            norm_weight: self.tensor(TensorId::NormWeight),
            norm_bias: self.tensor(TensorId::NormBias),
            in_proj_weight: self.tensor(TensorId::InProjWeight),
            in_proj_bias: self.tensor(TensorId::InProjBias),
            out_proj_weight: self.tensor(TensorId::OutProjWeight),
            out_proj_bias: self.tensor(TensorId::OutProjBias),
            head_weight: self.tensor(TensorId::HeadWeight),
            head_bias: self.tensor(TensorId::HeadBias),
        }
    }

    #[cfg(feature = "float")]
    fn f16_weights(&self) -> half_path::Weights<'_> {
        half_path::Weights {
            patch_weight: self.tensor(TensorId::F16PatchWeight),
            token_bias: self.tensor(TensorId::F16TokenBias),
            cls_norm: self.tensor(TensorId::F16ClsNorm),
            score_weight: self.tensor(TensorId::F16ScoreWeight),
            cls_score: self.tensor(TensorId::F16ClsScore),
            head_weight: self.tensor(TensorId::F16HeadWeight),
            head_bias: self.tensor(TensorId::F16HeadBias),
            layer_norm_eps: self.config().layer_norm_eps,
        }
    }

    #[inline]
    pub(crate) fn int8_weights(&self) -> int8::Weights<'_> {
        int8::Weights {
            patch_weight: self.tensor(TensorId::Int8PatchWeight),
            patch_scale: self.tensor(TensorId::Int8PatchScale),
            token_bias: self.tensor(TensorId::Int8TokenBias),
            params: self.int8_params.expect("int8 parameters are read at load"),
            cls_norm: self.tensor(TensorId::Int8ClsNorm),
            score_weight: self.tensor(TensorId::Int8ScoreWeight),
            cls_score: self.tensor(TensorId::Int8ClsScore),
            head_weight: self.tensor(TensorId::Int8HeadWeight),
            head_bias: self.tensor(TensorId::Int8HeadBias),
        }
    }

    /// The f32 tensors of the blob (all of them, for an f32 blob), by
    /// PyTorch state_dict name.
    #[cfg(feature = "alloc")]
    pub fn state_dict(&self) -> Vec<(&'static str, &[f32])> {
        let f32_tensors = self.layout.tensors.iter().filter(|t| t.elem == ElemType::F32);
        f32_tensors.map(|t| (t.id.name(), self.tensor(t.id))).collect()
    }
}

/// What [`Model::infer_image`] found and computed.
#[derive(Clone, Copy, Debug)]
pub struct ImageInference<'w> {
    /// Where the digit is in the image, and how it was read.
    pub digit: Digit,
    /// The model input made from it (`side × side`, white on black).
    pub input: &'w [u8],
    /// The logits.
    pub logits: &'w [f32],
}

impl From<PreprocessError> for InferError {
    fn from(e: PreprocessError) -> InferError {
        match e {
            PreprocessError::Source(e) => InferError::Source(e),
            PreprocessError::NoDigit(why) => InferError::NoDigit(why),
            // `OutputSize` (the enum is another crate's, so non-exhaustive
            // here): only an input buffer that does not fit the model's
            // side, the workspace's, which check_workspace has matched to it.
            _ => InferError::WorkspaceMismatch,
        }
    }
}

/// Index of the largest value; the first one on ties, as `torch.argmax`.
pub fn argmax(values: &[f32]) -> usize {
    let Some(&first) = values.first() else { return 0 };
    // The best value kept beside its index: no reload, no bounds check.
    let (mut best, mut top) = (0, first);
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > top {
            (best, top) = (i, v);
        }
    }
    best
}

/// Softmax of `logits` into `probs` (same length).
pub fn softmax(logits: &[f32], probs: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (p, &l) in probs.iter_mut().zip(logits) {
        *p = exp(l - max);
        sum += *p;
    }
    for p in probs.iter_mut() {
        *p /= sum;
    }
}

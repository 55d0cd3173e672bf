//! Errors of loading a blob and of running it.

use core::fmt;

use crate::ids::{Dims, ElemType, Encoding, TensorId};
use crate::preprocess::{NoDigit, SourceError};
use crate::shape::ShapeError;

/// Why a blob was rejected. Every variant names what is wrong and where, so a
/// user holding a bad file knows whether it is truncated, corrupted, from a
/// newer converter, or inconsistent.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LoadError {
    /// Fewer bytes than the header or the declared blob length needs.
    Truncated { needed: usize, actual: usize },
    /// More bytes than the header declares: two files glued together, or a
    /// length field that was tampered with.
    TrailingBytes { declared: usize, actual: usize },
    /// The first four bytes are not `MVIT`.
    BadMagic { found: [u8; 4] },
    /// A blob from a newer (or unknown) format version.
    UnsupportedVersion { found: u16, supported: u16 },
    /// The header-length field disagrees with the format version.
    BadHeaderLength { found: u16, expected: u16 },
    /// The stored checksum does not match the bytes: the blob is corrupted.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// The weight encoding byte names no encoding this engine knows.
    UnknownEncoding { found: u8 },
    /// A known encoding this build leaves out: f32 and f16 need the engine's
    /// `float` feature (a firmware may build int8 only).
    EncodingNotBuilt { encoding: Encoding },
    /// A reserved byte (header or tensor table) is not zero.
    ReservedNotZero { offset: usize },
    /// The model shape is outside the supported family.
    InvalidShape(ShapeError),
    /// A scalar header parameter is unusable: pixel_mean must be within ±1e6,
    /// pixel_std within [1e-6, 1e6], layer_norm_eps within (0, 1].
    InvalidParameter { name: &'static str, value: f32 },
    /// The tensor table runs past the end of the blob.
    TensorTableOutOfBounds { count: usize, end: usize, blob_len: usize },
    /// A tensor id that this encoding does not use.
    UnexpectedTensor { id: u16, encoding: Encoding },
    /// The same tensor appears twice in the table.
    DuplicateTensor { tensor: TensorId },
    /// A tensor the encoding needs is absent.
    MissingTensor { tensor: TensorId },
    /// A tensor's element type is not the one its encoding prescribes.
    WrongElementType { tensor: TensorId, expected: ElemType, found: u8 },
    /// A tensor's dimensions disagree with the model shape in the header.
    WrongTensorShape { tensor: TensorId, expected: Dims, found: Dims },
    /// A tensor's byte length disagrees with its dimensions.
    WrongByteLength { tensor: TensorId, expected: usize, found: usize },
    /// A tensor does not start on a 64-byte boundary.
    MisalignedTensor { tensor: TensorId, offset: usize },
    /// A tensor's bytes lie (partly) outside the data area of the blob.
    TensorOutOfBounds { tensor: TensorId, offset: usize, len: usize, blob_len: usize },
    /// Two tensors share bytes.
    OverlappingTensors { first: TensorId, second: TensorId },
    /// A weight is NaN or infinite.
    NonFinite { tensor: TensorId, index: usize },
    /// A float value is finite but so large that some image could make a
    /// logit NaN or infinite: beyond the bound docs/FORMAT.md proves safe
    /// (`ModelConfig::value_limit`).
    TooLarge { tensor: TensorId, index: usize, value: f32, limit: f64 },
    /// An int8 blob value outside the range its fixed-point arithmetic is
    /// proven overflow-free for (docs/FIXED_POINT.md).
    OutOfRange { tensor: TensorId, index: usize, reason: &'static str },
    /// A zero-copy load was given a buffer that is not aligned enough.
    MisalignedBuffer { required: usize, address: usize },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadError::*;
        match self {
            Truncated { needed, actual } => {
                write!(f, "blob is truncated: {actual} bytes, at least {needed} needed")
            }
            TrailingBytes { declared, actual } => {
                write!(f, "blob has {actual} bytes but its header declares {declared}")
            }
            BadMagic { found } => write!(f, "not a microvit blob: magic is {found:02x?}, expected \"MVIT\""),
            UnsupportedVersion { found, supported } => write!(
                f,
                "blob format version {found} is not supported (this engine reads version {supported}); \
                 convert the model again with this microvit version"
            ),
            BadHeaderLength { found, expected } => {
                write!(f, "header length field is {found}, version 1 headers are {expected} bytes")
            }
            ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch: header says {stored:#010x}, bytes give {computed:#010x}; the blob is corrupted"
            ),
            UnknownEncoding { found } => write!(f, "unknown weight encoding {found}"),
            EncodingNotBuilt { encoding } => write!(
                f,
                "this build of microvit-engine runs int8 models only, not {encoding} (its `float` feature is off)"
            ),
            ReservedNotZero { offset } => write!(f, "reserved byte at offset {offset} is not zero"),
            InvalidShape(e) => write!(f, "model shape is not supported: {e}"),
            InvalidParameter { name, value } => write!(f, "header parameter {name} = {} is not usable", Float(*value)),
            TensorTableOutOfBounds { count, end, blob_len } => write!(
                f,
                "tensor table of {count} entries ends at byte {end}, past the end of the {blob_len}-byte blob"
            ),
            UnexpectedTensor { id, encoding } => {
                write!(f, "tensor id {id} does not belong in an {encoding} blob")
            }
            DuplicateTensor { tensor } => write!(f, "tensor {tensor} appears twice"),
            MissingTensor { tensor } => write!(f, "tensor {tensor} is missing"),
            WrongElementType { tensor, expected, found } => {
                write!(f, "tensor {tensor} has element type {}, expected {expected}", ElemType::describe_code(*found))
            }
            WrongTensorShape { tensor, expected, found } => {
                write!(f, "tensor {tensor} has shape {found}, the header's model shape needs {expected}")
            }
            WrongByteLength { tensor, expected, found } => {
                write!(f, "tensor {tensor} declares {found} bytes, its shape needs {expected}")
            }
            MisalignedTensor { tensor, offset } => {
                write!(f, "tensor {tensor} starts at byte {offset}, not on a 64-byte boundary")
            }
            TensorOutOfBounds { tensor, offset, len, blob_len } => write!(
                f,
                "tensor {tensor} spans bytes {offset}..{} outside the data area of the {blob_len}-byte blob",
                *offset as u64 + *len as u64
            ),
            OverlappingTensors { first, second } => write!(f, "tensors {first} and {second} overlap"),
            NonFinite { tensor, index } => write!(f, "tensor {tensor} has a NaN or infinite value at index {index}"),
            TooLarge { tensor, index, value, limit } => write!(
                f,
                "tensor {tensor} holds {} at index {index}, beyond the ±{} that keeps every logit \
                 finite (docs/FORMAT.md, magnitude bounds)",
                Float(*value),
                Float(*limit as f32)
            ),
            OutOfRange { tensor, index, reason } => {
                write!(f, "tensor {tensor} is out of range at index {index}: {reason}")
            }
            MisalignedBuffer { required, address } => {
                write!(f, "zero-copy load needs a {required}-byte aligned buffer, this one starts at {address:#x}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LoadError {}

/// An f32 in an error message, as its shortest round-trip text (`3e38`,
/// `0.5`, `NaN`): `ryu` is a fraction of the size of core's formatting.
struct Float(f32);

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ryu::Buffer::new().format(self.0))
    }
}

/// Why an inference could not run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InferError {
    /// The image does not have `side × side` pixels.
    ImageSize { expected: usize, found: usize },
    /// The workspace was made for a model of another shape or encoding, or
    /// (for image inference) lives in caller memory, which has no image
    /// buffers.
    WorkspaceMismatch,
    /// [`WorkspaceIn::in_memory`](crate::WorkspaceIn::in_memory): the
    /// caller's memory holds `found` u32 words, the workspace needs `needed`.
    WorkspaceMemory { needed: usize, found: usize },
    /// The attention output buffer is not `heads × tokens` long.
    AttentionBufferSize { expected: usize, found: usize },
    /// A batch's image bytes are not whole images, or its logits buffer is
    /// not `images × classes` long.
    BatchSize { image_bytes: usize, logits: usize, pixels: usize, classes: usize },
    /// [`Model::infer_image`](crate::Model::infer_image): the image
    /// description is unusable (sizes, stride, buffer length).
    Source(SourceError),
    /// [`Model::infer_image`](crate::Model::infer_image): the image holds
    /// no digit to classify (docs/PREPROCESSING.md says when).
    NoDigit(NoDigit),
}

impl fmt::Display for InferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InferError::ImageSize { expected, found } => {
                write!(f, "image has {found} pixels, the model takes {expected}")
            }
            InferError::WorkspaceMismatch => {
                f.write_str("workspace was made for a model of another shape; make one with Model::workspace()")
            }
            InferError::WorkspaceMemory { needed, found } => {
                write!(f, "workspace memory of {found} u32 words is too small: the model needs {needed}")
            }
            InferError::AttentionBufferSize { expected, found } => {
                write!(f, "attention buffer holds {found} values, the model needs heads × tokens = {expected}")
            }
            InferError::BatchSize { image_bytes, logits, pixels, classes } => write!(
                f,
                "batch of {image_bytes} image bytes and {logits} logits: needs whole {pixels}-pixel images \
                 and {classes} logits per image"
            ),
            InferError::Source(e) => write!(f, "image: {e}"),
            InferError::NoDigit(why) => write!(f, "no digit found: {why}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for InferError {}

//! Why a state_dict could not be converted.

use std::fmt;

use microvit_engine::shape::ShapeError;

#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConvertError {
    /// The file is not valid safetensors.
    Safetensors { reason: String },
    /// A tensor is stored in a dtype other than F32, F16 or BF16.
    UnsupportedTensorDtype { tensor: String, dtype: String },
    /// Two names mean the same tensor once the `model.`/`module.` prefix is
    /// removed.
    DuplicateTensor { tensor: String },
    /// A Micro-ViT tensor is absent.
    MissingTensor { tensor: String },
    /// A tensor that is not part of a Micro-ViT.
    UnexpectedTensor { tensor: String },
    /// A tensor's shape does not fit the model.
    BadShape { tensor: String, found: Vec<usize>, reason: String },
    /// A weight is NaN or infinite.
    NonFinite { tensor: String, index: usize, value: f32 },
    /// A weight is finite but beyond the bound that keeps every logit
    /// finite (`ModelConfig::value_limit`, docs/FORMAT.md): the engine would
    /// refuse the blob.
    TooLarge { tensor: String, index: usize, value: f32, limit: f64 },
    /// The number of heads is neither in the metadata nor given.
    HeadsUnknown,
    /// A `microvit.*` metadata value is unusable.
    BadMetadata { key: String, value: String, reason: String },
    /// Normalisation or epsilon is unusable.
    BadParameter { name: &'static str, value: f32 },
    /// The model is outside the supported shape family.
    UnsupportedShape(ShapeError),
    /// The calibration digits are missing or unusable.
    Calibration { reason: String },
    /// The model cannot be put on the int8 fixed-point grid, or its folded
    /// weights do not fit the f16 encoding (the reason names which).
    NotQuantizable { reason: String },
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConvertError::*;
        match self {
            Safetensors { reason } => write!(f, "not a valid safetensors file: {reason}"),
            UnsupportedTensorDtype { tensor, dtype } => {
                write!(f, "tensor {tensor} is {dtype}; only F32, F16 and BF16 tensors can be converted")
            }
            DuplicateTensor { tensor } => {
                write!(f, "tensor {tensor} appears twice (with and without a model./module. prefix)")
            }
            MissingTensor { tensor } => write!(f, "tensor {tensor} is missing; is this a Micro-ViT state_dict?"),
            UnexpectedTensor { tensor } => write!(f, "tensor {tensor} is not part of a Micro-ViT state_dict"),
            BadShape { tensor, found, reason } => write!(f, "tensor {tensor} has shape {found:?}: {reason}"),
            NonFinite { tensor, index, value } => write!(f, "tensor {tensor} holds {value} at index {index}"),
            TooLarge { tensor, index, value, limit } => write!(
                f,
                "tensor {tensor} holds {} at index {index}, beyond the ±{} that keeps every logit \
                 finite (docs/FORMAT.md, magnitude bounds)",
                ryu::Buffer::new().format(*value),
                ryu::Buffer::new().format(*limit as f32)
            ),
            HeadsUnknown => f.write_str(
                "the number of attention heads is not in the weights or the metadata; pass --heads N \
                 (or store microvit.num_heads in the safetensors metadata)",
            ),
            BadMetadata { key, value, reason } => write!(f, "metadata {key} = {value:?}: {reason}"),
            BadParameter { name, value } => write!(f, "{name} = {value} is not usable"),
            UnsupportedShape(e) => write!(f, "model shape is not supported: {e}"),
            Calibration { reason } => write!(f, "calibration: {reason}"),
            NotQuantizable { reason } => write!(f, "cannot quantise: {reason}"),
        }
    }
}

impl std::error::Error for ConvertError {}

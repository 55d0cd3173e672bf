//! Converts a PyTorch Micro-ViT state_dict (safetensors; f32, f16 or bf16
//! tensors) into a microvit blob.
//!
//! ```no_run
//! let st = std::fs::read("models/microvit-seed.safetensors").unwrap();
//! let out = microvit_converter::convert(&st, &Default::default()).unwrap();
//! std::fs::write("seed.mvit", &out.blob).unwrap();
//! ```

mod error;
#[cfg(test)]
mod errors_documented;
pub mod fold;
pub mod quantize;
mod state_dict;

pub use error::ConvertError;
pub use quantize::QuantReport;
pub use state_dict::{read_safetensors, StateDict, Tensor};

use microvit_engine::format::{BlobWriter, ElemType, ModelConfig, TensorId};
use microvit_engine::{Model, Shape};

pub use microvit_engine::Encoding;

/// What the weights alone do not say. Each `None` falls back to the
/// safetensors metadata (`microvit.*` keys, written by `train/train.py`),
/// then to the default named on the field.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// How the weights are stored in the blob.
    pub encoding: Encoding,
    /// Attention heads; no default, since no weight shape reveals it.
    pub heads: Option<u32>,
    /// Default 0.1307 (MNIST).
    pub pixel_mean: Option<f32>,
    /// Default 0.3081 (MNIST).
    pub pixel_std: Option<f32>,
    /// Default 1e-5 (PyTorch's LayerNorm default).
    pub layer_norm_eps: Option<f32>,
    /// int8 only: calibration digits, `count × S²` u8 pixels (the CLI
    /// defaults to the 1,000 training digits shipped in data/).
    pub calibration: Option<Vec<u8>>,
}

/// A converted model.
#[derive(Clone, Debug)]
pub struct Converted {
    pub blob: Vec<u8>,
    pub config: ModelConfig,
    pub encoding: Encoding,
    /// int8 only: what calibration measured.
    pub report: Option<QuantReport>,
}

/// Converts safetensors bytes to a blob.
pub fn convert(safetensors: &[u8], options: &ConvertOptions) -> Result<Converted, ConvertError> {
    let state_dict = read_safetensors(safetensors)?;
    convert_state_dict(&state_dict, options)
}

/// Converts an already-read state_dict to a blob.
pub fn convert_state_dict(sd: &StateDict, options: &ConvertOptions) -> Result<Converted, ConvertError> {
    let config = infer_config(sd, options)?;
    match options.encoding {
        Encoding::F32 => Ok(Converted { blob: f32_blob(sd, config), config, encoding: Encoding::F32, report: None }),
        Encoding::F16 => {
            let blob = quantize::f16_blob(&fold::Folded::new(sd, &config), config);
            // Folding can take finite f32 weights past half precision (±65504)
            // or past f32: refuse rather than write a blob the engine rejects.
            Model::from_bytes(&blob)
                .map_err(|e| ConvertError::NotQuantizable { reason: format!("the f16 blob does not load: {e}") })?;
            Ok(Converted { blob, config, encoding: Encoding::F16, report: None })
        }
        Encoding::Int8 => {
            let calibration = options.calibration.as_deref().ok_or(ConvertError::Calibration {
                reason: "int8 needs calibration digits to choose its scales".into(),
            })?;
            let (blob, report) = quantize::int8_blob(&fold::Folded::new(sd, &config), config, calibration)?;
            Ok(Converted { blob, config, encoding: Encoding::Int8, report: Some(report) })
        }
    }
}

fn f32_blob(sd: &StateDict, config: ModelConfig) -> Vec<u8> {
    let mut writer = BlobWriter::new(Encoding::F32, config);
    for id in TensorId::STATE_DICT {
        let t = sd.get(id.name()).expect("infer_config checked every tensor");
        let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        writer.tensor(id, ElemType::F32, id.dims(&config.shape).as_slice(), bytes);
    }
    writer.finish()
}

fn sqrt_exact(n: usize) -> Option<usize> {
    let r = (n as f64).sqrt().round() as usize;
    // checked: a hostile file can declare a dimension near usize::MAX.
    (r.checked_mul(r) == Some(n)).then_some(r)
}

/// Works out the model shape and parameters from the tensors, the metadata
/// and the options, and checks every tensor against them.
pub fn infer_config(sd: &StateDict, options: &ConvertOptions) -> Result<ModelConfig, ConvertError> {
    sd.check_names()?;
    let dims_of = |id: TensorId| &sd.get(id.name()).expect("names checked").dims;
    let bad = |id: TensorId, reason: String| ConvertError::BadShape {
        tensor: id.name().to_string(),
        found: dims_of(id).clone(),
        reason,
    };

    let patch = dims_of(TensorId::PatchEmbedWeight);
    let [dim, patch_len] = patch[..] else {
        return Err(bad(TensorId::PatchEmbedWeight, "expected [dim, patch_side²]".into()));
    };
    let patch_side = sqrt_exact(patch_len)
        .ok_or_else(|| bad(TensorId::PatchEmbedWeight, format!("{patch_len} inputs is not a square patch")))?;
    let pos = dims_of(TensorId::PosEmbed);
    let [1, tokens, _] = pos[..] else {
        return Err(bad(TensorId::PosEmbed, "expected [1, tokens, dim]".into()));
    };
    let grid =
        tokens.checked_sub(1).and_then(sqrt_exact).filter(|&g| g > 0).ok_or_else(|| {
            bad(TensorId::PosEmbed, format!("{tokens} tokens is not a square grid of patches plus CLS"))
        })?;
    let head = dims_of(TensorId::HeadWeight);
    let [classes, _] = head[..] else {
        return Err(bad(TensorId::HeadWeight, "expected [classes, dim]".into()));
    };

    let meta = |key: &str| sd.metadata.get(&format!("microvit.{key}"));
    let heads = match (options.heads, meta("num_heads")) {
        (Some(h), _) => h,
        (None, Some(v)) => parse_meta("num_heads", v)?,
        (None, None) => return Err(ConvertError::HeadsUnknown),
    };
    let float_param = |given: Option<f32>, key: &str, default: f32| match (given, meta(key)) {
        (Some(v), _) => Ok(v),
        (None, Some(v)) => parse_meta(key, v),
        (None, None) => Ok(default),
    };
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let shape = Shape {
        image_side: to_u32(grid * patch_side),
        patch_side: to_u32(patch_side),
        dim: to_u32(dim),
        heads,
        classes: to_u32(classes),
    };
    for (key, value) in [("image_size", shape.image_side), ("patch_size", shape.patch_side)] {
        if let Some(v) = meta(key) {
            let stated: u32 = parse_meta(key, v)?;
            if stated != value {
                return Err(ConvertError::BadMetadata {
                    key: format!("microvit.{key}"),
                    value: v.clone(),
                    reason: format!("the tensor shapes give {value}"),
                });
            }
        }
    }
    shape.validate().map_err(ConvertError::UnsupportedShape)?;
    let config = ModelConfig {
        shape,
        pixel_mean: float_param(options.pixel_mean, "pixel_mean", 0.1307)?,
        pixel_std: float_param(options.pixel_std, "pixel_std", 0.3081)?,
        layer_norm_eps: float_param(options.layer_norm_eps, "layer_norm_eps", 1e-5)?,
    };
    config.check_parameters().map_err(|(name, value)| ConvertError::BadParameter { name, value })?;

    for id in TensorId::STATE_DICT {
        let t = sd.get(id.name()).expect("names checked");
        let want: Vec<usize> = id.dims(&shape).as_slice().iter().map(|&d| d as usize).collect();
        if t.dims != want {
            return Err(bad(id, format!("the model shape ({shape}) needs {want:?}")));
        }
        if let Some(index) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(ConvertError::NonFinite { tensor: id.name().into(), index, value: t.data[index] });
        }
        // The loader's bound, for every dtype: a model whose f32 blob would
        // not load is not converted to any encoding either.
        let limit = config.value_limit(id).expect("state_dict tensors are bounded");
        if let Some(index) = t.data.iter().position(|v| v.abs() as f64 > limit) {
            return Err(ConvertError::TooLarge { tensor: id.name().into(), index, value: t.data[index], limit });
        }
    }
    Ok(config)
}

fn parse_meta<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConvertError> {
    value.trim().parse().map_err(|_| ConvertError::BadMetadata {
        key: format!("microvit.{key}"),
        value: value.to_string(),
        reason: "not a number".into(),
    })
}

//! Opening a model file: a microvit blob, or a safetensors state_dict that
//! is converted in memory.

use std::path::{Path, PathBuf};

use microvit_converter::{convert, ConvertOptions, Dtype};
use microvit_engine::format::MAGIC;
use microvit_engine::Model;

/// The models that ship with the repository.
pub fn shipped_model() -> PathBuf {
    microvit_dataset::repo_root().join("models").join("microvit-seed.mvit")
}

pub fn shipped_safetensors() -> PathBuf {
    microvit_dataset::repo_root().join("models").join("microvit-seed.safetensors")
}

/// The 1,000 training digits int8 conversion calibrates on by default.
pub fn shipped_calibration() -> PathBuf {
    microvit_dataset::repo_root().join("data").join("calibration-1000-images-idx3-ubyte.gz")
}

/// Reads calibration digits (idx3, plain or gzipped).
pub fn read_calibration(path: &Path) -> Result<Vec<u8>, String> {
    let images = microvit_dataset::idx::read_images(path).map_err(|e| format!("calibration images: {e}"))?;
    Ok(images.pixels)
}

/// A model ready to run, and where it came from.
pub struct Loaded {
    pub model: Model<'static>,
    /// The f32 model of the same weights, when known (a safetensors file
    /// converted to f16 or int8): what agreement is measured against.
    pub f32_model: Option<Model<'static>>,
    pub from_safetensors: bool,
}

fn load_blob(path: &Path, blob: &[u8]) -> Result<Model<'static>, String> {
    Model::from_bytes(blob).map_err(|e| format!("{}: {e}", path.display()))
}

/// Loads `path`: a blob if it starts with the blob magic, else a
/// safetensors state_dict converted to `dtype` (f32 when not given). A
/// `dtype` that disagrees with a blob's encoding is an error, and so is a
/// path that is not a regular file (refused before it is opened).
pub fn load(path: &Path, dtype: Option<Dtype>) -> Result<Loaded, String> {
    let cannot = |e: std::io::Error| format!("cannot read model {}: {e}", path.display());
    // Before opening: a FIFO would block the open, a device never ends.
    microvit_dataset::regular_file(path).map_err(cannot)?;
    let bytes = std::fs::read(path).map_err(cannot)?;
    if bytes.starts_with(&MAGIC) {
        let model = load_blob(path, &bytes)?;
        if let Some(d) = dtype.filter(|d| d.name() != model.encoding().name()) {
            return Err(format!(
                "{} is an {} blob; --dtype {} applies to safetensors models",
                path.display(),
                model.encoding(),
                d.name()
            ));
        }
        return Ok(Loaded { model, f32_model: None, from_safetensors: false });
    }
    let to_blob = |dtype: Dtype| -> Result<Vec<u8>, String> {
        let calibration = match dtype {
            Dtype::Int8 => Some(read_calibration(&shipped_calibration())?),
            _ => None,
        };
        let options = ConvertOptions { dtype, calibration, ..Default::default() };
        convert(&bytes, &options).map(|c| c.blob).map_err(|e| {
            format!(
                "{}: neither a microvit blob (no MVIT magic) nor a convertible safetensors file: {e}",
                path.display()
            )
        })
    };
    let dtype = dtype.unwrap_or(Dtype::F32);
    let model = load_blob(path, &to_blob(dtype)?)?;
    let f32_model = match dtype {
        Dtype::F32 => None,
        _ => Some(load_blob(path, &to_blob(Dtype::F32)?)?),
    };
    Ok(Loaded { model, f32_model, from_safetensors: true })
}

/// Where a loaded model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Blob,
    /// A safetensors file converted to f32 on the fly.
    Safetensors,
}

/// Loads `path` as [`load`] does with no dtype.
pub fn open(path: &Path) -> Result<(Model<'static>, Source), String> {
    let loaded = load(path, None)?;
    let source = if loaded.from_safetensors { Source::Safetensors } else { Source::Blob };
    Ok((loaded.model, source))
}

/// `path`, or the shipped model (its safetensors when a dtype is asked for),
/// with a clear error if it is not there.
pub fn resolve(path: Option<&Path>, dtype: Option<Dtype>) -> Result<PathBuf, String> {
    if let Some(p) = path {
        return Ok(p.to_path_buf());
    }
    let shipped = if dtype.is_some() { shipped_safetensors() } else { shipped_model() };
    if shipped.exists() {
        Ok(shipped)
    } else {
        Err(format!("no model given, and the shipped model {} is not there", shipped.display()))
    }
}

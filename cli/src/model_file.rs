//! Opening a model file: a microvit blob, or a safetensors state_dict that
//! is converted in memory.

use std::path::{Path, PathBuf};

use microvit_converter::{convert, ConvertOptions};
use microvit_engine::format::MAGIC;
use microvit_engine::Model;

/// The model that ships with the repository (converted by `microvit convert`).
pub fn shipped_model() -> PathBuf {
    microvit_dataset::repo_root().join("models").join("microvit-seed.mvit")
}

/// Where a loaded model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Blob,
    /// A safetensors file converted to f32 on the fly.
    Safetensors,
}

/// Loads `path` as a blob if it starts with the blob magic, else as a
/// safetensors state_dict.
pub fn open(path: &Path) -> Result<(Model<'static>, Source), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read model {}: {e}", path.display()))?;
    if bytes.starts_with(&MAGIC) {
        let model = Model::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok((model, Source::Blob));
    }
    let converted = convert(&bytes, &ConvertOptions::default()).map_err(|e| {
        format!("{}: neither a microvit blob (no MVIT magic) nor a convertible safetensors file: {e}", path.display())
    })?;
    let model = Model::from_bytes(&converted.blob).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((model, Source::Safetensors))
}

/// `path`, or the shipped model with a clear error if it is not there.
pub fn resolve(path: Option<&Path>) -> Result<PathBuf, String> {
    match path {
        Some(p) => Ok(p.to_path_buf()),
        None => {
            let shipped = shipped_model();
            if shipped.exists() {
                Ok(shipped)
            } else {
                Err(format!("no model given, and the shipped model {} is not there", shipped.display()))
            }
        }
    }
}

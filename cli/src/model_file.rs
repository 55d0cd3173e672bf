//! Opening a model file: a microvit blob, or a safetensors state_dict that
//! is converted in memory.

use std::path::{Path, PathBuf};

use microvit_converter::{convert, ConvertOptions};
use microvit_engine::format::MAGIC;
use microvit_engine::{Backend, Encoding, Model};

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
    let mut model = Model::from_bytes(blob).map_err(|e| format!("{}: {e}", path.display()))?;
    apply_backend_env(&mut model)?;
    Ok(model)
}

/// Puts `model` on the backend the `MICROVIT_BACKEND` environment variable
/// names (`scalar`, `avx2`, `neon`; unset or `auto`: the fastest, as
/// loaded). An unknown backend, or one this CPU lacks, is an error.
pub fn apply_backend_env(model: &mut Model<'_>) -> Result<(), String> {
    match std::env::var("MICROVIT_BACKEND") {
        Ok(name) if !matches!(name.trim().to_ascii_lowercase().as_str(), "" | "auto") => {
            let backend = Backend::parse(&name).map_err(|e| format!("MICROVIT_BACKEND: {e}"))?;
            model.set_backend(backend).map_err(|e| format!("MICROVIT_BACKEND: {e}"))
        }
        _ => Ok(()),
    }
}

/// Loads `path`: a blob if it starts with the blob magic, else a
/// safetensors state_dict converted to `encoding` (f32 when not given). An
/// `encoding` that disagrees with a blob's is an error, and so is a path
/// that is not a regular file (refused before it is opened).
pub fn load(path: &Path, encoding: Option<Encoding>) -> Result<Loaded, String> {
    let cannot = |e: std::io::Error| format!("cannot read model {}: {e}", path.display());
    // Before opening: a FIFO would block the open, a device never ends.
    microvit_dataset::regular_file(path).map_err(cannot)?;
    let bytes = std::fs::read(path).map_err(cannot)?;
    if bytes.starts_with(&MAGIC) {
        let model = load_blob(path, &bytes)?;
        if let Some(d) = encoding.filter(|&e| e != model.encoding()) {
            return Err(format!(
                "{} is an {} blob; --dtype {} applies to safetensors models",
                path.display(),
                model.encoding(),
                d.name()
            ));
        }
        return Ok(Loaded { model, f32_model: None, from_safetensors: false });
    }
    let to_blob = |encoding: Encoding| -> Result<Vec<u8>, String> {
        let calibration = match encoding {
            Encoding::Int8 => Some(read_calibration(&shipped_calibration())?),
            _ => None,
        };
        let options = ConvertOptions { encoding, calibration, ..Default::default() };
        convert(&bytes, &options).map(|c| c.blob).map_err(|e| {
            format!(
                "{}: neither a microvit blob (no MVIT magic) nor a convertible safetensors file: {e}",
                path.display()
            )
        })
    };
    let encoding = encoding.unwrap_or(Encoding::F32);
    let model = load_blob(path, &to_blob(encoding)?)?;
    let f32_model = match encoding {
        Encoding::F32 => None,
        _ => Some(load_blob(path, &to_blob(Encoding::F32)?)?),
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
pub fn resolve(path: Option<&Path>, encoding: Option<Encoding>) -> Result<PathBuf, String> {
    if let Some(p) = path {
        return Ok(p.to_path_buf());
    }
    let shipped = if encoding.is_some() { shipped_safetensors() } else { shipped_model() };
    if shipped.exists() {
        Ok(shipped)
    } else {
        Err(format!("no model given, and the shipped model {} is not there", shipped.display()))
    }
}

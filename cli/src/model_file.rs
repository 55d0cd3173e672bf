//! Where the tool's models and data come from: a model file (a microvit
//! blob, or a safetensors state_dict converted in memory), or the shipped
//! seed model built into the binary; the MNIST test set and the
//! calibration digits.
//!
//! The seed model's three blobs and the 1,000 calibration digits are
//! compiled in (about 200 KB), so `classify`, `bench` and `convert` work
//! wherever the binary is, after `cargo install` too. The MNIST test set
//! (1.6 MB) is not: its default is the repository's copy, and a clear
//! message names the flags when it is not there.

use std::path::{Path, PathBuf};

use microvit_converter::{convert, ConvertOptions};
use microvit_engine::format::MAGIC;
use microvit_engine::{Backend, Encoding, Model};

/// Largest model file read, blob or safetensors (256 MiB, as the C
/// library's `MICROVIT_MAX_FILE_SIZE`): refused from its size before it is
/// read.
pub const MAX_MODEL_BYTES: u64 = 256 << 20;

/// Largest calibration file read (64 MiB; the shipped one is 162 KB).
const MAX_CALIBRATION_BYTES: u64 = 64 << 20;

/// The shipped seed model, built in.
pub mod builtin {
    use microvit_engine::Encoding;

    const F32: &[u8] = include_bytes!("../../models/microvit-seed.mvit");
    const F16: &[u8] = include_bytes!("../../models/microvit-seed.f16.mvit");
    const INT8: &[u8] = include_bytes!("../../models/microvit-seed.int8.mvit");
    /// The 1,000 training digits int8 conversion calibrates on by default
    /// (idx3, gzipped).
    pub const CALIBRATION_GZ: &[u8] = include_bytes!("../../data/calibration-1000-images-idx3-ubyte.gz");

    /// The built-in blob of an encoding.
    pub fn blob(encoding: Encoding) -> &'static [u8] {
        match encoding {
            Encoding::F32 => F32,
            Encoding::F16 => F16,
            Encoding::Int8 => INT8,
        }
    }

    /// How reports name it: the file it was built from.
    pub fn name(encoding: Encoding) -> String {
        match encoding {
            Encoding::F32 => "built-in microvit-seed.mvit".into(),
            other => format!("built-in microvit-seed.{}.mvit", other.name()),
        }
    }
}

/// The encoding a command runs when given no model: what apps ship.
pub const DEFAULT_ENCODING: Encoding = Encoding::Int8;

/// The MNIST test set: `images` and `labels` if given, else the copy in the
/// repository the binary was built from, with a clear error when that is
/// not there (an installed binary, a moved clone).
pub fn test_set(images: Option<&Path>, labels: Option<&Path>) -> Result<(PathBuf, PathBuf), String> {
    let (shipped_images, shipped_labels) = microvit_dataset::shipped_test_set();
    let images = images.map_or(shipped_images, Path::to_path_buf);
    let labels = labels.map_or(shipped_labels, Path::to_path_buf);
    for (path, flag) in [(&images, "--images"), (&labels, "--labels")] {
        if !path.exists() {
            return Err(format!(
                "the MNIST test set is not at {} (it ships in the repository's data/ folder): pass {flag} with \
                 its path",
                path.display()
            ));
        }
    }
    Ok((images, labels))
}

/// Calibration digits (idx3, plain or gzipped) from `path`, or the
/// built-in 1,000.
pub fn read_calibration(path: Option<&Path>) -> Result<Vec<u8>, String> {
    let images = match path {
        Some(path) => microvit_dataset::idx::read_images(path),
        None => microvit_dataset::idx::parse_images_gz(builtin::CALIBRATION_GZ, Path::new("built-in calibration")),
    };
    let images = images.map_err(|e| format!("calibration images: {e}"))?;
    if images.pixels.len() as u64 > MAX_CALIBRATION_BYTES {
        return Err(format!("calibration images: more than {} MiB of pixels", MAX_CALIBRATION_BYTES >> 20));
    }
    Ok(images.pixels)
}

/// A model ready to run, what to call it, and where it came from.
pub struct Loaded {
    pub model: Model<'static>,
    /// The path, or the built-in blob's name.
    pub name: String,
    /// The f32 model of the same weights, when known (the built-in model; a
    /// safetensors file converted to f16 or int8): what agreement is
    /// measured against.
    pub f32_model: Option<Model<'static>>,
    pub from_safetensors: bool,
}

fn load_blob(name: &str, blob: &[u8]) -> Result<Model<'static>, String> {
    let mut model = Model::from_bytes(blob).map_err(|e| format!("{name}: {e}"))?;
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

/// Reads a model file whole: a regular file (a FIFO or a device is refused
/// before it is opened) of at most [`MAX_MODEL_BYTES`].
pub fn read_model_file(path: &Path) -> Result<Vec<u8>, String> {
    microvit_dataset::read_regular_file(path, MAX_MODEL_BYTES)
        .map_err(|e| format!("cannot read model {}: {e}", path.display()))
}

/// The built-in seed model in `encoding` (int8 when not given), with its
/// f32 form as the reference when it is not f32 itself.
pub fn builtin_model(encoding: Option<Encoding>) -> Result<Loaded, String> {
    let encoding = encoding.unwrap_or(DEFAULT_ENCODING);
    let name = builtin::name(encoding);
    let model = load_blob(&name, builtin::blob(encoding))?;
    let f32_model = match encoding {
        Encoding::F32 => None,
        _ => Some(load_blob(&builtin::name(Encoding::F32), builtin::blob(Encoding::F32))?),
    };
    Ok(Loaded { model, name, f32_model, from_safetensors: false })
}

/// Loads `path`, or the built-in model when there is none ([`builtin_model`]).
///
/// A file is a blob if it starts with the blob magic, else a safetensors
/// state_dict converted to `encoding` (f32 when not given). An `encoding`
/// that disagrees with a blob's is an error.
pub fn load(path: Option<&Path>, encoding: Option<Encoding>) -> Result<Loaded, String> {
    let Some(path) = path else {
        return builtin_model(encoding);
    };
    let name = path.display().to_string();
    let bytes = read_model_file(path)?;
    if bytes.starts_with(&MAGIC) {
        let model = load_blob(&name, &bytes)?;
        if let Some(d) = encoding.filter(|&e| e != model.encoding()) {
            return Err(format!(
                "{name} is an {} blob; --dtype {} applies to safetensors models and the built-in one",
                model.encoding(),
                d.name()
            ));
        }
        return Ok(Loaded { model, name, f32_model: None, from_safetensors: false });
    }
    let to_blob = |encoding: Encoding| -> Result<Vec<u8>, String> {
        let calibration = match encoding {
            Encoding::Int8 => Some(read_calibration(None)?),
            _ => None,
        };
        let options = ConvertOptions { encoding, calibration, ..Default::default() };
        convert(&bytes, &options).map(|c| c.blob).map_err(|e| {
            format!("{name}: neither a microvit blob (no MVIT magic) nor a convertible safetensors file: {e}")
        })
    };
    let encoding = encoding.unwrap_or(Encoding::F32);
    let model = load_blob(&name, &to_blob(encoding)?)?;
    let f32_model = match encoding {
        Encoding::F32 => None,
        _ => Some(load_blob(&name, &to_blob(Encoding::F32)?)?),
    };
    Ok(Loaded { model, name, f32_model, from_safetensors: true })
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
    let loaded = load(Some(path), None)?;
    let source = if loaded.from_safetensors { Source::Safetensors } else { Source::Blob };
    Ok((loaded.model, source))
}

/// Whether `path` names a model rather than an image: a `.mvit` or
/// `.safetensors` name, or a file that starts with the blob magic. How
/// `classify` and `explain` tell an optional leading model from the images.
pub fn looks_like_model(path: &Path) -> bool {
    use std::io::Read;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("mvit") || e.eq_ignore_ascii_case("safetensors")) {
        return true;
    }
    // Only regular files are opened: a FIFO would block.
    if microvit_dataset::regular_file(path).is_err() {
        return false;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == MAGIC
}

/// Splits `classify`/`explain` arguments: `[MODEL] FILE…`. The first is the
/// model when [`looks_like_model`] says so, else every argument is an
/// image and the built-in model runs.
pub fn split_model(mut files: Vec<PathBuf>) -> (Option<PathBuf>, Vec<PathBuf>) {
    if files.first().is_some_and(|p| looks_like_model(p)) {
        let model = files.remove(0);
        (Some(model), files)
    } else {
        (None, files)
    }
}

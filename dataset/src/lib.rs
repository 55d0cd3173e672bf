//! The files around a model: MNIST idx images and labels (plain or gzipped),
//! NumPy `.npy` arrays of f32, and the realistic test images made from MNIST
//! test digits (`realistic`, written by the `make-realistic` binary).

pub mod idx;
pub mod npy;
pub mod realistic;

use std::path::{Path, PathBuf};

/// Checks, before it is opened, that `path` is a regular file (after
/// symlinks), and returns its length. Opening a FIFO with no writer blocks
/// for ever, and a device such as /dev/zero never ends: both are refused
/// with an `InvalidInput` error saying so, as are sockets. A directory is
/// an `IsADirectory` error. Used for every file the tools read whole
/// (models, idx files, safetensors input).
pub fn regular_file(path: &Path) -> std::io::Result<u64> {
    use std::io::{Error, ErrorKind};
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(Error::new(ErrorKind::IsADirectory, "is a directory"));
    }
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file (a FIFO, socket or device)"));
    }
    Ok(meta.len())
}

/// Reads a whole regular file of at most `limit` bytes ([`regular_file`]
/// first; a larger file is an `InvalidData` error before a byte is read)
/// into a buffer of its exact size. A file that grows while it is read
/// stops at the limit and is refused.
pub fn read_regular_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let too_large =
        |size: &str| Error::new(ErrorKind::InvalidData, format!("{size} bytes, more than the {limit} accepted"));
    let size = regular_file(path)?;
    if size > limit {
        return Err(too_large(&size.to_string()));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large("grew past"));
    }
    Ok(bytes)
}

/// The repository root (for the shipped model, data and fixtures).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("dataset/ sits in the repository").to_path_buf()
}

/// The MNIST test images and labels shipped under `data/`.
pub fn shipped_test_set() -> (PathBuf, PathBuf) {
    let data = repo_root().join("data");
    (data.join("t10k-images-idx3-ubyte.gz"), data.join("t10k-labels-idx1-ubyte.gz"))
}

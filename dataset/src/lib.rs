//! The files around a model: MNIST idx images and labels (plain or gzipped),
//! NumPy `.npy` arrays of f32, and the realistic test images made from MNIST
//! test digits (`realistic`, written by the `make-realistic` binary).

pub mod idx;
pub mod npy;
pub mod realistic;

use std::path::{Path, PathBuf};

/// The repository root (for the shipped model, data and fixtures).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("dataset/ sits in the repository").to_path_buf()
}

/// The MNIST test images and labels shipped under `data/`.
pub fn shipped_test_set() -> (PathBuf, PathBuf) {
    let data = repo_root().join("data");
    (data.join("t10k-images-idx3-ubyte.gz"), data.join("t10k-labels-idx1-ubyte.gz"))
}

//! What several engine test files read: the repository's files and the
//! MNIST test set, without the dataset crate (these tests also run
//! cross-compiled under qemu, where only the engine is built).

#![allow(dead_code)] // Each test file uses part of this.

use std::path::{Path, PathBuf};

pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

/// An idx file's payload: the committed gzip inflated by the test runner's
/// `zcat` when present, else the uncompressed copy the environment variable
/// `var` points at.
fn idx_payload(var: &str, gz: &Path, magic: [u8; 4], header: usize) -> Vec<u8> {
    let bytes = match std::env::var(var).map(PathBuf::from).ok() {
        Some(p) => std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        None => {
            let out = std::process::Command::new("zcat").arg(gz).output().expect("zcat inflates the test set");
            assert!(out.status.success(), "zcat {} failed", gz.display());
            out.stdout
        }
    };
    assert_eq!(&bytes[..4], &magic, "{}: not the expected idx file", gz.display());
    bytes[header..].to_vec()
}

/// The 10,000 MNIST test digits, 784 bytes each, back to back
/// (`MICROVIT_TEST_IMAGES` may name an uncompressed copy).
pub fn test_images() -> Vec<u8> {
    idx_payload("MICROVIT_TEST_IMAGES", &repo("data/t10k-images-idx3-ubyte.gz"), [0, 0, 8, 3], 16)
}

/// Their labels (`MICROVIT_TEST_LABELS` may name an uncompressed copy).
pub fn test_labels() -> Vec<u8> {
    idx_payload("MICROVIT_TEST_LABELS", &repo("data/t10k-labels-idx1-ubyte.gz"), [0, 0, 8, 1], 8)
}

//! Every error of the idx and .npy readers is documented in docs/ERRORS.md,
//! and each is triggered here, through the public API, with the message the
//! document quotes.
//!
//! The match in `idx_variant` is exhaustive with no wildcard arm: adding an
//! `IdxError` variant breaks the build until it is listed (and triggered)
//! here, and the test then fails until docs/ERRORS.md names it.

use std::path::Path;

use microvit_dataset::idx::{self, IdxError};
use microvit_dataset::npy::{self, NpyError};

fn idx_variant(e: &IdxError) -> &'static str {
    match e {
        IdxError::Io { .. } => "Io",
        IdxError::Format { .. } => "Format",
        IdxError::Mismatch { .. } => "Mismatch",
    }
}

#[allow(dead_code, unused_macros)]
#[path = "../../engine/src/doc_check.rs"]
mod doc_check;

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("microvit-dataset-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// One instance of each variant, made the way a user would meet it.
fn every_idx_error() -> Vec<IdxError> {
    let missing = idx::read(Path::new("/nonexistent/microvit/images.idx3")).unwrap_err();
    let format = idx::parse(b"\x00\x00\x0d\x01", Path::new("t.idx")).unwrap_err();
    let (images, labels) = (temp("images.idx3"), temp("labels.idx1"));
    std::fs::write(&images, idx::encode(&[2, 2, 2], &[0; 8])).unwrap();
    std::fs::write(&labels, idx::encode(&[3], &[0; 3])).unwrap();
    let mismatch = idx::read_labelled(&images, &labels).unwrap_err();
    vec![missing, format, mismatch]
}

#[test]
fn every_idx_error_is_triggered_and_documented() {
    let errors = every_idx_error();
    let found: Vec<&str> = errors.iter().map(idx_variant).collect();
    assert_eq!(found, ["Io", "Format", "Mismatch"]);
    assert!(errors[0].to_string().contains("/nonexistent/microvit/images.idx3"), "{}", errors[0]);
    assert!(errors[1].to_string().contains("not a usable idx file: element type 0x0d"), "{}", errors[1]);
    assert!(errors[2].to_string().contains("holds 2 images but"), "{}", errors[2]);
    let text = doc_check::section("IdxError");
    for name in found {
        assert!(text.contains(&format!("`{name}`")), "docs/ERRORS.md does not document IdxError::{name}");
    }
}

/// Issue #18: a FIFO with no writer blocked `idx::read` (and so eval and
/// convert --calibration) for ever in the open, and a device like /dev/zero
/// never ends. Both are refused from their metadata, before the open: an
/// `Io` error saying what they are. The FIFO read runs on a thread, so a
/// regression fails the test after 20 s instead of hanging it.
#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_before_they_are_opened() {
    let fifo = temp("images.idx3.gz");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = fifo.clone();
    std::thread::spawn(move || tx.send(idx::read_images(&reader).map(|_| ()).map_err(|e| e.to_string())));
    let result = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap_or_else(|_| {
        // Release the blocked open (a writer that closes at once), then fail.
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        panic!("idx::read blocked on a FIFO with no writer");
    });
    let message = result.unwrap_err();
    assert!(message.ends_with("images.idx3.gz: not a regular file (a FIFO, socket or device)"), "{message}");
    std::fs::remove_file(&fifo).unwrap();
    // After the FIFO: before the fix, /dev/zero was read until memory ran out.
    for device in ["/dev/zero", "/dev/null"] {
        let err = idx::read(Path::new(device)).unwrap_err();
        assert!(matches!(err, IdxError::Io { .. }), "{err:?}");
        assert_eq!(err.to_string(), format!("{device}: not a regular file (a FIFO, socket or device)"));
    }
    // A directory is named as one.
    let err = idx::read(&std::env::temp_dir()).unwrap_err();
    assert!(err.to_string().ends_with("is a directory"), "{err}");
}

#[test]
fn gzip_and_shape_errors_are_format_errors() {
    let fake = temp("fake.idx1.gz");
    std::fs::write(&fake, idx::encode(&[1], &[0])).unwrap();
    assert!(matches!(idx::read(&fake), Err(IdxError::Format { reason, .. }) if reason.starts_with("gzip:")));
    let rank2 = temp("rank2.idx1");
    std::fs::write(&rank2, idx::encode(&[1, 1], &[0])).unwrap();
    let err = idx::read_labels(&rank2).unwrap_err();
    assert!(err.to_string().contains("are not [count] labels"), "{err}");
    let err = idx::read_images(&rank2).unwrap_err();
    assert!(err.to_string().contains("are not [count, side, side] images"), "{err}");
}

#[test]
fn npy_errors_are_triggered_and_documented() {
    let good = npy::encode_f32(&[2], &[1.0, 2.0]);
    let mut v9 = good.clone();
    v9[6] = 9;
    let cases: [(&[u8], &str); 4] = [
        (b"PK\x03\x04 not npy", "missing the \\x93NUMPY magic"),
        (&v9, "unsupported version 9"),
        (&good[..good.len() - 1], "does not match 7 data bytes"),
        (&good[..20], "header runs past the end of the file"),
    ];
    for (bytes, needle) in cases {
        let err: NpyError = npy::decode_f32(bytes).unwrap_err();
        assert!(err.to_string().starts_with("not a usable .npy file: "), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
    }
    assert!(doc_check::section("NpyError").contains("not a usable .npy file"));
}

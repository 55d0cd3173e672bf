//! docs/ERRORS.md covers what the command-line tool and the C ABI report:
//!
//! - every `ImageError` variant (exhaustive match, no wildcard arm: a new
//!   variant breaks the build until it is listed and triggered here), each
//!   triggered through the public decoder;
//! - the exit statuses and the tool's main messages;
//! - every status of the C ABI. The ffi crate is not a dependency of this
//!   one, so its `Status` enum is read from its source (ffi/src/status.rs)
//!   and the C names from the generated header (include/microvit.h): a
//!   status added there fails this test until it is documented.

use std::path::Path;

use microvit_cli::image_input::{decode_image, load_image, ImageError};

fn repo(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[allow(dead_code, unused_macros)]
#[path = "../../engine/src/doc_check.rs"]
mod doc_check;

fn image_variant(e: &ImageError) -> &'static str {
    match e {
        ImageError::Io { .. } => "Io",
        ImageError::Format { .. } => "Format",
        ImageError::Unsupported { .. } => "Unsupported",
    }
}

#[test]
fn every_image_error_is_triggered_and_documented() {
    let p = Path::new("digit.img");
    let errors = [
        load_image(Path::new("/nonexistent/microvit/digit.png")).unwrap_err(),
        decode_image(b"P5 28 28 255\n\x00", p).unwrap_err(),
        decode_image(b"\0\0\0\x18ftypheic\0\0\0\0", p).unwrap_err(),
    ];
    let found: Vec<&str> = errors.iter().map(image_variant).collect();
    assert_eq!(found, ["Io", "Format", "Unsupported"]);
    let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(messages[0].starts_with("cannot read image /nonexistent/microvit/digit.png"), "{}", messages[0]);
    assert!(messages[1].starts_with("invalid image digit.img: PNM data ends unexpectedly"), "{}", messages[1]);
    assert!(messages[2].contains("this looks like a HEIC/HEIF photo"), "{}", messages[2]);
    let text = doc_check::section("ImageError");
    for name in found {
        assert!(text.contains(&format!("`{name}`")), "docs/ERRORS.md does not document ImageError::{name}");
    }
}

#[test]
fn exit_statuses_and_main_messages_are_documented() {
    let text = doc_check::section_containing("command-line tool");
    for needle in [
        "exit status 0",
        "exit status 1",
        "exit status 2",
        "microvit: error: ",
        "cannot read model",
        "neither a microvit blob",
        "cannot read ",
        "cannot write ",
        "cannot create ",
        "converted blob does not load",
        "images could not be read",
        "the model takes",
        "is outside the model's",
        "applies to safetensors models",
        "the MNIST test set is not at",
        "more than the 268435456 accepted",
        "no image files given",
        "nothing to explain",
        "calibration images:",
        "reference model has",
        "--backend:",
    ] {
        assert!(text.contains(needle), "the command-line section of docs/ERRORS.md lacks {needle:?}");
    }
}

/// The variant names of `pub enum Status` in ffi/src/status.rs.
fn ffi_status_variants() -> Vec<String> {
    let source = repo("ffi/src/status.rs");
    let body = source.split("pub enum Status {").nth(1).expect("ffi/src/status.rs defines pub enum Status");
    let body = &body[..body.find("\n}").expect("the enum ends")];
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && l.contains('='))
        .map(|l| l.split('=').next().unwrap().trim().to_string())
        .collect()
}

#[test]
fn every_c_abi_status_is_documented() {
    let variants = ffi_status_variants();
    assert!(variants.len() >= 11 && variants[0] == "Ok", "{variants:?}");
    let header = repo("include/microvit.h");
    let c_names: Vec<&str> = header
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("MICROVIT_STATUS_"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(c_names.len(), variants.len(), "header {c_names:?} vs ffi/src/status.rs {variants:?}");
    let text = doc_check::section_containing("C ABI");
    let mut missing: Vec<String> = variants.iter().filter(|v| !text.contains(&format!("`{v}`"))).cloned().collect();
    missing.extend(c_names.iter().filter(|c| !text.contains(&format!("`{c}`"))).map(|c| c.to_string()));
    assert!(missing.is_empty(), "docs/ERRORS.md does not document the statuses {missing:?}");
}

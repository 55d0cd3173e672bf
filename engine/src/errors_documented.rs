//! Every error the engine returns is documented in docs/ERRORS.md.
//!
//! A unit test rather than a file in tests/: `LoadError` and `InferError` are
//! `#[non_exhaustive]`, so only code inside this crate can match them without
//! a wildcard arm. `documented!` generates such a match from its list of
//! variants: adding a variant breaks the build of the tests until it is
//! listed here, and the test then fails until the enum's section of
//! docs/ERRORS.md names it (as `` `Variant` ``).

use crate::backend::BackendError;
use crate::error::{InferError, LoadError};
use crate::preprocess::{NoDigit, PreprocessError, SourceError};

/// `fn name(&Enum) -> &str` as an exhaustive match over the listed variants
/// (no wildcard arm), and the list of their names.
macro_rules! documented {
    ($ty:ident: $($variant:ident),+ $(,)?) => {
        #[allow(dead_code)]
        fn name(e: &$ty) -> &'static str {
            match e {
                $($ty::$variant { .. } => stringify!($variant),)+
            }
        }
        pub(super) const NAMES: &[&str] = &[$(stringify!($variant)),+];
    };
}

mod load {
    use super::*;
    documented!(
        LoadError: Truncated,
        TrailingBytes,
        BadMagic,
        UnsupportedVersion,
        BadHeaderLength,
        ChecksumMismatch,
        UnknownEncoding,
        EncodingNotBuilt,
        ReservedNotZero,
        InvalidShape,
        InvalidParameter,
        TensorTableOutOfBounds,
        UnexpectedTensor,
        DuplicateTensor,
        MissingTensor,
        WrongElementType,
        WrongTensorShape,
        WrongByteLength,
        MisalignedTensor,
        TensorOutOfBounds,
        OverlappingTensors,
        NonFinite,
        TooLarge,
        OutOfRange,
        MisalignedBuffer,
    );

    #[test]
    fn the_match_names_the_variant() {
        assert_eq!(name(&LoadError::Truncated { needed: 64, actual: 0 }), "Truncated");
    }
}

mod infer {
    use super::*;
    documented!(InferError: ImageSize, WorkspaceMismatch, WorkspaceMemory, AttentionBufferSize, BatchSize, Source, NoDigit);

    #[test]
    fn the_match_names_the_variant() {
        assert_eq!(name(&InferError::WorkspaceMismatch), "WorkspaceMismatch");
    }
}

mod backend {
    use super::*;
    documented!(BackendError: Unknown, Unavailable);

    #[test]
    fn the_match_names_the_variant() {
        assert_eq!(name(&BackendError::Unknown("x".into())), "Unknown");
    }
}

mod source {
    use super::*;
    documented!(SourceError: ZeroSize, TooLarge, StrideTooSmall, BufferTooShort);

    #[test]
    fn the_match_names_the_variant() {
        assert_eq!(name(&SourceError::ZeroSize { width: 0, height: 0 }), "ZeroSize");
    }
}

mod no_digit {
    use super::*;
    documented!(NoDigit: Blank, MostlyInk, Scattered, TooSmall);

    #[test]
    fn the_match_names_the_variant() {
        assert_eq!(name(&NoDigit::Scattered), "Scattered");
    }
}

mod preprocess {
    use super::*;
    documented!(PreprocessError: Source, NoDigit, OutputSize);

    #[test]
    fn the_match_names_the_variant() {
        assert_eq!(name(&PreprocessError::OutputSize { side: 0, len: 0 }), "OutputSize");
    }
}

/// The text of docs/ERRORS.md from the `## ` heading that mentions `enum` up
/// to the next `## ` heading.
fn section(doc: &str, enum_name: &str) -> String {
    let marker = format!("`{enum_name}`");
    let start = doc
        .match_indices("\n## ")
        .map(|(i, _)| i + 1)
        .find(|&i| doc[i..].lines().next().is_some_and(|h| h.contains(&marker)))
        .unwrap_or_else(|| panic!("docs/ERRORS.md has no `## ` heading naming {marker}"));
    let end = doc[start + 3..].find("\n## ").map_or(doc.len(), |i| start + 3 + i);
    doc[start..end].to_string()
}

#[test]
fn every_engine_error_is_documented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ERRORS.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut missing = Vec::new();
    for (enum_name, names) in [
        ("LoadError", load::NAMES),
        ("InferError", infer::NAMES),
        ("BackendError", backend::NAMES),
        ("SourceError", source::NAMES),
        ("NoDigit", no_digit::NAMES),
        ("PreprocessError", preprocess::NAMES),
    ] {
        let text = section(&doc, enum_name);
        missing.extend(names.iter().filter(|n| !text.contains(&format!("`{n}`"))).map(|n| format!("{enum_name}::{n}")));
    }
    // ShapeError is a struct: its messages are documented under InvalidShape.
    assert!(section(&doc, "LoadError").contains("`ShapeError`"), "ShapeError is not described");
    assert!(missing.is_empty(), "docs/ERRORS.md does not document {missing:?}");
}

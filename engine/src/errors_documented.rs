//! Every error the engine returns is documented in docs/ERRORS.md.
//!
//! A unit test rather than a file in tests/: `LoadError` and `InferError` are
//! `#[non_exhaustive]`, so only code inside this crate can match them without
//! a wildcard arm. `documented!` generates such a match from its list of
//! variants: adding a variant breaks the build of the tests until it is
//! listed here, and the test then fails until the enum's section of
//! docs/ERRORS.md names it (as `` `Variant` ``). The preprocessing errors
//! are microvit-preprocess's, and checked there with the same code
//! (`doc_check.rs`).

use crate::backend::BackendError;
use crate::error::{InferError, LoadError};

#[macro_use]
#[path = "doc_check.rs"]
mod doc_check;

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

#[test]
fn every_engine_error_is_documented() {
    let missing: Vec<String> =
        [("LoadError", load::NAMES), ("InferError", infer::NAMES), ("BackendError", backend::NAMES)]
            .into_iter()
            .flat_map(|(enum_name, names)| doc_check::undocumented(enum_name, names))
            .collect();
    // ShapeError is a struct: its messages are documented under InvalidShape.
    assert!(doc_check::section("LoadError").contains("`ShapeError`"), "ShapeError is not described");
    assert!(missing.is_empty(), "docs/ERRORS.md does not document {missing:?}");
}

//! Every error preprocessing returns is documented in docs/ERRORS.md: the
//! engine's `errors_documented` test for this crate's enums, which only
//! this crate can match without a wildcard arm (they are
//! `#[non_exhaustive]`).

use crate::{NoDigit, PreprocessError, SourceError};

#[macro_use]
#[path = "../../engine/src/doc_check.rs"]
mod doc_check;

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

#[test]
fn every_preprocessing_error_is_documented() {
    let missing: Vec<String> =
        [("SourceError", source::NAMES), ("NoDigit", no_digit::NAMES), ("PreprocessError", preprocess::NAMES)]
            .into_iter()
            .flat_map(|(enum_name, names)| doc_check::undocumented(enum_name, names))
            .collect();
    assert!(missing.is_empty(), "docs/ERRORS.md does not document {missing:?}");
}

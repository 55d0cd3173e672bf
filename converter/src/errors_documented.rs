//! Every error the converter returns is documented in docs/ERRORS.md.
//!
//! A unit test rather than a file in tests/: `ConvertError` is
//! `#[non_exhaustive]`, so only code inside this crate can match it without a
//! wildcard arm. The match below is generated from the list of variants:
//! adding a variant breaks the build of the tests until it is listed here,
//! and the test then fails until the `ConvertError` section of
//! docs/ERRORS.md names it (as `` `Variant` ``).

use crate::ConvertError;

#[macro_use]
#[path = "../../engine/src/doc_check.rs"]
mod doc_check;

documented!(
    ConvertError: Safetensors,
    UnsupportedTensorDtype,
    DuplicateTensor,
    MissingTensor,
    UnexpectedTensor,
    BadShape,
    NonFinite,
    TooLarge,
    HeadsUnknown,
    BadMetadata,
    BadParameter,
    UnsupportedShape,
    Calibration,
    NotQuantizable,
);

#[test]
fn every_convert_error_is_documented() {
    assert_eq!(name(&ConvertError::HeadsUnknown), "HeadsUnknown");
    let missing = doc_check::undocumented("ConvertError", NAMES);
    assert!(missing.is_empty(), "docs/ERRORS.md does not document {missing:?}");
}

//! Every error the converter returns is documented in docs/ERRORS.md.
//!
//! A unit test rather than a file in tests/: `ConvertError` is
//! `#[non_exhaustive]`, so only code inside this crate can match it without a
//! wildcard arm. The match below is generated from the list of variants:
//! adding a variant breaks the build of the tests until it is listed here,
//! and the test then fails until the `ConvertError` section of
//! docs/ERRORS.md names it (as `` `Variant` ``).

use crate::ConvertError;

/// An exhaustive match over the listed variants (no wildcard arm), and the
/// list of their names.
macro_rules! documented {
    ($ty:ident: $($variant:ident),+ $(,)?) => {
        fn name(e: &$ty) -> &'static str {
            match e {
                $($ty::$variant { .. } => stringify!($variant),)+
            }
        }
        const NAMES: &[&str] = &[$(stringify!($variant)),+];
    };
}

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
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ERRORS.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = doc
        .match_indices("\n## ")
        .map(|(i, _)| i + 1)
        .find(|&i| doc[i..].lines().next().is_some_and(|h| h.contains("`ConvertError`")))
        .expect("docs/ERRORS.md has a `## ` heading naming `ConvertError`");
    let end = doc[start + 3..].find("\n## ").map_or(doc.len(), |i| start + 3 + i);
    let text = &doc[start..end];
    let missing: Vec<&&str> = NAMES.iter().filter(|n| !text.contains(&format!("`{n}`"))).collect();
    assert!(missing.is_empty(), "docs/ERRORS.md does not document ConvertError::{missing:?}");
}

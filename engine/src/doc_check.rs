//! The check behind the `errors_documented` tests of every crate (each
//! includes this file with `#[path]`): an enum's variants, listed by an
//! exhaustive match in the crate that defines it, against its section of
//! docs/ERRORS.md.

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

/// The text of docs/ERRORS.md from the `## ` heading that names `` `enum_name` ``
/// up to the next `## ` heading.
pub(super) fn section(enum_name: &str) -> String {
    section_containing(&format!("`{enum_name}`"))
}

/// The text of docs/ERRORS.md from the `## ` heading containing `marker` up
/// to the next `## ` heading.
pub(super) fn section_containing(marker: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ERRORS.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = doc
        .match_indices("\n## ")
        .map(|(i, _)| i + 1)
        .find(|&i| doc[i..].lines().next().is_some_and(|h| h.contains(marker)))
        .unwrap_or_else(|| panic!("docs/ERRORS.md has no `## ` heading containing {marker}"));
    let end = doc[start + 3..].find("\n## ").map_or(doc.len(), |i| start + 3 + i);
    doc[start..end].to_string()
}

/// `Enum::Variant` for each of `names` that the section of `enum_name`
/// does not name as `` `Variant` ``.
pub(super) fn undocumented(enum_name: &str, names: &[&str]) -> Vec<String> {
    let text = section(enum_name);
    names.iter().filter(|n| !text.contains(&format!("`{n}`"))).map(|n| format!("{enum_name}::{n}")).collect()
}

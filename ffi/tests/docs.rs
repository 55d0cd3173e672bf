//! The C usage shown in README.md, docs/C_API.md and at the top of
//! include/microvit.h is examples/c/minimal.c, which CI compiles and runs:
//! the three copies must be its text, so what people copy compiles.

use std::path::Path;

fn repo(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// minimal.c from its first `#include` on (its opening comment says what it is).
fn program() -> String {
    let source = repo("examples/c/minimal.c");
    let start = source.find("#include").expect("minimal.c has includes");
    source[start..].trim_end().to_string()
}

/// The first ```c block of a Markdown file.
fn markdown_block(path: &str) -> String {
    let text = repo(path);
    let start = text.find("```c\n").unwrap_or_else(|| panic!("{path} has no ```c block")) + 5;
    let end = start + text[start..].find("```").unwrap();
    text[start..end].trim_end().to_string()
}

/// The indented example in the header's opening comment, unindented.
fn header_block() -> String {
    let header = repo("include/microvit.h");
    let lines: Vec<&str> = header
        .lines()
        .skip_while(|l| !l.starts_with(" *     #include"))
        .take_while(|l| l.starts_with(" *     ") || l.trim_end() == " *")
        .map(|l| l.strip_prefix(" *     ").unwrap_or(""))
        .collect();
    lines.join("\n").trim_end().to_string()
}

#[test]
fn the_c_usage_everywhere_is_minimal_c() {
    let program = program();
    assert!(program.contains("microvit_classify(model, NULL, pixels"), "{program}");
    for (place, text) in [
        ("README.md", markdown_block("README.md")),
        ("docs/C_API.md", markdown_block("docs/C_API.md")),
        ("include/microvit.h", header_block()),
    ] {
        assert_eq!(text, program, "{place}'s C usage is not examples/c/minimal.c");
    }
}

//! The documentation stays true: every stable code the engine can emit is in the
//! error catalogue.

use std::path::Path;

/// Single-word codes (the others contain an underscore).
const SINGLE_WORD_CODES: &[&str] = &[
    "CAPPED",
    "COMPLETED",
    "DUPLICATE",
    "FAILED",
    "FORBIDDEN",
    "HELD",
    "INTERNAL",
    "OVERLOADED",
    "TIMEOUT",
    "UNAUTHORIZED",
];

fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).expect("read source"));
        }
    }
}

/// String literals that look like codes: `"UPPER_CASE_WORDS"`.
fn code_literals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in text.split('"').skip(1).step_by(2) {
        let is_code = piece.len() > 2
            && piece.starts_with(|c: char| c.is_ascii_uppercase())
            && piece
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && (piece.contains('_') || SINGLE_WORD_CODES.contains(&piece))
            // Environment variables (`env!("CARGO_PKG_VERSION")`, `PARCOURS_SECRET_...`).
            && !piece.starts_with("CARGO_")
            && !piece.starts_with("PARCOURS_");
        if is_code {
            out.push(piece.to_string());
        }
    }
    out
}

#[test]
fn every_code_the_engine_emits_is_in_the_error_catalogue() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalogue = std::fs::read_to_string(root.join("docs/errors.md")).expect("errors.md");
    let mut texts = Vec::new();
    sources(&root.join("engine/src"), &mut texts);
    sources(&root.join("sdk/src"), &mut texts);
    let mut codes: Vec<String> = texts.iter().flat_map(|t| code_literals(t)).collect();
    codes.sort();
    codes.dedup();
    assert!(codes.len() > 40, "the scan found too few codes: {codes:?}");
    let missing: Vec<&String> = codes
        .iter()
        .filter(|c| !catalogue.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes missing from docs/errors.md: {missing:?}"
    );
}

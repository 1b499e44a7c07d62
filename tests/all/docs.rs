//! The documentation stays true: every stable code the engine can emit is in the
//! error catalogue.

use std::path::Path;

use parcours_engine::Code;

#[test]
fn every_code_the_engine_emits_is_in_the_error_catalogue() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalogue = std::fs::read_to_string(root.join("docs/errors.md")).expect("errors.md");
    assert!(Code::ALL.len() > 40, "{} codes", Code::ALL.len());
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !catalogue.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes missing from docs/errors.md: {missing:?}"
    );
}

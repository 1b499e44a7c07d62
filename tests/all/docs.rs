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

/// docs/configuration.md holds the reference `parcours config reference` generates from
/// the settings type; `PARCOURS_BLESS=1` rewrites it.
#[test]
fn the_configuration_reference_is_generated_from_the_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("docs/configuration.md");
    let doc = std::fs::read_to_string(&path).expect("configuration.md");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parcours"))
        .args(["config", "reference"])
        .output()
        .expect("run parcours");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("UTF-8");
    let (begin, end) = (
        "<!-- settings reference: begin -->\n",
        "<!-- settings reference: end -->",
    );
    let start = doc.find(begin).expect("begin marker") + begin.len();
    let stop = doc.find(end).expect("end marker");
    if std::env::var_os("PARCOURS_BLESS").is_some() {
        let blessed = format!("{}{generated}{}", &doc[..start], &doc[stop..]);
        std::fs::write(&path, blessed).expect("write configuration.md");
        return;
    }
    assert!(
        doc[start..stop] == generated,
        "docs/configuration.md differs from `parcours config reference` (PARCOURS_BLESS=1 rewrites it)"
    );
}

//! The fuzz targets' checks (tests/fuzz/checks.rs) over every seed input and every kept
//! regression input, in `cargo test`: a crash the fuzzers once found stays fixed.

use std::path::Path;

#[allow(dead_code)]
#[path = "../fuzz/checks.rs"]
mod checks;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_file() && path.file_name().is_some_and(|n| n != "README") {
                out.push((
                    path.display().to_string(),
                    std::fs::read(&path).expect("read"),
                ));
            }
        }
    }
    out.sort();
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no inputs for {target}");
    for (name, data) in inputs {
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: {name} makes the check fail");
        }
    }
}

#[test]
fn journey_definition_inputs() {
    replay("journey_definition", checks::journey_definition);
}

#[test]
fn expression_inputs() {
    replay("expression", checks::expression);
}

#[test]
fn event_decoding_inputs() {
    replay("event_decoding", checks::event_decoding);
}

//! The `parcours` command line.

use std::process::Command;

fn parcours(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parcours"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run parcours");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn journey_validate_accepts_the_examples_and_locates_errors() {
    let (ok, text) = parcours(&[
        "journey",
        "validate",
        "examples/journeys/welcome.yaml",
        "examples/journeys/abandoned_cart.json",
        "examples/journeys/vip_branch.yaml",
    ]);
    assert!(ok, "{text}");
    assert_eq!(text.matches(": ok").count(), 3, "{text}");

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "entry: {type: event, event: e}\nstart: wait_2d\nnodes:\n  wait_2d: {type: wait, duration: P2X}\n",
    )
    .expect("write");
    let (ok, text) = parcours(&["journey", "validate", bad.to_str().expect("path")]);
    assert!(!ok);
    assert!(
        text.contains("nodes.wait_2d.duration: \"P2X\" is not an ISO-8601 duration"),
        "{text}"
    );
}

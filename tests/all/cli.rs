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
        "--builtin-plugins",
        "examples/journeys/welcome.yaml",
        "examples/journeys/abandoned_cart.json",
        "examples/journeys/vip_branch.yaml",
        "examples/journeys/store_visit.yaml",
    ]);
    assert!(ok, "{text}");
    assert_eq!(text.matches(": ok").count(), 4, "{text}");

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

#[test]
fn plugin_new_writes_a_project_that_builds_to_a_component_and_inspects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, text) = parcours(&[
        "plugin",
        "new",
        "shout",
        "--kind",
        "action",
        "--dir",
        dir.path().to_str().expect("path"),
    ]);
    assert!(ok, "{text}");
    let project = dir.path().join("shout");
    // One command builds it (sharing the guests' target folder keeps this quick).
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guests");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&project)
        .output()
        .expect("cargo build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Point the manifest at the shared target folder, then inspect the component.
    let manifest = project.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let wasm = target.join("wasm32-wasip2/release/shout.wasm");
    std::fs::write(
        &manifest,
        text.replace(
            "target/wasm32-wasip2/release/shout.wasm",
            wasm.to_str().expect("path"),
        ),
    )
    .expect("write manifest");
    let (ok, text) = parcours(&["plugin", "inspect", manifest.to_str().expect("path")]);
    assert!(ok, "{text}");
    assert!(text.contains("\"kind\": \"action\""), "{text}");
    assert!(text.contains("\"invoke\""), "{text}");
}

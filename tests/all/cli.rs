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
    let mut args = vec![
        "journey".to_string(),
        "validate".into(),
        "--builtin-plugins".into(),
        "--resources".into(),
        "examples/resources.yaml".into(),
    ];
    let mut files: Vec<String> = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/journeys"),
    )
    .expect("examples")
    .map(|e| {
        format!(
            "examples/journeys/{}",
            e.expect("entry").file_name().to_string_lossy()
        )
    })
    .collect();
    files.sort();
    let count = files.len();
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, text) = parcours(&args);
    assert!(ok, "{text}");
    assert_eq!(text.matches(": ok").count(), count, "{text}");

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

    // The graph limits are flags, as on `serve`: a chain of three conditions fits the
    // default and not a limit of two steps per activation.
    let chain = dir.path().join("chain.yaml");
    std::fs::write(
        &chain,
        "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: condition, branches: [{when: 'true', next: b}]}\n  b: {type: condition, branches: [{when: 'true', next: c}]}\n  c: {type: end}\n",
    )
    .expect("write");
    let chain = chain.to_str().expect("path");
    let (ok, text) = parcours(&["journey", "validate", chain]);
    assert!(ok, "{text}");
    let (ok, text) = parcours(&[
        "journey",
        "validate",
        "--max-steps-per-activation",
        "2",
        chain,
    ]);
    assert!(!ok);
    assert!(
        text.contains("nodes.c: ") && text.contains("max_steps_per_activation"),
        "{text}"
    );
    let (ok, text) = parcours(&["journey", "validate", "--max-journey-nodes", "2", chain]);
    assert!(!ok);
    assert!(text.contains("max_journey_nodes"), "{text}");
    let (ok, text) = parcours(&["serve", "--help"]);
    assert!(ok, "{text}");
    for flag in [
        "--max-journey-nodes",
        "--max-journey-bytes",
        "--max-steps-per-activation",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}");
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_import_sends_a_file_in_chunks_and_reports_bad_lines() {
    let t = crate::support::TestEngine::start_with(|_| {}).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("people.csv");
    std::fs::write(
        &file,
        "id,tier,alias.email\nu1,gold,u1@x.com\nu2,silver,\nu3,gold,u3@x.com\n",
    )
    .expect("write");
    let base = t.base.clone();
    let path = file.to_str().expect("path").to_string();
    let (ok, text) = tokio::task::spawn_blocking(move || {
        parcours(&[
            "profile", "import", &path, "--chunk", "2", "--server", &base,
        ])
    })
    .await
    .expect("join");
    assert!(ok, "{text}");
    assert!(text.contains("imported 3 profiles"), "{text}");
    let (_, u3) = t.get("/v1/profiles/u3").await;
    assert_eq!(u3["attributes"]["tier"], "gold");
    assert_eq!(u3["aliases"]["email"], "u3@x.com");

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"v1\"}\n{\"id\": \"v2\", \"attributes\": 5}\n",
    )
    .expect("write");
    let base = t.base.clone();
    let path = bad.to_str().expect("path").to_string();
    let (ok, text) = tokio::task::spawn_blocking(move || {
        parcours(&["profile", "import", &path, "--server", &base])
    })
    .await
    .expect("join");
    assert!(!ok, "{text}");
    assert!(text.contains("line 2.attributes"), "{text}");
}

//! The designer's page served by the engine: at `/` without a token (the page asks for
//! one), its assets immutable and revalidated by ETag, its security headers set, and the
//! JSON Schema its forms are drawn from behind the API's tokens like any read.

use std::process::Command;

use crate::support::TestEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_public_its_data_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.json");
    let out = Command::new(env!("CARGO_BIN_EXE_parcours"))
        .args(["token", "create", "viewer", "--scope", "read", "--tokens"])
        .arg(&tokens)
        .output()
        .expect("run parcours");
    assert!(out.status.success());
    let read = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let file = tokens.clone();
    let t = TestEngine::start_with(move |s| {
        crate::support::with_plugins(s);
        s.require_auth = true;
        s.tokens_file = Some(file);
    })
    .await;
    let client = crate::support::client();

    let page = client.get(t.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200, "the page needs no token");
    let headers = page.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-cache");
    let html = page.text().await.unwrap();
    assert!(html.contains("<div id=\"root\">"), "{html}");

    // The page's own script: immutable (its name is its content's hash), and revalidated.
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page loads a script")
        .to_string();
    assert!(
        script.starts_with("/assets/") && script.ends_with(".js"),
        "{script}"
    );
    let js = client.get(t.url(&script)).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        js.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let etag = js.headers()["etag"].clone();
    assert!(js.bytes().await.unwrap().len() > 1000);
    let again = client
        .get(t.url(&script))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let missing = client
        .get(t.url("/assets/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // What the page reads goes through the API's tokens.
    let schema = client
        .get(t.url("/v1/schema/journey"))
        .send()
        .await
        .unwrap();
    assert_eq!(schema.status(), 401);
    let schema = client
        .get(t.url("/v1/schema/journey"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(schema.status(), 200);
    let schema: serde_json::Value = schema.json().await.unwrap();
    let kinds: Vec<&str> = schema["$defs"]["NodeDef"]["oneOf"]
        .as_array()
        .expect("node kinds")
        .iter()
        .filter_map(|k| k["properties"]["type"]["const"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "condition",
            "split",
            "wait",
            "reaction",
            "action",
            "message",
            "update_profile",
            "jump",
            "end"
        ]
    );
    // A read token may not write: the designer shows itself read-only.
    let write = client
        .post(t.url("/v1/journeys/validate"))
        .bearer_auth(&read)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);
}

/// Runs a command in `designer/`, failing the test with its output when it fails.
fn npm_step(what: &str, program: &str, args: &[&str]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("designer");
    let out = Command::new(program)
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{what}: cannot run {program} ({e}); Node.js 20 and npm are needed")
        });
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn files_under(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The designer's own tests, from `cargo test`: its committed build matches its sources
/// (the binary embeds `designer/dist`), its unit tests (Vitest: every example journey
/// round-trips through the canvas model) and its browser tests (Chromium driven by
/// playwright-core: a journey drawn by drag and drop, problems on the nodes, publish,
/// live counts, accessibility), whose screenshots go to `target/tmp/designer-e2e`.
#[test]
fn the_designer_is_built_from_its_sources_and_passes_its_tests_in_a_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "the designer's browser tests drive Chromium at {chromium}: `apt-get install chromium` (or set CHROMIUM)"
    );
    let designer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("designer");
    if !designer.join("node_modules/.package-lock.json").exists() {
        npm_step(
            "npm ci",
            "npm",
            &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
        );
    }
    let built = tempfile::tempdir().unwrap();
    let out_dir = built.path().to_str().unwrap();
    npm_step(
        "the designer's build",
        "npm",
        &["run", "build", "--", "--outDir", out_dir, "--emptyOutDir"],
    );
    let want = files_under(&designer.join("dist"));
    let got = files_under(built.path());
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&got),
        names(&want),
        "designer/dist is not the build of designer/src: run `cd designer && npm run build` and commit designer/dist"
    );
    for ((name, a), (_, b)) in got.iter().zip(&want) {
        assert!(
            a == b,
            "designer/dist/{name} differs from its build: run `cd designer && npm run build` and commit designer/dist"
        );
    }
    npm_step("the designer's unit tests (Vitest)", "npm", &["test"]);
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let shots = tmp.join("designer-e2e");
    let cache = tmp.join("plugin-cache");
    npm_step(
        "the designer's browser tests",
        "node",
        &[
            "e2e/run.mjs",
            env!("CARGO_BIN_EXE_parcours"),
            "--plugin-cache",
            cache.to_str().unwrap(),
            "--out",
            shots.to_str().unwrap(),
        ],
    );
}

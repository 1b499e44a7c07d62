//! A plugin author's first hour, per language, as the guides tell it: the walkthrough of
//! docs/plugins.md (Rust), plugins-python.md and plugins-js.md runs as written in an
//! empty folder outside the repository, from `plugin new` to a journey that calls the
//! plugin, against an engine and a receiver on Python's `http.server` (the scaffold's
//! own `test/receiver.py`) started as the guide says. Then what the guide promises:
//! headers shown by `plugin test`, a bad input refused at its place, the request body
//! and idempotency key received whole, and sources the build left unchanged.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::restart::Server;
use crate::support::{client, eventually};

/// The port the scaffold's manifest and receiver use: one walkthrough at a time.
const RECEIVER: &str = "127.0.0.1:8808";
static PORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The shell blocks between the guide's walkthrough markers, in order.
fn walkthrough(doc: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docs").join(doc)).expect("read the guide");
    let (begin, end) = ("<!-- walkthrough: begin -->", "<!-- walkthrough: end -->");
    let start = text
        .find(begin)
        .unwrap_or_else(|| panic!("{doc}: no {begin}"));
    let stop = text.find(end).unwrap_or_else(|| panic!("{doc}: no {end}"));
    let mut script = String::new();
    let mut inside = false;
    for line in text[start..stop].lines() {
        match (inside, line.trim_end()) {
            (false, "```sh") => inside = true,
            (true, "```") => inside = false,
            (true, command) => {
                script.push_str(command);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(script.contains("parcours plugin new"), "{doc}: {script}");
    script
}

/// `python3 receiver.py`, each request it prints kept as JSON.
struct Receiver {
    child: Child,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start(script: &Path) -> Receiver {
        let mut child = Command::new("python3")
            .arg(script)
            .arg(RECEIVER.rsplit(':').next().expect("port"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs the receiver");
        // It says where it listens once it does.
        let mut ready = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let line = ready.next().expect("the receiver started").expect("read");
        assert!(line.contains("listening"), "{line}");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    kept.lock().unwrap_or_else(|p| p.into_inner()).push(v);
                }
            }
        });
        Receiver { child, seen }
    }

    fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file of a project but the build's outputs and toolchains, with its bytes.
fn sources(project: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    const OUTPUTS: [&str; 4] = ["target", "build", ".venv", "node_modules"];
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let relative = path.strip_prefix(base).expect("under base").to_path_buf();
            if dir == base
                && OUTPUTS
                    .iter()
                    .any(|o| relative.as_os_str() == std::ffi::OsStr::new(o))
            {
                continue;
            }
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.insert(relative, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(project, project, &mut out);
    out
}

fn run(command: &mut Command) -> (bool, String) {
    let out = command.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Follows the guide `doc` (whose walkthrough makes `loyalty` with `--lang lang`) and
/// checks what it promises.
async fn follow(doc: &str, lang: &str) {
    let _port = PORT.lock().await;
    let script = walkthrough(doc);
    let dir = tempfile::tempdir().expect("temp dir");
    let (work, bin) = (dir.path().join("work"), dir.path().join("bin"));
    for d in [&work, &bin] {
        std::fs::create_dir(d).expect("mkdir");
    }
    std::fs::copy(env!("CARGO_BIN_EXE_parcours"), bin.join("parcours")).expect("copy parcours");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // What the guide tells the reader to start: the receiver and an engine that may
    // reach local addresses.
    let receiver = Receiver::start(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/scaffold/shared/receiver.py"),
    );
    let server = {
        let mut c = Command::new(env!("CARGO_BIN_EXE_parcours"));
        c.args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("engine.db"))
            .args(["--plugin-allow-network", "127.0.0.0/8"]);
        tokio::task::spawn_blocking(move || Server::spawn(c))
            .await
            .expect("join")
    };

    let (ok, output) = {
        let mut c = Command::new("bash");
        c.args(["-euo", "pipefail", "-c", &script])
            .current_dir(&work)
            .env("PATH", &path)
            .env("PARCOURS_SERVER", &server.base)
            // The build puts the component where the manifest says, whatever this says.
            .env("CARGO_TARGET_DIR", dir.path().join("elsewhere"));
        tokio::task::spawn_blocking(move || run(&mut c))
            .await
            .expect("join")
    };
    assert!(ok, "{doc}: the walkthrough failed:\n{script}\n{output}");
    let project = work.join("loyalty");

    // The guide builds with the command the project's README gives.
    let readme = std::fs::read_to_string(project.join("README.md")).expect("README");
    let build = script.lines().nth(2).expect("the build line");
    assert!(readme.contains(build), "{doc}: README lacks {build:?}");

    // `plugin test` showed each request's headers, the idempotency key among them (once
    // stubbed, once live).
    assert!(
        output.matches("idempotency-key: ").count() >= 2,
        "{doc}: {output}"
    );

    // `journey validate` used the plugin beside the journey.
    assert!(
        output.contains("using the plugin of ./plugin.toml") && output.contains("journey.yaml: ok"),
        "{doc}: {output}"
    );

    // The receiver got the live test's request, then the journey's, each body whole
    // (sent with its length: http.server reads no chunked body).
    let seen = eventually(|| {
        let seen = receiver.seen();
        async move { (seen.len() >= 2).then_some(seen) }
    })
    .await;
    assert_eq!(
        seen[0]["body"]["message"], "Hello from loyalty",
        "{doc}: {seen:?}"
    );
    let step = &seen[1];
    assert_eq!(step["method"], "POST", "{doc}: {step}");
    assert_eq!(step["path"], "/messages", "{doc}: {step}");
    assert_eq!(
        step["body"],
        serde_json::json!({"profile_id": "ada", "journey_id": "try_loyalty", "message": "Hello ada: Hi"}),
        "{doc}: {step}"
    );
    assert!(
        step["headers"]["content-length"]
            .as_str()
            .and_then(|l| l.parse::<usize>().ok())
            .is_some_and(|l| l > 0),
        "{doc}: {step}"
    );
    let key = step["headers"]["idempotency-key"]
        .as_str()
        .unwrap_or_else(|| panic!("{doc}: no idempotency key: {step}"));
    let (_, instances) = crate::restart::get(
        &client(),
        format!("{}/v1/profiles/ada/instances", server.base),
    )
    .await;
    let instance = instances["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["journey_id"] == "try_loyalty"))
        .unwrap_or_else(|| panic!("{doc}: no instance: {instances}"));
    assert!(
        key.starts_with(instance["id"].as_str().expect("id")),
        "{doc}: {key} {instance}"
    );

    // A bad input is refused where it is wrong, before the plugin runs.
    std::fs::write(work.join("bad.json"), r#"{"params": {"message": 42}}"#).expect("write");
    let (ok, text) = run(Command::new(bin.join("parcours"))
        .args(["plugin", "test", "plugin.toml", "--input", "../bad.json"])
        .args(["--stubs", "test/stubs.json"])
        .current_dir(&project));
    assert!(!ok, "{doc}: {text}");
    assert!(
        text.contains("ACTION_INVALID_INPUT") && text.contains("/message"),
        "{doc}: {text}"
    );
    assert!(!text.contains("idempotency-key"), "not called: {text}");

    // The build wrote nothing beside the sources: they are what `plugin new` wrote.
    let fresh = dir.path().join("fresh");
    let (ok, text) = run(Command::new(bin.join("parcours"))
        .args(["plugin", "new", "loyalty", "--lang", lang, "--dir"])
        .arg(&fresh));
    assert!(ok, "{text}");
    let (built, new) = (sources(&project), sources(&fresh.join("loyalty")));
    let names = |m: &BTreeMap<PathBuf, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&built),
        names(&new),
        "{doc}: files beside the sources"
    );
    for (file, bytes) in &new {
        assert!(built[file] == *bytes, "{doc}: {} changed", file.display());
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_guide_runs_from_plugin_new_to_a_journey() {
    follow("plugins.md", "rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_guide_runs_from_plugin_new_to_a_journey() {
    follow("plugins-python.md", "python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_guide_runs_from_plugin_new_to_a_journey() {
    follow("plugins-js.md", "js").await;
}

/// The other worlds in every language: the scaffold builds with its README's command,
/// its sample call passes `plugin test` with its stubs, and `plugin inspect` reads it.
#[test]
fn every_world_in_every_language_builds_and_passes_its_sample_call() {
    let cases = [
        ("rust", "data-source", "\"tier\": \"gold\""),
        ("rust", "functions", "ok: 42"),
        ("python", "data-source", "\"tier\": \"gold\""),
        ("python", "functions", "ok: 42"),
        ("js", "data-source", "\"tier\": \"gold\""),
        ("js", "functions", "ok: 42"),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let parcours = env!("CARGO_BIN_EXE_parcours");
    for (lang, world, expected) in cases {
        let name = format!("{lang}_{}", world.replace('-', "_"));
        let (ok, text) = run(Command::new(parcours)
            .args([
                "plugin", "new", &name, "--lang", lang, "--world", world, "--dir",
            ])
            .arg(dir.path()));
        assert!(ok, "{lang} {world}: {text}");
        let project = dir.path().join(&name);
        let readme = std::fs::read_to_string(project.join("README.md")).expect("README");
        // The README's build command: the first line of its first shell block.
        let build = readme
            .split("```sh\n")
            .nth(1)
            .and_then(|b| b.lines().next())
            .expect("a build command");
        let (ok, text) = run(Command::new("bash")
            .args(["-euo", "pipefail", "-c", build])
            .current_dir(&project));
        assert!(ok, "{lang} {world}: {build}: {text}");
        let (ok, text) = run(Command::new(parcours)
            .args([
                "plugin",
                "test",
                "plugin.toml",
                "--input",
                "test/input.json",
            ])
            .args(["--stubs", "test/stubs.json"])
            .current_dir(&project));
        assert!(ok && text.contains(expected), "{lang} {world}: {text}");
        let (ok, text) = run(Command::new(parcours)
            .args(["plugin", "inspect", "plugin.toml"])
            .current_dir(&project));
        assert!(
            ok && text.contains(&format!("\"kind\": \"{world}\"")),
            "{lang} {world}: {text}"
        );
    }
}

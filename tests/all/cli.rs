//! The `parcours` command line.

use std::process::Command;

use serde_json::json;

pub(crate) fn parcours(args: &[&str]) -> (bool, String) {
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

    // Offline, a plugin the journey calls is missing: the message says how to load it.
    let calls = dir.path().join("calls.yaml");
    std::fs::write(
        &calls,
        "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: action, action: loyalty, next: b}\n  b:\n    type: condition\n    branches: [{when: 'scoring::score(1) > 0', next: c}]\n  c: {type: end}\n",
    )
    .expect("write");
    let (ok, text) = parcours(&["journey", "validate", calls.to_str().expect("path")]);
    assert!(!ok);
    assert!(
        text.contains("nodes.a.action: unknown action \"loyalty\" (known: log) (validating offline: load plugins with --plugins DIR, the first-party ones with --builtin-plugins)"),
        "{text}"
    );
    assert!(
        text.contains("scoring") && text.matches("--plugins DIR").count() == 2,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_import_sends_a_file_in_chunks_and_reports_bad_lines() {
    let t = crate::support::TestEngine::start_with(|_| {}).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("people.csv");
    std::fs::write(
        &file,
        "id,tier,note,alias.email\nu1,gold,\"two\nlines\",u1@x.com\nu2,silver,,\nu3,gold,,u3@x.com\n",
    )
    .expect("write");
    let path = file.to_str().expect("path").to_string();
    let (ok, text) = parcours_blocking(&[
        "profile", "import", &path, "--chunk", "2", "--server", &t.base,
    ])
    .await;
    assert!(ok, "{text}");
    assert!(text.contains("imported 3 profiles"), "{text}");
    let (_, u3) = t.get("/v1/profiles/u3").await;
    assert_eq!(u3["attributes"]["tier"], "gold");
    assert_eq!(u3["aliases"]["email"], "u3@x.com");
    let (_, u1) = t.get("/v1/profiles/u1").await;
    assert_eq!(u1["attributes"]["note"], "two\nlines", "{u1}");

    // A refused record is named by its line in the file, past a cell that spans lines
    // and in a later chunk.
    let typed = dir.path().join("typed.csv");
    std::fs::write(
        &typed,
        "id,note,visits:integer\nw1,\"a\nb\nc\",1\nw2,x,2\nw3,y,3\nw4,z,many\n",
    )
    .expect("write");
    let path = typed.to_str().expect("path").to_string();
    let (ok, text) = parcours_blocking(&[
        "profile", "import", &path, "--chunk", "2", "--server", &t.base,
    ])
    .await;
    assert!(!ok, "{text}");
    assert!(text.contains("line 7.visits"), "{text}");

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"v1\"}\n{\"id\": \"v2\", \"attributes\": 5}\n",
    )
    .expect("write");
    let path = bad.to_str().expect("path").to_string();
    let (ok, text) = parcours_blocking(&["profile", "import", &path, "--server", &t.base]).await;
    assert!(!ok, "{text}");
    assert!(text.contains("line 2.attributes"), "{text}");
}

#[test]
fn serve_binds_before_opening_the_database_and_names_a_busy_address() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = busy.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("engine.db");
    let db_arg = db.to_str().expect("path").to_string();
    let (ok, text) = parcours(&["serve", "--listen", &address, "--db", &db_arg]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("cannot listen on {address}")),
        "{text}"
    );
    assert!(!db.exists(), "a busy port leaves no database behind");
    let (ok, text) = parcours(&["serve", "--listen", "localhost", "--db", &db_arg]);
    assert!(!ok, "{text}");
    assert!(text.contains("listen localhost: not a HOST:PORT"), "{text}");
}

/// Starts `parcours serve` with `args`, reads its log up to the start-up summary, stops
/// it; returns the summary line and the log before it.
fn start_up_summary(args: &[&str]) -> (String, String) {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_parcours"))
        .args(args)
        .arg("--db")
        .arg(dir.path().join("engine.db"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start parcours");
    let stderr = child.stderr.take().expect("stderr");
    let mut summary = None;
    let mut log = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("read");
        if line.contains("listening on http://") {
            summary = Some(line);
            break;
        }
        log.push_str(&line);
        log.push('\n');
    }
    let _ = child.kill();
    let _ = child.wait();
    let summary = summary.unwrap_or_else(|| panic!("no start-up summary in:\n{log}"));
    (summary, log)
}

#[test]
fn serve_listens_on_a_host_name_and_sums_up_its_start_in_one_line() {
    let (summary, log) = start_up_summary(&["serve", "--listen", "localhost:0", "--examples"]);
    assert!(
        summary.contains("listening on http://127.0.0.1:")
            || summary.contains("listening on http://[::1]:"),
        "{summary}"
    );
    for part in [
        "engine.db",
        "journeys",
        "plugins",
        "audiences",
        "open to local clients",
    ] {
        assert!(summary.contains(part), "{part} missing from: {summary}");
    }
    assert!(
        !log.contains("published=New"),
        "debug output in the log:\n{log}"
    );
}

#[test]
fn serve_logs_one_json_object_per_line_with_log_format_json() {
    let (summary, log) = start_up_summary(&[
        "--log-format",
        "json",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--examples",
    ]);
    assert!(!log.is_empty(), "no log before the summary");
    for line in log.lines().chain([summary.as_str()]) {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(record["level"].is_string(), "{line}");
        assert!(record["timestamp"].is_string(), "{line}");
        assert!(record["fields"]["message"].is_string(), "{line}");
    }
    let record: serde_json::Value = serde_json::from_str(&summary).expect("JSON");
    let message = record["fields"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("listening on http://127.0.0.1:"),
        "{message}"
    );
    assert_eq!(record["level"], "INFO", "{summary}");
}

#[test]
fn config_show_layers_a_file_the_environment_and_flags_and_serve_reads_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("parcours.toml");
    std::fs::write(
        &file,
        "listen = \"localhost:0\"\npartitions = 3\nmax_body_bytes = 1000\n\n[plugins]\nmax_memory_mb = 128\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_parcours"))
        .args(["config", "show", "--json", "--max-body-bytes", "3000"])
        .env("PARCOURS_CONFIG", &file)
        .env("PARCOURS_PARTITION_LANES", "5")
        .env("PARCOURS_MAX_BODY_BYTES", "2000")
        .output()
        .expect("run parcours");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let file_origin = format!("file {}", file.display());
    for (key, value, from) in [
        ("partitions", json!(3), file_origin.as_str()),
        ("plugins.max_memory_mb", json!(128), file_origin.as_str()),
        (
            "partition_lanes",
            json!(5),
            "environment PARCOURS_PARTITION_LANES",
        ),
        ("max_body_bytes", json!(3000), "flag --max-body-bytes"),
        ("store_readers", json!(4), "default"),
    ] {
        assert_eq!(shown[key]["value"], value, "{key}: {}", shown[key]);
        assert_eq!(shown[key]["from"], from, "{key}: {}", shown[key]);
    }
    // The same file runs the engine.
    let file_arg = file.to_str().expect("path");
    // (`listen` may name a host, as on the command line).
    let (summary, _) = start_up_summary(&["serve", "--config", file_arg]);
    assert!(
        summary.contains("listening on http://127.0.0.1:")
            || summary.contains("listening on http://[::1]:"),
        "{summary}"
    );

    // A key that is not a setting is refused at its line, naming the file.
    std::fs::write(&file, "partitions = 3\n[plugins]\nmax_memroy_mb = 9\n").expect("write");
    let (ok, text) = parcours(&["config", "show", "--config", file_arg]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("{}: TOML parse error at line 3", file.display())),
        "{text}"
    );
    assert!(text.contains("unknown field `max_memroy_mb`"), "{text}");
    let (ok, text) = parcours(&["serve", "--config", file_arg]);
    assert!(!ok && text.contains("max_memroy_mb"), "{text}");
}

/// The binary copied to an empty folder on another path (as `cargo install` or a
/// download would place it), with a cache and a home of its own, runs the README's
/// example and scaffolds a plugin project that builds without the source tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_binary_elsewhere_serves_the_examples_and_scaffolds_plugins_that_build() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (bin, work, home) = (
        dir.path().join("bin"),
        dir.path().join("work"),
        dir.path().join("home"),
    );
    for d in [&bin, &work, &home] {
        std::fs::create_dir(d).expect("mkdir");
    }
    let binary = bin.join("parcours");
    std::fs::copy(env!("CARGO_BIN_EXE_parcours"), &binary).expect("copy the binary");
    let command = |args: &[&str]| {
        let mut c = Command::new(&binary);
        c.args(args)
            .current_dir(&work)
            .env("HOME", &home)
            .env_remove("XDG_CACHE_HOME");
        c
    };
    let server = {
        let c = command(&["serve", "--examples", "--listen", "127.0.0.1:0"]);
        tokio::task::spawn_blocking(move || crate::restart::Server::spawn(c))
            .await
            .expect("join")
    };
    // The README's first example: a signup enters the welcome journey.
    let out = {
        let mut c = command(&[
            "event",
            "send",
            "--type",
            "signup",
            "--profile",
            "ada",
            "--data",
            r#"{"first_name": "Ada", "email": "ada@example.com"}"#,
        ]);
        c.env("PARCOURS_SERVER", &server.base);
        tokio::task::spawn_blocking(move || c.output())
            .await
            .expect("join")
            .expect("run")
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = crate::support::client();
    let instances = crate::support::eventually(|| {
        let (client, url) = (
            client.clone(),
            format!("{}/v1/profiles/ada/instances", server.base),
        );
        async move {
            let (_, body) = crate::restart::get(&client, url).await;
            let found = body["instances"]
                .as_array()
                .is_some_and(|a| a.iter().any(|i| i["journey_id"] == "welcome"));
            found.then_some(body)
        }
    })
    .await;
    let welcome = instances["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["journey_id"] == "welcome"))
        .expect("a welcome instance");
    let id = welcome["id"].as_str().expect("id");
    let (_, steps) =
        crate::restart::get(&client, format!("{}/v1/instances/{id}/steps", server.base)).await;
    assert!(
        steps["steps"].as_array().is_some_and(|s| s
            .iter()
            .any(|s| s["kind"] == "message" && s["status"] == "passed")),
        "the welcome journey sent its email: {steps}"
    );
    assert!(
        work.join("parcours.db").exists(),
        "the database is in the working folder"
    );
    server.kill();

    // `plugin new` from the copy: the project carries its SDK and WIT, and builds.
    let out = command(&["plugin", "new", "shout", "--kind", "action"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = work.join("shout");
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains(r#"path = "parcours-sdk""#)
            && !manifest.contains(env!("CARGO_MANIFEST_DIR")),
        "{manifest}"
    );
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guests");
    let out = {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.args(["build", "--release", "--target", "wasm32-wasip2"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&project);
        tokio::task::spawn_blocking(move || c.output())
            .await
            .expect("join")
            .expect("cargo build")
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `parcours` off the async workers (the engine under test answers on them).
async fn parcours_blocking(args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        parcours(&args)
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_take_any_spelling_of_the_server_and_say_why_they_cannot_reach_it() {
    let t = crate::support::TestEngine::start_with(|_| {}).await;
    let host_port = t.base.trim_start_matches("http://").to_string();
    // No scheme, or a trailing slash; `--server` before the subcommand or after it.
    let send = ["event", "send", "--type", "signup", "--profile", "ada"];
    for server in [format!("{host_port}/"), format!("{}/", t.base)] {
        let before = [&["--server", server.as_str()][..], &send[..]].concat();
        let after = [&send[..], &["--server", server.as_str()][..]].concat();
        for args in [before, after] {
            let (ok, text) = parcours_blocking(&args).await;
            assert!(ok, "{args:?}: {text}");
            assert!(text.contains("\"accepted\""), "{args:?}: {text}");
        }
    }

    // Nothing listens on the port.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let (ok, text) =
        parcours_blocking(&[&send[..], &["--server", closed.as_str()][..]].concat()).await;
    assert!(!ok);
    assert!(
        text.contains(&format!(
            "cannot reach the engine at {closed}: connection refused"
        )),
        "{text}"
    );

    // Another HTTP server on the port.
    let other = crate::support::serve(
        axum::Router::new()
            .fallback(|| async { (axum::http::StatusCode::NOT_IMPLEMENTED, "<html>nope</html>") }),
    )
    .await;
    let (ok, text) = parcours_blocking(&["journey", "stop", "welcome", "--server", &other]).await;
    assert!(!ok);
    assert!(
        text.contains(&format!(
            "{other} answered POST /v1/journeys/welcome/stop with 501 Not Implemented, which is not a Parcours engine's answer"
        )),
        "{text}"
    );

    // A scheme the client does not speak, and a missing file, are named.
    let (ok, text) = parcours(&[
        "event",
        "send",
        "--type",
        "t",
        "--profile",
        "p",
        "--server",
        "ftp://host",
    ]);
    assert!(!ok);
    assert!(
        text.contains("--server \"ftp://host\": the scheme must be http or https"),
        "{text}"
    );
    let (ok, text) = parcours(&["plugin", "inspect", "no/such/plugin.toml"]);
    assert!(!ok);
    assert!(text.contains("no/such/plugin.toml"), "{text}");
}

/// A TLS-terminating proxy in front of an engine (as docs/security.md advises): the
/// client commands reach it over `https://` when its certificate chains to `--ca-cert`,
/// and name the certificate problem when it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_reach_an_engine_over_https_with_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio_rustls::rustls;

    let t = crate::support::TestEngine::start_with(|_| {}).await;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write CA");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let engine = t.base.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, engine) = (acceptor.clone(), engine.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(&engine).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });

    let server = format!("https://localhost:{port}");
    let ca_arg = ca_file.to_str().expect("path").to_string();
    let send = ["event", "send", "--type", "signup", "--profile", "tia"];
    let mut args = vec!["--server", server.as_str(), "--ca-cert", ca_arg.as_str()];
    args.extend(send);
    let (ok, text) = parcours_blocking(&args).await;
    assert!(ok, "{text}");
    assert!(text.contains("\"accepted\": 1"), "{text}");
    t.instances("tia").await;

    // Without the CA, the certificate is refused and the message says what to do.
    let mut args = vec!["--server", server.as_str()];
    args.extend(send);
    let (ok, text) = parcours_blocking(&args).await;
    assert!(!ok, "{text}");
    assert!(text.contains("TLS certificate was refused"), "{text}");
    assert!(text.contains("--ca-cert"), "{text}");
}

/// The read commands of a running engine's resources, each with `--json` (one line a
/// program reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_show_each_resource_as_json() {
    let t = crate::support::TestEngine::start().await;
    t.publish_examples().await;
    let server = t.base.clone();
    let json = |args: Vec<String>| {
        let server = server.clone();
        async move {
            let mut all = vec!["--server".to_string(), server];
            all.extend(args);
            all.push("--json".into());
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let (ok, text) = parcours_blocking(&refs).await;
            assert!(ok, "{all:?}: {text}");
            let line = text.lines().next().unwrap_or_default().to_string();
            serde_json::from_str::<serde_json::Value>(&line)
                .unwrap_or_else(|e| panic!("{all:?}: not one line of JSON ({e}): {text}"))
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Whether a JSON list holds an item whose `field` is `value`.
    let has = |list: &serde_json::Value, field: &str, value: &str| {
        list.as_array()
            .is_some_and(|items| items.iter().any(|i| i[field] == value))
    };

    let sent = json(args(&[
        "event",
        "send",
        "--type",
        "signup",
        "--profile",
        "ada",
    ]))
    .await;
    let event_id = sent["events"][0]["id"]
        .as_str()
        .expect("event id")
        .to_string();
    let instance = t.instance_in("ada", "welcome", "waiting").await;
    let instance_id = instance["id"].as_str().expect("id").to_string();

    let journeys = json(args(&["journey", "list"])).await;
    assert!(has(&journeys, "id", "welcome"), "{journeys}");
    assert_eq!(
        json(args(&["journey", "get", "welcome"])).await["id"],
        "welcome"
    );
    let versions = json(args(&["journey", "versions", "welcome"])).await;
    assert_eq!(versions[0]["version"], 1, "{versions}");
    assert!(
        json(args(&["journey", "diff", "welcome", "--from", "1"]))
            .await
            .is_object()
    );
    assert_eq!(json(args(&["profile", "get", "ada"])).await["id"], "ada");
    let found = json(args(&[
        "profile",
        "list",
        "--filter",
        r#"profile.id == "ada""#,
    ]))
    .await;
    assert_eq!(found.as_array().expect("array").len(), 1, "{found}");
    assert_eq!(
        json(args(&["event", "get", &event_id])).await["id"],
        event_id.as_str()
    );
    assert_eq!(
        json(args(&["instance", "get", &instance_id])).await["journey_id"],
        "welcome"
    );
    let steps = json(args(&["instance", "steps", &instance_id])).await;
    assert_eq!(steps[0]["node"], "entry", "{steps}");
    let audiences = json(args(&["audience", "list"])).await;
    assert!(has(&audiences, "name", "gold"), "{audiences}");
    assert_eq!(
        json(args(&["audience", "get", "gold"])).await["name"],
        "gold"
    );
    // A business event starts a run of the back-in-stock journey.
    let (status, body) = t
        .post_json(
            "/v1/business-events",
            &serde_json::json!({"type": "stock_back", "data": {"sku": "SKU-9"}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let runs = crate::support::eventually(|| {
        let list = json(args(&["run", "list", "back_in_stock"]));
        async move {
            let list = list.await;
            list.as_array()
                .is_some_and(|r| !r.is_empty())
                .then_some(list)
        }
    })
    .await;
    let run_id = runs[0]["id"].as_str().expect("run id").to_string();
    assert_eq!(
        json(args(&["run", "get", &run_id])).await["id"],
        run_id.as_str()
    );
    let plugins = json(args(&["plugin", "list"])).await;
    assert!(has(&plugins, "name", "webhook"), "{plugins}");
    assert_eq!(
        json(args(&["profile", "delete", "ada"])).await["deleted"],
        true
    );
    let (ok, text) = parcours_blocking(&["--server", &t.base, "profile", "get", "ada"]).await;
    assert!(!ok && text.contains("404"), "{text}");
}

/// Every other command prints one line of JSON with `--json` (the read commands, `config
/// show`, `backup`, `simulate` and `plugin test` have theirs where they are tested).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_commands_print_one_line_of_json() {
    let t = crate::support::TestEngine::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name).to_str().expect("path").to_string();
    let run = |args: Vec<String>, expect_ok: bool| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = parcours_blocking(&refs).await;
        assert_eq!(ok, expect_ok, "{args:?}: {text}");
        let line = text
            .lines()
            .find(|l| l.starts_with('{') || l.starts_with('['))
            .unwrap_or_else(|| panic!("{args:?}: no JSON line in {text}"));
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {line}"))
    };
    let remote = |a: &[&str]| {
        let mut v = vec!["--server".to_string(), t.base.clone()];
        v.extend(a.iter().map(|s| s.to_string()));
        v.push("--json".into());
        v
    };
    let local = |a: &[&str]| {
        let mut v: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        v.push("--json".into());
        v
    };

    // Offline: validate (a good and a bad file), plugin new and inspect, tokens, config.
    std::fs::write(
        path("good.yaml"),
        "entry: {type: event, event: go}\nstart: done\nnodes:\n  done: {type: end}\n",
    )
    .expect("write");
    std::fs::write(
        path("bad.yaml"),
        "entry: {type: event, event: go}\nstart: nowhere\nnodes:\n  done: {type: end}\n",
    )
    .expect("write");
    let v = run(
        local(&["journey", "validate", &path("good.yaml"), &path("bad.yaml")]),
        false,
    )
    .await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["files"][0]["ok"], true, "{v}");
    assert_eq!(v["files"][1]["problems"][0]["path"], "start", "{v}");
    let made = run(
        local(&["plugin", "new", "echoer", "--dir", &path("")]),
        true,
    )
    .await;
    assert_eq!(made["name"], "echoer");
    // A plugin's folder stands for its manifest.
    let manifest = format!("{}/webhook", env!("PARCOURS_BUILTIN_PLUGINS_DIR"));
    assert_eq!(
        run(local(&["plugin", "inspect", &manifest]), true).await["name"],
        "webhook"
    );
    let tokens = path("tokens.json");
    let created = run(
        local(&[
            "token", "create", "ci", "--scope", "read", "--tokens", &tokens,
        ]),
        true,
    )
    .await;
    assert!(
        created["token"].as_str().is_some_and(|t| !t.is_empty()),
        "{created}"
    );
    assert_eq!(
        run(local(&["token", "list", "--tokens", &tokens]), true).await[0]["name"],
        "ci"
    );
    assert_eq!(
        run(local(&["token", "revoke", "ci", "--tokens", &tokens]), true).await["revoked"],
        true
    );
    let schema = run(local(&["config", "reference"]), true).await;
    assert!(schema["properties"]["partitions"].is_object(), "{schema}");

    // Against the engine: publish, lifecycle, report, replay, import.
    let published = run(remote(&["journey", "publish", &path("good.yaml")]), true).await;
    assert_eq!(
        (published["id"].as_str(), &published["version"]),
        (Some("good"), &serde_json::json!(1))
    );
    let bad = run(remote(&["journey", "publish", &path("bad.yaml")]), false).await;
    assert_eq!(bad["published"], false, "{bad}");
    assert!(run(remote(&["journey", "pause", "good"]), true).await["pause"].is_object());
    run(remote(&["journey", "resume", "good"]), true).await;
    assert!(
        run(remote(&["journey", "report", "good"]), true)
            .await
            .is_object()
    );
    let replayed = run(
        remote(&[
            "journey",
            "replay",
            "good",
            "--from",
            "2026-03-01T00:00:00Z",
            "--to",
            "2026-03-03T00:00:00Z",
        ]),
        true,
    )
    .await;
    assert!(replayed["moved"].is_array(), "{replayed}");
    run(remote(&["journey", "close", "good"]), true).await;
    run(remote(&["journey", "stop", "good"]), true).await;
    std::fs::write(path("people.csv"), "id,tier\nu1,gold\nu2,free\n").expect("write");
    let imported = run(remote(&["profile", "import", &path("people.csv")]), true).await;
    assert_eq!(imported["imported"], 2, "{imported}");

    // Restore a backup of a database no engine uses, and a short bench.
    let db = path("copy.db");
    let (ok, text) =
        parcours_blocking(&["backup", &db, "--db", t.db_path().to_str().expect("path")]).await;
    assert!(ok, "{text}");
    let restored = run(local(&["restore", &db, "--db", &path("restored.db")]), true).await;
    assert!(
        restored["bytes"].as_u64().is_some_and(|b| b > 0),
        "{restored}"
    );
    let bench = run(
        local(&[
            "bench",
            "--requests",
            "200",
            "--connections",
            "4",
            "--profiles",
            "20",
        ]),
        true,
    )
    .await;
    assert!(bench["accepted_over_floor"].is_number(), "{bench}");
    // Each event is at least its own row in the store.
    assert!(
        bench["engine"]["rows_per_event"]
            .as_f64()
            .is_some_and(|r| r >= 1.0),
        "{bench}"
    );
}

/// `plugin install` uploads a component of any size from its folder (no command-line
/// length limit, as with curl and base64), `journey test` starts and ends test mode, `plugin remove`
/// removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_install_uploads_a_component_and_journey_test_toggles_test_mode() {
    let t = crate::support::TestEngine::start_with(|_| {}).await;
    // From the plugin's folder (the guides install by manifest).
    let manifest = format!("{}/webhook", env!("PARCOURS_BUILTIN_PLUGINS_DIR"));
    let (ok, text) = parcours_blocking(&[
        "--server", &t.base, "plugin", "install", &manifest, "--json",
    ])
    .await;
    assert!(ok, "{text}");
    let installed: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON");
    assert_eq!(installed["name"], "webhook", "{installed}");
    let (_, listed) = t.get("/v1/plugins/webhook").await;
    assert_eq!(listed["versions"][0]["name"], "webhook", "{listed}");

    t.publish(
        "trial",
        "entry: {type: event, event: go}\nstart: done\nnodes:\n  done: {type: end}\n",
    )
    .await;
    let (ok, text) = parcours_blocking(&[
        "--server", &t.base, "journey", "test", "trial", "--wait", "PT5S", "--json",
    ])
    .await;
    assert!(ok, "{text}");
    let started: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON");
    assert!(started["test"].is_object(), "{started}");
    let (_, journey) = t.get("/v1/journeys/trial").await;
    assert!(journey["test"].is_object(), "{journey}");
    let (ok, text) =
        parcours_blocking(&["--server", &t.base, "journey", "test", "trial", "--stop"]).await;
    assert!(ok && text.contains("test mode ended"), "{text}");
    let (_, journey) = t.get("/v1/journeys/trial").await;
    assert!(journey["test"].is_null(), "{journey}");

    // No journey calls it: it can be removed.
    let (ok, text) =
        parcours_blocking(&["--server", &t.base, "plugin", "remove", "webhook", "--json"]).await;
    assert!(ok, "{text}");
    let removed: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON");
    assert_eq!(
        removed["removed"][0],
        format!("webhook@{}", installed["version"].as_str().unwrap())
    );
    let (status, _) = t.get("/v1/plugins/webhook").await;
    assert_eq!(status, 404);
    let (ok, text) = parcours_blocking(&["--server", &t.base, "plugin", "remove", "webhook"]).await;
    assert!(!ok && text.contains("not installed"), "{text}");
}

/// `plugin inspect`, `plugin test` and `journey validate` keep compiled components in
/// the user's cache by default: the second run of the same component loads it.
#[test]
fn commands_that_load_plugins_cache_compiled_components_in_the_users_cache() {
    let home = tempfile::tempdir().expect("temp dir");
    let manifest = format!("{}/std/plugin.toml", env!("PARCOURS_BUILTIN_PLUGINS_DIR"));
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_parcours"))
            .args(["plugin", "inspect", &manifest, "--json"])
            .env("XDG_CACHE_HOME", home.path())
            .env_remove("PARCOURS_PLUGIN_CACHE")
            .output()
            .expect("run parcours");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run();
    let compiled: Vec<_> = walk(&home.path().join("parcours"))
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "compiled"))
        .collect();
    assert!(
        !compiled.is_empty(),
        "nothing cached under {}",
        home.path().display()
    );
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let before: Vec<_> = compiled.iter().map(|p| modified(p)).collect();
    run();
    let after: Vec<_> = compiled.iter().map(|p| modified(p)).collect();
    assert_eq!(before, after, "the second run compiled again");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// `plugin test` and `plugin inspect` refuse a manifest the engine would refuse, with the
/// reason located in the manifest.
#[test]
fn plugin_test_gives_the_reason_for_a_refused_manifest() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        format!(
            "{}/std/parcours_plugin_std.wasm",
            env!("PARCOURS_BUILTIN_PLUGINS_DIR")
        ),
        dir.path().join("std.wasm"),
    )
    .expect("copy");
    let manifest = dir.path().join("plugin.toml");
    std::fs::write(
        &manifest,
        "name = \"std\"\nversion = \"0.1.0\"\nkind = \"functions\"\ncomponent = \"std.wasm\"\n[limits]\nmemory_mb = 2048\n",
    )
    .expect("write");
    let input = dir.path().join("in.json");
    std::fs::write(&input, r#"{"function": "sha256", "args": ["a"]}"#).expect("write");
    let manifest = manifest.to_str().expect("path");
    for args in [
        vec![
            "plugin",
            "test",
            manifest,
            "--input",
            input.to_str().expect("path"),
        ],
        vec!["plugin", "inspect", manifest],
    ] {
        let (ok, text) = parcours(&args);
        assert!(!ok, "{text}");
        assert!(
            text.contains(&format!(
                "{manifest}: invalid manifest: limits.memory_mb: 2048 MiB is more than this engine allows (1024 MiB, plugins.max_memory_mb)"
            )),
            "{text}"
        );
    }
}

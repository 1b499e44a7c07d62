//! Plugins written in Python (componentize-py) and JavaScript (componentize-js), end to
//! end: a journey with the Python SMS action and the Python CRM connector, another with
//! the JavaScript Slack action and a JavaScript function in a condition; the sandbox's
//! rules (deadline, memory cap, denied host) for both languages; warm-instance reuse.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestEngine, plugin_folder, with_plugins};

/// A request the local server received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    idempotency_key: Option<String>,
    body: Value,
}

type Seen = Arc<Mutex<Vec<Received>>>;

/// A local stand-in for a CRM (`GET /api/customers/{id}`), an SMS provider
/// (`POST /v1/messages`) and a Slack webhook (`POST /slack`).
async fn third_parties() -> (String, Seen) {
    let seen: Seen = Arc::default();
    async fn customer(Path(id): Path<String>) -> Result<axum::Json<Value>, StatusCode> {
        match id.as_str() {
            "ada" => Ok(axum::Json(
                json!({"id": "ada", "tier": "gold", "phone": "+33612345678"}),
            )),
            "bob" => Ok(axum::Json(
                json!({"id": "bob", "tier": "silver", "phone": "+33698765432"}),
            )),
            _ => Err(StatusCode::NOT_FOUND),
        }
    }
    async fn record(
        State(seen): State<Seen>,
        Path(path): Path<String>,
        headers: HeaderMap,
        body: String,
    ) -> axum::Json<Value> {
        let mut seen = seen.lock().unwrap();
        seen.push(Received {
            path: format!("/{path}"),
            idempotency_key: headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            body: serde_json::from_str(&body).unwrap_or(Value::Null),
        });
        axum::Json(json!({"id": format!("msg-{}", seen.len())}))
    }
    let app = axum::Router::new()
        .route("/api/customers/{id}", axum::routing::get(customer))
        .route("/{*path}", axum::routing::post(record))
        .with_state(seen.clone());
    let base = crate::support::serve(app).await;
    let addr = base.trim_start_matches("http://").to_string();
    (addr, seen)
}

/// The manifest of a built example, allowed to call only the local server, whose URL
/// setting points at `path` there.
fn local_manifest(name: &str, kind: &str, server: &str, setting: &str, path: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"0.1.0\"\nkind = \"{kind}\"\n[capabilities]\nallowed_hosts = [\"{server}\"]\n[config]\n{setting} = \"http://{server}{path}\"\n"
    )
}

fn sms_manifest(server: &str) -> String {
    local_manifest("sms", "action", server, "api_url", "/v1/messages")
}

fn crm_manifest(server: &str) -> String {
    local_manifest("crm", "data-source", server, "base_url", "/api")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_runs_the_python_action_with_the_python_connector() {
    let (server, seen) = third_parties().await;
    let plugins = plugin_folder(&[
        ("sms", sms_manifest(&server)),
        ("crm", crm_manifest(&server)),
    ]);
    let dir = plugins.path().to_path_buf();
    let t = TestEngine::start_with(|s| {
        with_plugins(s);
        s.plugin_dirs.push(dir);
    })
    .await;
    let def = r#"
entry: {type: event, event: upgraded}
start: check
nodes:
  check:
    type: condition
    branches:
      - when: 'lookup("crm", profile.id)?.tier == "gold"'
        next: text
    otherwise: skip
  text:
    type: action
    action: sms
    params:
      to: 'lookup("crm", profile.id).phone'
      text: '"Welcome to gold, " + event.data.name + "!"'
    next: done
  done: {type: end}
  skip: {type: end}
properties: {reentrance: {mode: always}}
"#;
    t.publish("gold_sms", def).await;
    for (profile, name) in [("ada", "Ada"), ("bob", "Bob"), ("nobody", "No")] {
        t.event("upgraded", profile, json!({"name": name})).await;
    }
    let ada = t.instance_in("ada", "gold_sms", "completed").await;
    assert_eq!(ada["node"], "done", "{ada}");
    assert_eq!(
        ada["data"]["actions"]["text"]["message_id"], "msg-1",
        "{ada}"
    );
    for other in ["bob", "nobody"] {
        let i = t.instance_in(other, "gold_sms", "completed").await;
        assert_eq!(i["node"], "skip", "{other}: {i}");
    }
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "only ada is gold: {sent:?}");
    assert_eq!(sent[0].path, "/v1/messages");
    assert_eq!(
        sent[0].body,
        json!({"to": "+33612345678", "text": "Welcome to gold, Ada!", "reference": ada["id"]})
    );
    let key = sent[0].idempotency_key.clone().expect("idempotency key");
    assert!(key.starts_with(ada["id"].as_str().unwrap()), "{key}");
    // The step events name both plugins' calls.
    let steps = t.steps(ada["id"].as_str().unwrap()).await;
    let check = steps
        .iter()
        .find(|s| s["node"] == "check")
        .expect("check step");
    assert!(check.to_string().contains("crm@0.1.0"), "{check}");
    let text = steps
        .iter()
        .find(|s| s["node"] == "text")
        .expect("text step");
    assert_eq!(text["status"], "passed", "{text}");
}

const SCORING: &str = "name = \"scoring\"\nversion = \"0.1.0\"\nkind = \"functions\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_runs_the_js_action_after_a_js_function_in_a_condition() {
    let (server, seen) = third_parties().await;
    let plugins = plugin_folder(&[
        (
            "slack",
            local_manifest("slack", "action", &server, "webhook_url", "/slack"),
        ),
        ("scoring", SCORING.to_string()),
    ]);
    let dir = plugins.path().to_path_buf();
    let t = TestEngine::start_with(|s| {
        with_plugins(s);
        s.plugin_dirs.push(dir);
    })
    .await;
    let def = r##"
entry: {type: event, event: visited}
start: score
nodes:
  score:
    type: condition
    branches:
      - when: 'scoring::lead_score(profile) >= 70'
        next: notify
    otherwise: cold
  notify:
    type: action
    action: slack
    params:
      text: '"Hot lead: " + profile.id + " (" + scoring::tier_for(event.data.spend) + ")"'
      channel: '"#sales"'
    next: done
  done: {type: end}
  cold: {type: end}
properties: {reentrance: {mode: always}}
"##;
    t.publish("hot_leads", def).await;
    for (profile, attributes) in [
        (
            "ada",
            json!({"email": "ada@example.com", "country": "FR", "orders": 3}),
        ),
        ("bob", json!({"orders": 12})),
    ] {
        let body = json!({"attributes": attributes}).to_string();
        let (status, _) = t
            .send(
                reqwest::Method::PUT,
                &format!("/v1/profiles/{profile}"),
                Some(body.as_bytes()),
                "application/json",
            )
            .await;
        assert_eq!(status, 200);
    }
    t.event("visited", "ada", json!({"spend": 2500})).await;
    t.event("visited", "bob", json!({"spend": 10})).await;
    let ada = t.instance_in("ada", "hot_leads", "completed").await;
    assert_eq!(ada["node"], "done", "{ada}");
    assert_eq!(ada["data"]["actions"]["notify"]["status"], 200, "{ada}");
    let bob = t.instance_in("bob", "hot_leads", "completed").await;
    assert_eq!(bob["node"], "cold", "{bob}");
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].path, "/slack");
    assert_eq!(
        sent[0].body,
        json!({"text": "Hot lead: ada (gold)", "channel": "#sales"})
    );
    assert!(
        sent[0]
            .idempotency_key
            .as_deref()
            .is_some_and(|k| k.starts_with(ada["id"].as_str().unwrap())),
        "{sent:?}"
    );
}

fn hostile_manifest(name: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"0.1.0\"\nkind = \"action\"\n[limits]\nmemory_mb = 96\ntimeout_ms = 1000\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_js_guests_obey_the_same_sandbox_rules() {
    let plugins = plugin_folder(&[
        ("python-hostile", hostile_manifest("py-hostile")),
        ("js-hostile", hostile_manifest("js-hostile")),
    ]);
    let dir = plugins.path().to_path_buf();
    let t = TestEngine::start_with(|s| {
        with_plugins(s);
        s.plugin_dirs.push(dir);
    })
    .await;
    for plugin in ["py-hostile", "js-hostile"] {
        let def = format!(
            "entry: {{type: event, event: misbehave}}\nstart: act\nnodes:\n  act: {{type: action, action: {plugin}, params: {{mode: event.data.mode}}, next: fine}}\n  fine: {{type: end}}\nproperties: {{reentrance: {{mode: always}}}}\n"
        );
        let journey = plugin.replace('-', "_");
        t.publish(&journey, &def).await;
        for (mode, code) in [
            ("loop", "PLUGIN_TIMEOUT"),
            ("memory", "PLUGIN_MEMORY_LIMIT"),
            ("http", "PLUGIN_HTTP_DENIED"),
        ] {
            let profile = format!("{plugin}-{mode}");
            t.event("misbehave", &profile, json!({"mode": mode})).await;
            let failed = t.instance_in(&profile, &journey, "failed").await;
            assert_eq!(failed["end_reason"], code, "{plugin} {mode}: {failed}");
            if mode == "memory" {
                // One clean message, whatever the guest's runtime printed on its way
                // down (componentize-js: `invalid variant tag value ...`).
                let steps = t.steps(failed["id"].as_str().unwrap()).await;
                let step = steps.iter().find(|s| s["node"] == "act").expect("act step");
                assert_eq!(
                    step["message"],
                    "the plugin needed more than 96 MiB of memory (limits.memory_mb)",
                    "{plugin}: {step}"
                );
            }
            if mode == "http" {
                let steps = t.steps(failed["id"].as_str().unwrap()).await;
                let step = steps.iter().find(|s| s["node"] == "act").expect("act step");
                assert!(
                    step["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("denied.example.net")),
                    "{step}"
                );
            }
            // The same plugin still serves a well-behaved call afterwards.
            let friend = format!("{plugin}-{mode}-ok");
            t.event("misbehave", &friend, json!({"mode": "ok"})).await;
            let ok = t.instance_in(&friend, &journey, "completed").await;
            assert_eq!(ok["data"]["actions"]["act"]["ok"], true, "{ok}");
        }
    }
}

/// Calls `action` through the engine's action registry, as an action node does.
async fn call(
    actions: &parcours_engine::actions::ActionRegistry,
    action: &str,
    mode: &str,
) -> Value {
    let entry = actions.resolve(action).expect("installed");
    let call = parcours_engine::actions::ActionCall {
        action: action.into(),
        journey_id: "j".into(),
        version: 1,
        node_id: "n".into(),
        instance_id: "i".into(),
        profile_id: "p".into(),
        attempt: 1,
        idempotency_key: "k".into(),
        deadline: jiff::Timestamp::now() + jiff::SignedDuration::from_secs(5),
        params: json!({"mode": mode}),
    };
    match entry.executor.call(&call).await {
        Ok(v) => v,
        Err(e) => json!({"error": format!("{e:?}")}),
    }
}

/// The action registry of a new plugin host that installed the plugins of `dir`.
async fn installed(
    settings: &parcours_engine::settings::PluginSettings,
    dir: &std::path::Path,
) -> parcours_engine::actions::ActionRegistry {
    use parcours_engine::plugins::{PluginHost, PluginRegistry};
    let host = Arc::new(PluginHost::new(settings).expect("host"));
    let actions = parcours_engine::actions::ActionRegistry::default();
    let registry = PluginRegistry::new(host, actions.clone());
    registry.load_dir(dir).await.expect("load");
    actions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_instances_are_reused_only_when_the_manifest_opts_in() {
    let reuse = |name: &str| {
        format!(
            "{}[instances]\nreuse = true\nmax_calls = 3\n",
            hostile_manifest(name)
        )
    };
    for (folder, name) in [
        ("js-hostile", "js-hostile"),
        ("python-hostile", "py-hostile"),
    ] {
        let fresh = plugin_folder(&[(folder, hostile_manifest(name))]);
        let warm = plugin_folder(&[(folder, reuse(name))]);
        let settings = parcours_engine::settings::PluginSettings {
            cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
            ..Default::default()
        };
        for (dir, expected) in [(&fresh, [1, 1, 1, 1, 1]), (&warm, [1, 2, 3, 1, 2])] {
            let actions = installed(&settings, dir.path()).await;
            // Module state survives between calls only on a warm instance, which is
            // replaced after max_calls (3) calls.
            let mut counts = Vec::new();
            for _ in 0..5 {
                counts.push(
                    call(&actions, name, "count").await["calls"]
                        .as_i64()
                        .unwrap_or(-1),
                );
            }
            assert_eq!(counts, expected, "{name} in {:?}", dir.path());
        }
        // A trap discards the warm instance: the next call starts afresh.
        let actions = installed(&settings, warm.path()).await;
        assert_eq!(call(&actions, name, "count").await["calls"], 1);
        assert_eq!(call(&actions, name, "count").await["calls"], 2);
        let looped = call(&actions, name, "loop").await;
        assert!(
            looped["error"]
                .as_str()
                .unwrap_or("")
                .contains("PLUGIN_TIMEOUT"),
            "{looped}"
        );
        assert_eq!(
            call(&actions, name, "count").await["calls"],
            1,
            "{name} after a trap"
        );
    }
}

/// Runs `parcours plugin test ...` with the test run's cache of compiled components:
/// whether it succeeded, its standard output, and both outputs.
fn plugin_test(args: &[&str]) -> (bool, String, String) {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parcours"))
        .args(["plugin", "test"])
        .args(args)
        .env("PARCOURS_PLUGIN_CACHE", cache)
        .output()
        .expect("run parcours");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), stdout, all)
}

#[test]
fn plugin_test_runs_one_call_with_stubbed_http_and_reports_logs_and_usage() {
    let built = crate::support::polyglot_plugins();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.json");
    std::fs::write(
        &input,
        r#"{"params": {"to": "+33612345678", "text": "Hello"}, "context": {"profile_id": "ada"}}"#,
    )
    .unwrap();
    let stubs = dir.path().join("stubs.json");
    std::fs::write(
        &stubs,
        r#"[{"method": "POST", "url": "https://api.sms.example.com/v1/messages", "status": 201, "body": {"id": "SM42"}}]"#,
    )
    .unwrap();
    let manifest = built.join("sms/plugin.toml");
    let manifest = manifest.to_str().unwrap();
    let (ok, _, out) = plugin_test_stubbed(manifest, &input, &stubs, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("plugin: sms@0.1.0 (action)"), "{out}");
    assert!(out.contains("\"message_id\": \"SM42\""), "{out}");
    assert!(out.contains("[info] sms sent"), "{out}");
    assert!(
        out.contains("POST https://api.sms.example.com/v1/messages -> 201"),
        "{out}"
    );
    // What it sent: the headers (the idempotency key) and the body.
    assert!(
        out.contains("    idempotency-key: 00000000-0000-7000-8000-000000000000:node"),
        "{out}"
    );
    assert!(
        out.contains("    body: {") && out.contains("+33612345678"),
        "{out}"
    );
    assert!(
        out.contains("KiB peak memory") && out.contains("fuel"),
        "{out}"
    );

    // As JSON: what the plugin sent, and its resource use.
    let (ok, json, out) = plugin_test_stubbed(manifest, &input, &stubs, &["--json"]);
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&json).expect("report");
    assert_eq!(report["outcome"]["ok"]["message_id"], "SM42", "{report}");
    let sent = &report["http"][0]["request_body"];
    assert_eq!(sent["to"], "+33612345678", "{report}");
    assert_eq!(sent["reference"], "00000000-0000-7000-8000-000000000000");
    assert!(
        report["usage"]["fuel"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    assert!(report["usage"]["memory_peak_bytes"].as_u64().unwrap_or(0) > 1 << 20);

    assert_eq!(
        report["http"][0]["request_headers"]["idempotency-key"],
        "00000000-0000-7000-8000-000000000000:node",
        "{report}"
    );

    // Parameters outside the manifest's params_schema: refused as the engine would,
    // with the place and the engine's code, and the plugin is not called.
    let bad = write(
        &dir,
        "bad.json",
        r#"{"params": {"to": 33612345678, "text": "Hi"}}"#,
    );
    let (ok, json, out) =
        plugin_test_stubbed(manifest, std::path::Path::new(&bad), &stubs, &["--json"]);
    assert!(!ok, "{out}");
    let report: Value = serde_json::from_str(&json).expect("report");
    assert_eq!(
        report["outcome"]["refused"]["code"], "ACTION_INVALID_INPUT",
        "{report}"
    );
    let message = report["outcome"]["refused"]["message"]
        .as_str()
        .unwrap_or("");
    assert!(
        message.starts_with("params do not match sms@0.1.0's schema: /to: "),
        "{message}"
    );
    assert!(
        report["http"].as_array().is_some_and(Vec::is_empty),
        "{report}"
    );

    // No stub for the request: the plugin's own error, and a failing exit status.
    std::fs::write(&stubs, "[]").unwrap();
    let (ok, _, out) = plugin_test_stubbed(manifest, &input, &stubs, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("no stub"), "{out}");
    // A denied host is reported as the engine would.
    let (ok, _, out) = plugin_test(&[
        built.join("python-hostile/plugin.toml").to_str().unwrap(),
        "--input",
        write(&dir, "http.json", r#"{"params": {"mode": "http"}}"#).as_str(),
    ]);
    assert!(!ok && out.contains("PLUGIN_HTTP_DENIED"), "{out}");
    // What a guest prints shows as log lines.
    for guest in ["python-hostile", "js-hostile"] {
        let (ok, _, out) = plugin_test(&[
            built.join(guest).join("plugin.toml").to_str().unwrap(),
            "--input",
            write(&dir, "print.json", r#"{"params": {"mode": "print"}}"#).as_str(),
        ]);
        assert!(
            ok && out.contains("[stdout] printed to stdout"),
            "{guest}: {out}"
        );
    }
}

/// `parcours plugin test MANIFEST --input INPUT --stubs STUBS [extra...]`.
fn plugin_test_stubbed(
    manifest: &str,
    input: &std::path::Path,
    stubs: &std::path::Path,
    extra: &[&str],
) -> (bool, String, String) {
    let mut args = vec![
        manifest,
        "--input",
        input.to_str().unwrap(),
        "--stubs",
        stubs.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    plugin_test(&args)
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_test_records_exchanges_that_replay_as_stubs() {
    let (server, _seen) = third_parties().await;
    let folder = plugin_folder(&[("crm", crm_manifest(&server))]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = folder.path().join("crm/plugin.toml");
    let input = write(&dir, "in.json", r#"{"key": "ada"}"#);
    let recorded = dir.path().join("recorded.json");
    let args = [
        manifest.to_str().unwrap().to_string(),
        "--input".into(),
        input.clone(),
        "--json".into(),
    ];
    let mut record = args.to_vec();
    // The third parties listen on loopback, which plugins reach only when allowed.
    record.extend(["--allow-network".into(), "127.0.0.0/8".into()]);
    record.extend(["--record".into(), recorded.to_string_lossy().into_owned()]);
    let (ok, _, out) = tokio::task::spawn_blocking(move || {
        plugin_test(&record.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    let exchanges: Value =
        serde_json::from_str(&std::fs::read_to_string(&recorded).unwrap()).unwrap();
    assert_eq!(exchanges[0]["method"], "GET", "{exchanges}");
    assert_eq!(exchanges[0]["status"], 200, "{exchanges}");
    assert_eq!(exchanges[0]["body"]["tier"], "gold", "{exchanges}");

    // Replayed with the server gone from the call: the same answer.
    let mut replay = args.to_vec();
    replay.extend(["--stubs".into(), recorded.to_string_lossy().into_owned()]);
    let (ok, json, out) = tokio::task::spawn_blocking(move || {
        plugin_test(&replay.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        report["outcome"]["ok"]["value"]["phone"], "+33612345678",
        "{report}"
    );
}

#[test]
fn the_sdk_test_helper_calls_built_plugins_in_any_language() {
    use parcours_sdk::testing::PluginTest;
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    // The Rust webhook, with its request stubbed.
    let webhook = std::path::Path::new(env!("PARCOURS_BUILTIN_PLUGINS_DIR")).join("webhook");
    let manifest = std::fs::read_dir(&webhook)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "toml"))
        .expect("webhook manifest");
    let report = PluginTest::new(&manifest)
        .cache_dir(&cache)
        .stub(
            "POST",
            "https://hooks.example.com/in",
            200,
            json!({"ok": true}),
        )
        .invoke(json!({"url": "https://hooks.example.com/in", "body": {"a": 1}}))
        .unwrap();
    assert_eq!(report.ok().expect("ok")["status"], 200, "{report:?}");
    assert_eq!(report.http[0].request_body, Some(json!({"a": 1})));
    // The JavaScript functions plugin.
    let scoring = crate::support::polyglot_plugins().join("scoring/plugin.toml");
    let report = PluginTest::new(&scoring)
        .cache_dir(&cache)
        .call("tier_for", vec![json!(2500)])
        .unwrap();
    assert_eq!(report.ok(), Some(&json!("gold")), "{report:?}");
    let report = PluginTest::new(&scoring)
        .cache_dir(&cache)
        .call("tier_for", vec![json!("lots")])
        .unwrap();
    assert_eq!(
        report.outcome["error"]["kind"], "invalid-input",
        "{report:?}"
    );
}

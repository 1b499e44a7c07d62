//! The security review's findings, each through the HTTP API: secrets only the plugin the
//! operator approved reads; slow, idle and oversized clients are cut off; deep YAML is
//! refused before it is parsed; plugins do not reach internal addresses by default.
//! (Tokens that apply without a restart are in `auth.rs`, the security schemes in
//! `openapi.rs`.)

use base64::Engine as _;
use serde_json::{Value, json};

use crate::plugins::test_server;
use crate::support::{TestEngine, with_plugins};

const SECRET: &str = "s3cret-token";

fn http_json_component() -> Vec<u8> {
    std::fs::read(format!(
        "{}/http-json/parcours_plugin_http_json.wasm",
        env!("PARCOURS_BUILTIN_PLUGINS_DIR")
    ))
    .expect("the built http-json component")
}

/// A data-source manifest for the http-json component that reads the `token` secret and
/// looks records up at `server`.
fn manifest(name: &str, version: &str, server: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"{version}\"\nkind = \"data-source\"\nsecrets = [\"token\"]\n[capabilities]\nallowed_hosts = [\"*\"]\n[config]\nurl_template = \"{server}/records/{{key}}\"\n"
    )
}

async fn upload(t: &TestEngine, name: &str, manifest: &str) -> (u16, Value) {
    let component = base64::engine::general_purpose::STANDARD.encode(http_json_component());
    t.post_or_put(
        reqwest::Method::PUT,
        &format!("/v1/plugins/{name}"),
        &json!({"manifest": manifest, "component": component}),
    )
    .await
}

/// An admin token can install plugins, not read another plugin's secrets: uploads under
/// the name of a plugin whose secret the operator set (a new version, the same version,
/// a name that differs in case or `-`/`_`) are refused before any call; an upload the
/// operator granted by its package digest reads its secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_plugin_reads_a_secret_only_when_the_operator_granted_its_package() {
    let (attacker, seen) = test_server().await;
    let t = TestEngine::start_with(|s| {
        with_plugins(s);
        s.plugins.secrets = parcours_engine::plugins::SecretValues::from_pairs([
            (
                "PARCOURS_SECRET_HTTP_JSON_TOKEN".to_string(),
                SECRET.to_string(),
            ),
            ("PARCOURS_SECRET_CRM_TOKEN".to_string(), SECRET.to_string()),
        ]);
    })
    .await;
    // The operator's http-json (from the plugins folder) holds the secret.
    for (name, version) in [
        ("http-json", "0.2.0"),
        ("http-json", "0.1.0"),
        ("crm", "1.0.0"),
    ] {
        let (status, body) = upload(&t, name, &manifest(name, version, &attacker)).await;
        assert_eq!(
            (status, body["code"].as_str(), body["location"].as_str()),
            (403, Some("SECRET_NOT_GRANTED"), Some("manifest.secrets")),
            "{name}@{version}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("--secret-grant"),
            "{body}"
        );
    }
    for alias in ["HTTP-JSON", "http_json", "Http_Json"] {
        let (status, body) = upload(&t, alias, &manifest(alias, "9.0.0", &attacker)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("PLUGIN_NAME_CONFLICT")),
            "{alias}: {body}"
        );
    }
    let (_, list) = t.get("/v1/plugins/http-json").await;
    assert_eq!(
        list["versions"].as_array().map(Vec::len),
        Some(1),
        "nothing was installed: {list}"
    );

    // Granted by its package digest, the same upload reads its secret.
    let crm = manifest("crm", "1.0.0", &attacker);
    let digest = parcours_engine::plugins::secrets::package_digest(
        &parcours_engine::plugins::parse_manifest(&crm).expect("manifest"),
        &http_json_component(),
    );
    let granted = TestEngine::start_with(|s| {
        s.plugins.secrets = parcours_engine::plugins::SecretValues::from_pairs([(
            "PARCOURS_SECRET_CRM_TOKEN".to_string(),
            SECRET.to_string(),
        )]);
        s.plugins
            .secret_grants
            .entry("crm".into())
            .or_default()
            .insert(digest.clone());
    })
    .await;
    let (status, body) = upload(&granted, "crm", &crm).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["package_digest"], digest.as_str());
    granted
        .publish(
            "look",
            "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: condition, branches: [{when: 'lookup(\"crm\", \"r1\") != ()', next: b}]}\n  b: {type: end}\n",
        )
        .await;
    let e = granted.event("e", "p", json!({})).await;
    granted.processed(&e).await;
    let requests = seen.lock().unwrap().clone();
    let authorizations: Vec<&str> = requests
        .iter()
        .filter(|r| r.path == "/records/r1")
        .flat_map(|r| r.headers.iter())
        .filter(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(authorizations, [format!("Bearer {SECRET}").as_str()]);
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.path.starts_with("/records"))
            .count(),
        1,
        "no refused upload ever called out: {requests:?}"
    );
}

/// Plugins may not reach loopback, private or metadata addresses unless the operator
/// allows their network: checked after DNS resolution, so names and other spellings of
/// the same address are refused too, before any connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_cannot_reach_internal_addresses_by_default() {
    let (server, seen) = test_server().await;
    let port = server.rsplit(':').next().unwrap().to_string();
    let t = TestEngine::start_with(|s| {
        with_plugins(s);
        s.plugins.allow_internal_networks.clear();
    })
    .await;
    t.publish(
        "reach",
        "entry: {type: event, event: go}\nstart: call\nnodes:\n  call: {type: action, action: webhook, params: {url: event.data.url}, next: done}\n  done: {type: end}\nproperties: {reentrance: {mode: always}}\n",
    )
    .await;
    let targets = [
        format!("http://127.0.0.1:{port}/x"),
        format!("http://localhost:{port}/x"),
        format!("http://2130706433:{port}/x"),
        format!("http://[::ffff:127.0.0.1]:{port}/x"),
        format!("http://0.0.0.0:{port}/x"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
    ];
    for (i, url) in targets.iter().enumerate() {
        let profile = format!("p{i}");
        let e = t.event("go", &profile, json!({"url": url})).await;
        t.processed(&e).await;
        let failed = t.instance_in(&profile, "reach", "failed").await;
        assert_eq!(
            failed["end_reason"], "PLUGIN_HTTP_DENIED",
            "{url}: {failed}"
        );
        let step = t.failed_step(&failed).await;
        let message = step["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("plugins.allow_internal_networks"),
            "{url}: {message}"
        );
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the loopback server"
    );
}

/// Reads from a raw connection until it closes (or `limit` passes): what the server sent.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// Slow or idle clients cannot hold the server: a request head must arrive within the
/// header timeout (new and keep-alive connections alike), a body within the body
/// timeout, a declared body over the limit is refused before it is read, and
/// connections over the limit are closed at once (and counted) while the others are
/// served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_oversized_clients_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let t = TestEngine::start_with(|s| {
        s.http_header_timeout_seconds = 1;
        s.http_body_timeout_seconds = 1;
        s.http_max_connections = 4;
        s.max_body_bytes = 1024;
    })
    .await;
    let addr = t.base.trim_start_matches("http://").to_string();
    let connect = || tokio::net::TcpStream::connect(addr.clone());
    let wait = std::time::Duration::from_secs(20);

    // A partial request head: closed after the header timeout, with no answer.
    let mut slow = connect().await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow, wait).await.expect("closed");
    assert!(!answer.contains("200 OK"), "{answer}");

    // An idle keep-alive connection: answered, then closed.
    let mut idle = connect().await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle, wait)
        .await
        .expect("closed when idle");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A body declared over the limit: refused at once, without sending it.
    let mut big = connect().await.unwrap();
    big.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut big, wait).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("BODY_TOO_LARGE") && answer.contains("max_body_bytes"),
        "{answer}"
    );

    // A body that stops: 408 after the body timeout.
    let mut stalled = connect().await.unwrap();
    stalled
        .write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stalled, wait)
        .await
        .expect("answered");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("BODY_TIMEOUT"), "{answer}");

    // Four connections held open fill the server; a fifth is closed at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect().await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut over = connect().await.unwrap();
    let _ = over
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut over, wait).await.expect("closed");
    assert!(answer.is_empty(), "over the limit: {answer}");
    // Once they are gone (closed by the header timeout), requests are served again and
    // the shed connection was counted.
    drop(held);
    let metrics = crate::support::eventually(|| async {
        // Not `t.metrics()`: a connection may still be shed here, and is tried again.
        let r = t.client.get(t.url("/metrics")).send().await.ok()?;
        let text = r.text().await.ok()?;
        let shed: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("parcours_http_connections_shed_total "))?
            .parse()
            .ok()?;
        // The refused connection, and any made while the held ones were closing.
        (shed >= 1).then_some(text)
    })
    .await;
    assert!(metrics.contains("parcours_http_connections"), "{metrics}");
}

/// A deeply nested YAML journey is refused before it is parsed (the parser's time grows
/// with the square of the nesting), located, and the API keeps answering meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_yaml_is_refused_before_it_is_parsed() {
    let t = TestEngine::start().await;
    let deep = format!("nodes: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let put = |id: &'static str| {
        let body = deep.clone().into_bytes();
        let t = &t;
        async move {
            t.send(
                reqwest::Method::PUT,
                &format!("/v1/journeys/{id}"),
                Some(&body),
                "application/yaml",
            )
            .await
        }
    };
    let (a, b, health) = tokio::join!(put("deep1"), put("deep2"), t.get("/healthz"));
    assert_eq!(health.0, 200);
    for (status, body) in [a, b] {
        assert_eq!(
            (status, body["code"].as_str(), body["location"].as_str()),
            (400, Some("INVALID_JOURNEY"), Some("line 1 column 136")),
            "{body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("128 levels"),
            "{body}"
        );
    }
}

/// Deleting a profile erases what it said from the events and steps kept after it: a
/// value of its attributes and of its event data is nowhere in the API's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_profile_erases_its_personal_data_from_events_steps_and_instances() {
    let t = TestEngine::start_with(|_| {}).await;
    t.publish(
        "greet",
        r#"
entry: {type: event, event: signup}
start: hello
nodes:
  hello:
    type: action
    action: log
    params: {greeting: '"Hello " + profile.first_name', plan: 'event.data.plan'}
    next: later
  later: {type: wait, duration: P1D, next: done}
  done: {type: end}
"#,
    )
    .await;
    let (status, body) = t
        .send(
            reqwest::Method::PUT,
            "/v1/profiles/ada",
            Some(
                json!({"attributes": {"first_name": "Adaline", "email": "adaline@example.com"}})
                    .to_string()
                    .as_bytes(),
            ),
            "application/json",
        )
        .await;
    assert!(status < 300, "{body}");
    let event = t
        .event(
            "signup",
            "ada",
            json!({"plan": "pro-Adaline", "card": "4242-Adaline"}),
        )
        .await;
    let waiting = t.instance_in("ada", "greet", "waiting").await;
    let instance = waiting["id"].as_str().expect("id").to_string();
    let steps = Value::Array(t.steps(&instance).await).to_string();
    assert!(steps.contains("Adaline"), "the steps held it: {steps}");

    let (status, body) = t
        .send(reqwest::Method::DELETE, "/v1/profiles/ada", None, "")
        .await;
    assert!(status < 300, "{body}");
    let ended = t.instance_in("ada", "greet", "exited").await;

    let (_, stored) = t.get(&format!("/v1/events/{event}")).await;
    let (_, instance_now) = t.get(&format!("/v1/instances/{instance}")).await;
    let steps = Value::Array(t.steps(&instance).await);
    for (what, text) in [
        ("event", stored.to_string()),
        ("instance", instance_now.to_string()),
        ("instance list", ended.to_string()),
        ("steps", steps.to_string()),
    ] {
        assert!(
            !text.contains("Adaline") && !text.contains("adaline"),
            "{what} still holds personal data: {text}"
        );
    }
    // What stays: ids, types, nodes, statuses, codes, times.
    assert_eq!(stored["type"], "signup");
    assert_eq!(stored["profile_id"], "ada");
    let nodes: Vec<(&str, &str)> = steps
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["node"].as_str().unwrap_or(""),
                s["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(nodes.contains(&("hello", "passed")), "{nodes:?}");
    assert!(
        steps
            .as_array()
            .expect("steps")
            .iter()
            .any(|s| s["code"] == "PROFILE_DELETED"),
        "{steps}"
    );
}

//! WebAssembly plugins end to end: a webhook to a local server, a data-source look-up and
//! a `std` function in conditions, hostile guests failing alone, parameter schemas,
//! uploads through the API.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{TestEngine, with_plugins};

/// What the local test server received.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// A local HTTP server: records every request; `/users/{id}` answers a user record
/// (404 for `nobody`), anything else `{"tier": "gold"}`.
pub(crate) async fn test_server() -> (String, Arc<Mutex<Vec<Received>>>) {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    async fn hook(
        State(seen): State<Arc<Mutex<Vec<Received>>>>,
        Path(path): Path<String>,
        headers: HeaderMap,
        body: String,
    ) -> axum::Json<Value> {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        seen.lock().unwrap().push(Received {
            path: format!("/{path}"),
            headers,
            body: serde_json::from_str(&body).unwrap_or(Value::Null),
        });
        axum::Json(json!({"tier": "gold"}))
    }
    async fn user(Path(id): Path<String>) -> Result<axum::Json<Value>, axum::http::StatusCode> {
        match id.as_str() {
            "nobody" => Err(axum::http::StatusCode::NOT_FOUND),
            "ada" => Ok(axum::Json(json!({"id": id, "plan": "premium"}))),
            _ => Ok(axum::Json(json!({"id": id, "plan": "free"}))),
        }
    }
    /// Records a call to `path`; how many calls to it came before.
    fn record(seen: &Mutex<Vec<Received>>, path: String, headers: &HeaderMap) -> usize {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let mut seen = seen.lock().unwrap();
        let earlier = seen.iter().filter(|r| r.path == path).count();
        seen.push(Received {
            path,
            headers,
            body: Value::Null,
        });
        earlier
    }
    /// Fails with 503 on the first call for each id, then answers 200.
    async fn flaky(
        State(seen): State<Arc<Mutex<Vec<Received>>>>,
        Path(id): Path<String>,
        headers: HeaderMap,
    ) -> Result<axum::Json<Value>, axum::http::StatusCode> {
        if record(&seen, format!("/flaky/{id}"), &headers) == 0 {
            Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)
        } else {
            Ok(axum::Json(json!({"ok": true})))
        }
    }
    /// Answers 429 with `Retry-After: 120` on the first call for each id, then 200.
    async fn busy(
        State(seen): State<Arc<Mutex<Vec<Received>>>>,
        Path(id): Path<String>,
        headers: HeaderMap,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        if record(&seen, format!("/busy/{id}"), &headers) == 0 {
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [(axum::http::header::RETRY_AFTER, "120")],
            )
                .into_response()
        } else {
            axum::Json(json!({"ok": true})).into_response()
        }
    }
    let app = axum::Router::new()
        .route("/users/{id}", axum::routing::get(user))
        .route("/flaky/{id}", axum::routing::post(flaky))
        .route("/busy/{id}", axum::routing::post(busy))
        .route("/{*path}", axum::routing::any(hook))
        .with_state(seen.clone());
    (crate::support::serve(app).await, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_posts_to_a_local_server_and_its_response_drives_a_condition() {
    let (server, seen) = test_server().await;
    let t = TestEngine::start_with(with_plugins).await;
    let def = format!(
        r#"
entry: {{type: event, event: signup}}
start: tell_crm
nodes:
  tell_crm:
    type: action
    action: webhook
    params:
      url: '"{server}/crm/signup"'
      headers: {{x-source: parcours}}
      body: '#{{ email: profile.email, plan: event.data.plan }}'
    next: is_gold
  is_gold:
    type: condition
    branches:
      - when: 'actions.tell_crm.body.tier == "gold"'
        next: gold
    otherwise: other
  gold: {{type: end}}
  other: {{type: end}}
properties: {{reentrance: {{mode: always}}}}
"#
    );
    t.publish("crm", &def).await;
    t.send(
        reqwest::Method::PUT,
        "/v1/profiles/ada",
        Some(br#"{"attributes": {"email": "ada@example.com"}}"#),
        "application/json",
    )
    .await;
    t.event("signup", "ada", json!({"plan": "pro"})).await;
    let done = t.instance_in("ada", "crm", "completed").await;
    assert_eq!(done["node"], "gold", "{done}");
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(r.path, "/crm/signup");
    assert_eq!(r.body, json!({"email": "ada@example.com", "plan": "pro"}));
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-source").as_deref(), Some("parcours"));
    // The body is sent with its length, not chunked: receivers that do not read chunked
    // bodies (Python's http.server, some gateways) get it whole.
    let body_len = serde_json::to_vec(&r.body).unwrap().len();
    assert_eq!(
        header("content-length"),
        Some(body_len.to_string()),
        "{r:?}"
    );
    assert_eq!(header("transfer-encoding"), None, "{r:?}");
    let key = header("idempotency-key").expect("idempotency key header");
    assert!(key.starts_with(done["id"].as_str().unwrap()), "{key}");
    let steps = t.steps(done["id"].as_str().unwrap()).await;
    let call = steps.iter().find(|s| s["node"] == "tell_crm").unwrap();
    assert_eq!(call["detail"]["idempotency_key"], key.as_str());
    assert_eq!(call["detail"]["action"], "webhook@0.1.0");
}

/// Calls in flight at a slow server: in all, at most at once, and per profile.
#[derive(Default, Debug)]
struct InFlight {
    now: usize,
    most: usize,
    done: usize,
    by_profile: std::collections::HashMap<String, usize>,
    /// Profiles that had two calls in flight at once.
    overlapped: Vec<String>,
}

/// Eight webhook calls to a slow local server (200 ms each), two for each of four
/// profiles, through one partition; what the server saw in flight.
async fn slow_calls(tune: impl FnOnce(&mut parcours_engine::Settings)) -> InFlight {
    async fn slow(
        State(seen): State<Arc<Mutex<InFlight>>>,
        Path(profile): Path<String>,
    ) -> axum::Json<Value> {
        {
            let mut s = seen.lock().unwrap();
            s.now += 1;
            s.most = s.most.max(s.now);
            let n = s.by_profile.entry(profile.clone()).or_default();
            *n += 1;
            if *n > 1 {
                s.overlapped.push(profile.clone());
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut s = seen.lock().unwrap();
        s.now -= 1;
        s.done += 1;
        *s.by_profile.entry(profile).or_default() -= 1;
        axum::Json(json!({"ok": true}))
    }
    let seen: Arc<Mutex<InFlight>> = Arc::default();
    let app = axum::Router::new()
        .route("/slow/{profile}", axum::routing::post(slow))
        .with_state(seen.clone());
    let server = crate::support::serve(app).await;

    // One partition: every profile's messages go through the same one.
    let t = TestEngine::start_with(|s| {
        with_plugins(s);
        s.partitions = 1;
        tune(s);
    })
    .await;
    let def = format!(
        r#"
entry: {{type: event, event: order}}
start: call
nodes:
  call:
    type: action
    action: webhook
    params: {{url: '"{server}/slow/" + event.profile_id', body: '#{{ n: event.data.n }}'}}
    next: done
  done: {{type: end}}
properties: {{reentrance: {{mode: always}}}}
"#
    );
    t.publish("slow", &def).await;
    let events: Vec<Value> = (0..8)
        .map(|n| json!({"type": "order", "profile_id": format!("p{}", n % 4), "data": {"n": n}}))
        .collect();
    let (code, body) = t.post_json("/v1/events", &json!({"events": events})).await;
    assert_eq!(code, 202, "{body}");
    crate::support::eventually(|| async { (seen.lock().unwrap().done == 8).then_some(()) }).await;
    std::mem::take(&mut *seen.lock().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_of_different_profiles_overlap_and_those_of_one_profile_do_not() {
    let s = slow_calls(|_| {}).await;
    assert!(
        s.most >= 2,
        "the calls of different profiles waited for each other (at most {} at once)",
        s.most
    );
    assert!(
        s.overlapped.is_empty(),
        "one profile had two calls at once: {:?}",
        s.overlapped
    );
}

/// The engine-wide plugin memory budget: the webhook plugin may use 32 MiB a call, so a
/// budget of 64 MiB lets two calls run at once; the others wait for room, and all run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_wait_for_room_in_the_plugin_memory_budget() {
    let s = slow_calls(|s| s.plugins.memory_budget_mb = 64).await;
    assert_eq!(s.done, 8);
    assert!(
        s.most <= 2,
        "{} calls of 32 MiB ran at once within a 64 MiB budget",
        s.most
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_source_lookup_and_std_function_feed_conditions() {
    let (server, _seen) = test_server().await;
    let t = TestEngine::start_with(with_plugins).await;
    // A second copy of http-json, configured for this backend.
    let component = std::fs::read(format!(
        "{}/http-json/parcours_plugin_http_json.wasm",
        env!("PARCOURS_BUILTIN_PLUGINS_DIR")
    ))
    .unwrap();
    let manifest = format!(
        "name = \"users\"\nversion = \"1.0.0\"\nkind = \"data-source\"\n[capabilities]\nallowed_hosts = [\"127.0.0.1\"]\n[config]\nurl_template = \"{server}/users/{{key}}\"\nttl_seconds = \"30\"\n"
    );
    let (status, body) = t
        .post_or_put(
            reqwest::Method::PUT,
            "/v1/plugins/users",
            &json!({"manifest": manifest, "component": base64::engine::general_purpose::STANDARD.encode(&component)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["kind"], "data-source");

    let def = r#"
entry: {type: event, event: visit}
start: plan
nodes:
  plan:
    type: condition
    branches:
      - when: 'lookup("users", profile.id) == ()'
        next: unknown
      - when: 'lookup("users", profile.id).plan == "premium"'
        next: near
    otherwise: free
  near:
    type: condition
    branches:
      - when: 'std::geo_distance_km(event.data.lat, event.data.lon, 48.8566, 2.3522) < 10.0'
        next: premium_near
    otherwise: premium_far
  premium_near: {type: end}
  premium_far: {type: end}
  unknown: {type: end}
  free: {type: end}
properties: {reentrance: {mode: always}}
"#;
    t.publish("plans", def).await;
    t.event("visit", "ada", json!({"lat": 48.86, "lon": 2.34}))
        .await;
    t.event("visit", "bob", json!({"lat": 0.0, "lon": 0.0}))
        .await;
    t.event("visit", "nobody", json!({"lat": 0.0, "lon": 0.0}))
        .await;
    assert_eq!(
        t.instance_in("ada", "plans", "completed").await["node"],
        "premium_near"
    );
    assert_eq!(
        t.instance_in("bob", "plans", "completed").await["node"],
        "free"
    );
    assert_eq!(
        t.instance_in("nobody", "plans", "completed").await["node"],
        "unknown"
    );

    // A std function that must really compute: far from Paris.
    let far = r#"
entry: {type: event, event: far}
start: d
nodes:
  d:
    type: condition
    branches:
      - when: 'std::geo_distance_km(event.data.lat, event.data.lon, 48.8566, 2.3522) > 300.0 && std::sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"'
        next: yes
    otherwise: no
  yes: {type: end}
  no: {type: end}
properties: {reentrance: {mode: always}}
"#;
    t.publish("far", far).await;
    t.event("far", "carl", json!({"lat": 51.5074, "lon": -0.1278}))
        .await;
    t.event("far", "dora", json!({"lat": 48.85, "lon": 2.35}))
        .await;
    assert_eq!(
        t.instance_in("carl", "far", "completed").await["node"],
        "yes"
    );
    assert_eq!(
        t.instance_in("dora", "far", "completed").await["node"],
        "no"
    );
}

const HOSTILE: &str = r#"
entry: {type: event, event: misbehave}
start: act
nodes:
  act:
    type: action
    action: hostile
    params:
      mode: event.data.mode
      url: event.data.url
    next: fine
  fine: {type: end}
properties: {reentrance: {mode: always}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_fail_alone_with_clear_codes_while_healthy_journeys_run() {
    let t = TestEngine::start_with(with_plugins).await;
    t.publish("hostile", HOSTILE).await;
    let healthy = "entry: {type: event, event: hello}\nstart: greet\nnodes:\n  greet: {type: action, action: hostile, params: {mode: '\"ok\"'}}\nproperties: {reentrance: {mode: always}}\n";
    t.publish("healthy", healthy).await;

    let cases = [
        ("loop", "PLUGIN_TIMEOUT", None),
        ("memory", "PLUGIN_MEMORY_LIMIT", None),
        ("recursion", "PLUGIN_STACK_OVERFLOW", None),
        ("deep_stack", "PLUGIN_TRAP", None),
        ("trap", "PLUGIN_TRAP", None),
        ("big_output", "PLUGIN_OUTPUT_TOO_LARGE", None),
        ("huge_output", "PLUGIN_OUTPUT_TOO_LARGE", None),
        (
            "http",
            "PLUGIN_HTTP_DENIED",
            Some("http://not-allowed.invalid/steal"),
        ),
        ("file", "ACTION_FAILED", None),
        ("env", "ACTION_FAILED", None),
    ];
    for (i, (mode, code, url)) in cases.iter().enumerate() {
        let profile = format!("bad-{mode}");
        t.event("misbehave", &profile, json!({"mode": mode, "url": url}))
            .await;
        // A healthy journey runs while (and after) the hostile call is under way.
        let friend = format!("good-{i}");
        t.event("hello", &friend, json!({})).await;
        let ok = t.instance_in(&friend, "healthy", "completed").await;
        assert_eq!(ok["data"]["actions"]["greet"]["ok"], true, "{ok}");

        let failed = t.instance_in(&profile, "hostile", "failed").await;
        assert_eq!(failed["end_reason"], *code, "{mode}: {failed}");
        let steps = t.steps(failed["id"].as_str().unwrap()).await;
        let step = steps
            .iter()
            .find(|s| s["node"] == "act" && s["status"] == "failed")
            .expect("a failed step");
        assert_eq!(step["code"], *code, "{mode}: {step}");
        let message = step["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("root:"),
            "{mode} leaked a file: {message}"
        );
        match *mode {
            "file" => assert!(message.contains("/etc/passwd"), "{message}"),
            "env" => assert!(message.contains("HOME"), "{message}"),
            "http" => assert!(message.contains("not-allowed.invalid"), "{message}"),
            "deep_stack" => assert!(message.contains("linear memory"), "{message}"),
            "huge_output" | "big_output" => {
                assert!(message.contains("max_output_bytes"), "{message}")
            }
            _ => {}
        }
    }
    let (_, health) = t.get("/healthz").await;
    assert_eq!(health["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_that_do_not_match_the_schema_fail_validation_with_a_location() {
    let t = TestEngine::start_with(with_plugins).await;
    let bad = r#"
entry: {type: event, event: e}
start: call
nodes:
  call:
    type: action
    action: webhook
    params:
      method: 42
      bogus: '"x"'
"#;
    let (status, body) = t
        .send(
            reqwest::Method::POST,
            "/v1/journeys/validate",
            Some(bad.as_bytes()),
            "application/yaml",
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let problems = body["problems"].as_array().unwrap();
    let has = |path: &str, text: &str| {
        problems
            .iter()
            .any(|p| p["path"] == path && p["message"].as_str().unwrap_or("").contains(text))
    };
    assert!(
        has("nodes.call.params", "missing required parameter `url`"),
        "{body}"
    );
    assert!(
        has("nodes.call.params.bogus", "unknown parameter"),
        "{body}"
    );
    assert!(has("nodes.call.params.method", "42"), "{body}");
    // A pinned version that does not exist.
    let pinned = bad.replace("action: webhook", "action: webhook@9.9.9");
    let (status, body) = t
        .send(
            reqwest::Method::POST,
            "/v1/journeys/validate",
            Some(pinned.as_bytes()),
            "application/yaml",
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["location"], "nodes.call.action", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_upload_list_inspect_and_reject_bad_input() {
    let t = TestEngine::start_with(with_plugins).await;
    let (status, list) = t.get("/v1/plugins").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for n in ["webhook", "http-json", "std", "hostile"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let (status, std) = t.get("/v1/plugins/std").await;
    assert_eq!(status, 200);
    let functions = std["versions"][0]["functions"].as_array().unwrap();
    assert!(
        functions.iter().any(|f| f["name"] == "geo_distance_km"),
        "{std}"
    );
    assert!(
        std["versions"][0]["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "call"),
        "{std}"
    );

    let component = std::fs::read(format!(
        "{}/hostile/parcours_test_hostile.wasm",
        env!("PARCOURS_TEST_PLUGINS_DIR")
    ))
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&component);
    let manifest =
        "name = \"echo\"\nversion = \"2.0.0\"\nkind = \"action\"\n[limits]\ntimeout_ms = 1000\n";
    let (status, body) = t
        .post_or_put(
            reqwest::Method::PUT,
            "/v1/plugins/echo",
            &json!({"manifest": manifest, "component": b64}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], "2.0.0");
    // It is usable at once, pinned to its version.
    t.publish("echoes", "entry: {type: event, event: ping}\nstart: a\nnodes:\n  a: {type: action, action: echo@2.0.0, params: {mode: '\"ok\"'}}\n").await;
    t.event("ping", "p", json!({})).await;
    t.instance_in("p", "echoes", "completed").await;

    let bad_manifest = "name = \"echo\"\nversion = \"2\"\nkind = \"action\"\n";
    let (status, body) = t
        .post_or_put(
            reqwest::Method::PUT,
            "/v1/plugins/echo",
            &json!({"manifest": bad_manifest, "component": b64}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["location"], "version");
    // Memory over the engine's one maximum: one message, naming the setting.
    for mb in [2048, 8192] {
        let greedy = format!(
            "name = \"echo\"\nversion = \"4.0.0\"\nkind = \"action\"\n[limits]\nmemory_mb = {mb}\n"
        );
        let (status, body) = t
            .post_or_put(
                reqwest::Method::PUT,
                "/v1/plugins/echo",
                &json!({"manifest": greedy, "component": b64}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "INVALID_MANIFEST");
        assert_eq!(body["location"], "limits.memory_mb");
        assert_eq!(
            body["message"],
            format!(
                "invalid manifest: limits.memory_mb: {mb} MiB is more than this engine allows (1024 MiB, plugins.max_memory_mb)"
            ),
            "{body}"
        );
    }
    // A functions component declared as an action does not fit the world.
    let wrong_kind = "name = \"echo\"\nversion = \"3.0.0\"\nkind = \"data-source\"\n";
    let (status, body) = t
        .post_or_put(
            reqwest::Method::PUT,
            "/v1/plugins/echo",
            &json!({"manifest": wrong_kind, "component": b64}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "INVALID_COMPONENT");
    let (status, body) = t
        .post_or_put(
            reqwest::Method::PUT,
            "/v1/plugins/echo",
            &json!({"manifest": manifest, "component": "!!"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["location"], "component");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_retried_with_the_same_idempotency_key() {
    let (server, seen) = test_server().await;
    let t = TestEngine::start().await;
    let def = format!(
        r#"
entry: {{type: event, event: order}}
start: notify
nodes:
  notify:
    type: action
    action: webhook
    params:
      url: '`{server}/flaky/${{profile.id}}`'
    retry: {{max_attempts: 3, backoff: PT10S}}
    next: done
  done: {{type: end}}
"#
    );
    t.publish("flaky", &def).await;
    let profiles = ["zoe", "ann", "bob", "cid", "dan", "eve"];
    for p in profiles {
        t.event("order", p, json!({})).await;
    }
    // Each waits the backoff plus its own share of the jitter (at most 20 % of it by
    // default), drawn from its idempotency key: instances that failed together spread.
    let mut wakes = std::collections::BTreeSet::new();
    for p in profiles {
        let waiting = t.instance_in(p, "flaky", "waiting").await;
        assert_eq!(waiting["node"], "notify");
        let wake: jiff::Timestamp = waiting["wake_at"].as_str().unwrap().parse().unwrap();
        let after = wake.duration_since("2026-03-02T08:00:00Z".parse().unwrap());
        assert!(
            after >= jiff::SignedDuration::from_secs(10)
                && after <= jiff::SignedDuration::from_secs(12),
            "{waiting}"
        );
        wakes.insert(wake);
    }
    assert!(
        wakes.len() > 1,
        "every retry at the same instant: {wakes:?}"
    );
    t.advance(jiff::Span::new().seconds(12));
    let done = t.instance_in("zoe", "flaky", "completed").await;
    let requests: Vec<Received> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/flaky/zoe")
        .cloned()
        .collect();
    assert_eq!(requests.len(), 2);
    let key = |r: &Received| {
        r.headers
            .iter()
            .find(|(k, _)| k == "idempotency-key")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(key(&requests[0]), key(&requests[1]));
    let steps = t.steps(done["id"].as_str().unwrap()).await;
    let notify: Vec<&Value> = steps.iter().filter(|s| s["node"] == "notify").collect();
    assert_eq!(notify[0]["status"], "waiting");
    assert_eq!(
        notify[0]["detail"]["outcome"]["error"]["code"],
        "ACTION_RETRYABLE"
    );
    assert_eq!(notify[1]["status"], "passed");
    assert_eq!(notify[1]["detail"]["attempt"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_waits_as_long_as_the_servers_retry_after_asks() {
    let (server, seen) = test_server().await;
    let t = TestEngine::start().await;
    let def = format!(
        r#"
entry: {{type: event, event: order}}
start: notify
nodes:
  notify:
    type: action
    action: webhook
    params:
      url: '`{server}/busy/${{profile.id}}`'
    retry: {{max_attempts: 3, backoff: PT10S}}
    next: done
  done: {{type: end}}
"#
    );
    t.publish("busy", &def).await;
    t.event("order", "zoe", json!({})).await;
    // 429 with `Retry-After: 120`: not after the 10 s backoff, but after two minutes.
    let waiting = t.instance_in("zoe", "busy", "waiting").await;
    assert_eq!(waiting["wake_at"], "2026-03-02T08:02:00Z", "{waiting}");
    let steps = t.steps(waiting["id"].as_str().unwrap()).await;
    let error = &steps.last().unwrap()["detail"]["outcome"]["error"];
    assert_eq!(error["code"], "ACTION_RETRYABLE");
    assert_eq!(error["retry_after"], "2026-03-02T08:02:00Z", "{error}");
    t.advance(jiff::Span::new().seconds(60));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let calls = |seen: &Arc<Mutex<Vec<Received>>>| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == "/busy/zoe")
            .count()
    };
    assert_eq!(calls(&seen), 1, "retried before the server's Retry-After");
    t.advance(jiff::Span::new().seconds(60));
    t.instance_in("zoe", "busy", "completed").await;
    assert_eq!(calls(&seen), 2);
}

/// A plugin is removed only when nothing that can still run calls what its removal
/// takes away: a pinned action version while a version that calls it has live
/// instances, a functions plugin while a live journey calls it, a data source while an
/// audience predicate looks it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_are_removed_only_when_nothing_that_runs_calls_them() {
    let t = TestEngine::start_with(with_plugins).await;
    let delete = |path: &'static str| t.send(reqwest::Method::DELETE, path, None, "");
    let hostile = base64::engine::general_purpose::STANDARD.encode(
        std::fs::read(format!(
            "{}/hostile/parcours_test_hostile.wasm",
            env!("PARCOURS_TEST_PLUGINS_DIR")
        ))
        .unwrap(),
    );
    for version in ["1.0.0", "2.0.0"] {
        let manifest = format!("name = \"echo\"\nversion = \"{version}\"\nkind = \"action\"\n");
        let (status, body) = t
            .post_or_put(
                reqwest::Method::PUT,
                "/v1/plugins/echo",
                &json!({"manifest": manifest, "component": hostile}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let journey = |action: &str| {
        format!(
            "entry: {{type: event, event: ping}}\nstart: a\nnodes:\n  a: {{type: action, action: {action}, params: {{mode: '\"ok\"'}}, next: w}}\n  w: {{type: wait, duration: P1D}}\n"
        )
    };
    t.publish("calls_echo", &journey("echo@1.0.0")).await;
    t.event("ping", "p", json!({})).await;
    t.instance_in("p", "calls_echo", "waiting").await;

    // Version 1 takes entries and pins echo@1.0.0.
    let (status, body) = delete("/v1/plugins/echo?version=1.0.0").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "PLUGIN_IN_USE", "{body}");
    assert_eq!(
        body["problems"][0]["path"], "journeys.calls_echo.versions.1.nodes.a.action",
        "{body}"
    );
    assert_eq!(body["problems"][0]["message"], "calls action echo@1.0.0");
    // Version 2 takes the entries; p's instance still waits on version 1.
    t.publish("calls_echo", &journey("echo")).await;
    let (status, body) = delete("/v1/plugins/echo?version=1.0.0").await;
    assert_eq!(status, 409, "{body}");
    let paths: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert_eq!(paths, ["journeys.calls_echo.versions.1.nodes.a.action"]);
    // Once it has ended, version 1 can no longer call anything.
    t.advance(jiff::Span::new().days(2));
    t.instance_in("p", "calls_echo", "completed").await;
    let (status, body) = delete("/v1/plugins/echo?version=1.0.0").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"], json!(["echo@1.0.0"]));
    let (_, echo) = t.get("/v1/plugins/echo").await;
    assert_eq!(echo["versions"].as_array().map(Vec::len), Some(1), "{echo}");
    let (status, body) = t.validate(&journey("echo@1.0.0")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["location"], "nodes.a.action", "{body}");
    let (status, body) = delete("/v1/plugins/echo?version=1.0.0").await;
    assert_eq!(status, 404, "{body}");
    // Version 2 enters and calls echo@2.0.0; a stopped journey calls nothing.
    let (status, body) = delete("/v1/plugins/echo").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("echo@2.0.0"),
        "{body}"
    );
    let (status, _) = t
        .post_json("/v1/journeys/calls_echo/stop", &json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = delete("/v1/plugins/echo").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"], json!(["echo@2.0.0"]));
    let (status, _) = t.get("/v1/plugins/echo").await;
    assert_eq!(status, 404);

    // A function called from a condition of a live journey.
    t.publish(
        "hashes",
        "entry: {type: event, event: hash}\nstart: c\nnodes:\n  c:\n    type: condition\n    branches:\n      - when: 'std::sha256(profile.id) != \"\"'\n        next: done\n  done: {type: end}\n",
    )
    .await;
    let (status, body) = delete("/v1/plugins/std").await;
    assert_eq!(status, 409, "{body}");
    let problem = &body["problems"][0];
    assert!(
        problem["path"]
            .as_str()
            .unwrap()
            .starts_with("journeys.hashes.versions.1.nodes.c."),
        "{body}"
    );
    assert_eq!(problem["message"], "calls std::sha256()", "{body}");

    // A data source looked up by an audience predicate.
    let (status, body) = t
        .post_or_put(
            reqwest::Method::PUT,
            "/v1/audiences/looked_up",
            &json!({"predicate": "lookup(\"http-json\", profile.id) != ()"}),
        )
        .await;
    assert!(status < 300, "{body}");
    let (status, body) = delete("/v1/plugins/http-json").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["problems"][0]["path"], "audiences.looked_up.predicate");
    let (status, body) = t
        .post_or_put(
            reqwest::Method::PUT,
            "/v1/audiences/looked_up",
            &json!({"predicate": "profile.id != \"\""}),
        )
        .await;
    assert!(status < 300, "{body}");
    let (status, body) = delete("/v1/plugins/http-json").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = delete("/v1/plugins/nothing").await;
    assert_eq!(status, 404, "{body}");
}

/// A functions plugin stopped by the sandbox inside a condition fails the step with the
/// plugin's code (here `PLUGIN_OUTPUT_TOO_LARGE`), as an action would; `EXPR_EVAL` stays
/// for faults of the expression itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_stopped_by_the_sandbox_fails_the_step_with_its_plugin_code() {
    let t = TestEngine::start_with(with_plugins).await;
    let component = std::fs::read(format!(
        "{}/std/parcours_plugin_std.wasm",
        env!("PARCOURS_BUILTIN_PLUGINS_DIR")
    ))
    .unwrap();
    let manifest = "name = \"tiny_std\"\nversion = \"1.0.0\"\nkind = \"functions\"\n[limits]\nmax_output_bytes = 1024\n";
    let (status, body) = t
        .post_or_put(
            reqwest::Method::PUT,
            "/v1/plugins/tiny_std",
            &json!({"manifest": manifest, "component": base64::engine::general_purpose::STANDARD.encode(&component)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    t.publish(
        "echoes",
        "entry: {type: event, event: e}\nstart: c\nnodes:\n  c:\n    type: condition\n    branches:\n      - when: 'tiny_std::json_path(event.data, \"\") != ()'\n        next: done\n      - when: 'event.data.n / 0 == 1'\n        next: done\n  done: {type: end}\nproperties: {reentrance: {mode: always}}\n",
    )
    .await;
    for (profile, data, code) in [
        (
            "big",
            json!({"text": "x".repeat(4096)}),
            "PLUGIN_OUTPUT_TOO_LARGE",
        ),
        ("small", json!({"n": 1}), ""),
    ] {
        t.event("e", profile, data).await;
        if code.is_empty() {
            t.instance_in(profile, "echoes", "completed").await;
            continue;
        }
        let inst = t.instance_in(profile, "echoes", "failed").await;
        let failed = t.failed_step(&inst).await;
        assert_eq!(failed["code"], code, "{failed}");
        assert_eq!(
            failed["detail"]["plugin_calls"][0]["outcome"], code,
            "{failed}"
        );
    }
    // A fault of the expression itself (a division by zero) is EXPR_EVAL.
    t.publish(
        "divides",
        "entry: {type: event, event: d}\nstart: c\nnodes:\n  c:\n    type: condition\n    branches:\n      - when: 'tiny_std::json_path(event.data, \"n\") / 0 == 1'\n        next: done\n  done: {type: end}\n",
    )
    .await;
    t.event("d", "zero", json!({"n": 1})).await;
    let inst = t.instance_in("zero", "divides", "failed").await;
    let failed = t.failed_step(&inst).await;
    assert_eq!(failed["code"], "EXPR_EVAL", "{failed}");
}

/// A published version keeps the plugin versions it was published with: installing a
/// newer one says which journeys take entries on an older one, publishing an explicit
/// older pin says so, and `upgrade-plugins` (API and CLI) publishes against the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_plugin_versions_are_announced_and_journeys_upgrade_to_them() {
    let t = TestEngine::start_with(with_plugins).await;
    let hostile = base64::engine::general_purpose::STANDARD.encode(
        std::fs::read(format!(
            "{}/hostile/parcours_test_hostile.wasm",
            env!("PARCOURS_TEST_PLUGINS_DIR")
        ))
        .unwrap(),
    );
    let install = |version: &'static str| {
        let manifest = format!("name = \"echo\"\nversion = \"{version}\"\nkind = \"action\"\n");
        let body = json!({"manifest": manifest, "component": hostile});
        let t = &t;
        async move {
            t.post_or_put(reqwest::Method::PUT, "/v1/plugins/echo", &body)
                .await
        }
    };
    let journey = |action: &str| {
        format!(
            "entry: {{type: event, event: ping}}\nstart: a\nnodes:\n  a: {{type: action, action: {action}, params: {{mode: '\"ok\"'}}}}\n"
        )
    };
    let (status, body) = install("1.0.0").await;
    assert_eq!((status, &body["notices"]), (201, &json!([])), "{body}");
    t.publish("calls_echo", &journey("echo")).await;

    let (status, body) = install("1.1.0").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["notices"],
        json!([
            "journeys.calls_echo.versions.1.nodes.a.action: pins echo@1.0.0; echo@1.1.0 is installed (`parcours journey upgrade-plugins calls_echo` publishes against it)"
        ])
    );

    // An explicit older pin is published as asked, with a notice.
    let def = journey("echo@1.0.0");
    let (status, _) = t
        .send(
            reqwest::Method::PUT,
            "/v1/journeys/explicit",
            Some(def.as_bytes()),
            "",
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = t
        .post_json("/v1/journeys/explicit/publish", &json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["notices"][0],
        "nodes.a.action: pins echo@1.0.0; echo@1.1.0 is installed (`parcours journey upgrade-plugins explicit` publishes against it)"
    );

    // Upgrading publishes a version on echo@1.1.0, once.
    for id in ["calls_echo", "explicit"] {
        let path = format!("/v1/journeys/{id}/upgrade-plugins");
        let (status, body) = t.post_json(&path, &json!({})).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["version"], 2, "{body}");
        assert_eq!(
            body["upgraded"],
            json!([{"at": "nodes.a.action", "from": "echo@1.0.0", "to": "echo@1.1.0"}])
        );
        let (_, versions) = t.get(&format!("/v1/journeys/{id}")).await;
        assert!(
            versions
                .to_string()
                .contains("plugins upgraded: echo@1.0.0 -> echo@1.1.0"),
            "{versions}"
        );
    }
    t.event("ping", "p", json!({})).await;
    let done = t.instance_in("p", "explicit", "completed").await;
    let steps = t.steps(done["id"].as_str().unwrap()).await;
    let a = steps.iter().find(|s| s["node"] == "a").expect("a step");
    assert_eq!(a["detail"]["action"], "echo@1.1.0", "{a}");

    // Nothing older left: the command says so and publishes nothing.
    let base = t.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_parcours"))
            .args(["--server", &base, "journey", "upgrade-plugins", "explicit"])
            .output()
            .expect("run parcours")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.trim(),
        "explicit: version 2 already calls the newest plugin versions"
    );
    // A stopped journey is not made live again.
    t.post_json("/v1/journeys/calls_echo/stop", &json!({}))
        .await;
    let (status, body) = t
        .post_json("/v1/journeys/calls_echo/upgrade-plugins", &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
}

/// The benchmark's lean guest (the floor of a fresh plugin call) stays what it claims:
/// a component importing the plugin interface alone, no WASI, and a working action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lean_guest_imports_only_the_plugin_interface_and_runs() {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::from_file(
        &engine,
        format!(
            "{}/lean/parcours_test_lean.wasm",
            env!("PARCOURS_TEST_PLUGINS_DIR")
        ),
    )
    .unwrap();
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(imports, ["parcours:plugin/types@0.1.0"]);

    let steps = steps_of_one_call("lean").await;
    assert!(steps.contains(r#""echo":{"n":41}"#), "{steps}");
}

/// The steps of a journey that calls action `action` once with `{n: 41}`, as JSON text.
async fn steps_of_one_call(action: &str) -> String {
    let t = TestEngine::start_with(with_plugins).await;
    t.publish(
        "calls",
        &format!("entry: {{type: event, event: ping}}\nstart: a\nnodes:\n  a: {{type: action, action: {action}, params: {{n: 41}}, next: b}}\n  b: {{type: end}}\n"),
    )
    .await;
    t.event("ping", "p", json!({})).await;
    let done = t.instance_in("p", "calls", "completed").await;
    let (status, steps) = t
        .get(&format!(
            "/v1/instances/{}/steps",
            done["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200, "{steps}");
    steps.to_string()
}

/// An SDK plugin built as a core module (`wasm32-unknown-unknown`) is encoded as a
/// component at install, imports nothing it does not call, runs in a journey, and a
/// panic's message reaches the plugin's log (such a build has no stderr).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_module_plugin_is_encoded_at_install_and_runs() {
    let dir = format!("{}/echo", env!("PARCOURS_TEST_PLUGINS_DIR"));
    let module = std::fs::read(format!("{dir}/parcours_test_echo.wasm")).expect("echo");
    assert!(module.starts_with(b"\0asm\x01\0\0\0"), "a core module");
    let encoded = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|e| e.validate(true).encode())
        .expect("encoded");
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, &encoded).expect("compiled");
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    // The SDK's types and its log (for panics): no WASI at all.
    assert_eq!(
        imports,
        ["parcours:plugin/host@0.1.0", "parcours:plugin/types@0.1.0"],
        "{imports:?}"
    );

    let steps = steps_of_one_call("core_echo").await;
    assert!(steps.contains(r#""params":{"n":41}"#), "{steps}");

    // A panic: the call fails, and the plugin's log says why.
    let report = parcours_engine::plugins::harness::run_once(
        std::path::Path::new(&format!("{dir}/plugin.toml")),
        serde_json::from_value(json!({"params": {"panic": "no stock"}})).expect("input"),
        parcours_engine::plugins::harness::HarnessHttp::Record,
        &parcours_engine::settings::PluginSettings::default(),
    )
    .await
    .expect("ran");
    assert!(report.ok().is_none(), "{:?}", report.outcome);
    let logs = serde_json::to_string(&report.logs).expect("logs");
    assert!(
        logs.contains("panicked") && logs.contains("asked to: no stock"),
        "{logs}"
    );
}

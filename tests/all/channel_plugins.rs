//! Channel providers that are plugins (`parcours:plugin@0.2.0`), end to end: the `sms`
//! plugin sends a journey's message to a local SMS API that first answers 429 with
//! `Retry-After`, and the retry waits that long and carries the same message id; the
//! API's delivery receipt, read by the plugin, suppresses the number; `parcours plugin
//! test` runs both exports against stubs.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::TestEngine;

/// A request the SMS API received: its `Idempotency-Key` and body.
#[derive(Clone, Debug)]
struct Sent {
    key: String,
    body: Value,
}

/// A local SMS API: the first request of each message is refused with 429 and
/// `Retry-After: 30`; later ones are accepted.
async fn sms_api() -> (String, Arc<Mutex<Vec<Sent>>>) {
    async fn send(
        State(seen): State<Arc<Mutex<Vec<Sent>>>>,
        headers: HeaderMap,
        body: String,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut seen = seen.lock().unwrap();
        let earlier = seen.iter().filter(|s| s.key == key).count();
        seen.push(Sent { key, body });
        if earlier == 0 {
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [(axum::http::header::RETRY_AFTER, "30")],
                "slow down",
            )
                .into_response()
        } else {
            axum::Json(json!({"id": "SM-1", "status": "queued"})).into_response()
        }
    }
    let seen: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let app = axum::Router::new()
        .route("/sms", axum::routing::post(send))
        .with_state(seen.clone());
    (crate::support::serve(app).await, seen)
}

/// `DELETE /v1/plugins/{name}`, refused with `PLUGIN_IN_USE`: the answer.
async fn removal_refused(t: &TestEngine, name: &str) -> Value {
    let (status, body) = t
        .send(
            Method::DELETE,
            &format!("/v1/plugins/{name}"),
            None,
            "application/json",
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("PLUGIN_IN_USE")),
        "{body}"
    );
    body
}

const FLASH: &str = r#"
channel: sms
default_locale: en
locales:
  en: {body: "Flash sale for {{ profile.first_name }}: 30% off until midnight."}
"#;

const JOURNEY: &str = r#"
entry: {type: event, event: sale_started}
start: text
nodes:
  text:
    type: message
    template: flash
    provider: sms
    retry: {max_attempts: 3, backoff: PT5S}
    next: done
  done: {type: end}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sms_plugin_waits_for_retry_after_and_its_receipts_suppress_a_number() {
    let (api, seen) = sms_api().await;
    let t = TestEngine::start().await;
    // The first-party plugin, installed with this API's address in its configuration.
    let component = std::fs::read(format!(
        "{}/sms/parcours_plugin_sms.wasm",
        env!("PARCOURS_BUILTIN_PLUGINS_DIR")
    ))
    .expect("the sms plugin is built");
    let manifest = format!(
        "name = \"sms\"\nversion = \"0.1.0\"\nkind = \"channel-provider\"\n\
         [capabilities]\nallowed_hosts = [\"127.0.0.1\"]\n\
         [config]\napi_url = \"{api}/sms\"\nfrom = \"SHOP\"\n"
    );
    let (status, body) = t
        .post_or_put(
            Method::PUT,
            "/v1/plugins/sms",
            &json!({"manifest": manifest,
                "component": base64::engine::general_purpose::STANDARD.encode(&component)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = t
        .send(
            Method::PUT,
            "/v1/templates/flash",
            Some(FLASH.as_bytes()),
            "application/yaml",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    t.publish("flash", JOURNEY).await;
    let (status, body) = t
        .post_or_put(
            Method::PUT,
            "/v1/profiles/kim",
            &json!({"attributes": {"first_name": "Kim", "phone": "+15550100",
                "subscriptions": {"sms": true}}}),
        )
        .await;
    assert!(status < 300, "{body}");

    // 429 with `Retry-After: 30`: the retry waits 30 s, not the node's 5 s backoff.
    t.event("sale_started", "kim", json!({})).await;
    let waiting = t.instance_in("kim", "flash", "waiting").await;
    assert_eq!(waiting["wake_at"], "2026-03-02T08:00:30Z", "{waiting}");
    let steps = t.steps(waiting["id"].as_str().unwrap()).await;
    let error = &steps.last().unwrap()["detail"]["outcome"]["error"];
    assert_eq!(error["code"], "ACTION_RETRYABLE", "{error}");
    assert_eq!(error["retry_after"], "2026-03-02T08:00:30Z", "{error}");
    t.advance(jiff::Span::new().seconds(10));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "not retried before Retry-After"
    );
    t.advance(jiff::Span::new().seconds(20));
    let done = t.instance_in("kim", "flash", "completed").await;

    // Two requests of one message: the same idempotency key, which is the message id
    // the provider echoes in its receipts.
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    let message_id = sent[0].key.clone();
    assert_eq!(sent[1].key, message_id);
    assert_eq!(
        sent[1].body,
        json!({"from": "SHOP", "to": "+15550100",
            "text": "Flash sale for Kim: 30% off until midnight.", "client_ref": message_id})
    );
    let steps = t.steps(done["id"].as_str().unwrap()).await;
    let passed = steps
        .iter()
        .find(|s| s["node"] == "text" && s["status"] == "passed")
        .expect("the send");
    assert_eq!(
        passed["detail"]["outcome"]["result"]["provider_message_id"],
        "SM-1"
    );

    // The provider's receipt, in its own format (a form), read by the plugin: the
    // number failed for good and is suppressed.
    let receipt = format!("client_ref={message_id}&status=failed&err_code=unknown+subscriber");
    let (status, report) = t
        .send(
            Method::POST,
            "/v1/deliveries/sms",
            Some(receipt.as_bytes()),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(
        (report["accepted"].clone(), report["suppressed"].clone()),
        (json!(1), json!(1))
    );
    let (status, entry) = t.get("/v1/suppressions/+15550100").await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(
        (entry["reason"].clone(), entry["source"].clone()),
        (json!("hard_bounce"), json!("delivery:sms")),
        "{entry}"
    );
    // A request the plugin does not understand: 422 with its reason.
    let (status, body) = t
        .send(
            Method::POST,
            "/v1/deliveries/sms",
            Some(b"{\"nothing\": true}"),
            "application/json",
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("plugin \"sms\""),
        "{body}"
    );

    // The plugin is not removed while a live version sends through it.
    let body = removal_refused(&t, "sms").await;
    assert_eq!(
        (
            body["problems"][0]["path"].clone(),
            body["problems"][0]["message"].clone()
        ),
        (
            json!("journeys.flash.versions.1.nodes.text.provider"),
            json!("calls provider sms")
        ),
        "{body}"
    );
}

/// `parcours plugin test` on the first-party sms plugin: a send against a stubbed API
/// (what the plugin sent is shown), a refused one, and a receipt read by
/// `parse-feedback`.
#[test]
fn plugin_test_sends_through_a_stub_and_reads_a_receipt() {
    let dir = tempfile::tempdir().expect("dir");
    let manifest = format!("{}/sms/plugin.toml", env!("PARCOURS_BUILTIN_PLUGINS_DIR"));
    let run = |input: Value, stubs: Value| -> Value {
        let input_path = dir.path().join("input.json");
        let stubs_path = dir.path().join("stubs.json");
        std::fs::write(&input_path, input.to_string()).expect("input");
        std::fs::write(&stubs_path, stubs.to_string()).expect("stubs");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_parcours"))
            .args(["plugin", "test", &manifest, "--json", "--input"])
            .arg(&input_path)
            .arg("--stubs")
            .arg(&stubs_path)
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)))
    };
    let send = json!({"params": {"message_id": "m-1", "channel": "sms", "category": "marketing",
        "to": "+15550100", "message": {"body": "Hello"}}});
    let api = "http://127.0.0.1:9/sms";
    let report = run(
        send.clone(),
        json!([{"method": "POST", "url": api, "status": 201, "body": {"id": "SM-9"}}]),
    );
    assert_eq!(report["kind"], "channel-provider", "{report}");
    assert_eq!(
        report["outcome"]["ok"]["provider_message_id"], "SM-9",
        "{report}"
    );
    assert_eq!(
        report["http"][0]["request_body"],
        json!({"from": "Parcours", "to": "+15550100", "text": "Hello", "client_ref": "m-1"}),
        "{report}"
    );
    assert_eq!(
        report["http"][0]["request_headers"]["idempotency-key"],
        "m-1"
    );

    let report = run(
        send,
        json!([{"method": "POST", "url": api, "status": 429, "headers": {"retry-after": "30"}}]),
    );
    assert_eq!(report["outcome"]["error"]["kind"], "retryable", "{report}");

    let report = run(
        json!({"webhook": "client_ref=m-1&status=delivered", "content_type": "application/x-www-form-urlencoded"}),
        json!([]),
    );
    assert_eq!(
        report["outcome"]["ok"],
        json!([{"kind": "delivered", "message_id": "m-1", "at_unix_ms": null, "bounce": null,
            "reason": null, "url": null}]),
        "{report}"
    );
}

/// A provider plugin loaded at start may be a channel's default provider, and is then
/// not removed while the engine runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_plugin_can_be_a_channels_default_and_stays_while_it_is() {
    let t = TestEngine::start_with(|s| {
        crate::support::with_plugins(s);
        s.sms_provider = "sms".into();
    })
    .await;
    let body = removal_refused(&t, "sms").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sms_provider"),
        "{body}"
    );
    // The push plugin is no channel's default: it goes.
    let (status, body) = t
        .send(Method::DELETE, "/v1/plugins/push", None, "application/json")
        .await;
    assert_eq!(status, 200, "{body}");
}

//! API tokens with scopes, end to end: tokens made with `parcours token create`, 401
//! without a known token, 403 with the wrong scope, Segment write keys as ingest tokens,
//! tokens created and revoked while the engine runs, and no open non-local API.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::TestEngine;

fn parcours(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parcours"))
        .args(args)
        .output()
        .expect("run parcours");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn create(file: &str, name: &str, scope: &str) -> String {
    let (ok, token, err) = parcours(&["token", "create", name, "--scope", scope, "--tokens", file]);
    assert!(ok, "{err}");
    assert!(token.starts_with("pct_"), "{token}");
    token
}

async fn call(
    t: &TestEngine,
    method: reqwest::Method,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut req = crate::support::client().request(method, t.url(path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (status, r.json().await.unwrap_or(Value::Null), challenge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_need_the_right_scope_and_take_effect_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let f = file.to_str().unwrap();
    let admin = create(f, "ops", "admin");
    let ingest = create(f, "tracker", "ingest");
    let read = create(f, "dashboard", "read");
    // Only hashes are stored.
    let stored = std::fs::read_to_string(&file).unwrap();
    for token in [&admin, &ingest, &read] {
        assert!(!stored.contains(token.as_str()), "{stored}");
    }
    let (ok, list, _) = parcours(&["token", "list", "--tokens", f]);
    assert!(
        ok && list.contains("tracker\tingest") && !list.contains("pct_"),
        "{list}"
    );

    let tokens = file.clone();
    let t = TestEngine::start_with(move |s| {
        crate::support::with_plugins(s);
        s.require_auth = true;
        s.tokens_file = Some(tokens);
        s.segment_write_keys = vec!["seg-key".into()];
    })
    .await;
    let bearer = |t: &str| format!("Bearer {t}");
    use reqwest::Method as M;

    let (s, _, _) = call(&t, M::GET, "/healthz", None, None).await;
    assert_eq!(s, 200, "the health check stays open");
    let (s, body, challenge) = call(&t, M::GET, "/v1/journeys", None, None).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (401, Some("UNAUTHORIZED")),
        "{body}"
    );
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
    let (s, _, _) = call(&t, M::GET, "/v1/journeys", Some("Bearer pct_guess"), None).await;
    assert_eq!(s, 401);

    let event = json!({"type": "signup", "profile_id": "ada"});
    let journey = json!({"entry": {"type": "event", "event": "signup"}, "start": "done", "nodes": {"done": {"type": "end"}}});
    // ingest: events only.
    let (s, _, _) = call(
        &t,
        M::POST,
        "/v1/events",
        Some(&bearer(&ingest)),
        Some(event.clone()),
    )
    .await;
    assert_eq!(s, 202);
    let (s, body, _) = call(&t, M::GET, "/v1/journeys", Some(&bearer(&ingest)), None).await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("scope ingest"),
        "{body}"
    );
    // read: every GET, nothing else.
    let (s, _, _) = call(&t, M::GET, "/v1/journeys", Some(&bearer(&read)), None).await;
    assert_eq!(s, 200);
    let (s, _, _) = call(
        &t,
        M::POST,
        "/v1/events",
        Some(&bearer(&read)),
        Some(event.clone()),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _, _) = call(
        &t,
        M::PUT,
        "/v1/journeys/j",
        Some(&bearer(&read)),
        Some(journey.clone()),
    )
    .await;
    assert_eq!(s, 403);
    // admin: everything.
    let (s, body, _) = call(
        &t,
        M::PUT,
        "/v1/journeys/j",
        Some(&bearer(&admin)),
        Some(journey),
    )
    .await;
    assert!(s < 300, "{s} {body}");
    let (s, _, _) = call(
        &t,
        M::POST,
        "/v1/events",
        Some(&bearer(&admin)),
        Some(event),
    )
    .await;
    assert_eq!(s, 202);

    // Segment libraries send the write key as the Basic-auth user name: an ingest token
    // or a configured write key.
    use base64::Engine as _;
    let basic = |user: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:"))
        )
    };
    let track = json!({"type": "track", "userId": "ada", "event": "Signed Up"});
    for user in [ingest.as_str(), "seg-key"] {
        for path in ["/v1/segment/v1/track", "/v1/track"] {
            let (s, body, _) =
                call(&t, M::POST, path, Some(&basic(user)), Some(track.clone())).await;
            assert_eq!(s, 200, "{user} {path}: {body}");
        }
    }

    // Created while the engine runs: accepted within a second or two; revoked: refused.
    let late = create(f, "late", "read");
    crate::support::eventually(|| async {
        let (s, _, _) = call(&t, M::GET, "/v1/journeys", Some(&bearer(&late)), None).await;
        (s == 200).then_some(())
    })
    .await;
    let (ok, _, err) = parcours(&["token", "revoke", "late", "--tokens", f]);
    assert!(ok, "{err}");
    crate::support::eventually(|| async {
        let (s, _, _) = call(&t, M::GET, "/v1/journeys", Some(&bearer(&late)), None).await;
        (s == 401).then_some(())
    })
    .await;
}

/// An engine started with no token (a loopback address, open) closes its API when the
/// first token is created, without a restart; the scheme is case-insensitive; revoking
/// the last token opens it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_token_created_while_running_is_enforced() {
    use reqwest::Method as M;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let f = file.to_str().unwrap().to_string();
    let tokens = file.clone();
    let t = TestEngine::start_with(move |s| s.tokens_file = Some(tokens)).await;
    let journey = json!({"entry": {"type": "event", "event": "signup"}, "start": "done", "nodes": {"done": {"type": "end"}}});
    let (s, body, _) = call(&t, M::PUT, "/v1/journeys/x", None, Some(journey.clone())).await;
    assert_eq!(s, 200, "open while there is no token: {body}");

    let admin = create(&f, "ops", "admin");
    crate::support::eventually(|| async {
        let (s, _, _) = call(&t, M::PUT, "/v1/journeys/x", None, Some(journey.clone())).await;
        (s == 401).then_some(())
    })
    .await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (s, body, _) = call(
            &t,
            M::PUT,
            "/v1/journeys/x",
            Some(&format!("{scheme} {admin}")),
            Some(journey.clone()),
        )
        .await;
        assert_eq!(s, 200, "{scheme}: {body}");
    }
    let (ok, _, err) = parcours(&["token", "revoke", "ops", "--tokens", &f]);
    assert!(ok, "{err}");
    crate::support::eventually(|| async {
        let (s, _, _) = call(&t, M::GET, "/v1/journeys", None, None).await;
        (s == 200).then_some(())
    })
    .await;
}

#[test]
fn serve_refuses_a_non_local_address_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("engine.db");
    let (ok, _, err) = parcours(&[
        "serve",
        "--db",
        db.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("refusing to serve 0.0.0.0:0 without API tokens"),
        "{err}"
    );
    assert!(err.contains("parcours token create"), "{err}");
}

//! Bad input gets a 4xx with a located message, and nothing accepted before is lost.

use serde_json::json;

use crate::support::TestEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_definitions_are_rejected_with_located_problems() {
    let t = TestEngine::start().await;
    let cases: &[(&str, &str, &str)] = &[
        (
            "entry: {type: event, event: e}\nstart: wait_2d\nnodes:\n  wait_2d: {type: wait, duration: P2X}\n",
            "nodes.wait_2d.duration",
            "\"P2X\" is not an ISO-8601 duration",
        ),
        (
            "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: wait, duration: P1D, next: nowhere}\n",
            "nodes.a.next",
            "\"nowhere\" is not a node",
        ),
        (
            "entry: {type: event, event: e}\nstart: missing\nnodes:\n  a: {type: end}\n",
            "start",
            "is not a node",
        ),
        (
            "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: end}\n  lost: {type: end}\n",
            "nodes.lost",
            "unreachable",
        ),
        (
            "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: condition, branches: [{when: 'true', next: b}]}\n  b: {type: update_profile, set: {n: '1'}, next: a}\n",
            "nodes.a",
            "loop with no wait or reaction",
        ),
        (
            "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: condition, branches: [{when: 'event.data.x >', next: b}]}\n  b: {type: end}\n",
            "nodes.a.branches[0].when",
            "line 1, column",
        ),
        (
            "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: wait, until: 'next tuesday'}\n",
            "nodes.a.until",
            "is not a date-time",
        ),
        (
            "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: end}\nproperties: {start_at: '2026-13-01'}\n",
            "properties.start_at",
            "RFC 3339",
        ),
        (
            "entry: {type: read_audience, audience: all, schedule: {type: daily, at: '9h'}}\nstart: a\nnodes:\n  a: {type: end}\n",
            "entry.schedule.at",
            "not a local time",
        ),
        (
            "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: action, action: sms, next: b}\n  b: {type: end}\n",
            "nodes.a.action",
            "unknown action \"sms\"",
        ),
        (
            "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: wait, durration: P1D}\n",
            "nodes.a",
            "unknown field `durration`",
        ),
        (
            "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: end}\nproperties: {time_zone: Mars/Olympus}\n",
            "properties.time_zone",
            "not an IANA time zone",
        ),
        (
            "{\"entry\": {\"type\": \"event\", \"event\": \"e\"}, \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"end\"}, \"a\": {\"type\": \"end\"}}}",
            "nodes",
            "duplicate",
        ),
    ];
    for (definition, location, message) in cases {
        let (status, body) = t.validate(definition).await;
        assert!(
            status == 400 || status == 422,
            "{definition}: {status} {body}"
        );
        let problems = body["problems"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![json!({"path": body["location"], "message": body["message"]})]);
        assert!(
            problems
                .iter()
                .any(|p| p["path"].as_str().unwrap_or("").starts_with(location)
                    && p["message"].as_str().unwrap_or("").contains(message)),
            "{definition}\nexpected {location}: {message}\ngot {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_an_invalid_draft_fails_and_keeps_the_live_version() {
    let t = TestEngine::start().await;
    let good =
        "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: wait, duration: P1D}\n";
    assert_eq!(t.publish("j", good).await, 1);
    let bad = good.replace("P1D", "P2X");
    let (status, body) = t
        .send(
            reqwest::Method::PUT,
            "/v1/journeys/j",
            Some(bad.as_bytes()),
            "application/yaml",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["valid"], false);
    assert_eq!(body["problems"][0]["path"], "nodes.a.duration");
    let (status, body) = t.post_json("/v1/journeys/j/publish", &json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "INVALID_JOURNEY");
    assert_eq!(body["location"], "nodes.a.duration");
    // Version 1 still takes entries.
    t.event("e", "p", json!({})).await;
    let i = t.instance_in("p", "j", "waiting").await;
    assert_eq!(i["version"], 1);
    let (status, body) = t.get("/v1/journeys/j").await;
    assert_eq!(status, 200);
    assert_eq!(body["versions"].as_array().unwrap().len(), 1);
    assert_eq!(body["status"], "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_get_4xx_with_location_and_batches_are_all_or_nothing() {
    let t = TestEngine::start_with(|s| {
        s.max_event_bytes = 1024;
        s.max_batch_events = 3;
    })
    .await;
    let ok = t.event("signup", "kept", json!({})).await;

    let (status, body) = t
        .send(
            reqwest::Method::POST,
            "/v1/events",
            Some(b"{not json"),
            "application/json",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "INVALID_REQUEST");

    let batch = json!({"events": [
        {"id": "b1", "type": "signup", "profile_id": "x"},
        {"id": "b2", "type": "signup"},
    ]});
    let (status, body) = t.post_json("/v1/events", &batch).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["location"], "events[1].profile_id");
    assert!(
        body["message"].as_str().unwrap().contains("profile_id"),
        "{body}"
    );
    // Nothing of the rejected batch was accepted.
    assert_eq!(t.get("/v1/events/b1").await.0, 404);

    let (status, body) = t
        .post_json(
            "/v1/events",
            &json!([{"type": "signup", "profile_id": "x", "timestamp": "yesterday"}]),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["location"], "[0].timestamp");

    let (status, body) = t
        .post_json("/v1/events", &json!({"type": "", "profile_id": "x"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["location"], "type");

    let big = "x".repeat(2048);
    let (status, body) = t
        .post_json(
            "/v1/events",
            &json!({"type": "signup", "profile_id": "x", "data": {"blob": big}}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "EVENT_TOO_LARGE");

    let many: Vec<_> = (0..4)
        .map(|i| json!({"type": "t", "profile_id": format!("p{i}")}))
        .collect();
    let (status, body) = t.post_json("/v1/events", &json!(many)).await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "BATCH_TOO_LARGE");

    // The event accepted first is still there.
    assert_eq!(t.processed(&ok).await["id"], ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_bad_profiles_are_rejected() {
    let t = TestEngine::start_with(|s| s.max_body_bytes = 4096).await;
    let huge = vec![b' '; 8192];
    let (status, body) = t
        .send(
            reqwest::Method::POST,
            "/v1/events",
            Some(&huge),
            "application/json",
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "BODY_TOO_LARGE");

    let (status, body) = t
        .send(
            reqwest::Method::PUT,
            "/v1/profiles/p",
            Some(br#"{"timezone": "Nowhere/Land"}"#),
            "application/json",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["location"], "timezone");
    let (status, body) = t
        .send(
            reqwest::Method::PATCH,
            "/v1/profiles/p",
            Some(br#"{"attributes": [1]}"#),
            "application/json",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["location"], "attributes");
    assert_eq!(t.get("/v1/profiles/p").await.0, 404);
    assert_eq!(t.get("/v1/nothing/here").await.0, 404);
}

/// Every bad input of the correctness review: its status, code and location, and an
/// answer in the JSON error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_answered_with_its_status_code_and_location() {
    let t = TestEngine::start_with(|s| {
        s.expr.max_source_bytes = 64 * 1024;
        s.segment_write_keys = vec!["wk".into()];
    })
    .await;
    let long_id = "p".repeat(100 * 1024);
    let long_event = format!(r#"{{"type": "signup", "profile_id": "{long_id}"}}"#);
    let nested = |n: usize| {
        format!(
            "entry: {{type: event, event: e, when: '{}true{}'}}\nstart: a\nnodes:\n  a: {{type: end}}\n",
            "(".repeat(n),
            ")".repeat(n)
        )
    };
    let deep_ok = nested(64);
    let deep_bad = nested(65);
    // A 40 KB expression with a fault at its end.
    let huge_expr = format!(
        "entry: {{type: event, event: e, when: '{} &&'}}\nstart: a\nnodes:\n  a: {{type: end}}\n",
        vec!["event.data.amount > 1"; 1_900].join(" && ")
    );
    type Case<'a> = (&'a str, &'a str, &'a [u8], u16, &'a str, &'a str);
    let cases: &[Case] = &[
        // (method, path, body, status, code, location)
        (
            "POST",
            "/v1/events",
            br#"{"profile_id": "a"}"#,
            400,
            "INVALID_REQUEST",
            "type",
        ),
        (
            "POST",
            "/v1/events",
            br#"[{"type": "a", "profile_id": "x"}, {"profile_id": "a"}]"#,
            400,
            "INVALID_REQUEST",
            "[1].type",
        ),
        (
            "POST",
            "/v1/events",
            br#"{"events": [{"type": "a", "profile_id": "x"}, {"profile_id": "a"}]}"#,
            400,
            "INVALID_REQUEST",
            "events[1].type",
        ),
        (
            "POST",
            "/v1/events",
            br#"{"type": "a", "profile_"#,
            400,
            "INVALID_REQUEST",
            "line 1 column 23",
        ),
        (
            "POST",
            "/v1/events",
            br#"{"type": "a", "profile_id": "#,
            400,
            "INVALID_REQUEST",
            "profile_id",
        ),
        (
            "POST",
            "/v1/events",
            b"{\"type\": \"signup\", \"profile_id\": \"a\\u0000b\"}",
            422,
            "INVALID_EVENT",
            "profile_id",
        ),
        (
            "POST",
            "/v1/events",
            b"[{\"type\": \"sign\\u0000up\", \"profile_id\": \"a\"}]",
            422,
            "INVALID_EVENT",
            "[0].type",
        ),
        (
            "POST",
            "/v1/events",
            b"{\"type\": \"signup\", \"profile_id\": \"a\\nb\"}",
            422,
            "INVALID_EVENT",
            "profile_id",
        ),
        ("DELETE", "/v1/events", b"", 405, "METHOD_NOT_ALLOWED", ""),
        (
            "PATCH",
            "/v1/journeys/x/publish",
            b"{}",
            405,
            "METHOD_NOT_ALLOWED",
            "",
        ),
        (
            "POST",
            "/v1/events",
            br#"{"type": "signup", "profile_id": "a", "data": "text"}"#,
            422,
            "INVALID_EVENT",
            "data",
        ),
        (
            "POST",
            "/v1/events",
            br#"{"type": "signup", "profile_id": "a", "data": 5}"#,
            422,
            "INVALID_EVENT",
            "data",
        ),
        (
            "POST",
            "/v1/business-events",
            br#"{"type": "stock", "data": [1]}"#,
            422,
            "INVALID_EVENT",
            "data",
        ),
        (
            "POST",
            "/v1/events",
            long_event.as_bytes(),
            422,
            "INVALID_EVENT",
            "profile_id",
        ),
        (
            "PUT",
            "/v1/profiles/a%00b",
            br#"{"attributes": {}}"#,
            422,
            "INVALID_PROFILE",
            "id",
        ),
        (
            "PATCH",
            "/v1/profiles/a",
            b"{\"aliases\": {\"email\": \"a\\u0000@x.com\"}}",
            400,
            "INVALID_PROFILE",
            "aliases.email",
        ),
        (
            "POST",
            "/v1/segment/track",
            b"{\"writeKey\": \"wk\", \"userId\": \"u\\u0000\", \"event\": \"e\"}",
            422,
            "INVALID_SEGMENT_CALL",
            "userId",
        ),
        (
            "POST",
            "/v1/journeys/validate",
            b"{\"start\": \"a\",",
            400,
            "INVALID_JOURNEY",
            "line 1 column 14",
        ),
    ];
    for (method, path, body, status, code, location) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let body = (!body.is_empty()).then_some(*body);
        let (got, answer) = t.send(method.clone(), path, body, "application/json").await;
        let case = format!("{method} {path}");
        assert_eq!(got, *status, "{case}: {answer}");
        assert_eq!(answer["code"], *code, "{case}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{case}: {answer}"
        );
        let at = answer["location"].as_str().unwrap_or("");
        assert_eq!(at, *location, "{case}: {answer}");
    }
    // The depth limit is what the setting says (64 brackets pass), and names it.
    let (status, body) = t.validate(&deep_ok).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = t.validate(&deep_bad).await;
    assert_eq!(
        (status, body["location"].as_str()),
        (422, Some("entry.when")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("expr.max_expr_depth"),
        "{body}"
    );
    // A fault in a 40 KB expression quotes a bounded excerpt, not the expression twice.
    let (status, body) = t.validate(&huge_expr).await;
    assert_eq!(status, 422, "{body}");
    let text = body.to_string();
    assert!(text.len() < 2_000, "{} bytes: {}", text.len(), &text[..300]);
    assert!(text.contains('…'), "{text}");
    // Nothing of the refused requests was stored.
    assert_eq!(t.get("/v1/profiles/a").await.0, 404);
}

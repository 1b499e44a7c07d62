//! Profiles with aliases, audiences kept up to date on every write, and the three
//! audience-driven journey types (read audience, audience qualification, business event),
//! with exit criteria, capping and jumps; through the HTTP API on a test clock.

use jiff::{Span, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestEngine, eventually, path};

async fn put(t: &TestEngine, path: &str, body: Value) -> Value {
    let (status, answer) = t.post_or_put(Method::PUT, path, &body).await;
    assert!(
        status == 200 || status == 201,
        "PUT {path}: {status} {answer}"
    );
    answer
}

async fn patch(t: &TestEngine, path: &str, body: Value) -> Value {
    let (status, answer) = t.post_or_put(Method::PATCH, path, &body).await;
    assert_eq!(status, 200, "PATCH {path}: {answer}");
    answer
}

/// Waits until a run of `journey` satisfies `check` (newest first); returns it.
async fn run_where(t: &TestEngine, journey: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(|| async {
        let (_, body) = t.get(&format!("/v1/journeys/{journey}/runs")).await;
        body["runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| check(r)).cloned())
    })
    .await
}

fn entered_at(instances: &[Value], journey: &str) -> Vec<Timestamp> {
    instances
        .iter()
        .filter(|i| i["journey_id"] == journey)
        .map(|i| i["entered_at"].as_str().unwrap().parse().unwrap())
        .collect()
}

const DIGEST: &str = r#"
entry:
  type: read_audience
  audience: newsletter
  schedule: {type: daily, at: "09:00"}
  rate: 2
start: send
nodes:
  send: {type: action, action: log, params: {run: event.run_id}}
properties:
  reentrance: {mode: always}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_read_audience_enters_each_member_once_a_day_at_the_rate() {
    let t = TestEngine::start().await;
    put(
        &t,
        "/v1/audiences/newsletter",
        json!({"predicate": "profile.newsletter == true"}),
    )
    .await;
    for i in 0..5 {
        put(
            &t,
            &format!("/v1/profiles/m{i}"),
            json!({"attributes": {"newsletter": true}}),
        )
        .await;
    }
    put(
        &t,
        "/v1/profiles/out",
        json!({"attributes": {"newsletter": false}}),
    )
    .await;
    let (_, audience) = t.get("/v1/audiences/newsletter").await;
    assert_eq!(audience["size"], 5, "{audience}");
    t.publish("digest", DIGEST).await;

    // Published at 08:00; nothing before 09:00.
    t.advance(Span::new().minutes(59));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (_, runs) = t.get("/v1/journeys/digest/runs").await;
    assert_eq!(runs["runs"], json!([]), "{runs}");

    // 09:00: two profiles per second.
    t.advance(Span::new().minutes(1));
    let run = run_where(&t, "digest", |r| r["read"] == 2).await;
    assert_eq!(run["status"], "running");
    assert_eq!(run["scheduled_at"], "2026-03-02T09:00:00Z");
    let run = loop {
        t.advance(Span::new().seconds(1));
        let r = run_where(&t, "digest", |r| {
            r["scheduled_at"] == "2026-03-02T09:00:00Z"
        })
        .await;
        if r["status"] == "finished" {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        (
            run["read"].clone(),
            run["entered"].clone(),
            run["skipped"].clone()
        ),
        (json!(5), json!(5), json!(0)),
        "{run}"
    );
    let mut times = Vec::new();
    for i in 0..5 {
        times.extend(entered_at(&t.instances(&format!("m{i}")).await, "digest"));
    }
    times.sort();
    let start: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
    let offsets: Vec<i64> = times
        .iter()
        .map(|at| at.duration_since(start).as_secs())
        .collect();
    assert_eq!(
        offsets,
        vec![0, 0, 1, 1, 2],
        "entries were not paced at 2 per second"
    );
    assert!(t.instances("out").await.is_empty());

    // Next day at 09:00 every member enters once more.
    t.advance(Span::new().hours(24));
    let day2 = run_where(&t, "digest", |r| {
        r["scheduled_at"] == "2026-03-03T09:00:00Z" && r["read"].as_u64() >= Some(2)
    })
    .await;
    assert_eq!(day2["kind"], "schedule");
    for _ in 0..4 {
        t.advance(Span::new().seconds(1));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    run_where(&t, "digest", |r| {
        r["status"] == "finished" && r["scheduled_at"] == "2026-03-03T09:00:00Z"
    })
    .await;
    for i in 0..5 {
        let n = entered_at(&t.instances(&format!("m{i}")).await, "digest").len();
        assert_eq!(n, 2, "m{i} entered {n} times in two days");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qualification_enters_on_the_write_and_exit_enters_the_exit_journey() {
    let t = TestEngine::start().await;
    t.publish_examples().await;
    let p = put(
        &t,
        "/v1/profiles/ann",
        json!({"attributes": {"tier": "silver"}}),
    )
    .await;
    assert_eq!(p["audiences"], json!([]));

    // The write that makes her gold answers with the membership, and the qualification
    // journey has already started.
    let p = patch(
        &t,
        "/v1/profiles/ann",
        json!({"attributes": {"tier": "gold"}}),
    )
    .await;
    assert_eq!(p["audiences"], json!(["gold"]), "{p}");
    let instances = t.instances("ann").await;
    let welcome = instances
        .iter()
        .find(|i| i["journey_id"] == "gold_welcome")
        .expect("entered at once");
    assert_eq!(welcome["status"], "waiting");
    assert_eq!(welcome["data"]["event"]["audience"], "gold");
    assert_eq!(welcome["data"]["event"]["direction"], "entered");

    // Leaving gold: the exit criterion ends the welcome, the farewell journey runs.
    let p = patch(
        &t,
        "/v1/profiles/ann",
        json!({"attributes": {"tier": "silver"}}),
    )
    .await;
    assert_eq!(p["audiences"], json!([]));
    let welcome = t.instance_in("ann", "gold_welcome", "exited").await;
    assert_eq!(welcome["end_reason"], "EXIT_CRITERIA");
    t.instance_in("ann", "gold_farewell", "completed").await;
    let (_, audiences) = t.get("/v1/profiles/ann/audiences").await;
    let directions: Vec<&str> = audiences["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["direction"].as_str().unwrap())
        .collect();
    assert_eq!(directions, vec!["entered", "exited"], "{audiences}");
    let templates: Vec<String> = t
        .log_calls()
        .iter()
        .map(|c| c.params["template"].to_string())
        .collect();
    assert!(
        templates.contains(&"\"gold-welcome\"".to_string()),
        "{templates:?}"
    );
    assert!(
        templates.contains(&"\"gold-farewell\"".to_string()),
        "{templates:?}"
    );

    // An update_profile node counts as a profile write too: the vip_branch journey makes
    // big spenders gold, which enters them into gold_welcome.
    t.event("order_placed", "bob", json!({"amount": 900})).await;
    let welcome = t.instance_in("bob", "gold_welcome", "waiting").await;
    assert_eq!(welcome["data"]["event"]["direction"], "entered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_event_reaches_exactly_the_audience_and_capping_holds() {
    let t = TestEngine::start().await;
    t.publish_examples().await;
    for (id, attrs) in [
        ("n1", json!({"newsletter": true})),
        ("n2", json!({"newsletter": true, "tier": "gold"})),
        ("n3", json!({"newsletter": true})),
        ("x1", json!({"newsletter": false})),
        ("x2", json!({})),
    ] {
        put(
            &t,
            &format!("/v1/profiles/{id}"),
            json!({"attributes": attrs}),
        )
        .await;
    }
    let (status, answer) = t
        .post_json(
            "/v1/business-events",
            &json!({"id": "restock-1", "type": "stock_back", "data": {"sku": "SKU-9"}}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["runs"].as_array().unwrap().len(), 1, "{answer}");
    let run = run_where(&t, "back_in_stock", |r| r["status"] == "finished").await;
    assert_eq!(
        (run["read"].clone(), run["entered"].clone()),
        (json!(3), json!(3)),
        "{run}"
    );
    assert_eq!(run["kind"], "business_event");
    for member in ["n1", "n2", "n3"] {
        let i = t.instance_in(member, "back_in_stock", "completed").await;
        assert_eq!(i["data"]["event"]["data"]["sku"], "SKU-9");
    }
    for outsider in ["x1", "x2"] {
        assert!(t.instances(outsider).await.is_empty(), "{outsider} entered");
    }
    // The gold member took the in_audience("gold") branch.
    let early: Vec<_> = t
        .log_calls()
        .into_iter()
        .filter(|c| c.params["template"] == "stock-back-early")
        .collect();
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].profile_id, "n2");

    // The same business event again is a duplicate; `when` filters an empty sku.
    let (_, again) = t
        .post_json(
            "/v1/business-events",
            &json!({"id": "restock-1", "type": "stock_back", "data": {"sku": "SKU-9"}}),
        )
        .await;
    assert_eq!(again["status"], "duplicate");
    let (_, filtered) = t
        .post_json(
            "/v1/business-events",
            &json!({"type": "stock_back", "data": {"sku": ""}}),
        )
        .await;
    assert_eq!(filtered["runs"], json!([]));

    // Capping: promotions allows 2 entries per 7 days.
    t.post_json(
        "/v1/business-events",
        &json!({"id": "restock-2", "type": "stock_back", "data": {"sku": "A"}}),
    )
    .await;
    run_where(&t, "back_in_stock", |r| {
        r["trigger"]["id"] == "restock-2" && r["status"] == "finished"
    })
    .await;
    t.post_json(
        "/v1/business-events",
        &json!({"id": "restock-3", "type": "stock_back", "data": {"sku": "B"}}),
    )
    .await;
    let capped = run_where(&t, "back_in_stock", |r| {
        r["trigger"]["id"] == "restock-3" && r["status"] == "finished"
    })
    .await;
    assert_eq!(capped["entered"], 0, "{capped}");
    assert_eq!(capped["skipped_reasons"]["CAPPED"], 3, "{capped}");
    t.advance(Span::new().days(8));
    t.post_json(
        "/v1/business-events",
        &json!({"id": "restock-4", "type": "stock_back", "data": {"sku": "C"}}),
    )
    .await;
    let later = run_where(&t, "back_in_stock", |r| {
        r["trigger"]["id"] == "restock-4" && r["status"] == "finished"
    })
    .await;
    assert_eq!(later["entered"], 3, "{later}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_lists_deletion_exit_events_and_jumps() {
    let t = TestEngine::start().await;
    t.publish_examples().await;

    // An event keyed by an alias reaches the profile.
    put(
        &t,
        "/v1/profiles/carol",
        json!({"aliases": {"email": "carol@example.com"}}),
    )
    .await;
    let (status, answer) = t
        .post_json("/v1/events", &json!({"type": "signup", "identity": {"namespace": "email", "value": "carol@example.com"}, "data": {}}))
        .await;
    assert_eq!(status, 202, "{answer}");
    t.instance_in("carol", "welcome", "waiting").await;
    let (status, err) = t
        .post_json("/v1/events", &json!({"type": "signup", "identity": {"namespace": "email", "value": "nobody@example.com"}}))
        .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["code"], "UNKNOWN_IDENTITY");
    assert_eq!(err["location"], "identity");

    // Deleting a profile ends its instances.
    let (status, _) = t.send(Method::DELETE, "/v1/profiles/carol", None, "").await;
    assert_eq!(status, 204);
    let i = t.instance_in("carol", "welcome", "exited").await;
    assert_eq!(i["end_reason"], "PROFILE_DELETED");
    assert_eq!(t.get("/v1/profiles/carol").await.0, 404);
    let (_, err) = t
        .post_json("/v1/events", &json!({"type": "signup", "identity": {"namespace": "email", "value": "carol@example.com"}, "data": {}}))
        .await;
    assert_eq!(
        err["code"], "UNKNOWN_IDENTITY",
        "the alias went with the profile"
    );

    // Explicit-list audience: members added through the API enter its qualification journey.
    t.publish(
        "beta_invite",
        "entry: {type: audience_qualification, audience: beta_testers}\nstart: hi\nnodes:\n  hi: {type: action, action: log, params: {template: '`beta`'}}\n",
    )
    .await;
    let (status, answer) = t
        .post_json(
            "/v1/audiences/beta_testers/members",
            &json!({"add": ["d1", "d2"]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    t.instance_in("d1", "beta_invite", "completed").await;
    let (_, members) = t.get("/v1/audiences/beta_testers/members?limit=1").await;
    assert_eq!(members["members"][0]["profile_id"], "d1");
    assert_eq!(members["next"], "d1");
    let (_, page2) = t.get("/v1/audiences/beta_testers/members?after=d1").await;
    assert_eq!(page2["members"][0]["profile_id"], "d2");
    let (status, err) = t
        .post_json("/v1/audiences/gold/members", &json!({"add": ["d1"]}))
        .await;
    assert_eq!(
        (status, err["code"].clone()),
        (409, json!("AUDIENCE_IS_COMPUTED"))
    );

    // Exit criterion on an event, and a jump into another journey with mapped data.
    t.publish(
        "followup",
        "entry: {type: event, event: followup_start}\nstart: note\nnodes:\n  note: {type: action, action: log, params: {template: '`followup`', doubled: event.data.doubled}}\n",
    )
    .await;
    t.publish(
        "trial",
        r#"
entry: {type: event, event: trial_started}
start: hand_over
nodes:
  hand_over: {type: jump, journey: followup, data: {doubled: "event.data.n * 2"}, next: wait_week}
  wait_week: {type: wait, duration: P7D}
properties:
  exit: [{type: event, event: purchase}]
"#,
    )
    .await;
    t.event("trial_started", "eve", json!({"n": 21})).await;
    t.instance_in("eve", "followup", "completed").await;
    let jumped = t
        .log_calls()
        .into_iter()
        .find(|c| c.params["template"] == "followup")
        .expect("followup ran");
    assert_eq!(jumped.params["doubled"], 42);
    t.instance_in("eve", "trial", "waiting").await;
    t.event("purchase", "eve", json!({})).await;
    let trial = t.instance_in("eve", "trial", "exited").await;
    assert_eq!(trial["end_reason"], "EXIT_CRITERIA");
    let steps = t.steps(trial["id"].as_str().unwrap()).await;
    assert_eq!(
        path(&steps),
        vec![
            "entry:entered",
            "hand_over:passed",
            "wait_week:waiting",
            "wait_week:ended"
        ]
    );

    // A jump whose target cannot be entered fails with the reason.
    t.publish(
        "bad_jump",
        "entry: {type: event, event: go}\nstart: j\nnodes:\n  j: {type: jump, journey: gold_welcome}\n",
    )
    .await;
    t.event("go", "fay", json!({})).await;
    let failed = t.instance_in("fay", "bad_jump", "failed").await;
    assert_eq!(failed["end_reason"], "JUMP_FAILED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_segment_calls_and_imports_are_ingested() {
    let t = TestEngine::start_with(|s| {
        crate::support::with_plugins(s);
        s.segment_write_keys = vec!["wk-test".into()];
    })
    .await;
    t.publish_examples().await;

    // CloudEvents, structured and batch.
    let ce = json!({"specversion": "1.0", "id": "ce-1", "source": "/signup-form", "type": "signup",
        "subject": "gil", "time": "2026-03-02T08:00:00Z", "data": {"plan": "pro"}});
    let (status, answer) = t
        .send(
            Method::POST,
            "/v1/events",
            Some(ce.to_string().as_bytes()),
            "application/cloudevents+json",
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let i = t.instance_in("gil", "welcome", "waiting").await;
    assert_eq!(i["data"]["event"]["data"]["plan"], "pro");
    let batch = json!([{"specversion": "1.0", "id": "ce-2", "source": "/x", "type": "signup", "profileid": "hal"},
                       {"specversion": "1.0", "id": "ce-3", "type": "signup", "profileid": "ian"}]);
    let (status, err) = t
        .send(
            Method::POST,
            "/v1/events",
            Some(batch.to_string().as_bytes()),
            "application/cloudevents-batch+json",
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["location"], "[1].source");
    // The identity of a CloudEvent is (source, id): the same id from a second source is
    // another event, the same pair again a duplicate.
    let twins = json!([
        {"specversion": "1.0", "id": "ce-1", "source": "/other-form", "type": "visit", "subject": "gil"},
        {"specversion": "1.0", "id": "ce-1", "source": "/signup-form", "type": "signup", "subject": "gil"}
    ]);
    let (status, answer) = t
        .send(
            Method::POST,
            "/v1/events",
            Some(twins.to_string().as_bytes()),
            "application/cloudevents-batch+json",
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["events"],
        json!([{"id": "/other-form#ce-1", "status": "accepted"},
               {"id": "/signup-form#ce-1", "status": "duplicate"}])
    );
    let (status, stored) = t.get("/v1/events/%2Fother-form%23ce-1").await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["type"], "visit");
    // Binary mode: the attributes in `ce-*` headers (percent-encoded), the data as the body.
    let binary = |headers: &[(&str, &str)], body: &'static str| {
        let mut req = t.client.post(t.url("/v1/events")).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let r = binary(
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "ce-9"),
            ("ce-source", "/mobile%20app"),
            ("ce-type", "signup"),
            ("ce-profileid", "kim"),
            ("ce-time", "2026-03-02T08:00:00Z"),
            ("content-type", "application/json"),
        ],
        r#"{"plan": "team"}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["events"][0]["id"], "/mobile app#ce-9", "{answer}");
    let i = t.instance_in("kim", "welcome", "waiting").await;
    assert_eq!(i["data"]["event"]["data"]["plan"], "team");
    let r = binary(
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "ce-10"),
            ("ce-type", "signup"),
            ("ce-profileid", "kim"),
            ("content-type", "application/json"),
        ],
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["location"], "ce-source", "{err}");

    // Segment: identify links the anonymous id; a later track by anonymous id alone
    // reaches the identified profile.
    let segment = |path: &str, key: &str, body: Value| {
        t.client
            .post(t.url(path))
            .basic_auth(key, Some(""))
            .json(&body)
            .send()
    };
    let r = segment("/v1/segment/v1/batch", "wk-test", json!({"batch": [
        {"type": "identify", "userId": "jo", "anonymousId": "anon-7", "traits": {"email": "jo@example.com", "tier": "gold", "newsletter": true}},
        {"type": "track", "anonymousId": "anon-7", "event": "signup", "properties": {"plan": "free"}, "messageId": "m-1"}
    ]})).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, jo) = t.get("/v1/profiles/jo").await;
    assert_eq!(jo["attributes"]["tier"], "gold");
    assert_eq!(
        jo["aliases"],
        json!({"anonymous_id": "anon-7", "email": "jo@example.com"})
    );
    assert_eq!(jo["audiences"], json!(["gold", "newsletter"]));
    let i = t.instance_in("jo", "welcome", "waiting").await;
    assert_eq!(i["data"]["event"]["data"]["plan"], "free");
    let r = segment(
        "/v1/segment/track",
        "wrong",
        json!({"userId": "jo", "event": "x"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = segment("/v1/segment/track", "wk-test", json!({"userId": "jo"}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["location"], "event");
    // Segment calls count in the ingestion metrics like any other events.
    let metrics = t.metrics().await;
    for line in [
        "parcours_events_rejected_total{code=\"UNAUTHORIZED\"} 1",
        "parcours_events_rejected_total{code=\"INVALID_SEGMENT_CALL\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let accepted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("parcours_events_accepted_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(
        accepted, 4,
        "the CloudEvents /signup-form ce-1, /other-form ce-1 and /mobile app ce-9, and the Segment track m-1"
    );

    // Imports: JSON Lines and CSV; a bad record refuses the whole file, located.
    let jsonl = "{\"id\": \"k1\", \"attributes\": {\"newsletter\": true}}\n{\"id\": \"k2\", \"aliases\": {\"email\": \"k2@x.com\"}}\n";
    let (status, answer) = t
        .send(
            Method::POST,
            "/v1/profiles/import",
            Some(jsonl.as_bytes()),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(
        (status, answer["imported"].clone()),
        (200, json!(2)),
        "{answer}"
    );
    // Untyped cells stay as written (phone numbers, postcodes); typed columns convert.
    let csv = "id,tier,newsletter:boolean,phone,zip,alias.email\n\
               k3,gold,true,+33612345678,01234,k3@x.com\n\
               k4,silver,false,0612345678,00000,\n";
    let (status, answer) = t
        .send(
            Method::POST,
            "/v1/profiles/import",
            Some(csv.as_bytes()),
            "text/csv",
        )
        .await;
    assert_eq!(
        (status, answer["imported"].clone()),
        (200, json!(2)),
        "{answer}"
    );
    let (_, k3) = t.get("/v1/profiles/k3").await;
    assert_eq!(k3["audiences"], json!(["gold", "newsletter"]), "{k3}");
    assert_eq!(
        (&k3["attributes"]["phone"], &k3["attributes"]["zip"]),
        (&json!("+33612345678"), &json!("01234")),
        "{k3}"
    );
    let (_, k4) = t.get("/v1/profiles/k4").await;
    assert_eq!(
        (&k4["attributes"]["phone"], &k4["attributes"]["zip"]),
        (&json!("0612345678"), &json!("00000")),
        "{k4}"
    );
    assert_eq!(
        t.instance_in("k3", "gold_welcome", "waiting").await["journey_id"],
        "gold_welcome"
    );
    let bad = "{\"id\": \"k5\"}\n{\"id\": \"k6\", \"timezone\": \"Mars/Olympus\"}\n";
    let (status, err) = t
        .send(
            Method::POST,
            "/v1/profiles/import",
            Some(bad.as_bytes()),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["location"], "line 2.timezone");
    assert_eq!(
        t.get("/v1/profiles/k5").await.0,
        404,
        "nothing of a refused file is imported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_definitions_and_references_are_validated() {
    let t = TestEngine::start().await;
    let (status, err) = t
        .post_or_put(
            Method::PUT,
            "/v1/audiences/broken",
            &json!({"predicate": "profile.tier =="}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["location"], "predicate");
    let (status, err) = t
        .post_or_put(
            Method::PUT,
            "/v1/capping-rules/c",
            &json!({"max": 2, "period": "P2X"}),
        )
        .await;
    assert_eq!(
        (status, err["location"].clone()),
        (422, json!("period")),
        "{err}"
    );
    let (status, body) = t
        .send(
            Method::PUT,
            "/v1/journeys/nope",
            Some(b"entry: {type: read_audience, audience: ghosts, schedule: {type: cron, expression: '0 9 * *'}}\nstart: e\nnodes:\n  e: {type: end}\nproperties: {capping: [nocap], exit: [{type: audience_exit, audience: ghosts}]}\n"),
            "",
        )
        .await;
    assert_eq!(status, 200);
    let paths: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    for expected in [
        "entry.audience",
        "entry.schedule.expression",
        "properties.capping[0]",
        "properties.exit[0].audience",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
}

/// The real binary is killed (SIGKILL) in the middle of a daily read-audience run; after a
/// restart the run resumes where it stopped and every member enters exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_audience_run_resumes_after_sigkill_without_double_entries() {
    use crate::restart::{Server, get};
    const MEMBERS: usize = 300;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("journeys")).expect("mkdir");
    let resources = dir.path().join("resources.yaml");
    std::fs::write(
        &resources,
        "audiences:\n  everyone: {predicate: 'profile.n >= 0'}\n",
    )
    .expect("write");
    let resources = resources.to_str().expect("utf-8 path");
    let client = crate::support::client();

    let server = Server::start_with(dir.path(), &["--resources", resources]);
    let lines: String = (0..MEMBERS)
        .map(|n| format!("{{\"id\": \"r{n:03}\", \"attributes\": {{\"n\": {n}}}}}\n"))
        .collect();
    let r = client
        .post(format!("{}/v1/profiles/import", server.base))
        .header("content-type", "application/x-ndjson")
        .body(lines)
        .send()
        .await
        .expect("import");
    assert_eq!(r.status().as_u16(), 200);
    // A daily journey whose time of day comes two seconds after publication; 100 profiles
    // per second, so the run takes about 3 s.
    let at = (Timestamp::now() + jiff::SignedDuration::from_secs(2))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .time()
        .strftime("%H:%M:%S")
        .to_string();
    let journey = format!(
        "entry: {{type: read_audience, audience: everyone, rate: 100, schedule: {{type: daily, at: '{at}'}}}}\nstart: e\nnodes:\n  e: {{type: end}}\n"
    );
    let r = client
        .put(format!("{}/v1/journeys/blast", server.base))
        .body(journey)
        .send()
        .await
        .expect("draft");
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .post(format!("{}/v1/journeys/blast/publish", server.base))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status().as_u16(), 201);
    let base = server.base.clone();
    let partial = eventually(|| async {
        let (_, body) = get(&client, format!("{base}/v1/journeys/blast/runs")).await;
        let read = body["runs"][0]["read"].as_u64().unwrap_or(0);
        (read > 0 && (read as usize) < MEMBERS).then_some(read)
    })
    .await;
    server.kill();

    let server = Server::start_with(dir.path(), &["--resources", resources]);
    let base = server.base.clone();
    let run = eventually(|| async {
        let (_, body) = get(&client, format!("{base}/v1/journeys/blast/runs")).await;
        let runs = body["runs"].as_array().cloned().unwrap_or_default();
        (runs.len() == 1 && runs[0]["status"] == "finished").then(|| runs[0].clone())
    })
    .await;
    assert_eq!(run["read"], MEMBERS, "{run}");
    assert_eq!(run["entered"], MEMBERS, "{run}");
    assert!(partial < MEMBERS as u64);
    for n in 0..MEMBERS {
        let (_, body) = get(&client, format!("{base}/v1/profiles/r{n:03}/instances")).await;
        let count = body["instances"].as_array().map_or(0, |l| {
            l.iter().filter(|i| i["journey_id"] == "blast").count()
        });
        assert_eq!(count, 1, "r{n:03} entered {count} times");
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_only_take_new_members_and_stop_at_until() {
    let t = TestEngine::start().await;
    put(
        &t,
        "/v1/audiences/fans",
        json!({"predicate": "profile.fan == true"}),
    )
    .await;
    for id in ["a", "b"] {
        put(
            &t,
            &format!("/v1/profiles/{id}"),
            json!({"attributes": {"fan": true}}),
        )
        .await;
    }
    t.publish(
        "weekly_news",
        "entry: {type: read_audience, audience: fans, incremental: true, until: '2026-03-10T00:00:00Z', schedule: {type: weekly, days: [tuesday], at: '07:30'}}\nstart: e\nnodes:\n  e: {type: end}\nproperties: {reentrance: {mode: always}}\n",
    )
    .await;
    // Monday 08:00 → Tuesday 07:30: a and b.
    t.advance(Span::new().hours(23).minutes(30));
    let first = run_where(&t, "weekly_news", |r| r["status"] == "finished").await;
    assert_eq!(first["entered"], 2, "{first}");
    put(&t, "/v1/profiles/c", json!({"attributes": {"fan": true}})).await;
    // The next Tuesday is past `until`: no run. Before it, nothing either.
    t.advance(Span::new().days(7));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, runs) = t.get("/v1/journeys/weekly_news/runs").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");

    // A second journey without `until`, published after the first run: incremental runs
    // after its first one only take members who joined since.
    t.publish(
        "daily_news",
        "entry: {type: read_audience, audience: fans, incremental: true, schedule: {type: cron, expression: '0 6 * * *'}}\nstart: e\nnodes:\n  e: {type: end}\nproperties: {reentrance: {mode: always}}\n",
    )
    .await;
    t.advance(Span::new().hours(23));
    let day1 = run_where(&t, "daily_news", |r| r["status"] == "finished").await;
    assert_eq!(day1["entered"], 3, "{day1}");
    put(&t, "/v1/profiles/d", json!({"attributes": {"fan": true}})).await;
    t.advance(Span::new().days(1));
    let day2 = run_where(&t, "daily_news", |r| {
        r["status"] == "finished" && r["id"] != day1["id"]
    })
    .await;
    assert_eq!(
        (day2["read"].clone(), day2["entered"].clone()),
        (json!(1), json!(1)),
        "{day2}"
    );
    assert_eq!(entered_at(&t.instances("d").await, "daily_news").len(), 1);
}

/// Identity stitching: a profile made by anonymous Segment calls is merged into the
/// known profile when an `identify` names both ids (posted where `@segment/analytics-node`
/// posts: `/v1/batch`, `/v1/identify` at the engine's root), or by an `alias` call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_profile_is_merged_into_the_identified_one() {
    let t = TestEngine::start_with(|s| {
        crate::support::with_plugins(s);
        s.segment_write_keys = vec!["wk".into()];
    })
    .await;
    t.publish_examples().await;
    let segment = |path: &str, body: Value| {
        let request = t
            .client
            .post(t.url(path))
            .basic_auth("wk", Some(""))
            .json(&body);
        async move {
            let r = request.send().await.expect("segment call");
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 200, "{body}");
        }
    };

    // Anonymous browsing: traits, a list membership, a sign-up that enters `welcome`.
    segment("/v1/batch", json!({"batch": [
        {"type": "identify", "anonymousId": "anon-9", "traits": {"color": "blue", "tier": "silver"}},
        {"type": "track", "anonymousId": "anon-9", "event": "signup", "properties": {"first_name": "Kay"}},
    ]}))
    .await;
    let anonymous = t.instance_in("anon-9", "welcome", "waiting").await;
    t.post_json(
        "/v1/audiences/beta_testers/members",
        &json!({"add": ["anon-9"]}),
    )
    .await;
    // The known profile, with its own tier.
    t.post_or_put(
        Method::PUT,
        "/v1/profiles/kay",
        &json!({"attributes": {"tier": "gold"}}),
    )
    .await;

    // The user logs in.
    segment(
        "/v1/identify",
        json!({"userId": "kay", "anonymousId": "anon-9", "traits": {"email": "kay@example.com"}}),
    )
    .await;
    assert_eq!(t.get("/v1/profiles/anon-9").await.0, 404, "merged away");
    let (_, kay) = t.get("/v1/profiles/kay").await;
    assert_eq!(
        kay["attributes"],
        json!({"tier": "gold", "color": "blue", "email": "kay@example.com"}),
        "the known profile's attributes win: {kay}"
    );
    assert_eq!(
        kay["aliases"],
        json!({"anonymous_id": "anon-9", "email": "kay@example.com"})
    );
    assert_eq!(kay["audiences"], json!(["beta_testers", "gold"]), "{kay}");

    // The anonymous welcome instance moved: same node, same data, a new id.
    let moved = t.instance_in("kay", "welcome", "waiting").await;
    assert_ne!(moved["id"], anonymous["id"]);
    assert_eq!(moved["node"], anonymous["node"]);
    assert_eq!(moved["data"]["event"]["data"]["first_name"], "Kay");
    let steps = t.steps(moved["id"].as_str().unwrap()).await;
    assert_eq!(steps[0]["code"], "PROFILE_MERGED", "{steps:?}");
    let ended = t.steps(anonymous["id"].as_str().unwrap()).await;
    let last = ended.last().expect("steps");
    assert_eq!(
        (&last["status"], &last["code"]),
        (&json!("ended"), &json!("PROFILE_MERGED"))
    );
    // Its timer runs on: two days later it goes on for the known profile.
    t.advance(jiff::Span::new().days(2).hours(1));
    let done = t.instance_in("kay", "welcome", "completed").await;
    assert_eq!(done["id"], moved["id"]);
    // A later anonymous call reaches the known profile.
    segment(
        "/v1/track",
        json!({"anonymousId": "anon-9", "event": "order_placed", "messageId": "o-1"}),
    )
    .await;
    let order = t.processed("o-1").await;
    assert_eq!(order["profile_id"], "kay", "{order}");

    // Both in the same journey: the known profile keeps its own instance; the merged
    // one's ends.
    segment(
        "/v1/batch",
        json!({"batch": [
            {"type": "track", "anonymousId": "anon-10", "event": "signup"},
            {"type": "track", "userId": "lee", "event": "signup"},
        ]}),
    )
    .await;
    let theirs = t.instance_in("anon-10", "welcome", "waiting").await;
    let own = t.instance_in("lee", "welcome", "waiting").await;
    segment(
        "/v1/alias",
        json!({"userId": "lee", "previousId": "anon-10"}),
    )
    .await;
    let live: Vec<Value> = t
        .instances("lee")
        .await
        .into_iter()
        .filter(|i| i["journey_id"] == "welcome" && i["status"] == "waiting")
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["id"], own["id"]);
    let ended = t.steps(theirs["id"].as_str().unwrap()).await;
    assert_eq!(ended.last().unwrap()["code"], "PROFILE_MERGED");

    // The same through the API, with its errors.
    let (status, err) = t
        .post_json("/v1/profiles/lee/merge", &json!({"from": "nobody"}))
        .await;
    assert_eq!(
        (status, err["location"].as_str()),
        (404, Some("from")),
        "{err}"
    );
    let (status, err) = t
        .post_json("/v1/profiles/lee/merge", &json!({"from": "lee"}))
        .await;
    assert_eq!(
        (status, err["location"].as_str()),
        (400, Some("from")),
        "{err}"
    );
    t.post_or_put(
        Method::PUT,
        "/v1/profiles/guest",
        &json!({"attributes": {"cart": 3}}),
    )
    .await;
    let (status, lee) = t
        .post_json("/v1/profiles/lee/merge", &json!({"from": "guest"}))
        .await;
    assert_eq!(status, 200, "{lee}");
    assert_eq!(lee["attributes"]["cart"], 3, "{lee}");
}

/// A merge is two commits in two partitions; one recorded by the first and not applied
/// by the second (a crash between them) is applied when the engine starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_left_half_done_by_a_crash_is_applied_at_start() {
    use parcours_engine::store::sqlite::{SqliteStore, StoreOptions};
    use parcours_engine::store::{PartitionStore, ProfileMerge, WriteBatch};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crashed.db");
    let at: jiff::Timestamp = crate::support::START.parse().unwrap();
    {
        let store = SqliteStore::open(
            &path,
            StoreOptions::from(&parcours_engine::Settings::default()),
        )
        .expect("store");
        let merge = ProfileMerge {
            id: "m-1".into(),
            from: "anon-1".into(),
            into: "known".into(),
            at,
            attributes: json!({"color": "red"}),
            timezone: Some("Asia/Tokyo".into()),
            aliases: [("anonymous_id".to_string(), "anon-1".to_string())].into(),
            lists: Vec::new(),
            capping: Vec::new(),
            instances: Vec::new(),
        };
        store
            .commit(std::sync::Arc::new(WriteBatch {
                merges: vec![merge],
                ..WriteBatch::default()
            }))
            .await
            .expect("commit");
    }
    let t = TestEngine::start_with(|s| s.db_path = path.clone()).await;
    let (status, known) = t.get("/v1/profiles/known").await;
    assert_eq!(status, 200, "{known}");
    assert_eq!(known["attributes"], json!({"color": "red"}));
    assert_eq!(known["timezone"], "Asia/Tokyo");
    assert_eq!(known["aliases"], json!({"anonymous_id": "anon-1"}));
    let left = t.store.pending_merges().await.expect("read");
    assert!(left.is_empty(), "{left:?}");
}

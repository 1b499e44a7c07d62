//! Journeys run end to end: an event on `POST /v1/events` to observable effects (log
//! action calls, messages in the outbox, step events, profile changes), on a test clock.

use jiff::Span;
use serde_json::json;

use crate::support::{TestEngine, eventually, path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_journey_runs_from_event_to_an_email_and_through_a_two_day_wait() {
    let t = TestEngine::start().await;
    t.publish_examples().await;
    let (_, _) = t
        .send(
            reqwest::Method::PUT,
            "/v1/profiles/ada",
            Some(br#"{"attributes": {"email": "ada@example.com", "orders": 0}, "timezone": "America/New_York"}"#),
            "application/json",
        )
        .await;
    let event_id = t.event("signup", "ada", json!({"first_name": "Ada"})).await;
    let record = t.processed(&event_id).await;
    assert_eq!(record["steps"][0]["status"], "entered", "{record}");

    let instance = t.instance_in("ada", "welcome", "waiting").await;
    assert_eq!(instance["node"], "wait_2d");
    let sent = t.outbox("ada").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let welcome = &sent[0];
    assert_eq!(
        (&welcome["node_id"], &welcome["to"], &welcome["template"]),
        (
            &json!("send_welcome"),
            &json!("ada@example.com"),
            &json!("welcome")
        )
    );
    // Her sign-up's time in her zone (New York), her name from the event.
    assert_eq!(welcome["message"]["subject"], "Welcome, Ada!");
    assert_eq!(
        welcome["message"]["text"],
        "Hi Ada,\n\nThanks for signing up on March 2. Your account is ready.\n"
    );
    let id = instance["id"].as_str().unwrap();
    // Nothing happens before the two days are over.
    t.advance(Span::new().hours(47));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        t.instance_in("ada", "welcome", "waiting").await["node"],
        "wait_2d"
    );

    t.advance(Span::new().hours(1));
    let done = t.instance_in("ada", "welcome", "completed").await;
    assert_eq!(done["node"], "done");
    let steps = t.steps(id).await;
    assert_eq!(
        path(&steps),
        [
            "entry:entered",
            "send_welcome:passed",
            "wait_2d:waiting",
            "wait_2d:passed",
            "has_purchased:passed",
            "send_tips:passed",
            "done:passed",
            "done:ended",
        ]
    );
    assert_eq!(steps[4]["detail"]["branch"], "otherwise");
    assert_eq!(
        steps[5]["detail"]["params"]["template"],
        "getting_started_tips"
    );
    let sent = t.outbox("ada").await;
    assert_eq!(sent[1]["message"]["subject"], "Three tips to get started");
    assert_eq!(
        sent[1]["message_id"],
        steps[5]["detail"]["params"]["message_id"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaction_takes_the_event_path_or_the_timeout_path() {
    let t = TestEngine::start().await;
    t.publish_examples().await;
    for p in ["buyer", "idler", "shopper"] {
        t.post_or_put(
            reqwest::Method::PUT,
            &format!("/v1/profiles/{p}"),
            &json!({"attributes": {"email": format!("{p}@example.com")}}),
        )
        .await;
    }

    // Buyer: checks out within the hour.
    t.event("cart_updated", "buyer", json!({"items": 2})).await;
    // Idler: never comes back.
    t.event("cart_updated", "idler", json!({"items": 3})).await;
    // Window shopper: empties the cart (matches the second event with its `when`).
    t.event("cart_updated", "shopper", json!({"items": 1}))
        .await;
    for p in ["buyer", "idler", "shopper"] {
        assert_eq!(
            t.instance_in(p, "abandoned_cart", "waiting").await["node"],
            "wait_checkout"
        );
    }
    t.event("order_placed", "buyer", json!({"amount": 20}))
        .await;
    let bought = t.instance_in("buyer", "abandoned_cart", "completed").await;
    assert_eq!(bought["node"], "bought");
    assert_eq!(
        bought["data"]["events"]["order_placed"]["data"]["amount"],
        20
    );

    // An emptied cart is a reaction with a condition; a non-empty update is not.
    t.event("cart_updated", "shopper", json!({"items": 4}))
        .await;
    t.event("cart_updated", "shopper", json!({"items": 0}))
        .await;
    assert_eq!(
        t.instance_in("shopper", "abandoned_cart", "completed")
            .await["node"],
        "emptied"
    );

    // The idler times out after an hour, gets the reminder, then the discount a day later.
    t.advance(Span::new().minutes(61));
    let waiting = eventually(|| async {
        let i = t.instance_in("idler", "abandoned_cart", "waiting").await;
        (i["node"] == "wait_again").then_some(i)
    })
    .await;
    let sent = t.outbox("idler").await;
    assert_eq!(sent[0]["node_id"], "remind", "{sent:?}");
    assert_eq!(
        sent[0]["message"]["subject"],
        "You left 3 items in your cart"
    );
    t.advance(Span::new().days(1));
    let done = t.instance_in("idler", "abandoned_cart", "completed").await;
    assert_eq!(done["id"], waiting["id"]);
    let steps = t.steps(done["id"].as_str().unwrap()).await;
    assert!(path(&steps).contains(&"wait_checkout:passed".to_string()));
    assert!(
        steps
            .iter()
            .any(|s| s["node"] == "wait_checkout" && s["detail"]["timeout"] == true)
    );
    let sent = t.outbox("idler").await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1]["node_id"], "discount");
    // The buyer never got a reminder.
    assert!(t.outbox("buyer").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_profile_and_sticky_split() {
    let t = TestEngine::start().await;
    t.publish_examples().await;
    t.event("order_placed", "whale", json!({"amount": 900}))
        .await;
    t.instance_in("whale", "vip_branch", "completed").await;
    let (_, profile) = t.get("/v1/profiles/whale").await;
    assert_eq!(profile["attributes"]["tier"], "gold", "{profile}");
    let note = t
        .log_calls()
        .into_iter()
        .find(|c| c.node_id == "vip_note")
        .expect("vip note");
    // Later nodes see the update at once.
    assert_eq!(note.params["tier"], "gold");

    // Small orders are split; the same profile always gets the same branch.
    for _ in 0..3 {
        let id = t
            .event("order_placed", "minnow", json!({"amount": 5}))
            .await;
        t.processed(&id).await;
    }
    let branches: Vec<String> = t
        .log_calls()
        .into_iter()
        .filter(|c| c.profile_id == "minnow")
        .map(|c| c.node_id)
        .collect();
    assert_eq!(branches.len(), 3, "{branches:?}");
    assert!(branches.iter().all(|b| *b == branches[0]), "{branches:?}");
}

const SHORT: &str = r#"{
  "entry": {"type": "event", "event": "ping"},
  "start": "pause",
  "nodes": {
    "pause": {"type": "wait", "duration": "PT1H", "next": "bye"},
    "bye": {"type": "end"}
  },
  "properties": {"reentrance": REENTRANCE}
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reentrance_modes_behave_as_specified() {
    let t = TestEngine::start().await;
    for (id, mode) in [
        ("never", r#"{"mode": "never"}"#),
        ("always", r#"{"mode": "always"}"#),
        ("after", r#"{"mode": "after", "wait": "PT3H"}"#),
    ] {
        let def = SHORT
            .replace("\"ping\"", &format!("\"ping_{id}\""))
            .replace("REENTRANCE", mode);
        t.publish(id, &def).await;
    }
    let codes = |record: serde_json::Value| -> Vec<String> {
        record["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["node"] == "entry")
            .map(|s| {
                s["code"]
                    .as_str()
                    .unwrap_or(s["status"].as_str().unwrap())
                    .to_string()
            })
            .collect()
    };
    for id in ["never", "always", "after"] {
        let first = t.event(&format!("ping_{id}"), "p", json!({})).await;
        assert_eq!(codes(t.processed(&first).await), ["entered"], "{id}");
        // While the first instance is live, nobody enters twice.
        let second = t.event(&format!("ping_{id}"), "p", json!({})).await;
        assert_eq!(
            codes(t.processed(&second).await),
            ["ALREADY_IN_JOURNEY"],
            "{id}"
        );
    }
    // All three instances end after the hour.
    t.advance(Span::new().minutes(61));
    for id in ["never", "always", "after"] {
        t.instance_in("p", id, "completed").await;
    }
    let again = |id: &'static str| {
        let t = &t;
        async move {
            let e = t.event(&format!("ping_{id}"), "p", json!({})).await;
            codes(t.processed(&e).await)
        }
    };
    assert_eq!(again("never").await, ["REENTRANCE_BLOCKED"]);
    assert_eq!(again("always").await, ["entered"]);
    // `after`: 61 minutes since the entry, the wait is 3 hours.
    assert_eq!(again("after").await, ["REENTRANCE_BLOCKED"]);
    t.advance(Span::new().hours(2));
    assert_eq!(again("after").await, ["entered"]);
    assert_eq!(again("never").await, ["REENTRANCE_BLOCKED"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_window_discards_with_a_reason_and_global_timeout_ends_instances() {
    let t = TestEngine::start().await;
    let def = r#"{
      "entry": {"type": "event", "event": "hello"},
      "start": "listen",
      "nodes": {
        "listen": {"type": "reaction", "events": [{"event": "bye"}]}
      },
      "properties": {"reentrance": {"mode": "always"}, "timeout": "PT2H",
                     "start_at": "2026-03-02T09:00:00Z", "end_at": "2026-03-09T00:00:00Z"}
    }"#;
    t.publish("window", def).await;
    // 08:00: too early.
    let early = t.event("hello", "p", json!({})).await;
    let record = t.processed(&early).await;
    assert_eq!(record["steps"][0]["status"], "discarded");
    assert_eq!(record["steps"][0]["code"], "OUTSIDE_SCHEDULE");
    assert!(t.instances("p").await.is_empty());

    t.advance(Span::new().hours(1));
    t.event("hello", "p", json!({})).await;
    let waiting = t.instance_in("p", "window", "waiting").await;
    t.advance(Span::new().hours(2));
    let ended = t.instance_in("p", "window", "timed_out").await;
    assert_eq!(ended["id"], waiting["id"]);
    assert_eq!(ended["end_reason"], "TIMEOUT");

    // After the end date: discarded again.
    t.advance(Span::new().days(8));
    let late = t.event("hello", "p", json!({})).await;
    assert_eq!(
        t.processed(&late).await["steps"][0]["code"],
        "OUTSIDE_SCHEDULE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_event_ids_are_processed_once() {
    let t = TestEngine::start().await;
    t.publish_examples().await;
    let event = json!({"id": "evt-1", "type": "signup", "profile_id": "dup", "data": {}});
    let (s1, b1) = t.post_json("/v1/events", &event).await;
    let (s2, b2) = t.post_json("/v1/events", &event).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(b1["events"][0]["status"], "accepted");
    assert_eq!(b2["events"][0]["status"], "duplicate");
    t.processed("evt-1").await;
    t.instance_in("dup", "welcome", "waiting").await;
    assert_eq!(t.instances("dup").await.len(), 1);
}

const ERRS: &str = r#"{
  "entry": {"type": "event", "event": "go"},
  "start": "check",
  "nodes": {
    "check": {"type": "condition",
              "branches": [{"when": "event.data.amount * 2 > 10", "next": "big"}],
              "otherwise": "small", "on_error": "oops"},
    "big": {"type": "end"}, "small": {"type": "end"}, "oops": {"type": "end"}
  },
  "properties": {"reentrance": {"mode": "always"}}
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_expression_takes_the_error_path() {
    let t = TestEngine::start().await;
    t.publish("errs", ERRS).await;
    t.event("go", "p", json!({"amount": "lots"})).await;
    let done = t.instance_in("p", "errs", "completed").await;
    assert_eq!(done["node"], "oops");
    let failed = t.failed_step(&done).await;
    assert_eq!(failed["code"], "EXPR_EVAL");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("branches[0].when"),
        "{failed}"
    );

    t.event("go", "q", json!({"amount": 50})).await;
    assert_eq!(t.instance_in("q", "errs", "completed").await["node"], "big");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_until_computed_and_fixed_local_times_in_the_profile_zone() {
    let t = TestEngine::start().await;
    let def = r#"
entry: {type: event, event: booked}
start: next_morning
nodes:
  next_morning:
    type: wait
    until_expr: 'at_time(now() + duration("P1D"), "09:00")'
    next: launch_day
  launch_day:
    type: wait
    until: "2026-03-10T12:00"
    next: done
  done: {type: end}
properties:
  time_zone: UTC
  use_profile_time_zone: true
"#;
    t.publish("local_times", def).await;
    t.send(
        reqwest::Method::PUT,
        "/v1/profiles/ny",
        Some(br#"{"timezone": "America/New_York"}"#),
        "application/json",
    )
    .await;
    // 2026-03-02T08:00Z is 03:00 in New York.
    t.event("booked", "ny", json!({})).await;
    t.event("booked", "utc", json!({})).await;
    let ny = t.instance_in("ny", "local_times", "waiting").await;
    let utc = t.instance_in("utc", "local_times", "waiting").await;
    assert_eq!(ny["wake_at"], "2026-03-03T14:00:00Z", "{ny}");
    assert_eq!(utc["wake_at"], "2026-03-03T09:00:00Z", "{utc}");

    t.advance(Span::new().hours(30));
    let ny = eventually(|| async {
        let i = t.instance_in("ny", "local_times", "waiting").await;
        (i["node"] == "launch_day").then_some(i)
    })
    .await;
    // New York is on daylight time from 8 March: 12:00 there is 16:00 UTC.
    assert_eq!(ny["wake_at"], "2026-03-10T16:00:00Z", "{ny}");
    t.advance(Span::new().days(8));
    t.instance_in("ny", "local_times", "completed").await;
    t.instance_in("utc", "local_times", "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_answers_503_with_retry_after_when_partitions_fall_behind() {
    // Two partitions of eight queued messages, each event blocking its partition for the
    // plugin's whole deadline: the backlog grows past its limit of 12.
    let t = crate::support::TestEngine::start_with(|s| {
        crate::support::with_plugins(s);
        s.partitions = 2;
        s.partition_batch = 1;
        s.max_ingest_backlog = 12;
    })
    .await;
    t.publish(
        "slow",
        "entry: {type: event, event: slow}\nstart: act\nnodes:\n  act: {type: action, action: hostile, params: {mode: '\"loop\"'}, on_error: done}\n  done: {type: end}\nproperties: {reentrance: {mode: always}}\n",
    )
    .await;
    let client = crate::support::client();
    let mut refused = None;
    for b in 0..20 {
        let events: Vec<serde_json::Value> = (0..5)
            .map(|i| serde_json::json!({"id": format!("slow-{b}-{i}"), "type": "slow", "profile_id": format!("p{b}-{i}")}))
            .collect();
        let r = client
            .post(t.url("/v1/events"))
            .json(&events)
            .send()
            .await
            .expect("post");
        if r.status().as_u16() == 503 {
            let retry = r.headers().get("retry-after").cloned();
            let body: serde_json::Value = r.json().await.expect("json");
            refused = Some((b, retry, body));
            break;
        }
        assert_eq!(r.status().as_u16(), 202);
    }
    let (b, retry, body) = refused.expect("a 503 once the backlog passed its limit");
    assert_eq!(body["code"], "OVERLOADED", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("max_ingest_backlog"),
        "{body}"
    );
    assert_eq!(retry.as_ref().and_then(|v| v.to_str().ok()), Some("1"));
    // Nothing of the refused request was stored; everything accepted before is processed.
    let (status, _) = t.get(&format!("/v1/events/slow-{b}-0")).await;
    assert_eq!(status, 404);
    for i in 0..5 {
        t.processed(&format!("slow-{}-{i}", b - 1)).await;
    }
    // Caught up: accepted again.
    let r = client
        .post(t.url("/v1/events"))
        .json(&serde_json::json!({"id": "after", "type": "slow", "profile_id": "late"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 202);
}

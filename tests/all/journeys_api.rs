//! Journey management and profiles through the API.

use jiff::Span;
use serde_json::json;

use crate::support::TestEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_list_stop_and_profiles() {
    let t = TestEngine::start().await;
    let v1 = "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: wait, duration: PT1H}\nproperties: {reentrance: {mode: always}}\n";
    assert_eq!(t.publish("j", v1).await, 1);
    t.event("e", "old", json!({})).await;
    let old = t.instance_in("old", "j", "waiting").await;
    assert_eq!(t.publish("j", &v1.replace("PT1H", "PT2H")).await, 2);
    t.event("e", "new", json!({})).await;
    let new = t.instance_in("new", "j", "waiting").await;
    assert_eq!(
        (old["version"].as_u64(), new["version"].as_u64()),
        (Some(1), Some(2))
    );

    let (_, list) = t.get("/v1/journeys").await;
    assert_eq!(list["journeys"][0]["id"], "j");
    assert_eq!(list["journeys"][0]["versions"].as_array().unwrap().len(), 2);
    let (status, v) = t.get("/v1/journeys/j/versions/1").await;
    assert_eq!(status, 200);
    assert_eq!(v["definition"]["nodes"]["a"]["duration"], "PT1H");

    // The old instance keeps its version's one-hour wait.
    t.advance(Span::new().minutes(61));
    t.instance_in("old", "j", "completed").await;
    assert_eq!(t.instance_in("new", "j", "waiting").await["id"], new["id"]);

    let (status, body) = t.post_json("/v1/journeys/j/stop", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ended_instances"], 1);
    let stopped = t.instance_in("new", "j", "stopped").await;
    assert_eq!(stopped["end_reason"], "JOURNEY_STOPPED");
    // No entries any more.
    let e = t.event("e", "late", json!({})).await;
    assert!(
        t.processed(&e).await["steps"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(t.instances("late").await.is_empty());
    assert_eq!(
        t.post_json("/v1/journeys/nope/stop", &json!({})).await.0,
        404
    );

    // Profiles: put, patch (merge), get.
    let (status, p) = t
        .send(
            reqwest::Method::PUT,
            "/v1/profiles/ann",
            Some(br#"{"attributes": {"a": 1, "b": {"c": 2}}, "timezone": "Europe/Paris"}"#),
            "application/json",
        )
        .await;
    assert_eq!(status, 200, "{p}");
    let (status, p) = t
        .send(
            reqwest::Method::PATCH,
            "/v1/profiles/ann",
            Some(br#"{"attributes": {"a": null, "b": {"d": 3}}}"#),
            "application/json",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(p["attributes"], json!({"b": {"c": 2, "d": 3}}));
    assert_eq!(p["timezone"], "Europe/Paris");
    let (_, health) = t.get("/healthz").await;
    assert_eq!(health["status"], "ok");
}

/// A profile keeps its split branch when it enters the same version again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_keeps_its_split_branch_on_reentry() {
    let t = TestEngine::start().await;
    let def = "entry: {type: event, event: e}\nstart: ab\nnodes:\n  ab: {type: split, branches: [{weight: 10, next: a}, {weight: 30, next: b}, {weight: 60, next: c}]}\n  a: {type: end}\n  b: {type: end}\n  c: {type: end}\nproperties: {reentrance: {mode: always}}\n";
    t.publish("ab", def).await;
    let branch_of = |steps: &[serde_json::Value]| {
        steps
            .iter()
            .find(|s| s["node"] == "ab")
            .map(|s| s["detail"]["branch"].clone())
            .expect("a split step")
    };
    for round in 0..2 {
        for p in 0..12 {
            let e = t.event("e", &format!("u{p:06}"), json!({})).await;
            t.processed(&e).await;
        }
        if round == 1 {
            for p in 0..12 {
                let instances = t.instances(&format!("u{p:06}")).await;
                assert_eq!(instances.len(), 2, "{instances:?}");
                let mut branches = Vec::new();
                for i in &instances {
                    branches.push(branch_of(&t.steps(i["id"].as_str().unwrap()).await));
                }
                assert_eq!(branches[0], branches[1], "u{p:06}: {branches:?}");
            }
        }
    }
}

/// Posts `event` and answers its entry step's status and code once it is processed.
async fn entry_of(
    t: &TestEngine,
    event: serde_json::Value,
) -> (serde_json::Value, serde_json::Value) {
    let (status, answer) = t.post_json("/v1/events", &event).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["events"][0]["id"].as_str().unwrap().to_string();
    let event = t.processed(&id).await;
    event["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["node"] == "entry").cloned())
        .map(|s| (s["status"].clone(), s["code"].clone()))
        .expect("an entry step")
}

/// The capping rule `daily` (one entry a day) and the journey `daily` it caps, entered
/// by `promo` events.
async fn publish_daily_promo(t: &TestEngine) {
    let (status, body) = t
        .post_or_put(
            reqwest::Method::PUT,
            "/v1/capping-rules/daily",
            &json!({"max": 1, "period": "P1D"}),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    t.publish("daily", "entry: {type: event, event: promo}\nstart: a\nnodes:\n  a: {type: end}\nproperties: {reentrance: {mode: always}, capping: [daily]}\n").await;
}

/// Re-entrance periods and capping windows count in event time: a late event is judged
/// by when it happened, not by when it arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reentrance_and_capping_count_in_event_time() {
    let t = TestEngine::start().await;
    let now = t.now();
    let ago = |hours: i64| {
        now.checked_sub(Span::new().hours(hours))
            .expect("time")
            .to_string()
    };
    let t = &t;
    let send = |profile: &str, journey_event: &str, at: String| {
        entry_of(
            t,
            json!({"type": journey_event, "profile_id": profile, "timestamp": at}),
        )
    };
    let entered = (json!("entered"), serde_json::Value::Null);
    let refused = |code: &str| (json!("discarded"), json!(code));

    // Re-entrance after one hour.
    t.publish("once_an_hour", "entry: {type: event, event: visit}\nstart: a\nnodes:\n  a: {type: end}\nproperties: {reentrance: {mode: after, wait: PT1H}}\n").await;
    assert_eq!(send("ann", "visit", now.to_string()).await, entered);
    // Happened 30 minutes before the last entry: too close, though it arrives now.
    let half_hour_ago = now
        .checked_sub(Span::new().minutes(30))
        .unwrap()
        .to_string();
    assert_eq!(
        send("ann", "visit", half_hour_ago).await,
        refused("REENTRANCE_BLOCKED")
    );
    // Happened two hours before it, delivered late: far enough apart.
    assert_eq!(send("ann", "visit", ago(2)).await, entered);

    // At most one entry a day by a capping rule.
    publish_daily_promo(t).await;
    assert_eq!(send("bob", "promo", now.to_string()).await, entered);
    assert_eq!(send("bob", "promo", ago(12)).await, refused("CAPPED"));
    assert_eq!(send("bob", "promo", ago(48)).await, entered);
}

/// A profile's capping counts stay bounded: counts that no entry up to
/// `capping_count_days` late could find within its period are deleted in the commit of
/// the next counted entry, and the counts kept still refuse a late event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capping_counts_no_late_entry_could_find_are_deleted() {
    let t = TestEngine::start_with(|s| s.capping_count_days = 2).await;
    publish_daily_promo(&t).await;
    let t = &t;
    let send = |at: jiff::Timestamp| async move {
        let (_, code) = entry_of(
            t,
            json!({"type": "promo", "profile_id": "cal", "timestamp": at.to_string()}),
        )
        .await;
        code.as_str().unwrap_or("entered").to_string()
    };
    let first = t.now();
    assert_eq!(send(first).await, "entered");
    // Ten days on, the next entry's commit deletes the first count: it lies more than
    // the period before anything up to 2 days late.
    t.advance(Span::new().hours(24 * 10));
    let now = t.now();
    assert_eq!(send(now).await, "entered");
    // Half a day late: the count kept from `now` refuses it.
    let half_a_day = Span::new().hours(12);
    assert_eq!(send(now.checked_sub(half_a_day).unwrap()).await, "CAPPED");
    // Ten days late, an hour after the first entry: that count is gone, and the entry
    // is let in (with the count, it would have been refused).
    assert_eq!(
        send(first.checked_add(Span::new().hours(1)).unwrap()).await,
        "entered"
    );
}

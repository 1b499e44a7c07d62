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

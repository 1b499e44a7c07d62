//! The failure policy of partitions: a store that fails commits or reads.

use serde_json::json;

use crate::support::{TestEngine, eventually};

/// Commits that fail are retried with backoff; after `store_retries` failures in a row
/// the partition reports itself unhealthy (`/healthz` 503 naming it, a metric) and keeps
/// trying; once the store commits again it is healthy and nothing was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_commits_fail_reports_itself_unhealthy_and_recovers() {
    let t = TestEngine::start_with(|s| {
        s.partitions = 1;
        s.store_retries = 2;
    })
    .await;
    t.publish(
        "j",
        "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: end}\n",
    )
    .await;
    // Enough failures for the partition to report itself (the retries' waits are 50,
    // 100, 200 ms...).
    t.store.fail_next(6, 0);
    let e = t.event("e", "ada", json!({})).await;
    let health = eventually(|| async {
        let (status, body) = t.get("/healthz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert_eq!(health["partitions"][0]["partition"], 0, "{health}");
    let error = health["partitions"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("commits failed") && error.contains("injected commit failure"),
        "{error}"
    );
    let metrics = t.metrics().await;
    assert!(
        metrics.contains("parcours_partitions_unhealthy 1"),
        "{metrics}"
    );

    // The store recovers: the same batch commits, the event is processed once.
    let event = t.processed(&e).await;
    assert_eq!(event["steps"][0]["status"], "entered", "{event}");
    let (status, body) = t.get("/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("ok")),
        "{body}"
    );
    assert_eq!(t.instances("ada").await.len(), 1);
}

/// A profile's state that cannot be read is tried again; after `store_retries` failures
/// its message is set aside (its event stays unprocessed, taken again at the next
/// start) and the partition says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_that_cannot_be_read_is_set_aside_and_reported() {
    let t = TestEngine::start_with(|s| {
        s.partitions = 1;
        s.store_retries = 3;
    })
    .await;
    t.publish(
        "j",
        "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: end}\n",
    )
    .await;
    // A batch reads its profiles once up front, then each message reads its own.
    t.store.fail_next(0, 4);
    let e = t.event("e", "bob", json!({})).await;
    let health = eventually(|| async {
        let (status, body) = t.get("/healthz").await;
        (status == 503).then_some(body)
    })
    .await;
    let error = health["partitions"][0]["error"].as_str().unwrap();
    assert!(error.contains("reads of profile \"bob\" failed"), "{error}");
    let (_, event) = t.get(&format!("/v1/events/{e}")).await;
    assert_eq!(event["processed"], false, "set aside, not lost: {event}");
}

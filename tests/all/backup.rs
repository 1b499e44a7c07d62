//! `parcours backup` while the real binary serves a steady stream of events, then
//! `parcours restore` into a new folder: the restored database starts, and every event
//! accepted before the backup began is in it and is processed exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::cli::parcours;
use crate::restart::{Server, get, order_journey_in};
use crate::support::eventually;

/// A path as an argument.
fn arg(path: &std::path::Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_event_accepted_before_it_began() {
    let dir = tempfile::tempdir().expect("temp dir");
    order_journey_in(dir.path());
    let server = Server::start_with(dir.path(), &[]);
    let db = dir.path().join("engine.db");

    // A second engine on the same file is refused at once.
    let (ok, text) = parcours(&["serve", "--listen", "127.0.0.1:0", "--db", arg(&db)]);
    assert!(!ok, "{text}");
    assert!(text.contains("is in use by another engine"), "{text}");

    // Batches are sent until told to stop; the ids of accepted ones are kept, in order.
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (base, accepted, stop) = (server.base.clone(), accepted.clone(), stop.clone());
        tokio::spawn(async move {
            let client = crate::support::client();
            let mut b = 0;
            while !stop.load(Ordering::SeqCst) {
                let ids: Vec<String> = (0..25).map(|i| format!("b-{}", b * 25 + i)).collect();
                let events: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"id": id, "type": "order", "profile_id": format!("p-{id}"), "data": {"n": 1}}))
                    .collect();
                let r = client
                    .post(format!("{base}/v1/events"))
                    .json(&json!({"events": events}))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status().as_u16(), 202);
                accepted.lock().expect("lock").extend(ids);
                b += 1;
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = accepted.lock().expect("lock").clone();
    assert!(!before.is_empty(), "nothing accepted before the backup");
    let copy = dir.path().join("copy.db");
    let (ok, text) = {
        let (db, copy) = (db.clone(), copy.clone());
        tokio::task::spawn_blocking(move || {
            parcours(&["backup", arg(&copy), "--db", arg(&db), "--json"])
        })
        .await
        .expect("join")
    };
    assert!(ok, "{text}");
    let made: Value = serde_json::from_str(text.trim()).expect("JSON report");
    assert!(
        made["events"].as_u64().expect("events") >= before.len() as u64,
        "{made}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // A restore over the database of a running engine is refused.
    let (ok, text) = parcours(&["restore", arg(&copy), "--db", arg(&db), "--force"]);
    assert!(!ok, "{text}");
    assert!(text.contains("is in use"), "{text}");
    stop.store(true, Ordering::SeqCst);
    driver.await.expect("driver");
    let after = accepted.lock().expect("lock").len();
    assert!(after > before.len(), "the load stopped during the backup");
    server.kill();

    let elsewhere = tempfile::tempdir().expect("temp dir");
    order_journey_in(elsewhere.path());
    let restored_db = elsewhere.path().join("engine.db");
    let (ok, text) = parcours(&["restore", arg(&copy), "--db", arg(&restored_db)]);
    assert!(ok, "{text}");
    assert!(
        text.starts_with(&format!("restored {} as", copy.display())),
        "{text}"
    );

    let server = Server::start_with(elsewhere.path(), &[]);
    let client = crate::support::client();
    for id in &before {
        let record = eventually(|| {
            let (client, url) = (client.clone(), format!("{}/v1/events/{id}", server.base));
            async move {
                let (status, record) = get(&client, url).await;
                (status == 200 && record["processed"] == json!(true)).then_some(record)
            }
        })
        .await;
        let entered = record["steps"]
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["status"] == "entered").count());
        assert_eq!(entered, 1, "{id} after the restore: {record}");
    }
    server.kill();
}

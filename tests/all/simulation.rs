//! Deterministic simulation (CLI and API) and replay of recorded events.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{TestEngine, eventually};

fn simulate_cli(extra: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parcours"))
        .args([
            "journey",
            "simulate",
            "examples/journeys/abandoned_cart.json",
            "--profiles",
            "examples/simulations/abandoned_cart.profiles.json",
            "--events",
            "examples/simulations/abandoned_cart.events.jsonl",
            "--resources",
            "examples/resources.yaml",
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run parcours");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Each profile's path as `node:status[->branch]`.
fn paths(sim: &Value) -> Vec<(String, Vec<String>)> {
    sim["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let steps = p["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| match s["branch"].as_str() {
                    Some(b) => format!(
                        "{}:{}->{b}",
                        s["node"].as_str().unwrap(),
                        s["status"].as_str().unwrap()
                    ),
                    None => format!(
                        "{}:{}",
                        s["node"].as_str().unwrap(),
                        s["status"].as_str().unwrap()
                    ),
                })
                .collect();
            (p["profile_id"].as_str().unwrap().to_string(), steps)
        })
        .collect()
}

#[test]
fn the_abandoned_cart_simulation_gives_the_expected_paths_byte_for_byte_twice() {
    let (ok, first, err) = simulate_cli(&["--json"]);
    assert!(ok, "{err}");
    let (ok, second, err) = simulate_cli(&["--json"]);
    assert!(ok, "{err}");
    assert_eq!(first, second, "two runs differ");
    let (ok, text1, _) = simulate_cli(&[]);
    let (_, text2, _) = simulate_cli(&[]);
    assert!(ok);
    assert_eq!(text1, text2);

    let sim: Value = serde_json::from_slice(&first).expect("json");
    let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        paths(&sim),
        vec![
            (
                "ann".into(),
                p(&[
                    "entry:entered",
                    "wait_checkout:waiting",
                    "wait_checkout:passed->order_placed",
                    "bought:passed",
                    "bought:ended"
                ])
            ),
            (
                "bob".into(),
                p(&[
                    "entry:entered",
                    "wait_checkout:waiting",
                    "wait_checkout:passed->timeout",
                    "remind:passed",
                    "wait_again:waiting",
                    "wait_again:passed->timeout",
                    "discount:passed",
                    "done:passed",
                    "done:ended"
                ])
            ),
            (
                "cy".into(),
                p(&[
                    "entry:entered",
                    "wait_checkout:waiting",
                    "wait_checkout:passed->timeout",
                    "remind:passed",
                    "wait_again:waiting",
                    "wait_again:passed->order_placed",
                    "bought:passed",
                    "bought:ended"
                ])
            ),
            ("dee".into(), p(&["entry:discarded"])),
            (
                "eve".into(),
                p(&[
                    "entry:entered",
                    "wait_checkout:waiting",
                    "wait_checkout:passed->cart_updated",
                    "emptied:passed",
                    "emptied:ended",
                    "entry:discarded"
                ])
            ),
        ]
    );
    // Times: bob's discount a day after his reminder, an hour after his cart.
    let bob = &sim["profiles"][1]["steps"];
    assert_eq!(bob[3]["at"], "2026-03-02T10:00:00Z");
    assert_eq!(bob[6]["at"], "2026-03-03T10:00:00Z");
    assert_eq!(
        sim["profiles"][3]["steps"][0]["code"],
        "ENTRY_CONDITION_FALSE"
    );
    assert!(
        sim["profiles"][0]["steps"][2]["why"]
            .as_str()
            .unwrap()
            .contains("order_placed")
    );
    // Dry run: the three messages that would have been sent.
    let actions: Vec<(&str, &str)> = sim["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["profile_id"].as_str().unwrap(),
                a["node_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![("cy", "remind"), ("bob", "remind"), ("bob", "discount")]
    );
    let totals: Vec<(&str, u64)> = sim["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["node"].as_str().unwrap(), t["passed"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        totals[..3],
        [("entry", 0), ("wait_checkout", 4), ("remind", 2)]
    );
    let text = String::from_utf8(text1).unwrap();
    assert!(text.contains("profile bob"), "{text}");
    assert!(text.contains("would call message:outbox"), "{text}");
    assert!(
        text.contains("\"subject\":\"You left 3 items in your cart\""),
        "{text}"
    );

    // A located error for a bad timeline.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"at\": \"P2X\", \"type\": \"e\", \"profile_id\": \"a\"}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parcours"))
        .args([
            "journey",
            "simulate",
            "examples/journeys/abandoned_cart.json",
            "--events",
        ])
        .arg(&bad)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[0].at") && err.contains("P2X"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_simulates_a_draft_and_replays_recorded_events_against_a_changed_draft() {
    let t = TestEngine::start().await;
    let v1 = r#"
entry: {type: event, event: order}
start: check
nodes:
  check:
    type: condition
    branches: [{when: 'event.data.amount > 100', next: vip, label: vip}]
    otherwise: thanks
  vip: {type: action, action: log, params: {kind: '"vip"'}}
  thanks: {type: action, action: log, params: {kind: '"thanks"'}}
properties: {reentrance: {mode: always}}
"#;
    t.publish("orders", v1).await;
    let from = t.now();
    for (p, amount) in [("a", 50), ("b", 150), ("c", 90), ("d", 300)] {
        let e = t.event("order", p, json!({"amount": amount})).await;
        t.processed(&e).await;
    }
    let real_calls = t.log_calls().len();
    assert_eq!(real_calls, 4);
    t.advance(jiff::Span::new().minutes(1));
    let to = t.now();

    // Simulate the draft (= v1) through the API: nothing is sent, nothing stored.
    let (code, sim) = t
        .post_json(
            "/v1/journeys/orders/simulate",
            &json!({"profiles": [{"id": "z"}], "events": [
                {"at": "2026-01-01T00:00:00Z", "type": "order", "profile_id": "z", "data": {"amount": 500}}
            ]}),
        )
        .await;
    assert_eq!(code, 200, "{sim}");
    assert_eq!(
        paths(&sim)[0].1,
        vec![
            "entry:entered",
            "check:passed->vip",
            "vip:passed",
            "vip:ended"
        ]
    );
    assert_eq!(
        t.log_calls().len(),
        real_calls,
        "a simulation sends nothing"
    );
    assert!(
        t.instances("z").await.is_empty(),
        "a simulation stores nothing"
    );
    let (code, err) = t
        .post_json(
            "/v1/journeys/orders/simulate",
            &json!({"events": [{"at": "soon", "type": "order", "profile_id": "z"}]}),
        )
        .await;
    assert_eq!(
        (code, err["location"].as_str()),
        (422, Some("[0].at")),
        "{err}"
    );
    let (code, err) = t
        .post_json(
            "/v1/journeys/orders/simulate",
            &json!({"version": 7, "events": []}),
        )
        .await;
    assert_eq!(code, 404, "{err}");

    // A changed draft: the VIP threshold moves from 100 to 200.
    let v2 = v1.replace("> 100", "> 200");
    let (code, _) = t
        .send(
            reqwest::Method::PUT,
            "/v1/journeys/orders",
            Some(v2.as_bytes()),
            "",
        )
        .await;
    assert_eq!(code, 200);
    let (code, r) = t
        .post_json(
            "/v1/journeys/orders/replay",
            &json!({"from": from, "to": to}),
        )
        .await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(
        (r["events"].as_u64(), r["profiles"].as_u64()),
        (Some(4), Some(4)),
        "{r}"
    );
    assert_eq!(r["before"], "version 1");
    assert_eq!(r["after"], "draft");
    let moved: Vec<&str> = r["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["profile_id"].as_str().unwrap())
        .collect();
    assert_eq!(moved, vec!["b"], "{r}");
    assert_eq!(r["moved"][0]["before"][1], "check:passed->vip");
    assert_eq!(r["moved"][0]["after"][1], "check:passed->otherwise");
    assert_eq!(t.log_calls().len(), real_calls, "a replay sends nothing");
    let (code, _) = t
        .post_json(
            "/v1/journeys/orders/replay",
            &json!({"from": to, "to": from}),
        )
        .await;
    assert_eq!(code, 400);
    // The engine still runs normally afterwards.
    let e = t.event("order", "e", json!({"amount": 1})).await;
    t.processed(&e).await;
    eventually(|| async { (t.log_calls().len() == real_calls + 1).then_some(()) }).await;
}

/// `parcours journey simulate` of an example journey with its profiles and timeline
/// from `examples/simulations/` and the examples' resources (templates, audiences).
fn simulate_example(name: &str, extra: &[&str]) -> Result<Vec<u8>, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let journey = ["yaml", "json"]
        .iter()
        .map(|ext| root.join(format!("examples/journeys/{name}.{ext}")))
        .find(|p| p.exists())
        .ok_or_else(|| format!("no example journey {name}"))?;
    let out = Command::new(env!("CARGO_BIN_EXE_parcours"))
        .arg("journey")
        .arg("simulate")
        .arg(&journey)
        .arg("--profiles")
        .arg(root.join(format!("examples/simulations/{name}.profiles.json")))
        .arg("--events")
        .arg(root.join(format!("examples/simulations/{name}.events.jsonl")))
        .arg("--resources")
        .arg(root.join("examples/resources.yaml"))
        .args(extra)
        .env("RUST_LOG", "warn")
        .current_dir(root)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(out.stdout)
}

/// Golden outputs of the examples' simulations (text and JSON), in
/// `tests/journeys/simulations/`: they must stay byte-identical while the runtime is
/// restructured. `PARCOURS_BLESS=1` rewrites them.
#[test]
fn example_simulations_match_their_golden_outputs_byte_for_byte() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/journeys/simulations");
    let bless = std::env::var_os("PARCOURS_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for name in ["abandoned_cart", "welcome", "vip_branch"] {
        for (ext, extra) in [("txt", &[][..]), ("json", &["--json"][..])] {
            let got = match simulate_example(name, extra) {
                Ok(out) => out,
                Err(e) => {
                    failures.push(format!("{name} ({ext}): {e}"));
                    continue;
                }
            };
            let golden = root.join(format!("{name}.{ext}"));
            if bless {
                std::fs::create_dir_all(&root).expect("golden folder");
                std::fs::write(&golden, &got).expect("write golden");
                continue;
            }
            match std::fs::read(&golden) {
                Ok(want) if want == got => {}
                Ok(want) => failures.push(format!(
                    "{} differs:\n--- golden\n{}\n--- got\n{}",
                    golden.display(),
                    String::from_utf8_lossy(&want),
                    String::from_utf8_lossy(&got)
                )),
                Err(e) => failures.push(format!("{}: {e}", golden.display())),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "(PARCOURS_BLESS=1 records new outputs)\n{}",
        failures.join("\n\n")
    );
}

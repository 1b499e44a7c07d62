//! Journey lifecycle: pause and resume, close and finish, versions and their history,
//! and reports that match the step events.

use std::collections::BTreeMap;

use jiff::Span;
use serde_json::{Value, json};

use crate::support::{TestEngine, eventually};

/// Entry `e` → log action with the event's `n` → end.
const SEND: &str = "entry: {type: event, event: e}\nstart: send\nnodes:\n  send: {type: action, action: log, params: {n: event.data.n}}\nproperties: {reentrance: {mode: always}}\n";
/// Entry `e` → one-hour wait → log action → end.
const WAIT_SEND: &str = "entry: {type: event, event: e}\nstart: w\nnodes:\n  w: {type: wait, duration: PT1H, next: send}\n  send: {type: action, action: log, params: {n: event.data.n}}\n";

fn sent(t: &TestEngine, journey: &str) -> Vec<(String, Value)> {
    t.log_calls()
        .into_iter()
        .filter(|c| c.journey_id == journey)
        .map(|c| (c.profile_id, c.params["n"].clone()))
        .collect()
}

async fn status(t: &TestEngine, id: &str) -> Value {
    let (code, body) = t.get(&format!("/v1/journeys/{id}")).await;
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_entries_and_actions_and_resume_releases_them_in_order() {
    let t = TestEngine::start().await;
    t.publish("now", SEND).await;
    t.publish("later", WAIT_SEND).await;
    // In flight before the pause: waiting one hour before its action.
    let e = t.event("e", "early", json!({"n": 0})).await;
    t.processed(&e).await;
    t.instance_in("early", "later", "waiting").await;

    for id in ["now", "later"] {
        let (code, body) = t
            .post_json(&format!("/v1/journeys/{id}/pause"), &json!({}))
            .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["pause"]["entries"], true);
        assert_eq!(body["pause"]["actions"], true);
    }
    assert_eq!(status(&t, "now").await["status"], "paused");
    // Pausing twice is refused.
    let (code, body) = t.post_json("/v1/journeys/now/pause", &json!({})).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("INVALID_TRANSITION"))
    );

    // Entries while paused are held, in order: p1 twice, then p2..p4.
    let mut held = Vec::new();
    for (profile, n) in [("p1", 1), ("p2", 2), ("p1", 5), ("p3", 3), ("p4", 4)] {
        held.push(t.event("e", profile, json!({"n": n})).await);
    }
    for e in &held {
        let steps = t.processed(e).await["steps"].clone();
        assert!(
            steps
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["status"] == "held" && s["code"] == "HELD"),
            "{steps}"
        );
    }
    assert!(t.instances("p1").await.is_empty());
    // The instance in flight reaches its action and waits there.
    t.advance(Span::new().minutes(61));
    let early = eventually(|| async {
        let i = t.instance_in("early", "later", "waiting").await;
        (i["node"] == "send").then_some(i)
    })
    .await;
    let steps = t.steps(early["id"].as_str().unwrap()).await;
    assert_eq!(steps.last().unwrap()["status"], "held", "{steps:?}");
    assert_eq!(steps.last().unwrap()["code"], "ACTIONS_HELD");
    assert!(sent(&t, "later").is_empty(), "no action runs while paused");
    // `now` only ran its action for `early`, before the pause.
    assert_eq!(sent(&t, "now"), vec![("early".to_string(), json!(0))]);

    for id in ["now", "later"] {
        let (code, body) = t
            .post_json(&format!("/v1/journeys/{id}/resume"), &json!({}))
            .await;
        assert_eq!(code, 200, "{body}");
    }
    // Every held entry enters `now` and its action runs; p1's second entry finds its
    // first instance ended (the action completes at once) and enters again in order.
    let got = eventually(|| async {
        let s = sent(&t, "now");
        (s.len() == 6).then_some(s)
    })
    .await;
    let p1: Vec<&Value> = got
        .iter()
        .filter(|(p, _)| p == "p1")
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        p1,
        vec![&json!(1), &json!(5)],
        "p1's entries keep their order"
    );
    // The held action runs once, with the same instance.
    let early_sent = eventually(|| async {
        let s = sent(&t, "later");
        (!s.is_empty()).then_some(s)
    })
    .await;
    assert_eq!(early_sent, vec![("early".to_string(), json!(0))]);
    t.instance_in("early", "later", "completed").await;
    // Entries held by `later` entered and wait their hour.
    t.instance_in("p3", "later", "waiting").await;
    let journey = eventually(|| async {
        let j = status(&t, "later").await;
        j.get("pause").is_none().then_some(j)
    })
    .await;
    assert_eq!(journey["status"], "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_ends_by_itself_and_bad_pauses_are_refused() {
    let t = TestEngine::start().await;
    t.publish("j", SEND).await;
    let (code, body) = t
        .post_json(
            "/v1/journeys/j/pause",
            &json!({"hold": ["entries"], "max_duration": "P2X"}),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["location"], "max_duration");
    let (code, body) = t
        .post_json("/v1/journeys/j/pause", &json!({"hold": ["everything"]}))
        .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = t
        .post_json("/v1/journeys/j/pause", &json!({"max_duration": "P30D"}))
        .await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("max_pause_seconds")
    );
    assert_eq!(
        t.post_json("/v1/journeys/j/resume", &json!({})).await.0,
        409
    );

    let (code, body) = t
        .post_json(
            "/v1/journeys/j/pause",
            &json!({"hold": ["entries"], "max_duration": "PT1H"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let e = t.event("e", "ann", json!({"n": 1})).await;
    t.processed(&e).await;
    assert!(sent(&t, "j").is_empty());
    t.advance(Span::new().minutes(61));
    eventually(|| async { (sent(&t, "j").len() == 1).then_some(()) }).await;
    assert_eq!(status(&t, "j").await["status"], "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_lets_instances_finish_and_stop_ends_them() {
    let t = TestEngine::start().await;
    t.publish("c", WAIT_SEND).await;
    let e = t.event("e", "ann", json!({"n": 1})).await;
    t.processed(&e).await;
    let (code, body) = t.post_json("/v1/journeys/c/close", &json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "closed");
    // No new entries; the running instance goes on.
    let late = t.event("e", "bob", json!({"n": 2})).await;
    t.processed(&late).await;
    assert!(t.instances("bob").await.is_empty());
    assert_eq!(status(&t, "c").await["status"], "closed");
    t.advance(Span::new().minutes(61));
    t.instance_in("ann", "c", "completed").await;
    assert_eq!(sent(&t, "c"), vec![("ann".to_string(), json!(1))]);
    let journey = eventually(|| async {
        let j = status(&t, "c").await;
        (j["status"] == "finished").then_some(j)
    })
    .await;
    assert_eq!(journey["versions"][0]["status"], "finished");
    assert_eq!(t.post_json("/v1/journeys/c/close", &json!({})).await.0, 409);

    // Stop: no new entries and the live instances end with a reason.
    t.publish("s", WAIT_SEND).await;
    let e = t.event("e", "cy", json!({"n": 3})).await;
    t.processed(&e).await;
    let (code, body) = t.post_json("/v1/journeys/s/stop", &json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ended_instances"], 1);
    let stopped = t.instance_in("cy", "s", "stopped").await;
    assert_eq!(stopped["end_reason"], "JOURNEY_STOPPED");
    t.advance(Span::new().minutes(61));
    let late = t.event("e", "dee", json!({"n": 4})).await;
    t.processed(&late).await;
    assert!(t.instances("dee").await.is_empty());
    assert!(sent(&t, "s").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_record_who_and_what_and_diff_shows_the_change() {
    let t = TestEngine::start().await;
    t.publish("v", WAIT_SEND).await;
    let e = t.event("e", "old", json!({"n": 1})).await;
    t.processed(&e).await;
    let v2 = WAIT_SEND.replace("PT1H", "PT2H");
    let (code, _) = t
        .send(
            reqwest::Method::PUT,
            "/v1/journeys/v",
            Some(v2.as_bytes()),
            "",
        )
        .await;
    assert_eq!(code, 200);
    let (code, body) = t
        .post_json("/v1/journeys/v/publish", &json!({"note": "wait two hours"}))
        .await;
    assert_eq!((code, body["version"].as_u64()), (201, Some(2)), "{body}");
    let e = t.event("e", "new", json!({"n": 2})).await;
    t.processed(&e).await;

    let j = status(&t, "v").await;
    assert_eq!(j["versions"][0]["status"], "closed", "{j}");
    assert_eq!(j["versions"][0]["running_instances"], 1);
    assert_eq!(j["versions"][1]["status"], "live");
    assert_eq!(j["versions"][1]["published_by"], "local");
    assert_eq!(j["versions"][1]["note"], "wait two hours");

    let (code, d) = t.get("/v1/journeys/v/diff?from=1&to=2").await;
    assert_eq!(code, 200, "{d}");
    // Versions are numbers on both sides.
    assert_eq!((&d["from"], &d["to"]), (&json!(1), &json!(2)), "{d}");
    assert_eq!(
        d["changes"],
        json!([{"path": "nodes.w.duration", "change": "changed", "from": "PT1H", "to": "PT2H"}])
    );
    let (code, d) = t.get("/v1/journeys/v/diff?from=2").await;
    assert_eq!((code, d["to"].as_str()), (200, Some("draft")));
    assert_eq!(d["changes"], json!([]));
    assert_eq!(t.get("/v1/journeys/v/diff?from=9").await.0, 404);
    let (code, d) = t.get("/v1/journeys/v/diff?from=1&to=x").await;
    assert_eq!((code, d["location"].as_str()), (400, Some("to")));

    // Old instance on v1 (one hour), new one on v2 (two hours).
    t.advance(Span::new().minutes(61));
    t.instance_in("old", "v", "completed").await;
    t.instance_in("new", "v", "waiting").await;
    let j = eventually(|| async {
        let j = status(&t, "v").await;
        (j["versions"][0]["status"] == "finished").then_some(j)
    })
    .await;
    assert_eq!(j["status"], "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_matches_the_step_events() {
    let t = TestEngine::start().await;
    let def = r#"
entry: {type: event, event: e}
start: check
nodes:
  check:
    type: condition
    branches: [{when: 'event.data.n > 2', next: big, label: big}]
    otherwise: ab
  ab:
    type: split
    branches: [{label: a, weight: 50, next: small}, {label: b, weight: 50, next: small}]
  small: {type: wait, duration: PT1H}
  big: {type: action, action: log, params: {n: event.data.n}}
properties: {reentrance: {mode: never}}
"#;
    t.publish("r", def).await;
    let mut events = Vec::new();
    for n in 0..12 {
        events.push(t.event("e", &format!("p{n}"), json!({"n": n})).await);
    }
    // Repeats are discarded (never re-enter).
    for n in 0..3 {
        events.push(t.event("e", &format!("p{n}"), json!({"n": n})).await);
    }
    for n in 0..3 {
        t.event("buy", &format!("p{n}"), json!({})).await;
    }
    let mut steps = Vec::new();
    for e in &events {
        t.processed(e).await;
    }
    for n in 0..12 {
        for i in t.instances(&format!("p{n}")).await {
            steps.extend(t.steps(i["id"].as_str().unwrap()).await);
        }
    }
    // Counts from the step events themselves.
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    for s in &steps {
        *expected
            .entry((
                s["node"].as_str().unwrap().into(),
                s["status"].as_str().unwrap().into(),
            ))
            .or_default() += 1;
    }
    let (code, r) = t.get("/v1/journeys/r/report?success_event=buy").await;
    assert_eq!(code, 200, "{r}");
    let v = &r["versions"][0];
    assert_eq!(v["entered"], 12, "{r}");
    assert_eq!(v["discarded"], 3);
    assert_eq!(v["discard_codes"]["ALREADY_IN_JOURNEY"], 3, "{r}");
    let mut reported: BTreeMap<(String, String), u64> = BTreeMap::new();
    reported.insert(("entry".into(), "entered".into()), 12);
    for node in v["nodes"].as_array().unwrap() {
        let id = node["node"].as_str().unwrap().to_string();
        for (field, status) in [
            ("passed", "passed"),
            ("failed", "failed"),
            ("waited", "waiting"),
            ("ended", "ended"),
        ] {
            let n = node[field].as_u64().unwrap();
            if n > 0 {
                reported.insert((id.clone(), status.into()), n);
            }
        }
    }
    assert_eq!(reported, expected, "{r}");
    let nodes: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(
        nodes,
        vec!["check", "ab", "small", "big"],
        "definition order"
    );
    let check = &v["nodes"][0];
    assert_eq!(check["branches"]["big"], 9);
    assert_eq!(check["branches"]["otherwise"], 3);
    assert_eq!(v["nodes"][2]["current"], 3, "three wait now");
    assert_eq!(v["live"], 3);
    let ab = &v["nodes"][1]["branches"];
    let of = |b: &str| ab[b].as_u64().unwrap_or(0);
    assert_eq!(of("a") + of("b"), 3);
    // Experiment view: p0..p2 went through the split and all bought afterwards.
    let branches = r["experiment"]["branches"].as_array().unwrap();
    assert_eq!(
        branches
            .iter()
            .map(|b| b["assigned"].as_u64().unwrap())
            .sum::<u64>(),
        3
    );
    assert_eq!(
        branches
            .iter()
            .map(|b| b["converted"].as_u64().unwrap())
            .sum::<u64>(),
        3
    );
    assert_eq!(r["hourly"][0]["entered"], 12);
    assert_eq!(t.get("/v1/journeys/nope/report").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_in_test_mode_takes_test_profiles_with_short_waits_and_dry_run_actions() {
    let t = TestEngine::start().await;
    let three_days = "entry: {type: event, event: e}\nstart: w\nnodes:\n  w: {type: wait, duration: P3D, next: r}\n  r: {type: reaction, events: [{event: never, next: send}], timeout: P7D, on_timeout: send}\n  send: {type: action, action: log, params: {n: event.data.n}}\nproperties: {reentrance: {mode: always}}\n";
    let (code, _) = t
        .send(
            reqwest::Method::PUT,
            "/v1/journeys/t",
            Some(three_days.as_bytes()),
            "",
        )
        .await;
    assert_eq!(code, 200);
    for (id, test) in [("tess", true), ("real", false)] {
        let (code, body) = t
            .post_or_put(
                reqwest::Method::PUT,
                &format!("/v1/profiles/{id}"),
                &json!({"attributes": {"test_profile": test}}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
    let (code, body) = t
        .post_json("/v1/journeys/t/test", &json!({"wait": "PT5S"}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["test"]["wait_seconds"], 5);
    assert_eq!(body["test"]["dry_run"], true);
    let (code, body) = t
        .post_json("/v1/journeys/t/test", &json!({"wait": "soon"}))
        .await;
    assert_eq!((code, body["location"].as_str()), (400, Some("wait")));

    for p in ["tess", "real"] {
        let e = t.event("e", p, json!({"n": 1})).await;
        t.processed(&e).await;
    }
    let inst = t.instance_in("tess", "t", "waiting").await;
    assert_eq!(
        inst["version"], 0,
        "test instances run the draft as version 0"
    );
    assert!(
        t.instances("real").await.is_empty(),
        "only test profiles enter"
    );
    // Three days and seven days become five seconds each.
    t.advance(Span::new().seconds(6));
    eventually(|| async {
        let i = t.instance_in("tess", "t", "waiting").await;
        (i["node"] == "r").then_some(())
    })
    .await;
    t.advance(Span::new().seconds(6));
    let done = t.instance_in("tess", "t", "completed").await;
    let steps = t.steps(done["id"].as_str().unwrap()).await;
    let send = steps
        .iter()
        .find(|s| s["node"] == "send" && s["status"] == "passed")
        .expect("send step");
    assert_eq!(send["detail"]["params"]["n"], 1);
    assert_eq!(send["detail"]["outcome"]["result"]["dry_run"], true);
    assert!(
        t.log_calls().is_empty(),
        "dry run: the action was not called"
    );

    // Real actions on request; stopping test mode ends test instances.
    let (code, _) = t
        .post_json(
            "/v1/journeys/t/test",
            &json!({"wait": "PT5S", "dry_run": false}),
        )
        .await;
    assert_eq!(code, 200);
    let e = t.event("e", "tess", json!({"n": 2})).await;
    t.processed(&e).await;
    t.advance(Span::new().seconds(6));
    eventually(|| async {
        let i = t.instance_in("tess", "t", "waiting").await;
        (i["node"] == "r").then_some(())
    })
    .await;
    t.advance(Span::new().seconds(6));
    eventually(|| async { (t.log_calls().len() == 1).then_some(()) }).await;
    let e = t.event("e", "tess", json!({"n": 3})).await;
    t.processed(&e).await;
    let (code, body) = t
        .send(reqwest::Method::DELETE, "/v1/journeys/t/test", None, "")
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ended_instances"], 1);
    let (code, _) = t
        .send(reqwest::Method::DELETE, "/v1/journeys/t/test", None, "")
        .await;
    assert_eq!(code, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_events_entries_transitions_actions_timers_and_commits() {
    let t = TestEngine::start().await;
    t.publish("m", WAIT_SEND).await;
    for p in ["a", "b"] {
        let e = t.event("e", p, json!({"n": 1})).await;
        t.processed(&e).await;
    }
    let (code, _) = t.post_json("/v1/events", &json!({"type": "e"})).await;
    assert_eq!(code, 400);
    let metrics = || async {
        let r = reqwest::get(t.url("/metrics")).await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };
    let before = metrics().await;
    assert!(before.contains("parcours_timers_pending 2"), "{before}");
    assert!(before.contains("parcours_instances_live 2"), "{before}");
    // The store's rows: the journey's publication, two events, their instances and steps.
    let rows = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix("parcours_store_rows_written_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no rows written in\n{text}"))
    };
    let rows_before = rows(&before);
    assert!(rows_before >= 6.0, "{before}");
    t.advance(Span::new().minutes(61));
    eventually(|| async { (sent(&t, "m").len() == 2).then_some(()) }).await;
    let text = eventually(|| async {
        let text = metrics().await;
        text.contains("parcours_instances_live 0").then_some(text)
    })
    .await;
    // The timers' commits wrote the instances again, and their steps.
    assert!(rows(&text) > rows_before, "{text}");
    for needle in [
        "parcours_events_accepted_total 2",
        "parcours_event_latency_seconds_count 2",
        "parcours_events_rejected_total{code=\"INVALID_EVENT\"} 1",
        "parcours_entries_total{journey=\"m\"} 2",
        "parcours_node_transitions_total{journey=\"m\",kind=\"wait\",status=\"waiting\"} 2",
        "parcours_action_calls_total{action=\"log@builtin\",outcome=\"ok\"} 2",
        "parcours_action_call_seconds_count{action=\"log@builtin\"} 2",
        "parcours_timers_fired_total 2",
        "parcours_timer_lateness_seconds_count 2",
        "parcours_store_commit_seconds_count",
        "parcours_timers_pending 0",
        // Each profile's event, then its timer: read both times (a state is kept for a
        // profile seen a second time).
        "parcours_profile_states_cached_total 0",
        "parcours_profile_states_read_total 4",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    // A third batch for `a` takes its state from its partition's cache (64 in tests).
    let e = t.event("e", "a", json!({"n": 2})).await;
    t.processed(&e).await;
    let text = metrics().await;
    for needle in [
        "parcours_profile_states_cached_total 1",
        "parcours_profile_states_read_total 4",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_rate_alert_fires_and_resolves_through_the_webhook() {
    let (server, seen) = crate::plugins::test_server().await;
    let t = TestEngine::start_with(crate::support::with_plugins).await;
    t.publish(
        "risky",
        "entry: {type: event, event: e}\nstart: check\nnodes:\n  check: {type: condition, branches: [{when: '10 / event.data.d > 1', next: ok}]}\n  ok: {type: end}\nproperties: {reentrance: {mode: always}}\n",
    )
    .await;
    let rule = json!({
        "journey": "risky",
        "condition": {"type": "error_rate", "above": 0.5, "min_steps": 4},
        "window": "PT10M",
        "notify": {"action": "webhook", "params": {"url": format!("{server}/alerts")}}
    });
    // Bad rules are refused with a location.
    for (bad, location) in [
        (json!({"window": "PT10S"}), "window"),
        (json!({"notify": {"action": "nope"}}), "notify.action"),
        (
            json!({"notify": {"action": "webhook", "params": {}}}),
            "notify.params",
        ),
        (
            json!({"condition": {"type": "error_rate", "above": 2}}),
            "condition.above",
        ),
        // Parameters are literal values, not expressions: a URL quoted as in a node.
        (
            json!({"notify": {"action": "webhook", "params": {"url": format!("\"{server}/alerts\"")}}}),
            "notify.params.url",
        ),
        (
            json!({"notify": {"action": "webhook", "params": {"url": "hooks.example.com/x"}}}),
            "notify.params.url",
        ),
        (
            json!({"notify": {"action": "webhook", "params": {"url": format!("{server}/alerts"), "headers": {"x-team": "'ops'"}}}}),
            "notify.params.headers.x-team",
        ),
    ] {
        let mut body = rule.clone();
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (code, err) = t
            .post_or_put(reqwest::Method::PUT, "/v1/alerts/errors", &body)
            .await;
        assert_eq!(
            (code, err["location"].as_str()),
            (422, Some(location)),
            "{err}"
        );
    }
    let (code, body) = t
        .post_or_put(reqwest::Method::PUT, "/v1/alerts/errors", &rule)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"]["status"], "ok");

    // Four failures (division by zero) and one success: 4 of 6 node steps failed.
    for (p, d) in [("a", 0), ("b", 0), ("c", 0), ("d", 0), ("e", 1)] {
        let e = t.event("e", p, json!({"d": d})).await;
        t.processed(&e).await;
    }
    t.advance(Span::new().seconds(61));
    let alert = eventually(|| async {
        let (_, a) = t.get("/v1/alerts/errors").await;
        (a["state"]["notified"] == true && a["state"]["status"] == "firing").then_some(a)
    })
    .await;
    let value = alert["state"]["value"].as_f64().unwrap();
    assert!((value - 4.0 / 6.0).abs() < 1e-9, "{alert}");
    let delivered: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/alerts")
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    {
        let seen = seen.lock().unwrap();
        let last = seen.iter().rev().find(|r| r.path == "/alerts").unwrap();
        assert_eq!(last.body["status"], "firing");
        assert_eq!(last.body["journey"], "risky");
        assert!(
            last.headers
                .iter()
                .any(|(k, v)| k == "idempotency-key" && v == "alert:errors:1"),
            "{:?}",
            last.headers
        );
    }
    // Once the window has passed without failures, it resolves, and says so.
    t.advance(Span::new().minutes(11));
    eventually(|| async {
        let (_, a) = t.get("/v1/alerts/errors").await;
        (a["state"]["status"] == "ok" && a["state"]["notified"] == true).then_some(())
    })
    .await;
    let statuses: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/alerts")
        .map(|r| r.body["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("firing"), json!("ok")]);
    let (_, list) = t.get("/v1/alerts").await;
    assert_eq!(list["alerts"][0]["state"]["transitions"], 2);
    assert_eq!(
        t.send(reqwest::Method::DELETE, "/v1/alerts/errors", None, "")
            .await
            .0,
        204
    );
    assert_eq!(t.get("/v1/alerts/errors").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_run_alert_fires_when_a_run_reads_nothing_for_its_window() {
    use parcours_engine::store::RunStore;
    let t = TestEngine::start().await;
    // A run that reads nothing more (runs left open are resumed only when the engine
    // starts, before this one exists).
    let run: parcours_engine::store::RunRecord = serde_json::from_value(json!({
        "id": "run-1", "journey_id": "digest", "version": 1, "kind": "schedule",
        "audience": "all", "scheduled_at": crate::support::START, "started_at": crate::support::START,
        "status": "running", "read": 5, "entered": 5, "skipped": 0, "skipped_reasons": {},
        "rate": 10, "trigger": {}
    }))
    .unwrap();
    assert!(t.store.create_run(run).await.unwrap());
    let rule = json!({"journey": "digest", "condition": {"type": "stalled_run"}, "window": "PT5M",
                      "notify": {"action": "log"}});
    let (code, body) = t
        .post_or_put(reqwest::Method::PUT, "/v1/alerts/stalled", &rule)
        .await;
    assert_eq!(code, 200, "{body}");
    // First seen now; five minutes later without progress it fires.
    t.advance(Span::new().seconds(61));
    eventually(|| async {
        let (_, a) = t.get("/v1/alerts/stalled").await;
        a["state"]["evaluated_at"].is_string().then_some(())
    })
    .await;
    assert_eq!(t.get("/v1/alerts/stalled").await.1["state"]["status"], "ok");
    // Keep the clock moving a minute at a time until it fires (at most ten minutes).
    let mut fired = None;
    for _ in 0..10 {
        t.advance(Span::new().seconds(61));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let (_, a) = t.get("/v1/alerts/stalled").await;
        if a["state"]["status"] == "firing" {
            fired = Some(a);
            break;
        }
    }
    let a = match fired {
        Some(a) => a,
        None => {
            eventually(|| async {
                let (_, a) = t.get("/v1/alerts/stalled").await;
                (a["state"]["status"] == "firing").then_some(a)
            })
            .await
        }
    };
    assert!(a["state"]["value"].as_f64().unwrap() >= 300.0, "{a}");
    let call = eventually(|| async {
        t.log_calls()
            .into_iter()
            .find(|c| c.node_id == "alert:stalled")
    })
    .await;
    assert_eq!(call.params["body"]["status"], "firing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_rate_cap_makes_calls_wait_durably_in_their_instances() {
    let t = TestEngine::start_with(|s| {
        s.action_limits.insert(
            "log".into(),
            parcours_engine::actions::ActionLimit {
                rate_per_second: Some(2.0),
                max_concurrent: None,
            },
        );
    })
    .await;
    t.publish("capped", SEND).await;
    for p in ["p1", "p2", "p3", "p4", "p5"] {
        let e = t.event("e", p, json!({"n": 1})).await;
        t.processed(&e).await;
    }
    // Two calls per second: two now, three waiting in their instances.
    assert_eq!(sent(&t, "capped").len(), 2);
    let mut waiting = Vec::new();
    for p in ["p1", "p2", "p3", "p4", "p5"] {
        for i in t.instances(p).await {
            if i["status"] == "waiting" {
                waiting.push(i);
            }
        }
    }
    assert_eq!(waiting.len(), 3);
    let steps = t.steps(waiting[0]["id"].as_str().unwrap()).await;
    let last = steps.last().unwrap();
    assert_eq!(last["status"], "waiting");
    assert_eq!(last["detail"]["throttled"]["by"], "action:log", "{last}");
    // Half a second later one more token: one more call.
    t.advance(Span::new().milliseconds(500));
    eventually(|| async { (sent(&t, "capped").len() == 3).then_some(()) }).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(sent(&t, "capped").len(), 3, "the cap holds");
    for _ in 0..4 {
        t.advance(Span::new().milliseconds(500));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    eventually(|| async { (sent(&t, "capped").len() == 5).then_some(()) }).await;
    // Each call once, with its own key.
    let mut keys: Vec<String> = t
        .log_calls()
        .into_iter()
        .map(|c| c.idempotency_key)
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 5);
}

/// `alert_check_seconds` (a serve flag): with 5 s, a rule fires 5 s after its condition
/// holds on the engine clock, not after the default minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_checked_as_often_as_the_setting_says() {
    let t = TestEngine::start_with(|s| s.alert_check_seconds = 5).await;
    t.publish(
        "risky",
        "entry: {type: event, event: e}\nstart: check\nnodes:\n  check: {type: condition, branches: [{when: '10 / event.data.d > 1', next: ok}]}\n  ok: {type: end}\nproperties: {reentrance: {mode: always}}\n",
    )
    .await;
    let rule = json!({"journey": "risky", "condition": {"type": "error_rate", "above": 0.5, "min_steps": 2}, "window": "PT1M"});
    let (code, body) = t
        .post_or_put(reqwest::Method::PUT, "/v1/alerts/fast", &rule)
        .await;
    assert_eq!(code, 200, "{body}");
    for p in ["a", "b", "c"] {
        let e = t.event("e", p, json!({"d": 0})).await;
        t.processed(&e).await;
    }
    t.advance(Span::new().seconds(6));
    eventually(|| async {
        let (_, a) = t.get("/v1/alerts/fast").await;
        (a["state"]["status"] == "firing").then_some(a)
    })
    .await;
}

/// Test mode beside a live version: test profiles enter only the draft (even one with a
/// live instance of the live version), other profiles only the live version; a wait's
/// step says when the instance really wakes; ending test mode and stopping the journey
/// end instances through their partitions, with an `ended` step and code each, counted
/// in the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_under_test_beside_a_live_version_and_endings_on_record() {
    let t = TestEngine::start().await;
    // Live v1: a one-second wait, then an action for real.
    let live = "entry: {type: event, event: go}\nstart: w\nnodes:\n  w: {type: wait, duration: PT1S, next: send}\n  send: {type: action, action: log, params: {v: '1'}}\nproperties: {reentrance: {mode: always}}\n";
    t.publish("h", live).await;
    for (id, test) in [("tess", true), ("rita", false)] {
        let (code, body) = t
            .post_or_put(
                reqwest::Method::PUT,
                &format!("/v1/profiles/{id}"),
                &json!({"attributes": {"test_profile": test}}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
    // A test profile in the live version before the test begins: it stays there.
    let e = t.event("go", "tess", json!({})).await;
    t.processed(&e).await;
    let before = t.instance_in("tess", "h", "waiting").await;
    assert_eq!(before["version"], 1);

    // The draft: a one-day wait, capped to two seconds by the test.
    let draft = live.replace("PT1S", "P1D").replace("v: '1'", "v: '0'");
    let (code, _) = t
        .send(
            reqwest::Method::PUT,
            "/v1/journeys/h",
            Some(draft.as_bytes()),
            "",
        )
        .await;
    assert_eq!(code, 200);
    let (code, body) = t
        .post_json(
            "/v1/journeys/h/test",
            &json!({"wait": "PT2S", "dry_run": true}),
        )
        .await;
    assert_eq!(code, 200, "{body}");

    let now = t.now();
    for p in ["tess", "rita"] {
        let e = t.event("go", p, json!({})).await;
        t.processed(&e).await;
    }
    let mut tess: Vec<Value> = t.instances("tess").await;
    tess.sort_by_key(|i| std::cmp::Reverse(i["version"].as_u64()));
    let versions: Vec<(u64, &str)> = tess
        .iter()
        .map(|i| {
            (
                i["version"].as_u64().unwrap(),
                i["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [(1, "waiting"), (0, "waiting")],
        "the test profile entered the draft, and only the draft: {tess:?}"
    );
    let rita = t.instances("rita").await;
    assert_eq!(
        (rita.len(), &rita[0]["version"]),
        (1, &json!(1)),
        "{rita:?}"
    );
    // The wait's step says when the test instance really wakes.
    let test_instance = &tess[1];
    let steps = t.steps(test_instance["id"].as_str().unwrap()).await;
    let wait = steps
        .iter()
        .find(|s| s["node"] == "w")
        .expect("a wait step");
    let capped = now.checked_add(Span::new().seconds(2)).unwrap().to_string();
    let uncapped = now.checked_add(Span::new().hours(24)).unwrap().to_string();
    assert_eq!(wait["detail"]["until"], capped.as_str(), "{wait}");
    assert_eq!(
        wait["detail"]["until_without_test"],
        uncapped.as_str(),
        "{wait}"
    );
    assert_eq!(test_instance["wake_at"], capped.as_str(), "{test_instance}");

    // Ending test mode ends the test instance, with its step and code.
    let (code, body) = t
        .send(reqwest::Method::DELETE, "/v1/journeys/h/test", None, "")
        .await;
    assert_eq!((code, &body["ended_instances"]), (200, &json!(1)), "{body}");
    let ended = t.steps(test_instance["id"].as_str().unwrap()).await;
    let last = ended.last().unwrap();
    assert_eq!(
        (&last["status"], &last["code"]),
        (&json!("ended"), &json!("TEST_ENDED")),
        "{ended:?}"
    );
    let live_one = t
        .instances("tess")
        .await
        .into_iter()
        .find(|i| i["id"] == before["id"])
        .unwrap();
    assert_eq!(live_one["status"], "waiting", "the live instance goes on");

    // Stopping the journey ends the live instances the same way.
    let (code, body) = t.post_json("/v1/journeys/h/stop", &json!({})).await;
    assert_eq!((code, &body["ended_instances"]), (200, &json!(2)), "{body}");
    for id in [
        before["id"].as_str().unwrap(),
        rita[0]["id"].as_str().unwrap(),
    ] {
        let steps = t.steps(id).await;
        let last = steps.last().unwrap();
        assert_eq!(
            (&last["status"], &last["code"]),
            (&json!("ended"), &json!("JOURNEY_STOPPED")),
            "{steps:?}"
        );
    }
    let (code, report) = t.get("/v1/journeys/h/report").await;
    assert_eq!(code, 200, "{report}");
    let node = |version: u64, node: &str| {
        report["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["version"] == version)
            .and_then(|v| {
                v["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|n| n["node"] == node)
            })
            .cloned()
            .unwrap_or_else(|| panic!("version {version}, node {node} in {report}"))
    };
    assert_eq!(
        node(1, "w")["end_codes"],
        json!({"JOURNEY_STOPPED": 2}),
        "{report}"
    );
    assert_eq!(
        node(0, "w")["end_codes"],
        json!({"TEST_ENDED": 1}),
        "{report}"
    );
    // Nothing was sent for the test profile's test entry; the live instances never
    // reached their action.
    assert!(t.log_calls().is_empty(), "{:?}", t.log_calls());
}

/// Stopping a journey while events are being processed: the stop goes through the
/// partitions, so no instance comes back live and each ended instance has exactly one
/// ending step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_stopped_under_load_leaves_no_live_instance_and_one_ending_each() {
    let t = TestEngine::start_with(|s| s.partitions = 4).await;
    t.publish(
        "busy",
        "entry: {type: event, event: e}\nstart: w\nnodes:\n  w: {type: wait, duration: PT1H, next: done}\n  done: {type: end}\nproperties: {reentrance: {mode: always}}\n",
    )
    .await;
    let sender = {
        let client = t.client.clone();
        let url = t.url("/v1/events");
        tokio::spawn(async move {
            for round in 0..40 {
                let events: Vec<Value> = (0..25)
                    .map(|i| json!({"type": "e", "profile_id": format!("p{}", (round * 25 + i) % 200)}))
                    .collect();
                let _ = client
                    .post(&url)
                    .json(&json!({"events": events}))
                    .send()
                    .await;
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (code, body) = t.post_json("/v1/journeys/busy/stop", &json!({})).await;
    assert_eq!(code, 200, "{body}");
    sender.await.unwrap();
    // Let the partitions finish what was accepted.
    let e = t.event("other", "late", json!({})).await;
    t.processed(&e).await;

    let mut ended = 0;
    for p in 0..200 {
        for i in t.instances(&format!("p{p}")).await {
            assert_ne!(i["status"], "waiting", "{i}");
            assert_ne!(i["status"], "active", "{i}");
            let steps = t.steps(i["id"].as_str().unwrap()).await;
            let endings = steps.iter().filter(|s| s["status"] == "ended").count();
            assert_eq!(endings, 1, "{steps:?}");
            ended += 1;
        }
    }
    assert!(ended > 0, "some instances entered before the stop");
}

//! Every limit, exceeded through the API, gives a clear 4xx naming its setting, or a
//! step error with a code; nothing already accepted is lost.

use serde_json::{Value, json};

use crate::support::{TestEngine, eventually};

fn big(n: usize) -> String {
    "x".repeat(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_answers_with_its_code_and_setting() {
    let t = TestEngine::start_with(|s| {
        s.max_journey_bytes = 4_000;
        s.max_journey_nodes = 3;
        s.max_profile_bytes = 300;
        s.max_import_bytes = 2_000;
        s.max_plugin_bytes = 5_000;
        s.max_steps_per_activation = 5;
        s.expr.max_operations = 2_000;
        s.expr.max_string_size = 1_000;
        s.expr.max_array_size = 100;
        s.expr.max_source_bytes = 500;
        s.expr.max_expr_depth = 20;
    })
    .await;
    let put = |path: &str, body: Vec<u8>| {
        let path = path.to_string();
        let t = &t;
        async move {
            t.send(reqwest::Method::PUT, &path, Some(&body), "application/json")
                .await
        }
    };

    // Journey size and node count.
    let huge = format!(
        "{{\"description\": \"{}\", \"entry\": {{\"type\": \"event\", \"event\": \"e\"}}, \"start\": \"a\", \"nodes\": {{\"a\": {{\"type\": \"end\"}}}}}}",
        big(5_000)
    );
    let (code, body) = put("/v1/journeys/big", huge.into_bytes()).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (413, Some("JOURNEY_TOO_LARGE")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("max_journey_bytes")
    );
    let four = "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: wait, duration: PT1M, next: b}\n  b: {type: wait, duration: PT1M, next: c}\n  c: {type: wait, duration: PT1M, next: d}\n  d: {type: end}\n";
    let (code, body) = t
        .send(
            reqwest::Method::PUT,
            "/v1/journeys/many",
            Some(four.as_bytes()),
            "",
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["valid"], false);
    let problems = body["problems"].to_string();
    assert!(problems.contains("max_journey_nodes"), "{problems}");

    // Expression limits, checked when the journey is validated.
    let long_expr = format!(
        "entry: {{type: event, event: e, when: 'event.data.a == \"{}\"'}}\nstart: a\nnodes:\n  a: {{type: end}}\n",
        big(600)
    );
    let (code, body) = t
        .post_or_put(reqwest::Method::POST, "/v1/journeys/validate", &Value::Null)
        .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = t.validate(&long_expr).await;
    assert_eq!(
        (code, body["location"].as_str()),
        (422, Some("entry.when")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("expr.max_source_bytes"),
        "{body}"
    );
    let deep = format!(
        "entry: {{type: event, event: e, when: '{}true{}'}}\nstart: a\nnodes:\n  a: {{type: end}}\n",
        "(".repeat(40),
        ")".repeat(40)
    );
    let (code, body) = t.validate(&deep).await;
    assert_eq!(
        (code, body["location"].as_str()),
        (422, Some("entry.when")),
        "{body}"
    );

    // Expression limits at run time: a step error with EXPR_EVAL naming the setting.
    let def = r#"
entry: {type: event, event: e}
start: check
nodes:
  check:
    type: condition
    branches:
      - when: 'event.data.kind == "ops" && event.data.xs.map(|a| a + 1).map(|a| a + 1).map(|a| a + 1).len() > 0'
        next: done
      - when: 'event.data.kind == "string" && event.data.xs.reduce(|acc, x| acc + "yyyyyyyyyyyyyyyyyyyy", "").len() > 0'
        next: done
      - when: 'event.data.kind == "array" && event.data.xs.map(|x| [x, x]).reduce(|a, b| a + b, []).len() > 0'
        next: done
    otherwise: done
  done: {type: end}
properties: {reentrance: {mode: always}}
"#;
    t.publish("limits", def).await;
    let xs: Vec<i64> = (0..90).collect();
    for (profile, data, setting) in [
        (
            "ops",
            json!({"kind": "ops", "xs": (0..2000).collect::<Vec<i64>>()}),
            "expr.max_operations",
        ),
        (
            "string",
            json!({"kind": "string", "xs": xs}),
            "expr.max_string_size",
        ),
        (
            "array",
            json!({"kind": "array", "xs": xs}),
            "expr.max_array_size",
        ),
    ] {
        let e = t.event("e", profile, data).await;
        t.processed(&e).await;
        let inst = t.instance_in(profile, "limits", "failed").await;
        let failed = t.failed_step(&inst).await;
        assert_eq!(failed["code"], "EXPR_EVAL", "{failed}");
        let message = failed["message"].as_str().unwrap().to_lowercase();
        assert!(message.contains(setting), "{setting}: {message}");
    }

    // Profile size, in a request and in an import line.
    let (code, body) = t
        .post_or_put(
            reqwest::Method::PUT,
            "/v1/profiles/fat",
            &json!({"attributes": {"bio": big(400)}}),
        )
        .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (413, Some("PROFILE_TOO_LARGE")),
        "{body}"
    );
    let lines = format!(
        "{{\"id\": \"ok\"}}\n{{\"id\": \"fat\", \"attributes\": {{\"bio\": \"{}\"}}}}\n",
        big(400)
    );
    let (code, body) = t
        .send(
            reqwest::Method::POST,
            "/v1/profiles/import",
            Some(lines.as_bytes()),
            "application/x-ndjson",
        )
        .await;
    assert!(code == 413 || code == 400, "{code} {body}");
    assert!(
        body["location"]
            .as_str()
            .unwrap_or("")
            .starts_with("line 2"),
        "{body}"
    );
    assert_eq!(
        t.get("/v1/profiles/ok").await.0,
        404,
        "an import is all or nothing"
    );
    // Import and plugin upload bodies.
    let (code, body) = t
        .send(
            reqwest::Method::POST,
            "/v1/profiles/import",
            Some(big(3_000).as_bytes()),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (413, Some("BODY_TOO_LARGE")),
        "{body}"
    );
    let (code, body) = put("/v1/plugins/huge", big(6_000).into_bytes()).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (413, Some("BODY_TOO_LARGE")),
        "{body}"
    );

    // Steps per activation: a chain of conditions longer than the limit is refused at
    // validation, at the node where an instance would fail, naming the setting.
    let chain = "entry: {type: event, event: go}\nstart: a\nnodes:\n  a: {type: condition, branches: [{when: 'true', next: b}]}\n  b: {type: condition, branches: [{when: 'true', next: c}]}\n  c: {type: end}\n";
    let t2 = TestEngine::start_with(|s| s.max_steps_per_activation = 2).await;
    let (code, body) = t2.validate(chain).await;
    assert_eq!(
        (code, body["location"].as_str()),
        (422, Some("nodes.c")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("max_steps_per_activation"),
        "{body}"
    );
    // With a wait on the way, the same chain runs.
    let paused = chain.replace(
        "  b: {type: condition, branches: [{when: 'true', next: c}]}",
        "  b: {type: wait, duration: PT1M, next: c}",
    );
    t2.publish("chain", &paused).await;
    t2.event("go", "p", json!({})).await;
    t2.instance_in("p", "chain", "waiting").await;
    t2.advance(jiff::Span::new().minutes(2));
    let inst = t2.instance_in("p", "chain", "completed").await;
    assert_eq!(inst["end_reason"], "COMPLETED", "{inst}");

    // What was accepted before is all there.
    let e = t.event("e", "after", json!({"kind": "none"})).await;
    t.processed(&e).await;
    eventually(|| async {
        let i = t.instance_in("after", "limits", "completed").await;
        Some(i)
    })
    .await;
}

/// A journey of 10,000 nodes (the default `max_journey_nodes`): a chain of conditions
/// with a wait every 150 nodes, so no activation passes more than
/// `max_steps_per_activation` (200). It validates, publishes, and an event runs it to its
/// last node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_node_journey_validates_publishes_and_runs_its_longest_path() {
    const NODES: usize = 10_000;
    let t = TestEngine::start_with(|_| {}).await;
    let mut nodes = serde_json::Map::new();
    let last = NODES - 2;
    for i in 0..last {
        let next = format!("n{}", i + 1);
        let node = if i % 150 == 149 {
            json!({"type": "wait", "duration": "PT1M", "next": next})
        } else {
            json!({"type": "condition", "branches": [{"when": "event.data.walk == true", "next": next}], "otherwise": "off"})
        };
        nodes.insert(format!("n{i}"), node);
    }
    nodes.insert(format!("n{last}"), json!({"type": "end"}));
    nodes.insert("off".into(), json!({"type": "end"}));
    assert_eq!(nodes.len(), NODES);
    let waits = last / 150;
    let def = json!({
        "entry": {"type": "event", "event": "go"},
        "start": "n0",
        "nodes": nodes,
    })
    .to_string();
    let (code, body) = t.validate(&def).await;
    assert_eq!(
        code,
        200,
        "{}",
        &body.to_string()[..body.to_string().len().min(500)]
    );
    t.publish("huge", &def).await;

    let e = t.event("go", "walker", json!({"walk": true})).await;
    t.processed(&e).await;
    let mut instance = t.instance_in("walker", "huge", "waiting").await;
    for _ in 0..waits {
        let at = instance["node"].clone();
        t.advance(jiff::Span::new().minutes(1));
        instance = eventually(|| async {
            let i = t
                .instances("walker")
                .await
                .into_iter()
                .find(|i| i["journey_id"] == "huge")?;
            (i["node"] != at).then_some(i)
        })
        .await;
    }
    assert_eq!(instance["status"], "completed", "{instance}");
    assert_eq!(instance["node"], format!("n{last}"), "{instance}");
    let steps = t.steps(instance["id"].as_str().unwrap()).await;
    // The entry, every node of the chain, each wait twice (waiting, then passed), and
    // the ending.
    assert_eq!(steps.len(), 1 + (last + 1) + waits + 1, "{}", steps.len());
    let end = &steps[steps.len() - 1];
    assert_eq!(
        (&end["status"], &end["code"]),
        (&json!("ended"), &json!("COMPLETED"))
    );
}

//! Every list endpoint pages with `?after=&limit=` and answers `next`; profiles are
//! searched with a rhai `filter`, page by page.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::TestEngine;

/// Follows `next` from the first page to the last: the ids of each page.
async fn all_pages(t: &TestEngine, path: &str, list: &str, key: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &after {
            Some(a) => format!("{path}{sep}after={}", urlencode(a)),
            None => path.to_string(),
        };
        let (status, body) = t.get(&url).await;
        assert_eq!(status, 200, "{url}: {body}");
        let ids: Vec<String> = body[list]
            .as_array()
            .unwrap_or_else(|| panic!("{url}: no {list} in {body}"))
            .iter()
            .map(|i| match &i[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        pages.push(ids);
        match &body["next"] {
            Value::String(next) => after = Some(next.clone()),
            Value::Null => return pages,
            other => panic!("{url}: next is {other}"),
        }
        assert!(pages.len() < 100, "{url}: pages without end");
    }
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_after_and_limit_and_profiles_are_searched_with_a_filter() {
    let t = TestEngine::start_with(|_| {}).await;
    for (id, tier, age) in [
        ("p1", "free", 17),
        ("p2", "gold", 30),
        ("p3", "free", 40),
        ("p4", "gold", 25),
        ("p5", "free", 50),
    ] {
        let (status, body) = t
            .send(
                Method::PUT,
                &format!("/v1/profiles/{id}"),
                Some(
                    json!({"attributes": {"tier": tier, "age": age}})
                        .to_string()
                        .as_bytes(),
                ),
                "application/json",
            )
            .await;
        assert!(status < 300, "{body}");
    }
    assert_eq!(
        all_pages(&t, "/v1/profiles?limit=2", "profiles", "id").await,
        [vec!["p1", "p2"], vec!["p3", "p4"], vec!["p5"]]
    );
    let filter = urlencode(r#"profile.tier == "gold" && profile.age >= 18"#);
    let gold: Vec<String> = all_pages(
        &t,
        &format!("/v1/profiles?limit=1&filter={filter}"),
        "profiles",
        "id",
    )
    .await
    .concat();
    assert_eq!(gold, ["p2", "p4"]);
    // A filter on an attribute some profiles lack does not hold for them.
    let filter = urlencode("profile.missing > 3");
    assert_eq!(
        all_pages(
            &t,
            &format!("/v1/profiles?filter={filter}"),
            "profiles",
            "id"
        )
        .await,
        [Vec::<String>::new()]
    );
    let (status, err) = t
        .get(&format!(
            "/v1/profiles?filter={}",
            urlencode("profile.tier ==")
        ))
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["location"], "filter");

    // Journeys, an instance's steps, plugins: the same parameters.
    for id in ["j_a", "j_b", "j_c"] {
        t.publish(
            id,
            "entry: {type: event, event: go}\nstart: done\nnodes:\n  done: {type: end}\n",
        )
        .await;
    }
    assert_eq!(
        all_pages(&t, "/v1/journeys?limit=2", "journeys", "id").await,
        [vec!["j_a", "j_b"], vec!["j_c"]]
    );
    t.event("go", "p1", json!({})).await;
    let instance = t.instance_in("p1", "j_a", "completed").await;
    let id = instance["id"].as_str().expect("id");
    let steps = all_pages(
        &t,
        &format!("/v1/instances/{id}/steps?limit=1"),
        "steps",
        "node",
    )
    .await;
    let whole: Vec<String> = t
        .steps(id)
        .await
        .iter()
        .map(|s| s["node"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(whole.len() >= 2, "{whole:?}");
    assert_eq!(steps.concat(), whole);
    assert!(steps.iter().all(|p| p.len() == 1), "{steps:?}");
    let instances = all_pages(
        &t,
        "/v1/profiles/p1/instances?limit=1",
        "instances",
        "journey_id",
    )
    .await;
    assert_eq!(instances.len(), 3, "{instances:?}");

    // Live instances at a node, paged in the store: the same parameters.
    t.publish(
        "j_wait",
        "entry: {type: event, event: hold}\nstart: w\nnodes:\n  w: {type: wait, duration: P1D, next: done}\n  done: {type: end}\n",
    )
    .await;
    for p in ["p1", "p2", "p3"] {
        t.event("hold", p, json!({})).await;
        t.instance_in(p, "j_wait", "waiting").await;
    }
    let waiting = all_pages(
        &t,
        "/v1/journeys/j_wait/instances?node=w&limit=2",
        "instances",
        "profile_id",
    )
    .await;
    assert_eq!(waiting, [vec!["p1", "p2"], vec!["p3"]]);

    // A cursor that is not a key of the list is refused where it is.
    for path in [
        "/v1/journeys?after=nope",
        "/v1/journeys/j_wait/instances?node=w&after=nope",
    ] {
        let (status, err) = t.get(path).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["location"], "after");
    }
}

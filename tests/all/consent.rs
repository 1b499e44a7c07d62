//! Consent through the API: subscription groups and their defaults, a profile's consent
//! stated by the API, an import and Segment traits (each change listed with its
//! source), marketing messages skipped with `UNSUBSCRIBED` and transactional ones sent,
//! the suppression list, and the located errors of groups and message nodes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::TestEngine;

const PROMO: &str = r#"
channel: sms
default_locale: en
locales:
  en: {body: "20% off today. Reply STOP to stop."}
"#;

const JOURNEY: &str = r#"
entry: {type: event, event: promo_due}
properties: {reentrance: {mode: always}}
start: promo
nodes:
  promo: {type: message, template: promo, subscription_group: sms_offers, next: done}
  done: {type: end}
"#;

async fn put(t: &TestEngine, path: &str, body: Value) -> (u16, Value) {
    t.post_or_put(Method::PUT, path, &body).await
}

/// Every step of the profile's instances of the journey, oldest instance first.
async fn promo_steps(t: &TestEngine, profile: &str, n: usize) -> Vec<Value> {
    crate::support::eventually(|| async {
        let mut steps = Vec::new();
        let instances = t.instances(profile).await;
        let done: Vec<&Value> = instances
            .iter()
            .filter(|i| i["journey_id"] == "promos" && i["status"] == "completed")
            .collect();
        if done.len() < n {
            return None;
        }
        for i in done {
            steps.extend(
                t.steps(i["id"].as_str().unwrap())
                    .await
                    .into_iter()
                    .filter(|s| s["node"] == "promo"),
            );
        }
        steps.sort_by_key(|s| s["seq"].as_i64());
        Some(steps)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_from_every_source_decides_marketing_messages_and_is_listed() {
    let t = TestEngine::start_with(|s| {
        s.segment_write_keys = vec!["wk".into()];
    })
    .await;
    // The channels' groups exist without a definition: email opt-out, SMS opt-in.
    let (_, groups) = t.get("/v1/subscription-groups").await;
    let defaults: Vec<(String, String)> = groups["subscription_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap().into(),
                g["default"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        defaults,
        [("email", "opt_out"), ("push", "opt_in"), ("sms", "opt_in")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // A group's problems are located; its channel cannot change afterwards.
    let (status, err) = put(
        &t,
        "/v1/subscription-groups/sms_offers",
        json!({"channel": "sms", "default": "maybe"}),
    )
    .await;
    assert_eq!(
        (status, err["location"].clone()),
        (422, json!("default")),
        "{err}"
    );
    let (status, _) = put(
        &t,
        "/v1/subscription-groups/sms_offers",
        json!({"channel": "sms", "default": "opt_in", "name": "SMS offers"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, err) = put(
        &t,
        "/v1/subscription-groups/sms_offers",
        json!({"channel": "email", "default": "opt_in"}),
    )
    .await;
    assert_eq!(
        (status, err["location"].clone()),
        (422, json!("channel")),
        "{err}"
    );

    let (status, answer) = t
        .send(
            Method::PUT,
            "/v1/templates/promo",
            Some(PROMO.as_bytes()),
            "application/yaml",
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // A message node's group must exist and be of its template's channel.
    for (group, location, words) in [
        (
            "nope",
            "nodes.promo.subscription_group",
            "unknown subscription group \"nope\"",
        ),
        (
            "email",
            "nodes.promo.subscription_group",
            "is a group of email messages, not sms",
        ),
    ] {
        let (status, err) = t.validate(&JOURNEY.replace("sms_offers", group)).await;
        assert_eq!(status, 422, "{err}");
        let problem = err["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"] == location)
            .unwrap_or_else(|| panic!("{err}"));
        assert!(
            problem["message"].as_str().unwrap().contains(words),
            "{err}"
        );
    }
    let (status, err) = t
        .validate(&JOURNEY.replace(
            "subscription_group: sms_offers",
            "category: transactional, subscription_group: sms",
        ))
        .await;
    assert_eq!(status, 422, "{err}");
    t.publish("promos", JOURNEY).await;

    // Opt-in: a profile that said nothing gets no offer, and the step says why.
    for id in ["ann", "bob", "cy"] {
        put(
            &t,
            &format!("/v1/profiles/{id}"),
            json!({"attributes": {"phone": "+15550100"}}),
        )
        .await;
    }
    t.event("promo_due", "ann", json!({})).await;
    let steps = promo_steps(&t, "ann", 1).await;
    assert_eq!(
        (steps[0]["status"].clone(), steps[0]["code"].clone()),
        (json!("skipped"), json!("UNSUBSCRIBED")),
        "{steps:?}"
    );
    assert!(t.outbox("ann").await.is_empty());

    // Consent from the API (with a source), an import and Segment.
    let (status, consent) = put(
        &t,
        "/v1/profiles/ann/consent/sms_offers",
        json!({"subscribed": true, "source": "preference_center"}),
    )
    .await;
    assert_eq!(status, 200, "{consent}");
    let (status, err) = put(
        &t,
        "/v1/profiles/ann/consent/nope",
        json!({"subscribed": true}),
    )
    .await;
    assert_eq!(status, 404, "{err}");
    let csv = "id,subscriptions:json\nbob,\"{\"\"sms_offers\"\": true}\"\n";
    let (status, answer) = t
        .send(
            Method::POST,
            "/v1/profiles/import",
            Some(csv.as_bytes()),
            "text/csv",
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let r = t
        .client
        .post(t.url("/v1/segment/identify"))
        .basic_auth("wk", Some(""))
        .json(&json!({"userId": "cy", "traits": {"subscriptions": {"sms_offers": "subscribed"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (id, source) in [
        ("ann", "preference_center"),
        ("bob", "import"),
        ("cy", "segment"),
    ] {
        let (_, consent) = t.get(&format!("/v1/profiles/{id}/consent")).await;
        let changes = consent["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{consent}");
        assert_eq!(
            (
                changes[0]["group"].clone(),
                changes[0]["subscribed"].clone(),
                changes[0]["source"].clone()
            ),
            (json!("sms_offers"), json!(true), json!(source)),
            "{consent}"
        );
        let group = consent["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == "sms_offers")
            .unwrap();
        assert_eq!(
            (group["subscribed"].clone(), group["from"].clone()),
            (json!(true), json!("stated"))
        );
        t.event("promo_due", id, json!({})).await;
    }
    let steps = promo_steps(&t, "ann", 2).await;
    assert!(steps.iter().any(|s| s["status"] == "passed"), "{steps:?}");
    for id in ["ann", "bob", "cy"] {
        crate::support::eventually(|| async { (t.outbox(id).await.len() == 1).then_some(()) })
            .await;
    }

    // A suppressed number gets nothing; taken off the list, it gets messages again.
    let (status, s) = put(
        &t,
        "/v1/suppressions/+15550100",
        json!({"reason": "complaint"}),
    )
    .await;
    assert_eq!((status, s["source"].clone()), (200, json!("api")), "{s}");
    t.event("promo_due", "bob", json!({})).await;
    let steps = promo_steps(&t, "bob", 2).await;
    let last = steps.last().unwrap();
    assert_eq!(last["code"], "SUPPRESSED", "{steps:?}");
    assert!(
        last["message"].as_str().unwrap().contains("complaint"),
        "{last}"
    );
    let (_, list) = t.get("/v1/suppressions").await;
    assert_eq!(list["suppressions"][0]["address"], "+15550100");
    let r = t
        .client
        .delete(t.url("/v1/suppressions/+15550100"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    t.event("promo_due", "bob", json!({})).await;
    promo_steps(&t, "bob", 3).await;
    crate::support::eventually(|| async { (t.outbox("bob").await.len() == 2).then_some(()) }).await;

    // The profile's messages: each sent, or not sent with why.
    let (status, list) = t.get("/v1/profiles/bob/messages").await;
    assert_eq!(status, 200, "{list}");
    let states: Vec<(Value, Value)> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["state"].clone(), m["code"].clone()))
        .collect();
    assert_eq!(
        states,
        [
            ("sent", Value::Null),
            ("not_sent", json!("SUPPRESSED")),
            ("sent", Value::Null)
        ]
        .map(|(s, c)| (json!(s), c))
    );
    let first = &list["messages"][0];
    assert_eq!(
        (
            first["template"].clone(),
            first["channel"].clone(),
            first["to"].clone(),
            first["provider"].clone()
        ),
        (
            json!("promo"),
            json!("sms"),
            json!("+15550100"),
            json!("outbox")
        ),
        "{first}"
    );
    let (_, list) = t.get("/v1/profiles/ann/messages?limit=1").await;
    assert_eq!(list["messages"][0]["code"], "UNSUBSCRIBED", "{list}");
    assert_eq!(list["messages"][0]["template"], "promo", "{list}");
    let (_, rest) = t
        .get(&format!(
            "/v1/profiles/ann/messages?after={}",
            list["next"].as_str().unwrap()
        ))
        .await;
    assert_eq!(rest["messages"][0]["state"], "sent", "{rest}");

    // A deleted profile's consent history goes with it.
    let r = t
        .client
        .delete(t.url("/v1/profiles/cy"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = t.get("/v1/profiles/cy/consent").await;
    assert_eq!(status, 404);
    use parcours_engine::store::ConsentStore;
    let kept = t.store.consent_changes("cy", None, 10).await.unwrap();
    assert!(kept.is_empty(), "{kept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_a_marketing_sms_until_local_morning_across_a_dst_change() {
    let t = TestEngine::start_with(|s| {
        s.quiet_hours = [("sms".to_string(), "21:00-08:00".to_string())].into();
    })
    .await;
    let (status, _) = put(
        &t,
        "/v1/subscription-groups/sms_offers",
        json!({"channel": "sms", "default": "opt_in"}),
    )
    .await;
    assert_eq!(status, 200);
    t.send(
        Method::PUT,
        "/v1/templates/promo",
        Some(PROMO.as_bytes()),
        "application/yaml",
    )
    .await;
    t.publish("promos", JOURNEY).await;
    put(
        &t,
        "/v1/profiles/nyc",
        json!({"attributes": {"phone": "+12125550100", "subscriptions": {"sms_offers": true}}, "timezone": "America/New_York"}),
    )
    .await;
    // 22:00 EST on Saturday 7 March 2026 (the test clock starts 2 March 08:00Z). Clocks
    // go forward at 02:00 that night: 08:00 on Sunday is 12:00Z, not 13:00Z.
    t.advance(jiff::Span::new().days(5).hours(19));
    assert_eq!(t.now().to_string(), "2026-03-08T03:00:00Z");
    t.event("promo_due", "nyc", json!({})).await;
    let held = t.instance_in("nyc", "promos", "waiting").await;
    assert_eq!(held["wake_at"], "2026-03-08T12:00:00Z", "{held}");
    let steps = t.steps(held["id"].as_str().unwrap()).await;
    let step = steps
        .iter()
        .find(|s| s["node"] == "promo")
        .expect("held step");
    assert_eq!(
        (step["status"].clone(), step["code"].clone()),
        (json!("waiting"), json!("QUIET_HOURS")),
        "{step}"
    );
    assert_eq!(
        step["detail"]["quiet_hours"]["until"],
        "2026-03-08T12:00:00Z"
    );
    let (_, list) = t.get("/v1/profiles/nyc/messages").await;
    assert_eq!(list["messages"][0]["state"], "held", "{list}");

    // A minute before the end it is still held; at 08:00 EDT it goes.
    t.advance(jiff::Span::new().hours(8).minutes(59));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(t.outbox("nyc").await.is_empty(), "not before 08:00 local");
    t.advance(jiff::Span::new().minutes(1));
    t.instance_in("nyc", "promos", "completed").await;
    let sent = t.outbox("nyc").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["at"], "2026-03-08T12:00:00Z", "{sent:?}");
    let (_, list) = t.get("/v1/profiles/nyc/messages").await;
    let states: Vec<&str> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["sent"],
        "the held attempt is the same message: {list}"
    );
}

const NEWS: &str = r#"
channel: email
default_locale: en
locales:
  en: {subject: "This week", text: "New things. {{ unsubscribe_url }}"}
"#;

const ENGAGE: &str = r#"
entry: {type: event, event: news_due}
start: news
nodes:
  news: {type: message, template: news, next: read}
  read:
    type: reaction
    events:
      - {event: message.clicked, when: 'events["message.clicked"].data.message_id == actions.news.message_id', next: clicked}
    timeout: P3D
    on_timeout: ignored
  clicked: {type: end, label: Clicked}
  ignored: {type: end}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_feedback_becomes_profile_events_and_a_hard_bounce_suppresses_the_address() {
    let t = TestEngine::start().await;
    t.send(
        Method::PUT,
        "/v1/templates/news",
        Some(NEWS.as_bytes()),
        "application/yaml",
    )
    .await;
    t.publish("engage", ENGAGE).await;
    put(
        &t,
        "/v1/profiles/ada",
        json!({"attributes": {"email": "ada@example.com"}}),
    )
    .await;
    t.event("news_due", "ada", json!({})).await;
    t.instance_in("ada", "engage", "waiting").await;
    let sent = t.outbox("ada").await;
    let message_id = sent[0]["message_id"].as_str().unwrap().to_string();

    // The provider's webhook: delivered, then clicked; the click completes the reaction.
    let feedback = json!([
        {"type": "delivered", "message_id": message_id},
        {"type": "clicked", "message_id": message_id, "url": "https://shop.example/sale"},
        {"type": "opened", "message_id": "not-ours"}
    ]);
    let (status, answer) = t.post_json("/v1/deliveries/outbox", &feedback).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        (answer["accepted"].clone(), answer["unknown"].clone()),
        (json!(2), json!(["not-ours"])),
        "{answer}"
    );
    let done = t.instance_in("ada", "engage", "completed").await;
    assert_eq!(done["node"], "clicked", "{done}");
    let steps = t.steps(done["id"].as_str().unwrap()).await;
    assert!(
        steps
            .iter()
            .any(|s| s["node"] == "read" && s["status"] == "passed"),
        "{steps:?}"
    );
    // The same feedback again (a webhook retried) is the same events.
    let (_, again) = t.post_json("/v1/deliveries/outbox", &feedback).await;
    assert_eq!(again["duplicates"], 2, "{again}");
    // The report counts it, once, on the node that sent the message.
    let (_, report) = t.get("/v1/journeys/engage/report").await;
    let news = report["versions"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "news")
        .cloned()
        .expect("the message node");
    assert_eq!(
        news["feedback"],
        json!({"clicked": 1, "delivered": 1}),
        "{report}"
    );

    // A hard bounce puts the address on the suppression list, with where it came from.
    let (status, answer) = t
        .post_json(
            "/v1/deliveries/outbox",
            &json!({"type": "bounced", "message_id": message_id, "reason": "550 5.1.1 no such user"}),
        )
        .await;
    assert_eq!(
        (status, answer["suppressed"].clone()),
        (202, json!(1)),
        "{answer}"
    );
    let (status, s) = t.get("/v1/suppressions/ada@example.com").await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        (s["reason"].clone(), s["source"].clone()),
        (json!("hard_bounce"), json!("delivery:outbox"))
    );

    // Located errors; an unknown provider.
    let (status, err) = t
        .post_json(
            "/v1/deliveries/outbox",
            &json!([{"type": "exploded", "message_id": "x"}]),
        )
        .await;
    assert_eq!(
        (status, err["location"].clone()),
        (400, json!("[0].type")),
        "{err}"
    );
    let (status, _) = t
        .post_json(
            "/v1/deliveries/pigeon",
            &json!({"type": "opened", "message_id": "x"}),
        )
        .await;
    assert_eq!(status, 404);
}

const SALE: &str = r#"
channel: email
default_locale: en
locales:
  en:
    subject: "Sale"
    html: '<p><a href="https://shop.example/sale?from=mail&amp;id={{ profile.id }}">See the sale</a> or <a href="{{ unsubscribe_url }}">unsubscribe</a>.</p>'
    text: "See the sale: https://shop.example/sale"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_link_records_the_click_and_leads_on() {
    let t = TestEngine::start_with(|s| s.click_tracking = true).await;
    t.send(
        Method::PUT,
        "/v1/templates/sale",
        Some(SALE.as_bytes()),
        "application/yaml",
    )
    .await;
    t.publish(
        "clicks",
        &ENGAGE.replace("template: news", "template: sale"),
    )
    .await;
    put(
        &t,
        "/v1/profiles/ada",
        json!({"attributes": {"email": "ada@example.com"}}),
    )
    .await;
    t.event("news_due", "ada", json!({})).await;
    t.instance_in("ada", "clicks", "waiting").await;
    let sent = t.outbox("ada").await;
    let html = sent[0]["message"]["html"]
        .as_str()
        .expect("html")
        .to_string();
    // The sale link leads through the engine; the unsubscribe link and the text do not.
    let tracked = html
        .split('"')
        .find(|s| s.contains("/r/"))
        .expect("a tracked link")
        .to_string();
    assert!(html.contains("/unsubscribe/"), "{html}");
    assert!(!html.contains("shop.example"), "{html}");
    assert_eq!(
        sent[0]["message"]["text"],
        "See the sale: https://shop.example/sale"
    );

    // Following it: no API token, a redirect to the original link, the click recorded.
    let path = &tracked[tracked.find("/r/").expect("path")..];
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client.get(t.url(path)).send().await.expect("follow");
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "https://shop.example/sale?from=mail&id=ada"
    );
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    t.instance_in("ada", "clicks", "completed").await;

    // A link the engine did not make leads nowhere.
    let last = if path.ends_with('A') { "B" } else { "A" };
    let forged = format!("{}{last}", &path[..path.len() - 1]);
    let response = client.get(t.url(&forged)).send().await.expect("forged");
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
}

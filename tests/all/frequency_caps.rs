//! Frequency caps through the API, on the test clock: a cap per calendar day in the
//! profile's zone (Asia/Tokyo) skips the messages over it until local midnight, a
//! deferring cap holds its message until then and sends it with the same id, and the
//! profile's message list says why each was or was not sent.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestEngine, eventually};

const NEWS: &str = r#"
channel: email
default_locale: en
locales:
  en: {subject: "Today", text: "Hello {{ profile.first_name }}. {{ unsubscribe_url }}"}
"#;

const PROMO: &str = r#"
channel: sms
default_locale: en
locales:
  en: {body: "20% off today. Reply STOP to stop."}
"#;

fn journey(event: &str, template: &str) -> String {
    format!(
        "entry: {{type: event, event: {event}}}\n\
         properties: {{reentrance: {{mode: always}}}}\n\
         start: send\n\
         nodes:\n  send: {{type: message, template: {template}, next: done}}\n  done: {{type: end}}\n"
    )
}

/// Sends `event` for the profile and waits until `n` instances of `journey` have
/// completed.
async fn send_and_finish(t: &TestEngine, event: &str, journey: &str, n: usize) {
    t.event(event, "yuki", json!({})).await;
    completed(t, journey, n).await;
}

async fn completed(t: &TestEngine, journey: &str, n: usize) {
    eventually(|| async {
        let done = t
            .instances("yuki")
            .await
            .iter()
            .filter(|i| i["journey_id"] == journey && i["status"] == "completed")
            .count();
        (done >= n).then_some(())
    })
    .await;
}

/// (channel, state, code) of every message of the profile, oldest first.
async fn messages(t: &TestEngine) -> Vec<(String, String, String)> {
    let (status, body) = t.get("/v1/profiles/yuki/messages").await;
    assert_eq!(status, 200, "{body}");
    let mut list: Vec<Value> = body["messages"].as_array().cloned().unwrap_or_default();
    list.sort_by_key(|m| m["seq"].as_i64());
    list.iter()
        .map(|m| {
            (
                m["channel"].as_str().unwrap_or("?").to_string(),
                m["state"].as_str().unwrap_or("?").to_string(),
                m["code"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn row(channel: &str, state: &str, code: &str) -> (String, String, String) {
    (channel.into(), state.into(), code.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_per_local_day_skip_or_hold_messages_until_midnight_in_tokyo() {
    let t = TestEngine::start_with(|s| {
        s.frequency_caps = serde_json::from_value(json!([
            {"channel": "email", "max": 2, "per": "day"},
            {"channel": "sms", "max": 1, "per": "day", "when_capped": "defer"},
        ]))
        .expect("caps");
    })
    .await;
    for (id, body) in [("news", NEWS), ("promo", PROMO)] {
        let (status, _) = t
            .send(
                Method::PUT,
                &format!("/v1/templates/{id}"),
                Some(body.as_bytes()),
                "application/yaml",
            )
            .await;
        assert_eq!(status, 200);
    }
    t.publish("mails", &journey("mail_due", "news")).await;
    t.publish("texts", &journey("text_due", "promo")).await;
    let (status, body) = t
        .post_or_put(
            Method::PUT,
            "/v1/profiles/yuki",
            &json!({"attributes": {"first_name": "Yuki", "email": "yuki@example.jp",
                "phone": "+81312345678", "subscriptions": {"sms": true}},
                "timezone": "Asia/Tokyo"}),
        )
        .await;
    assert!(status < 300, "{body}");

    // 17:00 in Tokyo on Monday 2 March (08:00Z): two emails go, the third is skipped.
    assert_eq!(t.now().to_string(), "2026-03-02T08:00:00Z");
    for n in 1..=3 {
        send_and_finish(&t, "mail_due", "mails", n).await;
    }
    assert_eq!(t.outbox("yuki").await.len(), 2);
    let skipped = t
        .instances("yuki")
        .await
        .into_iter()
        .filter(|i| i["journey_id"] == "mails")
        .collect::<Vec<_>>();
    let mut capped_step = None;
    for i in &skipped {
        for s in t.steps(i["id"].as_str().unwrap()).await {
            if s["code"] == "FREQUENCY_CAPPED" {
                capped_step = Some(s);
            }
        }
    }
    let step = capped_step.expect("a capped step");
    assert_eq!(step["status"], "skipped", "{step}");
    assert_eq!(
        step["detail"]["frequency_cap"]["rule"],
        "at most 2 marketing email messages per calendar day"
    );
    assert_eq!(step["detail"]["frequency_cap"]["sent"], 2);
    assert_eq!(
        step["detail"]["frequency_cap"]["room_at"], "2026-03-02T15:00:00Z",
        "local midnight"
    );

    // One SMS a day, deferred: the second waits for local midnight (15:00Z).
    send_and_finish(&t, "text_due", "texts", 1).await;
    t.event("text_due", "yuki", json!({})).await;
    let held = t.instance_in("yuki", "texts", "waiting").await;
    assert_eq!(held["wake_at"], "2026-03-02T15:00:00Z", "{held}");

    // 23:59 in Tokyo: still the same day. The email is skipped, the SMS still held.
    t.advance(jiff::Span::new().hours(6).minutes(59));
    send_and_finish(&t, "mail_due", "mails", 4).await;
    assert_eq!(t.outbox("yuki").await.len(), 3, "2 emails and 1 SMS");

    // Midnight in Tokyo: the held SMS goes, and so does the next email.
    t.advance(jiff::Span::new().minutes(1));
    completed(&t, "texts", 2).await;
    send_and_finish(&t, "mail_due", "mails", 5).await;
    let sent = t.outbox("yuki").await;
    let mut at: Vec<(String, String)> = sent
        .iter()
        .map(|m| {
            (
                m["channel"].as_str().unwrap_or("?").to_string(),
                m["at"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    at.sort();
    assert_eq!(
        at,
        [
            ("email".to_string(), "2026-03-02T08:00:00Z".to_string()),
            ("email".to_string(), "2026-03-02T08:00:00Z".to_string()),
            ("email".to_string(), "2026-03-02T15:00:00Z".to_string()),
            ("sms".to_string(), "2026-03-02T08:00:00Z".to_string()),
            ("sms".to_string(), "2026-03-02T15:00:00Z".to_string()),
        ],
        "{sent:?}"
    );

    // The list says why: the held SMS is one message, sent after it was held.
    assert_eq!(
        messages(&t).await,
        [
            row("email", "sent", ""),
            row("email", "sent", ""),
            row("email", "not_sent", "FREQUENCY_CAPPED"),
            row("sms", "sent", ""),
            row("email", "not_sent", "FREQUENCY_CAPPED"),
            row("sms", "sent", ""),
            row("email", "sent", ""),
        ]
    );
}

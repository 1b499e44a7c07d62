//! Message templates through the API: versions, located errors, locales, HTML escaping,
//! dates in the profile's zone, the preview of a stored profile, limits, and a resources
//! file.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::TestEngine;

pub(crate) const WELCOME: &str = r#"
channel: email
description: The first email after sign-up
default_locale: en
locales:
  en:
    subject: "Welcome, {{ profile.first_name | default: 'friend' }}"
    html: |
      <h1>Hello {{ profile.first_name }}</h1>
      <p>You joined on {{ event.timestamp | date: "%B %-d at %H:%M" }}.</p>
    text: "Hello {{ profile.first_name }}, you joined on {{ event.timestamp | date: '%Y-%m-%d %H:%M %Z' }}."
  fr:
    subject: "Bienvenue {{ profile.first_name }}"
    text: "Bonjour {{ profile.first_name }} !"
"#;

async fn put_yaml(t: &TestEngine, id: &str, yaml: &str) -> (u16, Value) {
    t.send(
        Method::PUT,
        &format!("/v1/templates/{id}"),
        Some(yaml.as_bytes()),
        "application/yaml",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_keep_versions_render_per_locale_and_locate_their_errors() {
    let t = TestEngine::start_with(|s| s.message_max_bytes = 4_096).await;

    // A new template is version 1; the same definition again keeps it; a change is 2.
    let (status, body) = put_yaml(&t, "welcome", WELCOME).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["id"].clone(), body["version"].clone()),
        (json!("welcome"), json!(1))
    );
    assert_eq!(
        body["definition"]["locales"]["fr"]["text"],
        "Bonjour {{ profile.first_name }} !"
    );
    let (_, again) = put_yaml(&t, "welcome", WELCOME).await;
    assert_eq!(again["version"], 1, "{again}");
    let changed = WELCOME.replace("Bonjour", "Salut");
    let (_, v2) = put_yaml(&t, "welcome", &changed).await;
    assert_eq!(v2["version"], 2, "{v2}");
    let (_, v1) = t.get("/v1/templates/welcome?version=1").await;
    assert_eq!(
        v1["definition"]["locales"]["fr"]["text"],
        "Bonjour {{ profile.first_name }} !"
    );
    let (_, versions) = t.get("/v1/templates/welcome/versions").await;
    let numbers: Vec<&Value> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["version"])
        .collect();
    assert_eq!(numbers, [&json!(1), &json!(2)]);
    let (_, list) = t.get("/v1/templates").await;
    assert_eq!(list["templates"][0]["version"], 2, "{list}");
    assert_eq!(t.get("/v1/templates/nope").await.0, 404);
    assert_eq!(t.get("/v1/templates/welcome?version=9").await.0, 404);

    // Every problem of a definition, located, and nothing stored.
    let bad = r#"
channel: email
default_locale: de
locales:
  en:
    subject: "Hi"
    html: "<p>\n{{ profile.name | shout }}</p>"
    body: "for SMS"
  fr:
    subject: "{% if x %}oops"
    text: "t"
"#;
    let (status, body) = put_yaml(&t, "broken", bad).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "INVALID_TEMPLATE");
    let problems: Vec<String> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p["path"].as_str().unwrap(),
                p["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        problems[0],
        "default_locale: \"de\" is not one of the locales (en, fr)"
    );
    assert_eq!(problems[1], "locales.en.body: an email message has no body");
    assert_eq!(
        problems[2],
        "locales.en.html: line 2: unknown filter \"shout\""
    );
    assert!(
        problems[3].starts_with("locales.fr.subject: line 1, column "),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert_eq!(t.get("/v1/templates/broken").await.0, 404);
    let (status, body) = put_yaml(
        &t,
        "broken",
        "channel: fax\ndefault_locale: en\nlocales: {}",
    )
    .await;
    assert_eq!(
        (status, body["location"].clone()),
        (422, json!("channel")),
        "{body}"
    );
    let (status, body) = put_yaml(&t, "broken", "channel: [").await;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("INVALID_TEMPLATE")),
        "{body}"
    );

    // The preview of a stored profile: its locale's variant, its zone's dates, and the
    // values in the HTML part escaped.
    let (status, _) = t
        .post_or_put(
            Method::PUT,
            "/v1/profiles/ann",
            &json!({"attributes": {"first_name": "Ann <3", "locale": "en-US"}, "timezone": "Asia/Tokyo"}),
        )
        .await;
    assert_eq!(status, 200);
    let event = json!({"type": "signed_up", "timestamp": "2026-03-01T20:30:00Z", "data": {}});
    let (status, body) = t
        .post_json(
            "/v1/templates/welcome/preview",
            &json!({"profile_id": "ann", "event": event}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["version"].clone(), body["locale"].clone()),
        (json!(2), json!("en"))
    );
    let message = &body["message"];
    assert_eq!(message["subject"], "Welcome, Ann <3");
    assert_eq!(
        message["html"],
        "<h1>Hello Ann &lt;3</h1>\n<p>You joined on March 2 at 05:30.</p>\n"
    );
    assert_eq!(
        message["text"],
        "Hello Ann <3, you joined on 2026-03-02 05:30 JST."
    );
    // Another locale, an inline profile, an older version; a profile without a name.
    let (_, body) = t
        .post_json(
            "/v1/templates/welcome/preview",
            &json!({"profile": {"first_name": "Zoé", "locale": "fr_CA"}, "version": 1}),
        )
        .await;
    assert_eq!(
        (body["locale"].clone(), body["message"].clone()),
        (
            json!("fr"),
            json!({"subject": "Bienvenue Zoé", "text": "Bonjour Zoé !"})
        )
    );
    let (_, body) = t
        .post_json("/v1/templates/welcome/preview", &json!({"locale": "en"}))
        .await;
    assert_eq!(body["message"]["subject"], "Welcome, friend");
    assert_eq!(
        t.post_json(
            "/v1/templates/welcome/preview",
            &json!({"profile_id": "nobody"})
        )
        .await
        .0,
        404
    );
    let (status, body) = t
        .post_json(
            "/v1/templates/welcome/preview",
            &json!({"profile_id": "ann", "profile": {}}),
        )
        .await;
    assert_eq!(
        (status, body["location"].clone()),
        (400, json!("profile")),
        "{body}"
    );

    // A render past message_max_bytes fails, located at its part.
    let (status, _) = put_yaml(
        &t,
        "huge",
        "channel: sms\ndefault_locale: en\nlocales:\n  en:\n    body: \"{% for i in (1..1000) %}0123456789{% endfor %}\"\n",
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = t.post_json("/v1/templates/huge/preview", &json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        (body["code"].clone(), body["location"].clone()),
        (json!("TEMPLATE_ERROR"), json!("body"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("message_max_bytes"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resources_file_stores_templates_and_names_their_problems() {
    let t = TestEngine::start_with(|s| s.max_templates = 2).await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("resources.yaml");
    std::fs::write(
        &good,
        "templates:\n  sms_hi:\n    channel: sms\n    default_locale: en\n    locales:\n      en: {body: \"Hi {{ profile.first_name }}\"}\n  push_cart:\n    channel: push\n    default_locale: en\n    locales:\n      en: {title: Cart, data: {sku: \"{{ event.data.sku }}\"}}\n",
    )
    .unwrap();
    t.engine.apply_resources(&good).await.expect("resources");
    t.engine
        .apply_resources(&good)
        .await
        .expect("applied again: unchanged");
    let (_, body) = t.get("/v1/templates/sms_hi").await;
    assert_eq!(body["version"], 1, "{body}");
    let (_, body) = t
        .post_json(
            "/v1/templates/push_cart/preview",
            &json!({"event": {"type": "cart", "data": {"sku": "A-1"}}}),
        )
        .await;
    assert_eq!(
        body["message"],
        json!({"title": "Cart", "data": {"sku": "A-1"}}),
        "{body}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "templates:\n  sms_hi:\n    channel: sms\n    default_locale: en\n    locales:\n      en: {body: \"{{ x | nope }}\"}\n",
    )
    .unwrap();
    let e = t
        .engine
        .apply_resources(&bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("bad.yaml: templates.sms_hi.locales.en.body: line 1: unknown filter \"nope\""),
        "{e}"
    );
    // max_templates: a third template is refused; the two stored ones still change.
    let third = "channel: sms\ndefault_locale: en\nlocales:\n  en: {body: x}\n";
    let (status, body) = put_yaml(&t, "third", third).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("max_templates"),
        "{body}"
    );
    assert_eq!(put_yaml(&t, "sms_hi", third).await.0, 200);
}

const SIGNUP: &str = r#"
entry: {type: event, event: signed_up}
start: welcome
nodes:
  welcome:
    type: message
    template: welcome
    channel: email
    category: transactional
    next: sms
  sms:
    type: message
    template: sms_hi
    to: "profile.mobile"
    on_error: done
  done: {type: end}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_node_renders_its_template_and_the_outbox_keeps_it() {
    let t = TestEngine::start_with(|_| {}).await;
    assert_eq!(put_yaml(&t, "welcome", WELCOME).await.0, 200);
    let sms = "channel: sms\ndefault_locale: en\nlocales:\n  en: {body: \"Hi {{ profile.first_name }}, code {{ event.data.code }}\"}\n";
    assert_eq!(put_yaml(&t, "sms_hi", sms).await.0, 200);

    // References are checked when the journey is validated, each at its place.
    let (status, body) = t
        .validate(
            "entry: {type: event, event: e}\nstart: m\nnodes:\n  m: {type: message, template: nope}\n  s: {type: message, template: sms_hi, channel: email, provider: carrier_pigeon}\n",
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let problems: Vec<String> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p["path"].as_str().unwrap(),
                p["message"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        problems.contains(
            &"nodes.m.template: unknown template \"nope\" (known: sms_hi, welcome)".to_string()
        ),
        "{problems:?}"
    );
    assert!(
        problems
            .contains(&"nodes.s.channel: template \"sms_hi\" is for sms, not email".to_string()),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p
            .starts_with("nodes.s.provider: unknown provider \"carrier_pigeon\" (known: outbox")),
        "{problems:?}"
    );

    t.publish("signup", SIGNUP).await;
    let (status, _) = t
        .post_or_put(
            Method::PUT,
            "/v1/profiles/zoe",
            &json!({"attributes": {"first_name": "Zoé", "email": "zoe@example.com", "locale": "fr", "mobile": "+33600000000", "subscriptions": {"sms": true}}, "timezone": "Europe/Paris"}),
        )
        .await;
    assert_eq!(status, 200);
    t.event("signed_up", "zoe", json!({"code": "A1"})).await;
    let instance = t.instance_in("zoe", "signup", "completed").await;
    let steps = t.steps(instance["id"].as_str().unwrap()).await;
    let sent: Vec<&Value> = steps
        .iter()
        .filter(|s| s["kind"] == "message" && s["status"] == "passed")
        .collect();
    assert_eq!(sent.len(), 2, "{steps:?}");
    let detail = &sent[0]["detail"];
    assert_eq!(detail["action"], "message:outbox", "{detail}");
    let params = &detail["params"];
    assert_eq!(params["to"], "zoe@example.com");
    assert_eq!(
        (
            params["template"].clone(),
            params["template_version"].clone(),
            params["locale"].clone()
        ),
        (json!("welcome"), json!(1), json!("fr"))
    );
    assert_eq!(params["category"], "transactional");
    assert_eq!(
        params["message"],
        json!({"subject": "Bienvenue Zoé", "text": "Bonjour Zoé !"})
    );
    assert_eq!(detail["outcome"]["result"]["stored"], true, "{detail}");

    // The outbox shows both, rendered, in order; filtered by profile and paged.
    let (_, outbox) = t.get("/v1/outbox?profile_id=zoe").await;
    let messages = outbox["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{outbox}");
    assert_eq!(messages[0]["message_id"], params["message_id"]);
    assert_eq!(messages[0]["to"], "zoe@example.com");
    assert_eq!(messages[1]["channel"], "sms");
    assert_eq!(messages[1]["to"], "+33600000000");
    assert_eq!(messages[1]["message"]["body"], "Hi Zoé, code A1");
    let (_, first) = t.get("/v1/outbox?limit=1").await;
    assert_eq!(first["messages"].as_array().unwrap().len(), 1);
    let (_, rest) = t
        .get(&format!(
            "/v1/outbox?after={}",
            first["next"].as_str().unwrap()
        ))
        .await;
    assert_eq!(rest["messages"][0]["channel"], "sms", "{rest}");
    assert_eq!(t.get("/v1/outbox?after=x").await.0, 400);
    assert!(
        t.get("/v1/outbox?profile_id=nobody").await.1["messages"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A profile without a phone: the SMS is not sent, with a code, and the instance
    // takes the node's error path.
    t.post_or_put(
        Method::PUT,
        "/v1/profiles/max",
        &json!({"attributes": {"email": "max@example.com"}}),
    )
    .await;
    t.event("signed_up", "max", json!({})).await;
    let instance = t.instance_in("max", "signup", "completed").await;
    let steps = t.steps(instance["id"].as_str().unwrap()).await;
    let refused = steps.iter().find(|s| s["node"] == "sms").unwrap();
    assert_eq!(
        (refused["status"].clone(), refused["code"].clone()),
        (json!("failed"), json!("NO_ADDRESS")),
        "{refused}"
    );
    assert_eq!(steps.last().unwrap()["node"], "done");
    let (_, outbox) = t.get("/v1/outbox?profile_id=max").await;
    assert_eq!(
        outbox["messages"].as_array().unwrap().len(),
        1,
        "only the email"
    );

    // Deleting a profile deletes what the outbox kept for it.
    assert_eq!(
        t.send(Method::DELETE, "/v1/profiles/zoe", None, "").await.0,
        204
    );
    assert!(
        t.get("/v1/outbox?profile_id=zoe").await.1["messages"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A simulation renders the messages and sends none.
    let (status, sim) = t
        .post_json(
            "/v1/journeys/signup/simulate",
            &json!({"profiles": [{"id": "sim", "attributes": {"first_name": "Sam", "email": "s@example.com", "mobile": "+1555", "subscriptions": {"sms": true}}}],
                    "events": [{"at": "PT0S", "type": "signed_up", "profile_id": "sim", "data": {"code": "Z"}}]}),
        )
        .await;
    assert_eq!(status, 200, "{sim}");
    let calls = sim["actions"].as_array().expect("dry-run calls");
    assert_eq!(calls.len(), 2, "{sim}");
    assert_eq!(
        calls[1]["params"]["message"]["body"], "Hi Sam, code Z",
        "{sim}"
    );
    assert!(
        t.get("/v1/outbox?profile_id=sim").await.1["messages"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

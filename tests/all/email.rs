//! Email that reaches a real SMTP server (aiosmtpd, tests/smtp/sink.py): a multipart
//! message rendered from a Liquid template in the profile's locale, its Message-ID the
//! message id the step recorded (the same on the attempt a 4yz deferred and on the retry
//! that got through), and a 5yz answer failing the step for good.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use jiff::Span;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::TestEngine;

/// The Python of a virtual environment with the pinned aiosmtpd, made once per build.
fn python() -> &'static Path {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("smtp-venv");
        let python = venv.join("bin/python");
        let ready = venv.join("installed");
        if !ready.exists() {
            let run = |c: &mut Command| {
                let out = c.output().expect("running python3");
                assert!(
                    out.status.success(),
                    "setting up aiosmtpd failed (python3 and PyPI are needed):\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
            run(Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(root.join("tests/smtp/requirements.txt")));
            std::fs::write(&ready, "").expect("marker");
        }
        python
    })
}

/// A running SMTP sink and the folder it writes messages to.
struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    fn start() -> Sink {
        let dir = tempfile::tempdir().expect("mail folder");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/sink.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the SMTP sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("READY line");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the sink said {line:?}"));
        Sink { child, port, dir }
    }

    /// The messages received so far, decoded (tests/smtp/read.py).
    fn received(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("mail folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        let reader = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/read.py");
        files
            .iter()
            .map(|f| {
                let out = Command::new(python())
                    .arg(&reader)
                    .arg(f)
                    .output()
                    .expect("read.py");
                serde_json::from_slice(&out.stdout).expect("a decoded email")
            })
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const JOURNEY: &str = r#"
entry: {type: event, event: signed_up}
start: welcome
nodes:
  welcome:
    type: message
    template: welcome
    retry: {max_attempts: 3, backoff: PT10S}
    on_error: bounced
  bounced: {type: end, label: Not delivered}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_templated_email_reaches_a_real_smtp_server_once_with_a_stable_message_id() {
    let sink = Sink::start();
    let port = sink.port;
    let t = TestEngine::start_with(move |s| {
        s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        s.smtp_from = "Parcours Shop <hello@shop.example>".into();
        s.email_provider = "smtp".into();
    })
    .await;
    let (status, body) = t
        .send(
            Method::PUT,
            "/v1/templates/welcome",
            Some(crate::templates::WELCOME.as_bytes()),
            "application/yaml",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    t.publish("signup", JOURNEY).await;
    let profile = |email: &str| json!({"attributes": {"first_name": "Zoé", "email": email, "locale": "fr-FR"}, "timezone": "Europe/Paris"});
    for (id, email) in [
        ("zoe", "zoe@example.com"),
        ("slow", "defer-once@example.com"),
        ("gone", "bounce@example.com"),
    ] {
        assert_eq!(
            t.post_or_put(Method::PUT, &format!("/v1/profiles/{id}"), &profile(email))
                .await
                .0,
            200
        );
    }

    // Delivered at the first attempt: a French email, as its recipient reads it.
    t.event("signed_up", "zoe", json!({})).await;
    let instance = t.instance_in("zoe", "signup", "completed").await;
    let steps = t.steps(instance["id"].as_str().unwrap()).await;
    let sent = steps
        .iter()
        .find(|s| s["node"] == "welcome" && s["status"] == "passed")
        .expect("sent");
    let message_id = sent["detail"]["params"]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sent["detail"]["action"], "message:smtp");
    let mails = sink.received();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail["headers"]["Subject"], "Bienvenue Zoé");
    assert_eq!(mail["headers"]["To"], "zoe@example.com");
    assert_eq!(
        mail["headers"]["From"],
        "Parcours Shop <hello@shop.example>"
    );
    assert_eq!(
        mail["headers"]["Message-ID"],
        format!("<{message_id}@shop.example>")
    );
    assert_eq!(
        mail["content_type"], "text/plain",
        "the French variant has only text"
    );
    assert_eq!(
        mail["parts"][0]["text"].as_str().unwrap().trim_end(),
        "Bonjour Zoé !"
    );

    // The English variant is multipart: text and HTML, the name escaped in the HTML.
    t.post_or_put(
        Method::PUT,
        "/v1/profiles/en",
        &json!({"attributes": {"first_name": "Ann <3", "email": "ann@example.com"}}),
    )
    .await;
    t.event("signed_up", "en", json!({})).await;
    t.instance_in("en", "signup", "completed").await;
    let mails = sink.received();
    let english = mails
        .iter()
        .find(|m| m["headers"]["To"] == "ann@example.com")
        .expect("english email");
    assert_eq!(english["content_type"], "multipart/alternative");
    assert_eq!(english["headers"]["Subject"], "Welcome, Ann <3");
    let part = |kind: &str| {
        english["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["type"] == kind)
            .map(|p| p["text"].as_str().unwrap().to_string())
    };
    assert!(
        part("text/plain")
            .unwrap()
            .starts_with("Hello Ann <3, you joined on "),
        "{english}"
    );
    assert!(
        part("text/html")
            .unwrap()
            .starts_with("<h1>Hello Ann &lt;3</h1>"),
        "{english}"
    );

    // A 451 defers the first attempt; the retry gets through with the same Message-ID.
    t.event("signed_up", "slow", json!({})).await;
    let waiting = t.instance_in("slow", "signup", "waiting").await;
    let steps = t.steps(waiting["id"].as_str().unwrap()).await;
    let deferred = steps
        .iter()
        .find(|s| s["node"] == "welcome" && s["status"] == "waiting")
        .expect("a deferred attempt");
    assert!(
        deferred["detail"]["outcome"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("451"),
        "{deferred}"
    );
    let first_id = deferred["detail"]["params"]["message_id"].clone();
    t.advance(Span::new().seconds(30));
    let done = t.instance_in("slow", "signup", "completed").await;
    let steps = t.steps(done["id"].as_str().unwrap()).await;
    let sent = steps
        .iter()
        .find(|s| s["node"] == "welcome" && s["status"] == "passed")
        .expect("sent on retry");
    assert_eq!(sent["detail"]["attempt"], 2);
    assert_eq!(sent["detail"]["params"]["message_id"], first_id);
    let to_slow: Vec<Value> = sink
        .received()
        .into_iter()
        .filter(|m| m["headers"]["To"] == "defer-once@example.com")
        .collect();
    assert_eq!(to_slow.len(), 1, "delivered once");
    assert_eq!(
        to_slow[0]["headers"]["Message-ID"],
        format!("<{}@shop.example>", first_id.as_str().unwrap())
    );

    // A 550 fails the message for good, without retries: the error path.
    t.event("signed_up", "gone", json!({})).await;
    let ended = t.instance_in("gone", "signup", "completed").await;
    let steps = t.steps(ended["id"].as_str().unwrap()).await;
    let failed = steps.iter().find(|s| s["node"] == "welcome").unwrap();
    assert_eq!(
        (failed["status"].clone(), failed["code"].clone()),
        (json!("failed"), json!("ACTION_FAILED")),
        "{failed}"
    );
    assert_eq!(failed["detail"]["attempt"], 1);
    assert_eq!(steps.last().unwrap()["node"], "bounced");
}

const NEWSLETTER: &str = r#"
channel: email
default_locale: en
locales:
  en:
    subject: "News for {{ profile.first_name }}"
    html: '<p>New this week.</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    text: "New this week. Unsubscribe: {{ unsubscribe_url }}"
"#;

const RECEIPT: &str = r#"
channel: email
default_locale: en
locales:
  en:
    subject: "Your order {{ event.data.order }}"
    text: "Thank you for order {{ event.data.order }}."
"#;

const NEWS_JOURNEY: &str = r#"
entry: {type: event, event: news_due}
properties: {reentrance: {mode: always}}
start: news
nodes:
  news: {type: message, template: news, subscription_group: newsletter}
"#;

const RECEIPT_JOURNEY: &str = r#"
entry: {type: event, event: purchase}
properties: {reentrance: {mode: always}}
start: receipt
nodes:
  receipt: {type: message, template: receipt, category: transactional}
"#;

/// The node's step (not the instance's end) in a profile's first completed instance of
/// a journey.
async fn last_step(t: &TestEngine, profile: &str, journey: &str, node: &str) -> Value {
    let instance = t.instance_in(profile, journey, "completed").await;
    let steps = t.steps(instance["id"].as_str().unwrap()).await;
    steps
        .into_iter()
        .find(|s| s["node"] == node && s["status"] != "ended")
        .expect("a step of the node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emails_unsubscribe_link_unsubscribes_in_one_click_and_transactional_mail_still_goes() {
    let sink = Sink::start();
    let port = sink.port;
    let t = TestEngine::start_with(move |s| {
        s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        s.smtp_from = "Shop <news@shop.example>".into();
        s.email_provider = "smtp".into();
        s.public_url = Some("https://journeys.shop.example/".into());
    })
    .await;
    let yaml = |body: &str| body.as_bytes().to_vec();
    for (path, body) in [
        ("/v1/templates/news", yaml(NEWSLETTER)),
        ("/v1/templates/receipt", yaml(RECEIPT)),
        (
            "/v1/subscription-groups/newsletter",
            yaml("{channel: email, default: opt_out, name: The weekly newsletter}"),
        ),
    ] {
        let (status, answer) = t
            .send(Method::PUT, path, Some(&body), "application/yaml")
            .await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    t.publish("news", NEWS_JOURNEY).await;
    t.publish("receipts", RECEIPT_JOURNEY).await;
    t.post_or_put(
        Method::PUT,
        "/v1/profiles/ada",
        &json!({"attributes": {"first_name": "Ada", "email": "Ada@Example.com"}}),
    )
    .await;

    // The newsletter carries its link in the body and in the RFC 8058 headers.
    t.event("news_due", "ada", json!({})).await;
    let sent = last_step(&t, "ada", "news", "news").await;
    assert_eq!(sent["status"], "passed", "{sent}");
    let message_id = sent["detail"]["params"]["message_id"].as_str().unwrap();
    let mails = sink.received();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let link = mails[0]["headers"]["List-Unsubscribe"]
        .as_str()
        .expect("List-Unsubscribe")
        .trim_matches(['<', '>'])
        .to_string();
    assert!(
        link.starts_with("https://journeys.shop.example/unsubscribe/"),
        "{link}"
    );
    assert_eq!(
        mails[0]["headers"]["List-Unsubscribe-Post"],
        "List-Unsubscribe=One-Click"
    );
    let text = mails[0]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "text/plain")
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains(&link),
        "the body's link is the header's: {text}"
    );
    let path = link.trim_start_matches("https://journeys.shop.example");

    // The link's page, as a person opening it sees it: what it does, and a button.
    let page = t.client.get(t.url(path)).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["referrer-policy"],
        "no-referrer",
        "the token never leaves in a Referer"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("The weekly newsletter") && html.contains("<form method=\"post\">"),
        "{html}"
    );

    // A changed token does nothing.
    let forged = format!("{}x", &path[..path.len() - 1]);
    let refused = t.client.post(t.url(&forged)).send().await.expect("POST");
    assert_eq!(refused.status(), 400);

    // The mail client's one-click POST (no API token, as RFC 8058 sends it).
    let done = t
        .client
        .post(t.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("POST");
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("You are unsubscribed"));

    // The change is on the profile, with its source and message.
    let (status, consent) = t.get("/v1/profiles/ada/consent").await;
    assert_eq!(status, 200, "{consent}");
    let newsletter = consent["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "newsletter")
        .expect("the group");
    assert_eq!(
        (newsletter["subscribed"].clone(), newsletter["from"].clone()),
        (json!(false), json!("stated"))
    );
    let change = &consent["changes"][0];
    assert_eq!(change["source"], "unsubscribe_link", "{consent}");
    assert_eq!(change["message_id"], message_id);
    assert_eq!(change["subscribed"], false);

    // The next newsletter is not sent, and the step says why; the instance goes on.
    t.event("news_due", "ada", json!({})).await;
    let skipped = eventually_step(&t, "ada", "news", "news", "skipped").await;
    assert_eq!(skipped["code"], "UNSUBSCRIBED", "{skipped}");
    // A receipt is transactional: it is sent, without an unsubscribe link.
    t.event("purchase", "ada", json!({"order": "A-17"})).await;
    let receipt = last_step(&t, "ada", "receipts", "receipt").await;
    assert_eq!(receipt["status"], "passed", "{receipt}");
    let mails = sink.received();
    assert_eq!(mails.len(), 2, "one newsletter and one receipt: {mails:?}");
    let receipt_mail = mails
        .iter()
        .find(|m| m["headers"]["Subject"] == "Your order A-17")
        .expect("the receipt");
    assert!(receipt_mail["headers"].get("List-Unsubscribe").is_none());

    // An address on the suppression list gets nothing, transactional or not.
    let (status, _) = t
        .post_or_put(
            Method::PUT,
            "/v1/suppressions/ada@example.com",
            &json!({"reason": "hard_bounce"}),
        )
        .await;
    assert_eq!(status, 200);
    t.event("purchase", "ada", json!({"order": "A-18"})).await;
    let suppressed = eventually_step(&t, "ada", "receipts", "receipt", "skipped").await;
    assert_eq!(suppressed["code"], "SUPPRESSED", "{suppressed}");
    assert_eq!(sink.received().len(), 2);

    // The report counts each node's sends and skips by code.
    let (_, report) = t.get("/v1/journeys/news/report").await;
    let node = &report["versions"][0]["nodes"][0];
    assert_eq!(node["passed"], 1, "{report}");
    assert_eq!(node["skip_codes"]["UNSUBSCRIBED"], 1, "{report}");
}

/// Waits for the node's latest step of the profile's journey to have `status`.
async fn eventually_step(
    t: &TestEngine,
    profile: &str,
    journey: &str,
    node: &str,
    status: &str,
) -> Value {
    crate::support::eventually(|| async {
        let instances = t.instances(profile).await;
        for i in instances.iter().filter(|i| i["journey_id"] == journey) {
            let steps = t.steps(i["id"].as_str().unwrap()).await;
            if let Some(s) = steps
                .into_iter()
                .find(|s| s["node"] == node && s["status"] == status)
            {
                return Some(s);
            }
        }
        None
    })
    .await
}

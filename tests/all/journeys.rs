//! Data-driven journey cases: every `tests/journeys/**/*.yaml` runs on a test engine
//! through the HTTP API, on a test clock, and what happened is compared with the case's
//! `expect` section. `PARCOURS_BLESS=1 cargo test --test all journey_cases` rewrites
//! that section from what happened (review the diff before committing it).
//!
//! The case format is described in `tests/journeys/README.md`. The runner only uses
//! public interfaces: requests to the API, the test clock, the `log` action's recorded
//! calls, and the store's next timer (to move the clock from one timer to the next).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use parcours_engine::store::InstanceStore;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{START, TestEngine, with_plugins};

/// The line that starts the expected section; everything from it to the end of the
/// file is rewritten in bless mode.
const EXPECT: &str = "expect: |";
/// How long one case may take to settle after a timeline item (a hang, not a slow
/// machine).
const SETTLE_LIMIT: Duration = Duration::from_secs(20);
/// The engine counts as settled when no partition committed for this long after every
/// condition held.
const QUIET: Duration = Duration::from_millis(60);

/// One case file.
struct Case {
    /// Load the first-party plugins and the test guests (slower to start).
    plugins: bool,
    /// name → definition.
    audiences: serde_json::Map<String, Value>,
    /// id → definition.
    capping_rules: serde_json::Map<String, Value>,
    profiles: Vec<Value>,
    /// Definitions (each with its `id`), published in order before the timeline.
    journeys: Vec<Value>,
    timeline: Vec<Value>,
    expect: Option<String>,
}

/// The keys a case may have.
const KEYS: [&str; 8] = [
    "about",
    "plugins",
    "audiences",
    "capping_rules",
    "profiles",
    "journeys",
    "timeline",
    "expect",
];

impl Case {
    fn parse(text: &str) -> Result<Case, String> {
        let v: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let Some(o) = v.as_object() else {
            return Err("a case is a map".into());
        };
        if let Some(k) = o.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("unknown key {k:?}; a case has {KEYS:?}"));
        }
        if o.get("about")
            .and_then(Value::as_str)
            .is_none_or(|a| a.trim().is_empty())
        {
            return Err("`about` (what the case shows) is missing".into());
        }
        let map = |k: &str| match o.get(k) {
            None => Ok(serde_json::Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(format!("`{k}` is a map")),
        };
        let list = |k: &str| match o.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(_) => Err(format!("`{k}` is a list")),
        };
        Ok(Case {
            plugins: o.get("plugins") == Some(&Value::Bool(true)),
            audiences: map("audiences")?,
            capping_rules: map("capping_rules")?,
            profiles: list("profiles")?,
            journeys: list("journeys")?,
            timeline: list("timeline")?,
            expect: o.get("expect").and_then(Value::as_str).map(str::to_string),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/journeys");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    assert!(
        files.len() >= 25,
        "{} cases under {}",
        files.len(),
        root.display()
    );
    let bless = std::env::var_os("PARCOURS_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        match run_file(file, bless).await {
            Ok(()) => {}
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} journey cases failed (PARCOURS_BLESS=1 records what happened):\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

async fn run_file(file: &Path, bless: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let case = Case::parse(&text)?;
    let got = run(&case).await?;
    let expected = case.expect.as_deref().unwrap_or("").trim_end();
    if got.trim_end() == expected {
        return Ok(());
    }
    if bless {
        let head = match text.find(&format!("\n{EXPECT}\n")) {
            Some(at) => &text[..=at],
            None => text.as_str(),
        };
        let mut out = head.trim_end().to_string();
        out.push_str("\n\n");
        out.push_str(EXPECT);
        out.push('\n');
        for line in got.lines() {
            let _ = writeln!(out, "  {line}");
        }
        return std::fs::write(file, out).map_err(|e| e.to_string());
    }
    Err(format!(
        "what happened differs from `expect`\n--- expected\n{expected}\n--- got\n{}",
        got.trim_end()
    ))
}

/// Runs one case; returns what happened as the lines of its `expect` section.
async fn run(case: &Case) -> Result<String, String> {
    let plugins = case.plugins;
    let t = TestEngine::start_with(|s| {
        // One partition with one lane: every message in its order, as in a simulation.
        s.partitions = 1;
        s.partition_lanes = 1;
        if plugins {
            with_plugins(s);
        }
    })
    .await;
    let mut run = Runner {
        t: &t,
        events: Vec::new(),
        profiles: BTreeSet::new(),
        journeys: Vec::new(),
    };
    for (name, def) in &case.audiences {
        run.call(Method::PUT, &format!("/v1/audiences/{name}"), def)
            .await?;
    }
    for (id, def) in &case.capping_rules {
        run.call(Method::PUT, &format!("/v1/capping-rules/{id}"), def)
            .await?;
    }
    for p in &case.profiles {
        run.write_profile(Method::PUT, p).await?;
    }
    for j in &case.journeys {
        run.publish(j).await?;
    }
    run.settle().await?;
    for (i, item) in case.timeline.iter().enumerate() {
        run.item(item)
            .await
            .map_err(|e| format!("timeline[{i}]: {e}"))?;
        run.settle()
            .await
            .map_err(|e| format!("timeline[{i}]: {e}"))?;
    }
    run.report().await
}

struct Runner<'a> {
    t: &'a TestEngine,
    /// (id, profile) of every event sent.
    events: Vec<(String, String)>,
    profiles: BTreeSet<String>,
    journeys: Vec<String>,
}

impl Runner<'_> {
    async fn call(&self, method: Method, path: &str, body: &Value) -> Result<Value, String> {
        let (status, answer) = self.t.post_or_put(method.clone(), path, body).await;
        if (200..300).contains(&status) {
            Ok(answer)
        } else {
            Err(format!("{method} {path}: {status} {answer}"))
        }
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        let (status, answer) = self.t.get(path).await;
        if status == 200 {
            Ok(answer)
        } else {
            Err(format!("GET {path}: {status} {answer}"))
        }
    }

    /// `PUT` or `PATCH` of the profile `p.id` with the rest of `p`.
    async fn write_profile(&mut self, method: Method, p: &Value) -> Result<(), String> {
        let (id, body) = split(p, "id")?;
        self.call(method, &format!("/v1/profiles/{id}"), &body)
            .await?;
        self.profiles.insert(id);
        Ok(())
    }

    async fn publish(&mut self, def: &Value) -> Result<(), String> {
        let id = text(def, "id")?;
        let answer = self
            .call(Method::PUT, &format!("/v1/journeys/{id}"), def)
            .await?;
        if answer["valid"] != true {
            return Err(format!("journey {id} is invalid: {answer}"));
        }
        self.call(
            Method::POST,
            &format!("/v1/journeys/{id}/publish"),
            &json!({}),
        )
        .await?;
        if !self.journeys.contains(&id) {
            self.journeys.push(id);
        }
        Ok(())
    }

    /// Carries out one timeline item: a map with one key saying what to do.
    async fn item(&mut self, item: &Value) -> Result<(), String> {
        let Some((kind, arg)) = item
            .as_object()
            .and_then(|o| if o.len() == 1 { o.iter().next() } else { None })
        else {
            return Err(format!("expected a map with one key, got {item}"));
        };
        let journey_op = |op: &str| -> Result<(String, Value), String> {
            match arg {
                Value::String(id) => Ok((format!("/v1/journeys/{id}/{op}"), json!({}))),
                Value::Object(_) => {
                    let (id, body) = split(arg, "journey")?;
                    Ok((format!("/v1/journeys/{id}/{op}"), body))
                }
                _ => Err(format!("{op}: a journey id or {{journey, ...}}")),
            }
        };
        match kind.as_str() {
            "event" => {
                let mut event = arg.clone();
                if event.get("id").is_none() {
                    event["id"] = json!(format!("e{}", self.events.len() + 1));
                }
                let id = text(&event, "id")?;
                let profile = text(&event, "profile_id")?;
                self.call(Method::POST, "/v1/events", &event).await?;
                self.events.push((id, profile.clone()));
                self.profiles.insert(profile);
            }
            "business_event" => {
                self.call(Method::POST, "/v1/business-events", arg).await?;
            }
            "advance" => {
                let span: jiff::Span = arg
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("advance: {arg} is not an ISO-8601 duration"))?;
                let by = span
                    .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                    .map_err(|e| format!("advance: {e}"))?;
                self.advance(by).await?;
            }
            "profile" => self.write_profile(Method::PUT, arg).await?,
            "patch_profile" => self.write_profile(Method::PATCH, arg).await?,
            "delete_profile" => {
                let id = arg.as_str().ok_or("delete_profile: a profile id")?;
                let (status, answer) = self
                    .t
                    .send(Method::DELETE, &format!("/v1/profiles/{id}"), None, "")
                    .await;
                if !(200..300).contains(&status) {
                    return Err(format!("DELETE /v1/profiles/{id}: {status} {answer}"));
                }
            }
            "members" => {
                let (audience, body) = split(arg, "audience")?;
                self.call(
                    Method::POST,
                    &format!("/v1/audiences/{audience}/members"),
                    &body,
                )
                .await?;
            }
            "publish" => self.publish(arg).await?,
            "pause" | "resume" | "stop" | "close" => {
                let (path, body) = journey_op(kind)?;
                self.call(Method::POST, &path, &body).await?;
            }
            other => return Err(format!("unknown timeline item {other:?}")),
        }
        Ok(())
    }

    /// Moves the clock by `by`, stopping at every timer due on the way (so that a wait
    /// started by a timer is timed from when that timer fired).
    async fn advance(&mut self, by: SignedDuration) -> Result<(), String> {
        let target = self.t.now().saturating_add(by).map_err(|e| e.to_string())?;
        loop {
            let wake = self.t.store.next_wake().await.map_err(|e| e.to_string())?;
            match wake {
                Some(at) if at <= target => {
                    if at > self.t.now() {
                        self.t.clock.set(at);
                    }
                    self.settle().await?;
                }
                _ => break,
            }
        }
        self.t.clock.set(target);
        Ok(())
    }

    /// Waits until every event sent is processed, no timer is due, no audience run is
    /// running, no resumed journey is still releasing what it held, and no partition has
    /// committed for [`QUIET`].
    async fn settle(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
        let mut commits = self.t.engine.runtime().commits();
        loop {
            let waiting = self.waiting_for().await?;
            if waiting.is_none() {
                commits.mark_unchanged();
                tokio::time::sleep(QUIET).await;
                if !commits.has_changed().unwrap_or(false) && self.waiting_for().await?.is_none() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "the engine did not settle in {SETTLE_LIMIT:?}: {}",
                    waiting.unwrap_or_else(|| "partitions kept committing".into())
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// What the engine is still busy with, if anything.
    async fn waiting_for(&self) -> Result<Option<String>, String> {
        for (id, _) in &self.events {
            if self.get(&format!("/v1/events/{id}")).await?["processed"] != true {
                return Ok(Some(format!("event {id} is not processed")));
            }
        }
        let now = self.t.now();
        if let Some(at) = self.t.store.next_wake().await.map_err(|e| e.to_string())?
            && at <= now
        {
            return Ok(Some(format!("a timer due at {at} has not fired")));
        }
        let calls = self.t.engine.runtime().calls_in_flight();
        if calls > 0 {
            return Ok(Some(format!("{calls} action calls are in flight")));
        }
        for j in &self.journeys {
            let runs = self.get(&format!("/v1/journeys/{j}/runs")).await?;
            for r in runs["runs"].as_array().into_iter().flatten() {
                if r["status"] == "running" {
                    return Ok(Some(format!("a run of {j} is running: {r}")));
                }
            }
            // A resumed journey keeps its pause on record until everything it held
            // has been released (in the background).
            let journey = self.get(&format!("/v1/journeys/{j}")).await?;
            if journey["status"] != "paused" && journey.get("pause").is_some_and(|p| !p.is_null()) {
                return Ok(Some(format!("{j} is releasing what its pause held")));
            }
        }
        Ok(None)
    }

    /// What happened, a line per instance, refused entry, profile's calls, run and
    /// journey; step times are shown relative to the start where they change.
    async fn report(&self) -> Result<String, String> {
        let start: Timestamp = START.parse().map_err(|e: jiff::Error| e.to_string())?;
        let mut out = String::new();
        let calls = self.t.log_calls();
        for profile in &self.profiles {
            // (time, seq, line) of each instance and refused entry.
            let mut lines: Vec<(String, i64, String)> = Vec::new();
            let answer = self.get(&format!("/v1/profiles/{profile}/instances")).await;
            let instances = match answer {
                Ok(a) => a["instances"].as_array().cloned().unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            for i in &instances {
                let id = text(i, "id")?;
                let steps = self.get(&format!("/v1/instances/{id}/steps")).await?;
                let steps = steps["steps"].as_array().cloned().unwrap_or_default();
                let mut head = format!(
                    "{profile} {}@{} {}",
                    i["journey_id"].as_str().unwrap_or("?"),
                    i["version"],
                    i["status"].as_str().unwrap_or("?")
                );
                if let Some(reason) = i["end_reason"].as_str().filter(|r| *r != "COMPLETED") {
                    let _ = write!(head, " {reason}");
                }
                lines.push(key_and_line(&steps, head, start));
            }
            for (event, owner) in &self.events {
                if owner != profile {
                    continue;
                }
                let record = self.get(&format!("/v1/events/{event}")).await?;
                for s in record["steps"].as_array().into_iter().flatten() {
                    if s["instance_id"].is_string() {
                        continue;
                    }
                    let head = format!(
                        "{profile} {} entry ({event})",
                        s["journey_id"].as_str().unwrap_or("?")
                    );
                    lines.push(key_and_line(std::slice::from_ref(s), head, start));
                }
            }
            lines.sort();
            if lines.is_empty() {
                let _ = writeln!(out, "{profile}: no entry");
            }
            for (_, _, line) in lines {
                let _ = writeln!(out, "{line}");
            }
            let mine: Vec<String> = calls
                .iter()
                .filter(|c| &c.profile_id == profile)
                .map(|c| format!("{} {}", c.node_id, c.params))
                .collect();
            if !mine.is_empty() {
                let _ = writeln!(out, "{profile} calls: {}", mine.join(", "));
            }
        }
        for j in &self.journeys {
            let runs = self.get(&format!("/v1/journeys/{j}/runs")).await?;
            let mut runs = runs["runs"].as_array().cloned().unwrap_or_default();
            runs.reverse();
            for r in &runs {
                let at = r["scheduled_at"]
                    .as_str()
                    .and_then(|s| s.parse::<Timestamp>().ok())
                    .map(|t| offset(start, t))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "run {j} {} @{at}: {} read {} entered {} skipped {}{}",
                    r["kind"].as_str().unwrap_or("?"),
                    r["status"].as_str().unwrap_or("?"),
                    r["read"],
                    r["entered"],
                    r["skipped"],
                    match r["skipped_reasons"].as_object() {
                        Some(m) if !m.is_empty() => format!(" {}", Value::Object(m.clone())),
                        _ => String::new(),
                    }
                );
            }
            let journey = self.get(&format!("/v1/journeys/{j}")).await?;
            let versions: Vec<String> = journey["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| format!("v{} {}", v["version"], v["status"].as_str().unwrap_or("?")))
                .collect();
            let _ = writeln!(
                out,
                "journey {j}: {} ({})",
                journey["status"].as_str().unwrap_or("?"),
                versions.join(", ")
            );
        }
        Ok(out)
    }
}

/// The sort key (time of the first step, its sequence number) and the line
/// `head: node:status[->branch][ CODE][ (message of a failure)], ...` with `@offset`
/// where the time changes (the usual code, COMPLETED, left out).
fn key_and_line(steps: &[Value], head: String, start: Timestamp) -> (String, i64, String) {
    let mut line = head;
    line.push(':');
    let mut last: Option<Timestamp> = Some(start);
    let mut first = None;
    for s in steps {
        let at = s["at"].as_str().and_then(|a| a.parse::<Timestamp>().ok());
        if first.is_none() {
            first = Some((at, s["seq"].as_i64().unwrap_or(0)));
        }
        if at != last {
            if let Some(at) = at {
                let _ = write!(line, " @{}", offset(start, at));
            }
            last = at;
        }
        let _ = write!(
            line,
            " {}:{}",
            s["node"].as_str().unwrap_or("?"),
            s["status"].as_str().unwrap_or("?")
        );
        if let Some(branch) = branch(s) {
            let _ = write!(line, "->{branch}");
        }
        if let Some(code) = s["code"].as_str().filter(|c| *c != "COMPLETED") {
            let _ = write!(line, " {code}");
        }
        if s["status"] == "failed"
            && let Some(message) = s["message"].as_str()
        {
            let _ = write!(line, " ({message})");
        }
        line.push(',');
    }
    line.pop();
    let (at, seq) = first.unwrap_or((None, 0));
    let key = at
        .map(|t| format!("{:>12}", t.as_second()))
        .unwrap_or_default();
    (key, seq, line)
}

/// The branch a passed condition, split or reaction took, as the engine names it.
fn branch(step: &Value) -> Option<String> {
    if step["status"] != "passed" {
        return None;
    }
    let d = &step["detail"];
    if let Some(label) = d["label"].as_str() {
        return Some(label.to_string());
    }
    if let Some(event) = d["event"].as_str() {
        return Some(event.to_string());
    }
    if d["timeout"] == true {
        return Some("timeout".into());
    }
    match &d["branch"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `at - start` as `1d2h3m4s` (zero parts left out; `0s` for the start).
fn offset(start: Timestamp, at: Timestamp) -> String {
    let secs = at.duration_since(start).as_secs();
    let (sign, mut s) = if secs < 0 { ("-", -secs) } else { ("", secs) };
    if s == 0 {
        return "0s".into();
    }
    let mut out = sign.to_string();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= len {
            let _ = write!(out, "{}{unit}", s / len);
            s %= len;
        }
    }
    out
}

/// The string `field` of `v`, and `v` without it (the request body).
fn split(v: &Value, field: &str) -> Result<(String, Value), String> {
    let id = text(v, field)?;
    let mut rest = v.clone();
    if let Some(o) = rest.as_object_mut() {
        o.remove(field);
    }
    Ok((id, rest))
}

fn text(v: &Value, field: &str) -> Result<String, String> {
    v[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("`{field}` missing or not a string in {v}"))
}

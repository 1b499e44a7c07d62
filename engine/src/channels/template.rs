//! A compiled message template: every part of every locale parsed once, checked against
//! its channel, and rendered for one profile in its locale.
//!
//! Owns which parts a channel needs, which locale a profile gets, HTML escaping of the
//! values an `html` part shows, and located errors (`locales.fr.html: line 3: unknown
//! filter "x"`). Never stores a template or sends a message.

use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use super::liquid::{Bounds, Liquid, globals};
use crate::model::{Channel, MessageParts, Problems, TemplateDef};

/// A failed render: the part and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderError {
    pub part: String,
    pub message: String,
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.part, self.message)
    }
}

/// How large and how long a render may be.
#[derive(Debug, Clone, Copy)]
pub struct RenderLimits {
    /// Bytes of one rendered part.
    pub max_bytes: usize,
    /// Time for a whole message.
    pub time: Duration,
}

/// The values a template sees (what conditions see, and `now`).
#[derive(Debug, Default, Clone)]
pub struct RenderInput {
    pub profile: Value,
    pub event: Option<Value>,
    pub events: Option<Value>,
    pub journey: Option<Value>,
    pub actions: Option<Value>,
    pub now: jiff::Timestamp,
    /// The link that unsubscribes the profile from the message's group (marketing
    /// messages): `{{ unsubscribe_url }}`.
    pub unsubscribe_url: Option<String>,
}

/// One rendered message.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The locale whose variant was used.
    pub locale: String,
    /// Part name → text; push data as `data.<key>`.
    pub parts: IndexMap<String, String>,
}

impl Rendered {
    /// `{"subject": …, "html": …, "data": {…}}`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        let mut data = Map::new();
        for (name, text) in &self.parts {
            match name.strip_prefix("data.") {
                Some(key) => {
                    data.insert(key.to_string(), json!(text));
                }
                None => {
                    out.insert(name.clone(), json!(text));
                }
            }
        }
        if !data.is_empty() {
            out.insert("data".into(), Value::Object(data));
        }
        Value::Object(out)
    }
}

/// A template ready to render.
#[derive(Debug)]
pub struct Template {
    pub def: TemplateDef,
    locales: IndexMap<String, Vec<(String, Liquid)>>,
}

impl Template {
    /// Checks and parses a definition; every problem is reported, each at its path.
    pub fn compile(def: TemplateDef) -> Result<Template, Problems> {
        let mut problems = Problems::default();
        let mut problem = |path: String, message: String| problems.push(path, message);
        if def.locales.is_empty() {
            problem(
                "locales".into(),
                "a template needs at least one locale".into(),
            );
        } else if !def.locales.contains_key(&def.default_locale) {
            problem(
                "default_locale".into(),
                format!(
                    "{:?} is not one of the locales ({})",
                    def.default_locale,
                    def.locales.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let mut locales = IndexMap::new();
        for (locale, parts) in &def.locales {
            let at = format!("locales.{locale}");
            if let Err(message) = check_locale(locale) {
                problem(at.clone(), message);
            }
            for (path, message) in missing_parts(def.channel, parts) {
                problem(format!("{at}{path}"), message);
            }
            let mut parsed = Vec::new();
            for (name, src) in parts.parts() {
                match Liquid::parse(src) {
                    Ok(l) => parsed.push((name, l)),
                    Err(message) => problem(format!("{at}.{name}"), message),
                }
            }
            locales.insert(normal(locale), parsed);
        }
        if problems.is_empty() {
            Ok(Template { def, locales })
        } else {
            Err(problems)
        }
    }

    /// The locale a profile gets: its `locale` attribute (`fr-CA`, then `fr`), else the
    /// template's default.
    pub fn locale_for(&self, wanted: Option<&str>) -> &str {
        let default = self.def.default_locale.as_str();
        let Some(wanted) = wanted.map(normal) else {
            return default;
        };
        let primary = wanted.split('-').next().unwrap_or_default().to_string();
        for candidate in [wanted, primary] {
            if let Some((i, _, _)) = self.locales.get_full(&candidate) {
                return self.def.locales.get_index(i).map_or(default, |(k, _)| k);
            }
        }
        default
    }

    /// Renders every part for `input` in the profile's locale (or `locale` if given).
    pub fn render(
        &self,
        input: &RenderInput,
        locale: Option<&str>,
        limits: RenderLimits,
    ) -> Result<Rendered, RenderError> {
        let wanted = locale.or_else(|| input.profile.get("locale").and_then(Value::as_str));
        let locale = self.locale_for(wanted).to_string();
        let parts = self
            .locales
            .get(&normal(&locale))
            .ok_or_else(|| RenderError {
                part: "locale".into(),
                message: format!("no variant for {locale:?}"),
            })?;
        let doc = json!({
            "profile": input.profile,
            "event": input.event,
            "events": input.events,
            "journey": input.journey,
            "actions": input.actions,
            "now": input.now.to_string(),
            "unsubscribe_url": input.unsubscribe_url,
        });
        let plain = globals(&doc);
        let mut escaped = None;
        let bounds = Bounds {
            max_bytes: limits.max_bytes,
            deadline: Instant::now() + limits.time,
        };
        let mut out = IndexMap::new();
        for (name, liquid) in parts {
            let values = if name == "html" {
                escaped.get_or_insert_with(|| globals(&escape_strings(&doc)))
            } else {
                &plain
            };
            let text = liquid
                .render(values, bounds)
                .map_err(|message| RenderError {
                    part: name.clone(),
                    message,
                })?;
            out.insert(name.clone(), text);
        }
        Ok(Rendered { locale, parts: out })
    }
}

/// Parts by name, with whether the message has them.
type Presence<'a> = &'a [(&'a str, bool)];

/// Which parts a channel needs and which it never sends.
fn missing_parts(channel: Channel, p: &MessageParts) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let has = |o: &Option<String>| o.is_some();
    let (required, allowed): (Presence, Presence) = match channel {
        Channel::Email => (
            &[
                ("subject", has(&p.subject)),
                ("html or text", has(&p.html) || has(&p.text)),
            ],
            &[
                ("title", has(&p.title)),
                ("body", has(&p.body)),
                ("data", !p.data.is_empty()),
            ],
        ),
        Channel::Sms => (
            &[("body", has(&p.body))],
            &[
                ("subject", has(&p.subject)),
                ("html", has(&p.html)),
                ("text", has(&p.text)),
                ("title", has(&p.title)),
                ("data", !p.data.is_empty()),
            ],
        ),
        Channel::Push => (
            &[("title or body", has(&p.title) || has(&p.body))],
            &[
                ("subject", has(&p.subject)),
                ("html", has(&p.html)),
                ("text", has(&p.text)),
            ],
        ),
    };
    for (name, present) in required {
        if !present {
            out.push((
                String::new(),
                format!("{} message needs {name}", channel.a()),
            ));
        }
    }
    for (name, present) in allowed {
        if *present {
            out.push((
                format!(".{name}"),
                format!("{} message has no {name}", channel.a()),
            ));
        }
    }
    out
}

/// A locale tag as templates name them: `en`, `pt-BR`, `zh-Hant-TW`.
fn check_locale(tag: &str) -> Result<(), String> {
    let mut subtags = tag.split(['-', '_']);
    let primary = subtags.next().unwrap_or_default();
    let ok = (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && subtags
            .all(|s| (2..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{tag:?} is not a locale tag (like en, fr or pt-BR)"
        ))
    }
}

/// Locale tags compared without case, `_` read as `-`.
fn normal(tag: &str) -> String {
    tag.replace('_', "-").to_ascii_lowercase()
}

/// Every string of a document HTML-escaped, for the `html` part.
fn escape_strings(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(escape_html(s)),
        Value::Array(a) => Value::Array(a.iter().map(escape_strings).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), escape_strings(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(v: Value) -> TemplateDef {
        serde_json::from_value(v).unwrap()
    }

    fn limits() -> RenderLimits {
        RenderLimits {
            max_bytes: 1 << 16,
            time: Duration::from_secs(5),
        }
    }

    fn welcome() -> Template {
        Template::compile(def(json!({
            "channel": "email",
            "default_locale": "en",
            "locales": {
                "en": {"subject": "Welcome, {{ profile.first_name | default: \"friend\" }}",
                       "html": "<p>Hi {{ profile.first_name }}</p>", "text": "Hi {{ profile.first_name }}"},
                "fr": {"subject": "Bienvenue {{ profile.first_name }}", "text": "Bonjour"},
                "pt-BR": {"subject": "Olá", "text": "Oi"}
            }
        })))
        .unwrap()
    }

    #[test]
    fn a_profile_gets_its_locale_then_its_language_then_the_default() {
        let t = welcome();
        assert_eq!(t.locale_for(Some("fr-CA")), "fr");
        assert_eq!(t.locale_for(Some("pt_br")), "pt-BR");
        assert_eq!(t.locale_for(Some("de")), "en");
        assert_eq!(t.locale_for(None), "en");
    }

    #[test]
    fn html_parts_escape_values_and_text_parts_do_not() {
        let input = RenderInput {
            profile: json!({"first_name": "<b>Ann</b> & co", "locale": "en-GB"}),
            ..Default::default()
        };
        let r = welcome().render(&input, None, limits()).unwrap();
        assert_eq!(r.locale, "en");
        assert_eq!(r.parts["html"], "<p>Hi &lt;b&gt;Ann&lt;/b&gt; &amp; co</p>");
        assert_eq!(r.parts["text"], "Hi <b>Ann</b> & co");
        assert_eq!(r.parts["subject"], "Welcome, <b>Ann</b> & co");
        let r = welcome()
            .render(&RenderInput::default(), Some("fr"), limits())
            .unwrap();
        assert_eq!(
            r.to_json(),
            json!({"subject": "Bienvenue ", "text": "Bonjour"})
        );
    }

    #[test]
    fn every_problem_is_located() {
        let problems = Template::compile(def(json!({
            "channel": "sms",
            "default_locale": "de",
            "locales": {
                "en": {"body": "ok\n{{ x | nope }}", "subject": "s"},
                "e!": {}
            }
        })))
        .unwrap_err();
        let got: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "default_locale: \"de\" is not one of the locales (en, e!)",
                "locales.en.subject: an SMS message has no subject",
                "locales.en.body: line 2: unknown filter \"nope\"",
                "locales.e!: \"e!\" is not a locale tag (like en, fr or pt-BR)",
                "locales.e!: an SMS message needs body",
            ]
        );
    }

    #[test]
    fn push_data_renders_as_an_object() {
        let t = Template::compile(def(json!({
            "channel": "push", "default_locale": "en",
            "locales": {"en": {"title": "Cart", "data": {"sku": "{{ event.data.sku }}"}}}
        })))
        .unwrap();
        let input = RenderInput {
            event: Some(json!({"data": {"sku": "A1"}})),
            ..Default::default()
        };
        let r = t.render(&input, None, limits()).unwrap();
        assert_eq!(r.to_json(), json!({"title": "Cart", "data": {"sku": "A1"}}));
    }
}

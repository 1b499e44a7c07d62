//! The Liquid dialect of message templates: Shopify's standard tags and filters (without
//! `include` and `render`: a template is one document), a `date` filter that shows a
//! time in the profile's zone, missing values rendered as nil (as in Shopify's Liquid,
//! so `{{ profile.first_name | default: "there" }}` works), and a render bounded in
//! output size and time.
//!
//! Owns parsing and rendering one Liquid string and describing its errors with a line.
//! Never reads the store or the clock: `now` and the zone come with the values.

use std::io::Write;
use std::time::Instant;

use liquid_core::model::{KString, KStringRef, ScalarCow, Value, ValueCow, ValueView};
use liquid_core::parser::Language;
use liquid_core::runtime::{PartialStore, Registers, Renderable, RuntimeBuilder};
use liquid_core::{
    Display_filter, Expression, Filter, FilterParameters, FilterReflection, FromFilterParameters,
    ParseFilter, Runtime,
};
use liquid_lib::stdlib;

/// A parsed Liquid string, shareable across threads.
pub struct Liquid(liquid_core::runtime::Template);

impl std::fmt::Debug for Liquid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Liquid")
    }
}

/// How far one render may go.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Bytes of output.
    pub max_bytes: usize,
    /// Checked whenever output is written.
    pub deadline: Instant,
}

/// The language: built once.
fn language() -> &'static Language {
    static LANGUAGE: std::sync::OnceLock<Language> = std::sync::OnceLock::new();
    LANGUAGE.get_or_init(|| {
        let mut l = Language::empty();
        // Each plugin under the name its reflection gives (`if`, `date`, ...).
        macro_rules! register {
            ($registry:ident, $parse:ident :: $name:ident: $($plugin:expr),* $(,)?) => {
                $(l.$registry.register(
                    liquid_core::parser::$parse::reflection(&$plugin).$name().to_string(),
                    Box::new($plugin),
                );)*
            };
        }
        register!(tags, ParseTag::tag: stdlib::AssignTag, stdlib::BreakTag, stdlib::ContinueTag,
            stdlib::CycleTag, stdlib::IncrementTag, stdlib::DecrementTag);
        register!(blocks, ParseBlock::start_tag:
            stdlib::RawBlock,
            stdlib::IfBlock,
            stdlib::UnlessBlock,
            stdlib::IfChangedBlock,
            stdlib::ForBlock,
            stdlib::TableRowBlock,
            stdlib::CommentBlock,
            stdlib::CaptureBlock,
            stdlib::CaseBlock
        );
        register!(filters, ParseFilter::name:
            stdlib::Abs,
            stdlib::Append,
            stdlib::AtLeast,
            stdlib::AtMost,
            stdlib::Capitalize,
            stdlib::Ceil,
            stdlib::Compact,
            stdlib::Concat,
            ZonedDate,
            stdlib::Default,
            stdlib::DividedBy,
            stdlib::Downcase,
            stdlib::Escape,
            stdlib::EscapeOnce,
            stdlib::First,
            stdlib::Floor,
            stdlib::Join,
            stdlib::Last,
            stdlib::Lstrip,
            stdlib::Map,
            stdlib::Minus,
            stdlib::Modulo,
            stdlib::NewlineToBr,
            stdlib::Plus,
            stdlib::Prepend,
            stdlib::Remove,
            stdlib::RemoveFirst,
            stdlib::Replace,
            stdlib::ReplaceFirst,
            stdlib::Reverse,
            stdlib::Round,
            stdlib::Rstrip,
            stdlib::Size,
            stdlib::Slice,
            stdlib::Sort,
            stdlib::SortNatural,
            stdlib::Split,
            stdlib::Strip,
            stdlib::StripHtml,
            stdlib::StripNewlines,
            stdlib::Times,
            stdlib::Truncate,
            stdlib::TruncateWords,
            stdlib::Uniq,
            stdlib::Upcase,
            stdlib::UrlDecode,
            stdlib::UrlEncode,
            stdlib::Where
        );
        l
    })
}

impl Liquid {
    /// Parses `src`; the error names the line (and column where the parser knows it).
    pub fn parse(src: &str) -> Result<Liquid, String> {
        liquid_core::parser::parse(src, language())
            .map(|elements| Liquid(liquid_core::runtime::Template::new(elements)))
            .map_err(|e| describe(&e.to_string(), src))
    }

    /// Renders against `globals` (a JSON object).
    pub fn render(&self, globals: &liquid_core::Object, bounds: Bounds) -> Result<String, String> {
        let runtime = RuntimeBuilder::new().set_globals(globals).build();
        let runtime = Lenient(runtime);
        let mut out = Bounded {
            buf: Vec::new(),
            bounds,
            exceeded: None,
        };
        let result = self.0.render_to(&mut out, &runtime);
        if let Some(why) = out.exceeded {
            return Err(why);
        }
        result.map_err(|e| describe(&e.to_string(), ""))?;
        String::from_utf8(out.buf).map_err(|_| "the output is not UTF-8".to_string())
    }
}

/// JSON as Liquid values.
pub fn globals(doc: &serde_json::Value) -> liquid_core::Object {
    match liquid_core::model::to_value(doc) {
        Ok(Value::Object(o)) => o,
        _ => liquid_core::Object::new(),
    }
}

/// A Liquid error's text (`liquid: Unknown filter\n  with:\n    requested filter=x`, or
/// pest's `--> 3:2 … = expected …`) made one located line.
fn describe(text: &str, src: &str) -> String {
    let text = text.strip_prefix("liquid: ").unwrap_or(text);
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default().trim();
    let context: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter(|(k, _)| !k.contains(' ') || k.starts_with("requested"))
        .collect();
    // A pest error: `--> line:col` then `= message`.
    if let Some(at) = head.strip_prefix("--> ") {
        let message = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("= "))
            .unwrap_or("syntax error");
        let (line, col) = at.split_once(':').unwrap_or((at, ""));
        return format!("line {line}, column {col}: {message}");
    }
    let requested = |what: &str| {
        context
            .iter()
            .find(|(k, _)| *k == format!("requested {what}"))
            .map(|(_, v)| v.trim())
    };
    if let Some(filter) = requested("filter") {
        let line = line_of(src, |l| {
            l.split('|')
                .skip(1)
                .any(|f| f.trim_start().split([':', ' ', '}']).next() == Some(filter))
        });
        return format!("{}unknown filter {filter:?}", line_prefix(line));
    }
    if let Some(tag) = requested("tag").or(requested("block")) {
        let line = line_of(src, |l| l.contains(&format!("{{% {tag}")));
        return format!("{}unknown tag {tag:?}", line_prefix(line));
    }
    let detail: Vec<String> = context.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if detail.is_empty() {
        head.to_lowercase()
    } else {
        format!("{} ({})", head.to_lowercase(), detail.join(", "))
    }
}

fn line_of(src: &str, found: impl Fn(&str) -> bool) -> Option<usize> {
    src.lines().position(found).map(|i| i + 1)
}

fn line_prefix(line: Option<usize>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

/// The output of one render, refusing to grow past its bounds.
struct Bounded {
    buf: Vec<u8>,
    bounds: Bounds,
    exceeded: Option<String>,
}

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.bounds.max_bytes {
            self.exceeded = Some(format!(
                "the output passed {} bytes (message_max_bytes)",
                self.bounds.max_bytes
            ));
        } else if Instant::now() > self.bounds.deadline {
            self.exceeded = Some("rendering took too long (template_render_ms)".into());
        }
        if self.exceeded.is_some() {
            return Err(std::io::Error::other("bounds"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The root of a render: a value that does not exist is nil, not an error.
struct Lenient<R>(R);

impl<R: Runtime> Runtime for Lenient<R> {
    fn partials(&self) -> &dyn PartialStore {
        self.0.partials()
    }
    fn name(&self) -> Option<KStringRef<'_>> {
        self.0.name()
    }
    fn roots(&self) -> std::collections::BTreeSet<liquid_core::model::KStringCow<'_>> {
        self.0.roots()
    }
    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        self.0.try_get(path)
    }
    fn get(&self, path: &[ScalarCow<'_>]) -> liquid_core::Result<ValueCow<'_>> {
        match self.0.try_get(path) {
            Some(v) => Ok(v),
            None => Ok(ValueCow::Owned(Value::Nil)),
        }
    }
    fn set_global(&self, name: KString, val: Value) -> Option<Value> {
        self.0.set_global(name, val)
    }
    fn set_index(&self, name: KString, val: Value) -> Option<Value> {
        self.0.set_index(name, val)
    }
    fn get_index<'a>(&'a self, name: &str) -> Option<ValueCow<'a>> {
        self.0.get_index(name)
    }
    fn registers(&self) -> &Registers {
        self.0.registers()
    }
}

#[derive(Debug, FilterParameters)]
struct DateArgs {
    #[parameter(description = "The strftime format.", arg_type = "str")]
    format: Expression,
    #[parameter(
        description = "An IANA time zone; by default the profile's (UTC without one).",
        arg_type = "str"
    )]
    zone: Option<Expression>,
}

/// `date`: a timestamp (RFC 3339, Unix seconds, or `"now"`) formatted in the profile's
/// time zone.
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "date",
    description = "Formats a timestamp in the profile's time zone.",
    parameters(DateArgs),
    parsed(ZonedDateFilter)
)]
struct ZonedDate;

#[derive(Debug, FromFilterParameters, Display_filter)]
#[name = "date"]
struct ZonedDateFilter {
    #[parameters]
    args: DateArgs,
}

impl Filter for ZonedDateFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> liquid_core::Result<Value> {
        let args = self.args.evaluate(runtime)?;
        let Some(at) = instant(input, runtime) else {
            return Ok(input.to_value());
        };
        let zone_name = match &args.zone {
            Some(z) => Some(z.to_string()),
            None => runtime
                .try_get(&[ScalarCow::new("profile"), ScalarCow::new("timezone")])
                .filter(|v| !v.is_nil())
                .map(|v| v.to_kstr().to_string()),
        };
        let zone = match zone_name {
            Some(name) => jiff::tz::TimeZone::get(&name)
                .map_err(|_| liquid_core::Error::with_msg(format!("unknown time zone {name:?}")))?,
            None => jiff::tz::TimeZone::UTC,
        };
        let zoned = at.to_zoned(zone);
        jiff::fmt::strtime::format(args.format.as_str(), &zoned)
            .map(Value::scalar)
            .map_err(|e| liquid_core::Error::with_msg(format!("date format: {e}")))
    }
}

/// The instant a value names: RFC 3339 text, Unix seconds, or `now` (the render's `now`).
fn instant(input: &dyn ValueView, runtime: &dyn Runtime) -> Option<jiff::Timestamp> {
    let scalar = input.as_scalar()?;
    if let Some(secs) = scalar.to_integer() {
        return jiff::Timestamp::from_second(secs).ok();
    }
    let text = scalar.to_kstr();
    let text = if text.as_str() == "now" || text.as_str() == "today" {
        runtime
            .try_get(&[ScalarCow::new("now")])?
            .to_kstr()
            .to_string()
    } else {
        text.to_string()
    };
    text.parse::<jiff::Timestamp>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, doc: serde_json::Value) -> Result<String, String> {
        let bounds = Bounds {
            max_bytes: 1 << 16,
            deadline: Instant::now() + std::time::Duration::from_secs(5),
        };
        Liquid::parse(src)?.render(&globals(&doc), bounds)
    }

    #[test]
    fn missing_values_are_nil_and_defaults_apply() {
        let out = render(
            "Hi {{ profile.first_name | default: \"there\" }}{{ profile.x.y }}!",
            json!({"profile": {}}),
        );
        assert_eq!(out.as_deref(), Ok("Hi there!"));
    }

    #[test]
    fn dates_follow_the_profile_zone_or_an_explicit_one() {
        let doc = json!({"profile": {"timezone": "Asia/Tokyo"}, "now": "2026-03-01T20:30:00Z",
            "event": {"at": "2026-07-01T12:00:00Z"}});
        let out = render(
            "{{ event.at | date: \"%Y-%m-%d %H:%M %Z\" }}|{{ \"now\" | date: \"%a %H:%M\" }}|{{ event.at | date: \"%H:%M\", \"America/New_York\" }}|{{ 0 | date: \"%Y\" }}",
            doc,
        );
        assert_eq!(
            out.as_deref(),
            Ok("2026-07-01 21:00 JST|Mon 05:30|08:00|1970")
        );
    }

    #[test]
    fn errors_are_located() {
        let e = Liquid::parse("one\ntwo {{ x | nofilter: 1 }}").unwrap_err();
        assert_eq!(e, "line 2: unknown filter \"nofilter\"");
        let e = Liquid::parse("a\n{% if x %}\nb").unwrap_err();
        assert!(e.starts_with("line 3, column "), "{e}");
        assert!(e.contains("endif"), "{e}");
        let e = Liquid::parse("{{ x | }}").unwrap_err();
        assert!(e.starts_with("line 1, column 8: "), "{e}");
        // Partials do not exist here.
        assert!(Liquid::parse("{% include 'x' %}").is_err());
    }

    #[test]
    fn output_is_bounded() {
        let bounds = Bounds {
            max_bytes: 100,
            deadline: Instant::now() + std::time::Duration::from_secs(5),
        };
        let t = Liquid::parse("{% for i in (1..1000) %}xxxxxxxxxx{% endfor %}").unwrap();
        let e = t.render(&globals(&json!({})), bounds).unwrap_err();
        assert!(e.contains("100 bytes"), "{e}");
    }
}

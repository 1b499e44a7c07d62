//! Journey definitions: entry, activity graph, properties.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::problem::{Problem, serde_problem};
use crate::activities::{
    action::ActionDef, condition::ConditionDef, end::EndDef, jump::JumpDef, message::MessageDef,
    reaction::ReactionDef, split::SplitDef, update_profile::UpdateProfileDef, wait::WaitDef,
};

/// A journey as its author writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JourneyDef {
    /// Unique journey id (letters, digits, `_` and `-`); may be left out when the API path
    /// names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What makes a profile enter.
    pub entry: EntryDef,
    /// The id of the first node.
    pub start: String,
    /// The activity graph, keyed by node id.
    #[serde(deserialize_with = "unique_keys")]
    #[schemars(with = "IndexMap<String, NodeDef>")]
    pub nodes: IndexMap<String, NodeDef>,
    #[serde(default)]
    pub properties: Properties,
}

/// Deserializes a map, refusing a key given twice (JSON and YAML parsers would otherwise
/// keep the last one silently).
fn unique_keys<'de, D, V>(de: D) -> Result<IndexMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Visitor<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<V> {
        type Value = IndexMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of node ids to nodes")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = IndexMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate node id {key:?}"
                    )));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    de.deserialize_map(Visitor(std::marker::PhantomData))
}

/// What makes a profile enter a journey.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EntryDef {
    /// A unitary event of type `event` makes its profile enter, if `when` holds.
    Event {
        event: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        when: Option<String>,
    },
    /// Every member of an audience enters on a schedule, at `rate` profiles per second.
    ReadAudience {
        audience: String,
        schedule: ScheduleDef,
        /// No run starts after this instant (RFC 3339, or a civil date-time in the
        /// journey's zone).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<String>,
        /// Profiles entered per second; default `read_audience_rate`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<u32>,
        /// Later runs only let in profiles that joined the audience since the previous
        /// run started.
        #[serde(default)]
        incremental: bool,
    },
    /// A profile enters when it enters (or exits, or either) an audience.
    AudienceQualification {
        audience: String,
        #[serde(default)]
        on: QualifyOn,
    },
    /// A business event of type `event` makes every member of `audience` enter.
    BusinessEvent {
        event: String,
        audience: String,
        /// A condition on the business event (`event.data.sku == "X"`), evaluated once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        when: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<u32>,
    },
}

impl EntryDef {
    pub fn kind(&self) -> &'static str {
        match self {
            EntryDef::Event { .. } => "event",
            EntryDef::ReadAudience { .. } => "read_audience",
            EntryDef::AudienceQualification { .. } => "audience_qualification",
            EntryDef::BusinessEvent { .. } => "business_event",
        }
    }
}

/// Which audience transitions an audience-qualification journey takes.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QualifyOn {
    /// The profile joins the audience.
    #[default]
    Enter,
    /// The profile leaves the audience.
    Exit,
    /// Either.
    Either,
}

/// When a read-audience journey reads its audience (in the journey's time zone).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleDef {
    /// Once, at a date-time (RFC 3339, or civil in the journey's zone).
    Once { at: String },
    /// Every day at a local time (`09:00`).
    Daily { at: String },
    /// On some days of the week (`monday`...) at a local time.
    Weekly { days: Vec<String>, at: String },
    /// A cron expression: 5 fields (minute hour day month weekday) or 6-7 with seconds
    /// and years.
    Cron { expression: String },
}

/// What ends a live instance early.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExitDef {
    /// An event of this type for the profile.
    Event { event: String },
    /// The profile leaving this audience.
    AudienceExit { audience: String },
}

/// One activity of the graph; `type` names its kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeDef {
    Condition(ConditionDef),
    Split(SplitDef),
    Wait(WaitDef),
    Reaction(ReactionDef),
    Action(ActionDef),
    Message(MessageDef),
    UpdateProfile(UpdateProfileDef),
    Jump(JumpDef),
    End(EndDef),
}

/// Journey-wide settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    #[serde(default)]
    pub reentrance: ReentranceDef,
    /// Longest life of an instance (ISO-8601 duration); default `P91D`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// IANA zone for waits and time expressions; default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Use the profile's own zone when it has one.
    #[serde(default)]
    pub use_profile_time_zone: bool,
    /// No entries before this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// No entries after this instant (RFC 3339); live instances end then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    /// Exit criteria: an event or an audience exit ends a live instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit: Vec<ExitDef>,
    /// Capping rules (by id) that limit this journey's entries per profile; rules are
    /// shared by every journey naming them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capping: Vec<String>,
}

/// Whether a profile may enter again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReentranceDef {
    pub mode: ReentranceMode,
    /// With `after`: the period after an entry during which the profile may not enter
    /// again (ISO-8601 duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
}

impl Default for ReentranceDef {
    fn default() -> Self {
        Self {
            mode: ReentranceMode::After,
            wait: Some("PT5M".into()),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReentranceMode {
    /// A profile enters at most once, ever.
    Never,
    /// A profile may enter again as soon as its previous instance has ended.
    Always,
    /// A profile may enter again once its previous instance has ended and `wait` has passed
    /// since its previous entry.
    After,
}

/// The text format of a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// Guesses the format from the text: JSON starts with `{`.
    pub fn sniff(text: &[u8]) -> Format {
        match text.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// Parses a journey definition, locating the first structural error.
pub fn parse_journey(text: &[u8], format: Format) -> Result<JourneyDef, Problem> {
    parse_document(text, format)
}

/// Parses a JSON or YAML document into `T`, locating the first structural error.
pub fn parse_document<T: serde::de::DeserializeOwned>(
    text: &[u8],
    format: Format,
) -> Result<T, Problem> {
    // A fault no field can be named for (text that does not parse) is located at its
    // line and column.
    let at_line = |mut p: Problem, line_column: Option<(usize, usize)>| {
        if let (true, Some((line, column))) = (p.path.is_empty(), line_column) {
            p.path = super::problem::syntax_location(line, column);
        }
        p
    };
    match format {
        Format::Json => {
            let de = &mut serde_json::Deserializer::from_slice(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let inner = e.inner();
                let place =
                    (inner.is_syntax() || inner.is_eof()).then(|| (inner.line(), inner.column()));
                at_line(serde_problem(e), place)
            })
        }
        Format::Yaml => {
            let text = std::str::from_utf8(text)
                .map_err(|e| Problem::new("", format!("the document is not UTF-8: {e}")))?;
            if let Some((line, column)) =
                super::depth::yaml_flow_depth_over(text, super::depth::MAX_DOCUMENT_DEPTH)
            {
                return Err(Problem::new(
                    super::problem::syntax_location(line, column),
                    format!(
                        "collections nest deeper than {} levels here",
                        super::depth::MAX_DOCUMENT_DEPTH
                    ),
                ));
            }
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let place = e.inner().location().map(|l| (l.line(), l.column()));
                at_line(serde_problem(e), place)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json_parse_to_the_same_definition() {
        let json = br#"{"entry":{"type":"event","event":"signup"},"start":"bye",
            "nodes":{"bye":{"type":"end"}}}"#;
        let yaml = b"entry: {type: event, event: signup}\nstart: bye\nnodes:\n  bye: {type: end}\n";
        let a = parse_journey(json, Format::sniff(json)).unwrap();
        let b = parse_journey(yaml, Format::sniff(yaml)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn structural_errors_are_located() {
        let json = br#"{"entry":{"type":"event","event":"signup"},"start":"w",
            "nodes":{"w":{"type":"wait","durration":"P1D"}}}"#;
        let err = parse_journey(json, Format::Json).unwrap_err();
        assert!(err.path.starts_with("nodes.w"), "{err}");
        assert!(err.message.contains("durration"), "{err}");
    }
}

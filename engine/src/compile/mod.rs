//! Validation and compilation of journey definitions into immutable graphs.
//!
//! Owns every rule a definition must satisfy (targets, reachability, loops, durations,
//! dates, expressions, entry kinds, known actions) and reports each broken rule with its
//! path. The result, a [`Journey`], never changes after compilation and is shared by all
//! instances of that version. This module never runs a journey and never touches the
//! store.

mod graph;
pub mod schedule;
mod validator;

use std::collections::HashMap;

use cranelift_entity::PrimaryMap;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

use crate::activities::{self, Cx, NodeKind};
pub use crate::activities::{Catalog, NodeRef, PluginCall};
use crate::expr::{Expr, ExprEngine};
pub use crate::ids::check_id;
use crate::model::{EntryDef, ExitDef, JourneyDef, Problems, QualifyOn, ReentranceMode};
use crate::settings::Settings;

pub use schedule::Schedule;
pub use validator::Validator;

/// A compiled node.
#[derive(Debug)]
pub struct Node {
    pub id: String,
    pub label: Option<String>,
    pub kind: NodeKind,
}

/// The compiled entry.
#[derive(Debug)]
pub struct Entry {
    pub kind: EntryKind,
    /// A condition on the entry event (unitary and business events).
    pub when: Option<Expr>,
}

/// What makes a profile enter.
#[derive(Debug)]
pub enum EntryKind {
    /// A unitary event of this type.
    Event { event_type: String },
    /// Runs over an audience on a schedule.
    ReadAudience {
        audience: String,
        schedule: Schedule,
        until: Option<Timestamp>,
        rate: u32,
        incremental: bool,
    },
    /// Transitions of an audience's membership.
    Qualification {
        audience: String,
        on_enter: bool,
        on_exit: bool,
    },
    /// A business event of this type fans out to an audience.
    BusinessEvent {
        event_type: String,
        audience: String,
        rate: u32,
    },
}

impl Entry {
    /// The event type of a unitary-event entry.
    pub fn event_type(&self) -> Option<&str> {
        match &self.kind {
            EntryKind::Event { event_type } => Some(event_type),
            _ => None,
        }
    }
}

/// Whether a profile may enter again.
#[derive(Debug, Clone, Copy)]
pub enum Reentrance {
    Never,
    Always,
    After(Span),
}

/// Compiled journey properties.
#[derive(Debug, Clone)]
pub struct JourneyProps {
    pub reentrance: Reentrance,
    pub timeout: Span,
    pub time_zone: TimeZone,
    pub use_profile_time_zone: bool,
    pub start_at: Option<Timestamp>,
    pub end_at: Option<Timestamp>,
    /// Event types that end a live instance.
    pub exit_events: Vec<String>,
    /// Audiences whose exit ends a live instance.
    pub exit_audiences: Vec<String>,
    /// Capping rules that limit entries.
    pub capping: Vec<String>,
}

/// One immutable, validated journey version.
#[derive(Debug)]
pub struct Journey {
    pub id: String,
    pub version: u32,
    pub def: JourneyDef,
    pub entry: Entry,
    pub start: NodeRef,
    pub nodes: PrimaryMap<NodeRef, Node>,
    pub by_id: HashMap<String, NodeRef>,
    pub props: JourneyProps,
    /// When this version was published (`None` while only validated).
    pub published_at: Option<Timestamp>,
    /// Set when this is a draft running in test mode (version 0).
    pub test: Option<crate::store::TestMode>,
    /// How split nodes assign branches: the scheme recorded with the version when it was
    /// published ([`SplitHash::CURRENT`] for a journey compiled now).
    pub split_hash: crate::ids::SplitHash,
    /// Where this version calls actions, plugin functions and data sources: what a
    /// plugin's removal must not break while the version runs.
    pub calls: Vec<(String, PluginCall)>,
}

impl Journey {
    pub fn node(&self, id: &str) -> Option<(NodeRef, &Node)> {
        self.by_id.get(id).map(|r| (*r, &self.nodes[*r]))
    }
}

/// Validates and compiles a definition. Every problem found is returned, not only the
/// first.
pub fn compile(
    def: &JourneyDef,
    id: &str,
    version: u32,
    exprs: &ExprEngine,
    catalog: &Catalog,
    settings: &Settings,
) -> Result<Journey, Problems> {
    let mut cx = Cx::new(exprs, catalog);
    if let Err(msg) = check_id(id) {
        cx.problem("id", msg);
    }
    if let Some(def_id) = &def.id
        && def_id != id
    {
        cx.problem(
            "id",
            format!("{def_id:?} does not match the journey id {id:?}"),
        );
    }
    if def.nodes.is_empty() {
        cx.problem("nodes", "a journey needs at least one node");
    }
    if def.nodes.len() > settings.max_journey_nodes {
        cx.problem(
            "nodes",
            format!(
                "{} nodes is more than the limit of {} (max_journey_nodes)",
                def.nodes.len(),
                settings.max_journey_nodes
            ),
        );
    }

    let mut nodes: PrimaryMap<NodeRef, Node> = PrimaryMap::with_capacity(def.nodes.len());
    // First pass: give every node its reference, so targets resolve in any order.
    let mut order = Vec::with_capacity(def.nodes.len());
    for (i, node_id) in def.nodes.keys().enumerate() {
        if let Err(msg) = check_id(node_id) {
            cx.problem(format!("nodes.{node_id}"), msg);
        }
        let r = NodeRef::from_u32(i as u32);
        cx.ids.insert(node_id.clone(), r);
        order.push(r);
    }

    let start = cx.target("start", &def.start);
    let props = compile_props(def, &mut cx);
    let zone = props
        .as_ref()
        .map_or(TimeZone::UTC, |p| p.time_zone.clone());
    let entry = compile_entry(&def.entry, &zone, settings, &mut cx);

    for (node_id, node_def) in &def.nodes {
        let path = format!("nodes.{node_id}");
        let (label, kind) = activities::compile(node_def, &path, &mut cx);
        if let Some(kind) = kind {
            nodes.push(Node {
                id: node_id.clone(),
                label,
                kind,
            });
        }
    }

    if cx.problems.is_empty()
        && let Some(start) = start
    {
        graph::check(
            &nodes,
            start,
            settings.max_steps_per_activation,
            &mut cx.problems,
        );
    }

    match (cx.problems.is_empty(), entry, start, props) {
        (true, Some(entry), Some(start), Some(props)) => Ok(Journey {
            id: id.to_string(),
            version,
            def: def.clone(),
            entry,
            start,
            nodes,
            by_id: cx.ids,
            props,
            published_at: None,
            test: None,
            split_hash: crate::ids::SplitHash::CURRENT,
            calls: cx.calls,
        }),
        _ => Err(cx.problems),
    }
}

fn compile_entry(
    entry: &EntryDef,
    tz: &TimeZone,
    settings: &Settings,
    cx: &mut Cx,
) -> Option<Entry> {
    let event_type = |event: &str, cx: &mut Cx| {
        if event.trim().is_empty() {
            cx.problem("entry.event", "this entry needs an event type");
        }
        event.to_string()
    };
    let when = |src: &Option<String>, cx: &mut Cx| match src {
        Some(src) => cx.expr("entry.when", src).map(Some),
        None => Some(None),
    };
    let rate = |rate: Option<u32>, cx: &mut Cx| match rate {
        Some(0) => {
            cx.problem(
                "entry.rate",
                "the rate must be at least 1 profile per second",
            );
            None
        }
        Some(r) => Some(r),
        None => Some(settings.read_audience_rate),
    };
    match entry {
        EntryDef::Event { event, when: src } => {
            let event_type = event_type(event, cx);
            Some(Entry {
                kind: EntryKind::Event { event_type },
                when: when(src, cx)?,
            })
        }
        EntryDef::ReadAudience {
            audience,
            schedule,
            until,
            rate: r,
            incremental,
        } => {
            cx.audience("entry.audience", audience);
            let schedule = Schedule::compile(schedule, "entry.schedule", tz, cx);
            let until = match until {
                Some(text) => match crate::expr::time::parse_datetime(text, tz) {
                    Ok(ts) => Some(ts),
                    Err(e) => {
                        cx.problem("entry.until", e);
                        return None;
                    }
                },
                None => None,
            };
            let rate = rate(*r, cx);
            Some(Entry {
                kind: EntryKind::ReadAudience {
                    audience: audience.clone(),
                    schedule: schedule?,
                    until,
                    rate: rate?,
                    incremental: *incremental,
                },
                when: None,
            })
        }
        EntryDef::AudienceQualification { audience, on } => {
            cx.audience("entry.audience", audience);
            Some(Entry {
                kind: EntryKind::Qualification {
                    audience: audience.clone(),
                    on_enter: matches!(on, QualifyOn::Enter | QualifyOn::Either),
                    on_exit: matches!(on, QualifyOn::Exit | QualifyOn::Either),
                },
                when: None,
            })
        }
        EntryDef::BusinessEvent {
            event,
            audience,
            when: src,
            rate: r,
        } => {
            let event_type = event_type(event, cx);
            cx.audience("entry.audience", audience);
            let rate = rate(*r, cx);
            Some(Entry {
                kind: EntryKind::BusinessEvent {
                    event_type,
                    audience: audience.clone(),
                    rate: rate?,
                },
                when: when(src, cx)?,
            })
        }
    }
}

fn compile_props(def: &JourneyDef, cx: &mut Cx) -> Option<JourneyProps> {
    let p = &def.properties;
    let reentrance = match (p.reentrance.mode, &p.reentrance.wait) {
        (ReentranceMode::Never, None) => Some(Reentrance::Never),
        (ReentranceMode::Always, None) => Some(Reentrance::Always),
        (ReentranceMode::After, Some(wait)) => cx
            .duration("properties.reentrance.wait", wait)
            .map(Reentrance::After),
        (ReentranceMode::After, None) => {
            cx.problem(
                "properties.reentrance.wait",
                "mode \"after\" needs a wait period (like PT5M)",
            );
            None
        }
        (_, Some(_)) => {
            cx.problem(
                "properties.reentrance.wait",
                "a wait period only applies to mode \"after\"",
            );
            None
        }
    };
    let timeout = cx.duration("properties.timeout", p.timeout.as_deref().unwrap_or("P91D"));
    let time_zone = match p.time_zone.as_deref() {
        None => Some(TimeZone::UTC),
        Some(name) => match TimeZone::get(name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                cx.problem(
                    "properties.time_zone",
                    format!("{name:?} is not an IANA time zone (like Europe/Paris)"),
                );
                None
            }
        },
    };
    let start_at = p
        .start_at
        .as_ref()
        .map(|s| cx.timestamp("properties.start_at", s));
    let end_at = p
        .end_at
        .as_ref()
        .map(|s| cx.timestamp("properties.end_at", s));
    if let (Some(Some(s)), Some(Some(e))) = (start_at, end_at)
        && e <= s
    {
        cx.problem(
            "properties.end_at",
            "the end date must come after the start date",
        );
    }
    let mut exit_events = Vec::new();
    let mut exit_audiences = Vec::new();
    for (i, exit) in p.exit.iter().enumerate() {
        match exit {
            ExitDef::Event { event } if event.trim().is_empty() => {
                cx.problem(format!("properties.exit[{i}].event"), "name an event type");
            }
            ExitDef::Event { event } => exit_events.push(event.clone()),
            ExitDef::AudienceExit { audience } => {
                cx.audience(&format!("properties.exit[{i}].audience"), audience);
                exit_audiences.push(audience.clone());
            }
        }
    }
    for (i, rule) in p.capping.iter().enumerate() {
        if !cx.catalog.capping_rules.contains(rule) {
            cx.problem(
                format!("properties.capping[{i}]"),
                format!("there is no capping rule {rule:?} (create it with PUT /v1/capping-rules/{rule})"),
            );
        }
    }
    Some(JourneyProps {
        exit_events,
        exit_audiences,
        capping: p.capping.clone(),
        reentrance: reentrance?,
        timeout: timeout?,
        time_zone: time_zone?,
        use_profile_time_zone: p.use_profile_time_zone,
        start_at: start_at.unwrap_or(None),
        end_at: end_at.unwrap_or(None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::ActionRegistry;
    use crate::model::{Format, parse_journey};

    fn check(yaml: &str) -> Result<Journey, Problems> {
        let def = parse_journey(yaml.as_bytes(), Format::Yaml).unwrap();
        let settings = Settings::default();
        let catalog = Catalog {
            actions: ActionRegistry::with_builtins(),
            ..Default::default()
        };
        compile(
            &def,
            "j",
            1,
            &ExprEngine::new(&settings.expr),
            &catalog,
            &settings,
        )
    }

    #[test]
    fn a_loop_through_a_wait_is_allowed() {
        let j = check(
            "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: action, action: log, next: w}\n  w: {type: wait, duration: P1D, next: a}\n",
        )
        .unwrap();
        assert_eq!(j.nodes.len(), 2);
        assert_eq!(j.nodes[j.start].id, "a");
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let problems = check(
            "entry: {type: event, event: e, when: 'event.x >'}\nstart: a\nnodes:\n  a: {type: wait, duration: P2X, next: b}\n  b: {type: split, branches: [{weight: -1, next: zz}]}\n",
        )
        .unwrap_err();
        let paths: Vec<&str> = problems.0.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"entry.when"), "{problems}");
        assert!(paths.contains(&"nodes.a.duration"), "{problems}");
        assert!(paths.contains(&"nodes.b.branches"), "{problems}");
    }
}

//! `reaction`: wait for one of several later events of the same profile, each with its own
//! path, with a timeout path. The event that matched is kept as `events.<type>`.

use jiff::Span;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Activity, Outcome, StepCx};
use crate::compile::{Cx, NodeRef};
use crate::expr::Expr;
use crate::expr::time::add_span;
use crate::model::Event;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReactionDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The events to react to, tried in order.
    pub events: Vec<ReactionEventDef>,
    /// How long to wait (ISO-8601 duration); without it, until the journey's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Where to go when the timeout passes; without it the instance ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReactionEventDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The event type.
    pub event: String,
    /// An extra condition; the arriving event is `events.<type>` in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug)]
pub struct Awaited {
    pub event_type: String,
    pub when: Option<Expr>,
    pub next: Option<NodeRef>,
}

#[derive(Debug)]
pub struct Reaction {
    pub events: Vec<Awaited>,
    pub timeout: Option<Span>,
    pub on_timeout: Option<NodeRef>,
}

impl ReactionDef {
    pub fn compile(&self, path: &str, cx: &mut Cx) -> Option<Reaction> {
        if self.events.is_empty() {
            cx.problem(
                format!("{path}.events"),
                "a reaction needs at least one event",
            );
        }
        let mut ok = true;
        let mut events = Vec::with_capacity(self.events.len());
        for (i, e) in self.events.iter().enumerate() {
            if e.event.trim().is_empty() {
                cx.problem(
                    format!("{path}.events[{i}].event"),
                    "an event type is required",
                );
                ok = false;
            }
            let when = match &e.when {
                Some(src) => match cx.expr(&format!("{path}.events[{i}].when"), src) {
                    Some(x) => Some(x),
                    None => {
                        ok = false;
                        None
                    }
                },
                None => None,
            };
            let Some(next) = cx.opt_target(&format!("{path}.events[{i}].next"), e.next.as_ref())
            else {
                ok = false;
                continue;
            };
            events.push(Awaited {
                event_type: e.event.clone(),
                when,
                next,
            });
        }
        let timeout = match &self.timeout {
            Some(t) => Some(cx.duration(&format!("{path}.timeout"), t)?),
            None => None,
        };
        if self.on_timeout.is_some() && self.timeout.is_none() {
            cx.problem(
                format!("{path}.on_timeout"),
                "a timeout path needs a timeout duration",
            );
            ok = false;
        }
        let on_timeout = cx.opt_target(&format!("{path}.on_timeout"), self.on_timeout.as_ref());
        let (Some(on_timeout), true) = (on_timeout, ok) else {
            return None;
        };
        Some(Reaction {
            events,
            timeout,
            on_timeout,
        })
    }
}

impl Activity for Reaction {
    fn successors(&self) -> Vec<NodeRef> {
        self.events
            .iter()
            .filter_map(|e| e.next)
            .chain(self.on_timeout)
            .collect()
    }

    fn pauses(&self) -> bool {
        true
    }

    async fn enter(&self, cx: &mut StepCx<'_>) -> Outcome {
        let wake_at = match self.timeout {
            Some(span) => match add_span(cx.now, span, &cx.tz) {
                Ok(at) => Some(at),
                Err(e) => return Outcome::fail("EXPR_EVAL", e, None),
            },
            None => None,
        };
        let types: Vec<&str> = self.events.iter().map(|e| e.event_type.as_str()).collect();
        Outcome::pause(wake_at).with_detail(json!({
            "events": types,
            "until": wake_at.map(|t| t.to_string()),
        }))
    }

    async fn on_timer(&self, _cx: &mut StepCx<'_>) -> Outcome {
        Outcome::goto(self.on_timeout).with_detail(json!({"timeout": true}))
    }

    fn on_event(&self, cx: &mut StepCx<'_>, event: &Event) -> Option<Outcome> {
        for (i, awaited) in self.events.iter().enumerate() {
            if awaited.event_type != event.event_type {
                continue;
            }
            let previous = cx
                .instance
                .data
                .events
                .insert(event.event_type.clone(), event.to_json());
            let matched = match &awaited.when {
                None => Ok(true),
                Some(expr) => cx.eval_bool(expr),
            };
            match matched {
                Ok(true) => {
                    return Some(Outcome::goto(awaited.next).with_detail(json!({
                        "event": event.event_type,
                        "event_id": event.id,
                        "branch": i,
                    })));
                }
                Ok(false) => {}
                Err(e) => {
                    return Some(Outcome::fail(
                        "EXPR_EVAL",
                        format!("events[{i}].when: {e}"),
                        None,
                    ));
                }
            }
            // Not this branch: the collected events stay as they were.
            match previous {
                Some(p) => cx.instance.data.events.insert(event.event_type.clone(), p),
                None => cx.instance.data.events.remove(&event.event_type),
            };
        }
        None
    }
}

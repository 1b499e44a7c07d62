//! `reaction`: wait for one of several later events of the same profile, each with its own
//! path, with a timeout path. The event that matched is kept as `events.<type>`.

use jiff::Span;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Activity, Outcome, StepCx};
use super::{Cx, NodeRef};
use crate::code::Code;
use crate::expr::Expr;
use crate::expr::time::add_span;
use crate::model::Event;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionDef {
    /// A name for people: shown on the canvas and in reports instead of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Notes for people; the engine does not read them.
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionEventDef {
    /// A name for people: shown on the branch's connection and in reports.
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
                Err(e) => return Outcome::fail(Code::ExprEval, e, None),
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
        if !self.awaits(&event.event_type) {
            return None;
        }
        // The arriving event is `events.<type>` in the conditions; it stays there only
        // when a branch takes it.
        let previous = cx
            .instance
            .data
            .events
            .insert(event.event_type.clone(), event.to_json());
        match self.branch(&event.event_type, |expr| cx.eval_bool(expr)) {
            Some(Ok(i)) => Some(Outcome::goto(self.events[i].next).with_detail(json!({
                "event": event.event_type,
                "event_id": event.id,
                "branch": i,
            }))),
            Some(Err((i, e))) => Some(Outcome::fail(
                Code::ExprEval,
                format!("events[{i}].when: {e}"),
                None,
            )),
            None => {
                match previous {
                    Some(p) => cx.instance.data.events.insert(event.event_type.clone(), p),
                    None => cx.instance.data.events.remove(&event.event_type),
                };
                None
            }
        }
    }
}

impl Reaction {
    /// Whether an event of this type may wake the instance (before any condition).
    pub fn awaits(&self, event_type: &str) -> bool {
        self.events.iter().any(|e| e.event_type == event_type)
    }

    /// The first awaited event of type `event_type` whose condition `when` holds, tried
    /// in order: its index, or the index and error of the first condition that fails
    /// to evaluate. `when` evaluates a condition with the arriving event in scope.
    pub fn branch<E>(
        &self,
        event_type: &str,
        mut when: impl FnMut(&Expr) -> Result<bool, E>,
    ) -> Option<Result<usize, (usize, E)>> {
        for (i, awaited) in self.events.iter().enumerate() {
            if awaited.event_type != event_type {
                continue;
            }
            match awaited.when.as_ref().map_or(Ok(true), &mut when) {
                Ok(true) => return Some(Ok(i)),
                Ok(false) => {}
                Err(e) => return Some(Err((i, e))),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::expr::{EvalEnv, ExprEngine, ScopeData};
    use crate::settings::ExprLimits;

    /// `order` when its amount passes 100, `cancel`, `order` with a condition that fails
    /// to evaluate, `order` without a condition: the first `keep` of them.
    fn reaction(ee: &ExprEngine, keep: usize) -> Reaction {
        let awaited = |event_type: &str, when: Option<&str>| Awaited {
            event_type: event_type.into(),
            when: when.map(|src| ee.compile(src).expect("compiles")),
            next: None,
        };
        let mut events = vec![
            awaited("order", Some("events.order.data.amount > 100")),
            awaited("cancel", None),
            awaited("order", Some("events.order.data.amount.nope()")),
            awaited("order", None),
        ];
        events.truncate(keep);
        Reaction {
            events,
            timeout: None,
            on_timeout: None,
        }
    }

    /// The branch an event of `event_type` whose data is `data` takes (`Err`: the index
    /// of the condition that failed).
    fn branch_for(keep: usize, event_type: &str, data: Value) -> Option<Result<usize, usize>> {
        let mut ee = ExprEngine::new(&ExprLimits::default());
        let r = reaction(&ee, keep);
        let events = json!({ event_type: {"type": event_type, "data": data} });
        let scope = ScopeData {
            events: Some(&events),
            ..Default::default()
        };
        let env = EvalEnv {
            now: jiff::Timestamp::UNIX_EPOCH,
            tz: jiff::tz::TimeZone::UTC,
            call: None,
        };
        r.branch(event_type, |expr| ee.eval_bool(expr, &scope, &env))
            .map(|b| b.map_err(|(i, _)| i))
    }

    #[test]
    fn awaited_events_are_tried_in_order_and_a_failing_condition_stops_the_search() {
        let r = reaction(&ExprEngine::new(&ExprLimits::default()), 4);
        assert!(r.awaits("order") && r.awaits("cancel") && !r.awaits("visit"));
        assert_eq!(branch_for(4, "order", json!({"amount": 150})), Some(Ok(0)));
        assert_eq!(branch_for(4, "cancel", json!({})), Some(Ok(1)));
        // The first condition is false; the third fails to evaluate before the fourth,
        // which has none, is reached.
        assert_eq!(branch_for(4, "order", json!({"amount": 50})), Some(Err(2)));
        assert_eq!(branch_for(2, "order", json!({"amount": 50})), None);
        assert_eq!(branch_for(4, "visit", json!({})), None);
    }
}

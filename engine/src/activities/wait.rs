//! `wait`: pause for a duration, until a date-time, or until a computed time, read in the
//! journey's (or the profile's) time zone.

use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Activity, Outcome, StepCx};
use super::{Cx, NodeRef};
use crate::code::Code;
use crate::expr::Expr;
use crate::expr::time::{add_span, parse_datetime};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitDef {
    /// A name for people: shown on the canvas and in reports instead of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Notes for people; the engine does not read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An ISO-8601 duration (`P2D`, `PT30M`), calendar-aware in the zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// A date-time: RFC 3339 with an offset, or civil (`2026-12-01T09:00`) in the zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// An expression giving a date-time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_expr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Where to go when `until_expr` fails; without it the instance fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
}

#[derive(Debug)]
pub enum WaitFor {
    Duration(Span),
    /// Kept as text: a civil date-time is read in the instance's zone.
    Until(String),
    UntilExpr(Expr),
}

#[derive(Debug)]
pub struct Wait {
    pub wait_for: WaitFor,
    pub next: Option<NodeRef>,
    pub on_error: Option<NodeRef>,
}

impl WaitDef {
    pub fn compile(&self, path: &str, cx: &mut Cx) -> Option<Wait> {
        let given = [
            self.duration.is_some(),
            self.until.is_some(),
            self.until_expr.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            cx.problem(
                path,
                "a wait needs exactly one of duration, until or until_expr",
            );
            return None;
        }
        let wait_for = if let Some(d) = &self.duration {
            WaitFor::Duration(cx.duration(&format!("{path}.duration"), d)?)
        } else if let Some(u) = &self.until {
            if let Err(msg) = parse_datetime(u, &jiff::tz::TimeZone::UTC) {
                cx.problem(format!("{path}.until"), msg);
                return None;
            }
            WaitFor::Until(u.clone())
        } else {
            let src = self.until_expr.as_deref().unwrap_or_default();
            WaitFor::UntilExpr(cx.expr(&format!("{path}.until_expr"), src)?)
        };
        let next = cx.opt_target(&format!("{path}.next"), self.next.as_ref());
        let on_error = cx.opt_target(&format!("{path}.on_error"), self.on_error.as_ref());
        let (Some(next), Some(on_error)) = (next, on_error) else {
            return None;
        };
        Some(Wait {
            wait_for,
            next,
            on_error,
        })
    }
}

impl Wait {
    fn wake_at(&self, cx: &mut StepCx<'_>) -> Result<Timestamp, String> {
        match &self.wait_for {
            WaitFor::Duration(span) => add_span(cx.now, *span, &cx.tz),
            WaitFor::Until(text) => parse_datetime(text, &cx.tz),
            WaitFor::UntilExpr(expr) => cx.eval_datetime(expr).map_err(|e| e.to_string()),
        }
    }
}

impl Activity for Wait {
    fn successors(&self) -> Vec<NodeRef> {
        self.next.into_iter().chain(self.on_error).collect()
    }

    fn pauses(&self) -> bool {
        true
    }

    async fn enter(&self, cx: &mut StepCx<'_>) -> Outcome {
        match self.wake_at(cx) {
            // A time already past lets the instance through at once.
            Ok(at) if at <= cx.now => Outcome::goto(self.next)
                .with_detail(json!({"until": at.to_string(), "already_past": true})),
            Ok(at) => Outcome::pause(Some(at)).with_detail(json!({"until": at.to_string()})),
            Err(e) => Outcome::fail(Code::ExprEval, e, self.on_error),
        }
    }

    async fn on_timer(&self, _cx: &mut StepCx<'_>) -> Outcome {
        Outcome::goto(self.next)
    }
}

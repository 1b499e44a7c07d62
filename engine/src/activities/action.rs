//! `action`: call an action with parameters computed from expressions, with a timeout, a
//! retry policy on transient failures and an error path ([`CallPolicy`]). The result is
//! kept as `actions.<node id>`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::call::{CallPolicy, RetryDef};
use super::{Activity, Outcome, StepCx};
use super::{Cx, NodeRef, PluginCall};
use crate::actions::CallDone;
use crate::code::Code;
use crate::expr::Expr;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionDef {
    /// A name for people: shown on the canvas and in reports instead of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Notes for people; the engine does not read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The action's name (`log`, or a plugin's).
    pub action: String,
    /// Parameters: a string is a rhai expression; any other JSON value is taken as it is.
    #[serde(default)]
    pub params: IndexMap<String, Value>,
    /// Longest time one call may take (hours, minutes, seconds); default from settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Where to go when the call fails for good; without it the instance fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
}

#[derive(Debug)]
pub enum Param {
    Expr(Expr),
    Literal(Value),
}

#[derive(Debug)]
pub struct Action {
    /// The pinned action, `name@version`.
    pub action: String,
    pub params: Vec<(String, Param)>,
    pub call: CallPolicy,
}

impl ActionDef {
    pub fn compile(&self, path: &str, cx: &mut Cx) -> Option<Action> {
        let mut ok = true;
        // Pin the version now: a published journey keeps calling the version it was
        // validated against.
        let pinned = match cx.catalog.actions.resolve(&self.action) {
            Some(entry) => {
                if let Some(schema) = &entry.params_schema {
                    for (name, message) in schema.check_definition(&self.params) {
                        let at = if name.is_empty() {
                            format!("{path}.params")
                        } else {
                            format!("{path}.params.{name}")
                        };
                        cx.problem(at, message);
                        ok = false;
                    }
                }
                cx.call(
                    &format!("{path}.action"),
                    PluginCall::Action {
                        name: entry.name.clone(),
                        version: entry.version.clone(),
                    },
                );
                entry.pinned()
            }
            None => {
                let known: Vec<String> = cx
                    .catalog
                    .actions
                    .names()
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                cx.problem(
                    format!("{path}.action"),
                    format!(
                        "unknown action {:?} (known: {})",
                        self.action,
                        known.join(", ")
                    ),
                );
                ok = false;
                String::new()
            }
        };
        let mut params = Vec::with_capacity(self.params.len());
        for (name, value) in &self.params {
            match value {
                Value::String(src) => match cx.expr(&format!("{path}.params.{name}"), src) {
                    Some(e) => params.push((name.clone(), Param::Expr(e))),
                    None => ok = false,
                },
                other => params.push((name.clone(), Param::Literal(other.clone()))),
            }
        }
        let call = CallPolicy::compile(
            path,
            cx,
            self.timeout.as_deref(),
            self.retry.as_ref(),
            self.next.as_ref(),
            self.on_error.as_ref(),
        );
        let (Some(call), true) = (call, ok) else {
            return None;
        };
        Some(Action {
            action: pinned,
            params,
            call,
        })
    }
}

impl Action {
    fn attempt(&self, cx: &mut StepCx<'_>) -> Outcome {
        let mut params = Map::new();
        for (name, param) in &self.params {
            let value = match param {
                Param::Literal(v) => v.clone(),
                Param::Expr(e) => match cx.eval_json(e) {
                    Ok(v) => v,
                    Err(err) => {
                        return Outcome::fail(
                            Code::ExprEval,
                            format!("params.{name}: {err}"),
                            self.call.on_error,
                        );
                    }
                },
            };
            params.insert(name.clone(), value);
        }
        let params = Value::Object(params);
        let Some(entry) = cx.actions.resolve(&self.action) else {
            return Outcome::fail(
                Code::ActionUnknown,
                format!("action {:?} is not installed", self.action),
                self.call.on_error,
            );
        };
        if let Some(schema) = &entry.params_schema
            && let Err(e) = schema.validate(&params)
        {
            return Outcome::fail(
                Code::ActionInvalidInput,
                format!("params do not match {}'s schema: {e}", self.action),
                self.call.on_error,
            )
            .with_detail(json!({"action": self.action, "params": params}));
        }
        self.call
            .send(cx, &self.action, entry.executor.clone(), params)
    }

    fn read_result(&self, cx: &mut StepCx<'_>, done: CallDone) -> Outcome {
        let pinned = cx
            .actions
            .resolve(&self.action)
            .map_or_else(|| self.action.clone(), |e| e.pinned());
        self.call.read_result(cx, done, &self.action, &pinned)
    }
}

impl Activity for Action {
    fn successors(&self) -> Vec<NodeRef> {
        self.call.successors()
    }

    async fn enter(&self, cx: &mut StepCx<'_>) -> Outcome {
        cx.instance.data.attempt = 1;
        self.attempt(cx)
    }

    async fn on_timer(&self, cx: &mut StepCx<'_>) -> Outcome {
        // A retry (`attempt` was advanced when the previous attempt failed), or the same
        // attempt again when its answer was lost in a crash: the same idempotency key.
        self.attempt(cx)
    }

    fn on_result(&self, cx: &mut StepCx<'_>, done: CallDone) -> Outcome {
        self.read_result(cx, done)
    }
}

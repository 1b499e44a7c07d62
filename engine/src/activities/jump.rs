//! `jump`: make the profile enter another live event journey, with mapped data, then go
//! on. The target's entry rules apply; when it cannot be entered the node fails with the
//! reason (on its error path, if any).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Activity, Move, Outcome, StepCx};
use super::{Cx, NodeRef};
use crate::code::Code;
use crate::expr::Expr;
use crate::ids::check_id;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JumpDef {
    /// A name for people: shown on the canvas and in reports instead of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Notes for people; the engine does not read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The journey to enter; it must be live and have an event entry.
    pub journey: String,
    /// Fields of the target's entry event `data`, each a rhai expression.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub data: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
}

#[derive(Debug)]
pub struct Jump {
    pub journey: String,
    pub data: Vec<(String, Expr)>,
    pub next: Option<NodeRef>,
    pub on_error: Option<NodeRef>,
}

impl JumpDef {
    pub fn compile(&self, path: &str, cx: &mut Cx) -> Option<Jump> {
        let mut ok = true;
        if let Err(msg) = check_id(&self.journey) {
            cx.problem(format!("{path}.journey"), msg);
            ok = false;
        }
        let mut data = Vec::with_capacity(self.data.len());
        for (field, src) in &self.data {
            match cx.expr(&format!("{path}.data.{field}"), src) {
                Some(e) => data.push((field.clone(), e)),
                None => ok = false,
            }
        }
        let next = cx.opt_target(&format!("{path}.next"), self.next.as_ref());
        let on_error = cx.opt_target(&format!("{path}.on_error"), self.on_error.as_ref());
        let (Some(next), Some(on_error), true) = (next, on_error, ok) else {
            return None;
        };
        Some(Jump {
            journey: self.journey.clone(),
            data,
            next,
            on_error,
        })
    }
}

impl Activity for Jump {
    fn successors(&self) -> Vec<NodeRef> {
        self.next.into_iter().chain(self.on_error).collect()
    }

    async fn enter(&self, cx: &mut StepCx<'_>) -> Outcome {
        let mut data = Map::new();
        for (field, expr) in &self.data {
            match cx.eval_json(expr) {
                Ok(v) => {
                    data.insert(field.clone(), v);
                }
                Err(e) => {
                    return Outcome::fail(
                        Code::ExprEval,
                        format!("data.{field}: {e}"),
                        self.on_error,
                    );
                }
            }
        }
        Outcome {
            next: Move::Jump {
                journey: self.journey.clone(),
                data: Value::Object(data),
                next: self.next,
                on_error: self.on_error,
            },
            detail: None,
            counted: None,
        }
    }
}

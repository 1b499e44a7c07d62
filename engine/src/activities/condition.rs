//! `condition`: ordered branches of expressions, the first that holds wins, plus an
//! `otherwise` path. Time-of-day, day-of-week and date conditions are expressions too
//! (`in_time_window(now(), "09:00", "18:00")`).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Activity, Outcome, StepCx};
use super::{Cx, NodeRef};
use crate::code::Code;
use crate::expr::Expr;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionDef {
    /// A name for people: shown on the canvas and in reports instead of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Notes for people; the engine does not read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tried in order; the first whose `when` is true is taken.
    pub branches: Vec<BranchDef>,
    /// Where to go when no branch holds; without it the instance ends there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otherwise: Option<String>,
    /// Where to go when an expression fails; without it the instance fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchDef {
    /// A name for people: shown on the branch's connection and in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A rhai expression that gives true or false.
    pub when: String,
    /// The node to go to; without it the instance ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug)]
pub struct Branch {
    /// A name for people: shown on the canvas and in reports instead of the id.
    pub label: Option<String>,
    pub when: Expr,
    pub next: Option<NodeRef>,
}

#[derive(Debug)]
pub struct Condition {
    pub branches: Vec<Branch>,
    pub otherwise: Option<NodeRef>,
    pub on_error: Option<NodeRef>,
}

impl ConditionDef {
    pub fn compile(&self, path: &str, cx: &mut Cx) -> Option<Condition> {
        if self.branches.is_empty() {
            cx.problem(
                format!("{path}.branches"),
                "a condition needs at least one branch",
            );
        }
        let mut branches = Vec::with_capacity(self.branches.len());
        let mut ok = true;
        for (i, b) in self.branches.iter().enumerate() {
            let when = cx.expr(&format!("{path}.branches[{i}].when"), &b.when);
            let next = b
                .next
                .as_ref()
                .map(|n| cx.target(&format!("{path}.branches[{i}].next"), n));
            match (when, next) {
                (Some(when), Some(Some(next))) => branches.push(Branch {
                    label: b.label.clone(),
                    when,
                    next: Some(next),
                }),
                (Some(when), None) => branches.push(Branch {
                    label: b.label.clone(),
                    when,
                    next: None,
                }),
                _ => ok = false,
            }
        }
        let otherwise = cx.opt_target(&format!("{path}.otherwise"), self.otherwise.as_ref());
        let on_error = cx.opt_target(&format!("{path}.on_error"), self.on_error.as_ref());
        let (Some(otherwise), Some(on_error), true) = (otherwise, on_error, ok) else {
            return None;
        };
        Some(Condition {
            branches,
            otherwise,
            on_error,
        })
    }
}

impl Activity for Condition {
    fn successors(&self) -> Vec<NodeRef> {
        self.branches
            .iter()
            .filter_map(|b| b.next)
            .chain(self.otherwise)
            .chain(self.on_error)
            .collect()
    }

    async fn enter(&self, cx: &mut StepCx<'_>) -> Outcome {
        for (i, branch) in self.branches.iter().enumerate() {
            match cx.eval_bool(&branch.when) {
                Ok(true) => {
                    return Outcome::goto(branch.next).with_detail(json!({
                        "branch": i,
                        "label": branch.label,
                        "when": branch.when.excerpt(),
                    }));
                }
                Ok(false) => {}
                Err(e) => {
                    return Outcome::fail(
                        Code::ExprEval,
                        format!("branches[{i}].when: {e}"),
                        self.on_error,
                    );
                }
            }
        }
        Outcome::goto(self.otherwise).with_detail(json!({"branch": "otherwise"}))
    }
}

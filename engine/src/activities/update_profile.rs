//! `update_profile`: set profile attributes from expressions. Later nodes of the same
//! instance see the new values at once.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Activity, Outcome, StepCx};
use super::{Cx, NodeRef};
use crate::code::Code;
use crate::expr::Expr;
use crate::ids::check_id;
use crate::model::merge_patch;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileDef {
    /// A name for people: shown on the canvas and in reports instead of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Notes for people; the engine does not read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Attribute path (`tier`, `address.city`) to a rhai expression; a `()` result removes
    /// the attribute.
    pub set: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
}

#[derive(Debug)]
pub struct UpdateProfile {
    pub set: Vec<(Vec<String>, Expr)>,
    pub next: Option<NodeRef>,
    pub on_error: Option<NodeRef>,
}

impl UpdateProfileDef {
    pub fn compile(&self, path: &str, cx: &mut Cx) -> Option<UpdateProfile> {
        let mut ok = true;
        if self.set.is_empty() {
            cx.problem(format!("{path}.set"), "set at least one attribute");
            ok = false;
        }
        let mut set = Vec::with_capacity(self.set.len());
        for (field, src) in &self.set {
            let fpath = format!("{path}.set.{field}");
            let segments: Vec<String> = field.split('.').map(str::to_string).collect();
            if let Some(bad) = segments.iter().find(|s| check_id(s).is_err()) {
                cx.problem(&fpath, format!("{bad:?} is not a valid attribute name"));
                ok = false;
            } else if segments[0] == "id" || segments[0] == "timezone" {
                cx.problem(
                    &fpath,
                    "`id` and `timezone` are not attributes and cannot be set here",
                );
                ok = false;
            }
            match cx.expr(&fpath, src) {
                Some(e) => set.push((segments, e)),
                None => ok = false,
            }
        }
        let next = cx.opt_target(&format!("{path}.next"), self.next.as_ref());
        let on_error = cx.opt_target(&format!("{path}.on_error"), self.on_error.as_ref());
        let (Some(next), Some(on_error), true) = (next, on_error, ok) else {
            return None;
        };
        Some(UpdateProfile {
            set,
            next,
            on_error,
        })
    }
}

impl Activity for UpdateProfile {
    fn successors(&self) -> Vec<NodeRef> {
        self.next.into_iter().chain(self.on_error).collect()
    }

    async fn enter(&self, cx: &mut StepCx<'_>) -> Outcome {
        let mut patch = Value::Object(Map::new());
        for (segments, expr) in &self.set {
            let value = match cx.eval_json(expr) {
                Ok(v) => v,
                Err(e) => {
                    return Outcome::fail(
                        Code::ExprEval,
                        format!("set.{}: {e}", segments.join(".")),
                        self.on_error,
                    );
                }
            };
            // Build the nested object for a dotted path.
            let mut nested = value;
            for seg in segments.iter().rev() {
                nested = json!({ seg.as_str(): nested });
            }
            merge_into_patch(&mut patch, nested);
        }
        merge_patch(cx.profile, &patch);
        cx.profile_patches.push(patch.clone());
        Outcome::goto(self.next).with_detail(json!({"set": patch}))
    }
}

/// Combines two merge patches into one (objects merged, other values replaced, `null`
/// kept as a removal).
fn merge_into_patch(acc: &mut Value, patch: Value) {
    match (acc, patch) {
        (Value::Object(a), Value::Object(p)) => {
            for (k, v) in p {
                match a.get_mut(&k) {
                    Some(existing @ Value::Object(_)) if v.is_object() => {
                        merge_into_patch(existing, v)
                    }
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (acc, patch) => *acc = patch,
    }
}

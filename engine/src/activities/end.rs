//! `end`: the instance completes.

use serde::{Deserialize, Serialize};

use super::{Activity, Outcome, StepCx};
use super::{Cx, NodeRef};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndDef {
    /// A name for people: shown on the canvas and in reports instead of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Notes for people; the engine does not read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl EndDef {
    pub fn compile(&self, _path: &str, _cx: &mut Cx) -> Option<End> {
        Some(End)
    }
}

#[derive(Debug)]
pub struct End;

impl Activity for End {
    fn successors(&self) -> Vec<NodeRef> {
        Vec::new()
    }

    async fn enter(&self, _cx: &mut StepCx<'_>) -> Outcome {
        Outcome::goto(None)
    }
}

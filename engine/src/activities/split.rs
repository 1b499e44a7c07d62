//! `split`: weighted paths for percentage splits and experiments. Sticky: a profile
//! always gets the same branch for one journey version (a hash, not a random draw), so
//! re-entries and reports agree.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Activity, Outcome, StepCx};
use crate::compile::{Cx, NodeRef};
use crate::ids::stable_hash;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SplitDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub branches: Vec<SplitBranchDef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SplitBranchDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A positive share; shares need not add up to 100.
    pub weight: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug)]
pub struct Split {
    /// (label, cumulative upper bound in [0, 1], next).
    branches: Vec<(Option<String>, f64, Option<NodeRef>)>,
}

impl SplitDef {
    pub fn compile(&self, path: &str, cx: &mut Cx) -> Option<Split> {
        if self.branches.len() < 2 {
            cx.problem(
                format!("{path}.branches"),
                "a split needs at least two branches",
            );
            return None;
        }
        let mut ok = true;
        let mut total = 0.0;
        for (i, b) in self.branches.iter().enumerate() {
            if !(b.weight.is_finite() && b.weight > 0.0) {
                cx.problem(
                    format!("{path}.branches[{i}].weight"),
                    format!("{} is not a positive weight", b.weight),
                );
                ok = false;
            }
            total += b.weight;
        }
        let mut branches = Vec::with_capacity(self.branches.len());
        let mut acc = 0.0;
        for (i, b) in self.branches.iter().enumerate() {
            let next = match &b.next {
                Some(n) => match cx.target(&format!("{path}.branches[{i}].next"), n) {
                    Some(r) => Some(r),
                    None => {
                        ok = false;
                        None
                    }
                },
                None => None,
            };
            acc += b.weight / total;
            branches.push((b.label.clone(), acc, next));
        }
        if let Some(last) = branches.last_mut() {
            last.1 = 1.0;
        }
        ok.then_some(Split { branches })
    }
}

impl Split {
    /// The branch a profile gets: the same for the same inputs, spread evenly by weight.
    pub fn pick(&self, journey_id: &str, version: u32, node_id: &str, profile_id: &str) -> usize {
        let version = version.to_string();
        let h = stable_hash(&[journey_id, &version, node_id, profile_id]);
        // 53 high bits as a fraction in [0, 1).
        let point = (h >> 11) as f64 / (1u64 << 53) as f64;
        self.branches
            .iter()
            .position(|(_, upper, _)| point < *upper)
            .unwrap_or(self.branches.len() - 1)
    }
}

impl Activity for Split {
    fn successors(&self) -> Vec<NodeRef> {
        self.branches.iter().filter_map(|b| b.2).collect()
    }

    async fn enter(&self, cx: &mut StepCx<'_>) -> Outcome {
        let i = self.pick(
            &cx.journey.id,
            cx.journey.version,
            cx.node_id,
            &cx.instance.profile_id,
        );
        let (label, _, next) = &self.branches[i];
        Outcome::goto(*next).with_detail(json!({"branch": i, "label": label}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_sticky_and_follow_the_weights() {
        let split = Split {
            branches: vec![(None, 0.2, None), (None, 1.0, None)],
        };
        let mut counts = [0usize; 2];
        for p in 0..10_000 {
            let profile = format!("p{p}");
            let i = split.pick("j", 1, "ab", &profile);
            assert_eq!(i, split.pick("j", 1, "ab", &profile));
            counts[i] += 1;
        }
        assert!((1_700..2_300).contains(&counts[0]), "{counts:?}");
    }
}

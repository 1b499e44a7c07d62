//! Graph rules: every node reachable from the start, no loop without a pause, and no
//! path without a pause longer than one activation may go.

use cranelift_entity::{EntitySet, PrimaryMap, SecondaryMap};

use super::{Node, NodeRef};
use crate::model::Problems;

/// Checks reachability, loops and the longest run of steps without a pause; adds a
/// problem for each fault. `max_steps` is `max_steps_per_activation`.
pub(super) fn check(
    nodes: &PrimaryMap<NodeRef, Node>,
    start: NodeRef,
    max_steps: u32,
    problems: &mut Problems,
) {
    // Reachability: a plain traversal from the start.
    let mut seen = EntitySet::<NodeRef>::new();
    let mut stack = vec![start];
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            stack.extend(nodes[n].kind.successors());
        }
    }
    for (r, node) in nodes.iter() {
        if !seen.contains(r) {
            problems.push(
                format!("nodes.{}", node.id),
                format!(
                    "unreachable: no path leads here from the start node {:?}",
                    nodes[start].id
                ),
            );
        }
    }

    // Loops: a cycle must pass through a node that pauses (wait, reaction), or a profile
    // could spin forever in one step. Depth-first search over the edges that leave
    // non-pausing nodes; a back edge closes a loop without a pause.
    #[derive(Clone, Copy, Default, PartialEq)]
    enum Mark {
        #[default]
        New,
        OnPath,
        Done,
    }
    let mut mark = SecondaryMap::<NodeRef, Mark>::with_capacity(nodes.len());
    let mut reported = EntitySet::<NodeRef>::new();
    for root in nodes.keys() {
        if mark[root] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, successors, next successor index).
        let mut path: Vec<(NodeRef, Vec<NodeRef>, usize)> = Vec::new();
        mark[root] = Mark::OnPath;
        path.push((root, edges(nodes, root), 0));
        while let Some((node, succ, i)) = path.last_mut() {
            if let Some(&next) = succ.get(*i) {
                *i += 1;
                match mark[next] {
                    Mark::New => {
                        mark[next] = Mark::OnPath;
                        let e = edges(nodes, next);
                        path.push((next, e, 0));
                    }
                    Mark::OnPath => {
                        if reported.insert(next) {
                            let from = path.iter().position(|(n, _, _)| *n == next).unwrap_or(0);
                            let mut names: Vec<&str> = path[from..]
                                .iter()
                                .map(|(n, _, _)| nodes[*n].id.as_str())
                                .collect();
                            names.push(nodes[next].id.as_str());
                            problems.push(
                                format!("nodes.{}", nodes[next].id),
                                format!(
                                    "loop with no wait or reaction on it: {} (add a wait or a reaction to the loop)",
                                    names.join(" -> ")
                                ),
                            );
                        }
                    }
                    Mark::Done => {}
                }
            } else {
                mark[*node] = Mark::Done;
                path.pop();
            }
        }
    }
    if reported.is_empty() {
        check_activation_length(nodes, start, max_steps, problems);
    }
}

/// An activation (an entry, a timer, an event) steps an instance from node to node until
/// it reaches a node that pauses, and fails with `STEP_LIMIT` once it would pass more
/// than `max_steps` nodes. Reports the longest such run when it is longer, at the node
/// where an instance would fail, so a journey that validates can run. Called only on a
/// graph without loops that lack a pause (the runs are then finite).
fn check_activation_length(
    nodes: &PrimaryMap<NodeRef, Node>,
    start: NodeRef,
    max_steps: u32,
    problems: &mut Problems,
) {
    // after[n]: the most further steps once an instance has entered n in an activation
    // (0 for a node that pauses), with the successor that gives it. Post-order over the
    // edges that leave nodes that do not pause, which form a DAG here.
    const UNSET: u32 = u32::MAX;
    let mut after = SecondaryMap::<NodeRef, (u32, Option<NodeRef>)>::with_default((UNSET, None));
    for root in nodes.keys() {
        if after[root].0 != UNSET {
            continue;
        }
        let mut stack = vec![(root, false)];
        while let Some((n, expanded)) = stack.pop() {
            if after[n].0 != UNSET {
                continue;
            }
            let succ = edges(nodes, n);
            if expanded {
                let best = succ
                    .iter()
                    .map(|&m| (after[m].0.saturating_add(1), Some(m)))
                    .max_by_key(|(len, _)| *len)
                    .unwrap_or((0, None));
                after[n] = best;
            } else {
                stack.push((n, true));
                stack.extend(
                    succ.iter()
                        .filter(|&&m| after[m].0 == UNSET)
                        .map(|&m| (m, false)),
                );
            }
        }
    }
    // Where an activation may begin: a woken node that pauses resumes to one of its
    // successors; any other node (the start, an action retrying) begins its own run.
    let (steps, origin, first) = nodes
        .keys()
        .map(|n| {
            if nodes[n].kind.pauses() {
                nodes[n]
                    .kind
                    .successors()
                    .into_iter()
                    .map(|m| (after[m].0.saturating_add(2), n, Some(m)))
                    .max_by_key(|(len, _, _)| *len)
                    .unwrap_or((1, n, None))
            } else {
                (after[n].0.saturating_add(1), n, after[n].1)
            }
        })
        .max_by_key(|(len, _, _)| *len)
        .unwrap_or((0, start, None));
    if steps <= max_steps {
        return;
    }
    // Walk the run to the node an instance would fail to enter, and to its end.
    let mut path = vec![origin];
    let mut next = first;
    while let Some(n) = next {
        path.push(n);
        next = if nodes[n].kind.pauses() {
            None
        } else {
            after[n].1
        };
    }
    let fails_at = path[(max_steps as usize).min(path.len() - 1)];
    problems.push(
        format!("nodes.{}", nodes[fails_at].id),
        format!(
            "an activation could pass {steps} nodes without a wait or reaction (from {:?} to {:?}); \
             at most {max_steps} may be passed in one (max_steps_per_activation), so an instance \
             would fail here with STEP_LIMIT: add a wait or a reaction on the way, or raise the setting",
            nodes[origin].id,
            nodes[path[path.len() - 1]].id,
        ),
    );
}

fn edges(nodes: &PrimaryMap<NodeRef, Node>, n: NodeRef) -> Vec<NodeRef> {
    if nodes[n].kind.pauses() {
        Vec::new()
    } else {
        nodes[n].kind.successors()
    }
}

//! Graph rules: every node reachable from the start, no loop without a pause.

use cranelift_entity::{EntitySet, PrimaryMap, SecondaryMap};

use super::{Node, NodeRef};
use crate::model::Problems;

/// Checks reachability and loops; adds a problem for each fault.
pub(super) fn check(nodes: &PrimaryMap<NodeRef, Node>, start: NodeRef, problems: &mut Problems) {
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
}

fn edges(nodes: &PrimaryMap<NodeRef, Node>, n: NodeRef) -> Vec<NodeRef> {
    if nodes[n].kind.pauses() {
        Vec::new()
    } else {
        nodes[n].kind.successors()
    }
}

//! What changed between two journey definitions.
//!
//! A structural comparison of two JSON documents: every leaf (or whole subtree) added,
//! removed or changed, at a dotted path (`nodes.wait_2d.duration`). Node maps are keyed
//! by node id, so a changed node shows under its id whatever its position. This module
//! never interprets what a change means for running instances.

use serde::Serialize;
use serde_json::Value;

/// One difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Dotted path of the value (`properties.timeout`, `nodes.check.branches[0].when`).
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

/// The differences from `a` to `b`, in document order (keys of `a`, then keys only `b`
/// has).
pub fn diff(a: &Value, b: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(String::new(), a, b, &mut out);
    out
}

fn walk(path: String, a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = join(&path, k);
                match y.get(k) {
                    Some(vb) => walk(p, va, vb, out),
                    None => out.push(Change {
                        path: p,
                        change: "removed",
                        from: Some(va.clone()),
                        to: None,
                    }),
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    out.push(Change {
                        path: join(&path, k),
                        change: "added",
                        from: None,
                        to: Some(vb.clone()),
                    });
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = format!("{path}[{i}]");
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => walk(p, va, vb, out),
                    (Some(va), None) => out.push(Change {
                        path: p,
                        change: "removed",
                        from: Some(va.clone()),
                        to: None,
                    }),
                    (None, Some(vb)) => out.push(Change {
                        path: p,
                        change: "added",
                        from: None,
                        to: Some(vb.clone()),
                    }),
                    (None, None) => {}
                }
            }
        }
        _ if a != b => out.push(Change {
            path,
            change: "changed",
            from: Some(a.clone()),
            to: Some(b.clone()),
        }),
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_are_located_by_node_id() {
        let a = json!({"nodes": {"w": {"type": "wait", "duration": "P1D"}, "e": {"type": "end"}},
                       "properties": {"tags": ["a", "b"]}});
        let b = json!({"nodes": {"w": {"type": "wait", "duration": "P2D"}, "x": {"type": "end"}},
                       "properties": {"tags": ["a"]}});
        let changes = diff(&a, &b);
        let summary: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.change))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("nodes.w.duration", "changed"),
                ("nodes.e", "removed"),
                ("nodes.x", "added"),
                ("properties.tags[1]", "removed"),
            ]
        );
        assert_eq!(changes[0].from, Some(json!("P1D")));
        assert_eq!(changes[0].to, Some(json!("P2D")));
        assert!(diff(&a, &a).is_empty());
    }
}

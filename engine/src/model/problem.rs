//! A located problem in some input: a path into the document and a message.

use std::fmt;

use serde::Serialize;

/// One fault in an input, located by a dotted path (`nodes.wait_2d.duration`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where the fault is, as a dotted path with `[i]` for list items; empty for the root.
    pub path: String,
    /// What is wrong, in words an author can act on.
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(path, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn first(&self) -> Option<&Problem> {
        self.0.first()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl From<Problem> for Problems {
    fn from(p: Problem) -> Self {
        Self(vec![p])
    }
}

/// Turns serde_path_to_error's path (`nodes.x.branches[0].next`) into ours; they agree,
/// but for two things it cannot know: a missing field is located at the field itself
/// (`events[1].type`, not `events[1]`), and segments the parser never reached (`?`, in
/// truncated input) are left out. A syntax error keeps serde's " at line L column C" in
/// its message; see [`syntax_location`] for a location when the path says nothing.
pub fn serde_problem<E: fmt::Display>(err: serde_path_to_error::Error<E>) -> Problem {
    let message = err.inner().to_string();
    let mut path = known_path(&err.path().to_string());
    if let Some(field) = missing_field(&message) {
        path = join_path(&path, field);
    }
    Problem::new(path, message)
}

/// A location for a fault in text that did not parse, when no field can be named:
/// `line L column C`.
pub fn syntax_location(line: usize, column: usize) -> String {
    format!("line {line} column {column}")
}

/// The path without the segments the parser never reached (`?`).
fn known_path(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let mut out = String::new();
    for segment in path.split('.') {
        if segment.is_empty() || segment == "?" {
            continue;
        }
        out = join_path(&out, segment);
    }
    out
}

/// The field of serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split_once('`').map(|(field, _)| field)
}

fn join_path(prefix: &str, segment: &str) -> String {
    if prefix.is_empty() {
        segment.to_string()
    } else if segment.starts_with('[') {
        format!("{prefix}{segment}")
    } else {
        format!("{prefix}.{segment}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        #[serde(rename = "type")]
        kind: String,
        n: Option<u32>,
    }

    fn problem<T: serde::de::DeserializeOwned + fmt::Debug>(text: &str) -> Problem {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize::<_, T>(de)
            .map(|v| panic!("parsed {v:?}"))
            .unwrap_or_else(serde_problem)
    }

    #[test]
    fn a_missing_field_is_located_at_the_field() {
        assert_eq!(problem::<Item>(r#"{"n": 1}"#).path, "type");
        assert_eq!(
            problem::<Vec<Item>>(r#"[{"type": "a"}, {"n": 1}]"#).path,
            "[1].type"
        );
        assert_eq!(problem::<Item>(r#"{"type": "a", "n": "x"}"#).path, "n");
    }

    #[test]
    fn segments_never_reached_are_left_out() {
        let p = problem::<Item>(r#"{"type": "a", "n":"#);
        assert!(!p.path.contains('?'), "{p:?}");
        assert!(p.message.contains("line 1 column"), "{p:?}");
    }
}

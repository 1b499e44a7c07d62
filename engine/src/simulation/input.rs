//! What a simulation is given: profiles and a timeline of timed events, read from JSON
//! (an array, or one object per line) with located errors.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Problem, Problems};

/// A profile as a simulation starts with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimProfile {
    pub id: String,
    #[serde(default = "empty_object")]
    pub attributes: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// One event of the timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimEvent {
    /// An RFC 3339 time, or an ISO-8601 duration after the simulation's start (`PT2H`).
    pub at: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub profile_id: String,
    #[serde(default = "empty_object")]
    pub data: Value,
    /// Defaults to `sim-<position in the timeline>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// When a simulation starts unless told: the earliest absolute event time, else this.
pub const DEFAULT_START: &str = "2026-01-01T00:00:00Z";

/// Reads a JSON array or JSON Lines of `T`; errors say `line 3.profile_id` or `[2].at`.
pub fn parse_list<T: for<'de> Deserialize<'de>>(text: &str) -> Result<Vec<T>, Problems> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let de = &mut serde_json::Deserializer::from_str(trimmed);
        return serde_path_to_error::deserialize(de)
            .map_err(|e| Problems::from(crate::model::serde_problem(e)));
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let de = &mut serde_json::Deserializer::from_str(line);
        match serde_path_to_error::deserialize(de) {
            Ok(v) => out.push(v),
            Err(e) => {
                let p = crate::model::serde_problem(e);
                problems.push(Problem {
                    path: match p.path.as_str() {
                        "" => format!("line {}", i + 1),
                        path if path.starts_with('[') => format!("line {}{path}", i + 1),
                        path => format!("line {}.{path}", i + 1),
                    },
                    message: p.message,
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Problems(problems))
    }
}

/// The start time and each event's absolute time, checked.
pub fn resolve_times(
    events: &[SimEvent],
    start: Option<Timestamp>,
) -> Result<(Timestamp, Vec<Timestamp>), Problems> {
    let absolute: Vec<Option<Timestamp>> = events
        .iter()
        .map(|e| e.at.parse::<Timestamp>().ok())
        .collect();
    let start = match start {
        Some(s) => s,
        None => absolute
            .iter()
            .flatten()
            .min()
            .copied()
            .unwrap_or_else(|| DEFAULT_START.parse().unwrap_or(Timestamp::UNIX_EPOCH)),
    };
    let mut times = Vec::with_capacity(events.len());
    let mut problems = Vec::new();
    for (i, (e, abs)) in events.iter().zip(absolute).enumerate() {
        let at = match abs {
            Some(t) => Some(t),
            None => crate::expr::time::parse_exact_duration(&e.at)
                .ok()
                .and_then(|d| start.checked_add(d).ok()),
        };
        match at {
            Some(t) => times.push(t),
            None => problems.push(Problem {
                path: format!("[{i}].at"),
                message: format!(
                    "{:?} is neither an RFC 3339 time nor an ISO-8601 duration after the start",
                    e.at
                ),
            }),
        }
    }
    if problems.is_empty() {
        Ok((start, times))
    } else {
        Err(Problems(problems))
    }
}

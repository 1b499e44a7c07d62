//! Profile import files: JSON Lines and CSV, decoded into one JSON object per record.
//!
//! Owns the file formats only: a CSV row becomes `{"id", "timezone", "aliases": {...},
//! "attributes": {...}}` (cells that read as numbers or booleans become those; empty
//! cells are left out); what a record may contain is checked by the API.

use serde_json::{Map, Value};

use super::Problem;

/// Records with the line each starts on.
pub type Records = Vec<(usize, Map<String, Value>)>;

/// One object per non-empty line, with its line number (from 1).
pub fn jsonl_records(text: &[u8]) -> Result<Records, Problem> {
    let mut out = Vec::new();
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| Problem::new(format!("line {}", i + 1), format!("not JSON: {e}")))?;
        match value {
            Value::Object(map) => out.push((i + 1, map)),
            _ => {
                return Err(Problem::new(
                    format!("line {}", i + 1),
                    "each line must be a JSON object",
                ));
            }
        }
    }
    Ok(out)
}

/// One object per CSV row after the header, with its line number (from 1; the header is
/// line 1).
pub fn csv_records(text: &[u8]) -> Result<Records, Problem> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text);
    let headers = reader
        .headers()
        .map_err(|e| Problem::new("line 1", format!("cannot read the CSV header: {e}")))?
        .clone();
    if !headers.iter().any(|h| h == "id") {
        return Err(Problem::new(
            "line 1",
            "the CSV header needs an `id` column",
        ));
    }
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row =
            row.map_err(|e| Problem::new(format!("line {line}"), format!("bad CSV row: {e}")))?;
        let mut record = Map::new();
        let mut attributes = Map::new();
        let mut aliases = Map::new();
        for (header, cell) in headers.iter().zip(row.iter()) {
            if cell.is_empty() {
                continue;
            }
            match header {
                "id" | "timezone" => {
                    record.insert(header.to_string(), Value::String(cell.to_string()));
                }
                h if h.starts_with("alias.") => {
                    aliases.insert(
                        h["alias.".len()..].to_string(),
                        Value::String(cell.to_string()),
                    );
                }
                h => {
                    attributes.insert(h.to_string(), cell_value(cell));
                }
            }
        }
        if !attributes.is_empty() {
            record.insert("attributes".into(), Value::Object(attributes));
        }
        if !aliases.is_empty() {
            record.insert("aliases".into(), Value::Object(aliases));
        }
        out.push((line, record));
    }
    Ok(out)
}

/// A CSV cell as a JSON value: integers, decimals and booleans are typed, anything else
/// is a string.
fn cell_value(cell: &str) -> Value {
    if let Ok(i) = cell.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = cell.parse::<f64>()
        && f.is_finite()
    {
        return Value::from(f);
    }
    match cell {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(cell.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_rows_become_profile_records() {
        let text =
            b"id,tier,spend,alias.email,timezone\np1,gold,120.5,a@x.com,Europe/Paris\np2,,7,,\n";
        let records = csv_records(text).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            Value::Object(records[0].1.clone()),
            json!({"id": "p1", "timezone": "Europe/Paris", "aliases": {"email": "a@x.com"},
                   "attributes": {"tier": "gold", "spend": 120.5}})
        );
        assert_eq!(
            Value::Object(records[1].1.clone()),
            json!({"id": "p2", "attributes": {"spend": 7}})
        );
    }

    #[test]
    fn bad_lines_are_located() {
        let err = jsonl_records(b"{\"id\": \"a\"}\n\n[1]\n").unwrap_err();
        assert_eq!(err.path, "line 3");
        let err = csv_records(b"name\nx\n").unwrap_err();
        assert!(err.message.contains("id"), "{err}");
    }
}

//! Profile import files: JSON Lines and CSV, decoded into one JSON object per record.
//!
//! Owns the file formats only: a CSV row becomes `{"id", "timezone", "aliases": {...},
//! "attributes": {...}}` (cells are strings unless the header types their column, as in
//! `age:number`; empty cells are left out); what a record may contain is checked by the
//! API. Must never guess a cell's type: `+33612345678` and `01234` stay as written.

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

/// What a CSV column holds, from its header.
enum Column {
    Id,
    Timezone,
    Alias(String),
    Attribute(String, CellType),
}

/// The type of an attribute column: `name:type` in the header; untyped columns are
/// strings, so that phone numbers (`+33612345678`), postcodes (`01234`) and codes (`1e3`)
/// keep every character.
#[derive(Clone, Copy)]
enum CellType {
    String,
    Number,
    Integer,
    Boolean,
    Json,
}

/// The type names a header may give, for messages.
const TYPE_NAMES: &str = "string, number, integer, boolean, json";

fn column(header: &str, index: usize) -> Result<Column, Problem> {
    let here = || format!("line 1.column {}", index + 1);
    let (name, cell_type) = match header.rsplit_once(':') {
        None => (header, CellType::String),
        Some((name, suffix)) => {
            let cell_type = match suffix {
                "string" => CellType::String,
                "number" => CellType::Number,
                "integer" => CellType::Integer,
                "boolean" => CellType::Boolean,
                "json" => CellType::Json,
                other => {
                    return Err(Problem::new(
                        here(),
                        format!("`{header}`: {other:?} is not a column type (one of {TYPE_NAMES})"),
                    ));
                }
            };
            (name, cell_type)
        }
    };
    if name.is_empty() {
        return Err(Problem::new(here(), "a column needs a name"));
    }
    Ok(match (name, header.contains(':')) {
        ("id", false) => Column::Id,
        ("timezone", false) => Column::Timezone,
        ("id" | "timezone", true) => {
            return Err(Problem::new(
                here(),
                format!("`{header}`: the `{name}` column is text and takes no type"),
            ));
        }
        (n, typed) if n.starts_with("alias.") => {
            if typed {
                return Err(Problem::new(
                    here(),
                    format!("`{header}`: alias columns are text and take no type"),
                ));
            }
            Column::Alias(n["alias.".len()..].to_string())
        }
        (n, _) => Column::Attribute(n.to_string(), cell_type),
    })
}

/// One object per CSV row after the header, with the line it starts on (from 1; the
/// header is line 1; a quoted cell may span lines). Header cells name the columns:
/// `id`, `timezone`, `alias.<namespace>`, and attributes as `name` (text) or `name:type`
/// (`number`, `integer`, `boolean`, `json`, or `string`).
pub fn csv_records(text: &[u8]) -> Result<Records, Problem> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text);
    let headers = reader
        .headers()
        .map_err(|e| Problem::new("line 1", format!("cannot read the CSV header: {e}")))?
        .clone();
    let columns = headers
        .iter()
        .enumerate()
        .map(|(i, h)| column(h, i))
        .collect::<Result<Vec<_>, _>>()?;
    if !columns.iter().any(|c| matches!(c, Column::Id)) {
        return Err(Problem::new(
            "line 1",
            "the CSV header needs an `id` column",
        ));
    }
    let mut out = Vec::new();
    let mut record_text = csv::StringRecord::new();
    loop {
        // The line the next record starts on, for its messages (the reader's position is
        // where the previous record ended).
        let at = reader.position().line() as usize;
        let more = reader.read_record(&mut record_text).map_err(|e| {
            let line = e.position().map_or(at, |p| p.line() as usize);
            Problem::new(format!("line {line}"), format!("bad CSV row: {e}"))
        })?;
        if !more {
            break;
        }
        let line = record_text.position().map_or(at, |p| p.line() as usize);
        let mut record = Map::new();
        let mut attributes = Map::new();
        let mut aliases = Map::new();
        for (column, cell) in columns.iter().zip(record_text.iter()) {
            if cell.is_empty() {
                continue;
            }
            match column {
                Column::Id => {
                    record.insert("id".into(), Value::String(cell.to_string()));
                }
                Column::Timezone => {
                    record.insert("timezone".into(), Value::String(cell.to_string()));
                }
                Column::Alias(namespace) => {
                    aliases.insert(namespace.clone(), Value::String(cell.to_string()));
                }
                Column::Attribute(name, cell_type) => {
                    let value = cell_value(cell, *cell_type).map_err(|expected| {
                        Problem::new(
                            format!("line {line}.{name}"),
                            format!("{cell:?} is not {expected}"),
                        )
                    })?;
                    attributes.insert(name.clone(), value);
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

/// A CSV cell as the JSON value its column's type says, or what was expected.
fn cell_value(cell: &str, cell_type: CellType) -> Result<Value, &'static str> {
    match cell_type {
        CellType::String => Ok(Value::String(cell.to_string())),
        CellType::Integer => cell
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "an integer"),
        CellType::Number => {
            let text = cell.trim();
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::from(i));
            }
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Value::from(f)),
                _ => Err("a finite number"),
            }
        }
        CellType::Boolean => match cell.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("a boolean (true or false)"),
        },
        CellType::Json => serde_json::from_str(cell).map_err(|_| "JSON"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_rows_become_profile_records() {
        let text = b"id,tier,spend:number,alias.email,timezone\np1,gold,120.5,a@x.com,Europe/Paris\np2,,7,,\n";
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
    fn untyped_cells_keep_every_character() {
        let text = b"id,phone,zip,zeros,code,flag\np1,+33612345678,01234,00000,1e3,true\n";
        let records = csv_records(text).unwrap();
        assert_eq!(
            Value::Object(records[0].1.clone()),
            json!({"id": "p1", "attributes": {"phone": "+33612345678", "zip": "01234",
                   "zeros": "00000", "code": "1e3", "flag": "true"}})
        );
    }

    #[test]
    fn typed_columns_convert_and_refuse_what_does_not_fit() {
        let text = b"id,age:integer,score:number,vip:boolean,tags:json,zip:string\n\
p1,42,1e3,true,\"[\"\"a\"\"]\",01234\n";
        let records = csv_records(text).unwrap();
        assert_eq!(
            Value::Object(records[0].1.clone()),
            json!({"id": "p1", "attributes": {"age": 42, "score": 1000.0, "vip": true,
                   "tags": ["a"], "zip": "01234"}})
        );
        let err = csv_records(b"id,age:integer\np1,4\np2,old\n").unwrap_err();
        assert_eq!(err.path, "line 3.age");
        assert!(err.message.contains("\"old\" is not an integer"), "{err}");
        let err = csv_records(b"id,age:nmber\np1,4\n").unwrap_err();
        assert_eq!(err.path, "line 1.column 2");
        assert!(
            err.message.contains("\"nmber\" is not a column type"),
            "{err}"
        );
    }

    #[test]
    fn quoted_cells_may_span_lines_and_later_lines_are_counted_right() {
        let text = b"id,note,age:integer\np1,\"first line\nsecond line\",1\np2,x,2\np3,y,three\n";
        let err = csv_records(text).unwrap_err();
        assert_eq!(err.path, "line 5.age", "{err}");
        let records = csv_records(b"id,note\np1,\"a\nb\"\np2,c\n").unwrap();
        assert_eq!(records[0].1["attributes"]["note"], "a\nb");
        assert_eq!((records[0].0, records[1].0), (2, 4));
    }

    #[test]
    fn bad_lines_are_located() {
        let err = jsonl_records(b"{\"id\": \"a\"}\n\n[1]\n").unwrap_err();
        assert_eq!(err.path, "line 3");
        let err = csv_records(b"name\nx\n").unwrap_err();
        assert!(err.message.contains("id"), "{err}");
    }
}

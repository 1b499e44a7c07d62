//! `std`: functions journeys need that rhai lacks, callable as `std::<name>(...)`.

use parcours_sdk::functions::{Functions, Signature};
use parcours_sdk::{Error, Value, json};
use sha2::{Digest, Sha256};

/// Hex SHA-256 of a string.
pub fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Great-circle distance in kilometres (haversine).
pub fn geo_distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6371.0088 * 2.0 * a.sqrt().atan2((1.0 - a).sqrt())
}

/// Formats an RFC 3339 instant in a zone with a strftime pattern.
pub fn format_datetime(instant: &str, zone: &str, pattern: &str) -> Result<String, Error> {
    let ts: jiff::Timestamp = instant
        .parse()
        .map_err(|e| Error::InvalidInput(format!("{instant:?} is not an RFC 3339 instant: {e}")))?;
    let tz = jiff::tz::TimeZone::get(zone)
        .map_err(|_| Error::InvalidInput(format!("{zone:?} is not an IANA time zone")))?;
    Ok(ts.to_zoned(tz).strftime(pattern).to_string())
}

/// Follows a dotted path (`a.b.0.c`) into a JSON value; `()` when absent.
pub fn json_path(value: &Value, path: &str) -> Value {
    let mut cur = value;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = match cur {
            Value::Object(m) => match m.get(seg) {
                Some(v) => v,
                None => return Value::Null,
            },
            Value::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(v) => v,
                None => return Value::Null,
            },
            _ => return Value::Null,
        };
    }
    cur.clone()
}

fn num(args: &[Value], i: usize) -> Result<f64, Error> {
    args.get(i)
        .and_then(Value::as_f64)
        .ok_or_else(|| Error::InvalidInput(format!("argument {} must be a number", i + 1)))
}

fn text(args: &[Value], i: usize) -> Result<&str, Error> {
    args.get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidInput(format!("argument {} must be a string", i + 1)))
}

pub struct Std;

impl Functions for Std {
    fn describe() -> Vec<Signature> {
        vec![
            Signature {
                name: "sha256",
                params: &["string"],
                result: "string",
                description: "hex SHA-256 of a string",
            },
            Signature {
                name: "geo_distance_km",
                params: &["float", "float", "float", "float"],
                result: "float",
                description: "great-circle distance in km between (lat1, lon1) and (lat2, lon2)",
            },
            Signature {
                name: "format_datetime",
                params: &["string", "string", "string"],
                result: "string",
                description: "format an RFC 3339 instant in an IANA zone with a strftime pattern",
            },
            Signature {
                name: "json_path",
                params: &["any", "string"],
                result: "any",
                description: "the value at a dotted path (a.b.0.c), or () when absent",
            },
        ]
    }

    fn call(name: &str, args: Vec<Value>) -> Result<Value, Error> {
        match name {
            "sha256" => Ok(json!(sha256(text(&args, 0)?))),
            "geo_distance_km" => Ok(json!(geo_distance_km(
                num(&args, 0)?,
                num(&args, 1)?,
                num(&args, 2)?,
                num(&args, 3)?
            ))),
            "format_datetime" => Ok(json!(format_datetime(
                text(&args, 0)?,
                text(&args, 1)?,
                text(&args, 2)?
            )?)),
            "json_path" => Ok(json_path(
                args.first().unwrap_or(&Value::Null),
                text(&args, 1)?,
            )),
            other => Err(Error::InvalidInput(format!("no function {other:?}"))),
        }
    }
}

parcours_sdk::export_functions!(Std);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_compute_what_they_say() {
        assert_eq!(
            sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let paris_london = geo_distance_km(48.8566, 2.3522, 51.5074, -0.1278);
        assert!((340.0..350.0).contains(&paris_london), "{paris_london}");
        assert_eq!(
            format_datetime("2026-03-02T08:30:00Z", "Europe/Paris", "%H:%M").unwrap(),
            "09:30"
        );
        assert_eq!(json_path(&json!({"a": [{"b": 3}]}), "a.0.b"), json!(3));
        assert_eq!(json_path(&json!({"a": 1}), "x.y"), Value::Null);
    }
}

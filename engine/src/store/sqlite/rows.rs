//! Conversions between rows and engine types.

use jiff::Timestamp;
use rusqlite::Row;

use crate::journal::{Instance, Status};
use crate::model::{Event, Profile};

pub fn ts(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub fn from_ts(micros: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_microsecond(micros).map_err(|e| conversion(e.to_string()))
}

fn conversion(msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(std::io::Error::other(msg)),
    )
}

fn json(text: &str) -> rusqlite::Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| conversion(e.to_string()))
}

pub const EVENT_COLUMNS: &str = "seq, id, type, profile_id, ts, received_at, data";

pub fn event(row: &Row) -> rusqlite::Result<(i64, Event)> {
    Ok((
        row.get(0)?,
        Event {
            id: row.get(1)?,
            event_type: row.get(2)?,
            profile_id: row.get(3)?,
            timestamp: from_ts(row.get(4)?)?,
            received_at: from_ts(row.get(5)?)?,
            data: json(&row.get::<_, String>(6)?)?,
        },
    ))
}

/// A `journey_versions` row: `journey_id, version, definition, published_at, split_hash`.
/// A definition that no longer parses is `null` (the runtime logs it and skips it).
pub fn version_record(row: &Row) -> rusqlite::Result<crate::store::VersionRecord> {
    let text: String = row.get(2)?;
    let scheme: Option<String> = row.get(4)?;
    Ok(crate::store::VersionRecord {
        journey_id: row.get(0)?,
        version: row.get(1)?,
        definition: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        published_at: from_ts(row.get(3)?)?,
        split_hash: crate::ids::SplitHash::from_stored(scheme.as_deref()).map_err(conversion)?,
    })
}

pub const PROFILE_COLUMNS: &str = "id, attributes, timezone, created_at, updated_at";

pub fn profile(row: &Row) -> rusqlite::Result<Profile> {
    Ok(Profile {
        id: row.get(0)?,
        attributes: json(&row.get::<_, String>(1)?)?,
        timezone: row.get(2)?,
        aliases: Default::default(),
        created_at: from_ts(row.get(3)?)?,
        updated_at: from_ts(row.get(4)?)?,
    })
}

pub const INSTANCE_COLUMNS: &str = "id, journey_id, version, profile_id, status, node, entered_at, \
     updated_at, ended_at, wake_at, deadline, end_reason, data";

pub fn instance(row: &Row) -> rusqlite::Result<Instance> {
    let status: String = row.get(4)?;
    Ok(Instance {
        id: row.get(0)?,
        journey_id: row.get(1)?,
        version: row.get(2)?,
        profile_id: row.get(3)?,
        status: Status::parse(&status).ok_or_else(|| conversion(format!("bad status {status}")))?,
        node: row.get(5)?,
        entered_at: from_ts(row.get(6)?)?,
        updated_at: from_ts(row.get(7)?)?,
        ended_at: row.get::<_, Option<i64>>(8)?.map(from_ts).transpose()?,
        wake_at: row.get::<_, Option<i64>>(9)?.map(from_ts).transpose()?,
        deadline: from_ts(row.get(10)?)?,
        end_reason: row.get(11)?,
        data: serde_json::from_str(&row.get::<_, String>(12)?)
            .map_err(|e| conversion(e.to_string()))?,
    })
}

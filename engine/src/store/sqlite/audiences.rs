//! Profiles' identities, audiences and their members, capping rules: the SQL.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::SqliteStore;
use super::rows::{from_ts, ts};
use crate::store::{AudienceRecord, Membership, ProfileWrite, Transition};
use crate::store::{AudienceStore, Result};
use async_trait::async_trait;

/// Inserts or replaces a profile row and, if they changed, its aliases (an alias held by
/// another profile moves to this one).
pub fn upsert_profile(
    conn: &Connection,
    write: &ProfileWrite,
    attributes: &str,
) -> rusqlite::Result<()> {
    let p = &write.profile;
    conn.prepare_cached(
        "INSERT INTO profiles (id, attributes, timezone, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO UPDATE SET \
         attributes = excluded.attributes, timezone = excluded.timezone, \
         updated_at = excluded.updated_at",
    )?
    .execute(params![
        p.id,
        attributes,
        p.timezone,
        ts(p.created_at),
        ts(p.updated_at)
    ])?;
    if write.aliases_changed {
        conn.prepare_cached("DELETE FROM identities WHERE profile_id = ?1")?
            .execute([&p.id])?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO identities (namespace, value, profile_id) VALUES (?1, ?2, ?3) \
             ON CONFLICT(namespace, value) DO UPDATE SET profile_id = excluded.profile_id",
        )?;
        for (ns, value) in &p.aliases {
            insert.execute(params![ns, value, p.id])?;
        }
    }
    Ok(())
}

/// Deletes a profile, its aliases, memberships and capping counts.
pub fn delete_profile(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    for sql in [
        "DELETE FROM profiles WHERE id = ?1",
        "DELETE FROM identities WHERE profile_id = ?1",
        "DELETE FROM audience_members WHERE profile_id = ?1",
        "DELETE FROM capping_entries WHERE profile_id = ?1",
    ] {
        conn.prepare_cached(sql)?.execute([id])?;
    }
    Ok(())
}

pub fn aliases(conn: &Connection, id: &str) -> rusqlite::Result<BTreeMap<String, String>> {
    conn.prepare_cached("SELECT namespace, value FROM identities WHERE profile_id = ?1")?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

pub fn write_membership(conn: &Connection, m: &Membership) -> rusqlite::Result<()> {
    match m.since {
        Some(since) => conn
            .prepare_cached(
                "INSERT INTO audience_members (audience, profile_id, since) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(audience, profile_id) DO NOTHING",
            )?
            .execute(params![m.audience, m.profile_id, ts(since)])?,
        None => conn
            .prepare_cached("DELETE FROM audience_members WHERE audience = ?1 AND profile_id = ?2")?
            .execute(params![m.audience, m.profile_id])?,
    };
    Ok(())
}

pub fn insert_transition(conn: &Connection, t: &Transition) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audience_transitions (audience, profile_id, direction, at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![t.audience, t.profile_id, t.direction, ts(t.at)])?;
    Ok(())
}

pub fn insert_capping(
    conn: &Connection,
    profile: &str,
    rule: &str,
    at: Timestamp,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO capping_entries (profile_id, rule, at) VALUES (?1, ?2, ?3)")?
        .execute(params![profile, rule, ts(at)])?;
    Ok(())
}

/// Deletes a profile's entries counted by `rule` before `before`.
pub fn delete_capping_before(
    conn: &Connection,
    profile: &str,
    rule: &str,
    before: Timestamp,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM capping_entries WHERE profile_id = ?1 AND rule = ?2 AND at < ?3",
    )?
    .execute(params![profile, rule, ts(before)])?;
    Ok(())
}

pub fn memberships_of(
    conn: &Connection,
    id: &str,
) -> rusqlite::Result<BTreeMap<String, Timestamp>> {
    let mut stmt = conn.prepare_cached(
        "SELECT audience, since FROM audience_members WHERE profile_id = ?1 ORDER BY audience",
    )?;
    let mut out = BTreeMap::new();
    let mut q = stmt.query([id])?;
    while let Some(r) = q.next()? {
        out.insert(r.get::<_, String>(0)?, from_ts(r.get(1)?)?);
    }
    Ok(out)
}

pub fn transitions_of(conn: &Connection, id: &str) -> rusqlite::Result<Vec<Transition>> {
    conn.prepare_cached(
        "SELECT audience, direction, at FROM audience_transitions WHERE profile_id = ?1 ORDER BY seq",
    )?
    .query_map([id], |r| {
        let direction: String = r.get(1)?;
        Ok(Transition {
            audience: r.get(0)?,
            profile_id: id.to_string(),
            direction: if direction == "entered" { "entered" } else { "exited" },
            at: from_ts(r.get(2)?)?,
        })
    })?
    .collect()
}

pub fn put_audience(
    conn: &Connection,
    name: &str,
    def: &Value,
    now: Timestamp,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audiences (name, definition, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
         ON CONFLICT(name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
    )?
    .execute(params![name, def.to_string(), ts(now)])?;
    Ok(())
}

const AUDIENCE_QUERY: &str = "SELECT a.name, a.definition, a.created_at, a.updated_at, \
     (SELECT COUNT(*) FROM audience_members m WHERE m.audience = a.name) FROM audiences a";

fn audience_row(r: &rusqlite::Row) -> rusqlite::Result<AudienceRecord> {
    let def: String = r.get(1)?;
    Ok(AudienceRecord {
        name: r.get(0)?,
        definition: serde_json::from_str(&def).unwrap_or(Value::Null),
        created_at: from_ts(r.get(2)?)?,
        updated_at: from_ts(r.get(3)?)?,
        size: r.get::<_, i64>(4)? as u64,
    })
}

pub fn list_audiences(conn: &Connection) -> rusqlite::Result<Vec<AudienceRecord>> {
    conn.prepare_cached(&format!("{AUDIENCE_QUERY} ORDER BY a.name"))?
        .query_map([], audience_row)?
        .collect()
}

pub fn get_audience(conn: &Connection, name: &str) -> rusqlite::Result<Option<AudienceRecord>> {
    conn.prepare_cached(&format!("{AUDIENCE_QUERY} WHERE a.name = ?1"))?
        .query_row([name], audience_row)
        .optional()
}

pub fn members(
    conn: &Connection,
    name: &str,
    after: Option<&str>,
    since: Option<Timestamp>,
    limit: usize,
) -> rusqlite::Result<Vec<(String, Timestamp)>> {
    conn.prepare_cached(
        "SELECT profile_id, since FROM audience_members WHERE audience = ?1 \
         AND profile_id > ?2 AND since >= ?3 ORDER BY profile_id LIMIT ?4",
    )?
    .query_map(
        params![
            name,
            after.unwrap_or(""),
            since.map_or(i64::MIN, ts),
            limit as i64
        ],
        |r| Ok((r.get(0)?, from_ts(r.get(1)?)?)),
    )?
    .collect()
}

#[async_trait]
impl AudienceStore for SqliteStore {
    async fn put_audience(&self, name: &str, definition: Value, now: Timestamp) -> Result<()> {
        let name = name.to_string();
        self.writer
            .write(move |conn| Ok(put_audience(conn, &name, &definition, now)?))
            .await
    }

    async fn list_audiences(&self) -> Result<Vec<AudienceRecord>> {
        self.read(list_audiences).await
    }

    async fn get_audience(&self, name: &str) -> Result<Option<AudienceRecord>> {
        let name = name.to_string();
        self.read(move |conn| get_audience(conn, &name)).await
    }

    async fn audience_members(
        &self,
        name: &str,
        after: Option<String>,
        since: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<(String, Timestamp)>> {
        let name = name.to_string();
        self.read(move |conn| members(conn, &name, after.as_deref(), since, limit))
            .await
    }

    async fn put_capping_rule(&self, id: &str, definition: Value, now: Timestamp) -> Result<()> {
        let id = id.to_string();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO capping_rules (id, definition, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT(id) DO UPDATE SET definition = excluded.definition, \
                     updated_at = excluded.updated_at",
                )?
                .execute(params![id, definition.to_string(), ts(now)])?;
                Ok(())
            })
            .await
    }

    async fn capping_rules(&self) -> Result<Vec<(String, Value)>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, definition FROM capping_rules ORDER BY id")?
                .query_map([], |r| {
                    let text: String = r.get(1)?;
                    Ok((
                        r.get(0)?,
                        serde_json::from_str(&text).unwrap_or(Value::Null),
                    ))
                })?
                .collect()
        })
        .await
    }
}

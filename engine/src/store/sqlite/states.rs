//! What a partition batch reads: the state of many profiles at once.
//!
//! Six set-oriented queries per chunk of profiles (`profile_id IN (...)`) instead of six
//! per profile: a partition batch of 500 events for 500 profiles costs a dozen queries.

use std::collections::HashMap;

use rusqlite::{Connection, params_from_iter};

use super::rows::{self, from_ts};
use crate::store::ProfileState;

/// Profiles per query (well under SQLite's limit on bound parameters).
const CHUNK: usize = 512;

/// The state of every profile of `ids` (a profile that does not exist gets a default
/// state).
pub fn load(conn: &Connection, ids: &[String]) -> rusqlite::Result<HashMap<String, ProfileState>> {
    let mut out: HashMap<String, ProfileState> = ids
        .iter()
        .map(|id| (id.clone(), ProfileState::default()))
        .collect();
    for chunk in ids.chunks(CHUNK) {
        load_chunk(conn, chunk, &mut out)?;
    }
    Ok(out)
}

fn load_chunk(
    conn: &Connection,
    ids: &[String],
    out: &mut HashMap<String, ProfileState>,
) -> rusqlite::Result<()> {
    // The list is padded to a power of two (repeating the last id, which changes
    // nothing) so that a handful of statement texts stay in the prepared cache.
    let mut padded: Vec<&String> = ids.iter().collect();
    if let Some(last) = ids.last() {
        padded.resize(ids.len().next_power_of_two(), last);
    }
    let ids = padded;
    let list = vec!["?"; ids.len()].join(",");
    // Runs `sql` over the chunk and hands each row to `row`.
    let each = |sql: String, row: &mut dyn FnMut(&rusqlite::Row) -> rusqlite::Result<()>| {
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut q = stmt.query(params_from_iter(&ids))?;
        while let Some(r) = q.next()? {
            row(r)?;
        }
        Ok::<_, rusqlite::Error>(())
    };

    each(
        format!(
            "SELECT {} FROM profiles WHERE id IN ({list})",
            rows::PROFILE_COLUMNS
        ),
        &mut |r| {
            let p = rows::profile(r)?;
            if let Some(state) = out.get_mut(&p.id) {
                state.profile = Some(p);
            }
            Ok(())
        },
    )?;
    each(
        format!("SELECT profile_id, namespace, value FROM identities WHERE profile_id IN ({list})"),
        &mut |r| {
            let id: String = r.get(0)?;
            if let Some(p) = out.get_mut(&id).and_then(|s| s.profile.as_mut()) {
                p.aliases.insert(r.get(1)?, r.get(2)?);
            }
            Ok(())
        },
    )?;
    each(
        format!(
            "SELECT {} FROM instances WHERE profile_id IN ({list}) \
             AND status IN ('active', 'waiting') ORDER BY entered_at",
            rows::INSTANCE_COLUMNS
        ),
        &mut |r| {
            let inst = rows::instance(r)?;
            if let Some(state) = out.get_mut(&inst.profile_id) {
                state.live.push(inst);
            }
            Ok(())
        },
    )?;
    // SQLite returns the other columns of the row that holds the MAX.
    each(
        format!(
            "SELECT profile_id, journey_id, MAX(entered_at), id, \
             json_extract(data, '$.entry_at'), MIN(version) FROM instances \
             WHERE profile_id IN ({list}) GROUP BY profile_id, journey_id, version = 0"
        ),
        &mut |r| {
            if let Some(state) = out.get_mut(&r.get::<_, String>(0)?) {
                // The entry's time (event time); `entered_at` for older instances.
                let entry_at: Option<String> = r.get(4)?;
                let at = match entry_at.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
                    Some(t) => t,
                    None => from_ts(r.get(2)?)?,
                };
                let journey: String = r.get(1)?;
                let key = crate::runtime::instance::entry_key(&journey, r.get(5)?).into_owned();
                state.last_entered.insert(key, (at, r.get(3)?));
            }
            Ok(())
        },
    )?;
    each(
        format!(
            "SELECT profile_id, audience, since FROM audience_members WHERE profile_id IN ({list})"
        ),
        &mut |r| {
            if let Some(state) = out.get_mut(&r.get::<_, String>(0)?) {
                state.audiences.insert(r.get(1)?, from_ts(r.get(2)?)?);
            }
            Ok(())
        },
    )?;
    each(
        format!(
            "SELECT profile_id, rule, at FROM capping_entries WHERE profile_id IN ({list}) ORDER BY at"
        ),
        &mut |r| {
            if let Some(state) = out.get_mut(&r.get::<_, String>(0)?) {
                state.capping.push((r.get(1)?, from_ts(r.get(2)?)?));
            }
            Ok(())
        },
    )?;
    Ok(())
}

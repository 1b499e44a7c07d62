//! Profiles, their identities, audiences and transitions: the reads.

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self};
use super::{SqliteStore, audiences};
use crate::model::Profile;
use crate::store::{ProfileStore, Result, Transition};

pub(super) fn load_profile(conn: &Connection, id: &str) -> rusqlite::Result<Option<Profile>> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM profiles WHERE id = ?1",
        rows::PROFILE_COLUMNS
    ))?
    .query_row([id], rows::profile)
    .optional()?
    .map(|mut p| {
        p.aliases = audiences::aliases(conn, id)?;
        Ok(p)
    })
    .transpose()
}

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn get_profile(&self, id: &str) -> Result<Option<Profile>> {
        let id = id.to_string();
        self.read(move |conn| load_profile(conn, &id)).await
    }

    async fn resolve_identity(&self, namespace: &str, value: &str) -> Result<Option<String>> {
        let (ns, value) = (namespace.to_string(), value.to_string());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT profile_id FROM identities WHERE namespace = ?1 AND value = ?2",
            )?
            .query_row(params![ns, value], |r| r.get(0))
            .optional()
        })
        .await
    }

    async fn profile_ids(&self, after: Option<String>, limit: usize) -> Result<Vec<String>> {
        self.read(move |conn| {
            conn.prepare_cached("SELECT id FROM profiles WHERE id > ?1 ORDER BY id LIMIT ?2")?
                .query_map(params![after.unwrap_or_default(), limit as i64], |r| {
                    r.get(0)
                })?
                .collect()
        })
        .await
    }

    async fn profiles_page(&self, after: Option<String>, limit: usize) -> Result<Vec<Profile>> {
        self.read(move |conn| {
            let mut profiles: Vec<Profile> = conn
                .prepare_cached(&format!(
                    "SELECT {} FROM profiles WHERE id > ?1 ORDER BY id LIMIT ?2",
                    rows::PROFILE_COLUMNS
                ))?
                .query_map(
                    params![after.unwrap_or_default(), limit as i64],
                    rows::profile,
                )?
                .collect::<rusqlite::Result<_>>()?;
            for p in &mut profiles {
                p.aliases = audiences::aliases(conn, &p.id)?;
            }
            Ok(profiles)
        })
        .await
    }

    async fn profile_audiences(&self, profile_id: &str) -> Result<Vec<(String, Timestamp)>> {
        let id = profile_id.to_string();
        self.read(move |conn| Ok(audiences::memberships_of(conn, &id)?.into_iter().collect()))
            .await
    }

    async fn profile_transitions(&self, profile_id: &str) -> Result<Vec<Transition>> {
        let id = profile_id.to_string();
        self.read(move |conn| audiences::transitions_of(conn, &id))
            .await
    }
}

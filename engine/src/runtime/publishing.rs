//! Journey versions in the runtime: validation, drafts, publication, and loading the
//! published versions at start.
//!
//! Owns compiling a definition once (on the blocking pool, at most `parse_workers` at a
//! time), storing a version before any partition sees it, and the set of compiled
//! versions partitions read. Never changes an instance: a new version takes new entries,
//! and instances go on to their end on theirs.

use std::sync::Arc;

use serde_json::Value;

use super::Runtime;
use crate::compile::{Journey, compile};
use crate::model::{JourneyDef, Problems};
use crate::store::{JourneyStatus, Pause, Publication};

/// Why a journey operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JourneyError {
    #[error("journey {0:?} does not exist")]
    NotFound(String),
    #[error("the definition is invalid")]
    Invalid(Problems),
    /// The operation does not apply to the journey's current status.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// What publishing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    New(u32),
    /// The definition equals the latest version; nothing was published.
    Unchanged(u32),
}

impl Runtime {
    pub(super) async fn load_journeys(&self) -> anyhow::Result<()> {
        let exprs = self.shared.exprs();
        let catalog = self.catalog();
        let records = self.shared.store.list_journeys().await?;
        let statuses: std::collections::HashMap<String, (JourneyStatus, Option<Pause>)> = records
            .iter()
            .map(|j| (j.id.clone(), (j.status, j.pause.clone())))
            .collect();
        for j in &records {
            let (Some(test), Some(draft)) = (&j.test, &j.draft) else {
                continue;
            };
            let compiled = match serde_json::from_value::<JourneyDef>(draft.clone()) {
                Ok(def) => self
                    .compile_test(&j.id, &def, test.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}")),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            };
            match compiled {
                Ok(journey) => self.shared.journeys.set_test(&j.id, Some(journey)),
                Err(e) => {
                    tracing::error!(journey = %j.id, error = %e, "the draft in test mode no longer compiles")
                }
            }
        }
        for v in self.shared.store.versions().await? {
            let (status, pause) = statuses
                .get(&v.journey_id)
                .cloned()
                .unwrap_or((JourneyStatus::Live, None));
            let def: JourneyDef = match serde_json::from_value(v.definition) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(journey = %v.journey_id, version = v.version, error = %e, "stored version does not parse");
                    continue;
                }
            };
            match compile(
                &def,
                &v.journey_id,
                v.version,
                &exprs,
                &catalog,
                &self.shared.settings,
            ) {
                Ok(mut j) => {
                    j.published_at = Some(v.published_at);
                    j.split_hash = v.split_hash;
                    let id = j.id.clone();
                    self.shared.journeys.add_version(Arc::new(j), status);
                    self.shared.journeys.set_status(&id, status, pause);
                }
                Err(problems) => {
                    tracing::error!(journey = %v.journey_id, version = v.version, %problems, "stored version no longer compiles");
                }
            }
        }
        Ok(())
    }

    /// Validates a definition for journey `id` without storing anything, on the
    /// blocking pool ([`Runtime::offload`]): a 10,000-node journey compiles thousands of
    /// expressions, which must not hold up the async workers that answer other requests.
    pub async fn validate(&self, id: &str, def: &JourneyDef) -> Result<Journey, Problems> {
        let shared = self.shared.clone();
        let catalog = self.catalog();
        let (id, def) = (id.to_string(), def.clone());
        self.offload(move || compile(&def, &id, 0, &shared.exprs(), &catalog, &shared.settings))
            .await
            .unwrap_or_else(|e| {
                Err(Problems::from(crate::model::Problem::new(
                    "",
                    e.to_string(),
                )))
            })
    }

    /// Runs CPU-heavy work of a request (parsing, validating) on the blocking pool, at
    /// most `parse_workers` at once (more wait), so that no request can stall the async
    /// workers that serve the others.
    pub async fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.shared.cpu.acquire().await?;
        Ok(tokio::task::spawn_blocking(work).await?)
    }

    /// Stores a draft; returns the problems validation finds (a draft may be invalid).
    /// A draft in test mode is replaced by the new one when it is valid.
    pub async fn put_draft(&self, id: &str, def: &JourneyDef) -> Result<Problems, JourneyError> {
        // A draft in test mode runs: its plugins stay until it is replaced.
        let _catalog = self.shared.catalog_lock.read().await;
        let problems = self.validate(id, def).await.err().unwrap_or_default();
        let value = serde_json::to_value(def).map_err(anyhow::Error::from)?;
        self.shared.store.put_draft(id, value, self.now()).await?;
        if problems.0.is_empty()
            && let Some(test) = self
                .shared
                .journeys
                .snapshot()
                .get(id)
                .and_then(|j| j.test.as_ref())
                .and_then(|t| t.test.clone())
        {
            let journey = self.compile_test(id, def, test).await?;
            self.shared.journeys.set_test(id, Some(journey));
        }
        Ok(problems)
    }

    /// A journey's stored record.
    pub(crate) async fn journey_record(
        &self,
        id: &str,
    ) -> Result<crate::store::JourneyRecord, JourneyError> {
        self.shared
            .store
            .get_journey(id)
            .await?
            .ok_or_else(|| JourneyError::NotFound(id.to_string()))
    }

    /// A journey's stored draft, parsed.
    pub(crate) async fn stored_draft(&self, id: &str) -> Result<JourneyDef, JourneyError> {
        let draft = self
            .journey_record(id)
            .await?
            .draft
            .ok_or_else(|| JourneyError::NotFound(id.to_string()))?;
        serde_path_to_error::deserialize(&draft)
            .map_err(|e| JourneyError::Invalid(crate::model::serde_problem(e).into()))
    }

    /// Publishes the draft of journey `id` as a new live version.
    pub async fn publish(&self, id: &str, publication: Publication) -> Result<u32, JourneyError> {
        let def = self.stored_draft(id).await?;
        self.publish_compiled(id, &def, publication).await
    }

    /// Compiles `def` once, stores it as a new version (and as the draft), and makes it
    /// take new entries. The previous version takes no more entries; its instances go on
    /// to their end on it. Entries a pause held enter the new version.
    async fn publish_compiled(
        &self,
        id: &str,
        def: &JourneyDef,
        publication: Publication,
    ) -> Result<u32, JourneyError> {
        // No plugin this version calls is removed until it is live (`plugin_calls`).
        let _catalog = self.shared.catalog_lock.read().await;
        let mut journey = self
            .validate(id, def)
            .await
            .map_err(JourneyError::Invalid)?;
        let value = serde_json::to_value(def).map_err(anyhow::Error::from)?;
        let was_paused = self
            .shared
            .journeys
            .snapshot()
            .get(id)
            .is_some_and(|j| j.status == JourneyStatus::Paused);
        let version = self
            .shared
            .store
            .publish(id, value, self.now(), publication)
            .await?;
        journey.version = version;
        journey.published_at = Some(self.now());
        self.shared
            .journeys
            .add_version(Arc::new(journey), JourneyStatus::Live);
        self.shared.run_kick.notify_one();
        tracing::info!(journey = id, version, "published");
        if was_paused {
            self.spawn_release(id.to_string());
        }
        Ok(version)
    }

    /// Stores `def` as the draft and publishes it, unless it equals the latest version.
    pub async fn publish_definition(
        &self,
        id: &str,
        def: &JourneyDef,
    ) -> Result<Published, JourneyError> {
        let snapshot = self.shared.journeys.snapshot();
        if let Some(latest) = snapshot
            .get(id)
            .and_then(|j| j.versions.values().next_back())
            && latest.def == *def
            && snapshot.get(id).map(|j| j.status) == Some(JourneyStatus::Live)
        {
            return Ok(Published::Unchanged(latest.version));
        }
        let publication = Publication {
            by: Some("journeys folder".into()),
            note: None,
        };
        self.publish_compiled(id, def, publication)
            .await
            .map(Published::New)
    }

    /// Publishes the latest version of journey `id` again with every action node on the
    /// newest installed version of its plugin (`name@version` references lose their
    /// version; a bare name is pinned to the newest at publication). Answers the new
    /// version and the pins it moved, or the latest version and nothing when no pin was
    /// older. Only a live or paused journey: publishing would make another one live.
    pub async fn upgrade_plugins(
        &self,
        id: &str,
        by: Option<String>,
    ) -> Result<(u32, Vec<super::plugin_calls::OlderPin>), JourneyError> {
        let (latest, status) = {
            let snapshot = self.shared.journeys.snapshot();
            let j = snapshot
                .get(id)
                .ok_or_else(|| JourneyError::NotFound(id.to_string()))?;
            let latest = j
                .versions
                .values()
                .next_back()
                .cloned()
                .ok_or_else(|| JourneyError::NotFound(id.to_string()))?;
            (latest, j.status)
        };
        if !matches!(status, JourneyStatus::Live | JourneyStatus::Paused) {
            return Err(JourneyError::Conflict(format!(
                "journey {id:?} is {}: only a live or paused journey is published again",
                status.as_str()
            )));
        }
        let older = self.older_pins(id, latest.version);
        if older.is_empty() {
            return Ok((latest.version, older));
        }
        let mut def = latest.def.clone();
        for node in def.nodes.values_mut() {
            if let crate::model::NodeDef::Action(a) = node
                && let Some((name, _)) = a.action.split_once('@')
            {
                a.action = name.to_string();
            }
        }
        let note = older
            .iter()
            .map(|p| format!("{} -> {}", p.pinned, p.newest))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ");
        let publication = Publication {
            by,
            note: Some(format!("plugins upgraded: {note}")),
        };
        let version = self.publish_compiled(id, &def, publication).await?;
        Ok((version, older))
    }

    /// Every loaded version of a journey, oldest first.
    pub fn compiled_versions(&self, id: &str) -> Vec<Arc<Journey>> {
        self.shared
            .journeys
            .snapshot()
            .get(id)
            .map(|j| j.versions.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The journey definitions as JSON, for the API.
    pub fn definition(&self, id: &str, version: u32) -> Option<Value> {
        let snapshot = self.shared.journeys.snapshot();
        snapshot
            .version(id, version)
            .and_then(|j| serde_json::to_value(&j.def).ok())
    }
}

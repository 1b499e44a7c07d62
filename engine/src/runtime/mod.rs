//! Running journeys: partitions, timers, entries, and journey management.
//!
//! Owns the order of steps. Every profile hashes to one partition, and a partition
//! handles its messages (events, due timers) one at a time, so a profile's steps in a
//! journey happen in order while different partitions run in parallel. A partition
//! commits each batch of work atomically before it acknowledges anything. The runtime
//! never answers HTTP and never writes SQL; it goes through the [`Store`] trait.

mod entry;
pub mod instance;
pub mod journeys;
mod partition;
mod timers;

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::actions::ActionRegistry;
use crate::clock::Clock;
use crate::compile::{Catalog, Journey, compile};
use crate::expr::{ExprEngine, ExternalFunctions};
use crate::ids::stable_hash;
use crate::model::{Event, JourneyDef, Problems};
use crate::settings::Settings;
use crate::store::{DueTimer, JourneyStatus, Store};

use self::journeys::Journeys;

/// Messages a partition handles, in order.
pub(crate) enum Msg {
    Event(Event),
    Timer(DueTimer, oneshot::Sender<()>),
}

/// Why a journey operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JourneyError {
    #[error("journey {0:?} does not exist")]
    NotFound(String),
    #[error("the definition is invalid")]
    Invalid(Problems),
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

pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    /// Plugin functions and data sources offered to expressions.
    pub external: Option<Arc<dyn ExternalFunctions>>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    pub actions: ActionRegistry,
    pub journeys: Journeys,
    pub timer_kick: Notify,
    partitions: Vec<mpsc::Sender<Msg>>,
}

/// Handle to the running runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl Runtime {
    /// Loads every published journey, starts the partitions and the timer service, and
    /// re-dispatches events accepted but not processed before the last stop.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: Settings,
        actions: ActionRegistry,
        external: Option<Arc<dyn ExternalFunctions>>,
    ) -> anyhow::Result<Runtime> {
        let n = settings.partitions.max(1);
        let mut senders = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(settings.partition_batch.max(1) * 8);
            senders.push(tx);
            receivers.push(rx);
        }
        let shared = Arc::new(Shared {
            store,
            external,
            clock,
            settings,
            actions,
            journeys: Journeys::default(),
            timer_kick: Notify::new(),
            partitions: senders,
        });
        let runtime = Runtime { shared };
        runtime.load_journeys().await?;
        for (i, rx) in receivers.into_iter().enumerate() {
            partition::spawn(i, runtime.shared.clone(), rx);
        }
        runtime.recover_events().await?;
        timers::spawn(runtime.shared.clone());
        Ok(runtime)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// What journeys may refer to.
    pub fn catalog(&self) -> Catalog {
        catalog(&self.shared.actions)
    }

    /// Hands accepted (durable) events to their partitions, in order.
    pub async fn dispatch(&self, events: Vec<Event>) -> anyhow::Result<()> {
        for event in events {
            self.shared.send(Msg::Event(event)).await?;
        }
        Ok(())
    }

    async fn recover_events(&self) -> anyhow::Result<()> {
        let mut after = 0;
        let mut count = 0usize;
        loop {
            let batch = self.shared.store.unprocessed_events(after, 1_000).await?;
            let Some((last, _)) = batch.last() else { break };
            after = *last;
            count += batch.len();
            self.dispatch(batch.into_iter().map(|(_, e)| e).collect())
                .await?;
        }
        if count > 0 {
            tracing::info!(
                events = count,
                "re-dispatched events accepted before the last stop"
            );
        }
        Ok(())
    }

    async fn load_journeys(&self) -> anyhow::Result<()> {
        let exprs = self.shared.exprs();
        let catalog = self.catalog();
        let statuses: std::collections::HashMap<String, JourneyStatus> = self
            .shared
            .store
            .list_journeys()
            .await?
            .into_iter()
            .map(|j| (j.id, j.status))
            .collect();
        for v in self.shared.store.versions().await? {
            let status = statuses
                .get(&v.journey_id)
                .copied()
                .unwrap_or(JourneyStatus::Live);
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
                Ok(j) => self.shared.journeys.add_version(Arc::new(j), status),
                Err(problems) => {
                    tracing::error!(journey = %v.journey_id, version = v.version, %problems, "stored version no longer compiles");
                }
            }
        }
        Ok(())
    }

    /// Validates a definition for journey `id` without storing anything.
    pub fn validate(&self, id: &str, def: &JourneyDef) -> Result<Journey, Problems> {
        let exprs = self.shared.exprs();
        compile(def, id, 0, &exprs, &self.catalog(), &self.shared.settings)
    }

    /// Stores a draft; returns the problems validation finds (a draft may be invalid).
    pub async fn put_draft(&self, id: &str, def: &JourneyDef) -> Result<Problems, JourneyError> {
        let problems = self.validate(id, def).err().unwrap_or_default();
        let value = serde_json::to_value(def).map_err(anyhow::Error::from)?;
        self.shared.store.put_draft(id, value, self.now()).await?;
        Ok(problems)
    }

    /// Publishes the draft of journey `id` as a new live version.
    pub async fn publish(&self, id: &str) -> Result<u32, JourneyError> {
        let record = self
            .shared
            .store
            .get_journey(id)
            .await?
            .ok_or_else(|| JourneyError::NotFound(id.to_string()))?;
        let draft = record
            .draft
            .ok_or_else(|| JourneyError::NotFound(id.to_string()))?;
        let def: JourneyDef = serde_path_to_error::deserialize(&draft)
            .map_err(|e| JourneyError::Invalid(crate::model::serde_problem(e).into()))?;
        self.publish_compiled(id, &def).await
    }

    /// Compiles `def` once, stores it as a new version (and as the draft), and makes it
    /// take new entries.
    async fn publish_compiled(&self, id: &str, def: &JourneyDef) -> Result<u32, JourneyError> {
        let mut journey = self.validate(id, def).map_err(JourneyError::Invalid)?;
        let value = serde_json::to_value(def).map_err(anyhow::Error::from)?;
        let version = self.shared.store.publish(id, value, self.now()).await?;
        journey.version = version;
        self.shared
            .journeys
            .add_version(Arc::new(journey), JourneyStatus::Live);
        tracing::info!(journey = id, version, "published");
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
        self.publish_compiled(id, def).await.map(Published::New)
    }

    /// Stops a journey: no new entries, and its live instances end.
    pub async fn stop(&self, id: &str) -> Result<u64, JourneyError> {
        if self.shared.store.get_journey(id).await?.is_none() {
            return Err(JourneyError::NotFound(id.to_string()));
        }
        let now = self.now();
        self.shared
            .store
            .set_journey_status(id, JourneyStatus::Stopped, now)
            .await?;
        self.shared.journeys.set_status(id, JourneyStatus::Stopped);
        let ended = self
            .shared
            .store
            .end_live_instances(id, instance::Status::Stopped, "JOURNEY_STOPPED", now)
            .await?;
        tracing::info!(journey = id, ended, "stopped");
        Ok(ended)
    }

    /// The journey definitions as JSON, for the API.
    pub fn definition(&self, id: &str, version: u32) -> Option<Value> {
        let snapshot = self.shared.journeys.snapshot();
        snapshot
            .version(id, version)
            .and_then(|j| serde_json::to_value(&j.def).ok())
    }
}

impl Shared {
    /// An expression engine with the plugin functions installed now.
    pub fn exprs(&self) -> ExprEngine {
        ExprEngine::with_functions(&self.settings.expr, self.external.clone())
    }

    fn partition_of(&self, profile_id: &str) -> usize {
        (stable_hash(&[profile_id]) % self.partitions.len() as u64) as usize
    }

    async fn send(&self, msg: Msg) -> anyhow::Result<()> {
        let profile = match &msg {
            Msg::Event(e) => &e.profile_id,
            Msg::Timer(t, _) => &t.profile_id,
        };
        let p = self.partition_of(profile);
        self.partitions[p]
            .send(msg)
            .await
            .map_err(|_| anyhow::anyhow!("partition {p} has stopped"))
    }
}

/// The catalog for a set of actions.
pub fn catalog(actions: &ActionRegistry) -> Catalog {
    Catalog {
        actions: actions.clone(),
    }
}

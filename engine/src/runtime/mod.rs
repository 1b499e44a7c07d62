//! Running journeys: partitions, timers, entries, audience runs, and journey and
//! audience management.
//!
//! Owns the order of steps. Every profile hashes to one partition, and a partition
//! handles its messages (events, due timers, profile writes, entry requests from audience
//! runs) one at a time, so a profile's steps and writes happen in order while different
//! partitions run in parallel. A partition
//! commits each batch of work atomically before it acknowledges anything. The runtime
//! never answers HTTP and never writes SQL; it goes through the [`Store`] trait.

pub mod alerting;
pub mod audiences;
mod entry;
pub mod instance;
pub mod journeys;
mod lifecycle;
pub mod matching;
mod merge;
mod partition;
pub mod profile_ops;
mod runs;
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
use crate::store::{DueTimer, JourneyStatus, Pause, Publication, Store};

use self::audiences::{Audience, Audiences, CappingRule};
use self::journeys::Journeys;
pub use self::lifecycle::{PauseRequest, Transitioned};
pub use self::profile_ops::{EnterReply, EnterRequest, ProfileOp, ProfileReply, ProfileView};

/// Messages a partition handles, in order.
pub(crate) enum Msg {
    Event(Event),
    Timer(DueTimer, oneshot::Sender<()>),
    Profile(ProfileOp, oneshot::Sender<ProfileReply>),
    Enter(EnterRequest, oneshot::Sender<EnterReply>),
    /// A held entry of a journey that resumed.
    Release(crate::store::HeldEntry, oneshot::Sender<()>),
    /// End a profile's live instances of a journey (a stop, the end of test mode);
    /// answered with how many ended, once committed.
    End(EndRequest, oneshot::Sender<u64>),
    /// Acknowledged once the batch it lands in is committed: every batch the partition
    /// began before it has committed then.
    Barrier(oneshot::Sender<()>),
}

/// Ends a profile's live instances of one journey: every version (`version: None`), or
/// one (`Some(0)`: the draft in test mode), with an `ended` step carrying `code`.
#[derive(Debug, Clone)]
pub(crate) struct EndRequest {
    pub profile_id: String,
    pub journey_id: String,
    pub version: Option<u32>,
    pub status: instance::Status,
    pub code: &'static str,
    pub message: String,
}

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

pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    /// Plugin functions and data sources offered to expressions.
    pub external: Option<Arc<dyn ExternalFunctions>>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    pub actions: ActionRegistry,
    pub journeys: Journeys,
    pub audiences: Audiences,
    pub timer_kick: Notify,
    /// Wakes the run scheduler (a journey was published, a run was created).
    pub run_kick: Notify,
    /// Wakes the lifecycle task (a journey was paused, closed, ...).
    pub lifecycle_kick: Notify,
    partitions: Vec<mpsc::Sender<Msg>>,
    /// Set once to stop every task of the runtime ([`Runtime::shutdown`]).
    shutdown: tokio::sync::watch::Sender<bool>,
    pub metrics: crate::metrics::Metrics,
    pub alerting: alerting::Alerting,
    pub throttle: crate::actions::Throttle,
    /// Counts partition commits (a simulation waits on it instead of polling).
    pub commits: tokio::sync::watch::Sender<u64>,
    /// Accepted events waiting for room in a full partition queue.
    dispatching: std::sync::atomic::AtomicUsize,
    /// Permits for CPU-heavy request work on the blocking pool (`parse_workers`).
    cpu: tokio::sync::Semaphore,
    /// Partitions that report a lasting store failure, with what failed.
    unhealthy: std::sync::Mutex<std::collections::BTreeMap<usize, String>>,
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
        let throttle =
            crate::actions::Throttle::new(&settings.action_limits, &settings.host_limits);
        let settings_parse_workers = settings.parse_workers.max(1);
        let shared = Arc::new(Shared {
            store,
            external,
            clock,
            settings,
            actions,
            journeys: Journeys::default(),
            audiences: Audiences::default(),
            timer_kick: Notify::new(),
            run_kick: Notify::new(),
            lifecycle_kick: Notify::new(),
            partitions: senders,
            shutdown: tokio::sync::watch::Sender::new(false),
            commits: tokio::sync::watch::Sender::new(0),
            metrics: crate::metrics::Metrics::new(),
            alerting: alerting::Alerting::default(),
            throttle,
            dispatching: std::sync::atomic::AtomicUsize::new(0),
            cpu: tokio::sync::Semaphore::new(settings_parse_workers),
            unhealthy: Default::default(),
        });
        let runtime = Runtime { shared };
        runtime.load_audiences().await?;
        runtime.load_journeys().await?;
        for (i, rx) in receivers.into_iter().enumerate() {
            partition::spawn(i, runtime.shared.clone(), rx);
        }
        runtime.recover_merges().await?;
        runtime.recover_events().await?;
        timers::spawn(runtime.shared.clone());
        runs::spawn(runtime.shared.clone()).await?;
        lifecycle::recover(&runtime).await?;
        lifecycle::spawn(runtime.clone());
        runtime.load_alerts().await?;
        alerting::spawn(runtime.shared.clone());
        Ok(runtime)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// Stops the partitions, the timer service, the schedulers and every task the
    /// runtime started (what is committed stays committed). A runtime cannot restart.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.shared.metrics
    }

    /// Partitions that report a lasting store failure, with what failed (none when all
    /// is well).
    pub fn unhealthy_partitions(&self) -> std::collections::BTreeMap<usize, String> {
        self.shared
            .unhealthy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The published journeys as a partition batch sees them now (a snapshot).
    pub fn journeys(&self) -> Arc<journeys::JourneySet> {
        self.shared.journeys.snapshot()
    }

    /// A receiver that changes after every partition commit.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.commits.subscribe()
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
        let audiences = self.shared.audiences.snapshot();
        Catalog {
            actions: self.shared.actions.clone(),
            audiences: Arc::new(audiences.names()),
            capping_rules: Arc::new(audiences.capping_ids()),
        }
    }

    /// Accepts events: stores them durably (an event whose id is stored already is a
    /// duplicate and is not processed again), counts them in the metrics, then hands the
    /// new ones to their partitions in order. The one path by which events enter the
    /// engine (the HTTP API, CloudEvents, Segment, simulations). Answers, per event,
    /// whether it was new; once it answers, every event is durable.
    pub async fn accept(&self, events: Vec<Event>) -> anyhow::Result<Vec<bool>> {
        let fresh = self.shared.store.ingest(&events).await?;
        let new: Vec<Event> = events
            .into_iter()
            .zip(&fresh)
            .filter_map(|(e, is_new)| is_new.then_some(e))
            .collect();
        self.shared
            .metrics
            .events(new.len(), fresh.len().saturating_sub(new.len()));
        self.dispatch(new).await?;
        Ok(fresh)
    }

    /// Hands accepted (durable) events to their partitions, in order.
    async fn dispatch(&self, events: Vec<Event>) -> anyhow::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let waiting = &self.shared.dispatching;
        waiting.fetch_add(events.len(), Relaxed);
        let mut left = events.len();
        for event in events {
            let sent = self.shared.send(Msg::Event(event)).await;
            waiting.fetch_sub(1, Relaxed);
            left -= 1;
            if let Err(e) = sent {
                waiting.fetch_sub(left, Relaxed);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Accepted events not yet taken by their partition: queued, or waiting for room.
    pub fn ingest_backlog(&self) -> usize {
        let queued: usize = self
            .shared
            .partitions
            .iter()
            .map(|p| p.max_capacity() - p.capacity())
            .sum();
        queued
            + self
                .shared
                .dispatching
                .load(std::sync::atomic::Ordering::Relaxed)
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

    /// What a simulation of this engine's journeys runs with: its limits, actions (in
    /// dry run), plugin functions and data sources, audiences and capping rules.
    pub async fn simulation_context(&self) -> anyhow::Result<crate::simulation::Context> {
        let audiences = self
            .shared
            .store
            .list_audiences()
            .await?
            .into_iter()
            .map(|a| (a.name, a.definition))
            .collect();
        Ok(crate::simulation::Context {
            settings: self.shared.settings.clone(),
            actions: self.shared.actions.clone(),
            external: self.shared.external.clone(),
            audiences,
            capping_rules: self.shared.store.capping_rules().await?,
        })
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

/// Why an audience or capping rule was refused.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("{message}")]
    Invalid { path: String, message: String },
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl Runtime {
    /// Applies a profile write in the profile's partition; answers once it is durable,
    /// with the profile's audience memberships already updated.
    pub async fn profile_op(&self, op: ProfileOp) -> ProfileReply {
        self.profile_ops(vec![op]).await?.remove(0)
    }

    /// Applies many profile writes: all are handed to their partitions first (which
    /// commit them in batches), then every answer is awaited; answers come in order.
    pub async fn profile_ops(&self, ops: Vec<ProfileOp>) -> anyhow::Result<Vec<ProfileReply>> {
        let mut replies = Vec::with_capacity(ops.len());
        for op in ops {
            let (tx, rx) = oneshot::channel();
            self.shared.send(Msg::Profile(op, tx)).await?;
            replies.push(rx);
        }
        let mut out = Vec::with_capacity(replies.len());
        for rx in replies {
            out.push(rx.await.unwrap_or_else(|_| {
                Err(anyhow::anyhow!("the partition stopped before answering"))
            }));
        }
        Ok(out)
    }

    async fn load_audiences(&self) -> anyhow::Result<()> {
        let exprs = self.shared.exprs();
        for record in self.shared.store.list_audiences().await? {
            match compile_audience(&exprs, &record.name, record.definition) {
                Ok(a) => self.shared.audiences.update(|set| {
                    set.audiences.insert(a.name.clone(), Arc::new(a));
                }),
                Err(e) => {
                    tracing::error!(audience = %record.name, error = %e, "stored audience no longer compiles")
                }
            }
        }
        for (id, def) in self.shared.store.capping_rules().await? {
            match compile_capping(def) {
                Ok(rule) => self.shared.audiences.update(|set| {
                    set.capping.insert(id, rule);
                }),
                Err(e) => tracing::error!(rule = %id, error = %e, "stored capping rule is invalid"),
            }
        }
        Ok(())
    }

    /// Creates or replaces an audience. A predicate audience is then evaluated for every
    /// existing profile in the background (`GET /v1/audiences/{name}` shows its size
    /// grow); from then on every profile write keeps it up to date.
    pub async fn put_audience(&self, name: &str, def: Value) -> Result<(), DefinitionError> {
        if let Err(message) = crate::compile::check_id(name) {
            return Err(DefinitionError::Invalid {
                path: "name".into(),
                message,
            });
        }
        let current = self.shared.audiences.snapshot();
        let audience = compile_audience(&self.shared.exprs(), name, def)?;
        match current.audiences.get(name) {
            // Unchanged (a resources file is applied at every start): nothing to do.
            Some(existing) if existing.def == audience.def => return Ok(()),
            Some(_) => {}
            None if current.audiences.len() >= self.shared.settings.max_audiences => {
                return Err(DefinitionError::Invalid {
                    path: String::new(),
                    message: format!(
                        "there are already {} audiences (max_audiences)",
                        self.shared.settings.max_audiences
                    ),
                });
            }
            None => {}
        }
        let stored = serde_json::to_value(&audience.def).map_err(anyhow::Error::from)?;
        self.shared
            .store
            .put_audience(name, stored, self.now())
            .await?;
        let backfill = audience.predicate.is_some();
        self.shared.audiences.update(|set| {
            set.audiences.insert(name.to_string(), Arc::new(audience));
        });
        if backfill {
            let runtime = self.clone();
            let name = name.to_string();
            self.shared.spawn(async move {
                if let Err(e) = runtime.reevaluate_all().await {
                    tracing::error!(audience = %name, error = %e, "evaluating existing profiles failed");
                }
            });
        }
        Ok(())
    }

    /// Sends every profile through its partition for audience evaluation.
    async fn reevaluate_all(&self) -> anyhow::Result<()> {
        let mut after = None;
        loop {
            let ids = self.shared.store.profile_ids(after.clone(), 1_000).await?;
            let Some(last) = ids.last().cloned() else {
                return Ok(());
            };
            let ops = ids
                .into_iter()
                .map(|id| ProfileOp::Reevaluate { id })
                .collect();
            self.profile_ops(ops).await?;
            after = Some(last);
        }
    }

    /// Creates or replaces a capping rule.
    pub async fn put_capping_rule(&self, id: &str, def: Value) -> Result<(), DefinitionError> {
        if let Err(message) = crate::compile::check_id(id) {
            return Err(DefinitionError::Invalid {
                path: "id".into(),
                message,
            });
        }
        let rule = compile_capping(def.clone())?;
        self.shared
            .store
            .put_capping_rule(id, def, self.now())
            .await?;
        self.shared.audiences.update(|set| {
            set.capping.insert(id.to_string(), rule);
        });
        Ok(())
    }

    /// Whether an audience is an explicit list (`Some(true)`), a predicate audience
    /// (`Some(false)`) or unknown.
    pub fn audience_is_list(&self, name: &str) -> Option<bool> {
        self.shared
            .audiences
            .snapshot()
            .audiences
            .get(name)
            .map(|a| a.predicate.is_none())
    }

    /// Stores a business event with the runs it starts (one per live business-event
    /// journey it passes the `when` of); returns them, or `None` for a repeated id.
    pub async fn business_event(
        &self,
        event: Event,
    ) -> anyhow::Result<Option<Vec<crate::store::RunRecord>>> {
        runs::business_event(&self.shared, event).await
    }
}

fn compile_audience(
    exprs: &ExprEngine,
    name: &str,
    def: Value,
) -> Result<Audience, DefinitionError> {
    let def: crate::model::AudienceDef = serde_path_to_error::deserialize(&def).map_err(|e| {
        let p = crate::model::serde_problem(e);
        DefinitionError::Invalid {
            path: p.path,
            message: p.message,
        }
    })?;
    let predicate = match &def.predicate {
        Some(src) => Some(exprs.compile(src).map_err(|e| DefinitionError::Invalid {
            path: "predicate".into(),
            message: format!("{src:?}: {e}"),
        })?),
        None => None,
    };
    Ok(Audience {
        name: name.to_string(),
        def,
        predicate,
    })
}

fn compile_capping(def: Value) -> Result<CappingRule, DefinitionError> {
    let def: crate::model::CappingRuleDef =
        serde_path_to_error::deserialize(&def).map_err(|e| {
            let p = crate::model::serde_problem(e);
            DefinitionError::Invalid {
                path: p.path,
                message: p.message,
            }
        })?;
    if def.max == 0 {
        return Err(DefinitionError::Invalid {
            path: "max".into(),
            message: "max must be at least 1".into(),
        });
    }
    let period = crate::expr::time::parse_duration(&def.period).map_err(|message| {
        DefinitionError::Invalid {
            path: "period".into(),
            message,
        }
    })?;
    Ok(CappingRule {
        max: def.max,
        period,
    })
}

impl Shared {
    /// A partition's store fails lastingly (see the failure policy in
    /// docs/guarantees.md).
    pub(crate) fn report_unhealthy(&self, partition: usize, why: String) {
        tracing::error!(partition, why = %why, "partition unhealthy");
        let mut unhealthy = self.unhealthy.lock().unwrap_or_else(|p| p.into_inner());
        unhealthy.insert(partition, why);
        self.metrics.partitions_unhealthy(unhealthy.len());
    }

    /// A partition's commits go through again.
    pub(crate) fn report_healthy(&self, partition: usize) {
        let mut unhealthy = self.unhealthy.lock().unwrap_or_else(|p| p.into_inner());
        if unhealthy.remove(&partition).is_some() {
            tracing::info!(partition, "partition healthy again");
        }
        self.metrics.partitions_unhealthy(unhealthy.len());
    }

    /// Runs a task of the runtime until it ends or the runtime shuts down.
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                () = task => {}
            }
        });
    }

    /// An expression engine with the plugin functions installed now.
    pub fn exprs(&self) -> ExprEngine {
        ExprEngine::with_functions(&self.settings.expr, self.external.clone())
    }

    fn partition_of(&self, profile_id: &str) -> usize {
        (stable_hash(&[profile_id]) % self.partitions.len() as u64) as usize
    }

    /// Waits until every partition has committed the batch it is working on (and those
    /// queued before this call).
    pub(crate) async fn barrier(&self) -> anyhow::Result<()> {
        let mut acks = Vec::with_capacity(self.partitions.len());
        for (i, partition) in self.partitions.iter().enumerate() {
            let (tx, rx) = oneshot::channel();
            partition
                .send(Msg::Barrier(tx))
                .await
                .map_err(|_| anyhow::anyhow!("partition {i} has stopped"))?;
            acks.push(rx);
        }
        for rx in acks {
            let _ = rx.await;
        }
        Ok(())
    }

    async fn send(&self, msg: Msg) -> anyhow::Result<()> {
        let p = self.partition_of(msg.profile_id());
        self.partitions[p]
            .send(msg)
            .await
            .map_err(|_| anyhow::anyhow!("partition {p} has stopped"))
    }
}

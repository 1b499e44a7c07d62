//! Running journeys: partitions, timers, entries, audience runs, and journey and
//! audience management.
//!
//! Owns the order of steps. Every profile hashes to one partition, and a partition
//! handles its messages (events, due timers, profile writes, entry requests from audience
//! runs) one at a time, so a profile's steps and writes happen in order while different
//! partitions run in parallel. A partition
//! commits each batch of work atomically before it acknowledges anything. The runtime
//! never answers HTTP and never writes SQL; it goes through the [`Store`] trait.

pub(crate) mod alerting;
pub(crate) mod audiences;
mod calls;
mod consent;
mod definitions;
mod deliveries;
pub(crate) mod journeys;
mod lifecycle;
pub(crate) mod matching;
mod merge;
mod partition;
mod plugin_calls;
pub(crate) mod profile_ops;
mod publishing;
mod runs;
mod templates;
mod timers;

use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::actions::ActionRegistry;
use crate::clock::Clock;
use crate::code::Code;
use crate::compile::Catalog;
use crate::expr::{ExprEngine, ExternalFunctions};
use crate::ids::stable_hash;
use crate::model::Event;
use crate::settings::Settings;
use crate::store::{DueTimer, Store};

use self::audiences::Audiences;
pub use self::consent::{ConsentError, GroupConsent};
pub use self::definitions::DefinitionError;
pub use self::deliveries::{Bounce, Feedback, FeedbackKind, FeedbackReport};
use self::journeys::Journeys;
pub use self::lifecycle::{PauseRequest, Transitioned};
pub use self::plugin_calls::{CallSite, CatalogChange};
pub use self::profile_ops::{EnterReply, EnterRequest, ProfileOp, ProfileReply, ProfileView};
pub use self::publishing::{JourneyError, Published};
pub use self::templates::{Preview, TemplateError};

/// Messages a partition handles, in order.
pub(crate) enum Msg {
    /// An accepted event and its place in the store's order (`seq`).
    Event(i64, Event),
    Timer(DueTimer, oneshot::Sender<()>),
    Profile(ProfileOp, oneshot::Sender<ProfileReply>),
    Enter(EnterRequest, oneshot::Sender<EnterReply>),
    /// A held entry of a journey that resumed.
    Release(crate::store::HeldEntry, oneshot::Sender<()>),
    /// End a profile's live instances of a journey (a stop, the end of test mode);
    /// answered with how many ended, once committed.
    End(EndRequest, oneshot::Sender<u64>),
    /// The answer of an action call that left its batch.
    Called(Box<calls::Called>),
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
    pub status: crate::journal::Status,
    pub code: Code,
    pub message: String,
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
    /// Templates and providers of `message` nodes.
    pub messaging: crate::channels::Messaging,
    /// Action calls running outside their batches.
    pub calls: Arc<calls::Calls>,
    /// Counts partition commits (a simulation waits on it instead of polling).
    pub commits: tokio::sync::watch::Sender<u64>,
    /// Accepted events waiting for room in a full partition queue.
    dispatching: std::sync::atomic::AtomicUsize,
    /// Permits for CPU-heavy request work on the blocking pool (`parse_workers`).
    cpu: tokio::sync::Semaphore,
    /// Partitions that report a lasting store failure, with what failed.
    unhealthy: std::sync::Mutex<std::collections::BTreeMap<usize, String>>,
    /// Shared by what compiles against the plugins (publication, test mode, audiences),
    /// held alone while a plugin is removed (`plugin_calls`).
    catalog_lock: tokio::sync::RwLock<()>,
}

/// Handle to the running runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl Runtime {
    /// An expression engine with the plugin functions installed now (a profile search's
    /// filter).
    pub(crate) fn exprs(&self) -> ExprEngine {
        self.shared.exprs()
    }

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
        let metrics = crate::metrics::Metrics::new();
        let calls = Arc::new(calls::Calls::new(
            settings.action_wait_ms,
            settings.max_calls_in_flight,
            metrics.clone(),
        ));
        let plugins = external.clone().and_then(|e| e.provider_plugins());
        let messaging = messaging(&settings, &store, &clock, plugins)?;
        let shared = Arc::new(Shared {
            messaging,
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
            metrics,
            alerting: alerting::Alerting::default(),
            throttle,
            calls,
            dispatching: std::sync::atomic::AtomicUsize::new(0),
            cpu: tokio::sync::Semaphore::new(settings_parse_workers),
            unhealthy: Default::default(),
            catalog_lock: tokio::sync::RwLock::new(()),
        });
        let runtime = Runtime { shared };
        runtime.load_audiences().await?;
        runtime.load_templates().await?;
        runtime.load_consent().await?;
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

    /// The store, for the API's reads. Writes go through [`Runtime::accept`], the
    /// profile operations and the partitions, never through this handle.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// Whether every accepted event has been processed by its partition (what a
    /// benchmark or an embedder waits for before reading the results).
    pub async fn all_processed(&self) -> anyhow::Result<bool> {
        Ok(self.shared.store.unprocessed_events(0, 1).await?.is_empty())
    }

    /// Waits until the action calls that left their batches have answered and every
    /// partition has committed the batch it is working on and the messages queued
    /// before this call (the answers among them).
    pub async fn drain(&self) -> anyhow::Result<()> {
        while !self.shared.calls.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.shared.barrier().await
    }

    /// Action calls running outside their partitions' batches now: their instances are
    /// committed as calling and their answers not yet handled.
    pub fn calls_in_flight(&self) -> usize {
        self.shared.calls.len()
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

    /// The actions journeys call (by name and version).
    pub fn actions(&self) -> &ActionRegistry {
        &self.shared.actions
    }

    /// The plugin functions and data sources expressions may call.
    pub fn external(&self) -> Option<&Arc<dyn ExternalFunctions>> {
        self.shared.external.as_ref()
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
            templates: Arc::new(self.shared.messaging.channels()),
            groups: Arc::new(
                self.shared
                    .messaging
                    .groups()
                    .into_iter()
                    .map(|(id, g)| (id, g.channel))
                    .collect(),
            ),
            providers: Arc::new(self.shared.messaging.provider_names().into_iter().collect()),
        }
    }

    /// Accepts events: stores them durably (an event whose id is stored already is a
    /// duplicate and is not processed again), counts them in the metrics, then hands the
    /// new ones to their partitions in order. The one path by which events enter the
    /// engine (the HTTP API, CloudEvents, Segment, simulations). Answers, per event,
    /// whether it was new; once it answers, every event is durable.
    pub async fn accept(&self, events: Vec<Event>) -> anyhow::Result<Vec<bool>> {
        let fresh = self.shared.store.ingest(&events).await?;
        let new: Vec<(i64, Event)> = events
            .into_iter()
            .zip(&fresh)
            .filter_map(|(e, seq)| seq.map(|seq| (seq, e)))
            .collect();
        self.shared
            .metrics
            .events(new.len(), fresh.len().saturating_sub(new.len()));
        self.dispatch(new).await?;
        Ok(fresh.iter().map(Option::is_some).collect())
    }

    /// Hands accepted (durable) events to their partitions, in order: one hand-over per
    /// partition for the whole request (see [`Shared::send_all`]).
    async fn dispatch(&self, events: Vec<(i64, Event)>) -> anyhow::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let waiting = &self.shared.dispatching;
        let total = events.len();
        waiting.fetch_add(total, Relaxed);
        let mut left = total;
        let sent = self
            .shared
            .send_all(
                events
                    .into_iter()
                    .map(|(seq, e)| Msg::Event(seq, e))
                    .collect(),
                |n| {
                    waiting.fetch_sub(n, Relaxed);
                    left -= n;
                },
            )
            .await;
        if sent.is_err() {
            waiting.fetch_sub(left, Relaxed);
        }
        sent
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
            self.dispatch(batch).await?;
        }
        if count > 0 {
            tracing::info!(
                events = count,
                "re-dispatched events accepted before the last stop"
            );
        }
        Ok(())
    }

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

    /// Stores a business event with the runs it starts (one per live business-event
    /// journey it passes the `when` of); returns them, or `None` for a repeated id.
    pub async fn business_event(
        &self,
        event: Event,
    ) -> anyhow::Result<Option<Vec<crate::store::RunRecord>>> {
        runs::business_event(&self.shared, event).await
    }
}

/// The providers of `message` nodes: the outbox, kept in the store, and SMTP when a
/// server is configured. A channel's provider must exist.
fn messaging(
    settings: &Settings,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    plugins: Option<Arc<dyn crate::channels::ProviderPlugins>>,
) -> anyhow::Result<crate::channels::Messaging> {
    use crate::model::Channel;
    let now: Arc<dyn Fn() -> Timestamp + Send + Sync> = {
        let clock = clock.clone();
        Arc::new(move || clock.now())
    };
    let outbox: Arc<dyn crate::actions::ActionExecutor> =
        Arc::new(crate::channels::Outbox::new(store.clone(), now.clone()));
    let mut providers: std::collections::BTreeMap<String, Arc<dyn crate::actions::ActionExecutor>> =
        [("outbox".to_string(), outbox)].into_iter().collect();
    if let Some(url) = &settings.smtp_url {
        let smtp = crate::channels::Smtp::new(
            url,
            &settings.smtp_from,
            std::time::Duration::from_millis(settings.smtp_timeout_ms),
        )?;
        providers.insert("smtp".into(), Arc::new(smtp));
    }
    let defaults = [
        (Channel::Email, settings.email_provider.clone()),
        (Channel::Sms, settings.sms_provider.clone()),
        (Channel::Push, settings.push_provider.clone()),
    ];
    // Every provider is behind the suppression list, and records what it sent.
    let providers = providers
        .into_iter()
        .map(|(name, p)| {
            let guarded: Arc<dyn crate::actions::ActionExecutor> = Arc::new(
                crate::channels::Suppressed::new(&name, p, store.clone(), now.clone()),
            );
            (name, guarded)
        })
        .collect::<std::collections::BTreeMap<_, _>>();
    let mut messaging = crate::channels::Messaging::new(
        providers,
        defaults.clone(),
        crate::channels::RenderLimits {
            max_bytes: settings.message_max_bytes,
            time: std::time::Duration::from_millis(settings.template_render_ms),
        },
    );
    if let Some(plugins) = plugins {
        messaging.set_plugins(plugins, store.clone(), now.clone());
    }
    // A channel's provider exists: built in, or a plugin loaded from `plugin_dirs`.
    let known = messaging.provider_names();
    for (channel, provider) in &defaults {
        if !known.contains(provider) {
            anyhow::bail!(
                "{}_provider: there is no provider {provider:?} (known: {}{})",
                channel.as_str(),
                known.join(", "),
                if provider == "smtp" {
                    "; smtp needs smtp_url"
                } else {
                    ""
                }
            );
        }
    }
    for (channel, window) in &settings.quiet_hours {
        let Some(channel) = Channel::parse(channel) else {
            anyhow::bail!("quiet_hours.{channel}: not a channel (email, sms or push)");
        };
        let window = crate::channels::QuietHours::parse(window)
            .map_err(|e| anyhow::anyhow!("quiet_hours.{}: {e}", channel.as_str()))?;
        messaging.quiet.insert(channel.as_str(), window);
    }
    messaging.click_tracking = settings.click_tracking;
    messaging.count_days = settings.message_count_days;
    for (i, def) in settings.frequency_caps.iter().enumerate() {
        let cap = crate::channels::FrequencyCap::compile(def)
            .map_err(|e| anyhow::anyhow!("frequency_caps[{i}].{e}"))?;
        messaging.caps.push(cap);
    }
    Ok(messaging)
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

    /// Hands many messages to their partitions at once: grouped by partition (each
    /// group in the order given), each group put in its partition's queue in one go
    /// (room for all of it reserved first, so the partition takes it whole with its next
    /// batch), rather than one wake-up a message. `sent(n)` is told after each group.
    pub(crate) async fn send_all(
        &self,
        msgs: Vec<Msg>,
        mut sent: impl FnMut(usize),
    ) -> anyhow::Result<()> {
        let mut groups: Vec<Vec<Msg>> = (0..self.partitions.len()).map(|_| Vec::new()).collect();
        for msg in msgs {
            groups[self.partition_of(msg.profile_id())].push(msg);
        }
        for (p, group) in groups.into_iter().enumerate() {
            let queue = &self.partitions[p];
            let mut group = group.into_iter().peekable();
            while group.peek().is_some() {
                let n = group.len().min(queue.max_capacity());
                let permits = queue
                    .reserve_many(n)
                    .await
                    .map_err(|_| anyhow::anyhow!("partition {p} has stopped"))?;
                for (permit, msg) in permits.zip(group.by_ref()) {
                    permit.send(msg);
                }
                sent(n);
            }
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

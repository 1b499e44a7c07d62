//! Prometheus metrics of one engine, served as text at `/metrics`.
//!
//! Owns the metric families and their names: events accepted and rejected, entries,
//! node transitions, action calls and their latency per action, timers fired and their
//! lateness, events' latency from receipt to their effects being durable, store commit
//! latency, and gauges read from the store when scraped (timers pending). Recording is
//! a few atomic operations; this module never blocks a partition and never reads the
//! store except when scraped.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::journal::Step;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Code {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JourneyLabel {
    journey: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Transition {
    journey: String,
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionOutcome {
    action: String,
    outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 100 µs to about 27 minutes.
    Histogram::new(exponential_buckets(0.000_1, 4.0, 12))
}

/// Latency buckets fine enough in the milliseconds to read a p99 against a target such
/// as 15 ms: 0.5 ms to 30 s in steps of 1, 1.5, 2, 3, 5, 7.5 per decade, then one and
/// five minutes.
const LATENCY_BUCKETS: [f64; 31] = [
    0.000_5, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.007_5, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0,
    300.0,
];

/// What a scrape reads from the store before it renders.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scraped {
    pub timers_pending: u64,
    pub instances_live: u64,
    /// Rows written since the store opened, when the store counts them.
    pub rows_written: Option<u64>,
}

/// The engine's metrics. Clones share them.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    events_accepted: Counter,
    events_duplicate: Counter,
    events_rejected: Family<Code, Counter>,
    entries: Family<JourneyLabel, Counter>,
    discards: Family<Code, Counter>,
    transitions: Family<Transition, Counter>,
    action_calls: Family<ActionOutcome, Counter>,
    action_seconds: HistogramFamily<ActionLabel>,
    timers_fired: Counter,
    timer_lateness: Histogram,
    event_latency: Histogram,
    commit_seconds: Histogram,
    timers_pending: Gauge,
    instances_live: Gauge,
    store_rows_written: Counter,
    http_connections: Gauge,
    http_connections_shed: Counter,
    partitions_unhealthy: Gauge,
    action_calls_in_flight: Gauge,
    action_calls_left_batch: Counter,
    profile_states_cached: Counter,
    profile_states_read: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A batch took `cached` profile states from its partition's cache and read `read`
    /// from the store.
    pub fn profile_states(&self, cached: usize, read: usize) {
        self.inner.profile_states_cached.inc_by(cached as u64);
        self.inner.profile_states_read.inc_by(read as u64);
    }

    /// A connection opened (`+1`) or closed (`-1`).
    pub fn http_connection(&self, delta: i64) {
        self.inner.http_connections.inc_by(delta);
    }

    /// How many partitions report a lasting store failure.
    pub fn partitions_unhealthy(&self, n: usize) {
        self.inner
            .partitions_unhealthy
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Action calls running after their batch committed the instance as calling.
    pub fn action_calls_in_flight(&self, n: usize) {
        self.inner
            .action_calls_in_flight
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// An action call outlasted `action_wait_ms` and left its partition's batch.
    pub fn action_call_left_batch(&self) {
        self.inner.action_calls_left_batch.inc();
    }

    /// A connection closed at once: the connection limit was reached.
    pub fn http_connection_shed(&self) {
        self.inner.http_connections_shed.inc();
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("parcours");
        let events_accepted = Counter::default();
        let events_duplicate = Counter::default();
        let events_rejected = Family::<Code, Counter>::default();
        let entries = Family::<JourneyLabel, Counter>::default();
        let discards = Family::<Code, Counter>::default();
        let transitions = Family::<Transition, Counter>::default();
        let action_calls = Family::<ActionOutcome, Counter>::default();
        let action_seconds: HistogramFamily<ActionLabel> =
            Family::new_with_constructor(seconds_histogram);
        let timers_fired = Counter::default();
        let timer_lateness = seconds_histogram();
        let event_latency = Histogram::new(LATENCY_BUCKETS.iter().copied());
        let commit_seconds = seconds_histogram();
        let timers_pending = Gauge::default();
        let instances_live = Gauge::default();
        let store_rows_written = Counter::default();
        let http_connections = Gauge::default();
        let http_connections_shed = Counter::default();
        let partitions_unhealthy = Gauge::default();
        let action_calls_in_flight = Gauge::default();
        let action_calls_left_batch = Counter::default();
        let profile_states_cached = Counter::default();
        let profile_states_read = Counter::default();
        registry.register(
            "events_accepted",
            "Events accepted (stored durably) by ingestion",
            events_accepted.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events sent again with an id already stored (not processed again)",
            events_duplicate.clone(),
        );
        registry.register(
            "events_rejected",
            "Ingestion requests refused, by error code",
            events_rejected.clone(),
        );
        registry.register(
            "entries",
            "Profiles that entered a journey",
            entries.clone(),
        );
        registry.register(
            "entries_discarded",
            "Entries refused, by code",
            discards.clone(),
        );
        registry.register(
            "node_transitions",
            "Step events by journey, node kind and status",
            transitions.clone(),
        );
        registry.register(
            "action_calls",
            "Action calls by action and outcome (ok or an error code)",
            action_calls.clone(),
        );
        registry.register(
            "action_call_seconds",
            "Time of action calls, by action",
            action_seconds.clone(),
        );
        registry.register(
            "timers_fired",
            "Timers that came due and were handled",
            timers_fired.clone(),
        );
        registry.register(
            "timer_lateness_seconds",
            "How long after their due time timers were handed to their partition",
            timer_lateness.clone(),
        );
        registry.register(
            "event_latency_seconds",
            "From an event's receipt to the durable commit of its effects (the entries it \
             started, the reactions it moved)",
            event_latency.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Time of a partition batch's durable commit",
            commit_seconds.clone(),
        );
        registry.register(
            "timers_pending",
            "Instances waiting on a timer (read from the store when scraped)",
            timers_pending.clone(),
        );
        registry.register(
            "instances_live",
            "Instances active or waiting (read from the store when scraped)",
            instances_live.clone(),
        );
        registry.register(
            "store_rows_written",
            "Rows the store inserted, updated or deleted since it opened, index entries not \
             counted (read from the store when scraped; 0 for a store that does not count)",
            store_rows_written.clone(),
        );
        registry.register(
            "http_connections",
            "HTTP connections open now",
            http_connections.clone(),
        );
        registry.register(
            "http_connections_shed",
            "HTTP connections closed at once because http_max_connections were open",
            http_connections_shed.clone(),
        );
        registry.register(
            "partitions_unhealthy",
            "Partitions whose store commits or reads fail lastingly (see /healthz)",
            partitions_unhealthy.clone(),
        );
        registry.register(
            "action_calls_in_flight",
            "Action calls running outside their partition's batch now (their instances \
             committed as calling; at most max_calls_in_flight)",
            action_calls_in_flight.clone(),
        );
        registry.register(
            "action_calls_left_batch",
            "Action calls that outlasted action_wait_ms and finished outside their \
             partition's batch",
            action_calls_left_batch.clone(),
        );
        registry.register(
            "profile_states_cached",
            "Profile states a partition batch took from its partition's cache \
             (partition_cache_profiles) instead of reading them from the store",
            profile_states_cached.clone(),
        );
        registry.register(
            "profile_states_read",
            "Profile states a partition batch read from the store",
            profile_states_read.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                events_accepted,
                events_duplicate,
                events_rejected,
                entries,
                discards,
                transitions,
                action_calls,
                action_seconds,
                timers_fired,
                timer_lateness,
                event_latency,
                commit_seconds,
                timers_pending,
                instances_live,
                store_rows_written,
                http_connections,
                http_connections_shed,
                partitions_unhealthy,
                action_calls_in_flight,
                action_calls_left_batch,
                profile_states_cached,
                profile_states_read,
            }),
        }
    }

    pub fn events(&self, accepted: usize, duplicate: usize) {
        self.inner.events_accepted.inc_by(accepted as u64);
        self.inner.events_duplicate.inc_by(duplicate as u64);
    }

    pub fn rejected(&self, reason: crate::code::Code) {
        self.inner
            .events_rejected
            .get_or_create(&Code {
                code: reason.as_str().into(),
            })
            .inc();
    }

    /// Counts a committed batch's steps (folded per label set first: one counter update
    /// per journey, kind and status in the batch, not one per step).
    pub fn steps(&self, steps: &[Step]) {
        let mut transitions: std::collections::HashMap<(&str, &str, &'static str), u64> =
            std::collections::HashMap::new();
        let mut entries: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        let mut discards: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for s in steps {
            match s.status.as_str() {
                "entered" => *entries.entry(&s.journey_id).or_default() += 1,
                "discarded" => {
                    *discards
                        .entry(s.code.as_deref().unwrap_or_default())
                        .or_default() += 1
                }
                _ => {}
            }
            *transitions
                .entry((&s.journey_id, &s.kind, s.status.as_str()))
                .or_default() += 1;
        }
        for (journey, n) in entries {
            self.inner
                .entries
                .get_or_create(&JourneyLabel {
                    journey: journey.into(),
                })
                .inc_by(n);
        }
        for (code, n) in discards {
            self.inner
                .discards
                .get_or_create(&Code { code: code.into() })
                .inc_by(n);
        }
        for ((journey, kind, status), n) in transitions {
            self.inner
                .transitions
                .get_or_create(&Transition {
                    journey: journey.into(),
                    kind: kind.into(),
                    status: status.into(),
                })
                .inc_by(n);
        }
    }

    pub fn action(&self, action: &str, outcome: &str, seconds: f64) {
        self.inner
            .action_calls
            .get_or_create(&ActionOutcome {
                action: action.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.inner
            .action_seconds
            .get_or_create(&ActionLabel {
                action: action.into(),
            })
            .observe(seconds);
    }

    pub fn timer_fired(&self, lateness_seconds: f64) {
        self.inner.timers_fired.inc();
        self.inner.timer_lateness.observe(lateness_seconds.max(0.0));
    }

    /// Timers handed to their partitions since the start.
    pub fn timers_fired(&self) -> u64 {
        self.inner.timers_fired.get()
    }

    /// An event's effects are durable this long after it was received.
    pub fn event_latency(&self, seconds: f64) {
        self.inner.event_latency.observe(seconds.max(0.0));
    }

    pub fn commit(&self, seconds: f64) {
        self.inner.commit_seconds.observe(seconds);
    }

    /// The text exposition, with what was read from the store set first.
    pub fn render(&self, store: &Scraped) -> String {
        self.inner
            .timers_pending
            .set(i64::try_from(store.timers_pending).unwrap_or(i64::MAX));
        self.inner
            .instances_live
            .set(i64::try_from(store.instances_live).unwrap_or(i64::MAX));
        if let Some(rows) = store.rows_written {
            // The store's own count, which only grows while it is open.
            self.inner
                .store_rows_written
                .inner()
                .store(rows, std::sync::atomic::Ordering::Relaxed);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.inner.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_its_prefix() {
        let m = Metrics::new();
        m.events(3, 1);
        m.rejected(crate::code::Code::InvalidEvent);
        m.action("webhook@0.1.0", "ok", 0.012);
        m.timer_fired(0.5);
        m.commit(0.004);
        m.event_latency(0.012);
        let text = m.render(&Scraped {
            timers_pending: 7,
            instances_live: 9,
            rows_written: Some(41),
        });
        for needle in [
            "parcours_events_accepted_total 3",
            "parcours_events_rejected_total{code=\"INVALID_EVENT\"} 1",
            "parcours_action_calls_total{action=\"webhook@0.1.0\",outcome=\"ok\"} 1",
            "parcours_action_call_seconds_bucket",
            "parcours_timers_pending 7",
            "parcours_instances_live 9",
            "parcours_store_rows_written_total 41",
            "parcours_store_commit_seconds_count 1",
            "parcours_timer_lateness_seconds_sum 0.5",
            "parcours_event_latency_seconds_bucket{le=\"0.015\"} 1",
            "parcours_event_latency_seconds_bucket{le=\"0.01\"} 0",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}

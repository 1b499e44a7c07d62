//! The store conformance cases: what every backend of [`Store`] must do, written once
//! against the traits and run against each backend (SQLite runs them all; the PostgreSQL
//! backend, being built, runs those of the concerns it implements: [`RESOURCE_CASES`]).
//!
//! Each case gets a new, empty store and says, in its name, the rule it checks. Cases
//! only use the traits: they must never reach into a backend's tables.

mod partition;
mod resources;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::{
    AlertStore, ConsentStore, DeliveryStore, JourneyStore, OutboxStore, RunStore, Store,
    TemplateStore, WriteBatch,
};
use crate::journal::{Instance, InstanceData, Status, Step, StepStatus};
use crate::model::{Event, Profile};

type Case = fn(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every case, by name.
pub(crate) const CASES: &[(&str, Case)] = &[
    ("events_are_stored_once_per_id", |s| {
        Box::pin(partition::events_are_stored_once_per_id(s))
    }),
    (
        "events_processed_out_of_order_over_many_commits_leave_the_rest_as_backlog",
        |s| {
            Box::pin(
                partition::events_processed_out_of_order_over_many_commits_leave_the_rest_as_backlog(s),
            )
        },
    ),
    ("a_commit_reads_back_as_profile_state", |s| {
        Box::pin(partition::a_commit_reads_back_as_profile_state(s))
    }),
    ("timers_are_due_in_order_and_page_after_a_cursor", |s| {
        Box::pin(partition::timers_are_due_in_order_and_page_after_a_cursor(
            s,
        ))
    }),
    ("an_ended_instance_is_no_longer_live", |s| {
        Box::pin(partition::an_ended_instance_is_no_longer_live(s))
    }),
    (
        "the_last_entry_of_each_journey_is_read_whatever_the_history",
        |s| Box::pin(partition::the_last_entry_of_each_journey_is_read_whatever_the_history(s)),
    ),
    ("live_instances_page_by_node_in_creation_order", |s| {
        Box::pin(partition::live_instances_page_by_node_in_creation_order(s))
    }),
    ("steps_read_back_in_order_by_instance_and_event", |s| {
        Box::pin(partition::steps_read_back_in_order_by_instance_and_event(s))
    }),
    ("a_deleted_profile_takes_its_aliases_and_memberships", |s| {
        Box::pin(partition::a_deleted_profile_takes_its_aliases_and_memberships(s))
    }),
    (
        "a_deleted_profile_is_erased_from_its_events_steps_and_instances",
        |s| Box::pin(partition::a_deleted_profile_is_erased_from_its_events_steps_and_instances(s)),
    ),
    ("audiences_and_capping_rules_are_kept", |s| {
        Box::pin(resources::audiences_and_capping_rules_are_kept(s))
    }),
    ("held_entries_keep_their_order_until_released", |s| {
        Box::pin(resources::held_entries_keep_their_order_until_released(s))
    }),
    (
        "consent_changes_come_with_commits_in_order_per_profile",
        |s| Box::pin(resources::consent_changes_come_with_commits_in_order_per_profile(s)),
    ),
    ("merges_wait_until_applied", |s| {
        Box::pin(partition::merges_wait_until_applied(s))
    }),
    ("reports_count_steps_and_live_instances", |s| {
        Box::pin(resources::reports_count_steps_and_live_instances(s))
    }),
];

/// The concerns a backend that is being built implements first (the PostgreSQL backend
/// today): shared resources that no partition owns.
pub(crate) trait Resources:
    JourneyStore + RunStore + TemplateStore + OutboxStore + AlertStore + ConsentStore + DeliveryStore
{
}

impl<T> Resources for T where
    T: JourneyStore
        + RunStore
        + TemplateStore
        + OutboxStore
        + AlertStore
        + ConsentStore
        + DeliveryStore
{
}

type ResourceCase = fn(Arc<dyn Resources>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// The cases of [`Resources`], by name (part of every case a whole [`Store`] runs).
pub(crate) const RESOURCE_CASES: &[(&str, ResourceCase)] = &[
    ("journeys_go_from_draft_to_versions_and_statuses", |s| {
        Box::pin(resources::journeys_go_from_draft_to_versions_and_statuses(
            s,
        ))
    }),
    ("runs_are_created_once_and_resume", |s| {
        Box::pin(resources::runs_are_created_once_and_resume(s))
    }),
    (
        "subscription_groups_suppressions_sent_messages_and_the_link_secret_are_kept",
        |s| {
            Box::pin(
                resources::subscription_groups_suppressions_sent_messages_and_the_link_secret_are_kept(s),
            )
        },
    ),
    ("alerts_keep_their_state_until_deleted", |s| {
        Box::pin(resources::alerts_keep_their_state_until_deleted(s))
    }),
    ("templates_keep_every_version", |s| {
        Box::pin(resources::templates_keep_every_version(s))
    }),
    ("the_outbox_keeps_each_message_once_in_order", |s| {
        Box::pin(resources::the_outbox_keeps_each_message_once_in_order(s))
    }),
];

/// Runs every case, each on a new store from `make`; a failure names its case.
pub(crate) async fn run_all<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    for (name, case) in CASES {
        run_case(name, case(make().await)).await;
    }
    for (name, case) in RESOURCE_CASES {
        run_case(name, case(make().await)).await;
    }
}

/// Runs one case on its own task; a failure names the case.
pub(crate) async fn run_case(name: &str, case: Pin<Box<dyn Future<Output = ()> + Send>>) {
    if let Err(e) = tokio::spawn(case).await {
        panic!("store conformance case {name} failed: {e}");
    }
}

pub(super) fn at(minutes: i64) -> Timestamp {
    let base: Timestamp = "2026-06-01T08:00:00Z".parse().expect("a constant time");
    base + SignedDuration::from_mins(minutes)
}

pub(super) fn event(id: &str, event_type: &str, profile: &str, minute: i64) -> Event {
    Event {
        id: id.into(),
        event_type: event_type.into(),
        profile_id: profile.into(),
        timestamp: at(minute),
        received_at: at(minute),
        data: json!({"n": minute}),
    }
}

pub(super) fn profile(id: &str) -> Profile {
    Profile {
        id: id.into(),
        attributes: json!({"tier": "gold"}),
        timezone: Some("Europe/Paris".into()),
        aliases: BTreeMap::from([("email".into(), format!("{id}@example.com"))]),
        created_at: at(0),
        updated_at: at(0),
    }
}

pub(super) fn instance(
    id: &str,
    journey: &str,
    profile: &str,
    status: Status,
    wake: Option<i64>,
) -> Instance {
    Instance {
        id: id.into(),
        journey_id: journey.into(),
        version: 1,
        profile_id: profile.into(),
        status,
        node: Some("wait".into()),
        entered_at: at(1),
        updated_at: at(1),
        ended_at: (!status.is_live()).then(|| at(2)),
        wake_at: wake.map(at),
        deadline: at(60 * 24 * 30),
        end_reason: None,
        data: InstanceData {
            event: json!({"type": "signup"}),
            entry_at: Some(at(1)),
            ..InstanceData::default()
        },
    }
}

pub(super) fn step(instance: &str, node: &str, status: StepStatus, minute: i64) -> Step {
    Step {
        seq: 0,
        instance_id: Some(instance.into()),
        journey_id: "welcome".into(),
        version: 1,
        profile_id: "p1".into(),
        event_id: Some("e1".into()),
        node: node.into(),
        kind: if node == "entry" { "entry" } else { "wait" }.into(),
        status,
        at: at(minute),
        code: None,
        message: None,
        detail: None,
    }
}

pub(super) async fn commit(store: &Arc<dyn Store>, batch: WriteBatch) {
    store.commit(Arc::new(batch)).await.expect("commit");
}

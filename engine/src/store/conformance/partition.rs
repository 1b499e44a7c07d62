//! Conformance cases of the partition's concerns: events, the batch commit and the
//! profile states it reads back, timers, instances and steps, profile deletion, merges.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::{at, commit, event, instance, profile, step};
use crate::journal::{Instance, Status, Step, StepStatus};
use crate::store::{
    Membership, ProcessedEvent, ProfileMerge, ProfileWrite, Store, Transition, WriteBatch,
};

pub(super) async fn events_are_stored_once_per_id(store: Arc<dyn Store>) {
    let fresh = store
        .ingest(&[
            event("e1", "signup", "p1", 0),
            event("e2", "purchase", "p1", 1),
        ])
        .await
        .expect("ingest");
    let (Some(s1), Some(s2)) = (fresh[0], fresh[1]) else {
        panic!("both new: {fresh:?}");
    };
    assert!(s1 < s2, "rising sequence: {fresh:?}");
    // A repeat of an id is not new, even with other content.
    let again = store
        .ingest(&[
            event("e1", "other", "p2", 5),
            event("e3", "signup", "p2", 2),
        ])
        .await
        .expect("ingest again");
    assert_eq!(again[0], None);
    assert!(again[1].is_some_and(|s3| s3 > s2), "{again:?}");
    let stored = store.get_event("e1").await.expect("read").expect("e1");
    assert_eq!(stored.event.event_type, "signup");
    assert!(!stored.processed);
    assert!(store.get_event("nope").await.expect("read").is_none());

    let backlog = store.unprocessed_events(0, 10).await.expect("backlog");
    let ids: Vec<&str> = backlog.iter().map(|(_, e)| e.id.as_str()).collect();
    assert_eq!(ids, ["e1", "e2", "e3"], "arrival order");
    assert_eq!(backlog[0].0, s1, "the seq ingest answered");
    assert!(
        backlog.windows(2).all(|w| w[0].0 < w[1].0),
        "rising sequence"
    );
    let after_first = store
        .unprocessed_events(backlog[0].0, 10)
        .await
        .expect("backlog after");
    assert_eq!(after_first.len(), 2);

    commit(
        &store,
        WriteBatch {
            processed_events: vec![ProcessedEvent {
                seq: s1,
                id: "e1".into(),
            }],
            ..WriteBatch::default()
        },
    )
    .await;
    assert!(
        store
            .get_event("e1")
            .await
            .expect("read")
            .expect("e1")
            .processed
    );
    let backlog = store.unprocessed_events(0, 10).await.expect("backlog");
    assert_eq!(backlog.len(), 2);

    let between = store
        .events_between(at(0), at(2), Some(vec!["signup".into()]), 10)
        .await
        .expect("between");
    let ids: Vec<&str> = between.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["e1"], "only signups received in [0, 2)");
    let all = store
        .events_between(at(0), at(10), None, 2)
        .await
        .expect("between");
    assert_eq!(all.len(), 2, "the limit holds");
}

/// A store may record what is processed in bulk (SQLite folds its marks every few dozen
/// commits): whatever it does, the backlog and each event's flag answer the same, however
/// many commits processed events out of their order, and events set aside long behind
/// later ones stay in the backlog until a commit takes them.
pub(super) async fn events_processed_out_of_order_over_many_commits_leave_the_rest_as_backlog(
    store: Arc<dyn Store>,
) {
    let events: Vec<_> = (0..1000)
        .map(|i: usize| event(&format!("e{i}"), "t", &format!("p{}", i % 7), i as i64))
        .collect();
    let seqs: Vec<i64> = store
        .ingest(&events)
        .await
        .expect("ingest")
        .into_iter()
        .map(|s| s.expect("new"))
        .collect();
    let processed = |i: usize| ProcessedEvent {
        seq: seqs[i],
        id: format!("e{i}"),
    };
    // 200 commits of 4 events each, every one taking events from two places (two
    // partitions), leaving out every fifth event (set aside) until the end.
    let kept: Vec<usize> = (0..1000).filter(|i| i % 5 != 3).collect();
    let (front, back) = kept.split_at(kept.len() / 2);
    for (a, b) in front.chunks(2).zip(back.chunks(2)) {
        let processed_events = a.iter().chain(b).map(|&i| processed(i)).collect();
        let batch = WriteBatch {
            processed_events,
            ..WriteBatch::default()
        };
        commit(&store, batch).await;
    }
    let backlog = store.unprocessed_events(0, 1000).await.expect("backlog");
    let ids: Vec<String> = backlog.iter().map(|(_, e)| e.id.clone()).collect();
    let set_aside: Vec<String> = (0..1000)
        .filter(|i| i % 5 == 3)
        .map(|i| format!("e{i}"))
        .collect();
    assert_eq!(ids, set_aside, "the set-aside events, oldest first");
    let page = store
        .unprocessed_events(backlog[9].0, 5)
        .await
        .expect("page");
    assert_eq!(page.len(), 5);
    assert_eq!(page[0].1.id, set_aside[10]);
    for i in [0, 3, 499, 500, 998, 999] {
        let record = store
            .get_event(&format!("e{i}"))
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(record.processed, i % 5 != 3, "e{i}");
    }
    let rest = set_aside.iter().map(|id| {
        let i: usize = id[1..].parse().expect("index");
        processed(i)
    });
    commit(
        &store,
        WriteBatch {
            processed_events: rest.collect(),
            ..WriteBatch::default()
        },
    )
    .await;
    assert!(
        store
            .unprocessed_events(0, 10)
            .await
            .expect("backlog")
            .is_empty()
    );
    let last = store.get_event("e998").await.expect("read").expect("e998");
    assert!(last.processed);
}

pub(super) async fn a_commit_reads_back_as_profile_state(store: Arc<dyn Store>) {
    commit(
        &store,
        WriteBatch {
            profiles: vec![ProfileWrite {
                profile: profile("p1"),
                aliases_changed: true,
            }],
            memberships: vec![Membership {
                audience: "vip".into(),
                profile_id: "p1".into(),
                since: Some(at(1)),
            }],
            transitions: vec![Transition {
                audience: "vip".into(),
                profile_id: "p1".into(),
                direction: "entered",
                at: at(1),
            }],
            capping: vec![
                ("p1".into(), "weekly".into(), at(1)),
                ("p1".into(), "message:sms:marketing".into(), at(0)),
                ("p1".into(), "message:sms:marketing".into(), at(2)),
            ],
            instances: vec![instance("i1", "welcome", "p1", Status::Waiting, Some(60))],
            ..WriteBatch::default()
        },
    )
    .await;
    // Counted entries older than a rule reads are deleted, of that rule only.
    commit(
        &store,
        WriteBatch {
            capping_expired: vec![("p1".into(), "message:sms:marketing".into(), at(2))],
            ..WriteBatch::default()
        },
    )
    .await;

    let states = store
        .profile_states(vec!["p1".into(), "ghost".into()])
        .await
        .expect("states");
    let state = &states["p1"];
    assert_eq!(state.profile.as_ref(), Some(&profile("p1")));
    assert_eq!(state.live.len(), 1);
    assert_eq!(
        state.live[0],
        instance("i1", "welcome", "p1", Status::Waiting, Some(60))
    );
    let welcome = &state.last_entered["welcome"];
    assert_eq!((welcome.at, welcome.id.as_str()), (at(1), "i1"));
    assert_eq!(state.audiences.get("vip"), Some(&at(1)));
    assert_eq!(
        state.capping,
        [
            ("weekly".to_string(), at(1)),
            ("message:sms:marketing".to_string(), at(2))
        ]
    );
    let ghost = &states["ghost"];
    assert!(
        ghost.profile.is_none() && ghost.live.is_empty(),
        "unknown profile: empty state"
    );

    assert_eq!(
        store.get_profile("p1").await.expect("read"),
        Some(profile("p1"))
    );
    assert_eq!(
        store
            .resolve_identity("email", "p1@example.com")
            .await
            .expect("resolve"),
        Some("p1".into())
    );
    assert_eq!(
        store.profile_audiences("p1").await.expect("audiences"),
        [("vip".to_string(), at(1))]
    );
    let transitions = store.profile_transitions("p1").await.expect("transitions");
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].direction, "entered");
    assert_eq!(
        store
            .audience_members("vip", None, None, 10)
            .await
            .expect("members"),
        [("p1".to_string(), at(1))]
    );
    assert_eq!(
        store.profile_ids(None, 10).await.expect("ids"),
        ["p1".to_string()]
    );
    assert_eq!(
        store.get_instance("i1").await.expect("read"),
        Some(instance("i1", "welcome", "p1", Status::Waiting, Some(60)))
    );
    assert_eq!(
        store.instances_of_profile("p1").await.expect("read").len(),
        1
    );
    assert_eq!(
        store.count_instances("welcome").await.expect("count"),
        BTreeMap::from([("waiting".to_string(), 1)])
    );
    assert_eq!(store.instance_gauges().await.expect("gauges"), (1, 1));
    assert_eq!(
        store
            .profiles_in_journey("welcome", Some(1), "", 10)
            .await
            .expect("profiles in journey"),
        ["p1".to_string()]
    );
    assert!(
        store
            .profiles_in_journey("welcome", Some(2), "", 10)
            .await
            .expect("profiles in journey")
            .is_empty(),
        "none in another version"
    );
}

pub(super) async fn timers_are_due_in_order_and_page_after_a_cursor(store: Arc<dyn Store>) {
    assert_eq!(store.next_wake().await.expect("wake"), None);
    commit(
        &store,
        WriteBatch {
            instances: vec![
                instance("i3", "welcome", "p3", Status::Waiting, Some(30)),
                instance("i1", "welcome", "p1", Status::Waiting, Some(10)),
                instance("i2", "welcome", "p2", Status::Waiting, Some(10)),
                instance("i4", "welcome", "p4", Status::Waiting, Some(90)),
            ],
            ..WriteBatch::default()
        },
    )
    .await;
    assert_eq!(store.next_wake().await.expect("wake"), Some(at(10)));
    let due = store.due_timers(at(30), None, 10).await.expect("due");
    let ids: Vec<&str> = due.iter().map(|t| t.instance_id.as_str()).collect();
    assert_eq!(
        ids,
        ["i1", "i2", "i3"],
        "by due time, then id; not the future one"
    );
    let page = store
        .due_timers(at(30), Some(due[0].clone()), 1)
        .await
        .expect("due after");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].instance_id, "i2");
    assert_eq!(page[0].profile_id, "p2");
    assert_eq!(page[0].wake_at, at(10));
}

pub(super) async fn an_ended_instance_is_no_longer_live(store: Arc<dyn Store>) {
    commit(
        &store,
        WriteBatch {
            instances: vec![instance("i1", "welcome", "p1", Status::Waiting, Some(10))],
            ..WriteBatch::default()
        },
    )
    .await;
    let mut ended = instance("i1", "welcome", "p1", Status::Completed, None);
    ended.node = Some("done".into());
    commit(
        &store,
        WriteBatch {
            instances: vec![ended.clone()],
            ..WriteBatch::default()
        },
    )
    .await;
    let states = store
        .profile_states(vec!["p1".into()])
        .await
        .expect("states");
    assert!(states["p1"].live.is_empty());
    let welcome = &states["p1"].last_entered["welcome"];
    assert_eq!(
        (welcome.at, welcome.id.as_str()),
        (at(1), "i1"),
        "an ended entry still counts for re-entrance"
    );
    assert!(
        store
            .due_timers(at(100), None, 10)
            .await
            .expect("due")
            .is_empty()
    );
    assert_eq!(store.next_wake().await.expect("wake"), None);
    assert_eq!(store.instance_gauges().await.expect("gauges"), (0, 0));
    assert_eq!(store.get_instance("i1").await.expect("read"), Some(ended));
}

pub(super) async fn the_last_entry_of_each_journey_is_read_whatever_the_history(
    store: Arc<dyn Store>,
) {
    // p1's history: ended entries into `welcome` under two versions and the draft,
    // and into `other`; one live instance; two entries processed at the same time.
    let entry = |id: &str, journey: &str, version: u32, entered: i64, entry: i64, status| {
        let mut i = instance(id, journey, "p1", status, None);
        i.version = version;
        i.entered_at = at(entered);
        i.data.entry_at = Some(at(entry));
        i
    };
    let mut instances = Vec::new();
    for n in 0..50_i64 {
        let version = 1 + (n % 2) as u32;
        instances.push(entry(
            &format!("w{n:02}"),
            "welcome",
            version,
            n,
            n,
            Status::Completed,
        ));
    }
    instances.extend([
        // The latest entry of the published versions: processed last, its event earlier.
        entry("late", "welcome", 2, 60, 55, Status::Completed),
        // The draft's entries count apart.
        entry("draft1", "welcome", 0, 70, 70, Status::Completed),
        entry("draft2", "welcome", 0, 65, 65, Status::Completed),
        // Two entries of `other` processed at the same time: the later event wins.
        entry("o-b", "other", 1, 40, 38, Status::Completed),
        entry("o-a", "other", 1, 40, 39, Status::Completed),
        entry("live", "third", 1, 30, 30, Status::Waiting),
    ]);
    commit(
        &store,
        WriteBatch {
            profiles: vec![ProfileWrite {
                profile: profile("p1"),
                aliases_changed: false,
            }],
            instances,
            ..WriteBatch::default()
        },
    )
    .await;
    let states = store
        .profile_states(vec!["p1".into(), "p2".into()])
        .await
        .expect("states");
    let latest = &states["p1"].last_entered;
    assert_eq!(latest.len(), 4, "{latest:?}");
    let last = |key: &str| (latest[key].at, latest[key].id.as_str());
    assert_eq!(last("welcome"), (at(55), "late"));
    assert_eq!(last("welcome\u{1f}test"), (at(70), "draft1"));
    assert_eq!(last("other"), (at(39), "o-a"));
    assert_eq!(last("third"), (at(30), "live"));
    let live: Vec<&str> = states["p1"].live.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(live, ["live"]);
    assert!(states["p2"].last_entered.is_empty());
}

pub(super) async fn live_instances_page_by_node_in_creation_order(store: Arc<dyn Store>) {
    let mut elsewhere = instance("i3", "welcome", "p3", Status::Waiting, Some(10));
    elsewhere.node = Some("send".into());
    commit(
        &store,
        WriteBatch {
            instances: vec![
                instance("i2", "welcome", "p2", Status::Waiting, Some(10)),
                instance("i1", "welcome", "p1", Status::Waiting, Some(10)),
                elsewhere,
                instance("i4", "welcome", "p4", Status::Completed, None),
                instance("i5", "other", "p5", Status::Waiting, Some(10)),
            ],
            ..WriteBatch::default()
        },
    )
    .await;
    let ids = |page: Option<Vec<Instance>>| {
        page.expect("a known cursor")
            .into_iter()
            .map(|i| i.id)
            .collect::<Vec<_>>()
    };
    let page = |after: Option<&'static str>, limit| {
        let store = store.clone();
        async move {
            store
                .live_at_node("welcome", "wait", after, limit)
                .await
                .expect("read")
        }
    };
    assert_eq!(ids(page(None, 10).await), ["i2", "i1"], "creation order");
    assert_eq!(ids(page(None, 1).await), ["i2"]);
    assert_eq!(ids(page(Some("i2"), 1).await), ["i1"]);
    assert!(ids(page(Some("i1"), 10).await).is_empty());
    assert_eq!(page(Some("nobody"), 10).await, None, "an unknown cursor");
}

pub(super) async fn steps_read_back_in_order_by_instance_and_event(store: Arc<dyn Store>) {
    // Steps name events the store accepted before.
    store
        .ingest(&[
            event("e1", "signup", "p1", 0),
            event("e2", "purchase", "p1", 1),
        ])
        .await
        .expect("ingest");
    let steps = vec![
        step("i1", "entry", StepStatus::Entered, 1),
        step("i1", "check", StepStatus::Passed, 1),
        step("i1", "wait", StepStatus::Waiting, 1),
    ];
    commit(
        &store,
        WriteBatch {
            steps: steps.clone(),
            ..WriteBatch::default()
        },
    )
    .await;
    let mut later = step("i1", "wait", StepStatus::Passed, 9);
    later.event_id = Some("e2".into());
    commit(
        &store,
        WriteBatch {
            steps: vec![later.clone()],
            ..WriteBatch::default()
        },
    )
    .await;
    let read = store.steps_of_instance("i1").await.expect("steps");
    assert!(read.windows(2).all(|w| w[0].seq < w[1].seq), "rising seq");
    let without_seq: Vec<Step> = read.into_iter().map(|s| Step { seq: 0, ..s }).collect();
    let mut expected = steps.clone();
    expected.push(later.clone());
    assert_eq!(without_seq, expected);
    let of_event = store.steps_of_event("e1").await.expect("steps");
    assert_eq!(of_event.len(), 3);
    assert_eq!(store.steps_of_event("e2").await.expect("steps").len(), 1);
}

pub(super) async fn a_deleted_profile_takes_its_aliases_and_memberships(store: Arc<dyn Store>) {
    commit(
        &store,
        WriteBatch {
            profiles: vec![
                ProfileWrite {
                    profile: profile("p1"),
                    aliases_changed: true,
                },
                ProfileWrite {
                    profile: profile("p2"),
                    aliases_changed: true,
                },
            ],
            memberships: vec![Membership {
                audience: "vip".into(),
                profile_id: "p1".into(),
                since: Some(at(1)),
            }],
            capping: vec![("p1".into(), "weekly".into(), at(1))],
            ..WriteBatch::default()
        },
    )
    .await;
    commit(
        &store,
        WriteBatch {
            profile_deletes: vec!["p1".into()],
            ..WriteBatch::default()
        },
    )
    .await;
    assert_eq!(store.get_profile("p1").await.expect("read"), None);
    assert_eq!(
        store
            .resolve_identity("email", "p1@example.com")
            .await
            .expect("resolve"),
        None
    );
    assert!(
        store
            .profile_audiences("p1")
            .await
            .expect("read")
            .is_empty()
    );
    let state = &store
        .profile_states(vec!["p1".into()])
        .await
        .expect("states")["p1"];
    assert!(state.capping.is_empty());
    assert_eq!(
        store.profile_ids(None, 10).await.expect("ids"),
        ["p2".to_string()]
    );
    assert_eq!(
        store.profile_ids(Some("p1".into()), 10).await.expect("ids"),
        ["p2".to_string()],
        "paging after an id"
    );
}

pub(super) async fn a_deleted_profile_is_erased_from_its_events_steps_and_instances(
    store: Arc<dyn Store>,
) {
    let mut personal = event("e1", "signup", "p1", 0);
    personal.data = json!({"first_name": "Ada", "email": "ada@example.com"});
    let mut other = event("e2", "signup", "p2", 0);
    other.data = json!({"first_name": "Bob"});
    store.ingest(&[personal, other]).await.expect("ingest");
    let mut i1 = instance("i1", "welcome", "p1", Status::Completed, None);
    i1.data.event = json!({"data": {"first_name": "Ada"}});
    i1.data.step = 3;
    let mut s1 = step("i1", "hello", StepStatus::Passed, 1);
    s1.detail = Some(json!({"params": {"name": "Ada"}, "label": "gold"}));
    s1.message = Some("said hello to Ada".into());
    commit(
        &store,
        WriteBatch {
            profiles: vec![ProfileWrite {
                profile: profile("p1"),
                aliases_changed: true,
            }],
            instances: vec![i1],
            steps: vec![s1],
            ..WriteBatch::default()
        },
    )
    .await;
    commit(
        &store,
        WriteBatch {
            profile_deletes: vec!["p1".into()],
            profile_erasures: vec!["p1".into()],
            ..WriteBatch::default()
        },
    )
    .await;
    let e1 = store.get_event("e1").await.expect("read").expect("e1");
    assert_eq!(e1.event.data, json!({}), "kept: id, type, profile, times");
    assert_eq!(e1.event.event_type, "signup");
    let e2 = store.get_event("e2").await.expect("read").expect("e2");
    assert_eq!(
        e2.event.data,
        json!({"first_name": "Bob"}),
        "another profile's"
    );
    let steps = store.steps_of_instance("i1").await.expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].message, None);
    assert_eq!(steps[0].detail, Some(json!({"label": "gold"})));
    assert_eq!(steps[0].status, StepStatus::Passed);
    let i1 = store.get_instance("i1").await.expect("read").expect("i1");
    assert_eq!(i1.data.event, json!({}));
    assert_eq!(i1.data.step, 3);
    assert_eq!(i1.status, Status::Completed);
}

pub(super) async fn merges_wait_until_applied(store: Arc<dyn Store>) {
    let merge = ProfileMerge {
        id: "m1".into(),
        from: "anon".into(),
        into: "p1".into(),
        at: at(3),
        attributes: json!({"cart": 2}),
        timezone: None,
        aliases: BTreeMap::new(),
        lists: vec!["vip".into()],
        capping: vec![("weekly".into(), at(1))],
        instances: vec![instance("i1", "welcome", "anon", Status::Exited, None)],
    };
    commit(
        &store,
        WriteBatch {
            merges: vec![merge.clone()],
            ..WriteBatch::default()
        },
    )
    .await;
    assert_eq!(store.pending_merges().await.expect("merges"), [merge]);
    commit(
        &store,
        WriteBatch {
            merges_done: vec!["m1".into()],
            ..WriteBatch::default()
        },
    )
    .await;
    assert!(store.pending_merges().await.expect("merges").is_empty());
}

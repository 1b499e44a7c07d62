//! Conformance cases of the resources a store keeps: audiences and capping rules,
//! journeys and their versions, held entries, runs, alerts, reports, message templates,
//! consent.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::{Resources, at, commit, event, instance, step};
use crate::journal::{Status, StepStatus};
use crate::store::{
    HeldEntry, JourneyStatus, Membership, Pause, Publication, RunRecord, RunStatus, Store,
    TestMode, WriteBatch,
};

pub(super) async fn audiences_and_capping_rules_are_kept(store: Arc<dyn Store>) {
    store
        .put_audience("vip", json!({"type": "list"}), at(0))
        .await
        .expect("put");
    store
        .put_audience("vip", json!({"type": "rule", "rule": "true"}), at(5))
        .await
        .expect("replace");
    commit(
        &store,
        WriteBatch {
            memberships: vec![
                Membership {
                    audience: "vip".into(),
                    profile_id: "p1".into(),
                    since: Some(at(1)),
                },
                Membership {
                    audience: "vip".into(),
                    profile_id: "p2".into(),
                    since: Some(at(7)),
                },
            ],
            ..WriteBatch::default()
        },
    )
    .await;
    let vip = store.get_audience("vip").await.expect("read").expect("vip");
    assert_eq!(vip.definition, json!({"type": "rule", "rule": "true"}));
    assert_eq!(
        (vip.created_at, vip.updated_at, vip.size),
        (at(0), at(5), 2)
    );
    assert_eq!(store.list_audiences().await.expect("list").len(), 1);
    let since = store
        .audience_members("vip", None, Some(at(5)), 10)
        .await
        .expect("members");
    assert_eq!(
        since,
        [("p2".to_string(), at(7))],
        "only those who joined since"
    );
    let after = store
        .audience_members("vip", Some("p1".into()), None, 10)
        .await
        .expect("members");
    assert_eq!(after.len(), 1);
    // A membership with no `since` ends it.
    commit(
        &store,
        WriteBatch {
            memberships: vec![Membership {
                audience: "vip".into(),
                profile_id: "p1".into(),
                since: None,
            }],
            ..WriteBatch::default()
        },
    )
    .await;
    assert_eq!(
        store
            .get_audience("vip")
            .await
            .expect("read")
            .expect("vip")
            .size,
        1
    );

    store
        .put_capping_rule("weekly", json!({"max": 1}), at(0))
        .await
        .expect("put rule");
    store
        .put_capping_rule("weekly", json!({"max": 2}), at(1))
        .await
        .expect("replace rule");
    assert_eq!(
        store.capping_rules().await.expect("rules"),
        [("weekly".to_string(), json!({"max": 2}))]
    );
}

pub(super) async fn journeys_go_from_draft_to_versions_and_statuses(store: Arc<dyn Resources>) {
    let def = json!({"entry": {"type": "event", "event": "signup"}, "start": "done",
        "nodes": {"done": {"type": "end"}}});
    assert!(store.get_journey("welcome").await.expect("read").is_none());
    store
        .put_draft("welcome", def.clone(), at(0))
        .await
        .expect("draft");
    let draft = store
        .get_journey("welcome")
        .await
        .expect("read")
        .expect("j");
    assert_eq!(draft.status, JourneyStatus::Draft);
    assert_eq!(draft.draft, Some(def.clone()));
    assert!(draft.versions.is_empty());

    let publication = Publication {
        by: Some("ann".into()),
        note: Some("first".into()),
    };
    assert_eq!(
        store
            .publish("welcome", def.clone(), at(1), publication)
            .await
            .expect("publish"),
        1
    );
    assert_eq!(
        store
            .publish("welcome", def.clone(), at(2), Publication::default())
            .await
            .expect("publish"),
        2
    );
    let live = store
        .get_journey("welcome")
        .await
        .expect("read")
        .expect("j");
    assert_eq!(live.status, JourneyStatus::Live);
    let versions: Vec<u32> = live.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(live.versions[0].published_by.as_deref(), Some("ann"));
    assert_eq!(live.versions[0].note.as_deref(), Some("first"));
    let one = store
        .version("welcome", 1)
        .await
        .expect("read")
        .expect("v1");
    assert_eq!((one.definition, one.published_at), (def.clone(), at(1)));
    assert!(store.version("welcome", 3).await.expect("read").is_none());
    assert_eq!(store.versions().await.expect("versions").len(), 2);

    let pause = Pause {
        entries: true,
        actions: false,
        paused_at: at(3),
        until: at(100),
        by: None,
    };
    store
        .set_journey_status("welcome", JourneyStatus::Paused, Some(pause.clone()), at(3))
        .await
        .expect("pause");
    let paused = store
        .get_journey("welcome")
        .await
        .expect("read")
        .expect("j");
    assert_eq!(
        (paused.status, paused.pause),
        (JourneyStatus::Paused, Some(pause))
    );
    store
        .set_journey_status("welcome", JourneyStatus::Live, None, at(4))
        .await
        .expect("resume");
    let resumed = store
        .get_journey("welcome")
        .await
        .expect("read")
        .expect("j");
    assert_eq!((resumed.status, resumed.pause), (JourneyStatus::Live, None));

    let test = TestMode {
        wait_seconds: 5,
        dry_run: true,
        started_at: at(5),
        by: None,
    };
    store
        .set_test_mode("welcome", Some(test.clone()))
        .await
        .expect("test mode");
    assert_eq!(
        store
            .get_journey("welcome")
            .await
            .expect("read")
            .expect("j")
            .test,
        Some(test)
    );
    store
        .set_test_mode("welcome", None)
        .await
        .expect("end test");
    assert_eq!(
        store
            .get_journey("welcome")
            .await
            .expect("read")
            .expect("j")
            .test,
        None
    );
    store
        .put_draft("other", def, at(6))
        .await
        .expect("second journey");
    assert_eq!(store.list_journeys().await.expect("list").len(), 2);
}

fn held(journey: &str, profile: &str, minute: i64) -> HeldEntry {
    HeldEntry {
        seq: 0,
        journey_id: journey.into(),
        profile_id: profile.into(),
        trigger_id: format!("e-{profile}"),
        trigger_at: at(minute),
        trigger: json!({"type": "signup"}),
        event_id: Some(format!("e-{profile}")),
    }
}

pub(super) async fn held_entries_keep_their_order_until_released(store: Arc<dyn Store>) {
    commit(
        &store,
        WriteBatch {
            held: vec![
                held("welcome", "p2", 1),
                held("welcome", "p1", 2),
                held("other", "p3", 3),
            ],
            ..WriteBatch::default()
        },
    )
    .await;
    let entries = store.held_entries("welcome", 0, 10).await.expect("held");
    let profiles: Vec<&str> = entries.iter().map(|h| h.profile_id.as_str()).collect();
    assert_eq!(profiles, ["p2", "p1"], "holding order");
    assert!(entries[0].seq > 0 && entries[0].seq < entries[1].seq);
    assert_eq!(
        entries[0],
        HeldEntry {
            seq: entries[0].seq,
            ..held("welcome", "p2", 1)
        }
    );
    let after = store
        .held_entries("welcome", entries[0].seq, 10)
        .await
        .expect("held after");
    assert_eq!(after.len(), 1);
    let mut journeys = store.journeys_with_held_entries().await.expect("journeys");
    journeys.sort();
    assert_eq!(journeys, ["other", "welcome"]);

    commit(
        &store,
        WriteBatch {
            released: vec![entries[0].seq],
            ..WriteBatch::default()
        },
    )
    .await;
    assert_eq!(
        store
            .held_entries("welcome", 0, 10)
            .await
            .expect("held")
            .len(),
        1
    );
    assert_eq!(store.drop_held_entries("welcome").await.expect("drop"), 1);
    assert_eq!(
        store.journeys_with_held_entries().await.expect("journeys"),
        ["other"]
    );
}

fn run(id: &str, minute: i64) -> RunRecord {
    RunRecord {
        id: id.into(),
        journey_id: "weekly".into(),
        version: 1,
        kind: "schedule".into(),
        audience: "vip".into(),
        scheduled_at: at(minute),
        started_at: at(minute),
        finished_at: None,
        status: RunStatus::Running,
        cursor: None,
        read: 0,
        entered: 0,
        skipped: 0,
        skipped_reasons: BTreeMap::new(),
        rate: 100,
        members_since: None,
        trigger: json!({"type": "schedule"}),
        ended_early: None,
    }
}

pub(super) async fn runs_are_created_once_and_resume(store: Arc<dyn Resources>) {
    assert!(store.create_run(run("r1", 0)).await.expect("create"));
    assert!(!store.create_run(run("r1", 0)).await.expect("create again"));
    assert!(store.create_run(run("r2", 10)).await.expect("create"));
    let mut progressed = run("r1", 0);
    progressed.cursor = Some("p9".into());
    progressed.read = 9;
    progressed.status = RunStatus::Finished;
    progressed.finished_at = Some(at(5));
    store.update_run(progressed.clone()).await.expect("update");
    assert_eq!(store.get_run("r1").await.expect("read"), Some(progressed));
    let ids: Vec<String> = store
        .runs_of_journey("weekly")
        .await
        .expect("runs")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["r2", "r1"], "newest first");
    let open: Vec<String> = store
        .open_runs()
        .await
        .expect("open")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(open, ["r2"]);
    assert_eq!(
        store
            .last_scheduled_run("weekly")
            .await
            .expect("last")
            .map(|r| r.id),
        Some("r2".into())
    );

    let mut fan_out = run("r3", 20);
    fan_out.kind = "business_event".into();
    let business = event("b1", "price_drop", "", 20);
    assert!(
        store
            .ingest_business_event(business.clone(), vec![fan_out.clone()])
            .await
            .expect("business event")
    );
    assert!(
        !store
            .ingest_business_event(business, vec![run("r4", 21)])
            .await
            .expect("repeat"),
        "a repeated business event starts nothing"
    );
    assert!(store.get_run("r3").await.expect("read").is_some());
    assert!(store.get_run("r4").await.expect("read").is_none());
}

pub(super) async fn alerts_keep_their_state_until_deleted(store: Arc<dyn Resources>) {
    store
        .put_alert("errors", json!({"metric": "failed"}), at(0))
        .await
        .expect("put");
    assert_eq!(
        store.alerts().await.expect("alerts"),
        [("errors".to_string(), json!({"metric": "failed"}), None)]
    );
    store
        .set_alert_state("errors", json!({"firing": true}))
        .await
        .expect("state");
    store
        .put_alert("errors", json!({"metric": "failed", "above": 3}), at(1))
        .await
        .expect("replace");
    assert_eq!(
        store.alerts().await.expect("alerts"),
        [(
            "errors".to_string(),
            json!({"metric": "failed", "above": 3}),
            Some(json!({"firing": true}))
        )],
        "replacing a rule keeps its state"
    );
    assert!(store.delete_alert("errors").await.expect("delete"));
    assert!(!store.delete_alert("errors").await.expect("delete again"));
    assert!(store.alerts().await.expect("alerts").is_empty());
}

pub(super) async fn reports_count_steps_and_live_instances(store: Arc<dyn Store>) {
    let mut failed = step("i2", "check", StepStatus::Failed, 2);
    failed.code = Some("EXPR_EVAL".into());
    commit(
        &store,
        WriteBatch {
            instances: vec![
                instance("i1", "welcome", "p1", Status::Waiting, Some(60)),
                instance("i2", "welcome", "p2", Status::Waiting, Some(60)),
            ],
            steps: vec![
                step("i1", "check", StepStatus::Passed, 1),
                step("i2", "check", StepStatus::Passed, 2),
                failed,
            ],
            ..WriteBatch::default()
        },
    )
    .await;
    assert_eq!(
        store.live_by_node("welcome").await.expect("live"),
        [(1, "wait".to_string(), 2)]
    );
    let counts = store.node_counts("welcome").await.expect("counts");
    let total = |status: &str| -> u64 {
        counts
            .iter()
            .filter(|c| c.node == "check" && c.status == status)
            .map(|c| c.count)
            .sum()
    };
    assert_eq!((total("passed"), total("failed")), (2, 1));
    assert!(
        counts
            .iter()
            .any(|c| c.status == "failed" && c.code == "EXPR_EVAL")
    );
    assert!(
        store
            .conversions("welcome", "purchase")
            .await
            .expect("conversions")
            .is_empty(),
        "no split: no branch to convert"
    );
}

pub(super) async fn templates_keep_every_version(store: Arc<dyn Resources>) {
    let v1 = json!({"channel": "sms", "default_locale": "en", "locales": {"en": {"body": "a"}}});
    let v2 = json!({"channel": "sms", "default_locale": "en", "locales": {"en": {"body": "b"}}});
    assert_eq!(
        store
            .put_template("t", v1.clone(), at(0))
            .await
            .expect("put"),
        1
    );
    assert_eq!(
        store
            .put_template("t", v1.clone(), at(1))
            .await
            .expect("same"),
        1,
        "an unchanged definition is no new version"
    );
    assert_eq!(
        store
            .put_template("t", v2.clone(), at(2))
            .await
            .expect("put"),
        2
    );
    assert_eq!(
        store
            .put_template("a", v1.clone(), at(3))
            .await
            .expect("put"),
        1
    );
    let latest = store
        .get_template("t", None)
        .await
        .expect("get")
        .expect("t");
    assert_eq!(
        (latest.version, &latest.definition, latest.created_at),
        (2, &v2, at(2))
    );
    let first = store
        .get_template("t", Some(1))
        .await
        .expect("get")
        .expect("v1");
    assert_eq!((first.version, &first.definition), (1, &v1));
    assert!(
        store
            .get_template("t", Some(3))
            .await
            .expect("get")
            .is_none()
    );
    assert!(store.get_template("x", None).await.expect("get").is_none());
    let listed: Vec<(String, u32)> = store
        .list_templates()
        .await
        .expect("list")
        .into_iter()
        .map(|r| (r.id, r.version))
        .collect();
    assert_eq!(listed, [("a".to_string(), 1), ("t".to_string(), 2)]);
    let versions: Vec<u32> = store
        .template_versions("t")
        .await
        .expect("versions")
        .iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(versions, [1, 2]);
}

pub(super) async fn subscription_groups_suppressions_sent_messages_and_the_link_secret_are_kept(
    store: Arc<dyn Resources>,
) {
    use crate::store::Suppression;
    store
        .put_subscription_group(
            "news",
            json!({"channel": "email", "default": "opt_out"}),
            at(0),
        )
        .await
        .expect("group");
    store
        .put_subscription_group(
            "news",
            json!({"channel": "email", "default": "opt_in"}),
            at(1),
        )
        .await
        .expect("redefined");
    assert_eq!(
        store.subscription_groups().await.expect("groups"),
        vec![(
            "news".to_string(),
            json!({"channel": "email", "default": "opt_in"})
        )]
    );

    // The suppression list: one entry per address, replaced, listed in order, deleted.
    let s = |address: &str, reason: &str| Suppression {
        address: address.into(),
        reason: reason.into(),
        source: "api".into(),
        at: at(4),
    };
    assert!(
        store
            .put_suppression(s("b@x.com", "complaint"))
            .await
            .expect("put")
    );
    assert!(
        !store
            .put_suppression(s("b@x.com", "hard_bounce"))
            .await
            .expect("again")
    );
    assert!(
        store
            .put_suppression(s("a@x.com", "manual"))
            .await
            .expect("put")
    );
    assert_eq!(
        store.suppression("b@x.com").await.expect("get"),
        Some(s("b@x.com", "hard_bounce"))
    );
    let all = store.suppressions(None, 10).await.expect("list");
    assert_eq!(
        all.iter().map(|s| s.address.as_str()).collect::<Vec<_>>(),
        ["a@x.com", "b@x.com"]
    );
    assert_eq!(
        store
            .suppressions(Some("a@x.com".into()), 10)
            .await
            .expect("page")
            .len(),
        1
    );
    assert!(store.delete_suppression("a@x.com").await.expect("delete"));
    assert!(!store.delete_suppression("a@x.com").await.expect("gone"));
    assert_eq!(store.suppression("a@x.com").await.expect("get"), None);

    // Messages providers accepted, found by id; the first record stays.
    let sent = |provider: &str| crate::store::SentMessage {
        message_id: "m-9".into(),
        profile_id: "p".into(),
        journey_id: "j".into(),
        instance_id: "i".into(),
        node_id: "n".into(),
        channel: "email".into(),
        provider: provider.into(),
        to: "p@x.com".into(),
        at: at(5),
    };
    store.put_sent(sent("smtp")).await.expect("sent");
    store.put_sent(sent("outbox")).await.expect("again");
    assert_eq!(
        store.sent_message("m-9").await.expect("get"),
        Some(sent("smtp"))
    );
    assert_eq!(store.sent_message("m-0").await.expect("get"), None);

    // The link secret is made once and kept.
    let secret = store.link_secret().await.expect("secret");
    assert_eq!(secret.len(), 32);
    assert_eq!(store.link_secret().await.expect("again"), secret);
}

pub(super) async fn consent_changes_come_with_commits_in_order_per_profile(store: Arc<dyn Store>) {
    use crate::store::ConsentChange;
    let change = |profile: &str, subscribed: Option<bool>, source: &str, minute| ConsentChange {
        profile_id: profile.into(),
        group: "news".into(),
        subscribed,
        source: source.into(),
        message_id: (source == "unsubscribe_link").then(|| "m-1".to_string()),
        at: at(minute),
    };
    commit(
        &store,
        WriteBatch {
            consent: vec![
                change("p", Some(true), "import", 2),
                change("q", Some(true), "api", 2),
                change("p", Some(false), "unsubscribe_link", 3),
            ],
            ..WriteBatch::default()
        },
    )
    .await;
    let changes = store.consent_changes("p", None, 10).await.expect("changes");
    assert_eq!(
        changes.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
        vec![
            change("p", Some(true), "import", 2),
            change("p", Some(false), "unsubscribe_link", 3)
        ]
    );
    let after_first = store
        .consent_changes("p", Some(changes[0].0), 10)
        .await
        .expect("page");
    assert_eq!(after_first.len(), 1, "paged after a seq");
}

pub(super) async fn the_outbox_keeps_each_message_once_in_order(store: Arc<dyn Resources>) {
    let message = |id: &str, profile: &str, minute| crate::store::OutboxRecord {
        message_id: id.into(),
        channel: "email".into(),
        to: format!("{profile}@x.com"),
        profile_id: profile.into(),
        journey_id: "welcome".into(),
        node_id: "mail".into(),
        template: "welcome".into(),
        template_version: 2,
        locale: "en".into(),
        message: json!({"subject": "Hello", "html": "<p>Hi</p>"}),
        at: at(minute),
    };
    assert!(store.put_outbox(message("m1", "p1", 0)).await.expect("put"));
    assert!(store.put_outbox(message("m2", "p2", 1)).await.expect("put"));
    assert!(
        !store
            .put_outbox(message("m1", "p1", 5))
            .await
            .expect("again"),
        "a retry of the same message is kept once"
    );
    assert!(store.put_outbox(message("m3", "p1", 2)).await.expect("put"));

    let all = store.outbox_page(None, None, 10).await.expect("all");
    assert_eq!(
        all.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(),
        [
            message("m1", "p1", 0),
            message("m2", "p2", 1),
            message("m3", "p1", 2)
        ],
        "in the order kept, the first record of a message"
    );
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "rising seq");
    let of_p1: Vec<String> = store
        .outbox_page(Some("p1".into()), None, 10)
        .await
        .expect("p1")
        .into_iter()
        .map(|(_, m)| m.message_id)
        .collect();
    assert_eq!(of_p1, ["m1", "m3"]);
    let after_first = store
        .outbox_page(None, Some(all[0].0), 1)
        .await
        .expect("page");
    assert_eq!(after_first.len(), 1, "limit");
    assert_eq!(after_first[0].1.message_id, "m2", "after a seq");
}

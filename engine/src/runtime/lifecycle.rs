//! Journey lifecycle after publication: pause and resume, close, stop, finish.
//!
//! Owns the status transitions of a journey and the release of what a pause held:
//! held entries go back through their profiles' partitions in the order they were held,
//! and instances held before an action node are woken through theirs. A background task
//! resumes pauses that reach their end and marks closed journeys finished once their
//! last instance ended. This module never runs a node itself.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::oneshot;

use super::{JourneyError, Msg, Runtime, Shared};
use crate::code::Code;
use crate::journal;
use crate::model::JourneyDef;
use crate::store::{JourneyStatus, Pause, TestMode};

/// How long the lifecycle task sleeps at most between checks.
const CHECK_EVERY: SignedDuration = SignedDuration::from_secs(60);
/// Held entries read from the store at once when releasing.
const RELEASE_CHUNK: usize = 1_000;
/// Profiles whose instances are ended at once when a journey stops.
const END_CHUNK: usize = 1_000;
/// Passes over a stopped journey's live instances at most (see `end_instances`).
const END_PASSES: usize = 5;

/// What a pause holds, as asked.
#[derive(Debug, Clone)]
pub struct PauseRequest {
    pub entries: bool,
    pub actions: bool,
    /// How long at most; `None`: `max_pause_seconds`.
    pub max_duration: Option<SignedDuration>,
    pub by: Option<String>,
}

/// What a lifecycle change did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Transitioned {
    pub status: Option<JourneyStatus>,
    /// Instances ended (stop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_instances: Option<u64>,
    /// Held entries dropped (stop or close of a paused journey).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_entries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
}

impl Runtime {
    async fn status_of(&self, id: &str) -> Result<(JourneyStatus, Option<Pause>), JourneyError> {
        let record = self.journey_record(id).await?;
        Ok((record.status, record.pause))
    }

    async fn set_status(
        &self,
        id: &str,
        status: JourneyStatus,
        pause: Option<Pause>,
    ) -> Result<(), JourneyError> {
        self.shared
            .store
            .set_journey_status(id, status, pause.clone(), self.now())
            .await?;
        self.shared.journeys.set_status(id, status, pause);
        self.shared.lifecycle_kick.notify_one();
        Ok(())
    }

    /// Pauses a live journey: new entries and/or instances reaching an action node wait
    /// until it resumes (by [`Runtime::resume`], or by itself at the end of the pause).
    pub async fn pause(&self, id: &str, request: PauseRequest) -> Result<Pause, JourneyError> {
        let (status, _) = self.status_of(id).await?;
        if status != JourneyStatus::Live {
            return Err(JourneyError::Conflict(format!(
                "journey {id:?} is {}; only a live journey can be paused",
                status.as_str()
            )));
        }
        if !request.entries && !request.actions {
            return Err(JourneyError::Conflict(
                "a pause must hold entries, actions or both".into(),
            ));
        }
        let max = SignedDuration::from_secs(
            i64::try_from(self.shared.settings.max_pause_seconds).unwrap_or(i64::MAX),
        );
        let length = request.max_duration.unwrap_or(max);
        if length > max || length <= SignedDuration::ZERO {
            return Err(JourneyError::Conflict(format!(
                "a pause lasts more than 0 s and at most {} s (max_pause_seconds); {} s asked",
                max.as_secs(),
                length.as_secs()
            )));
        }
        let now = self.now();
        let pause = Pause {
            entries: request.entries,
            actions: request.actions,
            paused_at: now,
            until: now.checked_add(length).unwrap_or(Timestamp::MAX),
            by: request.by,
        };
        self.set_status(id, JourneyStatus::Paused, Some(pause.clone()))
            .await?;
        tracing::info!(journey = id, until = %pause.until, entries = pause.entries, actions = pause.actions, "paused");
        Ok(pause)
    }

    /// Resumes a paused journey; what it held is released in the background, in order.
    pub async fn resume(&self, id: &str) -> Result<(), JourneyError> {
        let (status, pause) = self.status_of(id).await?;
        if status != JourneyStatus::Paused {
            return Err(JourneyError::Conflict(format!(
                "journey {id:?} is {}; only a paused journey can be resumed",
                status.as_str()
            )));
        }
        // The pause stays stored (with the live status) until every held entry and
        // instance is released: a restart in between releases the rest.
        self.shared
            .store
            .set_journey_status(id, JourneyStatus::Live, pause, self.now())
            .await?;
        self.shared
            .journeys
            .set_status(id, JourneyStatus::Live, None);
        tracing::info!(journey = id, "resumed");
        self.spawn_release(id.to_string());
        Ok(())
    }

    /// Closes a journey: no new entries; its running instances go on to their end, and
    /// it is `finished` once they have. Entries a pause held are dropped; instances it
    /// held are released.
    pub async fn close(&self, id: &str) -> Result<Transitioned, JourneyError> {
        let (status, _) = self.status_of(id).await?;
        if !matches!(status, JourneyStatus::Live | JourneyStatus::Paused) {
            return Err(JourneyError::Conflict(format!(
                "journey {id:?} is {}; only a live or paused journey can be closed",
                status.as_str()
            )));
        }
        self.set_status(id, JourneyStatus::Closed, None).await?;
        let dropped = self.shared.store.drop_held_entries(id).await?;
        if status == JourneyStatus::Paused {
            self.spawn_release(id.to_string());
        }
        tracing::info!(journey = id, dropped, "closed");
        Ok(Transitioned {
            status: Some(JourneyStatus::Closed),
            dropped_entries: Some(dropped),
            ..Default::default()
        })
    }

    /// Stops a journey: no new entries, its live instances end (`JOURNEY_STOPPED`) and
    /// held entries are dropped.
    pub async fn stop(&self, id: &str) -> Result<Transitioned, JourneyError> {
        self.status_of(id).await?;
        self.set_status(id, JourneyStatus::Stopped, None).await?;
        let ended = self
            .end_instances(
                id,
                None,
                journal::Status::Stopped,
                Code::JourneyStopped,
                "the journey was stopped",
            )
            .await?;
        let dropped = self.shared.store.drop_held_entries(id).await?;
        tracing::info!(journey = id, ended, dropped, "stopped");
        Ok(Transitioned {
            status: Some(JourneyStatus::Stopped),
            ended_instances: Some(ended),
            dropped_entries: Some(dropped),
            pause: None,
        })
    }

    /// Runs the journey's draft in test mode (as version 0): only test profiles
    /// (attribute `test_profile: true`) enter it, its waits and reaction timeouts last at
    /// most `wait_seconds`, and with `dry_run` its actions are recorded, not made.
    pub async fn start_test(
        &self,
        id: &str,
        wait_seconds: Option<u64>,
        dry_run: bool,
        by: Option<String>,
    ) -> Result<TestMode, JourneyError> {
        let def = self.stored_draft(id).await?;
        if def.entry.kind() != "event" {
            return Err(JourneyError::Conflict(format!(
                "test mode runs journeys entered by events; this one is entered by {} (simulate it instead)",
                def.entry.kind()
            )));
        }
        let test = TestMode {
            wait_seconds: wait_seconds.unwrap_or(self.shared.settings.test_wait_seconds),
            dry_run,
            started_at: self.now(),
            by,
        };
        let _catalog = self.shared.catalog_lock.read().await;
        let journey = self.compile_test(id, &def, test.clone()).await?;
        self.shared
            .store
            .set_test_mode(id, Some(test.clone()))
            .await?;
        self.shared.journeys.set_test(id, Some(journey));
        tracing::info!(
            journey = id,
            wait_seconds = test.wait_seconds,
            dry_run,
            "test mode on"
        );
        Ok(test)
    }

    /// Ends test mode; the draft's test instances end (`TEST_ENDED`). Returns how many.
    pub async fn stop_test(&self, id: &str) -> Result<u64, JourneyError> {
        if self.journey_record(id).await?.test.is_none() {
            return Err(JourneyError::Conflict(format!(
                "journey {id:?} is not in test mode"
            )));
        }
        self.shared.store.set_test_mode(id, None).await?;
        self.shared.journeys.set_test(id, None);
        let ended = self
            .end_instances(
                id,
                Some(0),
                journal::Status::Stopped,
                Code::TestEnded,
                "test mode of the draft was turned off",
            )
            .await?;
        tracing::info!(journey = id, ended, "test mode off");
        Ok(ended)
    }

    /// Ends the live instances of a journey (of one version, if given) through their
    /// profiles' partitions, each with an `ended` step and `code`; returns how many.
    /// The journey takes no more entries when this is called; batches that began before
    /// (and may still admit entries) are waited for first, and passes over the store are
    /// repeated until one finds nothing.
    async fn end_instances(
        &self,
        id: &str,
        version: Option<u32>,
        status: journal::Status,
        code: Code,
        message: &str,
    ) -> Result<u64, JourneyError> {
        self.shared.barrier().await?;
        let mut total = 0;
        for _ in 0..END_PASSES {
            let mut ended = 0;
            let mut after = String::new();
            loop {
                let profiles = self
                    .shared
                    .store
                    .profiles_in_journey(id, version, &after, END_CHUNK)
                    .await?;
                let Some(last) = profiles.last() else { break };
                after = last.clone();
                let mut replies = Vec::with_capacity(profiles.len());
                for profile_id in profiles {
                    let (tx, rx) = oneshot::channel();
                    let request = super::EndRequest {
                        profile_id,
                        journey_id: id.to_string(),
                        version,
                        status,
                        code,
                        message: message.to_string(),
                    };
                    self.shared.send(Msg::End(request, tx)).await?;
                    replies.push(rx);
                }
                for rx in replies {
                    ended += rx.await.unwrap_or(0);
                }
            }
            total += ended;
            if ended == 0 {
                break;
            }
        }
        Ok(total)
    }

    pub(super) async fn compile_test(
        &self,
        id: &str,
        def: &JourneyDef,
        test: TestMode,
    ) -> Result<Arc<crate::compile::Journey>, JourneyError> {
        let mut journey = self
            .validate(id, def)
            .await
            .map_err(JourneyError::Invalid)?;
        journey.version = 0;
        journey.test = Some(test);
        Ok(Arc::new(journey))
    }

    /// The journey's status, moving a closed journey without live instances to
    /// `finished` first.
    pub async fn refresh_status(&self, id: &str) -> Result<JourneyStatus, JourneyError> {
        let (status, _) = self.status_of(id).await?;
        if status != JourneyStatus::Closed {
            return Ok(status);
        }
        let counts = self.shared.store.count_instances(id).await?;
        let live = ["active", "waiting"]
            .iter()
            .filter_map(|s| counts.get(*s))
            .sum::<u64>();
        if live > 0 {
            return Ok(status);
        }
        self.set_status(id, JourneyStatus::Finished, None).await?;
        tracing::info!(journey = id, "finished");
        Ok(JourneyStatus::Finished)
    }

    pub(super) fn spawn_release(&self, id: String) {
        let shared = self.shared.clone();
        self.shared.spawn(async move {
            if let Err(e) = release(&shared, &id).await {
                tracing::error!(journey = %id, error = %e, "releasing what the pause held failed; it is retried at the next start");
            }
        });
    }
}

/// Wakes the instances a pause held before an action node, then re-enters the held
/// entries in holding order, paced at `resume_rate`; clears the stored pause once done.
async fn release(shared: &Arc<Shared>, id: &str) -> anyhow::Result<()> {
    let rate = u64::from(shared.settings.resume_rate.max(1));
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    let mut acks = Vec::new();
    let pace = async |sent: &mut u64| {
        *sent += 1;
        if let Some(wait) = release_delay(*sent, rate, started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    };
    for timer in shared.store.held_instances(id).await? {
        let (tx, rx) = oneshot::channel();
        shared.send(Msg::Timer(timer, tx)).await?;
        acks.push(rx);
        pace(&mut sent).await;
    }
    let mut after = 0;
    loop {
        let held = shared.store.held_entries(id, after, RELEASE_CHUNK).await?;
        let Some(last) = held.last() else { break };
        after = last.seq;
        for entry in held {
            let (tx, rx) = oneshot::channel();
            shared.send(Msg::Release(entry, tx)).await?;
            acks.push(rx);
            pace(&mut sent).await;
        }
        // Keep the number of unanswered messages bounded.
        for rx in acks.drain(..) {
            let _ = rx.await;
        }
    }
    for rx in acks {
        let _ = rx.await;
    }
    if let Some(j) = shared.journeys.snapshot().get(id)
        && j.status == JourneyStatus::Live
    {
        shared
            .store
            .set_journey_status(id, JourneyStatus::Live, None, shared.clock.now())
            .await?;
    }
    if sent > 0 {
        tracing::info!(
            journey = id,
            released = sent,
            "released what the pause held"
        );
    }
    Ok(())
}

/// How long to wait after the `sent`-th release to keep to `rate` per second, `elapsed`
/// after the first: only when ahead of schedule by a whole timer tick (1 ms) or more.
/// Sleeping after every release would wait at least a tick each time, and cap the rate
/// at about 1,000 a second whatever `resume_rate` says; releases go in small bursts
/// instead.
fn release_delay(
    sent: u64,
    rate: u64,
    elapsed: std::time::Duration,
) -> Option<std::time::Duration> {
    const TICK: std::time::Duration = std::time::Duration::from_millis(1);
    let due = std::time::Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
    due.checked_sub(elapsed).filter(|wait| *wait >= TICK)
}

/// Releases what pauses held for journeys that resumed before the last stop but had not
/// released everything.
pub(super) async fn recover(runtime: &Runtime) -> anyhow::Result<()> {
    let mut ids: Vec<String> = runtime
        .shared
        .store
        .list_journeys()
        .await?
        .into_iter()
        .filter(|j| j.status != JourneyStatus::Paused && j.pause.is_some())
        .map(|j| j.id)
        .collect();
    for id in runtime.shared.store.journeys_with_held_entries().await? {
        if !ids.contains(&id)
            && runtime
                .shared
                .journeys
                .snapshot()
                .get(&id)
                .is_some_and(|j| !j.holds_entries())
        {
            ids.push(id);
        }
    }
    for id in ids {
        runtime.spawn_release(id);
    }
    Ok(())
}

/// Resumes pauses that reached their end and finishes closed journeys whose instances
/// all ended; sleeps on the engine clock until the next pause end (or a minute).
pub(super) fn spawn(runtime: Runtime) {
    let shared = runtime.shared.clone();
    shared.spawn(async move {
        loop {
            let now = runtime.now();
            let set = runtime.shared.journeys.snapshot();
            let mut next = now.checked_add(CHECK_EVERY).unwrap_or(Timestamp::MAX);
            let mut due = Vec::new();
            let mut closed = Vec::new();
            for (id, j) in set.iter() {
                match (j.status, &j.pause) {
                    (JourneyStatus::Paused, Some(p)) if p.until <= now => due.push(id.clone()),
                    (JourneyStatus::Paused, Some(p)) => next = next.min(p.until),
                    (JourneyStatus::Closed, _) => closed.push(id.clone()),
                    _ => {}
                }
            }
            for id in due {
                match runtime.resume(&id).await {
                    Ok(()) => tracing::info!(journey = %id, "the pause ended; resumed"),
                    Err(e) => tracing::warn!(journey = %id, error = %e, "resuming failed"),
                }
            }
            for id in closed {
                if let Err(e) = runtime.refresh_status(&id).await {
                    tracing::warn!(journey = %id, error = %e, "checking a closed journey failed");
                }
            }
            let sleep = runtime.shared.clock.sleep_until(next);
            tokio::select! {
                () = sleep => {}
                () = runtime.shared.lifecycle_kick.notified() => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn releases_go_in_bursts_that_keep_to_the_rate() {
        // 5,000 a second: the first four releases of a millisecond go at once; the fifth
        // is a whole tick ahead and waits for it.
        let now = Duration::ZERO;
        assert_eq!(release_delay(1, 5_000, now), None);
        assert_eq!(release_delay(4, 5_000, now), None);
        assert_eq!(release_delay(5, 5_000, now), Some(Duration::from_millis(1)));
        // Behind schedule: no wait at all.
        assert_eq!(release_delay(50, 5_000, Duration::from_millis(20)), None);
        // Slow rates wait between releases.
        assert_eq!(
            release_delay(2, 10, Duration::from_millis(100)),
            Some(Duration::from_millis(100))
        );
        // Over a second's worth, the schedule is the rate: the 5,000th release is due
        // at one second.
        assert_eq!(
            release_delay(5_000, 5_000, now),
            Some(Duration::from_secs(1))
        );
    }
}

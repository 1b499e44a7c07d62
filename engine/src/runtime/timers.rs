//! The timer service: fires due waits, reaction timeouts, retries and deadlines.
//!
//! Timers live in the store, ordered by (due time, instance id); at most
//! `IN_FLIGHT × timer_batch` due timers are in memory at a time. The service loads a
//! batch of timers due now, hands each to its profile's partition, and loads the next
//! batch after the last one loaded while the partitions work, keeping a few batches in
//! flight so that the partitions' commits overlap. When nothing more is due after its
//! cursor, it waits for every batch to be committed, then starts again from the earliest
//! timer (timers set meanwhile, or left unhandled, are found then); when nothing is due
//! at all it sleeps until the earliest timer or until a partition reports a new one. It
//! never changes an instance itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use tokio::sync::oneshot;

use super::{Msg, Shared};
use crate::store::DueTimer;

/// How long to sleep when no timer is pending at all (a new one wakes the service).
const IDLE: SignedDuration = SignedDuration::from_hours(24);

/// Batches handed to partitions before the oldest must be committed.
const IN_FLIGHT: usize = 4;

pub(super) fn spawn(shared: Arc<Shared>) {
    shared.clone().spawn(async move {
        loop {
            if let Err(e) = round(&shared).await {
                tracing::error!(error = %e, "timer service; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
}

/// Fires everything due now (from the earliest timer on), then sleeps if nothing was.
async fn round(shared: &Shared) -> anyhow::Result<()> {
    let now = shared.clock.now();
    let mut after: Option<DueTimer> = None;
    let mut in_flight: VecDeque<Vec<oneshot::Receiver<()>>> = VecDeque::new();
    let mut fired = false;
    loop {
        let due = shared
            .store
            .due_timers(now, after.clone(), shared.settings.timer_batch.max(1))
            .await?;
        let Some(last) = due.last().cloned() else {
            break;
        };
        fired = true;
        let mut acks = Vec::with_capacity(due.len());
        let mut msgs = Vec::with_capacity(due.len());
        for timer in due {
            let late = now.duration_since(timer.wake_at).as_secs_f64();
            shared.metrics.timer_fired(late);
            let (tx, rx) = oneshot::channel();
            msgs.push(Msg::Timer(timer, tx));
            acks.push(rx);
        }
        // One hand-over per partition for the whole batch of timers.
        shared.send_all(msgs, |_| ()).await?;
        in_flight.push_back(acks);
        after = Some(last);
        if in_flight.len() >= IN_FLIGHT
            && let Some(oldest) = in_flight.pop_front()
        {
            wait(oldest).await;
        }
    }
    for acks in in_flight {
        wait(acks).await;
    }
    if fired {
        // Start again from the earliest: more may have come due meanwhile.
        return Ok(());
    }
    let next = shared.store.next_wake().await?;
    let until = next.unwrap_or_else(|| now.saturating_add(IDLE).unwrap_or(now));
    tokio::select! {
        _ = shared.clock.sleep_until(until) => {}
        _ = shared.timer_kick.notified() => {}
    }
    Ok(())
}

/// Waits until a batch's partitions have committed. An error means the partition
/// dropped the message; the timer is still due and will be loaded again.
async fn wait(acks: Vec<oneshot::Receiver<()>>) {
    for ack in acks {
        let _ = ack.await;
    }
}

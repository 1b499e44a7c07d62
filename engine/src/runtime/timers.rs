//! The timer service: fires due waits, reaction timeouts, retries and deadlines.
//!
//! Timers live in the store, ordered by due time; only one batch of due timers is in
//! memory at a time. The service loads the timers due now, hands each to its profile's
//! partition, waits until every partition has committed the result, and repeats; when
//! nothing is due it sleeps until the earliest timer or until a partition reports a new
//! one. It never changes an instance itself.

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use tokio::sync::oneshot;

use super::{Msg, Shared};

/// How long to sleep when no timer is pending at all (a new one wakes the service).
const IDLE: SignedDuration = SignedDuration::from_hours(24);

pub(super) fn spawn(shared: Arc<Shared>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = round(&shared).await {
                tracing::error!(error = %e, "timer service; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
}

async fn round(shared: &Shared) -> anyhow::Result<()> {
    let now = shared.clock.now();
    let due = shared
        .store
        .due_timers(now, shared.settings.timer_batch.max(1))
        .await?;
    if !due.is_empty() {
        let mut acks = Vec::with_capacity(due.len());
        for timer in due {
            let (tx, rx) = oneshot::channel();
            shared.send(Msg::Timer(timer, tx)).await?;
            acks.push(rx);
        }
        for ack in acks {
            // An error means the partition dropped the message; it is still due and
            // will be loaded again.
            let _ = ack.await;
        }
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

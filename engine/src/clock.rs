//! The engine's only source of time.
//!
//! Owns "what time is it" and "wake me at T". Every component that needs the time takes a
//! [`Clock`]; nothing else in the engine may read the system clock, so tests and
//! simulations can run days of waits in milliseconds with a [`TestClock`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp};
use tokio::sync::watch;

/// A future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
    /// Completes once [`Clock::now`] is at or past `at`.
    fn sleep_until(&self, at: Timestamp) -> Sleep;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, at: Timestamp) -> Sleep {
        let wait = at.duration_since(Timestamp::now());
        Box::pin(async move {
            if wait.is_positive() {
                let std = wait.unsigned_abs();
                tokio::time::sleep(std).await;
            }
        })
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Clone)]
pub struct TestClock {
    inner: Arc<TestClockInner>,
}

struct TestClockInner {
    now: Mutex<Timestamp>,
    tick: watch::Sender<Timestamp>,
}

impl TestClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        let (tick, _) = watch::channel(start);
        Self {
            inner: Arc::new(TestClockInner {
                now: Mutex::new(start),
                tick,
            }),
        }
    }

    /// Moves the clock forward by a span; days and weeks count as 24 hours and 7 days.
    pub fn advance(&self, by: Span) {
        let by = by
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .unwrap_or(SignedDuration::ZERO);
        self.advance_by(by);
    }

    /// Moves the clock forward by an exact duration.
    pub fn advance_by(&self, by: SignedDuration) {
        let mut now = self.inner.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = now.saturating_add(by).unwrap_or(*now);
        self.inner.tick.send_replace(*now);
    }

    /// Sets the clock to `at` (which may be in the past).
    pub fn set(&self, at: Timestamp) {
        let mut now = self.inner.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = at;
        self.inner.tick.send_replace(at);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.inner.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep_until(&self, at: Timestamp) -> Sleep {
        let mut rx = self.inner.tick.subscribe();
        Box::pin(async move {
            loop {
                if *rx.borrow_and_update() >= at {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The clock is gone: nobody will ever advance it.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_clock_wakes_sleepers_when_advanced() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = TestClock::new(start);
        let target = start + SignedDuration::from_hours(48);
        let sleeper = tokio::spawn(clock.sleep_until(target));
        clock.advance(Span::new().days(1));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Span::new().days(1));
        sleeper.await.unwrap();
        assert_eq!(clock.now(), target);
    }
}

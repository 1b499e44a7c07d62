//! A partition: the single task that steps the instances of the profiles hashing to it.
//!
//! It takes every message waiting (up to `partition_batch`), handles each profile's
//! messages in order against an in-memory working set taken from its cache or loaded
//! from the store (the batch's profiles spread over `partition_lanes` lanes that run
//! concurrently, so that their action calls and reads overlap; a call slower than
//! `action_wait_ms` leaves the batch, see [`crate::runtime::calls`]), commits everything
//! the batch changed in one store write, and only then acknowledges timers and lets the
//! next batch start.
//! A crash before the commit loses nothing: the events are still unprocessed in the store
//! and the timers still due, so both are handled again, with the same instance ids and
//! idempotency keys.
//!
//! The loop lives here; its rooms are [`batch`] (the working set and the commit),
//! [`cache`] (the profiles' committed states, so that a batch reads only the others),
//! [`messages`] (one handler per message kind), [`profiles`] (profile writes, deletion
//! and merges), [`membership`] (audience transitions and exit criteria), [`admission`]
//! (whether a profile may enter, and its first node) and [`activation`] (the step
//! interpreter). Only a partition writes an instance, and it never names a node kind:
//! what differs between kinds is behind [`crate::activities::NodeKind`].

mod activation;
mod admission;
mod batch;
mod cache;
mod entry;
mod membership;
mod messages;
mod profiles;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::Instrument;

use crate::expr::ExprEngine;
use crate::runtime::{Msg, Shared};

use batch::Batch;
use cache::StateCache;

pub(super) fn spawn(index: usize, shared: Arc<Shared>, rx: mpsc::Receiver<Msg>) {
    shared.clone().spawn(async move {
        let exprs = shared.exprs();
        let cache = StateCache::new(shared.settings.partition_cache_profiles);
        let mut partition = Partition {
            index,
            shared,
            exprs,
            spare: Vec::new(),
            parked: HashMap::new(),
            ready: VecDeque::new(),
            cache,
        };
        partition.run(rx).await;
    });
}

struct Partition {
    index: usize,
    shared: Arc<Shared>,
    exprs: ExprEngine,
    /// Expression engines of lanes, kept for the next batch's lanes.
    spare: Vec<ExprEngine>,
    /// Messages that would start or move a profile's instances, set aside in their
    /// order while the profile waits for a call's answer (its events stay unprocessed in
    /// the store meanwhile), so that a profile's messages keep their order.
    parked: HashMap<String, VecDeque<Msg>>,
    /// Set-aside messages whose profile's calls answered: the next batch starts with them.
    ready: VecDeque<Msg>,
    /// Its profiles' committed states (a lane's is empty: the batch loads for it).
    cache: StateCache,
}

/// Spreads a batch's messages over at most `max` lanes: all the messages of one profile
/// go to the same lane, in their order, and profiles are dealt to lanes in the order
/// they first appear.
fn lanes(msgs: impl Iterator<Item = Msg>, max: usize) -> Vec<Vec<Msg>> {
    let max = max.max(1);
    let mut lane_of: HashMap<String, usize> = HashMap::new();
    let mut lanes: Vec<Vec<Msg>> = Vec::new();
    for msg in msgs {
        let next = lane_of.len() % max;
        let lane = *lane_of.entry(msg.profile_id().to_string()).or_insert(next);
        if lane == lanes.len() {
            lanes.push(Vec::new());
        }
        lanes[lane].push(msg);
    }
    lanes
}

impl Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Event(..) => "event",
            Msg::Timer(..) => "timer",
            Msg::Profile(..) => "profile",
            Msg::Enter(..) => "enter",
            Msg::Release(..) => "release",
            Msg::End(..) => "end",
            Msg::Called(_) => "called",
            Msg::Barrier(_) => "barrier",
        }
    }

    /// Whether the message waits while its profile has a call in flight: it could
    /// start or move instances (an event, an entry request, a released entry). Timers,
    /// profile writes, end requests and answers do not wait.
    fn waits_for_calls(&self) -> bool {
        matches!(self, Msg::Event(..) | Msg::Enter(..) | Msg::Release(..))
    }

    pub(super) fn profile_id(&self) -> &str {
        match self {
            Msg::Event(_, e) => &e.profile_id,
            Msg::Timer(t, _) => &t.profile_id,
            Msg::Profile(op, _) => op.profile_id(),
            Msg::Enter(r, _) => &r.profile_id,
            Msg::Release(h, _) => &h.profile_id,
            Msg::End(r, _) => &r.profile_id,
            Msg::Called(c) => &c.profile_id,
            Msg::Barrier(_) => "",
        }
    }
}

impl Partition {
    async fn run(&mut self, mut rx: mpsc::Receiver<Msg>) {
        let max = self.shared.settings.partition_batch.max(1);
        let mut msgs = Vec::with_capacity(max);
        loop {
            if self.ready.is_empty() {
                if rx.recv_many(&mut msgs, max).await == 0 {
                    break;
                }
            } else {
                msgs.extend(self.ready.drain(..));
                while msgs.len() < max {
                    match rx.try_recv() {
                        Ok(msg) => msgs.push(msg),
                        Err(_) => break,
                    }
                }
            }
            let mut batch = Batch::new(
                self.shared.journeys.snapshot(),
                self.shared.audiences.snapshot(),
            );
            batch.parked_before = Arc::new(self.parked.keys().cloned().collect());
            self.preload(&mut batch, &msgs).await;
            if let Some(ext) = &self.shared.external
                && ext.generation() != self.exprs.generation()
            {
                // Plugins were installed: rebuild with their functions.
                self.exprs = self.shared.exprs();
                self.spare.clear();
            }
            let lanes = lanes(msgs.drain(..), self.shared.settings.partition_lanes);
            if lanes.len() == 1 {
                for msg in lanes.into_iter().flatten() {
                    self.handle(&mut batch, msg).await;
                }
            } else {
                self.run_lanes(&mut batch, lanes).await;
            }
            let parked = std::mem::take(&mut batch.parked);
            let unparked = std::mem::take(&mut batch.unparked);
            self.commit(batch).await;
            for msg in parked {
                self.parked
                    .entry(msg.profile_id().to_string())
                    .or_default()
                    .push_back(msg);
            }
            for profile_id in unparked {
                if let Some(queue) = self.parked.remove(&profile_id) {
                    self.ready.extend(queue);
                }
            }
        }
    }

    /// Runs the lanes of a batch concurrently on this task (their awaits overlap: action
    /// calls, store reads), each on its own part of the batch (its profiles' states)
    /// with its own expression engine, then gathers their changes in lane order.
    async fn run_lanes(&mut self, batch: &mut Batch, lanes: Vec<Vec<Msg>>) {
        let running = lanes.into_iter().map(|msgs| {
            let mut part = Batch::new(batch.set.clone(), batch.audiences.clone());
            part.parked_before = batch.parked_before.clone();
            for msg in &msgs {
                if let Some((id, work)) = batch.profiles.remove_entry(msg.profile_id()) {
                    part.profiles.insert(id, work);
                }
            }
            let mut lane = Partition {
                index: self.index,
                shared: self.shared.clone(),
                exprs: self.spare.pop().unwrap_or_else(|| self.shared.exprs()),
                spare: Vec::new(),
                parked: HashMap::new(),
                ready: VecDeque::new(),
                cache: StateCache::new(0),
            };
            async move {
                for msg in msgs {
                    lane.handle(&mut part, msg).await;
                }
                (lane.exprs, part)
            }
        });
        for (exprs, part) in futures_util::future::join_all(running).await {
            self.spare.push(exprs);
            batch.absorb(part);
        }
    }

    /// Handles one message and what follows from it in the same profile (the journeys
    /// it starts, the audience transitions it causes).
    async fn handle(&mut self, batch: &mut Batch, msg: Msg) {
        let msg = match msg {
            Msg::Barrier(ack) => {
                batch.acks.push(ack);
                return;
            }
            msg => msg,
        };
        let profile_id = msg.profile_id().to_string();
        // A profile waiting for a call's answer takes no new entries or events until it
        // comes (what it set aside first goes first).
        if msg.waits_for_calls() && (batch.has_parked(&profile_id) || batch.calling(&profile_id)) {
            batch.parked.push(msg);
            return;
        }
        let span = tracing::debug_span!(
            "message",
            partition = self.index,
            kind = msg.kind(),
            profile = %profile_id
        );
        let result = async {
            match msg {
                Msg::Event(seq, event) => self.on_event(batch, seq, event).await,
                Msg::Timer(timer, ack) => {
                    batch.acks.push(ack);
                    self.on_timer(batch, timer).await
                }
                Msg::Profile(op, reply) => self.on_profile(batch, op, reply).await,
                Msg::Enter(request, reply) => self.on_enter(batch, request, reply).await,
                Msg::Release(held, ack) => {
                    batch.acks.push(ack);
                    self.on_release(batch, held).await
                }
                Msg::End(request, reply) => self.on_end(batch, request, reply).await,
                Msg::Called(called) => self.on_called(batch, *called).await,
                Msg::Barrier(_) => Ok(()),
            }
        }
        .instrument(span)
        .await;
        if let Err(e) = result {
            tracing::error!(partition = self.index, error = %e, "cannot load state; the message is set aside until the next start");
            return;
        }
        self.run_starts(batch).await;
        self.settle(batch, &profile_id, Vec::new()).await;
        if batch.has_parked(&profile_id) && !batch.calling(&profile_id) {
            batch.unparked.push(profile_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;
    use jiff::Timestamp;
    use serde_json::Value;

    fn event(id: &str, profile: &str) -> Msg {
        let event = Event {
            id: id.into(),
            event_type: "e".into(),
            profile_id: profile.into(),
            timestamp: Timestamp::UNIX_EPOCH,
            received_at: Timestamp::UNIX_EPOCH,
            data: Value::Null,
        };
        Msg::Event(0, event)
    }

    /// The lanes as event ids.
    fn ids(lanes: Vec<Vec<Msg>>) -> Vec<Vec<String>> {
        lanes
            .into_iter()
            .map(|lane| {
                lane.into_iter()
                    .map(|m| match m {
                        Msg::Event(_, e) => e.id,
                        _ => unreachable!("events only"),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_profiles_messages_share_a_lane_in_their_order_and_profiles_are_dealt_round() {
        let msgs = || {
            [
                ("1", "a"),
                ("2", "b"),
                ("3", "a"),
                ("4", "c"),
                ("5", "d"),
                ("6", "b"),
                ("7", "e"),
            ]
            .into_iter()
            .map(|(id, p)| event(id, p))
        };
        // a, b, c take lanes 0, 1, 2; d and e come back round to lanes 0 and 1.
        assert_eq!(
            ids(lanes(msgs(), 3)),
            [vec!["1", "3", "5"], vec!["2", "6", "7"], vec!["4"]]
        );
        // Enough lanes: one a profile.
        assert_eq!(ids(lanes(msgs(), 16)).len(), 5);
        // One lane (or none asked): every message in its order.
        for max in [0, 1] {
            assert_eq!(
                ids(lanes(msgs(), max)),
                [vec!["1", "2", "3", "4", "5", "6", "7"]]
            );
        }
        assert!(lanes(std::iter::empty(), 4).is_empty());
    }
}

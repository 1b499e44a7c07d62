//! A partition: the single task that steps the instances of the profiles hashing to it.
//!
//! It takes every message waiting (up to `partition_batch`), handles each profile's
//! messages in order against an in-memory working set loaded from the store (the batch's
//! profiles spread over `partition_lanes` lanes that run concurrently, so that one
//! profile's slow action call does not hold up the others), commits everything the batch
//! changed in one store write, and only then acknowledges timers and lets the next batch
//! start.
//! A crash before the commit loses nothing: the events are still unprocessed in the store
//! and the timers still due, so both are handled again, with the same instance ids and
//! idempotency keys.
//!
//! The loop lives here; its rooms are [`batch`] (the working set and the commit),
//! [`messages`] (one handler per message kind), [`profiles`] (profile writes, deletion
//! and merges), [`membership`] (audience transitions and exit criteria), [`admission`]
//! (whether a profile may enter, and its first node) and [`activation`] (the step
//! interpreter). Only a partition writes an instance, and it never names a node kind:
//! what differs between kinds is behind [`crate::activities::NodeKind`].

mod activation;
mod admission;
mod batch;
mod entry;
mod membership;
mod messages;
mod profiles;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::Instrument;

use crate::expr::ExprEngine;
use crate::runtime::{Msg, Shared};

use batch::Batch;

pub(super) fn spawn(index: usize, shared: Arc<Shared>, rx: mpsc::Receiver<Msg>) {
    shared.clone().spawn(async move {
        let exprs = shared.exprs();
        let mut partition = Partition {
            index,
            shared,
            exprs,
            spare: Vec::new(),
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
            Msg::Event(_) => "event",
            Msg::Timer(..) => "timer",
            Msg::Profile(..) => "profile",
            Msg::Enter(..) => "enter",
            Msg::Release(..) => "release",
            Msg::End(..) => "end",
            Msg::Barrier(_) => "barrier",
        }
    }

    pub(super) fn profile_id(&self) -> &str {
        match self {
            Msg::Event(e) => &e.profile_id,
            Msg::Timer(t, _) => &t.profile_id,
            Msg::Profile(op, _) => op.profile_id(),
            Msg::Enter(r, _) => &r.profile_id,
            Msg::Release(h, _) => &h.profile_id,
            Msg::End(r, _) => &r.profile_id,
            Msg::Barrier(_) => "",
        }
    }
}

impl Partition {
    async fn run(&mut self, mut rx: mpsc::Receiver<Msg>) {
        let max = self.shared.settings.partition_batch.max(1);
        let mut msgs = Vec::with_capacity(max);
        while rx.recv_many(&mut msgs, max).await > 0 {
            let mut batch = Batch::new(
                self.shared.journeys.snapshot(),
                self.shared.audiences.snapshot(),
            );
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
            self.commit(batch).await;
        }
    }

    /// Runs the lanes of a batch concurrently on this task (their awaits overlap: action
    /// calls, store reads), each on its own part of the batch (its profiles' states)
    /// with its own expression engine, then gathers their changes in lane order.
    async fn run_lanes(&mut self, batch: &mut Batch, lanes: Vec<Vec<Msg>>) {
        let running = lanes.into_iter().map(|msgs| {
            let mut part = Batch::new(batch.set.clone(), batch.audiences.clone());
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
        let span = tracing::debug_span!(
            "message",
            partition = self.index,
            kind = msg.kind(),
            profile = %profile_id
        );
        let result = async {
            match msg {
                Msg::Event(event) => self.on_event(batch, event).await,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;
    use jiff::Timestamp;
    use serde_json::Value;

    fn event(id: &str, profile: &str) -> Msg {
        Msg::Event(Event {
            id: id.into(),
            event_type: "e".into(),
            profile_id: profile.into(),
            timestamp: Timestamp::UNIX_EPOCH,
            received_at: Timestamp::UNIX_EPOCH,
            data: Value::Null,
        })
    }

    /// The lanes as event ids.
    fn ids(lanes: Vec<Vec<Msg>>) -> Vec<Vec<String>> {
        lanes
            .into_iter()
            .map(|lane| {
                lane.into_iter()
                    .map(|m| match m {
                        Msg::Event(e) => e.id,
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

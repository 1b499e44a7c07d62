//! The compiled journeys the runtime serves: every published version (instances stay on
//! the version they entered), which version takes new entries, and the index from event
//! types to the journeys they enter.
//!
//! Readers take a cheap snapshot (`Arc`); writers replace the whole set (copy on write),
//! so a partition batch sees one consistent set from start to end.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::compile::Journey;
use crate::store::JourneyStatus;

/// One journey's versions and status.
#[derive(Clone)]
pub struct JourneyVersions {
    pub status: JourneyStatus,
    pub versions: BTreeMap<u32, Arc<Journey>>,
}

impl JourneyVersions {
    /// The version that takes new entries: the latest, while the journey is live.
    pub fn entry_version(&self) -> Option<&Arc<Journey>> {
        match self.status {
            JourneyStatus::Live => self.versions.values().next_back(),
            _ => None,
        }
    }
}

/// A consistent view of every journey.
#[derive(Clone, Default)]
pub struct JourneySet {
    by_id: HashMap<String, JourneyVersions>,
    /// Event type -> ids of live journeys whose entry listens to it.
    by_event: HashMap<String, Vec<String>>,
}

impl JourneySet {
    pub fn get(&self, id: &str) -> Option<&JourneyVersions> {
        self.by_id.get(id)
    }

    pub fn version(&self, id: &str, version: u32) -> Option<&Arc<Journey>> {
        self.by_id.get(id).and_then(|j| j.versions.get(&version))
    }

    /// The journeys an event of this type makes profiles enter, in id order.
    pub fn entered_by<'a>(&'a self, event_type: &str) -> impl Iterator<Item = &'a Arc<Journey>> {
        self.by_event
            .get(event_type)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id).and_then(JourneyVersions::entry_version))
    }

    fn reindex(&mut self) {
        self.by_event.clear();
        for (id, j) in &self.by_id {
            if let Some(v) = j.entry_version() {
                self.by_event
                    .entry(v.entry.event_type.clone())
                    .or_default()
                    .push(id.clone());
            }
        }
        for ids in self.by_event.values_mut() {
            ids.sort();
        }
    }
}

/// The shared, swappable set.
#[derive(Default)]
pub struct Journeys {
    current: RwLock<Arc<JourneySet>>,
}

impl Journeys {
    pub fn snapshot(&self) -> Arc<JourneySet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut JourneySet)) {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        f(&mut next);
        next.reindex();
        *guard = Arc::new(next);
    }

    /// Adds a published version; the journey takes `status`.
    pub fn add_version(&self, journey: Arc<Journey>, status: JourneyStatus) {
        self.update(|set| {
            let entry = set
                .by_id
                .entry(journey.id.clone())
                .or_insert_with(|| JourneyVersions {
                    status,
                    versions: BTreeMap::new(),
                });
            entry.status = status;
            entry.versions.insert(journey.version, journey);
        });
    }

    pub fn set_status(&self, id: &str, status: JourneyStatus) {
        self.update(|set| {
            if let Some(j) = set.by_id.get_mut(id) {
                j.status = status;
            }
        });
    }
}

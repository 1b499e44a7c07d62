//! The compiled journeys the runtime serves: every published version (instances stay on
//! the version they entered), which version takes new entries, and the index from event
//! types to the journeys they enter.
//!
//! Readers take a cheap snapshot (`Arc`); writers replace the whole set (copy on write),
//! so a partition batch sees one consistent set from start to end.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::compile::{EntryKind, Journey};
use crate::store::{JourneyStatus, Pause};

/// One journey's versions and status.
#[derive(Clone)]
pub struct JourneyVersions {
    pub status: JourneyStatus,
    pub versions: BTreeMap<u32, Arc<Journey>>,
    /// What the journey holds while it is paused.
    pub pause: Option<Pause>,
    /// Its draft, while it runs in test mode (version 0, test profiles only).
    pub test: Option<Arc<Journey>>,
}

impl JourneyVersions {
    /// The version that takes new entries: the latest, while the journey is live (or
    /// paused: its entries are then held, see [`JourneyVersions::holds_entries`]).
    pub fn entry_version(&self) -> Option<&Arc<Journey>> {
        match self.status {
            JourneyStatus::Live | JourneyStatus::Paused => self.versions.values().next_back(),
            _ => None,
        }
    }

    /// The versions that take new entries: the entry version and the draft in test.
    pub fn entry_versions(&self) -> impl Iterator<Item = &Arc<Journey>> {
        self.entry_version().into_iter().chain(self.test.as_ref())
    }

    /// A version by number; 0 is the draft in test mode.
    pub fn version(&self, version: u32) -> Option<&Arc<Journey>> {
        match version {
            0 => self.test.as_ref(),
            v => self.versions.get(&v),
        }
    }

    /// Whether new entries wait for the journey to resume.
    pub fn holds_entries(&self) -> bool {
        self.status == JourneyStatus::Paused && self.pause.as_ref().is_some_and(|p| p.entries)
    }

    /// Whether instances reaching an action node wait for the journey to resume.
    pub fn holds_actions(&self) -> bool {
        self.status == JourneyStatus::Paused && self.pause.as_ref().is_some_and(|p| p.actions)
    }
}

/// A consistent view of every journey.
#[derive(Clone, Default)]
pub struct JourneySet {
    by_id: HashMap<String, JourneyVersions>,
    /// Event type -> ids of live journeys whose entry listens to it.
    by_event: HashMap<String, Vec<String>>,
    /// Audience -> ids of live audience-qualification journeys on it.
    by_audience: HashMap<String, Vec<String>>,
    /// Business event type -> ids of live business-event journeys.
    by_business_event: HashMap<String, Vec<String>>,
    /// Ids of live read-audience journeys.
    scheduled: Vec<String>,
}

impl JourneySet {
    pub fn get(&self, id: &str) -> Option<&JourneyVersions> {
        self.by_id.get(id)
    }

    /// Every journey, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &JourneyVersions)> {
        self.by_id.iter()
    }

    pub fn version(&self, id: &str, version: u32) -> Option<&Arc<Journey>> {
        self.by_id.get(id).and_then(|j| j.version(version))
    }

    /// The journeys an event of this type makes profiles enter, in id order.
    pub fn entered_by<'a>(&'a self, event_type: &str) -> impl Iterator<Item = &'a Arc<Journey>> {
        self.by_event
            .get(event_type)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
            .flat_map(JourneyVersions::entry_versions)
    }

    /// Live audience-qualification journeys on `audience`, in id order.
    pub fn qualified_by<'a>(&'a self, audience: &str) -> impl Iterator<Item = &'a Arc<Journey>> {
        self.live(self.by_audience.get(audience))
    }

    /// Live business-event journeys for this business event type, in id order.
    pub fn fanned_out_by<'a>(&'a self, event_type: &str) -> impl Iterator<Item = &'a Arc<Journey>> {
        self.live(self.by_business_event.get(event_type))
    }

    /// Live read-audience journeys, in id order.
    pub fn scheduled(&self) -> impl Iterator<Item = &Arc<Journey>> {
        self.live(Some(&self.scheduled))
    }

    fn live<'a>(&'a self, ids: Option<&'a Vec<String>>) -> impl Iterator<Item = &'a Arc<Journey>> {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id).and_then(JourneyVersions::entry_version))
    }

    fn reindex(&mut self) {
        self.by_event.clear();
        self.by_audience.clear();
        self.by_business_event.clear();
        self.scheduled.clear();
        for (id, j) in &self.by_id {
            let Some(v) = j.entry_version().or(j.test.as_ref()) else {
                continue;
            };
            let index = match &v.entry.kind {
                EntryKind::Event { event_type } => {
                    self.by_event.entry(event_type.clone()).or_default()
                }
                EntryKind::Qualification { audience, .. } => {
                    self.by_audience.entry(audience.clone()).or_default()
                }
                EntryKind::BusinessEvent { event_type, .. } => self
                    .by_business_event
                    .entry(event_type.clone())
                    .or_default(),
                EntryKind::ReadAudience { .. } => &mut self.scheduled,
            };
            index.push(id.clone());
        }
        for ids in self
            .by_event
            .values_mut()
            .chain(self.by_audience.values_mut())
            .chain(self.by_business_event.values_mut())
            .chain(std::iter::once(&mut self.scheduled))
        {
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
                    pause: None,
                    test: None,
                });
            entry.status = status;
            if status != JourneyStatus::Paused {
                entry.pause = None;
            }
            entry.versions.insert(journey.version, journey);
        });
    }

    /// Starts (`Some`) or ends test mode of a journey's draft.
    pub fn set_test(&self, id: &str, test: Option<Arc<Journey>>) {
        self.update(|set| {
            let entry = set
                .by_id
                .entry(id.to_string())
                .or_insert_with(|| JourneyVersions {
                    status: JourneyStatus::Draft,
                    versions: BTreeMap::new(),
                    pause: None,
                    test: None,
                });
            entry.test = test;
        });
    }

    /// Sets a journey's status; `pause` is kept only while it is paused.
    pub fn set_status(&self, id: &str, status: JourneyStatus, pause: Option<Pause>) {
        self.update(|set| {
            if let Some(j) = set.by_id.get_mut(id) {
                j.status = status;
                j.pause = pause.filter(|_| status == JourneyStatus::Paused);
            }
        });
    }
}

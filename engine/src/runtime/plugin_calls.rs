//! Where what may still run calls plugins: the journey versions that can take a step
//! (the version a live or paused journey enters, any version with a live instance, a
//! draft in test mode) and the predicates of audiences. A plugin is removed only while
//! none of them makes a call its removal would break. Also which action nodes are
//! pinned below the newest installed version of their plugin (what publication and
//! installation announce).
//!
//! Owns the catalog lock: publishing a version, starting test mode and putting an
//! audience hold it shared, a plugin's removal holds it alone, so nothing can start to
//! call a plugin between the check and the removal. It never removes a plugin itself
//! (the plugin registry does) and never changes a journey.

use crate::activities::PluginCall;
use crate::store::JourneyStatus;

use super::Runtime;

/// One call that may still run: where, and what it calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    /// `journeys.<id>.versions.<n>.<path in the definition>` (version 0 is the draft in
    /// test mode) or `audiences.<name>.predicate`.
    pub at: String,
    pub call: PluginCall,
}

/// Held while the set of plugins changes: no journey version is published, no draft is
/// put in test mode and no audience is put meanwhile.
pub struct CatalogChange<'a> {
    _guard: tokio::sync::RwLockWriteGuard<'a, ()>,
}

impl Runtime {
    /// Waits until no publication, test start or audience change is under way, and keeps
    /// them waiting until the returned guard is dropped.
    pub async fn change_catalog(&self) -> CatalogChange<'_> {
        CatalogChange {
            _guard: self.shared.catalog_lock.write().await,
        }
    }

    /// Every call made by a journey version that can still take a step, or by an
    /// audience predicate. Takes a [`CatalogChange`] so that the answer stays true until
    /// the caller has acted on it.
    pub async fn runnable_calls(&self, _held: &CatalogChange<'_>) -> anyhow::Result<Vec<CallSite>> {
        let mut sites = Vec::new();
        let journeys = self.shared.journeys.snapshot();
        let mut by_id: Vec<_> = journeys.iter().collect();
        by_id.sort_by_key(|(id, _)| *id);
        for (id, j) in by_id {
            let entering = j.entry_version().map(|v| v.version);
            let mut runnable: Vec<_> = j.test.iter().collect();
            for (version, journey) in &j.versions {
                let live = match j.status {
                    // Their instances were ended.
                    JourneyStatus::Stopped | JourneyStatus::Finished | JourneyStatus::Draft => {
                        false
                    }
                    _ => {
                        Some(*version) == entering
                            || !self
                                .shared
                                .store
                                .profiles_in_journey(id, Some(*version), "", 1)
                                .await?
                                .is_empty()
                    }
                };
                if live {
                    runnable.push(journey);
                }
            }
            for journey in runnable {
                for (path, call) in &journey.calls {
                    sites.push(CallSite {
                        at: format!("journeys.{id}.versions.{}.{path}", journey.version),
                        call: call.clone(),
                    });
                }
            }
        }
        let audiences = self.shared.audiences.snapshot();
        for (name, audience) in &audiences.audiences {
            if let Some(predicate) = &audience.predicate {
                for call in predicate.external_calls() {
                    sites.push(CallSite {
                        at: format!("audiences.{name}.predicate"),
                        call: PluginCall::Expr(call),
                    });
                }
            }
        }
        Ok(sites)
    }
}

/// An action node pinned to a version of its plugin below the newest one installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OlderPin {
    /// Where: the node's path in the definition (`nodes.call.action`), prefixed with
    /// `journeys.<id>.versions.<n>.` when several journeys are looked at.
    pub at: String,
    /// `name@version` as pinned.
    pub pinned: String,
    /// `name@version`, the newest installed.
    pub newest: String,
}

impl std::fmt::Display for OlderPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: pins {}; {} is installed",
            self.at, self.pinned, self.newest
        )
    }
}

impl Runtime {
    /// The action pins of `journey` below the newest installed version of their plugin.
    fn older_pins_of(&self, journey: &crate::compile::Journey, prefix: &str) -> Vec<OlderPin> {
        journey
            .calls
            .iter()
            .filter_map(|(path, call)| {
                let PluginCall::Action { name, version } = call else {
                    return None;
                };
                let newest = self.shared.actions.resolve(name)?;
                (newest.version != *version).then(|| OlderPin {
                    at: format!("{prefix}{path}"),
                    pinned: format!("{name}@{version}"),
                    newest: newest.pinned(),
                })
            })
            .collect()
    }

    /// The action pins of version `version` of journey `id` below the newest installed
    /// version of their plugin (a publication says so: `journey upgrade-plugins`).
    pub fn older_pins(&self, id: &str, version: u32) -> Vec<OlderPin> {
        let snapshot = self.shared.journeys.snapshot();
        snapshot
            .version(id, version)
            .map(|j| self.older_pins_of(j, ""))
            .unwrap_or_default()
    }

    /// The versions that take entries (of live and paused journeys) pinning a version of
    /// plugin `name` below its newest (an installation says so).
    pub fn entering_older_pins(&self, name: &str) -> Vec<OlderPin> {
        let journeys = self.shared.journeys.snapshot();
        let mut by_id: Vec<_> = journeys.iter().collect();
        by_id.sort_by_key(|(id, _)| *id);
        by_id
            .into_iter()
            .filter(|(_, j)| matches!(j.status, JourneyStatus::Live | JourneyStatus::Paused))
            .filter_map(|(id, j)| {
                let v = j.entry_version()?;
                Some(self.older_pins_of(v, &format!("journeys.{id}.versions.{}.", v.version)))
            })
            .flatten()
            .filter(|p| p.pinned.split_once('@').map(|(n, _)| n) == Some(name))
            .collect()
    }
}

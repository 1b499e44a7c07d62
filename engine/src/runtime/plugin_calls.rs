//! Where what may still run calls plugins: the journey versions that can take a step
//! (the version a live or paused journey enters, any version with a live instance, a
//! draft in test mode) and the predicates of audiences. A plugin is removed only while
//! none of them makes a call its removal would break.
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

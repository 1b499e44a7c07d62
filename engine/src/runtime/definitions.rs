//! Audience and capping-rule definitions in the runtime: compiling, storing and loading
//! them, and re-evaluating every profile when a predicate changes.
//!
//! Owns refusing a definition with a located error before it is stored. Never changes a
//! membership itself: the partitions do, profile by profile.

use std::sync::Arc;

use serde_json::Value;

use super::audiences::{Audience, CappingRule};
use super::{ProfileOp, Runtime};
use crate::expr::ExprEngine;

/// Why an audience or capping rule was refused.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("{message}")]
    Invalid { path: String, message: String },
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl Runtime {
    pub(super) async fn load_audiences(&self) -> anyhow::Result<()> {
        let exprs = self.shared.exprs();
        for record in self.shared.store.list_audiences().await? {
            match compile_audience(&exprs, &record.name, record.definition) {
                Ok(a) => self.shared.audiences.update(|set| {
                    set.audiences.insert(a.name.clone(), Arc::new(a));
                }),
                Err(e) => {
                    tracing::error!(audience = %record.name, error = %e, "stored audience no longer compiles")
                }
            }
        }
        for (id, def) in self.shared.store.capping_rules().await? {
            match compile_capping(def) {
                Ok(rule) => self.shared.audiences.update(|set| {
                    set.capping.insert(id, rule);
                }),
                Err(e) => tracing::error!(rule = %id, error = %e, "stored capping rule is invalid"),
            }
        }
        Ok(())
    }

    /// Creates or replaces an audience. A predicate audience is then evaluated for every
    /// existing profile in the background (`GET /v1/audiences/{name}` shows its size
    /// grow); from then on every profile write keeps it up to date.
    pub async fn put_audience(&self, name: &str, def: Value) -> Result<(), DefinitionError> {
        if let Err(message) = crate::ids::check_id(name) {
            return Err(DefinitionError::Invalid {
                path: "name".into(),
                message,
            });
        }
        let _catalog = self.shared.catalog_lock.read().await;
        let current = self.shared.audiences.snapshot();
        let audience = compile_audience(&self.shared.exprs(), name, def)?;
        match current.audiences.get(name) {
            // Unchanged (a resources file is applied at every start): nothing to do.
            Some(existing) if existing.def == audience.def => return Ok(()),
            Some(_) => {}
            None if current.audiences.len() >= self.shared.settings.max_audiences => {
                return Err(DefinitionError::Invalid {
                    path: String::new(),
                    message: format!(
                        "there are already {} audiences (max_audiences)",
                        self.shared.settings.max_audiences
                    ),
                });
            }
            None => {}
        }
        let stored = serde_json::to_value(&audience.def).map_err(anyhow::Error::from)?;
        self.shared
            .store
            .put_audience(name, stored, self.now())
            .await?;
        let backfill = audience.predicate.is_some();
        self.shared.audiences.update(|set| {
            set.audiences.insert(name.to_string(), Arc::new(audience));
        });
        if backfill {
            let runtime = self.clone();
            let name = name.to_string();
            self.shared.spawn(async move {
                if let Err(e) = runtime.reevaluate_all().await {
                    tracing::error!(audience = %name, error = %e, "evaluating existing profiles failed");
                }
            });
        }
        Ok(())
    }

    /// Sends every profile through its partition for audience evaluation.
    async fn reevaluate_all(&self) -> anyhow::Result<()> {
        let mut after = None;
        loop {
            let ids = self.shared.store.profile_ids(after.clone(), 1_000).await?;
            let Some(last) = ids.last().cloned() else {
                return Ok(());
            };
            let ops = ids
                .into_iter()
                .map(|id| ProfileOp::Reevaluate { id })
                .collect();
            self.profile_ops(ops).await?;
            after = Some(last);
        }
    }

    /// Creates or replaces a capping rule.
    pub async fn put_capping_rule(&self, id: &str, def: Value) -> Result<(), DefinitionError> {
        if let Err(message) = crate::ids::check_id(id) {
            return Err(DefinitionError::Invalid {
                path: "id".into(),
                message,
            });
        }
        let rule = compile_capping(def.clone())?;
        self.shared
            .store
            .put_capping_rule(id, def, self.now())
            .await?;
        self.shared.audiences.update(|set| {
            set.capping.insert(id.to_string(), rule);
        });
        Ok(())
    }

    /// Whether an audience is an explicit list (`Some(true)`), a predicate audience
    /// (`Some(false)`) or unknown.
    pub fn audience_is_list(&self, name: &str) -> Option<bool> {
        self.shared
            .audiences
            .snapshot()
            .audiences
            .get(name)
            .map(|a| a.predicate.is_none())
    }
}

fn compile_audience(
    exprs: &ExprEngine,
    name: &str,
    def: Value,
) -> Result<Audience, DefinitionError> {
    let def: crate::model::AudienceDef = serde_path_to_error::deserialize(&def).map_err(|e| {
        let p = crate::model::serde_problem(e);
        DefinitionError::Invalid {
            path: p.path,
            message: p.message,
        }
    })?;
    let predicate = match &def.predicate {
        Some(src) => Some(exprs.compile(src).map_err(|e| DefinitionError::Invalid {
            path: "predicate".into(),
            message: format!("{src:?}: {e}"),
        })?),
        None => None,
    };
    Ok(Audience {
        name: name.to_string(),
        def,
        predicate,
    })
}

fn compile_capping(def: Value) -> Result<CappingRule, DefinitionError> {
    let def: crate::model::CappingRuleDef =
        serde_path_to_error::deserialize(&def).map_err(|e| {
            let p = crate::model::serde_problem(e);
            DefinitionError::Invalid {
                path: p.path,
                message: p.message,
            }
        })?;
    if def.max == 0 {
        return Err(DefinitionError::Invalid {
            path: "max".into(),
            message: "max must be at least 1".into(),
        });
    }
    let period = crate::expr::time::parse_duration(&def.period).map_err(|message| {
        DefinitionError::Invalid {
            path: "period".into(),
            message,
        }
    })?;
    Ok(CappingRule {
        max: def.max,
        period,
    })
}

//! The assembled engine: store, runtime and HTTP API wired together.
//!
//! Owns start-up order (open the store, load journeys, start partitions and timers,
//! recover unprocessed events, then serve) and loading journey files from a folder. It
//! holds no logic of its own beyond wiring.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::actions::ActionRegistry;
use crate::clock::Clock;
use crate::expr::ExternalFunctions;
use crate::model::{Format, parse_journey, parse_resources};
use crate::plugins::{PluginHost, PluginRegistry};
use crate::runtime::{Published, Runtime};
use crate::settings::Settings;
use crate::store::Store;
use crate::store::sqlite::{SqliteStore, StoreOptions};

/// A running engine.
#[derive(Clone)]
pub struct Engine {
    runtime: Runtime,
    plugins: Arc<PluginRegistry>,
    /// The API tokens, when the API requires them.
    tokens: Option<Arc<crate::auth::Tokens>>,
    /// The database file's lock, when the engine opened the file itself.
    _lock: Option<Arc<crate::store::sqlite::DbLock>>,
}

impl Engine {
    /// Opens the SQLite store of `settings` and starts the runtime with the built-in actions.
    /// Two engines on one file would both write it: the second is refused (`DbLock`).
    pub async fn open(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Engine> {
        let lock = crate::store::sqlite::DbLock::acquire(&settings.db_path)?;
        let store = SqliteStore::open(&settings.db_path, StoreOptions::from(&settings))
            .with_context(|| format!("opening the database {}", settings.db_path.display()))?;
        let mut engine = Self::with_parts(
            settings,
            clock,
            Arc::new(store),
            ActionRegistry::with_builtins(),
        )
        .await?;
        engine._lock = Some(Arc::new(lock));
        Ok(engine)
    }

    /// Starts an engine on a given store and set of actions; installs the plugins of
    /// `settings.plugin_dirs` first, so that journeys using them compile.
    pub async fn with_parts(
        settings: Settings,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
        actions: ActionRegistry,
    ) -> anyhow::Result<Engine> {
        // With a tokens file the check is in place even while it holds none: the first
        // token created while the engine runs closes the API.
        let tokens = if settings.require_auth || settings.tokens_file.is_some() {
            Some(crate::auth::Tokens::load(
                settings.tokens_file.clone(),
                &settings.segment_write_keys,
                settings.require_auth,
            )?)
        } else {
            None
        };
        let host = Arc::new(PluginHost::new(&settings.plugins)?);
        let plugins = PluginRegistry::new(host, actions.clone());
        for dir in &settings.plugin_dirs {
            let loaded = plugins.load_dir(dir).await?;
            tracing::info!(plugins = ?loaded, "plugins from {}", dir.display());
        }
        let external: Arc<dyn ExternalFunctions> = plugins.clone();
        let runtime = Runtime::start(store, clock, settings, actions, Some(external)).await?;
        Ok(Engine {
            runtime,
            plugins,
            tokens,
            _lock: None,
        })
    }

    /// The installed plugins.
    pub fn plugins(&self) -> &Arc<PluginRegistry> {
        &self.plugins
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn router(&self) -> axum::Router {
        let router = crate::api::router(self.runtime.clone(), self.plugins.clone());
        match &self.tokens {
            Some(tokens) => router.layer(axum::middleware::from_fn_with_state(
                tokens.clone(),
                crate::auth::check,
            )),
            None => router,
        }
    }

    /// Serves the API on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        crate::server::serve(
            listener,
            self.router(),
            crate::server::ServerLimits::from(self.runtime.settings()),
            self.runtime.metrics().clone(),
            shutdown,
        )
        .await
    }

    /// Stops the engine after its server has stopped: waits at most `grace` for the
    /// action calls in flight to answer and every partition to commit the batch it is
    /// working on and the messages queued before this call, then stops every task. Returns whether the partitions finished in time; what
    /// they did not is processed at the next start (accepted events are durable).
    pub async fn shut_down(&self, grace: std::time::Duration) -> bool {
        let drained = matches!(
            tokio::time::timeout(grace, self.runtime.drain()).await,
            Ok(Ok(()))
        );
        self.runtime.shutdown();
        drained
    }

    /// Creates or replaces the subscription groups, audiences, capping rules and
    /// templates of a resources file (a template changed since its latest version becomes
    /// a new version).
    pub async fn apply_resources(&self, path: &Path) -> anyhow::Result<()> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            _ => Format::Yaml,
        };
        let resources = parse_resources(&text, format)
            .map_err(|p| anyhow::anyhow!("{}: {p}", path.display()))?;
        for (id, group) in resources.subscription_groups {
            self.runtime
                .put_subscription_group(&id, serde_json::to_value(group)?)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("{}: subscription_groups.{id}: {e}", path.display())
                })?;
        }
        for (id, rule) in resources.capping_rules {
            self.runtime
                .put_capping_rule(&id, serde_json::to_value(rule)?)
                .await
                .map_err(|e| anyhow::anyhow!("{}: capping_rules.{id}: {e}", path.display()))?;
        }
        for (id, template) in resources.templates {
            self.runtime
                .put_template(&id, serde_json::to_value(template)?)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}: {}",
                        path.display(),
                        located(&format!("templates.{id}"), e)
                    )
                })?;
        }
        for (name, audience) in resources.audiences {
            self.runtime
                .put_audience(&name, serde_json::to_value(audience)?)
                .await
                .map_err(|e| anyhow::anyhow!("{}: audiences.{name}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Publishes every journey file (`.json`, `.yaml`, `.yml`) of a folder whose
    /// definition differs from its latest version. A file's journey id is its `id` field
    /// or its file name without extension.
    pub async fn publish_folder(&self, dir: &Path) -> anyhow::Result<Vec<(String, Published)>> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("json" | "yaml" | "yml")
                )
            })
            .collect();
        files.sort();
        let mut out = Vec::with_capacity(files.len());
        for path in files {
            let text =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let format = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => Format::Json,
                _ => Format::Yaml,
            };
            let def = parse_journey(&text, format)
                .map_err(|p| anyhow::anyhow!("{}: {p}", path.display()))?;
            let id = match &def.id {
                Some(id) => id.clone(),
                None => path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string(),
            };
            let published =
                self.runtime
                    .publish_definition(&id, &def)
                    .await
                    .map_err(|e| match e {
                        crate::runtime::JourneyError::Invalid(p) => {
                            anyhow::anyhow!("{}:\n{p}", path.display())
                        }
                        other => anyhow::anyhow!("{}: {other}", path.display()),
                    })?;
            out.push((id, published));
        }
        Ok(out)
    }
}

/// A template's problems under its place in a resources file, one per line.
fn located(at: &str, e: crate::runtime::TemplateError) -> String {
    match e {
        crate::runtime::TemplateError::Invalid(problems) => problems
            .0
            .iter()
            .map(|p| match p.path.as_str() {
                "" => format!("{at}: {}", p.message),
                path => format!("{at}.{path}: {}", p.message),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("{at}: {other}"),
    }
}

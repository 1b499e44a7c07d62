//! The installed plugins: loaded from folders at start and through the API, by name and
//! version. Action plugins are registered as action executors; data sources and function
//! plugins are offered to expressions; channel providers to `message` nodes
//! (`provider.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::bindings::types::{CallContext, PluginError};
use super::host::{
    CallLimits, Called, Fault, InstancePool, PluginHost, Prepared, ReusePolicy, Target,
};
use super::manifest::{DEFAULT_MAX_CALLS, DEFAULT_MAX_IDLE, Kind, Manifest, parse_manifest};
use super::network::NetworkPolicy;
use super::outbound::{AllowList, HttpMode};
use super::secrets::{Origin, granted, package_digest, secret_key, ungranted};
use super::state::Grants;
use crate::actions::{ActionCall, ActionError, ActionExecutor, ActionRegistry, ParamsSchema};
use crate::activities::PluginCall;
use crate::expr::{CallInfo, ExternalCall, ExternalFunctions};
use crate::model::{Problem, Problems};

/// One function a functions plugin exports.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionInfo {
    pub name: String,
    pub params: Vec<String>,
    pub returns: String,
    pub description: String,
}

/// An installed plugin version.
pub struct Plugin {
    pub manifest: Manifest,
    pub limits: CallLimits,
    pub grants: Arc<Grants>,
    pub prepared: Prepared,
    /// Warm instances, when the manifest opts in to reuse.
    pub pool: Option<InstancePool>,
    pub functions: Vec<FunctionInfo>,
    pub sha256: String,
    /// The digest of component and manifest an operator grants secrets to
    /// (`plugins::secrets`).
    pub package_digest: String,
    pub size_bytes: usize,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// What `GET /v1/plugins/{name}` shows.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub kind: &'static str,
    pub description: String,
    pub sha256: String,
    /// What `--secret-grant NAME=DIGEST` names to let this package read its secrets.
    pub package_digest: String,
    pub size_bytes: usize,
    pub allowed_hosts: Vec<String>,
    pub limits: Value,
    /// Instance reuse (`{"reuse": false}` unless the manifest opts in).
    pub instances: Value,
    pub config_keys: Vec<String>,
    pub secrets: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params_schema: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionInfo>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl Plugin {
    /// What a call of this plugin runs on.
    pub fn target(&self) -> Target<'_> {
        Target {
            prepared: &self.prepared,
            pool: self.pool.as_ref(),
            grants: &self.grants,
            limits: &self.limits,
        }
    }

    pub fn info(&self) -> PluginInfo {
        let m = &self.manifest;
        PluginInfo {
            name: m.name.clone(),
            version: m.version.clone(),
            kind: m.kind.as_str(),
            description: m.description.clone(),
            sha256: self.sha256.clone(),
            package_digest: self.package_digest.clone(),
            size_bytes: self.size_bytes,
            allowed_hosts: m.capabilities.allowed_hosts.clone(),
            limits: serde_json::json!({
                "memory_mb": self.limits.memory_bytes >> 20,
                "timeout_ms": self.limits.timeout.as_millis() as u64,
                "max_output_bytes": self.limits.max_output_bytes,
            }),
            instances: serde_json::to_value(&m.instances).unwrap_or_default(),
            config_keys: m.config.keys().cloned().collect(),
            secrets: m.secrets.clone(),
            params_schema: m.params_schema.clone(),
            functions: self.functions.clone(),
            imports: self.imports.clone(),
            exports: self.exports.clone(),
        }
    }
}

/// Plugin versions to remove, and the version calls by name resolve to afterwards.
pub struct Removal {
    pub name: String,
    pub removed: Vec<Arc<Plugin>>,
    pub remaining: Option<Arc<Plugin>>,
}

impl Removal {
    /// Whether `call` would fail once the versions are gone: an action pinned to one of
    /// them, or a function, data source or message provider that the remaining latest
    /// version (which calls by name resolve to) does not offer.
    pub fn breaks(&self, call: &PluginCall) -> bool {
        let remaining = self.remaining.as_ref().map(|p| (p.manifest.kind, p));
        match call {
            PluginCall::Action { name, version } => {
                *name == self.name && self.removed.iter().any(|p| p.manifest.version == *version)
            }
            PluginCall::Expr(ExternalCall::Function { module, name }) => {
                *module == self.name
                    && !matches!(remaining, Some((Kind::Functions, p)) if p.functions.iter().any(|f| f.name == *name))
            }
            PluginCall::Expr(ExternalCall::Lookup {
                source: Some(source),
            }) => *source == self.name && !matches!(remaining, Some((Kind::DataSource, _))),
            // A computed source may name this one.
            PluginCall::Expr(ExternalCall::Lookup { source: None }) => {
                self.removed
                    .iter()
                    .any(|p| p.manifest.kind == Kind::DataSource)
                    && !matches!(remaining, Some((Kind::DataSource, _)))
            }
            PluginCall::Provider { name } => {
                *name == self.name
                    && self
                        .removed
                        .iter()
                        .any(|p| p.manifest.kind == Kind::ChannelProvider)
                    && !matches!(remaining, Some((Kind::ChannelProvider, _)))
            }
        }
    }
}

/// A cached data-source answer.
struct Cached {
    value: Option<Value>,
    until: Instant,
}

/// Every installed plugin.
pub struct PluginRegistry {
    host: Arc<PluginHost>,
    actions: ActionRegistry,
    plugins: RwLock<BTreeMap<String, Vec<Arc<Plugin>>>>,
    generation: AtomicU64,
    lookups: Mutex<HashMap<(String, String), Cached>>,
    http: Arc<HttpMode>,
}

/// Why an install failed: a located problem in the manifest, or the component; or the
/// upload would read secrets the operator did not grant it, or its name is another's.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("invalid manifest: {0}")]
    Manifest(Problems),
    #[error("invalid component: {0}")]
    Component(String),
    #[error(
        "plugin {plugin:?} declares the secret(s) {secrets:?}, set by the operator for it; an uploaded plugin reads them only when the operator grants its package: start the engine with --secret-grant {plugin}={digest}"
    )]
    SecretNotGranted {
        plugin: String,
        secrets: Vec<String>,
        digest: String,
    },
    #[error(
        "plugin {name:?} would share its secrets with the installed plugin {installed:?} (names that differ only in case, `-` or `_` are one plugin for secrets); use that name"
    )]
    NameConflict { name: String, installed: String },
}

impl PluginRegistry {
    pub fn new(host: Arc<PluginHost>, actions: ActionRegistry) -> Arc<PluginRegistry> {
        Self::with_http(host, actions, Arc::new(HttpMode::Live))
    }

    /// A registry whose plugins' allowed HTTP requests go through `http` (stubbed or
    /// recorded: the plugin test harness).
    pub fn with_http(
        host: Arc<PluginHost>,
        actions: ActionRegistry,
        http: Arc<HttpMode>,
    ) -> Arc<PluginRegistry> {
        Arc::new(PluginRegistry {
            host,
            actions,
            plugins: RwLock::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            lookups: Mutex::new(HashMap::new()),
            http,
        })
    }

    /// Installs every plugin of a folder: each `*.toml` manifest (directly in it or one
    /// level down) with the component it names. The build files of a plugin's own project
    /// (`Cargo.toml`, `rust-toolchain.toml`, `pyproject.toml`) are not manifests, so a
    /// plugin project's folder can be served as it is.
    pub async fn load_dir(self: &Arc<Self>, dir: &Path) -> anyhow::Result<Vec<String>> {
        const NOT_MANIFESTS: &[&str] = &["Cargo.toml", "rust-toolchain.toml", "pyproject.toml"];
        let is_manifest = |p: &Path| {
            p.extension().is_some_and(|e| e == "toml")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !NOT_MANIFESTS.contains(&n))
        };
        let mut manifests = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if path.is_dir() && !hidden {
                for inner in std::fs::read_dir(&path)? {
                    let p = inner?.path();
                    if is_manifest(&p) {
                        manifests.push(p);
                    }
                }
            } else if is_manifest(&path) {
                manifests.push(path);
            }
        }
        manifests.sort();
        let mut loaded = Vec::new();
        for path in manifests {
            let text = std::fs::read_to_string(&path)?;
            let manifest =
                parse_manifest(&text).map_err(|p| anyhow::anyhow!("{}:\n{p}", path.display()))?;
            let component = path
                .parent()
                .unwrap_or(dir)
                .join(manifest.component.as_deref().unwrap_or_default());
            let bytes = std::fs::read(&component).with_context(|| {
                format!(
                    "{}: reading the component {}",
                    path.display(),
                    component.display()
                )
            })?;
            let plugin = self
                .install(manifest, bytes, Origin::Operator)
                .await
                .map_err(|e| match e {
                    InstallError::Manifest(p) => anyhow::anyhow!("{}:\n{p}", path.display()),
                    InstallError::Component(m) => {
                        anyhow::anyhow!("{}: {m}", component.display())
                    }
                    other => anyhow::anyhow!("{}: {other}", path.display()),
                })?;
            loaded.push(format!(
                "{}@{}",
                plugin.manifest.name, plugin.manifest.version
            ));
        }
        Ok(loaded)
    }

    /// Parses a manifest and installs it with its component.
    pub async fn install_text(
        self: &Arc<Self>,
        manifest: &str,
        component: Vec<u8>,
    ) -> Result<Arc<Plugin>, InstallError> {
        let manifest = parse_manifest(manifest).map_err(InstallError::Manifest)?;
        self.install(manifest, component, Origin::Operator).await
    }

    /// Compiles, links and registers a plugin version (replacing the same version).
    pub async fn install(
        self: &Arc<Self>,
        manifest: Manifest,
        bytes: Vec<u8>,
        origin: Origin,
    ) -> Result<Arc<Plugin>, InstallError> {
        let settings = self.host.settings().clone();
        let key = secret_key(&manifest.name);
        let installed = self
            .plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .find(|n| **n != manifest.name && secret_key(n) == key)
            .cloned();
        if let Some(installed) = installed {
            return Err(InstallError::NameConflict {
                name: manifest.name.clone(),
                installed,
            });
        }
        let digest = package_digest(&manifest, &bytes);
        let refused = ungranted(
            &manifest,
            &digest,
            origin,
            &settings.secrets,
            &settings.secret_grants,
        );
        if !refused.is_empty() {
            return Err(InstallError::SecretNotGranted {
                plugin: manifest.name.clone(),
                secrets: refused,
                digest,
            });
        }
        let memory_mb = manifest
            .limits
            .memory_mb
            .unwrap_or(settings.default_memory_mb);
        if memory_mb > settings.max_memory_mb {
            return Err(InstallError::Manifest(Problems::from(Problem::new(
                "limits.memory_mb",
                format!(
                    "{memory_mb} MiB is more than this engine allows ({} MiB, plugins.max_memory_mb)",
                    settings.max_memory_mb
                ),
            ))));
        }
        let limits = CallLimits {
            memory_bytes: (memory_mb as usize) << 20,
            timeout: Duration::from_millis(
                manifest
                    .limits
                    .timeout_ms
                    .unwrap_or(settings.default_timeout_ms),
            ),
            max_output_bytes: manifest
                .limits
                .max_output_bytes
                .unwrap_or(settings.default_max_output_bytes),
        };
        let secrets = granted(&manifest, &settings.secrets);
        let grants = Arc::new(Grants {
            plugin: manifest.name.clone(),
            config: manifest.config.clone(),
            secrets,
            allow: Arc::new(AllowList::new(&manifest.capabilities.allowed_hosts)),
            network: Arc::new(NetworkPolicy {
                allow_internal: settings.allow_internal_networks.clone(),
            }),
            http: self.http.clone(),
        });
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let size_bytes = bytes.len();
        let host = self.host.clone();
        let kind = manifest.kind;
        let (prepared, imports, exports) = tokio::task::spawn_blocking(move || {
            let component = host
                .compile(&bytes)
                .map_err(|e| format!("not a WebAssembly component: {e:#}"))?;
            let ty = component.component_type();
            let engine = host_engine(&host);
            let imports = ty
                .imports(engine)
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>();
            let exports = ty
                .exports(engine)
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>();
            let prepared = host
                .prepare(kind, &component)
                .map_err(|e| format!("does not fit the `{}` world: {e:#}", kind.as_str()))?;
            Ok::<_, String>((prepared, imports, exports))
        })
        .await
        .map_err(|e| InstallError::Component(e.to_string()))?
        .map_err(InstallError::Component)?;

        let pool = manifest.instances.reuse.then(|| {
            self.host.pool(ReusePolicy {
                max_calls: manifest.instances.max_calls.unwrap_or(DEFAULT_MAX_CALLS),
                max_idle: manifest.instances.max_idle.unwrap_or(DEFAULT_MAX_IDLE),
            })
        });
        let mut functions = Vec::new();
        if let Prepared::Functions(_) = &prepared {
            let called = self
                .host
                .describe(Target {
                    prepared: &prepared,
                    pool: pool.as_ref(),
                    grants: &grants,
                    limits: &limits,
                })
                .await;
            match called.result {
                Ok(Ok(sigs)) => {
                    functions = sigs
                        .into_iter()
                        .map(|s| FunctionInfo {
                            name: s.name,
                            params: s.params,
                            returns: s.returns,
                            description: s.description,
                        })
                        .collect();
                }
                Ok(Err(e)) => {
                    return Err(InstallError::Component(format!(
                        "describe() failed: {}",
                        plugin_error(&e)
                    )));
                }
                Err(f) => {
                    return Err(InstallError::Component(format!(
                        "describe() failed: {}: {}",
                        f.code, f.message
                    )));
                }
            }
            for (i, f) in functions.iter().enumerate() {
                if crate::ids::check_id(&f.name).is_err() {
                    return Err(InstallError::Component(format!(
                        "function {i} has an invalid name {:?}",
                        f.name
                    )));
                }
            }
        }

        let params_schema = match &manifest.params_schema {
            Some(s) => Some(Arc::new(ParamsSchema::new(s.clone()).map_err(|e| {
                InstallError::Manifest(Problems::from(Problem::new("params_schema", e)))
            })?)),
            None => None,
        };
        let plugin = Arc::new(Plugin {
            manifest,
            limits,
            grants,
            prepared,
            pool,
            functions,
            sha256,
            package_digest: digest,
            size_bytes,
            imports,
            exports,
        });
        if plugin.manifest.kind == Kind::Action {
            self.actions.register(
                &plugin.manifest.name,
                &plugin.manifest.version,
                Arc::new(PluginAction {
                    plugin: plugin.clone(),
                    host: self.host.clone(),
                }),
                params_schema,
            );
        }
        {
            let mut map = self.plugins.write().unwrap_or_else(|p| p.into_inner());
            let versions = map.entry(plugin.manifest.name.clone()).or_default();
            versions.retain(|p| p.manifest.version != plugin.manifest.version);
            versions.push(plugin.clone());
            versions.sort_by_key(|p| version_tuple(&p.manifest.version));
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        tracing::info!(plugin = %plugin.manifest.name, version = %plugin.manifest.version, kind = plugin.manifest.kind.as_str(), "plugin installed");
        Ok(plugin)
    }

    /// What removing plugin `name` (every version, or only `version`) would take away;
    /// `None` when it is not installed.
    pub fn removal(&self, name: &str, version: Option<&str>) -> Option<Removal> {
        let map = self.plugins.read().unwrap_or_else(|p| p.into_inner());
        let installed = map.get(name)?;
        let (removed, kept): (Vec<_>, Vec<_>) = installed
            .iter()
            .cloned()
            .partition(|p| version.is_none_or(|v| p.manifest.version == v));
        if removed.is_empty() {
            return None;
        }
        Some(Removal {
            name: name.to_string(),
            removed,
            remaining: kept.last().cloned(),
        })
    }

    /// Removes the versions of a [`Removal`]: their actions from the action registry,
    /// their functions and data source from expressions built from now on. Calls under
    /// way finish on the version they started with. Returns `name@version` of each.
    pub fn remove(&self, removal: &Removal) -> Vec<String> {
        let mut gone = Vec::new();
        {
            let mut map = self.plugins.write().unwrap_or_else(|p| p.into_inner());
            if let Some(versions) = map.get_mut(&removal.name) {
                for plugin in &removal.removed {
                    let version = &plugin.manifest.version;
                    let before = versions.len();
                    versions.retain(|p| p.manifest.version != *version);
                    if versions.len() < before {
                        if plugin.manifest.kind == Kind::Action {
                            self.actions.unregister(&removal.name, version);
                        }
                        gone.push(format!("{}@{version}", removal.name));
                    }
                }
                if versions.is_empty() {
                    map.remove(&removal.name);
                }
            }
        }
        self.lookups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(source, _), _| *source != removal.name);
        self.generation.fetch_add(1, Ordering::SeqCst);
        for plugin in &gone {
            tracing::info!(%plugin, "plugin removed");
        }
        gone
    }

    /// The host the plugins run on.
    pub(super) fn host(&self) -> &Arc<PluginHost> {
        &self.host
    }

    /// A plugin by `name` (latest version) or `name@version`.
    pub fn get(&self, reference: &str) -> Option<Arc<Plugin>> {
        let (name, version) = match reference.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (reference, None),
        };
        let map = self.plugins.read().unwrap_or_else(|p| p.into_inner());
        let versions = map.get(name)?;
        match version {
            None => versions.last().cloned(),
            Some(v) => versions.iter().find(|p| p.manifest.version == v).cloned(),
        }
    }

    /// Every installed version of every plugin.
    pub fn list(&self) -> Vec<Arc<Plugin>> {
        let map = self.plugins.read().unwrap_or_else(|p| p.into_inner());
        map.values().flatten().cloned().collect()
    }

    fn block<F: Future>(f: F) -> F::Output {
        // Expressions are evaluated synchronously inside the partition's task; plugin
        // calls are async. The runtime is multi-threaded, so the worker can block in place.
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
    }
}

fn host_engine(host: &PluginHost) -> &wasmtime::Engine {
    host.engine()
}

fn version_tuple(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

fn plugin_error(e: &PluginError) -> String {
    match e {
        PluginError::InvalidInput(m) => format!("invalid input: {m}"),
        PluginError::Retryable(m) => format!("retryable: {m}"),
        PluginError::Permanent(m) => m.clone(),
    }
}

/// Notes a plugin call on the evaluating node's step event.
fn record(info: &CallInfo, call: Value) {
    if let Some(log) = &info.calls {
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() < 100 {
            log.push(call);
        }
    }
}

/// Records a plugin call made by an expression: which plugin, what (`function` or
/// `lookup`) on what, how long, and how it ended.
fn record_called<T>(
    info: &CallInfo,
    plugin: &Plugin,
    what: &str,
    subject: &str,
    called: &Called<T>,
) {
    record(
        info,
        json!({
            "plugin": format!("{}@{}", plugin.manifest.name, plugin.manifest.version),
            what: subject,
            "duration_us": called.elapsed.as_micros() as u64,
            "outcome": outcome_of(&called.result),
        }),
    );
}

fn outcome_of<T>(result: &Result<Result<T, PluginError>, Fault>) -> String {
    match result {
        Ok(Ok(_)) => "ok".into(),
        Ok(Err(e)) => format!("error: {}", plugin_error(e)),
        Err(f) => f.code.to_string(),
    }
}

fn call_context(info: &CallInfo, deadline: Duration) -> CallContext {
    CallContext {
        journey_id: info.journey_id.clone(),
        journey_version: info.version,
        node_id: info.node_id.clone(),
        instance_id: info.instance_id.clone(),
        profile_id: info.profile_id.clone(),
        attempt: 1,
        idempotency_key: format!("{}:{}:lookup", info.instance_id, info.node_id),
        deadline_unix_ms: (jiff::Timestamp::now().as_millisecond() as u64)
            .saturating_add(deadline.as_millis() as u64),
    }
}

impl ExternalFunctions for PluginRegistry {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn signatures(&self) -> Vec<(String, String, usize)> {
        let map = self.plugins.read().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter_map(|(name, versions)| versions.last().map(|p| (name, p)))
            .filter(|(_, p)| p.manifest.kind == Kind::Functions)
            .flat_map(|(name, p)| {
                p.functions
                    .iter()
                    .map(move |f| (name.clone(), f.name.clone(), f.params.len()))
            })
            .collect()
    }

    fn call(
        &self,
        module: &str,
        name: &str,
        args: Vec<Value>,
        info: &CallInfo,
    ) -> Result<Value, String> {
        let plugin = self
            .get(module)
            .filter(|p| p.manifest.kind == Kind::Functions)
            .ok_or_else(|| format!("no functions plugin {module:?} is installed"))?;
        let args = Value::Array(args).to_string();
        let called = Self::block(
            self.host
                .call_function(plugin.target(), name.to_string(), args),
        );
        record_called(info, &plugin, "function", name, &called);
        match called.result {
            Ok(Ok(text)) => serde_json::from_str(&text)
                .map_err(|e| format!("{module}::{name} returned invalid JSON: {e}")),
            Ok(Err(e)) => Err(format!("{module}::{name}: {}", plugin_error(&e))),
            Err(Fault { code, message }) => Err(format!("{module}::{name}: {code}: {message}")),
        }
    }

    fn provider_plugins(self: Arc<Self>) -> Option<Arc<dyn crate::channels::ProviderPlugins>> {
        Some(self)
    }

    fn lookup(&self, source: &str, key: &str, info: &CallInfo) -> Result<Option<Value>, String> {
        let memo_key = format!("{source}\u{1f}{key}");
        if let Some(memo) = &info.lookups
            && let Some(v) = memo
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&memo_key)
        {
            record(
                info,
                json!({"plugin": source, "lookup": key, "duration_us": 0, "outcome": "cached"}),
            );
            return Ok((!v.is_null()).then(|| v.clone()));
        }
        let value = self.fetch_shared(source, key, info)?;
        if let Some(memo) = &info.lookups {
            let mut memo = memo.lock().unwrap_or_else(|p| p.into_inner());
            if memo.len() < 100 {
                memo.insert(memo_key, value.clone().unwrap_or(Value::Null));
            }
        }
        Ok(value)
    }
}

impl PluginRegistry {
    /// A look-up through the TTL cache shared by all instances.
    fn fetch_shared(
        &self,
        source: &str,
        key: &str,
        info: &CallInfo,
    ) -> Result<Option<Value>, String> {
        let cache_key = (source.to_string(), key.to_string());
        {
            let cache = self.lookups.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(&cache_key)
                && hit.until > Instant::now()
            {
                record(
                    info,
                    json!({"plugin": source, "lookup": key, "duration_us": 0, "outcome": "cached"}),
                );
                return Ok(hit.value.clone());
            }
        }
        let plugin = self
            .get(source)
            .filter(|p| p.manifest.kind == Kind::DataSource)
            .ok_or_else(|| format!("no data source {source:?} is installed"))?;
        let ctx = call_context(info, plugin.limits.timeout);
        let called: Called<_> = Self::block(self.host.fetch(plugin.target(), ctx, key.to_string()));
        record_called(info, &plugin, "lookup", key, &called);
        let found = match called.result {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return Err(format!("lookup({source:?}): {}", plugin_error(&e))),
            Err(Fault { code, message }) => {
                return Err(format!("lookup({source:?}): {code}: {message}"));
            }
        };
        let value = match found.value {
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|e| format!("lookup({source:?}) returned invalid JSON: {e}"))?,
            ),
            None => None,
        };
        let ttl = found
            .ttl_seconds
            .min(self.host.settings().max_lookup_ttl_seconds);
        if ttl > 0 {
            let mut cache = self.lookups.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 100_000 {
                let now = Instant::now();
                cache.retain(|_, c| c.until > now);
            }
            cache.insert(
                cache_key,
                Cached {
                    value: value.clone(),
                    until: Instant::now() + Duration::from_secs(u64::from(ttl)),
                },
            );
        }
        Ok(value)
    }
}

/// An action plugin as an action executor.
/// An action call's context as a plugin sees it.
pub(super) fn call_context_of(call: &ActionCall) -> CallContext {
    CallContext {
        journey_id: call.journey_id.clone(),
        journey_version: call.version,
        node_id: call.node_id.clone(),
        instance_id: call.instance_id.clone(),
        profile_id: call.profile_id.clone(),
        attempt: call.attempt,
        idempotency_key: call.idempotency_key.clone(),
        deadline_unix_ms: call.deadline.as_millisecond().max(0) as u64,
    }
}

struct PluginAction {
    plugin: Arc<Plugin>,
    host: Arc<PluginHost>,
}

#[async_trait]
impl ActionExecutor for PluginAction {
    async fn call(&self, call: &ActionCall) -> Result<Value, ActionError> {
        let ctx = call_context_of(call);
        let called = self
            .host
            .invoke(self.plugin.target(), ctx, call.params.to_string())
            .await;
        tracing::debug!(plugin = %self.plugin.manifest.name, elapsed_us = called.elapsed.as_micros() as u64, "plugin call");
        action_result(called)
    }
}

/// A call's JSON answer, or its error as an action's (a `retryable` one waits at least
/// as long as the call's answers asked).
pub(super) fn action_result(called: Called<String>) -> Result<Value, ActionError> {
    match called.result {
        Ok(Ok(text)) => serde_json::from_str(&text)
            .map_err(|e| ActionError::Permanent(format!("the plugin returned invalid JSON: {e}"))),
        Ok(Err(PluginError::InvalidInput(m))) => Err(ActionError::InvalidInput(m)),
        Ok(Err(PluginError::Retryable(message))) => Err(ActionError::Retryable {
            message,
            retry_after: called.usage.retry_after,
        }),
        Ok(Err(PluginError::Permanent(m))) => Err(ActionError::Permanent(m)),
        Err(Fault { code, message }) => Err(ActionError::Sandbox { code, message }),
    }
}

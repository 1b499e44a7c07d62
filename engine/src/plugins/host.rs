//! The WebAssembly host: one wasmtime `Engine` and `Linker` for the process, one
//! pre-instantiated component per plugin version, and a fresh `Store` and instance for
//! every call, on the pooling allocator.
//!
//! A call is bounded in time (epoch interruption checked against a wall-clock deadline,
//! yielding to tokio at every tick so a busy plugin cannot starve the runtime), in memory
//! (a limiter), in output size, and in concurrency (a semaphore in front of the pool).
//! A call that traps, loops, or runs out of memory fails alone with a stable code.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};

use super::bindings::action::ActionPre;
use super::bindings::data_source::DataSourcePre;
use super::bindings::functions::FunctionsPre;
use super::bindings::types::{CallContext, FunctionSignature, Lookup, PluginError};
use super::bindings::{host, types};
use super::manifest::Kind;
use super::state::{CallState, Grants};
use crate::settings::PluginSettings;

/// A component ready to be instantiated, by kind.
#[derive(Clone)]
pub enum Prepared {
    Action(ActionPre<CallState>),
    DataSource(DataSourcePre<CallState>),
    Functions(FunctionsPre<CallState>),
}

/// The limits of one call.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub max_output_bytes: usize,
}

/// The sandbox stopped a call: a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: &'static str,
    pub message: String,
}

/// What a call gave: the plugin's own answer, or a fault; and how long it took.
pub struct Called<T> {
    pub result: Result<Result<T, PluginError>, Fault>,
    pub elapsed: Duration,
}

/// The process-wide host.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<CallState>,
    settings: PluginSettings,
    permits: Arc<Semaphore>,
}

impl PluginHost {
    pub fn new(settings: &PluginSettings) -> anyhow::Result<PluginHost> {
        let slots = settings.max_concurrent_calls.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 4)
            .total_stacks(slots)
            .max_memory_size(settings.max_memory_mb as usize * 1024 * 1024)
            .table_elements(200_000)
            .max_component_instance_size(16 << 20)
            .max_core_instance_size(16 << 20)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .concurrency_support(false)
            .epoch_interruption(true)
            .max_wasm_stack(settings.max_wasm_stack_bytes)
            .async_stack_size(settings.max_wasm_stack_bytes + (1 << 20))
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(wasm_err)
            .context("configuring wasmtime")?;

        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wasm_err)?;
        host::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(wasm_err)?;
        types::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(wasm_err)?;

        // The epoch ticks from one thread for the life of the engine.
        let weak = engine.weak();
        let tick = Duration::from_millis(settings.epoch_tick_ms.max(1));
        std::thread::Builder::new()
            .name("parcours-plugin-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(tick);
                }
            })?;

        Ok(PluginHost {
            engine,
            linker,
            settings: settings.clone(),
            permits: Arc::new(Semaphore::new(slots as usize)),
        })
    }

    pub fn settings(&self) -> &PluginSettings {
        &self.settings
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component, or loads the artifact this engine compiled for the same bytes
    /// before (cached on disk by content hash and engine build).
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        let Some(dir) = &self.settings.cache_dir else {
            return Component::new(&self.engine, bytes).map_err(wasm_err);
        };
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let digest = Sha256::digest(bytes);
        let name = format!(
            "{}-{:016x}.cwasm",
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            engine_hash.finish()
        );
        let path: PathBuf = dir.join(name);
        if path.is_file() {
            // SAFETY: the cache folder only ever holds artifacts this engine serialized
            // itself (written below), keyed by the hash of their source and of the
            // engine's compilation settings.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring a bad cached artifact")
                }
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(wasm_err)?;
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, component.serialize().map_err(std::io::Error::other)?)?;
            std::fs::rename(&tmp, &path)
        }) {
            tracing::warn!(error = %e, "cannot cache a compiled plugin");
        }
        Ok(component)
    }

    /// Links a compiled component for its kind; fails when it does not export what the
    /// kind requires or imports what the host does not give.
    pub fn prepare(&self, kind: Kind, component: &Component) -> anyhow::Result<Prepared> {
        let pre = self.linker.instantiate_pre(component).map_err(wasm_err)?;
        Ok(match kind {
            Kind::Action => Prepared::Action(ActionPre::new(pre).map_err(wasm_err)?),
            Kind::DataSource => Prepared::DataSource(DataSourcePre::new(pre).map_err(wasm_err)?),
            Kind::Functions => Prepared::Functions(FunctionsPre::new(pre).map_err(wasm_err)?),
        })
    }

    fn store(&self, grants: &Arc<Grants>, limits: &CallLimits) -> Store<CallState> {
        let mut store = Store::new(
            &self.engine,
            CallState::new(grants.clone(), limits.memory_bytes),
        );
        store.limiter(|s| &mut s.limiter);
        // Bytes a guest may hand the host in one host call (log lines, HTTP bodies).
        store.set_hostcall_fuel(limits.max_output_bytes.max(4 << 20));
        let deadline = Instant::now() + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        store
    }

    /// Turns a wasmtime error into a fault, using what the store observed.
    fn fault(err: &wasmtime::Error, store: &Store<CallState>, limits: &CallLimits) -> Fault {
        if store.data().limiter.memory_denied {
            return Fault {
                code: "PLUGIN_MEMORY_LIMIT",
                message: format!(
                    "the plugin needed more than {} MiB of memory (limits.memory_mb)",
                    limits.memory_bytes >> 20
                ),
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => timeout(limits),
            Some(Trap::StackOverflow) => Fault {
                code: "PLUGIN_STACK_OVERFLOW",
                message: "the plugin overflowed its stack (too deep a recursion)".into(),
            },
            Some(trap) => Fault {
                code: "PLUGIN_TRAP",
                message: format!("the plugin trapped: {trap}"),
            },
            None => Fault {
                code: "PLUGIN_TRAP",
                message: format!("the plugin failed: {err:#}"),
            },
        }
    }

    async fn run<T, F>(
        &self,
        grants: &Arc<Grants>,
        limits: &CallLimits,
        size: fn(&T) -> usize,
        f: F,
    ) -> Called<T>
    where
        F: for<'s> AsyncFnOnce(
            &'s mut Store<CallState>,
        ) -> wasmtime::Result<Result<T, PluginError>>,
    {
        let started = Instant::now();
        let _permit = self.permits.acquire().await;
        let mut store = self.store(grants, limits);
        // The epoch callback interrupts the guest at its deadline; this outer bound also
        // covers time spent in host calls (such as a slow HTTP request).
        let outcome =
            tokio::time::timeout(limits.timeout + Duration::from_millis(50), f(&mut store)).await;
        let denied = store
            .data()
            .denied_host
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let result = match outcome {
            Err(_) => Err(timeout(limits)),
            Ok(Err(e)) => Err(Self::fault(&e, &store, limits)),
            Ok(Ok(Err(_))) if denied.is_some() => Err(Fault {
                code: "PLUGIN_HTTP_DENIED",
                message: format!(
                    "outgoing HTTP to {} is not allowed by the plugin's manifest (capabilities.allowed_hosts)",
                    denied.unwrap_or_default()
                ),
            }),
            Ok(Ok(Ok(v))) if size(&v) > limits.max_output_bytes => Err(Fault {
                code: "PLUGIN_OUTPUT_TOO_LARGE",
                message: format!(
                    "the plugin returned {} bytes, more than {} (limits.max_output_bytes)",
                    size(&v),
                    limits.max_output_bytes
                ),
            }),
            Ok(Ok(r)) => Ok(r),
        };
        Called {
            result,
            elapsed: started.elapsed(),
        }
    }

    /// Calls an action plugin's `invoke`.
    pub async fn invoke(
        &self,
        pre: &ActionPre<CallState>,
        grants: &Arc<Grants>,
        limits: &CallLimits,
        ctx: CallContext,
        params: String,
    ) -> Called<String> {
        self.run(
            grants,
            limits,
            String::len,
            async move |store: &mut Store<CallState>| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_invoke(&mut *store, &ctx, &params).await
            },
        )
        .await
    }

    /// Calls a data source's `fetch`.
    pub async fn fetch(
        &self,
        pre: &DataSourcePre<CallState>,
        grants: &Arc<Grants>,
        limits: &CallLimits,
        ctx: CallContext,
        key: String,
    ) -> Called<Lookup> {
        fn size(l: &Lookup) -> usize {
            l.value.as_ref().map_or(0, String::len)
        }
        self.run(
            grants,
            limits,
            size,
            async move |store: &mut Store<CallState>| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_fetch(&mut *store, &ctx, &key).await
            },
        )
        .await
    }

    /// Calls a functions plugin's `describe`.
    pub async fn describe(
        &self,
        pre: &FunctionsPre<CallState>,
        grants: &Arc<Grants>,
        limits: &CallLimits,
    ) -> Called<Vec<FunctionSignature>> {
        #[allow(
            clippy::ptr_arg,
            reason = "the signature `run` expects for a Vec result"
        )]
        fn size(v: &Vec<FunctionSignature>) -> usize {
            v.iter()
                .map(|s| s.name.len() + s.description.len() + 16 * s.params.len())
                .sum()
        }
        self.run(
            grants,
            limits,
            size,
            async move |store: &mut Store<CallState>| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_describe(&mut *store).await.map(Ok)
            },
        )
        .await
    }

    /// Calls one function of a functions plugin.
    pub async fn call_function(
        &self,
        pre: &FunctionsPre<CallState>,
        grants: &Arc<Grants>,
        limits: &CallLimits,
        name: String,
        args: String,
    ) -> Called<String> {
        self.run(
            grants,
            limits,
            String::len,
            async move |store: &mut Store<CallState>| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_call(&mut *store, &name, &args).await
            },
        )
        .await
    }
}

/// wasmtime's errors are not `std::error::Error`; keep their whole chain as text.
fn wasm_err(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

fn timeout(limits: &CallLimits) -> Fault {
    Fault {
        code: "PLUGIN_TIMEOUT",
        message: format!(
            "the plugin did not finish within {} ms (limits.timeout_ms)",
            limits.timeout.as_millis()
        ),
    }
}

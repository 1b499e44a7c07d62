//! The WebAssembly host: one wasmtime `Engine` and `Linker` for the process, one
//! pre-instantiated component per plugin version, and a fresh `Store` and instance for
//! every call, on the pooling allocator — or, for a plugin whose manifest opts in, a
//! warm instance from its pool, returned only after a clean call.
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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};

use super::bindings::action::{Action, ActionPre};
use super::bindings::channel_provider::parcours::plugin::types as v2;
use super::bindings::channel_provider::{ChannelProvider, ChannelProviderPre};
use super::bindings::data_source::{DataSource, DataSourcePre};
use super::bindings::functions::{Functions, FunctionsPre};
use super::bindings::types::{CallContext, FunctionSignature, Lookup, PluginError};
use super::bindings::{host, types};
use super::manifest::Kind;
use super::state::{CallState, Grants, LogLine};
use crate::code::Code;
use crate::settings::PluginSettings;

/// A component ready to be instantiated, by kind.
#[derive(Clone)]
pub enum Prepared {
    Action(ActionPre<CallState>),
    DataSource(DataSourcePre<CallState>),
    Functions(FunctionsPre<CallState>),
    ChannelProvider(ChannelProviderPre<CallState>),
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
    pub code: Code,
    pub message: String,
}

/// What a call gave: the plugin's own answer, or a fault; and how long it took.
pub struct Called<T> {
    pub result: Result<Result<T, PluginError>, Fault>,
    pub elapsed: Duration,
    pub usage: Usage,
}

/// The memory budget in MiB: at least one call of the largest allowed plugin fits.
fn budget_mb(settings: &PluginSettings) -> u32 {
    u32::try_from(settings.memory_budget_mb.max(1)).unwrap_or(u32::MAX)
}

/// The process-wide host.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<CallState>,
    settings: PluginSettings,
    permits: Arc<Semaphore>,
    /// The engine-wide memory budget of running calls, one permit per MiB
    /// (`plugins.memory_budget_mb`): a call holds its plugin's memory limit for its
    /// duration, and waits for room rather than exceed the budget.
    memory: Arc<Semaphore>,
    /// The budget in MiB (a call over it takes all of it).
    memory_budget_mb: u32,
    /// One per idle warm instance, across all plugins (`max_warm_instances`).
    warm_slots: Arc<Semaphore>,
    /// Held while compiling a component that is not cached yet, so that two installs of
    /// the same large component do not both compile it.
    compiling: std::sync::Mutex<()>,
}

impl PluginHost {
    pub fn new(settings: &PluginSettings) -> anyhow::Result<PluginHost> {
        let calls = settings.max_concurrent_calls.max(1);
        // Running calls and idle warm instances each hold a slot of the pool. Python and
        // JavaScript components hold several core instances, memories and tables each.
        let slots = calls + settings.max_warm_instances;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots * 16)
            .total_memories(slots * 4)
            .total_tables(slots * 8)
            .total_stacks(calls)
            .max_memory_size(settings.max_memory_mb as usize * 1024 * 1024)
            .table_elements(200_000)
            .max_component_instance_size(16 << 20)
            .max_core_instance_size(16 << 20)
            .linear_memory_keep_resident(settings.memory_keep_resident_bytes)
            .table_keep_resident(64 << 10)
            .pagemap_scan(if settings.memory_pagemap_scan {
                Enabled::Auto
            } else {
                Enabled::No
            });
        let mut config = Config::new();
        config
            .consume_fuel(settings.consume_fuel)
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
        // parcours:plugin@0.2.0 (the channel-provider world) beside 0.1.0.
        super::bindings::channel_provider::parcours::plugin::host::add_to_linker::<
            CallState,
            HasSelf<CallState>,
        >(&mut linker, |s| s)
        .map_err(wasm_err)?;
        v2::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s).map_err(wasm_err)?;

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
            permits: Arc::new(Semaphore::new(calls as usize)),
            memory: Arc::new(Semaphore::new(budget_mb(settings) as usize)),
            memory_budget_mb: budget_mb(settings),
            warm_slots: Arc::new(Semaphore::new(settings.max_warm_instances as usize)),
            compiling: std::sync::Mutex::new(()),
        })
    }

    pub fn settings(&self) -> &PluginSettings {
        &self.settings
    }

    /// MiB of the memory budget not held by running calls now.
    pub fn memory_available_mb(&self) -> usize {
        self.memory.available_permits()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A pool of warm instances for one plugin version.
    pub fn pool(&self, policy: ReusePolicy) -> InstancePool {
        InstancePool {
            policy,
            idle: std::sync::Mutex::new(Vec::new()),
            slots: self.warm_slots.clone(),
        }
    }

    /// Compiles a component (or a core module encoded as one), or loads the artifact this engine compiled for the same bytes
    /// before (cached on disk by content hash and engine build).
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        let Some(dir) = &self.settings.cache_dir else {
            let bytes = super::encode::component(bytes)?;
            return Component::new(&self.engine, &bytes).map_err(wasm_err);
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
        if let Some(c) = self.load_cached(&path) {
            return Ok(c);
        }
        let _compiling = self.compiling.lock().unwrap_or_else(|p| p.into_inner());
        // Another install may have compiled it while this one waited.
        if let Some(c) = self.load_cached(&path) {
            return Ok(c);
        }
        let component =
            Component::new(&self.engine, &super::encode::component(bytes)?).map_err(wasm_err)?;
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, component.serialize().map_err(std::io::Error::other)?)?;
            std::fs::rename(&tmp, &path)
        }) {
            tracing::warn!(error = %e, "cannot cache a compiled plugin");
        }
        Ok(component)
    }

    fn load_cached(&self, path: &std::path::Path) -> Option<Component> {
        if path.is_file() {
            // SAFETY: the cache folder only ever holds artifacts this engine serialized
            // itself (written below), keyed by the hash of their source and of the
            // engine's compilation settings.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(c) => return Some(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring a bad cached artifact")
                }
            }
        }
        None
    }

    /// Links a compiled component for its kind; fails when it does not export what the
    /// kind requires or imports what the host does not give.
    pub fn prepare(&self, kind: Kind, component: &Component) -> anyhow::Result<Prepared> {
        let pre = self.linker.instantiate_pre(component).map_err(wasm_err)?;
        Ok(match kind {
            Kind::Action => Prepared::Action(ActionPre::new(pre).map_err(wasm_err)?),
            Kind::DataSource => Prepared::DataSource(DataSourcePre::new(pre).map_err(wasm_err)?),
            Kind::Functions => Prepared::Functions(FunctionsPre::new(pre).map_err(wasm_err)?),
            Kind::ChannelProvider => {
                Prepared::ChannelProvider(ChannelProviderPre::new(pre).map_err(wasm_err)?)
            }
        })
    }

    /// A fresh store for one plugin's calls.
    fn store(&self, grants: &Arc<Grants>, limits: &CallLimits) -> Store<CallState> {
        let state = CallState::new(
            grants.clone(),
            limits.memory_bytes,
            self.settings.capture_logs,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
    }

    /// Sets the per-call bounds of a store, fresh or reused: deadline, host-call fuel,
    /// fuel, and the observations of the previous call.
    fn arm(&self, store: &mut Store<CallState>, limits: &CallLimits) {
        let data = store.data_mut();
        data.limiter.memory_denied = false;
        data.logs.clear();
        *data.observed.lock().unwrap_or_else(|p| p.into_inner()) = Default::default();
        // Bytes a guest may hand the host in one host call (log lines, HTTP bodies).
        store.set_hostcall_fuel(limits.max_output_bytes.max(4 << 20));
        if self.settings.consume_fuel {
            // Counted, not limited: time is bounded by the deadline.
            let _ = store.set_fuel(u64::MAX);
        }
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
    }

    /// Turns a wasmtime error into a fault, using what the store observed.
    fn fault(err: &wasmtime::Error, store: &Store<CallState>, limits: &CallLimits) -> Fault {
        if store.data().limiter.memory_denied {
            return Fault {
                code: Code::PluginMemoryLimit,
                message: format!(
                    "the plugin needed more than {} MiB of memory (limits.memory_mb)",
                    limits.memory_bytes >> 20
                ),
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => timeout(limits),
            Some(Trap::StackOverflow) => Fault {
                code: Code::PluginStackOverflow,
                message: "the plugin overflowed its WebAssembly stack (too deep a recursion; plugins.max_wasm_stack_bytes)".into(),
            },
            // Languages that keep their stack in linear memory (Rust, C, Go) overflow it
            // by addressing below its start: the sandbox sees an access out of bounds,
            // and cannot tell it from any other one.
            Some(Trap::MemoryOutOfBounds) => Fault {
                code: Code::PluginTrap,
                message: "the plugin trapped: out of bounds memory access (an invalid access, or a recursion that overflowed the stack the plugin keeps in its linear memory)".into(),
            },
            Some(trap) => Fault {
                code: Code::PluginTrap,
                message: format!("the plugin trapped: {trap}"),
            },
            // wasmtime bounds the bytes one lift from the guest may copy (its "hostcall
            // fuel", set per call from `max_output_bytes`): a result, a log line or an
            // HTTP body handed over whole.
            None if format!("{err:#}").contains("fuel allocated for hostcalls") => Fault {
                code: Code::PluginOutputTooLarge,
                message: format!(
                    "the plugin handed the host more than {} bytes at once (limits.max_output_bytes; at least 4 MiB for a host call)",
                    limits.max_output_bytes
                ),
            },
            None => Fault {
                code: Code::PluginTrap,
                message: format!("the plugin failed: {err:#}"),
            },
        }
    }

    /// One call: on a warm instance from the plugin's pool when it has one, else on a
    /// fresh instance; a warm instance goes back to the pool only after a clean call.
    async fn run(&self, target: Target<'_>, request: Request) -> Called<Answer> {
        let Target {
            prepared,
            pool,
            grants,
            limits,
        } = target;
        let started = Instant::now();
        // Room in the memory budget first (the call's whole limit, which it may reach),
        // then a slot: a call that waits for memory holds no slot meanwhile.
        let mb = u32::try_from(limits.memory_bytes.div_ceil(1 << 20))
            .unwrap_or(u32::MAX)
            .clamp(1, self.memory_budget_mb);
        let _memory = self.memory.acquire_many(mb).await;
        let _permit = self.permits.acquire().await;
        let warm = pool.and_then(InstancePool::take);
        let reused = warm.is_some();
        let (mut store, live, calls) = match warm {
            Some(w) => (w.store, Some(w.live), w.calls),
            None => (self.store(grants, limits), None, 0),
        };
        self.arm(&mut store, limits);
        // The epoch callback interrupts the guest at its deadline; this outer bound also
        // covers time spent in host calls (such as a slow HTTP request).
        let outcome = tokio::time::timeout(
            limits.timeout + Duration::from_millis(50),
            call(prepared, &mut store, live, request),
        )
        .await;
        let observed = store
            .data()
            .observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let denied = observed.denied;
        store.data_mut().collect_printed();
        let usage = Usage {
            reused,
            memory_peak_bytes: store.data().limiter.peak,
            fuel: self
                .settings
                .consume_fuel
                .then(|| u64::MAX - store.get_fuel().unwrap_or(u64::MAX)),
            logs: std::mem::take(&mut store.data_mut().logs),
            retry_after: observed.retry_after,
        };
        let (result, keep) = match outcome {
            Err(_) => (Err(timeout(limits)), None),
            Ok(Err(e)) => (Err(Self::fault(&e, &store, limits)), None),
            Ok(Ok((_, Err(_)))) if denied.is_some() => (
                Err(Fault {
                    code: Code::PluginHttpDenied,
                    message: format!("outgoing HTTP {}", denied.unwrap_or_default()),
                }),
                None,
            ),
            Ok(Ok((live, Ok(v)))) if v.size() > limits.max_output_bytes => (
                Err(Fault {
                    code: Code::PluginOutputTooLarge,
                    message: format!(
                        "the plugin returned {} bytes, more than {} (limits.max_output_bytes)",
                        v.size(),
                        limits.max_output_bytes
                    ),
                }),
                Some(live),
            ),
            Ok(Ok((live, r))) => (Ok(r), Some(live)),
        };
        if let (Some(pool), Some(live)) = (pool, keep) {
            pool.give_back(Warm {
                store,
                live,
                calls: calls + 1,
            });
        }
        Called {
            result,
            elapsed: started.elapsed(),
            usage,
        }
    }

    /// Calls an action plugin's `invoke`.
    pub async fn invoke(
        &self,
        target: Target<'_>,
        ctx: CallContext,
        params: String,
    ) -> Called<String> {
        self.run(target, Request::Invoke(ctx, params))
            .await
            .map(|a| match a {
                Answer::Text(t) => Some(t),
                _ => None,
            })
    }

    /// Calls a channel provider's `send-message`. A `retryable` error's `after-ms` is kept as the
    /// call's `retry_after` (beside any `Retry-After` its HTTP answers carried).
    pub async fn send_message(
        &self,
        target: Target<'_>,
        ctx: v2::CallContext,
        message: v2::OutgoingMessage,
    ) -> Called<String> {
        self.run(target, Request::Send(ctx, message))
            .await
            .map(|a| match a {
                Answer::Text(t) => Some(t),
                _ => None,
            })
    }

    /// Calls a channel provider's `parse-feedback` on a webhook's body.
    pub async fn parse_feedback(
        &self,
        target: Target<'_>,
        body: String,
        content_type: String,
    ) -> Called<Vec<v2::DeliveryEvent>> {
        self.run(target, Request::ParseFeedback(body, content_type))
            .await
            .map(|a| match a {
                Answer::Feedback(f) => Some(f),
                _ => None,
            })
    }

    /// Calls a data source's `fetch`.
    pub async fn fetch(&self, target: Target<'_>, ctx: CallContext, key: String) -> Called<Lookup> {
        self.run(target, Request::Fetch(ctx, key))
            .await
            .map(|a| match a {
                Answer::Lookup(l) => Some(l),
                _ => None,
            })
    }

    /// Calls a functions plugin's `describe`.
    pub async fn describe(&self, target: Target<'_>) -> Called<Vec<FunctionSignature>> {
        self.run(target, Request::Describe).await.map(|a| match a {
            Answer::Signatures(s) => Some(s),
            _ => None,
        })
    }

    /// Calls one function of a functions plugin.
    pub async fn call_function(
        &self,
        target: Target<'_>,
        name: String,
        args: String,
    ) -> Called<String> {
        self.run(target, Request::Call(name, args))
            .await
            .map(|a| match a {
                Answer::Text(t) => Some(t),
                _ => None,
            })
    }
}

/// What a call asks of a plugin.
enum Request {
    Invoke(CallContext, String),
    Fetch(CallContext, String),
    Describe,
    Call(String, String),
    Send(v2::CallContext, v2::OutgoingMessage),
    ParseFeedback(String, String),
}

/// What a plugin answered.
enum Answer {
    Text(String),
    Lookup(Lookup),
    Signatures(Vec<FunctionSignature>),
    Feedback(Vec<v2::DeliveryEvent>),
}

impl Answer {
    /// The answer's size, against `max_output_bytes`.
    fn size(&self) -> usize {
        match self {
            Answer::Text(t) => t.len(),
            Answer::Lookup(l) => l.value.as_ref().map_or(0, String::len),
            Answer::Signatures(v) => v
                .iter()
                .map(|s| s.name.len() + s.description.len() + 16 * s.params.len())
                .sum(),
            Answer::Feedback(v) => v
                .iter()
                .map(|e| {
                    e.kind.len()
                        + e.message_id.len()
                        + e.reason.as_ref().map_or(0, String::len)
                        + e.url.as_ref().map_or(0, String::len)
                        + 32
                })
                .sum(),
        }
    }
}

impl Called<Answer> {
    /// The typed answer; an answer of the wrong kind (a request sent to a plugin of
    /// another kind) is a fault.
    fn map<T>(self, f: impl FnOnce(Answer) -> Option<T>) -> Called<T> {
        let result = match self.result {
            Ok(Ok(a)) => f(a).map(Ok).ok_or_else(|| Fault {
                code: Code::PluginTrap,
                message: "the plugin is not of the kind this call needs".into(),
            }),
            Ok(Err(e)) => Ok(Err(e)),
            Err(f) => Err(f),
        };
        Called {
            result,
            elapsed: self.elapsed,
            usage: self.usage,
        }
    }
}

/// Instantiates when needed, then calls; gives back the instance with the answer.
async fn call(
    prepared: &Prepared,
    store: &mut Store<CallState>,
    live: Option<Live>,
    request: Request,
) -> wasmtime::Result<(Live, Result<Answer, PluginError>)> {
    let live = match live {
        Some(live) => live,
        None => match prepared {
            Prepared::Action(p) => Live::Action(p.instantiate_async(&mut *store).await?),
            Prepared::DataSource(p) => Live::DataSource(p.instantiate_async(&mut *store).await?),
            Prepared::Functions(p) => Live::Functions(p.instantiate_async(&mut *store).await?),
            Prepared::ChannelProvider(p) => {
                Live::ChannelProvider(p.instantiate_async(&mut *store).await?)
            }
        },
    };
    let answer = match (&live, request) {
        (Live::Action(i), Request::Invoke(ctx, params)) => i
            .call_invoke(&mut *store, &ctx, &params)
            .await?
            .map(Answer::Text),
        (Live::DataSource(i), Request::Fetch(ctx, key)) => i
            .call_fetch(&mut *store, &ctx, &key)
            .await?
            .map(Answer::Lookup),
        (Live::Functions(i), Request::Describe) => {
            Ok(Answer::Signatures(i.call_describe(&mut *store).await?))
        }
        (Live::Functions(i), Request::Call(name, args)) => i
            .call_call(&mut *store, &name, &args)
            .await?
            .map(Answer::Text),
        (Live::ChannelProvider(i), Request::Send(ctx, message)) => {
            let answer = i.call_send_message(&mut *store, &ctx, &message).await?;
            answer.map(Answer::Text).map_err(|e| from_v2(e, store))
        }
        (Live::ChannelProvider(i), Request::ParseFeedback(body, content_type)) => i
            .call_parse_feedback(&mut *store, &body, &content_type)
            .await?
            .map(Answer::Feedback)
            .map_err(|e| from_v2(e, store)),
        _ => {
            return Err(wasmtime::format_err!(
                "the plugin is not of the kind this call needs"
            ));
        }
    };
    Ok((live, answer))
}

/// What a call runs on: the plugin's prepared component, its warm pool if its manifest
/// opts in, its grants and its limits.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub prepared: &'a Prepared,
    pub pool: Option<&'a InstancePool>,
    pub grants: &'a Arc<Grants>,
    pub limits: &'a CallLimits,
}

/// A live instance, by kind.
pub enum Live {
    Action(Action),
    DataSource(DataSource),
    Functions(Functions),
    ChannelProvider(ChannelProvider),
}

/// A 0.2.0 error as the host handles every plugin's: a `retryable` one's `after-ms`
/// joins the `Retry-After` the call's HTTP answers carried.
fn from_v2(e: v2::PluginError, store: &mut Store<CallState>) -> PluginError {
    match e {
        v2::PluginError::InvalidInput(m) => PluginError::InvalidInput(m),
        v2::PluginError::Permanent(m) => PluginError::Permanent(m),
        v2::PluginError::Retryable(r) => {
            if let Some(ms) = r.after_ms {
                let asked = crate::actions::RetryAfter::Seconds(ms.div_ceil(1000));
                store
                    .data()
                    .observed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .ask_retry_after(asked);
            }
            PluginError::Retryable(r.message)
        }
    }
}

/// An idle instance kept for the next call, with its store.
struct Warm {
    store: Store<CallState>,
    live: Live,
    calls: u32,
}

/// How a plugin's instances are reused (from its manifest's `[instances]`).
#[derive(Debug, Clone, Copy)]
pub struct ReusePolicy {
    /// Calls one instance serves before it is dropped and a fresh one takes its place.
    pub max_calls: u32,
    /// Idle instances kept.
    pub max_idle: u32,
}

/// The warm instances of one plugin version. Each idle instance holds one of the host's
/// warm slots (`max_warm_instances`), so idle instances never starve fresh calls of
/// pooling-allocator slots.
pub struct InstancePool {
    policy: ReusePolicy,
    idle: std::sync::Mutex<Vec<(Warm, OwnedSemaphorePermit)>>,
    slots: Arc<Semaphore>,
}

impl InstancePool {
    fn take(&self) -> Option<Warm> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.pop().map(|(w, _slot)| w)
    }

    fn give_back(&self, warm: Warm) {
        if warm.calls >= self.policy.max_calls {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= self.policy.max_idle as usize {
            return;
        }
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            idle.push((warm, slot));
        }
    }

    /// Idle instances now.
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// What one call used, beside its time.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Whether the call ran on a warm instance.
    pub reused: bool,
    /// Largest linear memory the instance reached, in bytes.
    pub memory_peak_bytes: usize,
    /// Fuel consumed (WebAssembly instructions, roughly), when the host counts it.
    pub fuel: Option<u64>,
    /// Log lines and printed lines (levels `stdout`, `stderr`), when the host captures
    /// them (`capture_logs`).
    pub logs: Vec<LogLine>,
    /// The latest `Retry-After` an answer to the call's HTTP requests carried.
    pub retry_after: Option<crate::actions::RetryAfter>,
}

/// wasmtime's errors are not `std::error::Error`; keep their whole chain as text.
fn wasm_err(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

fn timeout(limits: &CallLimits) -> Fault {
    Fault {
        code: Code::PluginTimeout,
        message: format!(
            "the plugin did not finish within {} ms (limits.timeout_ms)",
            limits.timeout.as_millis()
        ),
    }
}

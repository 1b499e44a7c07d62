//! WebAssembly plugins: actions, data-source connectors and expression functions, as
//! components built against `wit/plugin.wit` (`parcours:plugin@0.1.0`), and channel
//! providers, built against `wit/v0.2/plugin.wit` (0.2.0).
//!
//! Owns the sandbox (wasmtime host with the pooling allocator, fresh instance per call
//! or opt-in warm instances, epoch deadlines, memory and output caps, default-deny WASI,
//! an HTTP allow-list), manifests, the registry of installed plugins, and the test
//! harness that runs one call outside the engine. Plugins never see the store, the
//! file system, the environment or sockets; the engine never trusts a plugin's output
//! beyond its size and JSON shape.

mod bindings;
mod encode;
pub mod harness;
mod host;
pub mod manifest;
mod network;
mod outbound;
mod provider;
mod registry;
pub mod secrets;
mod state;

pub use state::LogLine;

pub use host::{CallLimits, Called, Fault, InstancePool, PluginHost, ReusePolicy, Target, Usage};
pub use manifest::{Kind, Manifest, parse_manifest};
pub use network::NetworkPolicy;
pub use outbound::{AllowList, HttpExchange, HttpMode};
pub use registry::{FunctionInfo, InstallError, Plugin, PluginInfo, PluginRegistry, Removal};
pub use secrets::{Origin, SecretGrants, SecretValues};

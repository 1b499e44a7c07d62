//! `parcours-sdk`: write Parcours plugins in Rust.
//!
//! A plugin is WebAssembly built against the WIT package in `wit/` (`parcours:plugin@0.1.0`; a channel provider against 0.2.0 in `wit/v0.2`).
//! Pick the plugin's kind with one cargo feature (`action`, `data-source`, `functions`
//! or `channel-provider`), implement its trait, and export it:
//!
//! ```ignore
//! use parcours_sdk::action::{Action, Context};
//! use parcours_sdk::{Error, Value, json};
//!
//! #[derive(serde::Deserialize)]
//! struct Params { text: String }
//!
//! struct Shout;
//! impl Action for Shout {
//!     type Params = Params;
//!     fn invoke(_ctx: &Context, p: Params) -> Result<Value, Error> {
//!         Ok(json!({ "text": p.text.to_uppercase() }))
//!     }
//! }
//! parcours_sdk::export_action!(Shout);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (a component), or for
//! `wasm32-unknown-unknown`: a core module carrying its component type, which the engine
//! encodes as a component at install and which imports only what the plugin calls (no
//! standard-library WASI: no clock, randomness, files or stderr). Such a build allocates
//! from an arena first (feature `arena`, on by default) and logs its panics through the
//! host.

// Lets the generated bindings name this crate by its public path, inside and outside.
extern crate self as parcours_sdk;

#[cfg(feature = "action")]
pub mod action;
#[cfg(feature = "channel-provider")]
pub mod channel_provider;
#[cfg(feature = "data-source")]
pub mod data_source;
#[cfg(feature = "functions")]
pub mod functions;

#[cfg(all(feature = "testing", not(target_family = "wasm")))]
pub mod testing;

#[cfg(all(feature = "arena", target_arch = "wasm32", target_os = "unknown"))]
mod allocator;
mod context;
mod error;
#[cfg(target_family = "wasm")]
pub mod http;
pub mod log;

pub use context::Context;
pub use error::Error;
pub use serde_json::{self, Value, json};

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// The bindings of the world this crate was built for. A plugin enables exactly one
/// feature; a build that unifies several (a workspace build for the host) picks one.
#[cfg(feature = "action")]
pub(crate) use action::bindings as world;
#[cfg(all(feature = "data-source", not(feature = "action")))]
pub(crate) use data_source::bindings as world;
#[cfg(all(
    feature = "functions",
    not(any(feature = "action", feature = "data-source"))
))]
pub(crate) use functions::bindings as world;

#[cfg(all(
    feature = "channel-provider",
    not(any(feature = "action", feature = "data-source", feature = "functions"))
))]
pub(crate) use channel_provider::bindings as world;

#[cfg(not(any(
    feature = "action",
    feature = "data-source",
    feature = "functions",
    feature = "channel-provider"
)))]
compile_error!(
    "enable one of the features `action`, `data-source`, `functions` or `channel-provider`"
);

/// Sends a panic's message to the host's log (`error`) before the call traps. A
/// core-module build (`wasm32-unknown-unknown`) has no stderr, so without it a panic
/// would leave only "unreachable" in the host's error; a `wasm32-wasip2` build prints it
/// to stderr, which the host captures. Called by every export before the plugin's code.
#[doc(hidden)]
pub fn __log_panics() {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    {
        static SET: std::sync::Once = std::sync::Once::new();
        SET.call_once(|| {
            std::panic::set_hook(Box::new(|info| log::error(&format!("panicked: {info}"))));
        });
    }
}

/// A configuration value from the plugin's manifest `[config]` table.
pub fn config(key: &str) -> Option<String> {
    world::parcours::plugin::host::config(key)
}

/// A secret the operator gave this plugin.
pub fn secret(key: &str) -> Option<String> {
    world::parcours::plugin::host::secret(key)
}

//! Parcours journey engine.
//!
//! Data flows one way: a journey definition is **parsed** ([`model`]), **compiled**
//! ([`compile`], with expressions from [`expr`]) into an immutable graph of activities,
//! **run** by the [`runtime`] (partitions, timers, entry rules) on top of a durable
//! [`store`], and exposed over HTTP by the [`Engine`]'s router. See `ARCHITECTURE.md` for
//! the code map and the invariants each module keeps.
//!
//! Embedders start with [`Engine`] and [`Settings`]; [`compile::Validator`] checks
//! definitions offline; [`simulation`] runs a journey on a virtual clock; a store backend
//! implements the traits of [`store`].

// The public API: what the command line, the benchmarks and embedders use.
pub mod actions;
pub mod auth;
pub mod channels;
pub mod compile;
pub mod expr;
pub mod journal;
pub mod model;
pub mod plugins;
pub mod runtime;
pub mod settings;
pub mod simulation;
pub mod store;

// Internal rooms: reached through the re-exports below, or not at all.
mod activities;
mod api;
mod clock;
mod code;
mod designer;
mod engine;
mod ids;
mod metrics;
mod report;
mod server;

/// Request decoding without a running engine (the fuzz targets).
pub use api::{SegmentCalls, decode_events, decode_segment};
pub use clock::{Clock, SystemClock, TestClock};
pub use code::Code;
pub use engine::Engine;
pub use metrics::Metrics;
pub use settings::Settings;

/// Internals the benchmarks measure directly (matching against pending reactions).
/// Not a stable API: hidden from the documentation, and free to change.
#[doc(hidden)]
pub mod bench {
    pub use crate::activities::NodeKind;
    pub use crate::runtime::journeys::JourneySet;
    pub use crate::runtime::matching::candidates;
}

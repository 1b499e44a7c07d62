//! Parcours journey engine.
//!
//! Data flows one way: a journey definition is **parsed** ([`model`]), **compiled**
//! ([`compile`], with expressions from [`expr`]) into an immutable graph of
//! [`activities`], **run** by the [`runtime`] (partitions, timers, entry rules) on top of a
//! durable [`store`], and exposed over HTTP by [`api`]. See `ARCHITECTURE.md` for the code
//! map and the invariants each module keeps.

pub mod actions;
pub mod activities;
pub mod api;
pub mod auth;
pub mod clock;
pub mod code;
pub mod compile;
pub mod engine;
pub mod expr;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod plugins;
pub mod report;
pub mod runtime;
mod server;
pub mod settings;
pub mod simulation;
pub mod store;

pub use clock::{Clock, SystemClock, TestClock};
pub use code::Code;
pub use engine::Engine;
pub use settings::Settings;

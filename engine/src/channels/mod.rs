//! Messages that reach people: templates (Liquid, per locale, per channel) and their
//! rendering, the set `message` nodes send with, the built-in providers (`outbox`, `smtp`)
//! and the contract of providers that are plugins (`plugins.rs`).
//! Subscription groups and the signed links of messages (`links.rs`), the suppression
//! list every provider is behind (`suppression.rs`), quiet hours (`quiet.rs`), frequency
//! caps (`caps.rs`) and click tracking (`tracking.rs`).
//!
//! Owns what a message says and how a provider hands it on. Never runs a step or writes
//! a profile; a provider stores only through its own store trait.

mod caps;
mod links;
mod liquid;
mod messaging;
mod outbox;
mod plugins;
mod quiet;
mod smtp;
mod suppression;
pub mod template;
mod tracking;

pub use caps::{Capped, FrequencyCap, FrequencyCapDef, WhenCapped, Window};
pub use links::{ClickClaims, LinkClaims, LinkError, Links};
pub use messaging::{Latest, Messaging};
pub use outbox::Outbox;
pub use plugins::ProviderPlugins;
pub use quiet::QuietHours;
pub use smtp::Smtp;
pub use suppression::{Suppressed, normal_address};
pub use template::{RenderError, RenderInput, RenderLimits, Rendered, Template};
pub use tracking::track_links;

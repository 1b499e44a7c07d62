//! Messages that reach people: templates (Liquid, per locale, per channel) and their
//! rendering, the set `message` nodes send with, and the built-in providers (`outbox`, `smtp`).
//! Subscription groups and the signed links of messages (`links.rs`), the suppression
//! list every provider is behind (`suppression.rs`), quiet hours (`quiet.rs`).
//!
//! Owns what a message says and how a provider hands it on. Never runs a step or writes
//! a profile; a provider stores only through its own store trait.

mod links;
mod liquid;
mod messaging;
mod outbox;
mod quiet;
mod smtp;
mod suppression;
pub mod template;

pub use links::{LinkClaims, LinkError, Links};
pub use messaging::{Latest, Messaging};
pub use outbox::Outbox;
pub use quiet::QuietHours;
pub use smtp::Smtp;
pub use suppression::{Suppressed, normal_address};
pub use template::{RenderError, RenderInput, RenderLimits, Rendered, Template};

//! Messages that reach people: templates (Liquid, per locale, per channel) and their
//! rendering, the set `message` nodes send with, and the built-in providers (`outbox`, `smtp`).
//! Consent, caps and quiet hours come here too.
//!
//! Owns what a message says and how a provider hands it on. Never runs a step or writes
//! a profile; a provider stores only through its own store trait.

mod liquid;
mod messaging;
mod outbox;
mod smtp;
pub mod template;

pub use messaging::{Latest, Messaging};
pub use outbox::Outbox;
pub use smtp::Smtp;
pub use template::{RenderError, RenderInput, RenderLimits, Rendered, Template};

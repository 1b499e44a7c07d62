//! Messages that reach people. So far: templates (Liquid, per locale, per channel) and
//! their rendering; sending, consent, caps and quiet hours come here too.
//!
//! Owns what a message says. Never stores anything or calls a provider itself.

mod liquid;
pub mod template;

pub use template::{RenderError, RenderInput, RenderLimits, Rendered, Template};

//! Channel providers that are plugins (the `channel-provider` world of
//! `parcours:plugin@0.2.0`): what the message set asks of the plugin registry, so that a
//! provider installed at run time is found by name like a built-in one, and its
//! webhooks are read by the plugin.
//!
//! Owns the contract only. Never calls a plugin itself: the registry does.

use std::sync::Arc;

use async_trait::async_trait;

use crate::actions::ActionExecutor;
use crate::runtime::Feedback;

/// The installed channel-provider plugins.
#[async_trait]
pub trait ProviderPlugins: Send + Sync {
    /// Their names.
    fn names(&self) -> Vec<String>;
    /// The provider plugin `name` (its latest version) as a sender of messages; its
    /// parameters are a `message` node's.
    fn provider(&self, name: &str) -> Option<Arc<dyn ActionExecutor>>;
    /// Reads a webhook request of provider plugin `name` (its body and content type) into
    /// feedback; `None` when `name` is not a provider plugin, `Some(Err)` with the
    /// plugin's reason when the request is not one it understands.
    async fn parse_feedback(
        &self,
        name: &str,
        body: &[u8],
        content_type: &str,
    ) -> Option<Result<Vec<Feedback>, String>>;
}

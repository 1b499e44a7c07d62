//! Channel-provider plugins (`parcours:plugin@0.2.0`) as message providers: a `message`
//! node's parameters become the world's `outgoing-message`, and a provider's webhook
//! body goes to its `parse-feedback`, whose delivery events become the engine's
//! feedback.
//!
//! Owns the translation between the two shapes and the mapping of the plugin's errors
//! (a `retryable` error's `after-ms` is honoured like a `Retry-After`). Never decides
//! whether a message may be sent: consent, caps and the suppression list are checked
//! before a provider is called.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::bindings::channel_provider::parcours::plugin::types as v2;
use super::bindings::types::PluginError;
use super::host::PluginHost;
use super::manifest::Kind;
use super::registry::{Plugin, PluginRegistry};
use crate::actions::{ActionCall, ActionError, ActionExecutor};
use crate::channels::ProviderPlugins;
use crate::runtime::{Bounce, Feedback, FeedbackKind};

/// A channel-provider plugin sending messages.
pub(super) struct PluginProvider {
    pub(super) plugin: Arc<Plugin>,
    pub(super) host: Arc<PluginHost>,
}

/// A `message` node's parameters as the world's record.
pub(super) fn outgoing(params: &Value) -> Result<v2::OutgoingMessage, ActionError> {
    let text = |key: &str| params[key].as_str().unwrap_or_default().to_string();
    let channel = match params["channel"].as_str() {
        Some("email") => v2::Channel::Email,
        Some("sms") => v2::Channel::Sms,
        Some("push") => v2::Channel::Push,
        other => {
            return Err(ActionError::InvalidInput(format!(
                "channel {other:?} is not email, sms or push"
            )));
        }
    };
    Ok(v2::OutgoingMessage {
        message_id: text("message_id"),
        channel,
        category: text("category"),
        to: text("to"),
        locale: text("locale"),
        template: text("template"),
        template_version: params["template_version"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        content: params["message"].to_string(),
        subscription_group: params["subscription_group"].as_str().map(str::to_string),
        unsubscribe_url: params["unsubscribe_url"].as_str().map(str::to_string),
    })
}

/// The call context of 0.1.0 as 0.2.0's (the same fields).
pub(super) fn v2_context(c: &super::bindings::types::CallContext) -> v2::CallContext {
    v2::CallContext {
        journey_id: c.journey_id.clone(),
        journey_version: c.journey_version,
        node_id: c.node_id.clone(),
        instance_id: c.instance_id.clone(),
        profile_id: c.profile_id.clone(),
        attempt: c.attempt,
        idempotency_key: c.idempotency_key.clone(),
        deadline_unix_ms: c.deadline_unix_ms,
    }
}

#[async_trait]
impl ActionExecutor for PluginProvider {
    async fn call(&self, call: &ActionCall) -> Result<Value, ActionError> {
        let ctx = v2_context(&super::registry::call_context_of(call));
        let message = outgoing(&call.params)?;
        let called = self
            .host
            .send_message(self.plugin.target(), ctx, message)
            .await;
        tracing::debug!(plugin = %self.plugin.manifest.name, elapsed_us = called.elapsed.as_micros() as u64, "provider plugin call");
        super::registry::action_result(called)
    }
}

/// One delivery event as the engine's feedback; `i` locates a bad one.
fn feedback(i: usize, e: v2::DeliveryEvent) -> Result<Feedback, String> {
    let Some(kind) = FeedbackKind::parse(&e.kind) else {
        return Err(format!(
            "[{i}].kind: {:?} is not delivered, bounced, opened, clicked or complained",
            e.kind
        ));
    };
    let bounce = match e.bounce.as_deref() {
        None => None,
        Some("hard") => Some(Bounce::Hard),
        Some("soft") => Some(Bounce::Soft),
        Some(other) => return Err(format!("[{i}].bounce: {other:?} is not hard or soft")),
    };
    let at = match e.at_unix_ms {
        None => None,
        Some(ms) => Some(
            i64::try_from(ms)
                .ok()
                .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                .ok_or_else(|| format!("[{i}].at-unix-ms: {ms} is not a time"))?,
        ),
    };
    if e.message_id.is_empty() {
        return Err(format!("[{i}].message-id: empty"));
    }
    Ok(Feedback {
        kind,
        message_id: e.message_id,
        at,
        bounce,
        reason: e.reason,
        url: e.url,
    })
}

#[async_trait]
impl ProviderPlugins for PluginRegistry {
    fn names(&self) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|p| p.manifest.kind == Kind::ChannelProvider)
            .map(|p| p.manifest.name.clone())
            .collect()
    }

    fn provider(&self, name: &str) -> Option<Arc<dyn ActionExecutor>> {
        let plugin = self
            .get(name)
            .filter(|p| p.manifest.kind == Kind::ChannelProvider)?;
        Some(Arc::new(PluginProvider {
            plugin,
            host: self.host().clone(),
        }))
    }

    async fn parse_feedback(
        &self,
        name: &str,
        body: &[u8],
        content_type: &str,
    ) -> Option<Result<Vec<Feedback>, String>> {
        let plugin = self
            .get(name)
            .filter(|p| p.manifest.kind == Kind::ChannelProvider)?;
        let Ok(body) = std::str::from_utf8(body) else {
            return Some(Err("the body is not UTF-8 text".into()));
        };
        let called = self
            .host()
            .parse_feedback(plugin.target(), body.to_string(), content_type.to_string())
            .await;
        Some(match called.result {
            Ok(Ok(events)) => events
                .into_iter()
                .enumerate()
                .map(|(i, e)| feedback(i, e))
                .collect(),
            Ok(Err(
                PluginError::InvalidInput(m)
                | PluginError::Retryable(m)
                | PluginError::Permanent(m),
            )) => Err(format!("plugin {name:?}: {m}")),
            Err(f) => Err(format!("plugin {name:?}: {}: {}", f.code, f.message)),
        })
    }
}

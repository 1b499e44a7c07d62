//! Channel providers (`parcours:plugin@0.2.0`): send a rendered message (SMS, push, email
//! through an HTTP API) and read the provider's webhooks into delivery events.
//!
//! ```ignore
//! use parcours_sdk::channel_provider::{ChannelProvider, Context, Message};
//! use parcours_sdk::{Error, Value, json};
//!
//! struct Sms;
//! impl ChannelProvider for Sms {
//!     fn send(ctx: &Context, message: Message) -> Result<Value, Error> {
//!         // POST message.body() to the provider, with message.id as its reference.
//!         Ok(json!({"provider_id": "SM1"}))
//!     }
//! }
//! parcours_sdk::export_channel_provider!(Sms);
//! ```

#[doc(hidden)]
#[allow(clippy::too_many_arguments, reason = "generated bindings")]
pub mod bindings {
    wit_bindgen::generate!({
        world: "channel-provider",
        path: "../wit/v0.2",
        pub_export_macro: true,
        export_macro_name: "__export_channel_provider_world",
        default_bindings_module: "parcours_sdk::channel_provider::bindings",
        runtime_path: "parcours_sdk::__wit_bindgen::rt",
    });
}

use serde::Deserialize;
use serde_json::Value;

pub use crate::{Context, Error};
use bindings::parcours::plugin::types::{
    CallContext, Channel as WitChannel, DeliveryEvent, OutgoingMessage, PluginError, Retry,
};

/// A message's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
    Push,
}

/// A rendered message to send.
#[derive(Debug, Clone)]
pub struct Message {
    /// Stable across retries: give it to the provider as its idempotency key or
    /// reference, so that a retry never reaches the person twice.
    pub id: String,
    pub channel: Channel,
    /// `marketing` or `transactional`.
    pub category: String,
    /// The address: email address, phone number (E.164), device token.
    pub to: String,
    pub locale: String,
    pub template: String,
    pub template_version: u32,
    /// The rendered parts: `subject`, `html`, `text` (email); `body` (SMS); `title`,
    /// `body`, `data` (push).
    pub content: Value,
    pub subscription_group: Option<String>,
    pub unsubscribe_url: Option<String>,
}

impl Message {
    /// A rendered part as text (`""` when the template has none).
    pub fn part(&self, name: &str) -> &str {
        self.content[name].as_str().unwrap_or_default()
    }
}

/// What a provider said happened to a message (from its webhook).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Delivery {
    /// `delivered`, `bounced`, `opened`, `clicked` or `complained`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The engine's message id (the reference the provider was given).
    pub message_id: String,
    /// When it happened, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub at_unix_ms: Option<u64>,
    /// For `bounced`: `hard` or `soft`.
    #[serde(default)]
    pub bounce: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// For `clicked`: the link.
    #[serde(default)]
    pub url: Option<String>,
}

/// A channel provider.
pub trait ChannelProvider {
    /// Sends one message; the result (e.g. the provider's own id) is kept on the step.
    /// Return [`Error::RetryAfter`] when the provider asked to be called later.
    fn send(ctx: &Context, message: Message) -> Result<Value, Error>;

    /// Reads one webhook request of the provider into delivery events. By default the
    /// engine's own format: a JSON object or list of
    /// `{type, message_id, at_unix_ms, bounce, reason, url}`.
    fn parse_feedback(body: &str, _content_type: &str) -> Result<Vec<Delivery>, Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            Many(Vec<Delivery>),
            One(Delivery),
        }
        Ok(match serde_json::from_str(body)? {
            OneOrMany::Many(v) => v,
            OneOrMany::One(d) => vec![d],
        })
    }
}

impl From<Error> for PluginError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidInput(m) => PluginError::InvalidInput(m),
            Error::Retryable(message) => PluginError::Retryable(Retry {
                message,
                after_ms: None,
            }),
            Error::RetryAfter(message, after) => PluginError::Retryable(Retry {
                message,
                after_ms: Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
            }),
            Error::Permanent(m) => PluginError::Permanent(m),
        }
    }
}

#[doc(hidden)]
pub fn __send<P: ChannelProvider>(
    ctx: CallContext,
    m: OutgoingMessage,
) -> Result<String, PluginError> {
    crate::__log_panics();
    let content: Value = serde_json::from_str(&m.content).map_err(Error::from)?;
    let message = Message {
        id: m.message_id,
        channel: match m.channel {
            WitChannel::Email => Channel::Email,
            WitChannel::Sms => Channel::Sms,
            WitChannel::Push => Channel::Push,
        },
        category: m.category,
        to: m.to,
        locale: m.locale,
        template: m.template,
        template_version: m.template_version,
        content,
        subscription_group: m.subscription_group,
        unsubscribe_url: m.unsubscribe_url,
    };
    let out = P::send(&Context::from(ctx), message)?;
    Ok(out.to_string())
}

#[doc(hidden)]
pub fn __parse_feedback<P: ChannelProvider>(
    body: String,
    content_type: String,
) -> Result<Vec<DeliveryEvent>, PluginError> {
    crate::__log_panics();
    Ok(P::parse_feedback(&body, &content_type)?
        .into_iter()
        .map(|d| DeliveryEvent {
            kind: d.kind,
            message_id: d.message_id,
            at_unix_ms: d.at_unix_ms,
            bounce: d.bounce,
            reason: d.reason,
            url: d.url,
        })
        .collect())
}

/// Exports a type implementing [`ChannelProvider`] as the component's `send-message`
/// and `parse-feedback`.
#[macro_export]
macro_rules! export_channel_provider {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __ParcoursChannelProvider;
        impl $crate::channel_provider::bindings::Guest for __ParcoursChannelProvider {
            fn send_message(
                ctx: $crate::channel_provider::bindings::parcours::plugin::types::CallContext,
                message: $crate::channel_provider::bindings::parcours::plugin::types::OutgoingMessage,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::channel_provider::bindings::parcours::plugin::types::PluginError,
            > {
                $crate::channel_provider::__send::<$t>(ctx, message)
            }
            fn parse_feedback(
                body: ::std::string::String,
                content_type: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::vec::Vec<
                    $crate::channel_provider::bindings::parcours::plugin::types::DeliveryEvent,
                >,
                $crate::channel_provider::bindings::parcours::plugin::types::PluginError,
            > {
                $crate::channel_provider::__parse_feedback::<$t>(body, content_type)
            }
        }
        $crate::channel_provider::bindings::__export_channel_provider_world!(
            __ParcoursChannelProvider
        );
    };
}

//! Message templates as authors write them: a channel, a fallback locale and the parts
//! of each locale's message, in Liquid.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// The channel a template's message goes out on: it decides which parts it has.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// `subject`, and `html` or `text` (or both: a multipart message).
    Email,
    /// `body`.
    Sms,
    /// `title` or `body`, and optional `data` (string values).
    Push,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Push];

    /// The channel named `name` (`email`, `sms`, `push`).
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
        }
    }

    /// The channel with its article, for messages: `an email`, `an SMS`, `a push`.
    pub fn a(self) -> &'static str {
        match self {
            Channel::Email => "an email",
            Channel::Sms => "an SMS",
            Channel::Push => "a push",
        }
    }
}

/// Why a message is sent: marketing messages respect consent, caps and quiet hours;
/// transactional ones (receipts, password resets) are sent regardless.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    #[default]
    Marketing,
    Transactional,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Marketing => "marketing",
            Category::Transactional => "transactional",
        }
    }
}

/// A template: `locales` holds the message in each locale (`en`, `fr`, `pt-BR`); a
/// profile gets the variant of its `locale` attribute (`fr-CA`, then `fr`), else
/// `default_locale`'s.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateDef {
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The locale used when the profile's has no variant; one of `locales`.
    pub default_locale: String,
    pub locales: IndexMap<String, MessageParts>,
}

/// One locale's message. Every string is a Liquid template over `profile`, `event`,
/// `events`, `journey` and `actions` (what conditions see) and `now`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageParts {
    /// Email subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Email HTML body; values inserted into it are HTML-escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Email plain-text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Push title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// SMS text or push body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Push data: key → Liquid template.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub data: IndexMap<String, String>,
}

impl MessageParts {
    /// Every part that is present, with its name (`data.<key>` for push data), in a fixed
    /// order.
    pub fn parts(&self) -> Vec<(String, &str)> {
        let mut out: Vec<(String, &str)> = [
            ("subject", &self.subject),
            ("title", &self.title),
            ("text", &self.text),
            ("html", &self.html),
            ("body", &self.body),
        ]
        .into_iter()
        .filter_map(|(name, part)| part.as_deref().map(|p| (name.to_string(), p)))
        .collect();
        out.extend(
            self.data
                .iter()
                .map(|(k, v)| (format!("data.{k}"), v.as_str())),
        );
        out
    }
}

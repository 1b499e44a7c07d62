//! Delivery feedback: what a provider says happened to a message after it accepted it
//! (delivered, bounced, opened, clicked, complained), turned into an event of the
//! message's profile (`message.bounced`, ...) that reactions and success events use; a
//! hard bounce or a complaint also puts the address on the suppression list.
//!
//! Owns matching feedback to the message it is about (by message id, and only from the
//! provider that sent it) and the event's stable id (feedback posted twice is one event).
//! Never changes an instance: the event does, through the profile's partition.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Runtime;
use crate::model::Event;

/// What happened to a message.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    Delivered,
    Bounced,
    Opened,
    Clicked,
    Complained,
}

impl FeedbackKind {
    /// Every kind, weakest news first.
    pub const ALL: [FeedbackKind; 5] = [
        FeedbackKind::Delivered,
        FeedbackKind::Bounced,
        FeedbackKind::Opened,
        FeedbackKind::Clicked,
        FeedbackKind::Complained,
    ];

    /// The kind a name (`clicked`) stands for.
    pub fn parse(name: &str) -> Option<FeedbackKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Delivered => "delivered",
            FeedbackKind::Bounced => "bounced",
            FeedbackKind::Opened => "opened",
            FeedbackKind::Clicked => "clicked",
            FeedbackKind::Complained => "complained",
        }
    }
}

/// A bounce that will not change (`hard`: no such mailbox) or may (`soft`: a full one).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Bounce {
    #[default]
    Hard,
    Soft,
}

/// One piece of feedback, in the engine's own format (docs/channels.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    #[serde(rename = "type")]
    pub kind: FeedbackKind,
    pub message_id: String,
    /// When it happened; when it arrived without one.
    #[serde(default)]
    pub at: Option<Timestamp>,
    /// `bounced`: `hard` (the default) or `soft`.
    #[serde(default)]
    pub bounce: Option<Bounce>,
    /// A provider's words (`550 5.1.1 no such user`).
    #[serde(default)]
    pub reason: Option<String>,
    /// `clicked`: the link.
    #[serde(default)]
    pub url: Option<String>,
}

/// What became of a request's feedback.
#[derive(Debug, Default, Serialize)]
pub struct FeedbackReport {
    /// Events accepted for the first time.
    pub accepted: usize,
    /// Feedback posted before (the same event).
    pub duplicates: usize,
    /// Message ids this provider never sent.
    pub unknown: Vec<String>,
    /// Addresses put on the suppression list.
    pub suppressed: usize,
}

/// The feedback an event carries about a message a journey node sent, when it is one
/// that delivery feedback made (its id derived from the message, the kind and the URL,
/// its data naming the journey, version and node).
pub(crate) fn feedback_count(event: &Event) -> Option<crate::store::FeedbackCount> {
    let kind = event.event_type.strip_prefix("message.")?;
    let kind = FeedbackKind::parse(kind)?;
    let data = &event.data;
    let message_id = data["message_id"].as_str()?;
    if event.id != crate::ids::delivery_event_id(message_id, kind.as_str(), data["url"].as_str()) {
        return None;
    }
    Some(crate::store::FeedbackCount {
        journey_id: data["journey_id"].as_str()?.to_string(),
        version: u32::try_from(data["version"].as_u64()?).ok()?,
        node: data["node"].as_str()?.to_string(),
        kind: kind.as_str().to_string(),
        at: event.timestamp,
    })
}

impl Runtime {
    /// Whether a message provider of this name is configured.
    pub fn has_provider(&self, name: &str) -> bool {
        self.shared.messaging.provider(name).is_some()
    }

    /// The channels whose messages go through provider `name` when their node names none
    /// (`email_provider`, `sms_provider`, `push_provider`).
    pub fn channels_defaulting_to(&self, name: &str) -> Vec<crate::model::Channel> {
        crate::model::Channel::ALL
            .into_iter()
            .filter(|c| self.shared.messaging.default_provider(*c) == name)
            .collect()
    }

    /// Follows a tracked link: where it leads, once the click is recorded as
    /// `message.clicked` of its message (when the link is still recorded and its
    /// message known; a click that cannot be recorded still leads on).
    pub async fn follow_click(&self, token: &str) -> Result<String, crate::channels::LinkError> {
        let links = self
            .shared
            .messaging
            .links()
            .ok_or(crate::channels::LinkError::Invalid)?;
        let (claims, live) = links.check_click(token, self.now())?;
        if live {
            let recorded = async {
                let Some(sent) = self.shared.store.sent_message(&claims.message_id).await? else {
                    return anyhow::Ok(());
                };
                let click = Feedback {
                    kind: FeedbackKind::Clicked,
                    message_id: claims.message_id.clone(),
                    at: None,
                    bounce: None,
                    reason: None,
                    url: Some(claims.url.clone()),
                };
                self.delivery_feedback(&sent.provider, vec![click]).await?;
                Ok(())
            };
            if let Err(e) = recorded.await {
                tracing::warn!(message = %claims.message_id, error = %e, "a click could not be recorded");
            }
        }
        Ok(claims.url)
    }

    /// Reads a webhook request of a provider that is a plugin, by the plugin; `None`
    /// for a built-in provider (whose feedback comes in the engine's format).
    pub async fn provider_webhook(
        &self,
        provider: &str,
        body: &[u8],
        content_type: &str,
    ) -> Option<Result<Vec<Feedback>, String>> {
        let plugins = self.shared.messaging.plugin(provider)?.clone();
        plugins.parse_feedback(provider, body, content_type).await
    }

    /// Turns a provider's feedback into events of the messages' profiles (durable when
    /// this answers) and suppresses the addresses of hard bounces and complaints.
    pub async fn delivery_feedback(
        &self,
        provider: &str,
        items: Vec<Feedback>,
    ) -> anyhow::Result<FeedbackReport> {
        let store = &self.shared.store;
        let now = self.now();
        let mut report = FeedbackReport::default();
        let mut events = Vec::new();
        for f in items {
            let sent = match store.sent_message(&f.message_id).await? {
                Some(s) if s.provider == provider => s,
                _ => {
                    report.unknown.push(f.message_id);
                    continue;
                }
            };
            let kind = f.kind.as_str();
            let bounce = (f.kind == FeedbackKind::Bounced).then(|| f.bounce.unwrap_or_default());
            let suppress = match (f.kind, bounce) {
                (FeedbackKind::Complained, _) => Some("complaint"),
                (_, Some(Bounce::Hard)) => Some("hard_bounce"),
                _ => None,
            };
            if let Some(reason) = suppress
                && self
                    .suppress(&sent.to, reason, &format!("delivery:{provider}"))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                report.suppressed += 1;
            }
            // The version of the journey that sent it, for its node's report.
            let version = store
                .get_instance(&sent.instance_id)
                .await?
                .map(|i| i.version);
            let mut data = json!({
                "message_id": sent.message_id,
                "journey_id": sent.journey_id,
                "version": version,
                "instance_id": sent.instance_id,
                "node": sent.node_id,
                "channel": sent.channel,
                "provider": sent.provider,
                "to": sent.to,
            });
            if let Some(b) = bounce {
                data["bounce"] = json!(b);
            }
            if let Some(r) = &f.reason {
                data["reason"] = json!(r);
            }
            if let Some(u) = &f.url {
                data["url"] = json!(u);
            }
            events.push(Event {
                id: crate::ids::delivery_event_id(&sent.message_id, kind, f.url.as_deref()),
                event_type: format!("message.{kind}"),
                profile_id: sent.profile_id,
                timestamp: f.at.unwrap_or(now),
                received_at: now,
                data,
            });
        }
        for fresh in self.accept(events).await? {
            if fresh {
                report.accepted += 1;
            } else {
                report.duplicates += 1;
            }
        }
        Ok(report)
    }
}

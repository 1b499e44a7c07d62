//! Subscription groups as authors write them, and a profile's consent as it keeps it.
//!
//! A profile's consent is its `subscriptions` attribute: group id → `true` (subscribed)
//! or `false` (unsubscribed); a group it does not name gets the group's default. The
//! attribute travels like any other (API, imports, Segment traits), so this module only
//! reads it. Never decides whether a message is sent: `message` nodes do.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Channel;

/// The attribute that holds a profile's consent.
pub const SUBSCRIPTIONS: &str = "subscriptions";

/// What a profile that never said anything gets.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentDefault {
    /// Unsubscribed until the profile subscribes (SMS and push marketing, email under GDPR).
    OptIn,
    /// Subscribed until the profile unsubscribes (email under CAN-SPAM).
    OptOut,
}

impl ConsentDefault {
    /// Whether a profile that said nothing is subscribed.
    pub fn subscribed(self) -> bool {
        self == ConsentDefault::OptOut
    }
}

/// A subscription group: marketing messages of one channel that a profile can accept or
/// refuse as a whole (`newsletter`, `promotions`, `sms_offers`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionGroupDef {
    pub channel: Channel,
    /// `opt_in` or `opt_out`.
    pub default: ConsentDefault,
    /// A name for people, shown on the unsubscribe page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl SubscriptionGroupDef {
    /// The group every channel has without a definition (its id is the channel's name):
    /// email opt-out, SMS and push opt-in.
    pub fn builtin(channel: Channel) -> SubscriptionGroupDef {
        SubscriptionGroupDef {
            channel,
            default: match channel {
                Channel::Email => ConsentDefault::OptOut,
                Channel::Sms | Channel::Push => ConsentDefault::OptIn,
            },
            name: Some(format!("{} marketing", channel.as_str())),
            description: None,
        }
    }
}

/// What a profile said about a group, if it said anything: `true`, `false`, or the
/// strings `subscribed`/`unsubscribed`, `true`/`false`, `yes`/`no` (as imports write them).
/// Anything else (or nothing) is silence.
pub fn stated(attributes: &Value, group: &str) -> Option<bool> {
    match attributes.get(SUBSCRIPTIONS)?.get(group)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "subscribed" | "true" | "yes" | "opted_in" => Some(true),
            "unsubscribed" | "false" | "no" | "opted_out" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a profile with these attributes accepts a group's marketing messages.
pub fn subscribed(attributes: &Value, group: &str, default: ConsentDefault) -> bool {
    stated(attributes, group).unwrap_or(default.subscribed())
}

/// The groups whose stated consent differs between two versions of a profile's
/// attributes, with the new statement (`None`: no longer stated).
pub fn changes(before: &Value, after: &Value) -> Vec<(String, Option<bool>)> {
    let keys = |v: &Value| -> Vec<String> {
        v.get(SUBSCRIPTIONS)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut groups = keys(before);
    groups.extend(keys(after));
    groups.sort();
    groups.dedup();
    groups
        .into_iter()
        .filter_map(|g| {
            let (old, new) = (stated(before, &g), stated(after, &g));
            (old != new).then_some((g, new))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn silence_is_the_default_and_strings_count() {
        let p = json!({"subscriptions": {"news": false, "sms": "Subscribed", "odd": 3}});
        assert!(!subscribed(&p, "news", ConsentDefault::OptOut));
        assert!(subscribed(&p, "sms", ConsentDefault::OptIn));
        assert!(!subscribed(&p, "odd", ConsentDefault::OptIn));
        assert!(subscribed(&p, "other", ConsentDefault::OptOut));
        assert!(!subscribed(&json!({}), "other", ConsentDefault::OptIn));
    }

    #[test]
    fn changes_name_each_group_whose_statement_moved() {
        let before = json!({"subscriptions": {"a": true, "b": false, "c": true}});
        let after = json!({"subscriptions": {"a": "yes", "b": true, "d": false}});
        assert_eq!(
            changes(&before, &after),
            vec![
                ("b".to_string(), Some(true)),
                ("c".to_string(), None),
                ("d".to_string(), Some(false))
            ]
        );
        assert!(changes(&json!({}), &json!({"x": 1})).is_empty());
    }
}

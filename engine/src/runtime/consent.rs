//! Consent in the runtime: subscription groups (checked, stored, loaded at start), a
//! profile's consent and its history, the unsubscribe links of messages, and the
//! suppression list.
//!
//! Owns refusing a group with a located error and checking a link before it changes
//! anything. Never writes a profile's consent but through the profile's partition (a
//! [`ProfileOp::Consent`]), so a change is ordered with the profile's steps and
//! recorded, with its source, in the same commit.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde::Serialize;
use serde_json::Value;

use super::{ProfileOp, Runtime};
use crate::channels::{LinkClaims, LinkError, Links, normal_address};
use crate::model::consent::stated;
use crate::model::{Problems, SubscriptionGroupDef, serde_problem};
use crate::store::{ConsentChange, Suppression};

/// Why a consent operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// A definition or request, with every problem located.
    #[error("{0}")]
    Invalid(Problems),
    #[error("{0}")]
    Link(LinkError),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

fn invalid(path: &str, message: impl Into<String>) -> ConsentError {
    let mut p = Problems::default();
    p.push(path, message.into());
    ConsentError::Invalid(p)
}

/// A profile's consent to one group, as it stands.
#[derive(Debug, Serialize)]
pub struct GroupConsent {
    pub group: String,
    pub channel: &'static str,
    pub subscribed: bool,
    /// `stated` (the profile said so) or `default` (the group's default).
    pub from: &'static str,
}

impl Runtime {
    /// Loads the subscription groups and the link secret (made on the first start).
    pub(super) async fn load_consent(&self) -> anyhow::Result<()> {
        let store = &self.shared.store;
        for (id, def) in store.subscription_groups().await? {
            match serde_json::from_value::<SubscriptionGroupDef>(def) {
                Ok(g) => self.shared.messaging.set_group(&id, g),
                Err(e) => {
                    tracing::error!(group = %id, error = %e, "stored subscription group is invalid")
                }
            }
        }
        let secret = store.link_secret().await?;
        let settings = &self.shared.settings;
        let base = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", settings.listen));
        self.shared.messaging.set_links(Links::new(
            &secret,
            &base,
            SignedDuration::from_hours(24 * i64::from(settings.unsubscribe_link_days)),
        ));
        Ok(())
    }

    /// Creates or redefines a subscription group (its channel cannot change).
    pub async fn put_subscription_group(&self, id: &str, def: Value) -> Result<(), ConsentError> {
        crate::ids::check_id(id).map_err(|m| invalid("id", m))?;
        let parsed: SubscriptionGroupDef = serde_path_to_error::deserialize(&def).map_err(|e| {
            let p = serde_problem(e);
            invalid(&p.path, p.message)
        })?;
        let messaging = &self.shared.messaging;
        match messaging.group(id) {
            Some(current) if current.channel != parsed.channel => {
                return Err(invalid(
                    "channel",
                    format!(
                        "group {id:?} is for {} messages; its channel cannot change (make a new group)",
                        current.channel.as_str()
                    ),
                ));
            }
            Some(_) => {}
            None => {
                let count = messaging.groups().len();
                let max = self.shared.settings.max_subscription_groups;
                if count >= max {
                    return Err(invalid(
                        "",
                        format!(
                            "there are already {count} subscription groups (max_subscription_groups)"
                        ),
                    ));
                }
            }
        }
        let normal = serde_json::to_value(&parsed).map_err(anyhow::Error::from)?;
        self.shared
            .store
            .put_subscription_group(id, normal, self.now())
            .await?;
        messaging.set_group(id, parsed);
        Ok(())
    }

    /// Every subscription group, the channels' built-in ones included.
    pub fn subscription_groups(&self) -> BTreeMap<String, SubscriptionGroupDef> {
        self.shared.messaging.groups()
    }

    /// A profile's consent to every group (stated or by default), from its attributes.
    pub fn consent_of(&self, attributes: &Value) -> Vec<GroupConsent> {
        self.subscription_groups()
            .into_iter()
            .map(|(group, def)| {
                let said = stated(attributes, &group);
                GroupConsent {
                    channel: def.channel.as_str(),
                    subscribed: said.unwrap_or(def.default.subscribed()),
                    from: if said.is_some() { "stated" } else { "default" },
                    group,
                }
            })
            .collect()
    }

    /// A profile's consent changes, oldest first, after `after`.
    pub async fn consent_changes(
        &self,
        profile_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> anyhow::Result<Vec<(i64, ConsentChange)>> {
        self.shared
            .store
            .consent_changes(profile_id, after, limit)
            .await
    }

    /// States a profile's consent to a group (through its partition, recorded with
    /// `source`).
    pub async fn set_consent(
        &self,
        profile_id: &str,
        group: &str,
        subscribed: Option<bool>,
        source: &str,
    ) -> Result<(), ConsentError> {
        if self.shared.messaging.group(group).is_none() {
            return Err(ConsentError::NotFound(format!(
                "subscription group {group:?} does not exist"
            )));
        }
        self.profile_op(ProfileOp::Consent {
            id: profile_id.to_string(),
            group: group.to_string(),
            subscribed,
            source: source.to_string(),
            message_id: None,
        })
        .await?;
        Ok(())
    }

    /// What an unsubscribe link names, if the engine made it and it still works.
    pub fn check_link(&self, token: &str) -> Result<LinkClaims, ConsentError> {
        let links = self
            .shared
            .messaging
            .links()
            .ok_or_else(|| ConsentError::Store(anyhow::anyhow!("links are not ready")))?;
        links.check(token, self.now()).map_err(ConsentError::Link)
    }

    /// Unsubscribes the profile a link names from its group (one click, RFC 8058).
    pub async fn unsubscribe(&self, token: &str) -> Result<LinkClaims, ConsentError> {
        let claims = self.check_link(token)?;
        self.profile_op(ProfileOp::Consent {
            id: claims.profile_id.clone(),
            group: claims.group.clone(),
            subscribed: Some(false),
            source: "unsubscribe_link".into(),
            message_id: Some(claims.message_id.clone()),
        })
        .await?;
        Ok(claims)
    }

    /// Puts an address on the suppression list; whether it was new.
    pub async fn suppress(
        &self,
        address: &str,
        reason: &str,
        source: &str,
    ) -> Result<bool, ConsentError> {
        let address = normal_address(address);
        if address.is_empty() {
            return Err(invalid("address", "an address cannot be empty"));
        }
        if reason.trim().is_empty() {
            return Err(invalid("reason", "a suppression needs a reason"));
        }
        Ok(self
            .shared
            .store
            .put_suppression(Suppression {
                address,
                reason: reason.trim().to_string(),
                source: source.to_string(),
                at: self.now(),
            })
            .await?)
    }

    /// Takes an address off the suppression list; whether it was on it.
    pub async fn unsuppress(&self, address: &str) -> anyhow::Result<bool> {
        self.shared
            .store
            .delete_suppression(&normal_address(address))
            .await
    }

    /// An address's suppression, if it has one.
    pub async fn suppression(&self, address: &str) -> anyhow::Result<Option<Suppression>> {
        self.shared
            .store
            .suppression(&normal_address(address))
            .await
    }

    /// A page of the suppression list, in address order.
    pub async fn suppressions(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> anyhow::Result<Vec<Suppression>> {
        self.shared.store.suppressions(after, limit).await
    }
}

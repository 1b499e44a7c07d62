//! The links a message carries, that the engine serves without an API token: a signed,
//! expiring token per message and group (`{public_url}/unsubscribe/{token}`), and one
//! per tracked link of an email (`{public_url}/r/{token}`, which records the click and
//! redirects to the link).
//!
//! Owns making a token (HMAC-SHA256 with the store's link secret over its kind, what it
//! names and when it expires) and checking one (tag first, in constant time; then the
//! expiry). The kind is signed too: an unsubscribe token never passes as a click token.
//! Never reads the store or changes consent: the runtime does, through the profile's
//! partition.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jiff::{SignedDuration, Timestamp};
use ring::hmac;
use serde::{Deserialize, Serialize};

/// What an unsubscribe link names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// The profile.
    #[serde(rename = "p")]
    pub profile_id: String,
    /// The subscription group.
    #[serde(rename = "g")]
    pub group: String,
    /// The message the link came in.
    #[serde(rename = "m")]
    pub message_id: String,
    /// Unix seconds after which the link no longer works.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// What a tracked link names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickClaims {
    /// The message the link came in.
    #[serde(rename = "m")]
    pub message_id: String,
    /// Where it leads.
    #[serde(rename = "u")]
    pub url: String,
    /// Unix seconds after which a click is no longer recorded (the link still leads on).
    #[serde(rename = "e")]
    pub expires: i64,
}

/// The kinds of token, signed as a prefix of the payload.
const UNSUBSCRIBE: &[u8] = b"";
const CLICK: &[u8] = b"click\0";

/// Why a link was refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not one the engine made")]
    Invalid,
    #[error("this link expired on {0}")]
    Expired(Timestamp),
}

/// Signs and checks links.
pub struct Links {
    key: hmac::Key,
    /// Where the engine is reached from outside, without a trailing slash.
    pub base_url: String,
    pub ttl: SignedDuration,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl Links {
    pub fn new(secret: &[u8], base_url: &str, ttl: SignedDuration) -> Links {
        Links {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            base_url: base_url.trim_end_matches('/').to_string(),
            ttl,
        }
    }

    /// A token for `claims`' profile, group and message, valid `ttl` from `now`.
    pub fn token(&self, profile_id: &str, group: &str, message_id: &str, now: Timestamp) -> String {
        let claims = LinkClaims {
            profile_id: profile_id.to_string(),
            group: group.to_string(),
            message_id: message_id.to_string(),
            expires: self.expiry(now),
        };
        self.sign(UNSUBSCRIBE, &claims)
    }

    fn expiry(&self, now: Timestamp) -> i64 {
        now.checked_add(self.ttl)
            .unwrap_or(Timestamp::MAX)
            .as_second()
    }

    /// `payload.tag`, the tag over the kind and the payload.
    fn sign(&self, kind: &[u8], claims: &impl Serialize) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(kind);
        ctx.update(&payload);
        let tag = ctx.sign();
        format!("{}.{}", B64.encode(&payload), B64.encode(tag.as_ref()))
    }

    /// The payload of a token of `kind` the engine made, decoded.
    fn verify<T: serde::de::DeserializeOwned>(
        &self,
        kind: &[u8],
        token: &str,
    ) -> Result<T, LinkError> {
        let (payload, tag) = token.split_once('.').ok_or(LinkError::Invalid)?;
        let payload = B64.decode(payload).map_err(|_| LinkError::Invalid)?;
        let tag = B64.decode(tag).map_err(|_| LinkError::Invalid)?;
        let signed = [kind, payload.as_slice()].concat();
        hmac::verify(&self.key, &signed, &tag).map_err(|_| LinkError::Invalid)?;
        serde_json::from_slice(&payload).map_err(|_| LinkError::Invalid)
    }

    /// The tracked form of `url` in message `message_id`: recorded for `ttl` from `now`.
    pub fn click_url(&self, message_id: &str, url: &str, now: Timestamp) -> String {
        let claims = ClickClaims {
            message_id: message_id.to_string(),
            url: url.to_string(),
            expires: self.expiry(now),
        };
        format!("{}/r/{}", self.base_url, self.sign(CLICK, &claims))
    }

    /// What a click token names, if the engine made it (expired or not: a click on an
    /// old message still leads on), and whether it is still recorded at `now`.
    pub fn check_click(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(ClickClaims, bool), LinkError> {
        let claims: ClickClaims = self.verify(CLICK, token)?;
        let live = now.as_second() <= claims.expires;
        Ok((claims, live))
    }

    /// The unsubscribe link of a message.
    pub fn unsubscribe_url(
        &self,
        profile_id: &str,
        group: &str,
        message_id: &str,
        now: Timestamp,
    ) -> String {
        format!(
            "{}/unsubscribe/{}",
            self.base_url,
            self.token(profile_id, group, message_id, now)
        )
    }

    /// What a token names, if the engine made it and it has not expired at `now`.
    pub fn check(&self, token: &str, now: Timestamp) -> Result<LinkClaims, LinkError> {
        let claims: LinkClaims = self.verify(UNSUBSCRIBE, token)?;
        if now.as_second() > claims.expires {
            return Err(LinkError::Expired(
                Timestamp::from_second(claims.expires).unwrap_or(Timestamp::MIN),
            ));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links::new(
            b"secret",
            "https://example.com/",
            SignedDuration::from_hours(24),
        )
    }

    #[test]
    fn a_token_names_what_it_was_made_for_until_it_expires() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let l = links();
        let url = l.unsubscribe_url("ada", "newsletter", "m-1", now);
        let token = url
            .strip_prefix("https://example.com/unsubscribe/")
            .expect("base url without a double slash");
        let claims = l.check(token, now).expect("valid");
        assert_eq!(
            (claims.profile_id.as_str(), claims.group.as_str()),
            ("ada", "newsletter")
        );
        let later = now
            .checked_add(SignedDuration::from_hours(25))
            .expect("time");
        assert!(matches!(l.check(token, later), Err(LinkError::Expired(_))));
    }

    #[test]
    fn a_changed_or_foreign_token_is_refused() {
        let now = Timestamp::UNIX_EPOCH;
        let l = links();
        let token = l.token("ada", "newsletter", "m-1", now);
        let (payload, tag) = token.split_once('.').expect("two parts");
        let forged = B64.encode(
            String::from_utf8(B64.decode(payload).expect("b64"))
                .expect("utf8")
                .replace("ada", "bob"),
        );
        assert_eq!(
            l.check(&format!("{forged}.{tag}"), now),
            Err(LinkError::Invalid)
        );
        let other = Links::new(
            b"another",
            "https://example.com",
            SignedDuration::from_hours(1),
        );
        assert_eq!(other.check(&token, now), Err(LinkError::Invalid));
        assert_eq!(l.check("garbage", now), Err(LinkError::Invalid));
    }

    #[test]
    fn a_click_token_leads_to_its_url_and_never_passes_as_another_kind() {
        let now = Timestamp::UNIX_EPOCH;
        let l = links();
        let url = l.click_url("m-1", "https://shop.example/sale?a=1&b=2", now);
        let token = url
            .strip_prefix("https://example.com/r/")
            .expect("click url");
        let (claims, live) = l.check_click(token, now).expect("valid");
        assert_eq!(claims.url, "https://shop.example/sale?a=1&b=2");
        assert!(live);
        let later = now
            .checked_add(SignedDuration::from_hours(25))
            .expect("time");
        assert!(!l.check_click(token, later).expect("still leads on").1);
        // Kinds do not mix, even over the same bytes.
        assert_eq!(l.check(token, now), Err(LinkError::Invalid));
        let unsubscribe = l.token("ada", "newsletter", "m-1", now);
        assert_eq!(l.check_click(&unsubscribe, now), Err(LinkError::Invalid));
    }
}

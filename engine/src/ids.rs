//! Identifiers: generated event ids and deterministic instance ids, and the alphabet of
//! the ids integrators send ([`check_text_id`]) and of journey and node ids ([`check_id`]).
//!
//! Instance ids are derived from what caused the entry, never drawn at random, so that
//! reprocessing an event after a crash recreates the same instance (and the same action
//! idempotency keys) instead of a second one.

use jiff::Timestamp;
use uuid::Uuid;

/// Longest event id, event type, profile id, alias value or Segment id, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Checks an id or type sent from outside (event ids and types, profile ids, alias
/// values, Segment ids): 1 to [`MAX_ID_BYTES`] bytes of UTF-8 text, not only white
/// space, and no control character (U+0000–U+001F, U+007F–U+009F), which would make
/// ids that print alike differ and break logs, CSV exports and URLs. The error says
/// what is wrong in words for the `field` named.
pub fn check_text_id(value: &str, field: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(format!(
            "`{field}` is {} bytes, longer than {MAX_ID_BYTES}",
            value.len()
        ));
    }
    if let Some((at, c)) = value.char_indices().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "`{field}` contains the control character U+{:04X} at byte {at}; ids are printable text",
            u32::from(c)
        ));
    }
    Ok(())
}

const INSTANCE_NAMESPACE: Uuid = Uuid::from_u128(0x7a1c_52f0_6a0e_4d7b_9b8e_3d1f_6c2a_9e41);

/// A fresh, time-ordered id for an event sent without one.
pub fn new_event_id() -> String {
    Uuid::now_v7().to_string()
}

/// The id of the instance that the trigger `event_id` (an event, a run, a transition)
/// creates for `profile_id` in a journey version. `at` is a time that belongs to the
/// trigger (an event's arrival, a run's start), so a replay gives the same id.
///
/// The id is a version-7 UUID: its first 48 bits are `at` in milliseconds and the rest
/// comes from a hash of the trigger, so ids made together sort together and the
/// store's index on them grows at its right edge instead of at random pages.
pub fn instance_id(
    journey_id: &str,
    version: u32,
    profile_id: &str,
    event_id: &str,
    at: Timestamp,
) -> String {
    let name = format!("{journey_id}\u{1f}{version}\u{1f}{profile_id}\u{1f}{event_id}");
    let hash = Uuid::new_v5(&INSTANCE_NAMESPACE, name.as_bytes());
    let millis = u64::try_from(at.as_millisecond()).unwrap_or(0);
    let mut random = [0u8; 10];
    random.copy_from_slice(&hash.as_bytes()[6..16]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
}

/// The id of an audience run: derived from its journey and what caused it (a schedule
/// occurrence, a business event), so a run is created once however often it is asked.
pub fn run_id(journey_id: &str, version: u32, cause: &str) -> String {
    let name = format!("run\u{1f}{journey_id}\u{1f}{version}\u{1f}{cause}");
    Uuid::new_v5(&INSTANCE_NAMESPACE, name.as_bytes()).to_string()
}

/// The id of a message: derived from its call's idempotency key, so every attempt and
/// a replay after a crash send the same id (an SMTP `Message-ID`, a provider's
/// idempotency key) and providers that deduplicate never deliver it twice.
pub fn message_id(idempotency_key: &str) -> String {
    let name = format!("message\u{1f}{idempotency_key}");
    Uuid::new_v5(&INSTANCE_NAMESPACE, name.as_bytes()).to_string()
}

/// The id of a profile merge: derived from the two profiles and when it was asked for.
pub fn merge_id(from: &str, into: &str, at: Timestamp) -> String {
    let name = format!("merge\u{1f}{from}\u{1f}{into}\u{1f}{}", at.as_microsecond());
    Uuid::new_v5(&INSTANCE_NAMESPACE, name.as_bytes()).to_string()
}

/// A stable 64-bit hash with full avalanche (SipHash-1-3 under a fixed key): every
/// input bit changes every output bit with probability one half, so ids that differ
/// only in their last characters (`u000001`, `u000002`) spread evenly. Unlike `std`'s
/// hasher it never changes between builds or processes. Partitioning and sticky splits
/// use it; parts are separated so that `["ab", "c"]` and `["a", "bc"]` differ.
pub fn stable_hash(parts: &[&str]) -> u64 {
    use std::hash::Hasher as _;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(SIP_KEY.0, SIP_KEY.1);
    for part in parts {
        h.write(part.as_bytes());
        h.write_u8(0x1f);
    }
    h.finish()
}

/// The fixed key of [`stable_hash`]: changing it moves every profile's partition and
/// every split assignment of versions published with [`SplitHash::Sip13`].
const SIP_KEY: (u64, u64) = (0x7061_7263_6f75_7273, 0x7370_6c69_742d_7631);

/// FNV-1a without a finaliser: how splits were assigned before [`SplitHash::Sip13`].
/// Its high bits barely depend on the last bytes of the input, so sequential ids were
/// spread unevenly; kept only so that versions published with it keep their branches.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.as_bytes().iter().chain(std::iter::once(&0x1f)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// How a journey version assigns split branches, recorded with the version when it is
/// published, so that a profile keeps its branch for the life of a version whatever
/// the engine's release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SplitHash {
    /// FNV-1a: versions published by engines before the scheme was recorded.
    Fnv1a,
    /// SipHash-1-3 under a fixed key ([`stable_hash`]): every version published now.
    #[default]
    Sip13,
}

impl SplitHash {
    /// The scheme new versions are published with.
    pub const CURRENT: SplitHash = SplitHash::Sip13;

    /// The name stored with a version.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitHash::Fnv1a => "fnv1a",
            SplitHash::Sip13 => "sip13",
        }
    }

    /// The scheme of a stored name; `None` for a version stored without one (published
    /// before schemes were recorded), which is [`SplitHash::Fnv1a`].
    pub fn from_stored(name: Option<&str>) -> Result<Self, String> {
        match name {
            None | Some("fnv1a") => Ok(SplitHash::Fnv1a),
            Some("sip13") => Ok(SplitHash::Sip13),
            Some(other) => Err(format!("unknown split hash scheme {other:?}")),
        }
    }

    /// The hash of `parts` under this scheme.
    pub fn hash(self, parts: &[&str]) -> u64 {
        match self {
            SplitHash::Fnv1a => fnv1a(parts),
            SplitHash::Sip13 => stable_hash(parts),
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks an id (journey or node) and says what is wrong with it.
pub fn check_id(id: &str) -> Result<(), String> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a valid id (1 to 64 letters, digits, '_' or '-')"
        ))
    }
}

/// The id of the event that delivery feedback about a message becomes: the same feedback
/// posted twice (a provider's webhook retried) is one event.
pub fn delivery_event_id(message_id: &str, kind: &str, url: Option<&str>) -> String {
    let name = format!(
        "delivery\u{1f}{message_id}\u{1f}{kind}\u{1f}{}",
        url.unwrap_or_default()
    );
    Uuid::new_v5(&INSTANCE_NAMESPACE, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_deterministic_and_distinct() {
        let at: Timestamp = "2026-03-02T08:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-03-02T08:00:01Z".parse().unwrap();
        let a = instance_id("welcome", 1, "p1", "e1", at);
        assert_eq!(a, instance_id("welcome", 1, "p1", "e1", at));
        assert_ne!(a, instance_id("welcome", 2, "p1", "e1", at));
        assert_ne!(a, instance_id("welcome", 1, "p1", "e2", at));
        // Time-ordered: a later trigger sorts after.
        assert!(instance_id("welcome", 1, "p0", "e0", later) > a);
    }

    #[test]
    fn stable_hash_separates_parts() {
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
        assert_eq!(stable_hash(&["x"]), stable_hash(&["x"]));
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }

    #[test]
    fn hashes_are_fixed_across_builds() {
        // Recorded values: a change here moves every profile's split branch.
        assert_eq!(fnv1a(&["j", "1", "ab", "p0"]), 17_025_873_239_433_196_555);
        assert_eq!(
            stable_hash(&["j", "1", "ab", "p0"]),
            11_916_665_212_589_636_929
        );
    }

    #[test]
    fn text_ids_are_printable_and_bounded() {
        assert!(check_text_id("u-001 é", "profile_id").is_ok());
        assert!(
            check_text_id("a\u{0}b", "profile_id")
                .unwrap_err()
                .contains("U+0000")
        );
        assert!(
            check_text_id("a\u{7f}", "type")
                .unwrap_err()
                .contains("U+007F")
        );
        assert!(check_text_id("a\nb", "type").is_err());
        assert!(check_text_id("  ", "type").unwrap_err().contains("empty"));
        assert!(
            check_text_id(&"x".repeat(257), "id")
                .unwrap_err()
                .contains("256")
        );
        assert!(check_text_id(&"x".repeat(256), "id").is_ok());
    }

    #[test]
    fn schemes_round_trip_through_their_stored_names() {
        for s in [SplitHash::Fnv1a, SplitHash::Sip13] {
            assert_eq!(SplitHash::from_stored(Some(s.as_str())), Ok(s));
        }
        assert_eq!(SplitHash::from_stored(None), Ok(SplitHash::Fnv1a));
        assert!(SplitHash::from_stored(Some("md5")).is_err());
    }
}

//! `Retry-After`: when an HTTP server asked a caller to try again (RFC 9110 §10.2.3).
//!
//! Owns parsing the header (delta-seconds or an HTTP date) into a value that is resolved
//! against the step's time, so nothing here reads a clock. Must never decide whether a
//! call is retried: only when, and only later than the node's own backoff.

use jiff::{SignedDuration, Timestamp};

/// What a server asked for: a delay from its answer, or a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: 120`.
    Seconds(u64),
    /// `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`.
    At(Timestamp),
}

impl RetryAfter {
    /// The header's value, or `None` when it is neither delta-seconds nor an HTTP date
    /// (such a header is ignored, as RFC 9110 lets a recipient do).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            // A number too large for u64 is "a very long time": the cap applies.
            return Some(RetryAfter::Seconds(value.parse().unwrap_or(u64::MAX)));
        }
        // IMF-fixdate is RFC 2822's date with `GMT`; the obsolete forms are not sent by
        // servers written this century.
        jiff::fmt::rfc2822::parse(value)
            .ok()
            .map(|zoned| RetryAfter::At(zoned.timestamp()))
    }

    /// The moment asked for, seen from `now`, never more than `cap` after it.
    pub fn resolve(self, now: Timestamp, cap: SignedDuration) -> Timestamp {
        let latest = now.checked_add(cap).unwrap_or(now);
        let asked = match self {
            RetryAfter::Seconds(s) => i64::try_from(s)
                .ok()
                .and_then(|s| now.checked_add(SignedDuration::from_secs(s)).ok())
                .unwrap_or(latest),
            RetryAfter::At(at) => at,
        };
        asked.clamp(now, latest)
    }

    /// The later of two requests seen in one call (both resolved against the same
    /// moment by the caller would be exact; a call's answers are seconds apart, so the
    /// larger delay or the later date wins per kind, and a date over a delay).
    pub fn later(self, other: RetryAfter) -> RetryAfter {
        match (self, other) {
            (RetryAfter::Seconds(a), RetryAfter::Seconds(b)) => RetryAfter::Seconds(a.max(b)),
            (RetryAfter::At(a), RetryAfter::At(b)) => RetryAfter::At(a.max(b)),
            (at @ RetryAfter::At(_), _) | (_, at @ RetryAfter::At(_)) => at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn parses_delta_seconds_and_http_dates() {
        assert_eq!(RetryAfter::parse("120"), Some(RetryAfter::Seconds(120)));
        assert_eq!(RetryAfter::parse(" 0 "), Some(RetryAfter::Seconds(0)));
        assert_eq!(
            RetryAfter::parse("99999999999999999999999"),
            Some(RetryAfter::Seconds(u64::MAX))
        );
        assert_eq!(
            RetryAfter::parse("Wed, 21 Oct 2026 07:28:00 GMT"),
            Some(RetryAfter::At(at("2026-10-21T07:28:00Z")))
        );
        for bad in ["", "-5", "1.5", "soon", "2026-10-21T07:28:00Z"] {
            assert_eq!(RetryAfter::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn resolves_within_now_and_the_cap() {
        let now = at("2026-03-02T08:00:00Z");
        let hour = SignedDuration::from_hours(1);
        assert_eq!(
            RetryAfter::Seconds(90).resolve(now, hour),
            at("2026-03-02T08:01:30Z")
        );
        assert_eq!(
            RetryAfter::Seconds(u64::MAX).resolve(now, hour),
            at("2026-03-02T09:00:00Z")
        );
        // A date in the past means "now"; one beyond the cap is cut to it.
        assert_eq!(
            RetryAfter::At(at("2020-01-01T00:00:00Z")).resolve(now, hour),
            now
        );
        assert_eq!(
            RetryAfter::At(at("2027-01-01T00:00:00Z")).resolve(now, hour),
            at("2026-03-02T09:00:00Z")
        );
    }

    #[test]
    fn the_later_request_wins() {
        let d = RetryAfter::At(at("2026-03-02T08:00:00Z"));
        assert_eq!(
            RetryAfter::Seconds(5).later(RetryAfter::Seconds(9)),
            RetryAfter::Seconds(9)
        );
        assert_eq!(RetryAfter::Seconds(5).later(d), d);
        assert_eq!(d.later(RetryAfter::Seconds(5)), d);
    }
}

//! Frequency caps: at most `max` messages of a channel and category per window, for
//! each profile. A window is rolling (`within = "P1D"`: the last 24 hours) or a
//! calendar period in the profile's time zone (`per = "day"` or `"week"`, weeks from
//! Monday). Over a cap a message is skipped (`FREQUENCY_CAPPED`) or, when the rule says
//! `when_capped = "defer"`, held until the cap has room.
//!
//! Owns the rules and the arithmetic over a profile's earlier sends (their times, as
//! the partition keeps them with the profile). Never counts a send by itself: the
//! `message` node reports each accepted send, and the partition records it in its
//! commit.

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};

use crate::model::{Category, Channel};

/// A rule as a settings file writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCapDef {
    /// `email`, `sms` or `push`.
    pub channel: String,
    /// `marketing` (the default) or `transactional`.
    #[serde(default)]
    pub category: Category,
    /// The most messages in one window (at least 1).
    pub max: u32,
    /// A rolling window: an ISO-8601 duration (`PT24H`, `P7D`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// A calendar window in the profile's zone: `day` or `week` (from Monday).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
    /// `skip` (the default): the message is not sent; `defer`: it waits until the cap
    /// has room.
    #[serde(default)]
    pub when_capped: WhenCapped,
}

/// What happens to a message over a cap.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum WhenCapped {
    #[default]
    Skip,
    Defer,
}

/// The window a cap counts in.
#[derive(Debug, Clone, Copy)]
pub enum Window {
    Rolling(Span),
    Day,
    Week,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct FrequencyCap {
    pub channel: Channel,
    pub category: Category,
    pub max: u32,
    pub window: Window,
    pub when_capped: WhenCapped,
}

/// A message over a cap: the rule, and when it has room again.
#[derive(Debug, Clone)]
pub struct Capped<'a> {
    pub rule: &'a FrequencyCap,
    pub sent: usize,
    pub room_at: Timestamp,
}

impl FrequencyCap {
    /// Compiles a rule; errors name the field (`within: "P2X" is not ...`).
    pub fn compile(def: &FrequencyCapDef) -> Result<FrequencyCap, String> {
        let channel = Channel::parse(&def.channel).ok_or_else(|| {
            format!(
                "channel: {:?} is not a channel (email, sms or push)",
                def.channel
            )
        })?;
        if def.max == 0 {
            return Err("max: must be at least 1".into());
        }
        let window = match (&def.within, def.per.as_deref()) {
            (Some(within), None) => {
                let span = crate::expr::time::parse_duration(within)
                    .map_err(|e| format!("within: {e}"))?;
                let positive = span
                    .total((
                        jiff::Unit::Second,
                        jiff::SpanRelativeTo::days_are_24_hours(),
                    ))
                    .is_ok_and(|s| s > 0.0);
                if !positive {
                    return Err(format!(
                        "within: {within:?} must be a positive duration of days, hours or \
                         minutes"
                    ));
                }
                Window::Rolling(span)
            }
            (None, Some("day")) => Window::Day,
            (None, Some("week")) => Window::Week,
            (None, Some(other)) => {
                return Err(format!(
                    "per: {other:?} is not a calendar window (day or week)"
                ));
            }
            (None, None) | (Some(_), Some(_)) => {
                return Err(
                    "give exactly one window: within (a rolling duration, like PT24H) or per \
                     (day or week, in the profile's zone)"
                        .into(),
                );
            }
        };
        Ok(FrequencyCap {
            channel,
            category: def.category,
            max: def.max,
            window,
            when_capped: def.when_capped,
        })
    }

    /// The key a profile's sends of a channel and category are counted under (beside
    /// the journeys' capping entries; a resource id never holds a colon).
    pub fn key(channel: Channel, category: Category) -> String {
        format!("message:{}:{}", channel.as_str(), category.as_str())
    }

    /// Whether one more message at `now` would exceed this rule, given the times of the
    /// profile's earlier sends of its channel and category; if so, when it has room.
    pub fn check(
        &self,
        sent: impl Iterator<Item = Timestamp>,
        now: Timestamp,
        tz: &TimeZone,
    ) -> Option<Capped<'_>> {
        let mut within: Vec<Timestamp> = match self.window {
            Window::Rolling(span) => sent
                .filter(|at| *at <= now && after(*at, span).is_some_and(|end| end > now))
                .collect(),
            Window::Day | Window::Week => {
                let start = self.period_start(now, tz)?;
                sent.filter(|at| *at >= start && *at <= now).collect()
            }
        };
        if within.len() < self.max as usize {
            return None;
        }
        within.sort_unstable();
        let room_at = match self.window {
            // The oldest send whose leaving brings the count under the cap.
            Window::Rolling(span) => after(within[within.len() - self.max as usize], span)?,
            Window::Day => next_start(now, tz, 1.day())?,
            Window::Week => next_start(now, tz, 1.week())?,
        };
        Some(Capped {
            rule: self,
            sent: within.len(),
            room_at,
        })
    }

    /// How far back this rule looks, at most (a calendar day or week in any zone lies
    /// within two days or eight of now).
    pub fn reach(&self) -> jiff::SignedDuration {
        match self.window {
            Window::Rolling(span) => span
                .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .unwrap_or(jiff::SignedDuration::MAX),
            Window::Day => jiff::SignedDuration::from_hours(48),
            Window::Week => jiff::SignedDuration::from_hours(8 * 24),
        }
    }

    /// The start of the calendar period holding `now`, in `tz`.
    fn period_start(&self, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = now.to_zoned(tz.clone());
        let day = local.start_of_day().ok()?;
        match self.window {
            Window::Week => {
                let back = i64::from(local.weekday().to_monday_zero_offset());
                day.checked_sub(back.days())
                    .ok()?
                    .start_of_day()
                    .ok()
                    .map(|z| z.timestamp())
            }
            _ => Some(day.timestamp()),
        }
    }
}

/// The start of the next period after `now`'s (a day or a week, local).
fn next_start(now: Timestamp, tz: &TimeZone, period: Span) -> Option<Timestamp> {
    let local: Zoned = now.to_zoned(tz.clone());
    let start = if period.get_weeks() > 0 {
        let back = i64::from(local.weekday().to_monday_zero_offset());
        local.checked_sub(back.days()).ok()?
    } else {
        local
    };
    start
        .checked_add(period)
        .ok()?
        .start_of_day()
        .ok()
        .map(|z| z.timestamp())
}

/// `at + span`, with days of 24 hours (a rolling window does not follow a zone).
fn after(at: Timestamp, span: Span) -> Option<Timestamp> {
    crate::expr::time::add_span(at, span, &TimeZone::UTC).ok()
}

impl std::fmt::Display for FrequencyCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let window = match self.window {
            Window::Rolling(span) => format!("within {span}"),
            Window::Day => "per calendar day".into(),
            Window::Week => "per calendar week".into(),
        };
        write!(
            f,
            "at most {} {} {} message{} {window}",
            self.max,
            self.category.as_str(),
            self.channel.as_str(),
            if self.max == 1 { "" } else { "s" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn rule(json: serde_json::Value) -> Result<FrequencyCap, String> {
        FrequencyCap::compile(&serde_json::from_value(json).expect("def"))
    }

    #[test]
    fn a_rolling_window_has_room_when_the_oldest_counted_send_leaves_it() {
        let cap = rule(serde_json::json!({"channel": "email", "max": 2, "within": "PT24H"}))
            .expect("rule");
        let sent = [ts("2026-01-05T08:00:00Z"), ts("2026-01-05T20:00:00Z")];
        assert_eq!(
            cap.check(sent.into_iter(), ts("2026-01-05T21:00:00Z"), &TimeZone::UTC)
                .map(|c| (c.sent, c.room_at)),
            Some((2, ts("2026-01-06T08:00:00Z")))
        );
        assert!(
            cap.check(sent.into_iter(), ts("2026-01-06T08:00:00Z"), &TimeZone::UTC)
                .is_none()
        );
        assert_eq!(
            cap.to_string(),
            "at most 2 marketing email messages within PT24H"
        );
    }

    #[test]
    fn a_calendar_day_starts_at_local_midnight() {
        let cap =
            rule(serde_json::json!({"channel": "sms", "max": 1, "per": "day"})).expect("rule");
        let tokyo = TimeZone::get("Asia/Tokyo").expect("zone");
        // 23:00 in Tokyo on 5 January is 14:00Z; midnight is 15:00Z.
        let sent = [ts("2026-01-05T14:00:00Z")];
        let capped = cap
            .check(sent.into_iter(), ts("2026-01-05T14:30:00Z"), &tokyo)
            .expect("capped");
        assert_eq!(capped.room_at, ts("2026-01-05T15:00:00Z"));
        assert!(
            cap.check(sent.into_iter(), ts("2026-01-05T15:00:00Z"), &tokyo)
                .is_none()
        );
    }

    #[test]
    fn a_calendar_week_starts_on_monday() {
        let cap =
            rule(serde_json::json!({"channel": "push", "max": 1, "per": "week"})).expect("rule");
        // Wednesday 7 January 2026; the week began on Monday 5 January.
        let sent = [ts("2026-01-05T00:00:00Z")];
        let capped = cap
            .check(sent.into_iter(), ts("2026-01-07T12:00:00Z"), &TimeZone::UTC)
            .expect("capped");
        assert_eq!(capped.room_at, ts("2026-01-12T00:00:00Z"));
        let last_week = [ts("2026-01-04T23:59:00Z")];
        assert!(
            cap.check(
                last_week.into_iter(),
                ts("2026-01-07T12:00:00Z"),
                &TimeZone::UTC
            )
            .is_none()
        );
    }

    #[test]
    fn bad_rules_name_their_field() {
        for (def, field) in [
            (
                serde_json::json!({"channel": "fax", "max": 1, "per": "day"}),
                "channel:",
            ),
            (
                serde_json::json!({"channel": "sms", "max": 0, "per": "day"}),
                "max:",
            ),
            (
                serde_json::json!({"channel": "sms", "max": 1, "within": "P2X"}),
                "within:",
            ),
            (
                serde_json::json!({"channel": "sms", "max": 1, "within": "PT0S"}),
                "within:",
            ),
            (
                serde_json::json!({"channel": "sms", "max": 1, "per": "month"}),
                "per:",
            ),
            (
                serde_json::json!({"channel": "sms", "max": 1}),
                "exactly one",
            ),
        ] {
            let err = rule(def.clone()).expect_err("refused");
            assert!(err.contains(field), "{def}: {err}");
        }
    }
}

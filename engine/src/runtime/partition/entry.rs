//! Entry rules: may this profile enter this journey now?
//!
//! Every rule an entry must pass, as pure decisions over the journey's properties and
//! what the partition knows of the profile's past: test mode, schedule window, one live
//! instance, re-entrance, capping. [`super::admission`] applies them in order (with the
//! pause hold, the repeat of one trigger and the `when` condition, which need the
//! partition's state) and records what they decide. Nothing here reads or writes state.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::code::Code;
use crate::compile::{Journey, Reentrance};
use crate::expr::time::add_span;
use crate::runtime::audiences::CappingRule;

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discard {
    pub code: Code,
    pub message: String,
}

/// While a draft is under test, test profiles enter only the draft and every other
/// profile only the live version (`draft_under_test`: the journey has a draft in test
/// mode).
pub(super) fn check_test_mode(
    journey: &Journey,
    test_profile: bool,
    draft_under_test: bool,
) -> Result<(), Discard> {
    if journey.test.is_some() && !test_profile {
        return Err(Discard {
            code: Code::NotATestProfile,
            message: "a draft in test mode only takes test profiles".into(),
        });
    }
    if journey.test.is_none() && test_profile && draft_under_test {
        return Err(Discard {
            code: Code::TestProfile,
            message: "a test profile enters the draft under test, not the live version".into(),
        });
    }
    Ok(())
}

/// Every capping rule of the journey must allow one more entry at `entry_at`, given the
/// profile's counted entries (rule, time). A rule that no longer exists limits nothing.
pub(super) fn check_capping(
    journey: &Journey,
    rules: &BTreeMap<String, CappingRule>,
    counted: &[(String, Timestamp)],
    entry_at: Timestamp,
) -> Result<(), Discard> {
    for rule_id in &journey.props.capping {
        let Some(rule) = rules.get(rule_id) else {
            continue;
        };
        let entries = counted
            .iter()
            .filter(|(r, _)| r == rule_id)
            .map(|(_, at)| *at);
        if !rule.allows(entries, entry_at) {
            return Err(Discard {
                code: Code::Capped,
                message: format!(
                    "capping rule {rule_id:?} allows {} entries per {}",
                    rule.max, rule.period
                ),
            });
        }
    }
    Ok(())
}

/// Checks schedule, single live instance and re-entrance.
///
/// Two clocks: the schedule (`start_at`, `end_at`) is the journey's own life and reads
/// `now`, when the entry is processed; re-entrance compares entry times (`entry_at` and
/// `last_entered`): when the entry event happened, for entries by a profile's event, so
/// that a late or replayed event is judged by when it happened, not when it arrived.
pub(super) fn check(
    journey: &Journey,
    now: Timestamp,
    entry_at: Timestamp,
    has_live_instance: bool,
    last_entered: Option<Timestamp>,
) -> Result<(), Discard> {
    let props = &journey.props;
    if let Some(start) = props.start_at
        && now < start
    {
        return Err(Discard {
            code: Code::OutsideSchedule,
            message: format!("the journey takes entries from {start}"),
        });
    }
    if let Some(end) = props.end_at
        && now >= end
    {
        return Err(Discard {
            code: Code::OutsideSchedule,
            message: format!("the journey took entries until {end}"),
        });
    }
    if has_live_instance {
        return Err(Discard {
            code: Code::AlreadyInJourney,
            message: "the profile is already in this journey".into(),
        });
    }
    match (props.reentrance, last_entered) {
        (_, None) | (Reentrance::Always, _) => Ok(()),
        (Reentrance::Never, Some(at)) => Err(Discard {
            code: Code::ReentranceBlocked,
            message: format!("the journey allows one entry per profile; it entered at {at}"),
        }),
        (Reentrance::After(wait), Some(at)) => {
            // Entries must be `wait` apart in entry time, whichever came first: a late
            // event that happened just before the last entry is as close to it as one
            // just after.
            let open = add_span(at, wait, &props.time_zone).unwrap_or(at);
            let closed_from = add_span(at, wait.negate(), &props.time_zone).unwrap_or(at);
            if entry_at < open && entry_at > closed_from {
                Err(Discard {
                    code: Code::ReentranceBlocked,
                    message: format!(
                        "the profile entered at {at} (entry time); entries must be {wait:#} apart, and this one's time is {entry_at}"
                    ),
                })
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{Catalog, compile};
    use crate::expr::ExprEngine;
    use crate::model::{Format, parse_journey};
    use crate::settings::Settings;

    fn journey(props: &str) -> Journey {
        let text = format!(
            r#"{{"entry":{{"type":"event","event":"e"}},"start":"x","nodes":{{"x":{{"type":"end"}}}},"properties":{props}}}"#
        );
        let def = parse_journey(text.as_bytes(), Format::Json).unwrap();
        let settings = Settings::default();
        compile(
            &def,
            "j",
            1,
            &ExprEngine::new(&settings.expr),
            &Catalog::default(),
            &settings,
        )
        .unwrap()
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn reentrance_modes() {
        let now = t("2026-05-01T12:00:00Z");
        let before = Some(t("2026-05-01T11:58:00Z"));
        let never = journey(r#"{"reentrance":{"mode":"never"}}"#);
        assert!(check(&never, now, now, false, None).is_ok());
        assert_eq!(
            check(&never, now, now, false, before).unwrap_err().code,
            Code::ReentranceBlocked
        );
        let always = journey(r#"{"reentrance":{"mode":"always"}}"#);
        assert!(check(&always, now, now, false, before).is_ok());
        assert_eq!(
            check(&always, now, now, true, before).unwrap_err().code,
            Code::AlreadyInJourney
        );
        let after = journey(r#"{"reentrance":{"mode":"after","wait":"PT5M"}}"#);
        assert_eq!(
            check(&after, now, now, false, before).unwrap_err().code,
            Code::ReentranceBlocked
        );
        assert!(check(&after, now, now, false, Some(t("2026-05-01T11:55:00Z"))).is_ok());
    }

    #[test]
    fn reentrance_counts_in_entry_time_not_processing_time() {
        let after = journey(r#"{"reentrance":{"mode":"after","wait":"PT1H"}}"#);
        let now = t("2026-05-01T12:00:00Z");
        let last = Some(t("2026-05-01T11:50:00Z"));
        // A late event that happened two hours before the last entry is far enough.
        assert!(check(&after, now, t("2026-05-01T09:50:00Z"), false, last).is_ok());
        // One that happened 30 minutes before it is not, though it arrives now.
        assert_eq!(
            check(&after, now, t("2026-05-01T11:20:00Z"), false, last)
                .unwrap_err()
                .code,
            Code::ReentranceBlocked
        );
        // Exactly the period apart is allowed, on either side.
        assert!(check(&after, now, t("2026-05-01T10:50:00Z"), false, last).is_ok());
    }

    #[test]
    fn schedule_window() {
        let j = journey(r#"{"start_at":"2026-05-01T00:00:00Z","end_at":"2026-06-01T00:00:00Z"}"#);
        let at = |s: &str| check(&j, t(s), t(s), false, None);
        assert_eq!(
            at("2026-04-30T23:59:59Z").unwrap_err().code,
            Code::OutsideSchedule
        );
        assert!(at("2026-05-15T00:00:00Z").is_ok());
        assert_eq!(
            at("2026-06-01T00:00:00Z").unwrap_err().code,
            Code::OutsideSchedule
        );
    }
}

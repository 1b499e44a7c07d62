//! Read-audience schedules: once, daily, weekly or cron, in the journey's time zone.
//!
//! Owns parsing a [`ScheduleDef`] with located errors and answering "when is the next
//! run after this instant". It never starts runs and never reads the clock.

use std::str::FromStr;

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::Cx;
use crate::expr::time::parse_datetime;
use crate::model::ScheduleDef;

/// A compiled schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Once(Timestamp),
    Daily(Time),
    Weekly(Vec<Weekday>, Time),
    Cron(Box<jiff_cron::Schedule>),
}

impl Schedule {
    pub fn compile(def: &ScheduleDef, path: &str, tz: &TimeZone, cx: &mut Cx) -> Option<Self> {
        match def {
            ScheduleDef::Once { at } => match parse_datetime(at, tz) {
                Ok(ts) => Some(Schedule::Once(ts)),
                Err(e) => {
                    cx.problem(format!("{path}.at"), e);
                    None
                }
            },
            ScheduleDef::Daily { at } => {
                local_time(at, &format!("{path}.at"), cx).map(Schedule::Daily)
            }
            ScheduleDef::Weekly { days, at } => {
                let time = local_time(at, &format!("{path}.at"), cx);
                if days.is_empty() {
                    cx.problem(
                        format!("{path}.days"),
                        "name at least one day (like monday)",
                    );
                }
                let mut parsed = Vec::with_capacity(days.len());
                for (i, d) in days.iter().enumerate() {
                    match weekday(d) {
                        Some(w) => parsed.push(w),
                        None => cx.problem(
                            format!("{path}.days[{i}]"),
                            format!("{d:?} is not a day of the week (monday ... sunday)"),
                        ),
                    }
                }
                (parsed.len() == days.len() && !days.is_empty())
                    .then_some(())
                    .and(time)
                    .map(|t| Schedule::Weekly(parsed, t))
            }
            ScheduleDef::Cron { expression } => {
                // Five fields is classic cron (minute first): add the seconds field.
                let fields = expression.split_whitespace().count();
                let full = if fields == 5 {
                    format!("0 {expression}")
                } else {
                    expression.clone()
                };
                match jiff_cron::Schedule::from_str(&full) {
                    Ok(s) if (5..=7).contains(&fields) => Some(Schedule::Cron(Box::new(s))),
                    Ok(_) => {
                        cx.problem(
                            format!("{path}.expression"),
                            format!("{expression:?} has {fields} fields; expected 5 (minute hour day month weekday), 6 or 7"),
                        );
                        None
                    }
                    Err(e) => {
                        cx.problem(
                            format!("{path}.expression"),
                            format!("{expression:?} is not a cron expression: {e}"),
                        );
                        None
                    }
                }
            }
        }
    }

    /// Whether the schedule fires more than once.
    pub fn recurs(&self) -> bool {
        !matches!(self, Schedule::Once(_))
    }

    /// The first run time strictly after `after`, read in `tz`.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Once(at) => (*at > after).then_some(*at),
            Schedule::Daily(time) => next_matching(after, tz, *time, |_| true),
            Schedule::Weekly(days, time) => next_matching(after, tz, *time, |w| days.contains(&w)),
            Schedule::Cron(cron) => cron
                .after(after.to_zoned(tz.clone()))
                .next()
                .map(|z| z.timestamp()),
        }
    }
}

/// The first day (from `after`'s own day on) whose weekday passes `day_ok`, at `time`,
/// strictly after `after`. A local time skipped by a DST change runs at the first
/// instant after the gap.
fn next_matching(
    after: Timestamp,
    tz: &TimeZone,
    time: Time,
    day_ok: impl Fn(Weekday) -> bool,
) -> Option<Timestamp> {
    let mut date = after.to_zoned(tz.clone()).date();
    for _ in 0..8 {
        if day_ok(date.weekday()) {
            let at = date
                .to_datetime(time)
                .to_zoned(tz.clone())
                .ok()?
                .timestamp();
            if at > after {
                return Some(at);
            }
        }
        date = date.checked_add(1.day()).ok()?;
    }
    None
}

fn local_time(text: &str, path: &str, cx: &mut Cx) -> Option<Time> {
    match Time::from_str(text) {
        Ok(t) => Some(t),
        Err(_) => {
            cx.problem(path, format!("{text:?} is not a local time (like 09:00)"));
            None
        }
    }
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name.to_ascii_lowercase().as_str() {
        "monday" | "mon" => Weekday::Monday,
        "tuesday" | "tue" => Weekday::Tuesday,
        "wednesday" | "wed" => Weekday::Wednesday,
        "thursday" | "thu" => Weekday::Thursday,
        "friday" | "fri" => Weekday::Friday,
        "saturday" | "sat" => Weekday::Saturday,
        "sunday" | "sun" => Weekday::Sunday,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn daily_runs_at_local_time_across_dst() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let s = Schedule::Daily(Time::constant(9, 0, 0, 0));
        // Before 09:00 Paris (08:00 UTC in winter): today.
        assert_eq!(
            s.next_after(t("2026-03-02T07:00:00Z"), &tz),
            Some(t("2026-03-02T08:00:00Z"))
        );
        // At 09:00 exactly: tomorrow.
        assert_eq!(
            s.next_after(t("2026-03-02T08:00:00Z"), &tz),
            Some(t("2026-03-03T08:00:00Z"))
        );
        // Across the spring change, 09:00 Paris is 07:00 UTC.
        assert_eq!(
            s.next_after(t("2026-03-28T09:00:00Z"), &tz),
            Some(t("2026-03-29T07:00:00Z"))
        );
    }

    #[test]
    fn weekly_and_cron_and_once() {
        let tz = TimeZone::UTC;
        let weekly = Schedule::Weekly(vec![Weekday::Friday], Time::constant(10, 0, 0, 0));
        // 2026-03-02 is a Monday.
        assert_eq!(
            weekly.next_after(t("2026-03-02T12:00:00Z"), &tz),
            Some(t("2026-03-06T10:00:00Z"))
        );
        let cron = Schedule::Cron(Box::new(
            jiff_cron::Schedule::from_str("0 30 6 * * *").unwrap(),
        ));
        assert_eq!(
            cron.next_after(t("2026-03-02T12:00:00Z"), &tz),
            Some(t("2026-03-03T06:30:00Z"))
        );
        let once = Schedule::Once(t("2026-03-05T00:00:00Z"));
        assert_eq!(
            once.next_after(t("2026-03-02T00:00:00Z"), &tz),
            Some(t("2026-03-05T00:00:00Z"))
        );
        assert_eq!(once.next_after(t("2026-03-05T00:00:00Z"), &tz), None);
    }
}

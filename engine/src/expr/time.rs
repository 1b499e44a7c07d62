//! Date, duration and time-window helpers for expressions.
//!
//! Local readings (hour, weekday, windows, dates) use the evaluation's zone: the journey's,
//! or the profile's when the journey follows it. `now()` is the engine clock's time.

use std::str::FromStr;

use jiff::civil::{Date, DateTime as CivilDateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Unit, Zoned};
use rhai::{Array, Engine, EvalAltResult, NativeCallContext};

use super::EvalEnv;

/// An instant, as expressions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime(pub Timestamp);

/// An ISO-8601 duration (`P2D`, `PT30M`), calendar-aware.
#[derive(Debug, Clone, Copy)]
pub struct Duration(pub Span);

type Res<T> = Result<T, Box<EvalAltResult>>;

fn fail<T>(msg: impl Into<String>) -> Res<T> {
    Err(msg.into().into())
}

fn env(ctx: &NativeCallContext) -> EvalEnv {
    ctx.tag()
        .and_then(|t| t.clone().try_cast::<EvalEnv>())
        .unwrap_or_else(|| EvalEnv {
            now: Timestamp::UNIX_EPOCH,
            tz: TimeZone::UTC,
            call: None,
        })
}

fn local(ctx: &NativeCallContext, dt: DateTime) -> Zoned {
    dt.0.to_zoned(env(ctx).tz)
}

/// Parses an RFC 3339 instant, a civil date-time (`2026-12-01T09:00`) or a date
/// (`2026-12-01`, midnight) read in `tz`.
pub fn parse_datetime(s: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    if let Ok(ts) = Timestamp::from_str(s) {
        return Ok(ts);
    }
    let civil = CivilDateTime::from_str(s)
        .or_else(|_| Date::from_str(s).map(|d| d.to_datetime(Time::midnight())))
        .map_err(|_| {
            format!(
                "{s:?} is not a date-time (expected RFC 3339 like 2026-12-01T09:00:00Z, or 2026-12-01T09:00, or 2026-12-01)"
            )
        })?;
    civil
        .to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| format!("{s:?} does not exist in that time zone: {e}"))
}

/// Parses an ISO-8601 duration.
pub fn parse_duration(s: &str) -> Result<Span, String> {
    Span::from_str(s).map_err(|_| format!("{s:?} is not an ISO-8601 duration (like P2D or PT30M)"))
}

/// Parses an ISO-8601 duration as an exact length (days count as 24 hours; months and
/// years, which have no fixed length, are refused).
pub fn parse_exact_duration(s: &str) -> Result<jiff::SignedDuration, String> {
    parse_duration(s)?
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| format!("{s:?}: {e}"))
}

/// Adds a calendar-aware span to an instant, in a zone (so `P1D` across a DST change is
/// one calendar day, not 24 hours).
pub fn add_span(at: Timestamp, span: Span, tz: &TimeZone) -> Result<Timestamp, String> {
    at.to_zoned(tz.clone())
        .checked_add(span)
        .map(|z| z.timestamp())
        .map_err(|e| format!("cannot add {span} to {at}: {e}"))
}

fn parse_hhmm(s: &str) -> Res<Time> {
    Time::from_str(s).or_else(|_| fail(format!("{s:?} is not a time of day (like 09:30)")))
}

fn parse_weekday(s: &str) -> Res<i8> {
    let day = match s.to_ascii_lowercase().get(..3) {
        Some("mon") => 1,
        Some("tue") => 2,
        Some("wed") => 3,
        Some("thu") => 4,
        Some("fri") => 5,
        Some("sat") => 6,
        Some("sun") => 7,
        _ => {
            return fail(format!(
                "{s:?} is not a day of the week (like mon or monday)"
            ));
        }
    };
    Ok(day)
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<DateTime>("DateTime");
    engine.register_type_with_name::<Duration>("Duration");

    engine.register_fn("now", |ctx: NativeCallContext| DateTime(env(&ctx).now));
    engine.register_fn(
        "datetime",
        |ctx: NativeCallContext, s: &str| -> Res<DateTime> {
            parse_datetime(s, &env(&ctx).tz).map(DateTime).or_else(fail)
        },
    );
    engine.register_fn("duration", |s: &str| -> Res<Duration> {
        parse_duration(s).map(Duration).or_else(fail)
    });

    engine.register_fn(
        "+",
        |ctx: NativeCallContext, a: DateTime, d: Duration| -> Res<DateTime> {
            add_span(a.0, d.0, &env(&ctx).tz)
                .map(DateTime)
                .or_else(fail)
        },
    );
    engine.register_fn(
        "-",
        |ctx: NativeCallContext, a: DateTime, d: Duration| -> Res<DateTime> {
            add_span(a.0, d.0.negate(), &env(&ctx).tz)
                .map(DateTime)
                .or_else(fail)
        },
    );
    engine.register_fn("<", |a: DateTime, b: DateTime| a < b);
    engine.register_fn("<=", |a: DateTime, b: DateTime| a <= b);
    engine.register_fn(">", |a: DateTime, b: DateTime| a > b);
    engine.register_fn(">=", |a: DateTime, b: DateTime| a >= b);
    engine.register_fn("==", |a: DateTime, b: DateTime| a == b);
    engine.register_fn("!=", |a: DateTime, b: DateTime| a != b);
    engine.register_fn("to_string", |a: DateTime| a.0.to_string());
    engine.register_fn("to_debug", |a: DateTime| a.0.to_string());
    engine.register_fn("to_string", |d: Duration| d.0.to_string());
    engine.register_fn("to_debug", |d: Duration| d.0.to_string());

    // Local readings, in the evaluation's zone.
    engine.register_fn("hour", |ctx: NativeCallContext, a: DateTime| {
        i64::from(local(&ctx, a).hour())
    });
    engine.register_fn("minute", |ctx: NativeCallContext, a: DateTime| {
        i64::from(local(&ctx, a).minute())
    });
    engine.register_fn("weekday", |ctx: NativeCallContext, a: DateTime| {
        i64::from(local(&ctx, a).weekday().to_monday_one_offset())
    });
    engine.register_fn("year", |ctx: NativeCallContext, a: DateTime| {
        i64::from(local(&ctx, a).year())
    });
    engine.register_fn("month", |ctx: NativeCallContext, a: DateTime| {
        i64::from(local(&ctx, a).month())
    });
    engine.register_fn("day", |ctx: NativeCallContext, a: DateTime| {
        i64::from(local(&ctx, a).day())
    });
    engine.register_fn("date", |ctx: NativeCallContext, a: DateTime| {
        local(&ctx, a).date().to_string()
    });
    engine.register_fn(
        "at_time",
        |ctx: NativeCallContext, a: DateTime, hhmm: &str| -> Res<DateTime> {
            let time = parse_hhmm(hhmm)?;
            let z = local(&ctx, a);
            z.date()
                .to_datetime(time)
                .to_zoned(z.time_zone().clone())
                .map(|z| DateTime(z.timestamp()))
                .or_else(|e| fail(e.to_string()))
        },
    );
    engine.register_fn(
        "in_time_window",
        |ctx: NativeCallContext, a: DateTime, from: &str, to: &str| -> Res<bool> {
            let (from, to) = (parse_hhmm(from)?, parse_hhmm(to)?);
            let t = local(&ctx, a).time();
            Ok(if from <= to {
                from <= t && t < to
            } else {
                // Overnight window, e.g. 22:00–06:00.
                t >= from || t < to
            })
        },
    );
    engine.register_fn(
        "in_days",
        |ctx: NativeCallContext, a: DateTime, days: Array| -> Res<bool> {
            let today = local(&ctx, a).weekday().to_monday_one_offset();
            for d in days {
                let name = d
                    .into_immutable_string()
                    .or_else(|t| fail(format!("in_days takes day names, got {t}")))?;
                if parse_weekday(&name)? == today {
                    return Ok(true);
                }
            }
            Ok(false)
        },
    );
    engine.register_fn(
        "in_date_range",
        |ctx: NativeCallContext, a: DateTime, from: &str, to: &str| -> Res<bool> {
            let parse = |s: &str| {
                Date::from_str(s)
                    .or_else(|_| fail(format!("{s:?} is not a date (like 2026-12-24)")))
            };
            let (from, to) = (parse(from)?, parse(to)?);
            let d = local(&ctx, a).date();
            Ok(from <= d && d <= to)
        },
    );
    engine.register_fn(
        "days_between",
        |ctx: NativeCallContext, a: DateTime, b: DateTime| -> Res<i64> {
            let (za, zb) = (local(&ctx, a), local(&ctx, b));
            za.date()
                .until((Unit::Day, zb.date()))
                .map(|s| i64::from(s.get_days()))
                .or_else(|e| fail(e.to_string()))
        },
    );
    engine.register_fn("seconds_between", |a: DateTime, b: DateTime| {
        b.0.duration_since(a.0).as_secs()
    });
    // Sugar: the same readings of now().
    engine.register_fn("hour", |ctx: NativeCallContext| {
        i64::from(env(&ctx).now.to_zoned(env(&ctx).tz).hour())
    });
    engine.register_fn("weekday", |ctx: NativeCallContext| {
        let e = env(&ctx);
        i64::from(e.now.to_zoned(e.tz).weekday().to_monday_one_offset())
    });
}

#[cfg(test)]
mod tests {
    use crate::expr::{EvalEnv, ExprEngine, ScopeData};
    use crate::settings::ExprLimits;
    use jiff::tz::TimeZone;

    fn eval(src: &str, tz: &str) -> rhai::Dynamic {
        let mut ee = ExprEngine::new(&ExprLimits::default());
        let expr = ee.compile(src).unwrap();
        let env = EvalEnv {
            // A Monday, 08:30 UTC = 09:30 in Paris (winter time).
            now: "2026-03-02T08:30:00Z".parse().unwrap(),
            tz: TimeZone::get(tz).unwrap(),
            call: None,
        };
        ee.eval(&expr, &ScopeData::default(), &env).unwrap()
    }

    #[test]
    fn local_readings_follow_the_zone() {
        assert_eq!(eval("hour(now())", "Europe/Paris").as_int().unwrap(), 9);
        assert_eq!(eval("hour(now())", "UTC").as_int().unwrap(), 8);
        assert_eq!(eval("weekday(now())", "UTC").as_int().unwrap(), 1);
        assert!(
            eval(r#"in_time_window(now(), "09:00", "17:00")"#, "Europe/Paris")
                .as_bool()
                .unwrap()
        );
        assert!(
            !eval(r#"in_time_window(now(), "09:00", "17:00")"#, "UTC")
                .as_bool()
                .unwrap()
        );
        assert!(
            eval(r#"in_time_window(now(), "22:00", "09:00")"#, "UTC")
                .as_bool()
                .unwrap()
        );
        assert!(
            eval(r#"in_days(now(), ["mon", "tue"])"#, "UTC")
                .as_bool()
                .unwrap()
        );
        assert!(
            eval(r#"in_date_range(now(), "2026-03-01", "2026-03-02")"#, "UTC")
                .as_bool()
                .unwrap()
        );
    }

    #[test]
    fn date_arithmetic_is_calendar_aware() {
        // 2026-03-29 is the DST change in Paris: one calendar day is 23 hours.
        let src = r#"seconds_between(datetime("2026-03-28T12:00"), datetime("2026-03-28T12:00") + duration("P1D"))"#;
        assert_eq!(eval(src, "Europe/Paris").as_int().unwrap(), 23 * 3600);
        assert_eq!(eval(src, "UTC").as_int().unwrap(), 24 * 3600);
        let src = r#"date(at_time(now() + duration("P1D"), "09:00"))"#;
        assert_eq!(eval(src, "UTC").into_string().unwrap(), "2026-03-03");
        let src = r#"days_between(datetime("2026-01-01"), now())"#;
        assert_eq!(eval(src, "UTC").as_int().unwrap(), 60);
    }
}

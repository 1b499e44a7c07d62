//! Entry rules: may this profile enter this journey now?
//!
//! Pure decisions over the journey's properties and what the store knows of the
//! profile's past; the `when` condition is evaluated by the partition, after these.

use jiff::Timestamp;

use crate::compile::{Journey, Reentrance};
use crate::expr::time::add_span;

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discard {
    pub code: &'static str,
    pub message: String,
}

/// Checks schedule, single live instance and re-entrance.
pub fn check(
    journey: &Journey,
    now: Timestamp,
    has_live_instance: bool,
    last_entered: Option<Timestamp>,
) -> Result<(), Discard> {
    let props = &journey.props;
    if let Some(start) = props.start_at
        && now < start
    {
        return Err(Discard {
            code: "OUTSIDE_SCHEDULE",
            message: format!("the journey takes entries from {start}"),
        });
    }
    if let Some(end) = props.end_at
        && now >= end
    {
        return Err(Discard {
            code: "OUTSIDE_SCHEDULE",
            message: format!("the journey took entries until {end}"),
        });
    }
    if has_live_instance {
        return Err(Discard {
            code: "ALREADY_IN_JOURNEY",
            message: "the profile is already in this journey".into(),
        });
    }
    match (props.reentrance, last_entered) {
        (_, None) | (Reentrance::Always, _) => Ok(()),
        (Reentrance::Never, Some(at)) => Err(Discard {
            code: "REENTRANCE_BLOCKED",
            message: format!("the journey allows one entry per profile; it entered at {at}"),
        }),
        (Reentrance::After(wait), Some(at)) => {
            let open = add_span(at, wait, &props.time_zone).unwrap_or(at);
            if now < open {
                Err(Discard {
                    code: "REENTRANCE_BLOCKED",
                    message: format!("the profile entered at {at}; it may enter again from {open}"),
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
        assert!(check(&never, now, false, None).is_ok());
        assert_eq!(
            check(&never, now, false, before).unwrap_err().code,
            "REENTRANCE_BLOCKED"
        );
        let always = journey(r#"{"reentrance":{"mode":"always"}}"#);
        assert!(check(&always, now, false, before).is_ok());
        assert_eq!(
            check(&always, now, true, before).unwrap_err().code,
            "ALREADY_IN_JOURNEY"
        );
        let after = journey(r#"{"reentrance":{"mode":"after","wait":"PT5M"}}"#);
        assert_eq!(
            check(&after, now, false, before).unwrap_err().code,
            "REENTRANCE_BLOCKED"
        );
        assert!(check(&after, now, false, Some(t("2026-05-01T11:55:00Z"))).is_ok());
    }

    #[test]
    fn schedule_window() {
        let j = journey(r#"{"start_at":"2026-05-01T00:00:00Z","end_at":"2026-06-01T00:00:00Z"}"#);
        assert_eq!(
            check(&j, t("2026-04-30T23:59:59Z"), false, None)
                .unwrap_err()
                .code,
            "OUTSIDE_SCHEDULE"
        );
        assert!(check(&j, t("2026-05-15T00:00:00Z"), false, None).is_ok());
        assert_eq!(
            check(&j, t("2026-06-01T00:00:00Z"), false, None)
                .unwrap_err()
                .code,
            "OUTSIDE_SCHEDULE"
        );
    }
}

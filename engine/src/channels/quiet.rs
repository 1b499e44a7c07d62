//! Quiet hours: a daily window of local time (`21:00-08:00`) in which a channel sends no
//! marketing message; a message due inside it is held until the window ends, in the
//! profile's time zone (daylight-saving changes included: the end is 08:00 on the
//! local clock, whatever the offset that day).
//!
//! Owns the window and the moment a held message goes. Never holds anything itself: the
//! `message` node pauses its instance until then.

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;

/// A daily window of local time; it may wrap past midnight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuietHours {
    pub start: Time,
    pub end: Time,
}

impl QuietHours {
    /// `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<QuietHours, String> {
        let bad = || format!("{text:?} is not a window of local time like \"21:00-08:00\"");
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let time = |t: &str| -> Result<Time, String> {
            let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
            let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            Time::new(h, m, 0, 0).map_err(|_| bad())
        };
        let (start, end) = (time(a)?, time(b)?);
        if start == end {
            return Err(format!("{text:?} starts and ends at the same time"));
        }
        Ok(QuietHours { start, end })
    }

    /// When a message due at `now` may go, if `now` is inside the window in `tz`.
    pub fn release(&self, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = now.to_zoned(tz.clone());
        let t = local.time();
        let today = local.date();
        let end_on = if self.start < self.end {
            (self.start <= t && t < self.end).then_some(today)?
        } else if t >= self.start {
            today.tomorrow().ok()?
        } else if t < self.end {
            today
        } else {
            return None;
        };
        // A local time that does not exist that day (a clock moved forward over it) is
        // the instant just after the gap.
        Some(
            end_on
                .to_datetime(self.end)
                .to_zoned(tz.clone())
                .ok()?
                .timestamp(),
        )
    }
}

impl std::fmt::Display for QuietHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start.hour(),
            self.start.minute(),
            self.end.hour(),
            self.end.minute()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    #[test]
    fn a_window_past_midnight_holds_until_its_local_end_across_a_dst_change() {
        let q = QuietHours::parse("21:00-08:00").expect("window");
        let ny = TimeZone::get("America/New_York").expect("zone");
        // 22:00 EST on Saturday 7 March 2026; clocks go forward at 02:00 that night, so
        // 08:00 on Sunday is EDT (UTC-4): 12:00Z, not 13:00Z.
        assert_eq!(
            q.release(ts("2026-03-08T03:00:00Z"), &ny),
            Some(ts("2026-03-08T12:00:00Z"))
        );
        // 07:59 EDT on Sunday: a minute to go.
        assert_eq!(
            q.release(ts("2026-03-08T11:59:00Z"), &ny),
            Some(ts("2026-03-08T12:00:00Z"))
        );
        // 08:00 and 20:59 local: open.
        assert_eq!(q.release(ts("2026-03-08T12:00:00Z"), &ny), None);
        assert_eq!(q.release(ts("2026-03-09T00:59:00Z"), &ny), None);
        assert_eq!(q.to_string(), "21:00-08:00");
    }

    #[test]
    fn a_daytime_window_and_bad_windows() {
        let q = QuietHours::parse("12:00-14:00").expect("window");
        assert_eq!(
            q.release(ts("2026-01-05T13:00:00Z"), &TimeZone::UTC),
            Some(ts("2026-01-05T14:00:00Z"))
        );
        assert_eq!(q.release(ts("2026-01-05T14:00:00Z"), &TimeZone::UTC), None);
        for bad in ["21:00", "25:00-08:00", "aa:00-08:00", "08:00-08:00"] {
            assert!(QuietHours::parse(bad).is_err(), "{bad}");
        }
    }
}

//! The audiences and capping rules the runtime serves.
//!
//! Audience predicates are compiled once per definition; partitions evaluate them on
//! every profile write against a snapshot taken at the start of their batch. Like the
//! journey set, the whole set is replaced on change (copy on write). This module never
//! evaluates anything and never touches the store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use jiff::{Span, Timestamp};

use crate::expr::Expr;
use crate::expr::time::add_span;
use crate::model::AudienceDef;

/// A compiled audience.
#[derive(Debug)]
pub struct Audience {
    pub name: String,
    pub def: AudienceDef,
    /// `None` for an explicit list.
    pub predicate: Option<Expr>,
}

/// A compiled capping rule.
#[derive(Debug, Clone)]
pub struct CappingRule {
    pub max: u32,
    pub period: Span,
}

impl CappingRule {
    /// Whether `entries` (entry times of earlier counted entries) leave room for one
    /// more at entry time `at`: fewer than `max` of them lie within the period of `at`,
    /// before or after it (entries are in event time, so a late event may land
    /// between earlier ones; counting both sides never lets one through that would put
    /// more than `max` entries within one period of it).
    pub fn allows(&self, entries: impl Iterator<Item = Timestamp>, at: Timestamp) -> bool {
        let tz = jiff::tz::TimeZone::UTC;
        let near = entries
            .filter(|e| {
                add_span(*e, self.period, &tz).is_ok_and(|until| until > at)
                    && add_span(at, self.period, &tz).is_ok_and(|until| until > *e)
            })
            .count();
        near < self.max as usize
    }

    /// The oldest counted entry still kept at `now`: one that an entry up to
    /// `late_days` late (in entry time) may still find within its period. Older ones
    /// can be deleted.
    pub fn kept_since(&self, now: Timestamp, late_days: u32) -> Timestamp {
        let late = jiff::SignedDuration::from_hours(24 * i64::from(late_days));
        now.checked_sub(late)
            .ok()
            .and_then(|t| add_span(t, self.period.negate(), &jiff::tz::TimeZone::UTC).ok())
            .unwrap_or(Timestamp::MIN)
    }
}

/// A consistent view of every audience and capping rule.
#[derive(Clone, Default)]
pub struct AudienceSet {
    pub audiences: BTreeMap<String, Arc<Audience>>,
    pub capping: BTreeMap<String, CappingRule>,
}

impl AudienceSet {
    /// The audiences defined by a predicate, in name order.
    pub fn predicates(&self) -> impl Iterator<Item = (&str, &Expr)> {
        self.audiences
            .values()
            .filter_map(|a| a.predicate.as_ref().map(|p| (a.name.as_str(), p)))
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.audiences.keys().cloned().collect()
    }

    pub fn capping_ids(&self) -> BTreeSet<String> {
        self.capping.keys().cloned().collect()
    }
}

/// The shared, swappable set.
#[derive(Default)]
pub struct Audiences {
    current: RwLock<Arc<AudienceSet>>,
}

impl Audiences {
    pub fn snapshot(&self) -> Arc<AudienceSet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut AudienceSet)) {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        f(&mut next);
        *guard = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capping_counts_entries_within_the_period() {
        let rule = CappingRule {
            max: 2,
            period: Span::new().days(7),
        };
        let now: Timestamp = "2026-03-10T00:00:00Z".parse().unwrap();
        let old: Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        let recent: Timestamp = "2026-03-09T00:00:00Z".parse().unwrap();
        assert!(rule.allows([old, old, recent].into_iter(), now));
        assert!(!rule.allows([recent, recent].into_iter(), now));
    }

    #[test]
    fn counts_are_kept_for_the_period_before_the_latest_late_entry() {
        let rule = CappingRule {
            max: 1,
            period: Span::new().months(1),
        };
        let now: Timestamp = "2026-03-10T12:00:00Z".parse().unwrap();
        // 2 days late at most: 2026-03-08T12:00Z, and a calendar month before it.
        let since: Timestamp = "2026-02-08T12:00:00Z".parse().unwrap();
        assert_eq!(rule.kept_since(now, 2), since);
        // An entry at the edge of what is kept still counts for the latest late entry.
        let latest_late: Timestamp = "2026-03-08T12:00:00Z".parse().unwrap();
        let kept = since
            .checked_add(jiff::SignedDuration::from_secs(1))
            .unwrap();
        assert!(!rule.allows([kept].into_iter(), latest_late));
        // The cutoff itself no longer counts for it (kept all the same, harmlessly).
        assert!(rule.allows([since].into_iter(), latest_late));
    }
}

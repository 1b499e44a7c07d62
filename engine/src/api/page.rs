//! Pages of list answers: every list endpoint takes `?after=<key>&limit=<n>` and answers
//! `next`, the `after` of the following page (`null` on the last one).
//!
//! Owns the parameters, the slicing of a list the handler read in its order, and the cut
//! of a page the store read ahead (one item past the page); keys are
//! those of the items (ids, or a step's `seq`). Must never read the store (a list too
//! large to read whole, such as profiles, pages in the store by key).

use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiError;
use crate::code::Code;

/// Items on a page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Most items on one page.
pub const MAX_LIMIT: usize = 1_000;

/// `?after=<key>&limit=<n>`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// The key of the last item of the previous page (its `next`).
    pub after: Option<String>,
    /// Items on the page, 1 to 1,000 (default 100).
    pub limit: Option<usize>,
}

impl Page {
    /// The page size asked for, within bounds.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    /// The page of `items` (in the list's order) that follows the item whose key is
    /// `after`, and the key to ask for the page after it.
    pub fn slice<T>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> Result<(Vec<T>, Option<String>), ApiError> {
        let start = match &self.after {
            None => 0,
            Some(after) => items
                .iter()
                .position(|i| key(i) == *after)
                .map(|p| p + 1)
                .ok_or_else(|| Self::not_a_key(after))?,
        };
        let limit = self.limit();
        let more = items.len() > start + limit;
        let page: Vec<T> = items.into_iter().skip(start).take(limit).collect();
        let next = if more { page.last().map(&key) } else { None };
        Ok((page, next))
    }
}

impl Page {
    /// The answer to an `after` that names no item of the list.
    pub fn not_a_key(after: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidRequest,
            format!("{after:?} is not a key of this list (use the `next` of the previous page)"),
        )
        .at("after")
    }

    /// The page of a list the store read itself, from after `after` and in its order,
    /// asked for `limit() + 1` items: the one past the page only says there is a next.
    pub fn read_ahead<T>(
        &self,
        mut items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        let limit = self.limit();
        if items.len() <= limit {
            return (items, None);
        }
        items.truncate(limit);
        let next = items.last().map(key);
        (items, next)
    }

    /// The page of `items` (any serializable records) in the order of `key`.
    pub fn sorted<T: serde::Serialize, K: Fn(&serde_json::Value) -> String>(
        &self,
        items: impl IntoIterator<Item = T>,
        key: K,
    ) -> Result<(Vec<serde_json::Value>, Option<String>), ApiError> {
        let mut items: Vec<serde_json::Value> = items
            .into_iter()
            .map(|i| serde_json::to_value(i).unwrap_or(serde_json::Value::Null))
            .collect();
        items.sort_by_key(&key);
        self.slice(items, key)
    }
}

/// The key of a JSON item: its `field`, a string or a number as text.
pub fn field_key(field: &'static str) -> impl Fn(&serde_json::Value) -> String {
    move |item| match &item[field] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(after: Option<&str>, limit: usize) -> Page {
        Page {
            after: after.map(String::from),
            limit: Some(limit),
        }
    }

    #[test]
    fn pages_follow_each_other_to_the_last() {
        let items: Vec<u32> = (1..=5).collect();
        let key = |n: &u32| n.to_string();
        let (first, next) = page(None, 2).slice(items.clone(), key).unwrap();
        assert_eq!((first, next.as_deref()), (vec![1, 2], Some("2")));
        let (second, next) = page(Some("2"), 2).slice(items.clone(), key).unwrap();
        assert_eq!((second, next.as_deref()), (vec![3, 4], Some("4")));
        let (last, next) = page(Some("4"), 2).slice(items.clone(), key).unwrap();
        assert_eq!((last, next), (vec![5], None));
        let (exact, next) = page(None, 5).slice(items.clone(), key).unwrap();
        assert_eq!((exact.len(), next), (5, None));
        let err = page(Some("9"), 2).slice(items, key).unwrap_err();
        assert_eq!(err.location.as_deref(), Some("after"));
        assert_eq!(page(None, 0).limit(), 1);
        assert_eq!(page(None, 50_000).limit(), MAX_LIMIT);
    }
}

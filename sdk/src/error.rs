//! Plugin errors: the three kinds the engine tells apart.

use std::fmt;

/// Why a call failed. The engine retries `Retryable` (with the same idempotency key) and
/// takes the node's error path for the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input is wrong; retrying will not help.
    InvalidInput(String),
    /// A transient failure (timeout, 5xx, 429).
    Retryable(String),
    /// A transient failure, and how long the receiver asked the caller to wait (a
    /// `Retry-After`, or a rate limit in its answer). Channel providers pass the wait on
    /// to the engine; the worlds of 0.1.0 see a plain `Retryable` (the engine still
    /// reads the `Retry-After` header of the plugin's HTTP answers itself).
    RetryAfter(String, std::time::Duration),
    /// A failure that retrying will not fix.
    Permanent(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::Retryable(m) => write!(f, "retryable: {m}"),
            Error::RetryAfter(m, after) => {
                write!(f, "retryable after {} ms: {m}", after.as_millis())
            }
            Error::Permanent(m) => write!(f, "permanent: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::InvalidInput(e.to_string())
    }
}

#[allow(
    unused_macros,
    reason = "used by the worlds of 0.1.0; a channel provider converts on its own"
)]
macro_rules! to_wit {
    ($module:ident) => {
        impl From<Error> for crate::$module::bindings::parcours::plugin::types::PluginError {
            fn from(e: Error) -> Self {
                use crate::$module::bindings::parcours::plugin::types::PluginError as W;
                match e {
                    Error::InvalidInput(m) => W::InvalidInput(m),
                    Error::Retryable(m) | Error::RetryAfter(m, _) => W::Retryable(m),
                    Error::Permanent(m) => W::Permanent(m),
                }
            }
        }
    };
}

#[cfg(feature = "action")]
to_wit!(action);
#[cfg(feature = "data-source")]
to_wit!(data_source);
#[cfg(feature = "functions")]
to_wit!(functions);

//! The typed call context.

/// Where a call comes from (journey, node, instance, profile) and its retry identity.
#[derive(Debug, Clone)]
pub struct Context {
    pub journey_id: String,
    pub journey_version: u32,
    pub node_id: String,
    pub instance_id: String,
    pub profile_id: String,
    /// 1 for the first call, then 2, 3, ... on retries.
    pub attempt: u32,
    /// Stable across retries: send it to the receiving system so that it drops repeats.
    pub idempotency_key: String,
    /// When the call must be over, in milliseconds since the Unix epoch.
    pub deadline_unix_ms: u64,
}

#[allow(
    unused_macros,
    reason = "used by the action, data-source and channel-provider features"
)]
macro_rules! from_wit {
    ($module:ident) => {
        impl From<crate::$module::bindings::parcours::plugin::types::CallContext> for Context {
            fn from(c: crate::$module::bindings::parcours::plugin::types::CallContext) -> Self {
                Context {
                    journey_id: c.journey_id,
                    journey_version: c.journey_version,
                    node_id: c.node_id,
                    instance_id: c.instance_id,
                    profile_id: c.profile_id,
                    attempt: c.attempt,
                    idempotency_key: c.idempotency_key,
                    deadline_unix_ms: c.deadline_unix_ms,
                }
            }
        }
    };
}

#[cfg(feature = "action")]
from_wit!(action);
#[cfg(feature = "data-source")]
from_wit!(data_source);
#[cfg(feature = "channel-provider")]
from_wit!(channel_provider);

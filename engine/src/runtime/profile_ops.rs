//! Profile writes as messages to the profile's partition.
//!
//! Every write of a profile (API put, patch, delete, list-audience membership, audience
//! re-evaluation) goes through the partition that owns the profile, so it is ordered
//! with the profile's journey steps, its audience memberships are re-evaluated in the
//! same commit, and journeys entered on the resulting transitions start at once. This
//! module only defines the messages; the partition applies them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::model::Profile;

/// A change to one profile.
#[derive(Debug, Clone)]
pub enum ProfileOp {
    /// Creates or replaces attributes and zone; `aliases`, when given, replace the
    /// profile's aliases.
    Put {
        id: String,
        attributes: Value,
        timezone: Option<String>,
        aliases: Option<BTreeMap<String, String>>,
        /// Who writes (`api`, `import`, `segment`): the source of the consent changes it
        /// makes.
        source: &'static str,
    },
    /// Merges attributes (JSON merge patch), sets the zone if given (`Some(None)` clears
    /// it), and merges aliases (`None` removes one); creates the profile if needed.
    Patch {
        id: String,
        attributes: Option<Value>,
        timezone: Option<Option<String>>,
        aliases: BTreeMap<String, Option<String>>,
        source: &'static str,
    },
    /// States (or, with `None`, withdraws) the profile's consent to a subscription
    /// group; creates the profile if needed.
    Consent {
        id: String,
        group: String,
        subscribed: Option<bool>,
        source: String,
        /// The message whose unsubscribe link was used.
        message_id: Option<String>,
    },
    /// Deletes the profile, ending its live instances.
    Delete { id: String },
    /// Adds the profile to (or removes it from) an explicit-list audience; creates the
    /// profile if needed.
    SetMember {
        id: String,
        audience: String,
        member: bool,
    },
    /// Evaluates every predicate audience for the profile (after an audience changed).
    Reevaluate { id: String },
    /// Merges the profile away into `into` (the first half of a merge): records what it
    /// has as a [`ProfileMerge`](crate::store::ProfileMerge) with id `merge_id`, ends its
    /// live instances (`PROFILE_MERGED`) and deletes it, in one commit. Nothing happens
    /// if it does not exist.
    MergeOut {
        id: String,
        into: String,
        merge_id: String,
    },
    /// Takes what a merged profile had (the second half): attributes it lacks, aliases,
    /// list memberships, capping entries, live instances of journeys it is not in.
    MergeIn {
        id: String,
        merge: crate::store::ProfileMerge,
    },
}

impl ProfileOp {
    pub fn profile_id(&self) -> &str {
        match self {
            ProfileOp::Put { id, .. }
            | ProfileOp::Patch { id, .. }
            | ProfileOp::Consent { id, .. }
            | ProfileOp::Delete { id }
            | ProfileOp::SetMember { id, .. }
            | ProfileOp::Reevaluate { id }
            | ProfileOp::MergeOut { id, .. }
            | ProfileOp::MergeIn { id, .. } => id,
        }
    }
}

/// A profile after a write, with the audiences it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileView {
    #[serde(flatten)]
    pub profile: Profile,
    pub audiences: Vec<String>,
}

/// The answer to a [`ProfileOp`]: the profile after it (`None`: it does not exist, or
/// was deleted).
pub type ProfileReply = anyhow::Result<Option<ProfileView>>;

/// A profile asked to enter a journey version by an audience run.
#[derive(Debug, Clone)]
pub struct EnterRequest {
    pub journey_id: String,
    pub version: u32,
    pub profile_id: String,
    /// What caused the entry (run id) and when it began: the instance id derives from
    /// both.
    pub trigger_id: String,
    pub trigger_at: jiff::Timestamp,
    /// The entry event (`event` in expressions).
    pub trigger: std::sync::Arc<Value>,
}

/// `Ok` if the profile entered (or had already entered for this trigger), else the code
/// of the reason it was skipped.
pub type EnterReply = Result<(), String>;

//! Profile merges (identity stitching): a profile known only by an anonymous id is
//! merged into the known profile it turns out to be (a Segment `identify` naming both,
//! an `alias` call, or `POST /v1/profiles/{id}/merge`).
//!
//! The rule, as users of Segment-style tools expect it:
//! - attributes: the known profile keeps its own; it takes the merged profile's
//!   attributes it does not have (top-level keys); the same for the time zone and for
//!   aliases (by namespace);
//! - audiences: it joins the explicit lists the merged profile was in; predicate
//!   audiences are evaluated again on the merged attributes;
//! - capping: the merged profile's counted entries count for it;
//! - live instances: each moves to the known profile (same node, data and timers, a new
//!   instance id, an `entered` step with code `PROFILE_MERGED`) unless the known profile
//!   is already in that journey; on the merged profile every live instance ends with
//!   `PROFILE_MERGED`. Its past instances and step events stay under its own id.
//!
//! Two partitions take part, each committing alone, so a merge is a record that
//! survives a crash between them: the merged profile's partition records it
//! (`profile_merges`) in the commit that deletes the profile; the known profile's
//! partition applies it and deletes the record in one commit; at start, records left
//! are applied. This module never touches a profile itself: both halves are messages
//! to the profiles' partitions.

use super::{ProfileOp, ProfileView, Runtime};

impl Runtime {
    /// Merges profile `from` into profile `into`; answers `into` after the merge, or
    /// `None` when `from` does not exist (nothing to merge) or is `into`.
    pub async fn merge_profiles(
        &self,
        from: &str,
        into: &str,
    ) -> anyhow::Result<Option<ProfileView>> {
        if from == into {
            return Ok(None);
        }
        let merge_id = crate::ids::merge_id(from, into, self.now());
        self.profile_op(ProfileOp::MergeOut {
            id: from.to_string(),
            into: into.to_string(),
            merge_id: merge_id.clone(),
        })
        .await?;
        let recorded = self
            .shared
            .store
            .pending_merges()
            .await?
            .into_iter()
            .find(|m| m.id == merge_id);
        match recorded {
            Some(merge) => {
                self.profile_op(ProfileOp::MergeIn {
                    id: into.to_string(),
                    merge,
                })
                .await
            }
            None => Ok(None),
        }
    }

    /// Applies the merges recorded before the last stop and not applied then.
    pub(super) async fn recover_merges(&self) -> anyhow::Result<()> {
        let pending = self.shared.store.pending_merges().await?;
        if pending.is_empty() {
            return Ok(());
        }
        tracing::info!(
            merges = pending.len(),
            "applying profile merges left by the last stop"
        );
        let ops = pending
            .into_iter()
            .map(|merge| ProfileOp::MergeIn {
                id: merge.into.clone(),
                merge,
            })
            .collect();
        for reply in self.profile_ops(ops).await? {
            reply?;
        }
        Ok(())
    }
}

//! Partition ownership by lease (the cluster's part of the store): which node owns which
//! partition, until when, and under which epoch.
//!
//! The partition count is fixed when the cluster's database is created
//! ([`PgStore::cluster_partitions`]). A node heartbeats ([`PgStore::heartbeat`]), takes
//! partitions that no one holds or whose lease expired, up to its fair share of the live
//! nodes ([`PgStore::balance`]: it gives back what it holds beyond that share, so that a
//! node joining gets partitions without waiting for anyone to die), and renews what it
//! holds; every take-over increments the partition's epoch. A commit made for a partition
//! checks its epoch inside its own transaction ([`check_epoch`]), under a share lock that
//! a take-over must wait for: a node that lost a partition (paused past its lease, cut off)
//! can never commit for it again. Lease times are the database's clock, never a node's.
//!
//! It never starts or stops partitions itself: the runtime acts on what
//! [`PgStore::balance`] answers.

use std::time::Duration;

use anyhow::bail;
use tokio_postgres::GenericClient;

use super::PgStore;
use crate::store::Result;

/// A partition a node holds, and the epoch its commits must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub partition: u32,
    pub epoch: i64,
}

/// The microseconds of a lease duration, as SQL's interval arithmetic takes them.
fn micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)
}

/// Fails unless `lease` is still the partition's current one, and keeps it so until the
/// caller's transaction ends (a take-over waits for that transaction). Call it inside
/// the transaction that commits for the partition.
pub async fn check_epoch(tx: &impl GenericClient, lease: Lease) -> Result<()> {
    let partition = i32::try_from(lease.partition)?;
    let epoch: Option<i64> = tx
        .query_opt(
            "SELECT epoch FROM partition_leases WHERE partition = $1 FOR SHARE",
            &[&partition],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    if epoch != Some(lease.epoch) {
        bail!(
            "partition {} is no longer this node's (epoch {} held, {} now): nothing committed",
            lease.partition,
            lease.epoch,
            epoch.map_or("none".to_string(), |e| e.to_string())
        );
    }
    Ok(())
}

impl PgStore {
    /// The cluster's partition count: `wanted` when the database has none yet (the first
    /// node creates the partitions), else the one it was created with; a different
    /// `wanted` is refused, since profiles are hashed to partitions by that count.
    pub async fn cluster_partitions(&self, wanted: u32) -> Result<u32> {
        let wanted = i32::try_from(wanted)?;
        if wanted < 1 {
            bail!("a cluster needs at least one partition");
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("LOCK TABLE cluster IN EXCLUSIVE MODE", &[])
            .await?;
        let found: Option<i32> = tx
            .query_opt("SELECT partitions FROM cluster", &[])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        match found {
            Some(n) if n != wanted => bail!(
                "this cluster's database was created with {n} partitions, not {wanted}: the \
                 partition count is fixed when the cluster is created"
            ),
            Some(_) => {}
            None => {
                tx.execute(
                    "INSERT INTO cluster (id, partitions) VALUES (1, $1)",
                    &[&wanted],
                )
                .await?;
                tx.execute(
                    "INSERT INTO partition_leases (partition) SELECT generate_series(0, $1 - 1)",
                    &[&wanted],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(u32::try_from(wanted)?)
    }

    /// Records that node `node` is alive for `ttl` from now (the database's now).
    pub async fn heartbeat(&self, node: &str, ttl: Duration) -> Result<()> {
        self.execute(
                "INSERT INTO cluster_nodes (id, seen_at, alive_until) \
                 VALUES ($1, clock_timestamp(), clock_timestamp() + $2::bigint * interval '1 microsecond') \
                 ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, \
                 alive_until = excluded.alive_until",
                &[&node, &micros(ttl)],
            )
            .await?;
        Ok(())
    }

    /// Renews what `node` holds for `ttl`, gives back what it holds beyond its fair share
    /// of the live nodes, and takes free or expired partitions up to that share. Answers
    /// the leases it holds afterwards, in partition order: a partition missing from the
    /// answer is no longer the node's, and its commits fail from now on.
    pub async fn balance(&self, node: &str, ttl: Duration) -> Result<Vec<Lease>> {
        let ttl = micros(ttl);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let partitions: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(partitions), 0)::bigint FROM cluster",
                &[],
            )
            .await?
            .try_get(0)?;
        let live: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM cluster_nodes WHERE alive_until > clock_timestamp() OR id = $1",
                &[&node],
            )
            .await?
            .try_get(0)?;
        let share = (partitions + live - 1) / live.max(1);
        // Renew what is still ours.
        tx.execute(
            "UPDATE partition_leases SET expires_at = clock_timestamp() + $2::bigint * interval '1 microsecond' \
             WHERE owner = $1 AND expires_at > clock_timestamp()",
            &[&node, &ttl],
        )
        .await?;
        // Give back the partitions beyond the share, the highest first (their epoch stays:
        // the next owner increments it).
        tx.execute(
            "UPDATE partition_leases SET owner = NULL, expires_at = NULL WHERE partition IN ( \
               SELECT partition FROM partition_leases \
               WHERE owner = $1 AND expires_at > clock_timestamp() \
               ORDER BY partition OFFSET $2 FOR UPDATE)",
            &[&node, &share],
        )
        .await?;
        let held: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM partition_leases WHERE owner = $1 AND expires_at > clock_timestamp()",
                &[&node],
            )
            .await?
            .try_get(0)?;
        // Take free or expired ones up to the share; rows another node is taking right
        // now are skipped, not waited for.
        tx.execute(
            "UPDATE partition_leases SET owner = $1, epoch = epoch + 1, \
             expires_at = clock_timestamp() + $2::bigint * interval '1 microsecond' \
             WHERE partition IN ( \
               SELECT partition FROM partition_leases \
               WHERE owner IS NULL OR expires_at <= clock_timestamp() \
               ORDER BY partition LIMIT $3 FOR UPDATE SKIP LOCKED)",
            &[&node, &ttl, &(share - held).max(0)],
        )
        .await?;
        let leases = tx
            .query(
                "SELECT partition, epoch FROM partition_leases \
                 WHERE owner = $1 AND expires_at > clock_timestamp() ORDER BY partition",
                &[&node],
            )
            .await?
            .iter()
            .map(|r| -> Result<Lease> {
                let partition: i32 = r.try_get(0)?;
                Ok(Lease {
                    partition: u32::try_from(partition)?,
                    epoch: r.try_get(1)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(leases)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_db::TestDb;
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    fn partitions(leases: &[Lease]) -> Vec<u32> {
        leases.iter().map(|l| l.partition).collect()
    }

    /// Nodes share the partitions fairly, a node joining takes its share from the
    /// others, and the count a cluster was created with cannot change.
    #[tokio::test]
    async fn nodes_share_the_partitions_and_a_new_node_gets_its_share() {
        let db = TestDb::create().await;
        let store = PgStore::connect(db.url(), 4).await.expect("connect");
        assert_eq!(store.cluster_partitions(8).await.expect("create"), 8);
        assert_eq!(store.cluster_partitions(8).await.expect("same"), 8);
        let err = store.cluster_partitions(16).await.expect_err("refused");
        assert!(err.to_string().contains("created with 8"), "{err}");

        store.heartbeat("a", TTL).await.expect("a alive");
        let a = store.balance("a", TTL).await.expect("a");
        assert_eq!(
            partitions(&a),
            (0..8).collect::<Vec<_>>(),
            "alone, a takes all"
        );
        assert!(a.iter().all(|l| l.epoch == 1));

        store.heartbeat("b", TTL).await.expect("b alive");
        let b = store.balance("b", TTL).await.expect("b");
        assert!(
            b.is_empty(),
            "nothing is free until a gives some back: {b:?}"
        );
        let a = store.balance("a", TTL).await.expect("a gives back");
        assert_eq!(partitions(&a), [0, 1, 2, 3]);
        let b = store.balance("b", TTL).await.expect("b takes");
        assert_eq!(partitions(&b), [4, 5, 6, 7]);
        assert!(
            b.iter().all(|l| l.epoch == 2),
            "a new owner, a new epoch: {b:?}"
        );
        assert_eq!(
            store.balance("a", TTL).await.expect("steady"),
            a,
            "renewal keeps epochs"
        );
    }

    /// A node that stops renewing loses its partitions once its lease is past, and a
    /// commit guarded by its old epoch fails even when it comes back.
    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_old_owner_is_fenced() {
        let db = TestDb::create().await;
        let store = PgStore::connect(db.url(), 4).await.expect("connect");
        store.cluster_partitions(2).await.expect("create");
        let short = Duration::from_millis(300);
        store.heartbeat("a", short).await.expect("a alive");
        let a = store.balance("a", short).await.expect("a");
        assert_eq!(partitions(&a), [0, 1]);

        // A commit under a's lease passes while it holds.
        {
            let mut client = store.client().await.expect("client");
            let tx = client.transaction().await.expect("tx");
            check_epoch(&*tx, a[0])
                .await
                .expect("a still owns partition 0");
            tx.commit().await.expect("commit");
        }

        // a stops (paused, cut off); its lease runs out; b takes everything.
        tokio::time::sleep(Duration::from_millis(400)).await;
        store.heartbeat("b", TTL).await.expect("b alive");
        let b = store.balance("b", TTL).await.expect("b");
        assert_eq!(partitions(&b), [0, 1], "b takes the expired partitions");
        assert!(b[0].epoch > a[0].epoch);

        // a comes back and tries to commit for partition 0 with what it held.
        let mut client = store.client().await.expect("client");
        let tx = client.transaction().await.expect("tx");
        let err = check_epoch(&*tx, a[0]).await.expect_err("fenced");
        assert!(err.to_string().contains("no longer this node's"), "{err}");
        drop(tx);
        // And balancing tells it so: it holds nothing until b gives some back.
        assert!(store.balance("a", TTL).await.expect("a again").is_empty());
    }
}

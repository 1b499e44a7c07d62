//! The PostgreSQL backend (issue 24, the cluster's store), being built one concern at a
//! time: today it keeps journeys with their versions ([`JourneyStore`](crate::store::JourneyStore)),
//! audience runs ([`RunStore`](crate::store::RunStore)), message templates
//! ([`TemplateStore`](crate::store::TemplateStore)), alert rules
//! ([`AlertStore`](crate::store::AlertStore)), consent and suppressions
//! ([`ConsentStore`](crate::store::ConsentStore)) and the messages providers accepted
//! ([`DeliveryStore`](crate::store::DeliveryStore)) or kept in the outbox
//! ([`OutboxStore`](crate::store::OutboxStore)), and passes their conformance cases; it
//! also keeps the partition leases with their fencing epochs (`leases.rs`). The other
//! concerns and the partition queues follow (docs/cluster.md says what is built and what
//! is planned). `parcours serve` does not offer it until it implements every trait of
//! [`Store`](crate::store::Store).
//!
//! Owns its connection pool and its schema (`schema.rs`, migrated at connect under an
//! advisory lock, so that several nodes starting together migrate once). Every method
//! that writes returns only after its transaction committed. It never interprets
//! journeys and never imports the runtime, as the SQLite backend does not.

mod alerts;
mod consent;
mod deliveries;
mod journeys;
pub mod leases;
mod outbox;
mod runs;
mod schema;
mod templates;
#[cfg(test)]
pub(crate) mod test_db;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::store::Result;

pub use schema::SCHEMA_VERSION;

/// A PostgreSQL database as the engine's store.
pub struct PgStore {
    pool: Pool,
}

impl PgStore {
    /// Connects to the database `url` names (`postgres://user@host:port/database`, or
    /// libpq's `key=value` form), with at most `connections` open at once, and creates or
    /// migrates its schema.
    pub async fn connect(url: &str, connections: usize) -> Result<PgStore> {
        // The string itself is not repeated: it may hold a password.
        let config: tokio_postgres::Config = url
            .parse()
            .context("the PostgreSQL connection string does not parse")?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .build()
            .context("PostgreSQL connection pool")?;
        let store = PgStore { pool };
        let mut client = store.client().await.with_context(|| redacted(url))?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.context("connecting to PostgreSQL")
    }

    /// Every row `sql` answers, each read by `read`.
    async fn rows<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        read: impl Fn(&Row) -> Result<T> + Send,
    ) -> Result<Vec<T>> {
        self.client()
            .await?
            .query(sql, params)
            .await?
            .iter()
            .map(read)
            .collect()
    }

    /// The row `sql` answers, if any, read by `read`.
    async fn row<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        read: impl Fn(&Row) -> Result<T> + Send,
    ) -> Result<Option<T>> {
        self.client()
            .await?
            .query_opt(sql, params)
            .await?
            .as_ref()
            .map(read)
            .transpose()
    }

    /// Runs one statement; the rows it changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        Ok(self.client().await?.execute(sql, params).await?)
    }
}

/// Column `idx` of `row`, microseconds since the Unix epoch, as a time.
fn time(row: &Row, idx: usize) -> Result<jiff::Timestamp> {
    Ok(jiff::Timestamp::from_microsecond(row.try_get(idx)?)?)
}

/// `url` without its password, for messages (`url` parses: `connect` checked it).
fn redacted(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(c) if c.get_password().is_some() => {
            let user = c.get_user().unwrap_or_default();
            let hosts: Vec<String> = c
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            format!(
                "PostgreSQL {user}:(hidden)@{} database {}",
                hosts.join(","),
                c.get_dbname().unwrap_or_default()
            )
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::test_db::TestDb;
    use super::*;

    /// The concerns built so far pass their conformance cases, each case on a new
    /// database.
    #[tokio::test]
    async fn the_postgres_store_passes_the_conformance_cases_of_its_concerns() {
        use crate::store::conformance::{RESOURCE_CASES, run_case};
        for (name, case) in RESOURCE_CASES {
            let db = TestDb::create().await;
            let store = Arc::new(PgStore::connect(db.url(), 4).await.expect("connect"));
            run_case(name, case(store)).await;
        }
    }

    /// Nodes starting together migrate the schema once; a later start finds it current;
    /// a database of a newer schema is refused with a message that says so.
    #[tokio::test]
    async fn the_schema_is_migrated_once_and_a_newer_one_is_refused() {
        let db = TestDb::create().await;
        let (a, b, c) = tokio::join!(
            PgStore::connect(db.url(), 2),
            PgStore::connect(db.url(), 2),
            PgStore::connect(db.url(), 2),
        );
        let store = a.expect("first");
        b.expect("second");
        c.expect("third");
        let client = store.client().await.expect("client");
        let version: i32 = client
            .query_one("SELECT version FROM parcours_schema", &[])
            .await
            .expect("version")
            .get(0);
        assert_eq!(i64::from(version), SCHEMA_VERSION);
        client
            .execute("UPDATE parcours_schema SET version = version + 1", &[])
            .await
            .expect("pretend a newer release");
        let err = PgStore::connect(db.url(), 1)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("newer"), "{err}");
    }

    #[tokio::test]
    async fn a_password_never_reaches_a_message() {
        let shown = redacted("postgres://app:s3cret@db.example:5432/parcours");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:(hidden)@db.example"), "{shown}");
        let err = PgStore::connect("postgres://app:s3cret@db.example:port/x", 1).await;
        let err = format!("{:#}", err.err().expect("refused"));
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("does not parse"), "{err}");
    }
}

//! The PostgreSQL schema, created or migrated when the store connects.
//!
//! The version lives in `parcours_schema`. Migration runs in one transaction holding a
//! transaction-level advisory lock, so that nodes of a cluster starting together wait
//! for the first one instead of racing its `CREATE TABLE`s; a database written by a newer
//! release is refused, never changed. Times are microseconds since the Unix epoch
//! (`bigint`), as in the SQLite backend; documents are `json`, kept as written (the keys'
/// order is part of what the API answers, and `jsonb` would sort them); ids compare byte by byte
/// (`COLLATE "C"`), so that lists come in the order SQLite gives them, whatever the
/// database's locale.
use anyhow::bail;

use crate::store::Result;

/// The schema this release writes.
pub const SCHEMA_VERSION: i64 = 1;

/// The advisory lock key of migrations (any constant no other lock of the engine uses).
const MIGRATION_LOCK: i64 = 0x7061_7263_6f75_7273; // "parcours"

const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS templates (
    id          text COLLATE "C" NOT NULL,
    version     integer NOT NULL,
    definition  json NOT NULL,
    created_at  bigint NOT NULL,
    PRIMARY KEY (id, version)
);

CREATE TABLE IF NOT EXISTS journeys (
    id          text COLLATE "C" PRIMARY KEY,
    draft       json,
    status      text NOT NULL,
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL,
    pause       json,
    test        json
);

CREATE TABLE IF NOT EXISTS journey_versions (
    journey_id   text COLLATE "C" NOT NULL,
    version      integer NOT NULL,
    definition   json NOT NULL,
    published_at bigint NOT NULL,
    published_by text,
    note         text,
    split_hash   text NOT NULL,
    PRIMARY KEY (journey_id, version)
);

-- Entries a paused journey holds, in holding order.
CREATE TABLE IF NOT EXISTS held_entries (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    journey_id  text COLLATE "C" NOT NULL,
    profile_id  text NOT NULL,
    entry       json NOT NULL
);
CREATE INDEX IF NOT EXISTS held_entries_journey ON held_entries (journey_id, seq);

CREATE TABLE IF NOT EXISTS business_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    ts          bigint NOT NULL,
    received_at bigint NOT NULL,
    data        json NOT NULL
);

-- `seq` orders runs scheduled at the same time by creation.
CREATE TABLE IF NOT EXISTS runs (
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    id           text COLLATE "C" PRIMARY KEY,
    journey_id   text COLLATE "C" NOT NULL,
    kind         text NOT NULL,
    status       text NOT NULL,
    scheduled_at bigint NOT NULL,
    record       json NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_journey ON runs (journey_id, scheduled_at);
CREATE INDEX IF NOT EXISTS runs_open ON runs (status) WHERE status = 'running';

CREATE TABLE IF NOT EXISTS subscription_groups (
    id          text COLLATE "C" PRIMARY KEY,
    definition  json NOT NULL,
    updated_at  bigint NOT NULL
);

-- A profile's consent changes in commit order (written by partition commits).
CREATE TABLE IF NOT EXISTS consent_changes (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id  text NOT NULL,
    grp         text NOT NULL,
    subscribed  boolean,
    source      text NOT NULL,
    message_id  text,
    at          bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS consent_changes_profile ON consent_changes (profile_id, seq);

CREATE TABLE IF NOT EXISTS suppressions (
    address     text COLLATE "C" PRIMARY KEY,
    reason      text NOT NULL,
    source      text NOT NULL,
    at          bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS sent_messages (
    message_id  text PRIMARY KEY,
    profile_id  text NOT NULL,
    journey_id  text NOT NULL,
    instance_id text NOT NULL,
    node_id     text NOT NULL,
    channel     text NOT NULL,
    provider    text NOT NULL,
    to_address  text NOT NULL,
    at          bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_messages_profile ON sent_messages (profile_id);

CREATE TABLE IF NOT EXISTS secrets (
    name        text PRIMARY KEY,
    value       bytea NOT NULL
);

-- What the `outbox` provider kept, in the order it kept them.
CREATE TABLE IF NOT EXISTS outbox (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id       text NOT NULL UNIQUE,
    profile_id       text NOT NULL,
    channel          text NOT NULL,
    to_address       text NOT NULL,
    journey_id       text NOT NULL,
    node_id          text NOT NULL,
    template         text NOT NULL,
    template_version integer NOT NULL,
    locale           text NOT NULL,
    message          json NOT NULL,
    at               bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_profile ON outbox (profile_id, seq);

-- The cluster: its partition count (fixed when the first node creates it), its nodes
-- and who holds each partition, until when, under which epoch (`leases.rs`).
CREATE TABLE IF NOT EXISTS cluster (
    id          integer PRIMARY KEY CHECK (id = 1),
    partitions  integer NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_nodes (
    id          text PRIMARY KEY,
    seen_at     timestamptz NOT NULL,
    alive_until timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS partition_leases (
    partition   integer PRIMARY KEY,
    owner       text,
    epoch       bigint NOT NULL DEFAULT 0,
    expires_at  timestamptz
);

CREATE TABLE IF NOT EXISTS alerts (
    id          text COLLATE "C" PRIMARY KEY,
    definition  json NOT NULL,
    state       json,
    updated_at  bigint NOT NULL
);
"#;

/// Creates or checks the schema.
pub async fn migrate(client: &mut deadpool_postgres::Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS parcours_schema (
             id       integer PRIMARY KEY CHECK (id = 1),
             version  integer NOT NULL
         )",
    )
    .await?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM parcours_schema", &[])
        .await?
        .map(|row| row.get(0));
    if let Some(version) = found
        && i64::from(version) > SCHEMA_VERSION
    {
        bail!(
            "the PostgreSQL database has schema version {version}, newer than this release's \
             {SCHEMA_VERSION}: it was written by a newer Parcours; run that release (or \
             restore a backup taken before the upgrade)"
        );
    }
    tx.batch_execute(DDL).await?;
    let version = i32::try_from(SCHEMA_VERSION)?;
    tx.execute(
        "INSERT INTO parcours_schema (id, version) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        &[&version],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

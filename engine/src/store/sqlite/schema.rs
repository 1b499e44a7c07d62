//! The SQLite schema and connection settings.

use rusqlite::Connection;

/// Bumped when the schema changes; stored in `PRAGMA user_version`.
/// 6: message templates and the outbox (new tables: older databases gain them at start).
/// 7: subscription groups, consent changes, the suppression list, the link secret, the
/// messages providers accepted (new tables).
/// 8: step groups hold an activation's event-less steps too (`no_event`) and omit a step's
/// time when it is its row's: nothing to migrate, but an engine of 7 could not read them.
/// 9: a profile's instances are indexed by journey, version and entry time
/// (`instances_entries`, built at start from the instances) and its live ones apart
/// (`instances_live_profile`): a batch's read no longer grows with profiles' histories.
/// 10: which events are processed is recorded per commit (`event_marks`, folded into
/// `event_scan` and `event_holes`, `marks.rs`), not per event: the `processed` column and
/// its index go (their content migrated at start).
pub const SCHEMA_VERSION: i64 = 10;

const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    profile_id  TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_profile ON events(profile_id);

-- Which events are processed (schema 10, `marks.rs`): a row per commit that processed
-- events, listing their seqs (a JSON array), until a fold moves the scan position past
-- them and files the events no mark listed as holes.
CREATE TABLE IF NOT EXISTS event_marks (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    seqs        TEXT NOT NULL
);
-- Every event at or before `upto` is processed, but the holes.
CREATE TABLE IF NOT EXISTS event_scan (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    upto        INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS event_holes (
    seq         INTEGER PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS profiles (
    id          TEXT PRIMARY KEY,
    attributes  TEXT NOT NULL,
    timezone    TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS instances (
    id          TEXT PRIMARY KEY,
    journey_id  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    profile_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    node        TEXT,
    entered_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    wake_at     INTEGER,
    deadline    INTEGER NOT NULL,
    end_reason  TEXT,
    data        TEXT NOT NULL
);
-- A profile's instances by journey, version and entry time (schema 9): a batch reads each
-- profile's last entry in each journey version from this index's entries alone, then
-- one row per version, however long the profile's history (`states.rs`).
DROP INDEX IF EXISTS instances_profile;
CREATE INDEX IF NOT EXISTS instances_entries ON instances(profile_id, journey_id, version, entered_at);
-- A profile's live instances (schema 9): an instance created and ended in one commit
-- never enters it, and the batch read does not visit the profile's ended ones.
CREATE INDEX IF NOT EXISTS instances_live_profile ON instances(profile_id) WHERE status IN ('active', 'waiting');
CREATE INDEX IF NOT EXISTS instances_due ON instances(wake_at, id) WHERE wake_at IS NOT NULL;
DROP INDEX IF EXISTS instances_wake;
CREATE INDEX IF NOT EXISTS instances_live ON instances(journey_id) WHERE status IN ('active', 'waiting');

CREATE TABLE IF NOT EXISTS step_groups (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT,
    journey_id  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    profile_id  TEXT NOT NULL,
    event_id    TEXT,
    at          INTEGER NOT NULL,
    steps       TEXT NOT NULL,
    -- The event's `seq` (schema 5): the step groups of an event are found through it,
    -- an index that grows at its right edge, where one on `event_id` took every insert
    -- at a random page.
    event_seq   INTEGER
);
CREATE INDEX IF NOT EXISTS step_groups_instance ON step_groups(instance_id) WHERE instance_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS journeys (
    id          TEXT PRIMARY KEY,
    draft       TEXT,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    pause       TEXT,
    test        TEXT
);

CREATE TABLE IF NOT EXISTS identities (
    namespace   TEXT NOT NULL,
    value       TEXT NOT NULL,
    profile_id  TEXT NOT NULL,
    PRIMARY KEY (namespace, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identities_profile ON identities(profile_id);

CREATE TABLE IF NOT EXISTS audiences (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS audience_members (
    audience    TEXT NOT NULL,
    profile_id  TEXT NOT NULL,
    since       INTEGER NOT NULL,
    PRIMARY KEY (audience, profile_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audience_members_profile ON audience_members(profile_id);

CREATE TABLE IF NOT EXISTS audience_transitions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    audience    TEXT NOT NULL,
    profile_id  TEXT NOT NULL,
    direction   TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audience_transitions_profile ON audience_transitions(profile_id);

CREATE TABLE IF NOT EXISTS capping_rules (
    id          TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS templates (
    id          TEXT NOT NULL,
    version     INTEGER NOT NULL,
    definition  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (id, version)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS outbox (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id       TEXT NOT NULL UNIQUE,
    profile_id       TEXT NOT NULL,
    channel          TEXT NOT NULL,
    to_address       TEXT NOT NULL,
    journey_id       TEXT NOT NULL,
    node_id          TEXT NOT NULL,
    template         TEXT NOT NULL,
    template_version INTEGER NOT NULL,
    locale           TEXT NOT NULL,
    message          TEXT NOT NULL,
    at               INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_profile ON outbox(profile_id, seq);

CREATE TABLE IF NOT EXISTS subscription_groups (
    id          TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS consent_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    profile_id  TEXT NOT NULL,
    grp         TEXT NOT NULL,
    subscribed  INTEGER,
    source      TEXT NOT NULL,
    message_id  TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS consent_changes_profile ON consent_changes(profile_id, seq);

CREATE TABLE IF NOT EXISTS suppressions (
    address     TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    source      TEXT NOT NULL,
    at          INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS sent_messages (
    message_id  TEXT PRIMARY KEY,
    profile_id  TEXT NOT NULL,
    journey_id  TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    channel     TEXT NOT NULL,
    provider    TEXT NOT NULL,
    to_address  TEXT NOT NULL,
    at          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sent_messages_profile ON sent_messages(profile_id);

CREATE TABLE IF NOT EXISTS secrets (
    name        TEXT PRIMARY KEY,
    value       BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS capping_entries (
    profile_id  TEXT NOT NULL,
    rule        TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS capping_entries_profile ON capping_entries(profile_id);

CREATE TABLE IF NOT EXISTS business_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    data        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    journey_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_journey ON runs(journey_id, scheduled_at);
CREATE INDEX IF NOT EXISTS runs_open ON runs(status) WHERE status = 'running';

CREATE TABLE IF NOT EXISTS journey_versions (
    journey_id   TEXT NOT NULL,
    version      INTEGER NOT NULL,
    definition   TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    published_by TEXT,
    note         TEXT,
    split_hash   TEXT,
    PRIMARY KEY (journey_id, version)
);

CREATE TABLE IF NOT EXISTS held_entries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    journey_id  TEXT NOT NULL,
    profile_id  TEXT NOT NULL,
    entry       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS held_entries_journey ON held_entries(journey_id, seq);

CREATE TABLE IF NOT EXISTS node_counts (
    journey_id  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    node        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    hour        INTEGER NOT NULL,
    status      TEXT NOT NULL,
    code        TEXT NOT NULL,
    branch      TEXT NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (journey_id, version, node, hour, status, code, branch)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS alerts (
    id          TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    state       TEXT,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS split_assignments (
    journey_id  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    node        TEXT NOT NULL,
    branch      TEXT NOT NULL,
    profile_id  TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS split_assignments_journey ON split_assignments(journey_id);

CREATE TABLE IF NOT EXISTS profile_merges (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    merge       TEXT NOT NULL
);
"#;

/// Columns added after a table was first created: (table, column, declaration).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("journeys", "pause", "TEXT"),
    ("journeys", "test", "TEXT"),
    ("journey_versions", "published_by", "TEXT"),
    ("journey_versions", "note", "TEXT"),
    // NULL for versions published before it: they keep FNV-1a (`ids::SplitHash`).
    ("journey_versions", "split_hash", "TEXT"),
    ("step_groups", "event_seq", "INTEGER"),
];

/// What needs the columns above (created after them on an older database).
const AFTER_COLUMNS: &str = "CREATE INDEX IF NOT EXISTS step_groups_event_seq \
     ON step_groups(event_seq) WHERE event_seq IS NOT NULL;";

/// How long a connection waits for a lock another connection holds.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Settings every connection gets.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk (fsync of the WAL) before it is acknowledged.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Content a write removes or replaces (an erased profile's data) is zeroed on the
    // pages it leaves, where that costs no extra I/O, rather than left in free space.
    conn.pragma_update(None, "secure_delete", "FAST")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// Creates or checks the schema.
pub fn migrate(conn: &Connection) -> anyhow::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        anyhow::bail!(
            "the database has schema version {version}, newer than this engine's {SCHEMA_VERSION}"
        );
    }
    conn.execute_batch(DDL)?;
    for (table, column, decl) in ADDED_COLUMNS {
        let exists: bool = conn.query_row(
            &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
            [column],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !exists {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    if version < 3 {
        super::steps::migrate_rows(conn)?;
    }
    if version < 5 {
        // Step groups found by their event's seq rather than its id.
        conn.execute_batch(
            "UPDATE step_groups SET event_seq = \
               (SELECT seq FROM events WHERE events.id = step_groups.event_id) \
             WHERE event_id IS NOT NULL AND event_seq IS NULL;
             DROP INDEX IF EXISTS step_groups_event;",
        )?;
    }
    conn.execute_batch(AFTER_COLUMNS)?;
    if version < 10 {
        super::marks::migrate_column(conn)?;
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

/// Whether the database has an index named `name` (for the migrations' tests).
#[cfg(test)]
pub(super) fn has_index(conn: &Connection, name: &str) -> bool {
    conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1")
        .and_then(|mut q| q.exists([name]))
        .expect("sqlite_master")
}

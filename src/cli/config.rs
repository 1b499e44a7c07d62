//! The effective settings of `parcours serve`, in layers: the defaults < a TOML file
//! (`--config`, `PARCOURS_CONFIG`) < the environment (`PARCOURS_<KEY>`) < flags; where
//! each value came from; `parcours config show` and `parcours config reference`.
//!
//! Owns reading the file and the environment into `Settings` (unknown keys refused with
//! their location) and the reference of every setting, generated from the settings' JSON
//! Schema and the flag table below. Must never hold a setting's meaning or default: those
//! are `engine/src/settings.rs`'s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use parcours_engine::Settings;
use serde_json::{Map, Value, json};

/// The flags that set settings, shared by `serve` and `config show`.
#[derive(Args, Default, Clone)]
pub struct SettingsArgs {
    /// A TOML file of settings (the keys of docs/configuration.md, `[plugins]` and
    /// `[expr]` as tables); the environment and flags override it.
    #[arg(long, value_name = "FILE", env = "PARCOURS_CONFIG")]
    pub config: Option<PathBuf>,
    /// SQLite database file (created if missing; default `parcours.db`).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Address to listen on, `HOST:PORT` (an IP address or a host name such as
    /// `localhost:8080`; port 0 picks a free port; default `127.0.0.1:8080`).
    #[arg(long)]
    listen: Option<String>,
    /// A Segment write key accepted by `/v1/segment/*` (repeatable).
    #[arg(long = "segment-write-key", value_name = "KEY")]
    segment_write_keys: Option<Vec<String>>,
    /// Let an uploaded plugin package read the secrets it declares, `NAME=DIGEST`
    /// (repeatable; the digest is the `package_digest` that `plugin inspect`, the plugin
    /// API and a refused upload show). Plugins from `--plugins` folders need none.
    #[arg(long = "secret-grant", value_name = "NAME=DIGEST", value_parser = name_digest)]
    secret_grants: Vec<(String, String)>,
    /// An internal network plugins may reach over HTTP, as CIDR (`127.0.0.0/8`,
    /// `10.20.0.0/16`; repeatable). Loopback, private, link-local (cloud metadata) and
    /// other internal addresses are refused by default, checked after DNS resolution.
    #[arg(long = "plugin-allow-network", value_name = "CIDR")]
    plugin_allow_networks: Option<Vec<ipnet::IpNet>>,
    /// Install the plugins of this folder at start (repeatable; `--examples` adds the
    /// first-party plugins).
    #[arg(long = "plugins", value_name = "DIR")]
    plugin_dirs: Option<Vec<PathBuf>>,
    /// Where compiled plugins are cached (default: `<db>.plugin-cache`).
    #[arg(long)]
    plugin_cache: Option<PathBuf>,
    /// Number of partitions.
    #[arg(long)]
    partitions: Option<usize>,
    /// Lanes of a partition batch: profiles stepped at once, the action calls one
    /// batch waits for at once (up to `action_wait_ms` each).
    #[arg(long)]
    partition_lanes: Option<usize>,
    /// Largest request body, in bytes.
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// HTTP connections open at once; more are closed at once (keep it under the
    /// open-file limit, with about 100 to spare).
    #[arg(long)]
    http_max_connections: Option<usize>,
    /// Seconds a connection has to send a complete request head (new or idle).
    #[arg(long)]
    http_header_timeout_seconds: Option<u64>,
    /// Seconds a request has to send its whole body.
    #[arg(long)]
    http_body_timeout_seconds: Option<u64>,
    /// At SIGTERM or Ctrl-C, how long the partitions get to commit the work they hold
    /// once the server has stopped accepting (default 20).
    #[arg(long)]
    shutdown_grace_seconds: Option<u64>,
    /// Largest single event, in bytes.
    #[arg(long)]
    max_event_bytes: Option<usize>,
    /// Most events in one batch request.
    #[arg(long)]
    max_batch_events: Option<usize>,
    /// Largest journey definition, in bytes.
    #[arg(long)]
    max_journey_bytes: Option<usize>,
    /// Most nodes in one journey.
    #[arg(long)]
    max_journey_nodes: Option<usize>,
    /// Most nodes an instance may pass in one activation (without a wait or reaction);
    /// validation refuses journeys with a longer path.
    #[arg(long)]
    max_steps_per_activation: Option<u32>,
    /// How often alert rules are evaluated, in seconds (an alert reacts at most this long
    /// after its condition holds).
    #[arg(long)]
    alert_check_seconds: Option<u64>,
    /// Operations one expression evaluation may perform.
    #[arg(long)]
    expr_max_operations: Option<u64>,
    /// The API tokens file (`parcours token create`; default `<db>.tokens.json`). When it
    /// holds a token, every request but `/healthz` needs one of the right scope.
    #[arg(long = "tokens", value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// Calls per second of an action, `NAME=RATE` (repeatable); calls over it wait in
    /// their instances.
    #[arg(long = "action-rate", value_name = "NAME=RATE", value_parser = key_number::<f64>)]
    action_rates: Vec<(String, f64)>,
    /// Calls of an action running at once, `NAME=N` (repeatable).
    #[arg(long = "action-concurrency", value_name = "NAME=N", value_parser = key_number::<u32>)]
    action_concurrency: Vec<(String, u32)>,
    /// Action calls per second to a host (an action's `url` parameter), `HOST=RATE`.
    #[arg(long = "host-rate", value_name = "HOST=RATE", value_parser = key_number::<f64>)]
    host_rates: Vec<(String, f64)>,
    /// Action calls running at once to a host, `HOST=N`.
    #[arg(long = "host-concurrency", value_name = "HOST=N", value_parser = key_number::<u32>)]
    host_concurrency: Vec<(String, u32)>,
}

/// One flag per setting: the field, the flag as written, the setting's key.
macro_rules! setting_flags {
    ($($field:ident: $flag:literal => $key:literal,)*) => {
        /// Which flag sets which setting, for the reference (settings set by several
        /// flags, such as `action_limits`, are listed in `MAP_FLAGS`).
        const FLAGS: &[(&str, &str)] = &[$(($key, $flag)),*];

        impl SettingsArgs {
            /// The settings given as flags: flag, key, value.
            fn given(&self) -> Vec<(&'static str, &'static str, Value)> {
                let mut given = Vec::new();
                $(
                    if let Some(v) = &self.$field {
                        given.push(($flag, $key, serde_json::to_value(v).unwrap_or(Value::Null)));
                    }
                )*
                given
            }
        }
    };
}

setting_flags! {
    db: "--db" => "db_path",
    listen: "--listen" => "listen",
    segment_write_keys: "--segment-write-key" => "segment_write_keys",
    plugin_allow_networks: "--plugin-allow-network" => "plugins.allow_internal_networks",
    plugin_dirs: "--plugins" => "plugin_dirs",
    plugin_cache: "--plugin-cache" => "plugins.cache_dir",
    partitions: "--partitions" => "partitions",
    partition_lanes: "--partition-lanes" => "partition_lanes",
    max_body_bytes: "--max-body-bytes" => "max_body_bytes",
    http_max_connections: "--http-max-connections" => "http_max_connections",
    http_header_timeout_seconds: "--http-header-timeout-seconds" => "http_header_timeout_seconds",
    http_body_timeout_seconds: "--http-body-timeout-seconds" => "http_body_timeout_seconds",
    shutdown_grace_seconds: "--shutdown-grace-seconds" => "shutdown_grace_seconds",
    max_event_bytes: "--max-event-bytes" => "max_event_bytes",
    max_batch_events: "--max-batch-events" => "max_batch_events",
    max_journey_bytes: "--max-journey-bytes" => "max_journey_bytes",
    max_journey_nodes: "--max-journey-nodes" => "max_journey_nodes",
    max_steps_per_activation: "--max-steps-per-activation" => "max_steps_per_activation",
    alert_check_seconds: "--alert-check-seconds" => "alert_check_seconds",
    expr_max_operations: "--expr-max-operations" => "expr.max_operations",
    tokens: "--tokens" => "tokens_file",
}

/// Settings that several repeatable `NAME=VALUE` flags fill in.
const MAP_FLAGS: &[(&str, &str)] = &[
    ("plugins.secret_grants", "`--secret-grant NAME=DIGEST`"),
    (
        "action_limits",
        "`--action-rate NAME=RATE`, `--action-concurrency NAME=N`",
    ),
    (
        "host_limits",
        "`--host-rate HOST=RATE`, `--host-concurrency HOST=N`",
    ),
];

/// Environment variables kept from earlier releases beside the `PARCOURS_<KEY>` names:
/// the variable, the key, and how its text reads.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("PARCOURS_DB", "db_path"),
    ("PARCOURS_PLUGIN_CACHE", "plugins.cache_dir"),
    (
        "PARCOURS_PLUGIN_ALLOW_NETWORKS",
        "plugins.allow_internal_networks",
    ),
    ("PARCOURS_PLUGIN_SECRET_GRANTS", "plugins.secret_grants"),
];

/// Settings that hold secrets: `config show` prints how many, not what.
const SECRET_KEYS: &[&str] = &["segment_write_keys"];

/// A URL with its password (`scheme://user:password@host`) hidden.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:(hidden)@{host}")
        }
        _ => url.to_string(),
    }
}

/// Settings that must be at least 1.
const AT_LEAST_ONE: &[&str] = &[
    "partitions",
    "partition_lanes",
    "partition_batch",
    "max_calls_in_flight",
    "http_max_connections",
    "http_header_timeout_seconds",
    "http_body_timeout_seconds",
    "max_steps_per_activation",
    "alert_check_seconds",
    "timer_batch",
    "store_commit_batch",
    "store_readers",
    "parse_workers",
    "plugins.max_concurrent_calls",
    "plugins.epoch_tick_ms",
];

/// Defaults that depend on another setting or on the machine, as the reference says them.
const DERIVED_DEFAULTS: &[(&str, &str)] = &[
    ("plugins.cache_dir", "`<db_path>.plugin-cache`"),
    ("tokens_file", "`<db_path>.tokens.json`"),
    ("parse_workers", "the machine's cores"),
];

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Default,
    /// Computed from another setting (`plugins.cache_dir` from `db_path`).
    Derived(&'static str),
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Derived(from) => write!(f, "default, from {from}"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Env(name) => write!(f, "environment {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// The settings in effect, with the origin of each.
pub struct Resolved {
    pub settings: Settings,
    /// Every setting's value, as the file would spell it.
    tree: Value,
    origins: BTreeMap<String, Origin>,
}

/// The settings' default values, as a file would spell them.
fn defaults() -> Value {
    serde_json::to_value(Settings::default()).unwrap_or(Value::Null)
}

/// Whether a value is a table of named settings (recursed into), rather than one setting
/// (a scalar, a list, or a map whose keys the user chooses, empty by default).
fn is_table(default: &Value) -> bool {
    matches!(default, Value::Object(m) if !m.is_empty())
}

/// Every setting of `tree` as (path, value), in the order of the settings type.
fn leaves(tree: &Value) -> Vec<(Vec<String>, Value)> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
        match v {
            Value::Object(m) if is_table(v) => {
                for (k, child) in m {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => out.push((path.clone(), v.clone())),
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut out);
    out
}

fn key_of(path: &[String]) -> String {
    path.join(".")
}

fn env_name(key: &str) -> String {
    format!("PARCOURS_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// The value at `path`, created (as objects) if missing.
fn slot<'a>(tree: &'a mut Value, path: &[&str]) -> &'a mut Value {
    let mut at = tree;
    for part in path {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        at = match at {
            Value::Object(m) => m.entry(part.to_string()).or_insert(Value::Null),
            _ => unreachable!("made an object above"),
        };
    }
    at
}

/// Lays `file` over `tree`, recording the origin of every setting it sets.
fn overlay(
    tree: &mut Value,
    file: &Map<String, Value>,
    path: &mut Vec<String>,
    origins: &mut BTreeMap<String, Origin>,
    origin: &Origin,
) {
    for (k, v) in file {
        path.push(k.clone());
        let at = slot(tree, &[k.as_str()]);
        match v {
            Value::Object(inner) if is_table(at) => overlay(at, inner, path, origins, origin),
            _ => {
                *at = v.clone();
                origins.insert(key_of(path), origin.clone());
            }
        }
        path.pop();
    }
}

/// An environment variable's text as the value of a setting whose default is `default`.
fn env_value(name: &str, key: &str, text: &str, default: &Value) -> anyhow::Result<Value> {
    let bad = |what: &str| anyhow::anyhow!("environment {name}={text:?}: {key} takes {what}");
    Ok(match default {
        Value::Number(_) => {
            let n: serde_json::Number = text.trim().parse().map_err(|_| bad("a number"))?;
            Value::Number(n)
        }
        Value::Bool(_) => match text.trim() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        Value::Array(_) => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        Value::Object(_)
            if key == "plugins.secret_grants" && !text.trim_start().starts_with('{') =>
        {
            let mut grants: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, digest) = name_digest(item).map_err(|e| bad(&e))?;
                grants.entry(name).or_default().push(digest);
            }
            json!(grants)
        }
        Value::Object(_) => serde_json::from_str(text).map_err(|_| bad("a JSON object"))?,
        Value::Null | Value::String(_) => Value::String(text.to_string()),
    })
}

/// The settings from the defaults, `args.config`, the environment (through `env`) and
/// `args`, in that order of precedence (each overrides the one before).
pub fn resolve(
    args: &SettingsArgs,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Resolved> {
    let defaults = defaults();
    let mut tree = defaults.clone();
    let mut origins: BTreeMap<String, Origin> = leaves(&defaults)
        .into_iter()
        .map(|(path, _)| (key_of(&path), Origin::Default))
        .collect();

    if let Some(file) = &args.config {
        let text = fs_err::read_to_string(file)?;
        // Read as the settings type first: an unknown key or a wrong type is refused at
        // its line and column.
        if let Err(e) = toml::from_str::<Settings>(&text) {
            bail!("{}: {}", file.display(), e.to_string().trim_end());
        }
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("{}: not a TOML table", file.display()))?;
        let Value::Object(values) = serde_json::to_value(table)? else {
            bail!("{}: not a TOML table", file.display());
        };
        overlay(
            &mut tree,
            &values,
            &mut Vec::new(),
            &mut origins,
            &Origin::File(file.clone()),
        );
    }

    for (path, default) in leaves(&defaults) {
        let key = key_of(&path);
        let generic = env_name(&key);
        let aliases = ENV_ALIASES
            .iter()
            .filter(|(_, k)| *k == key)
            .map(|(name, _)| name.to_string());
        // The generic name wins over an alias when both are set.
        for name in aliases.chain(std::iter::once(generic)) {
            if let Some(text) = env(&name) {
                let parts: Vec<&str> = path.iter().map(String::as_str).collect();
                *slot(&mut tree, &parts) = env_value(&name, &key, &text, &default)?;
                origins.insert(key.clone(), Origin::Env(name));
            }
        }
    }

    for (flag, key, value) in args.given() {
        let parts: Vec<&str> = key.split('.').collect();
        *slot(&mut tree, &parts) = value;
        origins.insert(key.to_string(), Origin::Flag(flag));
    }
    for (name, digest) in &args.secret_grants {
        match slot(&mut tree, &["plugins", "secret_grants", name]) {
            Value::Array(list) => list.push(json!(digest)),
            other => *other = json!([digest]),
        }
        origins.insert(
            "plugins.secret_grants".into(),
            Origin::Flag("--secret-grant"),
        );
    }
    // (flag, setting, field, NAME=VALUE pairs given)
    let limits = [
        (
            "--action-rate",
            "action_limits",
            "rate_per_second",
            pairs(&args.action_rates),
        ),
        (
            "--action-concurrency",
            "action_limits",
            "max_concurrent",
            pairs(&args.action_concurrency),
        ),
        (
            "--host-rate",
            "host_limits",
            "rate_per_second",
            pairs(&args.host_rates),
        ),
        (
            "--host-concurrency",
            "host_limits",
            "max_concurrent",
            pairs(&args.host_concurrency),
        ),
    ];
    for (flag, key, field, given) in limits {
        for (name, value) in given {
            *slot(&mut tree, &[key, &name, field]) = value;
            origins.insert(key.to_string(), Origin::Flag(flag));
        }
    }

    let mut settings: Settings = serde_path_to_error::deserialize(tree.clone()).map_err(|e| {
        let key = e.path().to_string();
        // `plugins.allow_internal_networks[1]` came from where the list came from.
        let setting = key.split('[').next().unwrap_or_default();
        let from = origins
            .get(setting)
            .map(|o| format!(" ({o})"))
            .unwrap_or_default();
        anyhow::anyhow!("{key}{from}: {}", e.inner())
    })?;

    for key in AT_LEAST_ONE {
        let parts: Vec<&str> = key.split('.').collect();
        if slot(&mut tree, &parts).as_u64() == Some(0) {
            bail!(
                "{key} ({}): must be at least 1",
                origins.get(*key).unwrap_or(&Origin::Default)
            );
        }
    }
    if !(0.0..=1.0).contains(&settings.action_retry_jitter) {
        bail!(
            "action_retry_jitter ({}): {} is not between 0 and 1",
            origins
                .get("action_retry_jitter")
                .unwrap_or(&Origin::Default),
            settings.action_retry_jitter
        );
    }

    // Defaults that follow the database's path.
    if settings.plugins.cache_dir.is_none() {
        let mut p = settings.db_path.clone().into_os_string();
        p.push(".plugin-cache");
        settings.plugins.cache_dir = Some(PathBuf::from(p));
        tree["plugins"]["cache_dir"] = json!(settings.plugins.cache_dir);
        origins.insert("plugins.cache_dir".into(), Origin::Derived("db_path"));
    }
    if settings.tokens_file.is_none() {
        settings.tokens_file = Some(super::token::default_file(&settings.db_path));
        tree["tokens_file"] = json!(settings.tokens_file);
        origins.insert("tokens_file".into(), Origin::Derived("db_path"));
    }
    Ok(Resolved {
        settings,
        tree,
        origins,
    })
}

/// The database file the settings name (`--db`, the file, the environment), for the
/// commands that work on the file itself (`backup`, `restore`).
pub fn db_path(config: Option<PathBuf>, db: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let args = SettingsArgs {
        config,
        db,
        ..SettingsArgs::default()
    };
    Ok(resolve(&args, |name| std::env::var(name).ok())?
        .settings
        .db_path)
}

fn pairs<T: serde::Serialize>(given: &[(String, T)]) -> Vec<(String, Value)> {
    given
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect()
}

impl Resolved {
    /// Every setting: key, value as text, origin.
    fn rows(&self) -> Vec<(String, Value, &Origin)> {
        // The settings are the defaults' leaves: a map a file filled in is one setting.
        leaves(&defaults())
            .into_iter()
            .map(|(path, _)| {
                let key = key_of(&path);
                let value = path
                    .iter()
                    .try_fold(&self.tree, |at, part| at.get(part))
                    .cloned()
                    .unwrap_or(Value::Null);
                let value = match &value {
                    Value::Array(items) if SECRET_KEYS.contains(&key.as_str()) => {
                        json!(format!("({} hidden)", items.len()))
                    }
                    Value::String(url) if key == "smtp_url" => json!(without_password(url)),
                    _ => value,
                };
                let origin = self.origins.get(&key).unwrap_or(&Origin::Default);
                (key, value, origin)
            })
            .collect()
    }
}

/// `parcours config`.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print every setting in effect and where its value came from (the defaults, the
    /// file, the environment, a flag), with the same flags as `serve`.
    Show {
        #[command(flatten)]
        settings: Box<SettingsArgs>,
        /// One JSON object: `{"key": {"value": ..., "from": "..."}}`.
        #[arg(long)]
        json: bool,
    },
    /// Print the reference of every setting (Markdown): default, environment variable,
    /// flag and meaning, as docs/configuration.md has it.
    Reference {
        /// Print the settings' JSON Schema instead (types, defaults, descriptions).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Show { settings, json } => {
            let resolved = resolve(&settings, |name| std::env::var(name).ok())?;
            let rows = resolved.rows();
            if json {
                let out: Map<String, Value> = rows
                    .into_iter()
                    .map(|(k, v, o)| (k, json!({"value": v, "from": o.to_string()})))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                let mut table = comfy_table::Table::new();
                table.load_preset(comfy_table::presets::NOTHING);
                table.set_header(["setting", "value", "from"]);
                for (key, value, origin) in rows {
                    table.add_row([key, shown(&value), origin.to_string()]);
                }
                println!("{table}");
            }
        }
        ConfigCommand::Reference { json: false } => print!("{}", reference()?),
        ConfigCommand::Reference { json: true } => {
            println!(
                "{}",
                serde_json::to_string(&schemars::schema_for!(Settings))?
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A value as one line of text.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}

/// A default as the reference writes it: sizes in KiB or MiB, thousands separated.
fn default_text(key: &str, value: &Value) -> String {
    if let Some((_, text)) = DERIVED_DEFAULTS.iter().find(|(k, _)| *k == key) {
        return text.to_string();
    }
    match value {
        Value::Number(n) => match n.as_u64() {
            Some(b) if key.ends_with("_bytes") && b >= 1024 && b.is_multiple_of(1024) => {
                if b.is_multiple_of(1 << 20) {
                    format!("{} MiB", thousands(b >> 20))
                } else {
                    format!("{} KiB", thousands(b >> 10))
                }
            }
            Some(n) => thousands(n),
            None => n.to_string(),
        },
        Value::Bool(true) => "on".into(),
        Value::Bool(false) => "off".into(),
        Value::Null => "none".into(),
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Object(m) if m.is_empty() => "none".into(),
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The description of the setting at `path` in the settings' JSON Schema.
fn description(schema: &Value, path: &[String]) -> String {
    let mut node = schema;
    let mut text = None;
    for part in path {
        // Follow `$ref`s into the definitions (the settings' tables).
        while let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/$defs/");
            node = &schema["$defs"][name];
        }
        node = &node["properties"][part];
        text = node.get("description").and_then(Value::as_str);
    }
    text.unwrap_or_default().replace('\n', " ")
}

/// The Markdown reference of every setting.
pub fn reference() -> anyhow::Result<String> {
    let schema = serde_json::to_value(schemars::schema_for!(Settings))?;
    let mut out = String::from(
        "| Setting | Default | Environment | Flag | What it bounds |\n|---|---|---|---|---|\n",
    );
    for (path, default) in leaves(&defaults()) {
        let key = key_of(&path);
        let mut env = vec![format!("`{}`", env_name(&key))];
        env.extend(
            ENV_ALIASES
                .iter()
                .filter(|(_, k)| *k == key)
                .map(|(name, _)| format!("`{name}`")),
        );
        let flag = FLAGS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, f)| format!("`{f}`"))
            .or_else(|| {
                MAP_FLAGS
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, f)| f.to_string())
            })
            .unwrap_or_else(|| "—".into());
        let meaning = description(&schema, &path);
        if meaning.is_empty() {
            bail!("setting {key} has no doc comment in engine/src/settings.rs");
        }
        out.push_str(&format!(
            "| `{key}` | {} | {} | {flag} | {} |\n",
            default_text(&key, &default),
            env.join(", "),
            meaning.replace('|', "\\|"),
        ));
    }
    Ok(out)
}

/// Parses `NAME=DIGEST` (a plugin name and a 64-digit hex package digest).
fn name_digest(s: &str) -> Result<(String, String), String> {
    let (name, digest) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=DIGEST"))?;
    if name.is_empty() {
        return Err(format!("{s:?} has no plugin name before ="));
    }
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{digest:?} is not a package digest (64 hex digits; see `parcours plugin inspect`)"
        ));
    }
    Ok((name.to_string(), digest.to_ascii_lowercase()))
}

/// Parses `KEY=NUMBER`.
fn key_number<T: std::str::FromStr>(s: &str) -> Result<(String, T), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=NUMBER"))?;
    let n = v
        .parse::<T>()
        .map_err(|_| format!("{v:?} is not a number (in {s:?})"))?;
    if k.is_empty() {
        return Err(format!("{s:?} has no name before ="));
    }
    Ok((k.to_string(), n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: SettingsArgs,
    }

    #[test]
    fn an_smtp_password_is_never_shown() {
        assert_eq!(
            without_password("smtps://ann:s3cr3t@mail.example.com:465"),
            "smtps://ann:(hidden)@mail.example.com:465"
        );
        assert_eq!(
            without_password("smtp://127.0.0.1:25"),
            "smtp://127.0.0.1:25"
        );
        assert_eq!(without_password("smtp://ann@host"), "smtp://ann@host");
    }

    fn args(flags: &[&str]) -> SettingsArgs {
        let mut all = vec!["parcours"];
        all.extend_from_slice(flags);
        Cli::parse_from(all).settings
    }

    #[test]
    fn every_flag_in_the_table_is_a_flag_of_the_command() {
        let cmd = <Cli as clap::CommandFactory>::command();
        let longs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        for (key, flag) in FLAGS {
            assert!(longs.contains(&flag.to_string()), "{key}: {flag}");
            assert!(
                leaves(&defaults()).iter().any(|(p, _)| key_of(p) == *key),
                "{flag} sets {key}, which is not a setting"
            );
        }
    }

    #[test]
    fn layers_override_in_order_and_say_where_each_value_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parcours.toml");
        std::fs::write(
            &file,
            "partitions = 3\npartition_lanes = 5\nmax_body_bytes = 1000\n[plugins]\nmax_memory_mb = 256\n[action_limits.webhook]\nrate_per_second = 5.0\n",
        )
        .unwrap();
        let file_arg = file.to_str().unwrap();
        let env = |name: &str| match name {
            "PARCOURS_PARTITION_LANES" => Some("7".to_string()),
            "PARCOURS_MAX_BODY_BYTES" => Some("2000".to_string()),
            _ => None,
        };
        let r = resolve(
            &args(&[
                "--config",
                file_arg,
                "--max-body-bytes",
                "3000",
                "--action-concurrency",
                "webhook=2",
            ]),
            env,
        )
        .unwrap();
        assert_eq!(r.settings.partitions, 3);
        assert_eq!(r.settings.partition_lanes, 7);
        assert_eq!(r.settings.max_body_bytes, 3000);
        assert_eq!(r.settings.plugins.max_memory_mb, 256);
        let limit = r.settings.action_limits["webhook"];
        assert_eq!(limit.rate_per_second, Some(5.0));
        assert_eq!(limit.max_concurrent, Some(2));
        assert_eq!(r.origins["partitions"], Origin::File(file.clone()));
        assert_eq!(
            r.origins["partition_lanes"],
            Origin::Env("PARCOURS_PARTITION_LANES".into())
        );
        assert_eq!(
            r.origins["max_body_bytes"],
            Origin::Flag("--max-body-bytes")
        );
        assert_eq!(r.origins["store_readers"], Origin::Default);
        assert_eq!(r.origins["plugins.cache_dir"], Origin::Derived("db_path"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "partitions = 2\n[plugins]\nmax_memroy_mb = 9\n").unwrap();
        let err = resolve(&args(&["--config", file.to_str().unwrap()]), |_| None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("bad.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("max_memroy_mb"), "{err}");

        let err = resolve(&args(&[]), |n| {
            (n == "PARCOURS_PARTITIONS").then(|| "many".to_string())
        })
        .err()
        .unwrap()
        .to_string();
        assert_eq!(
            err,
            "environment PARCOURS_PARTITIONS=\"many\": partitions takes a number"
        );
        let err = resolve(&args(&["--partitions", "0"]), |_| None)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(err, "partitions (flag --partitions): must be at least 1");
        // Secrets are never read from a file.
        std::fs::write(&file, "[plugins.secrets]\nX = \"y\"\n").unwrap();
        let err = resolve(&args(&["--config", file.to_str().unwrap()]), |_| None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("secrets"), "{err}");
    }

    #[test]
    fn the_reference_describes_every_setting() {
        let text = reference().unwrap();
        assert!(
            text.contains(
                "| `plugins.max_memory_mb` | 1,024 | `PARCOURS_PLUGINS_MAX_MEMORY_MB` | — |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| `max_body_bytes` | 4 MiB | `PARCOURS_MAX_BODY_BYTES` | `--max-body-bytes` |"
            ),
            "{text}"
        );
        assert!(text.contains("`PARCOURS_DB_PATH`, `PARCOURS_DB`"), "{text}");
    }
}

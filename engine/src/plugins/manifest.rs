//! Plugin manifests (`plugin.toml` beside each component), with located errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::check_id;
use crate::model::{Problem, Problems, serde_problem};

/// What a plugin is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Action,
    DataSource,
    Functions,
    /// A channel provider (`parcours:plugin@0.2.0`): sends messages.
    ChannelProvider,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Action => "action",
            Kind::DataSource => "data-source",
            Kind::Functions => "functions",
            Kind::ChannelProvider => "channel-provider",
        }
    }
}

/// A plugin's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name: what journeys write (`webhook`, or `webhook@0.1.0`).
    pub name: String,
    /// `MAJOR.MINOR.PATCH`.
    pub version: String,
    pub kind: Kind,
    #[serde(default)]
    pub description: String,
    /// The component file, relative to the manifest; default `<name>.wasm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub instances: Instances,
    /// Configuration values the plugin reads with `config(key)`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Names of the secrets the plugin reads with `secret(key)`; the operator gives their
    /// values in `PARCOURS_SECRET_<PLUGIN>_<KEY>` (upper case, `-` as `_`).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// JSON Schema of an action's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_schema: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Hosts the plugin may call over HTTP: `api.example.com`, `api.example.com:8443`,
    /// `*.example.com`, or `*` for any. Empty: no outgoing HTTP.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory cap, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Longest time one call may take, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Largest result, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<usize>,
}

/// Whether calls share instances. By default every call runs on a fresh instance, so no
/// call can see what another left in memory; a plugin that opts in to reuse trades that
/// isolation for speed (large Python or JavaScript components instantiate in about a
/// millisecond, and call a warm instance in microseconds).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instances {
    /// Keep warm instances between calls.
    #[serde(default)]
    pub reuse: bool,
    /// Calls one instance serves before it is replaced by a fresh one (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    /// Idle instances kept (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle: Option<u32>,
}

pub const DEFAULT_MAX_CALLS: u32 = 1000;
pub const DEFAULT_MAX_IDLE: u32 = 4;
pub const MAX_MAX_CALLS: u32 = 1_000_000;
pub const MAX_MAX_IDLE: u32 = 64;

/// Upper bounds a manifest may not exceed. (Memory has one maximum, the engine's
/// `plugins.max_memory_mb` setting, checked when the plugin is installed.)
pub const MAX_TIMEOUT_MS: u64 = 300_000;
pub const MAX_OUTPUT_BYTES: usize = 64 << 20;

fn valid_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses and checks a manifest; every problem is located (`limits.memory_mb`).
pub fn parse_manifest(text: &str) -> Result<Manifest, Problems> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| Problems::from(Problem::new("", e.to_string())))?;
    let mut m: Manifest =
        serde_path_to_error::deserialize(de).map_err(|e| Problems::from(serde_problem(e)))?;
    let mut problems = Problems::default();
    if let Err(msg) = check_id(&m.name) {
        problems.push("name", msg);
    }
    if !valid_version(&m.version) {
        problems.push(
            "version",
            format!("{:?} is not MAJOR.MINOR.PATCH", m.version),
        );
    }
    for (i, host) in m.capabilities.allowed_hosts.iter().enumerate() {
        if host.is_empty() || host.contains('/') || host.contains("://") {
            problems.push(
                format!("capabilities.allowed_hosts[{i}]"),
                format!("{host:?} is not a host (like api.example.com, *.example.com or *)"),
            );
        }
    }
    if m.limits.memory_mb == Some(0) {
        problems.push("limits.memory_mb", "0 MiB: a plugin needs at least 1");
    }
    if let Some(ms) = m.limits.timeout_ms
        && !(1..=MAX_TIMEOUT_MS).contains(&ms)
    {
        problems.push(
            "limits.timeout_ms",
            format!("{ms} is not between 1 and {MAX_TIMEOUT_MS}"),
        );
    }
    if let Some(b) = m.limits.max_output_bytes
        && !(1..=MAX_OUTPUT_BYTES).contains(&b)
    {
        problems.push(
            "limits.max_output_bytes",
            format!("{b} is not between 1 and {MAX_OUTPUT_BYTES}"),
        );
    }
    if let Some(n) = m.instances.max_calls
        && !(1..=MAX_MAX_CALLS).contains(&n)
    {
        problems.push(
            "instances.max_calls",
            format!("{n} is not between 1 and {MAX_MAX_CALLS}"),
        );
    }
    if let Some(n) = m.instances.max_idle
        && !(1..=MAX_MAX_IDLE).contains(&n)
    {
        problems.push(
            "instances.max_idle",
            format!("{n} is not between 1 and {MAX_MAX_IDLE}"),
        );
    }
    if !m.instances.reuse && (m.instances.max_calls.is_some() || m.instances.max_idle.is_some()) {
        problems.push(
            "instances",
            "max_calls and max_idle apply only with reuse = true",
        );
    }
    for (i, s) in m.secrets.iter().enumerate() {
        if check_id(s).is_err() {
            problems.push(
                format!("secrets[{i}]"),
                format!("{s:?} is not a valid secret name"),
            );
        }
    }
    match (&m.params_schema, m.kind) {
        (Some(schema), Kind::Action) => {
            if let Err(e) = crate::actions::ParamsSchema::new(schema.clone()) {
                problems.push("params_schema", format!("not a valid JSON Schema: {e}"));
            }
        }
        (Some(_), _) => problems.push(
            "params_schema",
            "only action plugins have a parameter schema",
        ),
        _ => {}
    }
    if m.component.is_none() {
        m.component = Some(format!("{}.wasm", m.name));
    }
    if problems.is_empty() {
        Ok(m)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_manifest_parses_with_defaults() {
        let m =
            parse_manifest("name = \"hook\"\nversion = \"1.2.3\"\nkind = \"action\"\n").unwrap();
        assert_eq!(m.kind, Kind::Action);
        assert_eq!(m.component.as_deref(), Some("hook.wasm"));
    }

    #[test]
    fn bad_manifests_are_located() {
        let e = parse_manifest(
            "name = \"hook\"\nversion = \"1.2\"\nkind = \"action\"\n[limits]\nmemory_mb = 0\n",
        )
        .unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|p| p.path.as_str()).collect();
        assert!(
            paths.contains(&"version") && paths.contains(&"limits.memory_mb"),
            "{e}"
        );
        let e =
            parse_manifest("name = \"hook\"\nversion = \"1.2.3\"\nkind = \"robot\"\n").unwrap_err();
        assert_eq!(e.0[0].path, "kind", "{e}");
        let e = parse_manifest(
            "name = \"hook\"\nversion = \"1.2.3\"\nkind = \"action\"\n[instances]\nreuse = true\nmax_idle = 0\n",
        )
        .unwrap_err();
        assert_eq!(e.0[0].path, "instances.max_idle", "{e}");
        let e = parse_manifest("name = \"f\"\nversion = \"1.2.3\"\nkind = \"functions\"\n[params_schema]\ntype = \"object\"\n").unwrap_err();
        assert_eq!(e.0[0].path, "params_schema", "{e}");
    }
}

//! The plugin author's test harness: one call of one plugin, outside the engine, with its
//! outgoing HTTP answered from recorded exchanges (or sent and recorded), reporting the
//! result, the log lines and the resources used.
//!
//! Runs the same sandbox as the engine (same host, limits and allow-list); it never
//! opens a store or starts a journey.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::PluginHost;
use super::bindings::types::{CallContext, PluginError};
use super::host::{Called, Usage};
use super::manifest::{Kind, parse_manifest};
use super::outbound::{HttpExchange, HttpMode};
use super::registry::PluginRegistry;
use super::state::LogLine;
use crate::actions::ActionRegistry;
use crate::settings::PluginSettings;

/// What to call: `params` for an action, `key` for a data source, `function` and `args`
/// for a functions plugin (`describe` when no function is named), `params` (a message)
/// or `webhook` for a channel provider. `context` overrides
/// the call context's fields (`journey_id`, `profile_id`, `attempt`, ...).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarnessInput {
    #[serde(default)]
    pub params: Option<Value>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub function: Option<String>,
    #[serde(default)]
    pub args: Option<Vec<Value>>,
    #[serde(default)]
    pub context: Option<HarnessContext>,
    /// A channel provider's webhook body to read (`parse-feedback`), instead of a send.
    #[serde(default)]
    pub webhook: Option<String>,
    /// The webhook's content type (`application/json` by default).
    #[serde(default)]
    pub content_type: Option<String>,
}

/// The call context a plugin sees; every field has a test default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HarnessContext {
    pub journey_id: String,
    pub journey_version: u32,
    pub node_id: String,
    pub instance_id: String,
    pub profile_id: String,
    pub attempt: u32,
    pub idempotency_key: String,
}

impl Default for HarnessContext {
    fn default() -> Self {
        HarnessContext {
            journey_id: "test".into(),
            journey_version: 1,
            node_id: "node".into(),
            instance_id: "00000000-0000-7000-8000-000000000000".into(),
            profile_id: "test-profile".into(),
            attempt: 1,
            idempotency_key: "00000000-0000-7000-8000-000000000000:node".into(),
        }
    }
}

/// Where the call's allowed HTTP requests go.
#[derive(Debug, Clone, Default)]
pub enum HarnessHttp {
    /// To the network.
    #[default]
    Live,
    /// Answered from these exchanges (method and URL must match).
    Stubbed(Vec<HttpExchange>),
    /// To the network, and reported so they can be saved as stubs.
    Record,
}

/// What one call gave.
#[derive(Debug, Clone, Serialize)]
pub struct HarnessReport {
    pub plugin: String,
    pub kind: &'static str,
    /// `{"ok": ...}`, `{"error": {"kind", "message"}}` (the plugin's own error),
    /// `{"fault": {"code", "message"}}` (the sandbox stopped it) or `{"refused": {"code",
    /// "message"}}` (the engine would not call it: parameters outside `params_schema`).
    pub outcome: Value,
    pub logs: Vec<LogLine>,
    /// The HTTP exchanges the call made (stubbed or recorded).
    pub http: Vec<HttpExchange>,
    pub usage: HarnessUsage,
}

#[derive(Debug, Clone, Serialize)]
pub struct HarnessUsage {
    /// Time of the call, including instantiation.
    pub duration_us: u64,
    pub memory_peak_bytes: usize,
    pub fuel: u64,
}

impl HarnessReport {
    /// Whether the plugin answered without error.
    pub fn ok(&self) -> Option<&Value> {
        self.outcome.get("ok")
    }
}

/// Loads the plugin of `manifest` (its component beside it) and runs one call.
pub async fn run_once(
    manifest: &Path,
    input: HarnessInput,
    http: HarnessHttp,
    settings: &PluginSettings,
) -> anyhow::Result<HarnessReport> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let parsed =
        parse_manifest(&text).map_err(|p| anyhow::anyhow!("{}:\n{p}", manifest.display()))?;
    let component = manifest
        .parent()
        .unwrap_or(Path::new("."))
        .join(parsed.component.as_deref().unwrap_or_default());
    let bytes = std::fs::read(&component)
        .with_context(|| format!("reading the component {}", component.display()))?;
    let mut settings = settings.clone();
    settings.consume_fuel = true;
    settings.capture_logs = true;
    let mode = Arc::new(match http {
        HarnessHttp::Live => HttpMode::Live,
        HarnessHttp::Stubbed(exchanges) => HttpMode::Stubbed {
            exchanges,
            sent: Default::default(),
        },
        HarnessHttp::Record => HttpMode::Recording {
            sent: Default::default(),
        },
    });
    let host = Arc::new(PluginHost::new(&settings)?);
    let registry = PluginRegistry::with_http(host.clone(), ActionRegistry::default(), mode.clone());
    let plugin = registry
        .install(parsed, bytes, super::Origin::Operator)
        .await
        .map_err(|e| match e {
            // A manifest's problem is the manifest's, located in it.
            super::InstallError::Manifest(_) => anyhow::anyhow!("{}: {e}", manifest.display()),
            _ => anyhow::anyhow!("{}: {e}", component.display()),
        })?;
    let c = input.context.unwrap_or_default();
    let ctx = CallContext {
        journey_id: c.journey_id,
        journey_version: c.journey_version,
        node_id: c.node_id,
        instance_id: c.instance_id,
        profile_id: c.profile_id,
        attempt: c.attempt,
        idempotency_key: c.idempotency_key,
        deadline_unix_ms: (jiff::Timestamp::now().as_millisecond().max(0) as u64)
            .saturating_add(plugin.limits.timeout.as_millis() as u64),
    };
    let target = plugin.target();
    let (outcome, elapsed, usage) = match plugin.manifest.kind {
        Kind::Action => {
            let params = input.params.unwrap_or_else(|| json!({}));
            // The engine checks parameters against the schema before it calls the
            // plugin, and refuses the step without a call: so does the harness.
            if let Some(schema) = &plugin.manifest.params_schema {
                let schema = crate::actions::ParamsSchema::new(schema.clone())
                    .map_err(|e| anyhow::anyhow!("{}: params_schema: {e}", manifest.display()))?;
                if let Err(e) = schema.validate(&params) {
                    let refused = json!({"refused": {
                        "code": crate::code::Code::ActionInvalidInput.as_str(),
                        "message": format!(
                            "params do not match {}@{}'s schema: {e}",
                            plugin.manifest.name, plugin.manifest.version
                        ),
                    }});
                    return Ok(HarnessReport {
                        plugin: format!("{}@{}", plugin.manifest.name, plugin.manifest.version),
                        kind: plugin.manifest.kind.as_str(),
                        outcome: refused,
                        logs: Vec::new(),
                        http: Vec::new(),
                        usage: HarnessUsage {
                            duration_us: 0,
                            memory_peak_bytes: 0,
                            fuel: 0,
                        },
                    });
                }
            }
            outcome(host.invoke(target, ctx, params.to_string()).await, |t| {
                parse_text(t)
            })
        }
        Kind::DataSource => {
            let key = input
                .key
                .context("a data-source call needs a \"key\" in its input")?;
            outcome(host.fetch(target, ctx, key).await, |l| {
                json!({
                    "value": l.value.as_deref().map(parse_text),
                    "ttl_seconds": l.ttl_seconds,
                })
            })
        }
        Kind::Functions => match input.function {
            None => outcome(host.describe(target).await, |sigs| {
                Value::Array(
                    sigs.iter()
                        .map(|s| {
                            json!({"name": s.name, "params": s.params, "returns": s.returns, "description": s.description})
                        })
                        .collect(),
                )
            }),
            Some(name) => {
                let args = Value::Array(input.args.unwrap_or_default()).to_string();
                outcome(host.call_function(target, name, args).await, |t| {
                    parse_text(t)
                })
            }
        },
        Kind::ChannelProvider => match input.webhook {
            Some(body) => {
                let content_type = input
                    .content_type
                    .unwrap_or_else(|| "application/json".into());
                outcome(
                    host.parse_feedback(target, body, content_type).await,
                    |events| {
                        Value::Array(
                            events
                                .iter()
                                .map(|e| {
                                    json!({"kind": e.kind, "message_id": e.message_id,
                                        "at_unix_ms": e.at_unix_ms, "bounce": e.bounce,
                                        "reason": e.reason, "url": e.url})
                                })
                                .collect(),
                        )
                    },
                )
            }
            None => {
                let params = input.params.unwrap_or_else(|| json!({}));
                let message = super::provider::outgoing(&params)
                    .map_err(|e| anyhow::anyhow!("params: {e}"))?;
                let ctx = super::provider::v2_context(&ctx);
                outcome(host.send_message(target, ctx, message).await, |t| {
                    parse_text(t)
                })
            }
        },
    };
    Ok(HarnessReport {
        plugin: format!("{}@{}", plugin.manifest.name, plugin.manifest.version),
        kind: plugin.manifest.kind.as_str(),
        outcome,
        logs: usage.logs,
        http: mode.sent(),
        usage: HarnessUsage {
            duration_us: elapsed.as_micros() as u64,
            memory_peak_bytes: usage.memory_peak_bytes,
            fuel: usage.fuel.unwrap_or(0),
        },
    })
}

/// A JSON answer as JSON, or as the text it is when it does not parse.
fn parse_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn outcome<T>(
    called: Called<T>,
    ok: impl FnOnce(&T) -> Value,
) -> (Value, std::time::Duration, Usage) {
    let value = match &called.result {
        Ok(Ok(v)) => json!({"ok": ok(v)}),
        Ok(Err(e)) => {
            let (kind, message) = match e {
                PluginError::InvalidInput(m) => ("invalid-input", m),
                PluginError::Retryable(m) => ("retryable", m),
                PluginError::Permanent(m) => ("permanent", m),
            };
            json!({"error": {"kind": kind, "message": message}})
        }
        Err(f) => json!({"fault": {"code": f.code, "message": f.message}}),
    };
    (value, called.elapsed, called.usage)
}

//! `parcours plugin new|inspect`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Subcommand, ValueEnum};
use parcours_engine::Settings;
use parcours_engine::actions::ActionRegistry;
use parcours_engine::plugins::{PluginHost, PluginRegistry, parse_manifest};

#[derive(Clone, Copy, ValueEnum)]
pub enum TemplateKind {
    Action,
    DataSource,
    Functions,
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Write a new plugin project from a template.
    New {
        name: String,
        #[arg(long, value_enum, default_value = "action")]
        kind: TemplateKind,
        /// Where to create the project folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Load a component with its manifest and print what it is: kind, version, imports,
    /// exports, limits, schema, functions.
    Inspect {
        /// The manifest (`plugin.toml`); the component is the file it names.
        manifest: PathBuf,
    },
}

pub async fn run(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::New { name, kind, dir } => {
            let project = new_project(&name, kind, &dir)?;
            println!("created {}", project.display());
            println!(
                "build it with: cd {} && cargo build --release --target wasm32-wasip2",
                project.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Inspect { manifest } => {
            let text = std::fs::read_to_string(&manifest)?;
            let parsed = parse_manifest(&text)
                .map_err(|p| anyhow::anyhow!("{}:\n{p}", manifest.display()))?;
            let component = manifest
                .parent()
                .unwrap_or(Path::new("."))
                .join(parsed.component.as_deref().unwrap_or_default());
            let bytes = std::fs::read(&component)
                .map_err(|e| anyhow::anyhow!("{}: {e}", component.display()))?;
            let settings = Settings::default();
            let host = Arc::new(PluginHost::new(&settings.plugins)?);
            let registry = PluginRegistry::new(host, ActionRegistry::default());
            let plugin = registry
                .install(parsed, bytes)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", component.display()))?;
            println!("{}", serde_json::to_string_pretty(&plugin.info())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn new_project(name: &str, kind: TemplateKind, dir: &Path) -> anyhow::Result<PathBuf> {
    parcours_engine::compile::check_id(name).map_err(|m| anyhow::anyhow!("plugin name: {m}"))?;
    let project = dir.join(name);
    if project.exists() {
        anyhow::bail!("{} already exists", project.display());
    }
    std::fs::create_dir_all(project.join("src"))?;
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk");
    let crate_name = name.replace('-', "_");
    let (feature, kind_name, source) = match kind {
        TemplateKind::Action => ("action", "action", ACTION_TEMPLATE),
        TemplateKind::DataSource => ("data-source", "data-source", DATA_SOURCE_TEMPLATE),
        TemplateKind::Functions => ("functions", "functions", FUNCTIONS_TEMPLATE),
    };
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

# A workspace of its own.
[workspace]

[lib]
crate-type = ["cdylib"]

[dependencies]
parcours-sdk = {{ path = {sdk:?}, features = ["{feature}"] }}
serde = {{ version = "1", features = ["derive"] }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
"#,
            sdk = sdk.display().to_string()
        ),
    )?;
    std::fs::write(project.join("src/lib.rs"), source)?;
    std::fs::write(
        project.join("plugin.toml"),
        format!(
            r#"name = "{name}"
version = "0.1.0"
kind = "{kind_name}"
description = "Describe what {name} does."
component = "target/wasm32-wasip2/release/{crate_name}.wasm"

[capabilities]
# Hosts this plugin may call over HTTP.
allowed_hosts = []

[limits]
memory_mb = 32
timeout_ms = 5000
"#
        ),
    )?;
    std::fs::write(
        project.join("README.md"),
        format!(
            "# {name}\n\nA Parcours {kind_name} plugin.\n\n```sh\ncargo build --release --target wasm32-wasip2\nparcours plugin inspect plugin.toml\nparcours serve --plugins .\n```\n"
        ),
    )?;
    Ok(project)
}

const ACTION_TEMPLATE: &str = r#"use parcours_sdk::action::{Action, Context};
use parcours_sdk::{Error, Value, json};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Params {
    pub message: String,
}

pub struct Plugin;

impl Action for Plugin {
    type Params = Params;

    fn invoke(ctx: &Context, params: Params) -> Result<Value, Error> {
        parcours_sdk::log::info(&format!("{} for {}", params.message, ctx.profile_id));
        Ok(json!({ "echo": params.message, "key": ctx.idempotency_key }))
    }
}

parcours_sdk::export_action!(Plugin);
"#;

const DATA_SOURCE_TEMPLATE: &str = r#"use parcours_sdk::data_source::{Context, DataSource, Found};
use parcours_sdk::{Error, json};

pub struct Plugin;

impl DataSource for Plugin {
    fn fetch(_ctx: &Context, key: &str) -> Result<Found, Error> {
        Ok(Found { value: Some(json!({ "key": key })), ttl_seconds: 60 })
    }
}

parcours_sdk::export_data_source!(Plugin);
"#;

const FUNCTIONS_TEMPLATE: &str = r#"use parcours_sdk::functions::{Functions, Signature};
use parcours_sdk::{Error, Value, json};

pub struct Plugin;

impl Functions for Plugin {
    fn describe() -> Vec<Signature> {
        vec![Signature { name: "double", params: &["int"], result: "int", description: "twice its argument" }]
    }

    fn call(name: &str, args: Vec<Value>) -> Result<Value, Error> {
        match name {
            "double" => {
                let n = args.first().and_then(Value::as_i64).ok_or_else(|| Error::InvalidInput("an integer".into()))?;
                Ok(json!(n * 2))
            }
            other => Err(Error::InvalidInput(format!("no function {other}"))),
        }
    }
}

parcours_sdk::export_functions!(Plugin);
"#;

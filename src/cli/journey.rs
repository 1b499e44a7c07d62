//! `parcours journey validate|publish`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use parcours_engine::Settings;
use parcours_engine::actions::ActionRegistry;
use parcours_engine::compile::compile;
use std::sync::Arc;

use parcours_engine::compile::Catalog;
use parcours_engine::expr::{ExprEngine, ExternalFunctions};
use parcours_engine::model::{Format, JourneyDef, parse_journey, parse_resources};
use parcours_engine::plugins::{PluginHost, PluginRegistry};

use super::{DEFAULT_SERVER, answer};

#[derive(Subcommand)]
pub enum JourneyCommand {
    /// Check definitions offline; prints every problem with its location.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Plugins the journeys may use (repeatable).
        #[arg(long = "plugins", value_name = "DIR")]
        plugin_dirs: Vec<PathBuf>,
        /// Also the first-party plugins.
        #[arg(long)]
        builtin_plugins: bool,
        /// Audiences and capping rules the journeys may refer to (repeatable).
        #[arg(long = "resources", value_name = "FILE")]
        resources: Vec<PathBuf>,
    },
    /// Upload a definition as the draft of its journey and publish it.
    Publish {
        file: PathBuf,
        /// The engine's base URL.
        #[arg(long, default_value = DEFAULT_SERVER, env = "PARCOURS_SERVER")]
        server: String,
    },
}

fn format_of(path: &Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ => Format::Json,
    }
}

fn journey_id(path: &Path, def: &JourneyDef) -> String {
    def.id.clone().unwrap_or_else(|| {
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("journey")
            .to_string()
    })
}

pub async fn run(cmd: JourneyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JourneyCommand::Validate {
            files,
            mut plugin_dirs,
            builtin_plugins,
            resources,
        } => {
            let settings = Settings::default();
            let actions = ActionRegistry::with_builtins();
            if builtin_plugins {
                plugin_dirs.insert(0, super::builtin_plugins_dir());
            }
            let mut external: Option<Arc<dyn ExternalFunctions>> = None;
            if !plugin_dirs.is_empty() {
                let mut plugin_settings = settings.plugins.clone();
                plugin_settings.cache_dir =
                    Some(std::env::temp_dir().join("parcours-plugin-cache"));
                let registry = PluginRegistry::new(
                    Arc::new(PluginHost::new(&plugin_settings)?),
                    actions.clone(),
                );
                for dir in &plugin_dirs {
                    registry.load_dir(dir).await?;
                }
                external = Some(registry);
            }
            let exprs = ExprEngine::with_functions(&settings.expr, external);
            let mut audiences = std::collections::BTreeSet::new();
            let mut capping_rules = std::collections::BTreeSet::new();
            for file in &resources {
                let text = std::fs::read(file)?;
                let r = parse_resources(&text, format_of(file))
                    .map_err(|p| anyhow::anyhow!("{}: {p}", file.display()))?;
                audiences.extend(r.audiences.into_keys());
                capping_rules.extend(r.capping_rules.into_keys());
            }
            let catalog = Catalog {
                actions: actions.clone(),
                audiences: Arc::new(audiences),
                capping_rules: Arc::new(capping_rules),
            };
            let mut failed = false;
            for path in files {
                let text = match std::fs::read(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("{}: cannot read: {e}", path.display());
                        failed = true;
                        continue;
                    }
                };
                let def = match parse_journey(&text, format_of(&path)) {
                    Ok(d) => d,
                    Err(p) => {
                        eprintln!("{}: {p}", path.display());
                        failed = true;
                        continue;
                    }
                };
                let id = journey_id(&path, &def);
                match compile(&def, &id, 0, &exprs, &catalog, &settings) {
                    Ok(_) => println!("{}: ok", path.display()),
                    Err(problems) => {
                        for p in &problems.0 {
                            eprintln!("{}: {p}", path.display());
                        }
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        JourneyCommand::Publish { file, server } => {
            let text = std::fs::read(&file)?;
            let def = parse_journey(&text, format_of(&file))
                .map_err(|p| anyhow::anyhow!("{}: {p}", file.display()))?;
            let id = journey_id(&file, &def);
            let client = super::api_client();
            let draft = answer(
                client
                    .put(format!("{server}/v1/journeys/{id}"))
                    .json(&def)
                    .send()
                    .await?,
            )
            .await?;
            if draft["valid"] == false {
                eprintln!("{}: the draft is invalid:", file.display());
                for p in draft["problems"].as_array().into_iter().flatten() {
                    eprintln!(
                        "  {}: {}",
                        p["path"].as_str().unwrap_or(""),
                        p["message"].as_str().unwrap_or("")
                    );
                }
                return Ok(ExitCode::FAILURE);
            }
            let published = answer(
                client
                    .post(format!("{server}/v1/journeys/{id}/publish"))
                    .send()
                    .await?,
            )
            .await?;
            println!("{id}: published version {}", published["version"]);
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! `parcours plugin list|install|remove|new|inspect|test` (`new` writes with `scaffold.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use parcours_engine::Settings;
use parcours_engine::actions::ActionRegistry;
use parcours_engine::plugins::harness::{HarnessHttp, HarnessInput, HarnessReport, run_once};
use parcours_engine::plugins::{
    HttpExchange, InstallError, PluginHost, PluginRegistry, parse_manifest,
};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// The plugins installed in a running engine: name, version, kind, digest.
    List(super::reads::AsJson),
    /// Upload a plugin (its manifest and the component it names, of any size) to a
    /// running engine.
    Install {
        /// The manifest (`plugin.toml`), or the folder that holds it; the component is
        /// the file it names.
        manifest: PathBuf,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
    /// Remove a plugin (every version, or `--version`) from a running engine; refused
    /// while a journey version that can still run, or an audience, calls it.
    Remove {
        name: String,
        /// Only this version.
        #[arg(long)]
        version: Option<String>,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
    /// Write a new plugin project that builds with one command: sources, the engine's
    /// plugin contract (WIT), pinned toolchain, manifest, a sample input with stubs, a
    /// local receiver and a journey that uses the plugin; its README says how.
    New {
        name: String,
        /// The language of the plugin.
        #[arg(long, value_enum, default_value = "rust")]
        lang: super::scaffold::Lang,
        /// What the plugin is: an action, a data source for `lookup()`, or functions for
        /// expressions.
        #[arg(long, visible_alias = "kind", value_enum, default_value = "action")]
        world: super::scaffold::World,
        /// Where to create the project folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
    /// Load a component with its manifest and print what it is: kind, version, imports,
    /// exports, limits, schema, functions.
    Inspect {
        /// The manifest (`plugin.toml`), or the folder that holds it; the component is
        /// the file it names.
        manifest: PathBuf,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
    /// Run one call of a plugin outside the engine, in the same sandbox, and print its
    /// result, its log lines, its HTTP exchanges and the time, memory and fuel it used.
    /// Exits with 1 when the plugin answers an error or the sandbox stops it.
    Test {
        /// The manifest (`plugin.toml`), or the folder that holds it; the component is
        /// the file it names.
        manifest: PathBuf,
        /// The call, as JSON: `{"params": {...}}` for an action, `{"key": "..."}` for a
        /// data source, `{"function": "...", "args": [...]}` for a functions plugin
        /// (none: `describe`); optional `"context": {"profile_id": ..., ...}`.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Answer the plugin's HTTP requests from these recorded exchanges (a JSON array
        /// of `{"method", "url", "status", "headers", "body"}`) instead of the network.
        #[arg(long, value_name = "FILE", conflicts_with = "record")]
        stubs: Option<PathBuf>,
        /// Send the plugin's HTTP requests and write them with their answers to FILE, to
        /// replay later with `--stubs`.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Where compiled components are cached (large components compile in seconds);
        /// by default the user's cache folder (`~/.cache/parcours/…/compiled`).
        #[arg(long, env = "PARCOURS_PLUGIN_CACHE")]
        plugin_cache: Option<PathBuf>,
        /// An internal network the plugin may reach when its requests go to the network
        /// (a local mock: `127.0.0.0/8`); refused by default, as in the engine.
        #[arg(long = "allow-network", value_name = "CIDR")]
        allow_networks: Vec<ipnet::IpNet>,
    },
}

/// A plugin as its folder holds it: the manifest's text, the manifest, and the component
/// it names, read.
struct Package {
    text: String,
    manifest: parcours_engine::plugins::Manifest,
    component: PathBuf,
    bytes: Vec<u8>,
}

/// A manifest given as itself or as the folder that holds it.
fn manifest_path(given: PathBuf) -> PathBuf {
    if given.is_dir() {
        given.join("plugin.toml")
    } else {
        given
    }
}

impl Package {
    fn read(manifest: &Path) -> anyhow::Result<Package> {
        let text = fs_err::read_to_string(manifest)?;
        let parsed =
            parse_manifest(&text).map_err(|p| anyhow::anyhow!("{}:\n{p}", manifest.display()))?;
        let component = manifest
            .parent()
            .unwrap_or(Path::new("."))
            .join(parsed.component.as_deref().unwrap_or_default());
        let bytes = fs_err::read(&component).map_err(|e| {
            anyhow::anyhow!("{e} (the component the manifest names: build the plugin first)")
        })?;
        Ok(Package {
            text,
            manifest: parsed,
            component,
            bytes,
        })
    }
}

/// Installs the plugin of `manifest` (and the component it names) into `registry`, as
/// the engine would from a folder; answers its description. Errors name the file at fault.
pub(super) async fn install_manifest(
    registry: &Arc<PluginRegistry>,
    manifest: &Path,
) -> anyhow::Result<serde_json::Value> {
    let Package {
        manifest: parsed,
        component,
        bytes,
        ..
    } = Package::read(manifest)?;
    let plugin = registry
        .install(parsed, bytes, parcours_engine::plugins::Origin::Operator)
        .await
        .map_err(|e| match e {
            InstallError::Manifest(_) => anyhow::anyhow!("{}: {e}", manifest.display()),
            _ => anyhow::anyhow!("{}: {e}", component.display()),
        })?;
    Ok(serde_json::to_value(plugin.info())?)
}

pub async fn run(cmd: PluginCommand, remote: &super::client::Remote) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::Install { manifest, json } => {
            use base64::Engine as _;
            let manifest = manifest_path(manifest);
            let Package {
                text,
                manifest: parsed,
                bytes,
                ..
            } = Package::read(&manifest)?;
            let body = serde_json::json!({
                "manifest": text,
                "component": base64::engine::general_purpose::STANDARD.encode(&bytes),
            });
            let api = super::client::Api::new(remote)?;
            let path = format!("/v1/plugins/{}", super::reads::encode(&parsed.name));
            let r = api.put(&path, &body).await?;
            if json {
                println!("{r}");
            } else {
                println!(
                    "{}@{}: installed ({} bytes, package digest {})",
                    parsed.name,
                    parsed.version,
                    bytes.len(),
                    r["package_digest"].as_str().unwrap_or("?")
                );
                for n in r["notices"].as_array().into_iter().flatten() {
                    println!("  note: {}", n.as_str().unwrap_or_default());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Remove {
            name,
            version,
            json,
        } => {
            let api = super::client::Api::new(remote)?;
            let mut path = format!("/v1/plugins/{}", super::reads::encode(&name));
            if let Some(v) = &version {
                path.push_str(&format!("?version={}", super::reads::encode(v)));
            }
            let r = api.delete(&path).await?;
            if json {
                println!("{r}");
            } else {
                for plugin in r["removed"].as_array().into_iter().flatten() {
                    println!("{}: removed", plugin.as_str().unwrap_or("?"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::List(super::reads::AsJson { json }) => {
            let api = super::client::Api::new(remote)?;
            let plugins = super::reads::all_pages(&api, "/v1/plugins", "plugins").await?;
            super::reads::print_list(
                &plugins,
                &[
                    ("name", "name"),
                    ("version", "version"),
                    ("kind", "kind"),
                    ("package digest", "package_digest"),
                ],
                json,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::New {
            name,
            lang,
            world,
            dir,
            json,
        } => {
            let project = super::scaffold::new_project(&name, lang, world, &dir)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"name": name, "project": project.display().to_string()})
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!("created {}", project.display());
            println!(
                "build it with: cd {} && {}",
                project.display(),
                super::scaffold::build_command(lang)
            );
            println!("then see its README.md: test, install, a journey that uses it");
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Inspect { manifest, json } => {
            let mut settings = Settings::default();
            settings.plugins.cache_dir = Some(super::assets::compiled_plugins_dir());
            let host = Arc::new(PluginHost::new(&settings.plugins)?);
            let registry = PluginRegistry::new(host, ActionRegistry::default());
            let info = install_manifest(&registry, &manifest_path(manifest)).await?;
            super::reads::print_value(&info, json)?;
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Test {
            manifest,
            input,
            stubs,
            record,
            json,
            plugin_cache,
            allow_networks,
        } => {
            let mut settings = Settings::default().plugins;
            settings.cache_dir =
                Some(plugin_cache.unwrap_or_else(super::assets::compiled_plugins_dir));
            settings.allow_internal_networks = allow_networks;
            // The plugin runs as the operator's own file: it reads the secrets it declares.
            settings.secrets = parcours_engine::plugins::SecretValues::from_env();
            test_plugin(
                &manifest_path(manifest),
                &input,
                stubs,
                record,
                json,
                settings,
            )
            .await
        }
    }
}

async fn test_plugin(
    manifest: &Path,
    input: &Path,
    stubs: Option<PathBuf>,
    record: Option<PathBuf>,
    json: bool,
    settings: parcours_engine::settings::PluginSettings,
) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let call: HarnessInput =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let http = match (&stubs, &record) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let exchanges: Vec<HttpExchange> = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            HarnessHttp::Stubbed(exchanges)
        }
        // Live requests are kept too, so the report shows what the plugin sent.
        (None, _) => HarnessHttp::Record,
    };
    let report = run_once(manifest, call, http, &settings).await?;
    if let Some(path) = &record {
        std::fs::write(path, serde_json::to_string_pretty(&report.http)? + "\n")
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.ok().is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(r: &HarnessReport) {
    println!("plugin: {} ({})", r.plugin, r.kind);
    let (label, value) = r
        .outcome
        .as_object()
        .and_then(|o| o.iter().next())
        .map(|(k, v)| (k.as_str(), v.clone()))
        .unwrap_or(("outcome", r.outcome.clone()));
    println!(
        "{label}: {}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
    if !r.logs.is_empty() {
        println!("logs:");
        for l in &r.logs {
            println!("  [{}] {} {}", l.level, l.message, l.fields);
        }
    }
    if !r.http.is_empty() {
        println!("http:");
        for x in &r.http {
            let status = if x.status == 0 {
                "no stub".to_string()
            } else {
                x.status.to_string()
            };
            println!("  {} {} -> {status}", x.method, x.url);
            for (name, value) in &x.request_headers {
                println!("    {name}: {value}");
            }
            if let Some(body) = x.request_body.as_ref().filter(|b| !b.is_null()) {
                println!("    body: {body}");
            }
        }
    }
    println!(
        "used: {:.3} ms, {} KiB peak memory, {} fuel",
        r.usage.duration_us as f64 / 1000.0,
        r.usage.memory_peak_bytes / 1024,
        r.usage.fuel
    );
}

//! `parcours journey validate|publish|simulate|replay|report|pause|resume|close|stop`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use parcours_engine::Settings;
use parcours_engine::actions::ActionRegistry;
use parcours_engine::compile::Validator;
use parcours_engine::expr::ExternalFunctions;
use parcours_engine::model::{Format, JourneyDef, parse_journey, parse_resources};
use parcours_engine::plugins::{PluginHost, PluginRegistry};
use parcours_engine::simulation::{self, SimEvent, SimProfile, parse_list};

use super::client::{Api, Remote};
use super::reads;

#[derive(Subcommand)]
pub enum JourneyCommand {
    /// Check definitions offline; prints every problem with its location.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Plugins the journeys may use: a folder of plugins, a plugin's folder or its
        /// manifest (repeatable). A `plugin.toml` beside a journey file is used too.
        #[arg(long = "plugins", value_name = "DIR")]
        plugin_dirs: Vec<PathBuf>,
        /// Also the first-party plugins.
        #[arg(long)]
        builtin_plugins: bool,
        /// Audiences and capping rules the journeys may refer to (repeatable).
        #[arg(long = "resources", value_name = "FILE")]
        resources: Vec<PathBuf>,
        /// The engine's `max_journey_nodes`, when it is not the default.
        #[arg(long, env = "PARCOURS_MAX_JOURNEY_NODES")]
        max_journey_nodes: Option<usize>,
        /// The engine's `max_steps_per_activation`, when it is not the default.
        #[arg(long, env = "PARCOURS_MAX_STEPS_PER_ACTIVATION")]
        max_steps_per_activation: Option<u32>,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
    /// Upload a definition as the draft of its journey and publish it.
    Publish {
        file: PathBuf,
        /// What changed, for the version history.
        #[arg(long)]
        note: Option<String>,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
    /// Run a journey file offline against profiles and a timeline of events on a
    /// virtual clock, actions in dry run; prints each profile's path and per-node totals.
    /// The same input always prints the same output.
    Simulate {
        /// The journey definition (JSON or YAML).
        journey: PathBuf,
        /// Profiles: a JSON array or JSON Lines of {id, attributes, timezone}.
        #[arg(long)]
        profiles: Option<PathBuf>,
        /// Timeline: a JSON array or JSON Lines of {at, type, profile_id, data, id};
        /// `at` is an RFC 3339 time or an ISO-8601 duration after the start.
        #[arg(long)]
        events: PathBuf,
        /// Virtual start time (default: the earliest event time).
        #[arg(long)]
        start: Option<jiff::Timestamp>,
        /// Stop the clock here (default: when no timer is left).
        #[arg(long)]
        until: Option<jiff::Timestamp>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Plugins the journey may use (repeatable).
        #[arg(long = "plugins", value_name = "DIR")]
        plugin_dirs: Vec<PathBuf>,
        /// Also the first-party plugins.
        #[arg(long)]
        builtin_plugins: bool,
        /// Audiences and capping rules (repeatable).
        #[arg(long = "resources", value_name = "FILE")]
        resources: Vec<PathBuf>,
        /// The engine's `max_journey_nodes`, when it is not the default.
        #[arg(long, env = "PARCOURS_MAX_JOURNEY_NODES")]
        max_journey_nodes: Option<usize>,
        /// The engine's `max_steps_per_activation`, when it is not the default.
        #[arg(long, env = "PARCOURS_MAX_STEPS_PER_ACTIVATION")]
        max_steps_per_activation: Option<u32>,
    },
    /// Replay the events a running engine recorded between two times against the
    /// journey's draft and a published version; lists the profiles whose path changes.
    Replay {
        id: String,
        #[arg(long)]
        from: jiff::Timestamp,
        #[arg(long)]
        to: jiff::Timestamp,
        /// The version to compare with (default: the latest).
        #[arg(long)]
        against: Option<u32>,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
    /// Per-version, per-node counts of a journey on a running engine.
    Report {
        id: String,
        /// An event type: adds each split branch's conversion to it.
        #[arg(long)]
        success_event: Option<String>,
        /// Print the JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Pause a live journey (entries and actions held until it resumes).
    Pause {
        id: String,
        /// What to hold: entries, actions (repeatable; default both).
        #[arg(long = "hold")]
        hold: Vec<String>,
        /// ISO-8601 duration after which it resumes by itself.
        #[arg(long)]
        max_duration: Option<String>,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused journey.
    Resume(reads::One),
    /// Publish the latest version again with every action on the newest installed
    /// version of its plugin (a published version keeps the plugin versions it was
    /// published with).
    UpgradePlugins(reads::One),
    /// Close a journey: no new entries; running instances finish.
    Close(reads::One),
    /// Stop a journey: no new entries; running instances end.
    Stop(reads::One),
    /// Every journey on a running engine: status, versions, last change.
    List(reads::AsJson),
    /// A journey: its draft, status and versions.
    Get(reads::One),
    /// A journey's versions: status, running instances, when published and why.
    Versions(reads::One),
    /// Run a journey's draft in test mode on a running engine (test profiles enter it;
    /// actions are recorded in their steps, not called, unless `--call-actions`), or end
    /// test mode with `--stop`.
    Test {
        id: String,
        /// Longest wait or reaction timeout of the test, ISO-8601 (`PT5S`).
        #[arg(long)]
        wait: Option<String>,
        /// Call the actions for real.
        #[arg(long, conflicts_with = "stop")]
        call_actions: bool,
        /// End test mode: the draft's test instances end.
        #[arg(long)]
        stop: bool,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
    /// What changed from a version to another version or to the draft.
    Diff {
        id: String,
        /// The version to compare from.
        #[arg(long)]
        from: u32,
        /// A version, or `draft` (default).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The actions and plugin functions of plugin folders, for offline commands.
async fn offline_plugins(
    settings: &Settings,
    mut plugin_dirs: Vec<PathBuf>,
    builtin_plugins: bool,
) -> anyhow::Result<(ActionRegistry, Option<Arc<dyn ExternalFunctions>>)> {
    let actions = ActionRegistry::with_builtins();
    if builtin_plugins {
        plugin_dirs.insert(0, super::builtin_plugins_dir()?);
    }
    if plugin_dirs.is_empty() {
        return Ok((actions, None));
    }
    let mut plugin_settings = settings.plugins.clone();
    plugin_settings.cache_dir = Some(super::assets::compiled_plugins_dir());
    let registry = PluginRegistry::new(
        Arc::new(PluginHost::new(&plugin_settings)?),
        actions.clone(),
    );
    for dir in &plugin_dirs {
        if dir.is_file() {
            // A manifest stands for itself.
            super::plugin::install_manifest(&registry, dir).await?;
        } else {
            registry.load_dir(dir).await?;
        }
    }
    Ok((actions, Some(registry)))
}

/// The plugins beside the journey files: a `plugin.toml` in a journey's own folder (a
/// plugin project's `journey.yaml`), unless that folder is among `plugin_dirs`.
fn plugins_beside(files: &[PathBuf], plugin_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let given: Vec<PathBuf> = plugin_dirs
        .iter()
        .filter_map(|d| d.canonicalize().ok())
        .collect();
    let mut found: Vec<PathBuf> = Vec::new();
    for file in files {
        let folder = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let manifest = folder.join("plugin.toml");
        let known = |p: &Path| p.canonicalize().ok();
        if manifest.is_file()
            && !given
                .iter()
                .any(|g| Some(g) == known(folder).as_ref() || Some(g) == known(&manifest).as_ref())
            && !found.iter().any(|f| known(f) == known(&manifest))
        {
            found.push(manifest);
        }
    }
    found
}

fn read_profiles(path: &Path) -> anyhow::Result<Vec<SimProfile>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    parse_list(&text).map_err(|p| anyhow::anyhow!("{}: {p}", path.display()))
}

fn read_events(path: &Path) -> anyhow::Result<Vec<SimEvent>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    parse_list(&text).map_err(|p| anyhow::anyhow!("{}: {p}", path.display()))
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

/// The engine's settings with the graph limits the command was given (offline commands
/// validate as the engine they stand in for would).
fn graph_settings(max_journey_nodes: Option<usize>, max_steps: Option<u32>) -> Settings {
    let mut settings = Settings::default();
    if let Some(n) = max_journey_nodes {
        settings.max_journey_nodes = n;
    }
    if let Some(n) = max_steps {
        settings.max_steps_per_activation = n.max(1);
    }
    settings
}

pub async fn run(cmd: JourneyCommand, server: &Remote) -> anyhow::Result<ExitCode> {
    match cmd {
        JourneyCommand::Validate {
            files,
            plugin_dirs,
            builtin_plugins,
            resources,
            max_journey_nodes,
            max_steps_per_activation,
            json,
        } => {
            let settings = graph_settings(max_journey_nodes, max_steps_per_activation);
            // Offline, only the plugins named on the command line exist: say how to add
            // them where a journey calls one that is missing.
            let hint = if plugin_dirs.is_empty() && !builtin_plugins {
                " (validating offline: load plugins with --plugins DIR, the first-party ones with --builtin-plugins)"
            } else {
                " (validating offline: only the plugins of --plugins and --builtin-plugins are known)"
            };
            // A plugin project validates its journey without naming itself.
            let beside = plugins_beside(&files, &plugin_dirs);
            for manifest in &beside {
                eprintln!("using the plugin of {}", manifest.display());
            }
            let plugin_dirs = plugin_dirs.into_iter().chain(beside).collect();
            let (actions, external) =
                offline_plugins(&settings, plugin_dirs, builtin_plugins).await?;
            let mut validator = Validator::new(&settings, actions, external);
            for file in &resources {
                let text = std::fs::read(file)
                    .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", file.display()))?;
                let r = parse_resources(&text, format_of(file))
                    .map_err(|p| anyhow::anyhow!("{}: {p}", file.display()))?;
                validator.resources(&r);
            }
            // One record per file: `ok`, or its problems (`--json` prints them all at the end).
            let mut results = Vec::new();
            for path in files {
                let problems: Vec<serde_json::Value> = match std::fs::read(&path) {
                    Err(e) => vec![
                        serde_json::json!({"path": "", "message": format!("cannot read: {e}")}),
                    ],
                    Ok(text) => match parse_journey(&text, format_of(&path)) {
                        Err(p) => vec![serde_json::json!({"path": p.path, "message": p.message})],
                        Ok(def) => match validator.validate(&journey_id(&path, &def), &def) {
                            Ok(_) => Vec::new(),
                            Err(problems) => problems
                                .0
                                .iter()
                                .map(|p| {
                                    let missing = p.message.contains("unknown action")
                                        || p.message.contains("Undefined module");
                                    let message = if missing {
                                        format!("{}{hint}", p.message)
                                    } else {
                                        p.message.clone()
                                    };
                                    serde_json::json!({"path": p.path, "message": message})
                                })
                                .collect(),
                        },
                    },
                };
                if !json {
                    if problems.is_empty() {
                        println!("{}: ok", path.display());
                    }
                    for p in &problems {
                        let at = p["path"].as_str().unwrap_or_default();
                        let message = p["message"].as_str().unwrap_or_default();
                        if at.is_empty() {
                            eprintln!("{}: {message}", path.display());
                        } else {
                            eprintln!("{}: {at}: {message}", path.display());
                        }
                    }
                }
                results.push(serde_json::json!({
                    "file": path.display().to_string(),
                    "ok": problems.is_empty(),
                    "problems": problems,
                }));
            }
            let failed = results.iter().any(|r| r["ok"] == false);
            if json {
                println!("{}", serde_json::json!({"ok": !failed, "files": results}));
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        JourneyCommand::Simulate {
            journey,
            profiles,
            events,
            start,
            until,
            json,
            plugin_dirs,
            builtin_plugins,
            resources,
            max_journey_nodes,
            max_steps_per_activation,
        } => {
            let settings = graph_settings(max_journey_nodes, max_steps_per_activation);
            let (actions, external) =
                offline_plugins(&settings, plugin_dirs, builtin_plugins).await?;
            let text = std::fs::read(&journey)
                .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", journey.display()))?;
            let def = parse_journey(&text, format_of(&journey))
                .map_err(|p| anyhow::anyhow!("{}: {p}", journey.display()))?;
            let mut cx = simulation::Context {
                settings,
                actions,
                external,
                audiences: Vec::new(),
                capping_rules: Vec::new(),
                templates: Vec::new(),
                subscription_groups: Vec::new(),
            };
            for file in &resources {
                let text = std::fs::read(file)
                    .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", file.display()))?;
                let r = parse_resources(&text, format_of(file))
                    .map_err(|p| anyhow::anyhow!("{}: {p}", file.display()))?;
                for (name, a) in r.audiences {
                    cx.audiences.push((name, serde_json::to_value(a)?));
                }
                for (id, rule) in r.capping_rules {
                    cx.capping_rules.push((id, serde_json::to_value(rule)?));
                }
                for (id, t) in r.templates {
                    cx.templates.push((id, serde_json::to_value(t)?));
                }
                for (id, g) in r.subscription_groups {
                    cx.subscription_groups.push((id, serde_json::to_value(g)?));
                }
            }
            let request = simulation::Request {
                journey_id: journey_id(&journey, &def),
                journey: def,
                profiles: match &profiles {
                    Some(p) => read_profiles(p)?,
                    None => Vec::new(),
                },
                events: read_events(&events)?,
                start,
                until,
            };
            match simulation::simulate(&cx, request).await {
                Ok(sim) if json => println!("{}", serde_json::to_string_pretty(&sim)?),
                Ok(sim) => print!("{}", sim.to_text()),
                Err(simulation::SimError::Input(p)) => {
                    eprintln!("{}: {p}", events.display());
                    return Ok(ExitCode::FAILURE);
                }
                Err(simulation::SimError::Journey(p)) => {
                    for p in &p.0 {
                        eprintln!("{}: {p}", journey.display());
                    }
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(e.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::Replay {
            id,
            from,
            to,
            against,
            json,
        } => {
            let mut body = serde_json::json!({"from": from, "to": to});
            if let Some(v) = against {
                body["against"] = v.into();
            }
            let r = Api::new(server)?
                .post(&format!("/v1/journeys/{id}/replay"), &body)
                .await?;
            if json {
                println!("{r}");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{id}: {} events of {} profiles replayed against {} and {}",
                r["events"], r["profiles"], r["before"], r["after"]
            );
            let moved = r["moved"].as_array().cloned().unwrap_or_default();
            println!("{} profile(s) would move", moved.len());
            for m in moved {
                println!("  {}", m["profile_id"].as_str().unwrap_or(""));
                println!("    before: {}", join(&m["before"]));
                println!("    after:  {}", join(&m["after"]));
            }
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::Report {
            id,
            success_event,
            json,
        } => {
            let mut path = format!("/v1/journeys/{id}/report");
            if let Some(e) = &success_event {
                path.push_str(&format!("?success_event={e}"));
            }
            let r = Api::new(server)?.get(&path).await?;
            if json {
                println!("{r}");
            } else {
                print!("{}", report_text(&r));
            }
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::Pause {
            id,
            hold,
            max_duration,
            json,
        } => {
            let mut body = serde_json::json!({});
            if !hold.is_empty() {
                body["hold"] = hold.into();
            }
            if let Some(d) = max_duration {
                body["max_duration"] = d.into();
            }
            let r = Api::new(server)?
                .post(&format!("/v1/journeys/{id}/pause"), &body)
                .await?;
            if json {
                println!("{r}");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{id}: paused until {}",
                r["pause"]["until"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::UpgradePlugins(reads::One { id, json }) => {
            let r = lifecycle(server, &id, "upgrade-plugins").await?;
            if json {
                println!("{r}");
                return Ok(ExitCode::SUCCESS);
            }
            let moved = r["upgraded"].as_array().cloned().unwrap_or_default();
            if moved.is_empty() {
                println!(
                    "{id}: version {} already calls the newest plugin versions",
                    r["version"]
                );
            } else {
                println!("{id}: published version {}", r["version"]);
                for m in &moved {
                    println!(
                        "  {}: {} -> {}",
                        m["at"].as_str().unwrap_or(""),
                        m["from"].as_str().unwrap_or(""),
                        m["to"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::Resume(reads::One { id, json }) => {
            let r = lifecycle(server, &id, "resume").await?;
            if json {
                println!("{r}");
            } else {
                println!("{id}: live");
            }
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::Close(reads::One { id, json }) => {
            let r = lifecycle(server, &id, "close").await?;
            if json {
                println!("{r}");
            } else {
                println!("{id}: closed");
            }
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::Stop(reads::One { id, json }) => {
            let r = lifecycle(server, &id, "stop").await?;
            if json {
                println!("{r}");
            } else {
                println!("{id}: stopped, {} instance(s) ended", r["ended_instances"]);
            }
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::List(reads::AsJson { json }) => {
            let journeys = reads::all_pages(&Api::new(server)?, "/v1/journeys", "journeys").await?;
            reads::print_list(
                &journeys,
                &[
                    ("id", "id"),
                    ("status", "status"),
                    ("versions", "versions"),
                    ("updated", "updated_at"),
                ],
                json,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::Get(reads::One { id, json }) => {
            let journey = Api::new(server)?
                .get(&format!("/v1/journeys/{}", reads::encode(&id)))
                .await?;
            reads::print_value(&journey, json)?;
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::Versions(reads::One { id, json }) => {
            let journey = Api::new(server)?
                .get(&format!("/v1/journeys/{}", reads::encode(&id)))
                .await?;
            let versions = journey["versions"].as_array().cloned().unwrap_or_default();
            reads::print_list(
                &versions,
                &[
                    ("version", "version"),
                    ("status", "status"),
                    ("running", "running_instances"),
                    ("published", "published_at"),
                    ("note", "note"),
                ],
                json,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::Test {
            id,
            wait,
            call_actions,
            stop,
            json,
        } => {
            let api = Api::new(server)?;
            let path = format!("/v1/journeys/{}/test", reads::encode(&id));
            let r = if stop {
                api.delete(&path).await?
            } else {
                let mut body = serde_json::json!({"dry_run": !call_actions});
                if let Some(wait) = wait {
                    body["wait"] = wait.into();
                }
                api.post(&path, &body).await?
            };
            if json {
                println!("{r}");
            } else if stop {
                println!("{id}: test mode ended");
            } else {
                println!(
                    "{id}: the draft runs in test mode{}",
                    if call_actions {
                        " (actions are called)"
                    } else {
                        " (actions recorded, not called)"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::Diff { id, from, to, json } => {
            let mut path = format!("/v1/journeys/{}/diff?from={from}", reads::encode(&id));
            if let Some(to) = &to {
                path.push_str(&format!("&to={}", reads::encode(to)));
            }
            let diff = Api::new(server)?.get(&path).await?;
            reads::print_value(&diff, json)?;
            Ok(ExitCode::SUCCESS)
        }
        JourneyCommand::Publish { file, note, json } => {
            let text = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", file.display()))?;
            let def = parse_journey(&text, format_of(&file))
                .map_err(|p| anyhow::anyhow!("{}: {p}", file.display()))?;
            let id = journey_id(&file, &def);
            let api = Api::new(server)?;
            let draft = api
                .put(&format!("/v1/journeys/{id}"), &serde_json::to_value(&def)?)
                .await?;
            if draft["valid"] == false && json {
                println!(
                    "{}",
                    serde_json::json!({"id": id, "published": false, "problems": draft["problems"]})
                );
                return Ok(ExitCode::FAILURE);
            }
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
            let published = api
                .post(
                    &format!("/v1/journeys/{id}/publish"),
                    &serde_json::json!({"note": note}),
                )
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": id, "published": true, "version": published["version"], "notices": published["notices"]})
                );
            } else {
                println!("{id}: published version {}", published["version"]);
                for n in published["notices"].as_array().into_iter().flatten() {
                    println!("  note: {}", n.as_str().unwrap_or_default());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `POST /v1/journeys/{id}/{verb}` with an empty body.
async fn lifecycle(server: &Remote, id: &str, verb: &str) -> anyhow::Result<serde_json::Value> {
    Api::new(server)?
        .post(&format!("/v1/journeys/{id}/{verb}"), &serde_json::json!({}))
        .await
}

fn join(path: &serde_json::Value) -> String {
    path.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" > ")
        })
        .unwrap_or_default()
}

/// A report as a table per version: the node column as wide as its longest id, counts
/// right-aligned.
fn report_text(r: &serde_json::Value) -> String {
    use comfy_table::{CellAlignment, Table, presets};
    use std::fmt::Write;
    let mut out = String::new();
    for v in r["versions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "version {}: {} entered, {} discarded, {} live",
            v["version"], v["entered"], v["discarded"], v["live"]
        );
        let mut table = Table::new();
        table.load_preset(presets::NOTHING).set_header([
            "node",
            "passed",
            "failed",
            "waited",
            "ended",
            "now",
            "branches / errors",
        ]);
        for n in v["nodes"].as_array().into_iter().flatten() {
            let mut extra: Vec<String> = Vec::new();
            for key in ["branches", "error_codes"] {
                for (k, c) in n[key].as_object().into_iter().flatten() {
                    extra.push(format!("{k}={c}"));
                }
            }
            let count = |key: &str| n[key].as_u64().unwrap_or(0).to_string();
            table.add_row([
                n["node"].as_str().unwrap_or("").to_string(),
                count("passed"),
                count("failed"),
                count("waited"),
                count("ended"),
                count("current"),
                extra.join(" "),
            ]);
        }
        for column in 1..6 {
            if let Some(c) = table.column_mut(column) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        for line in table.to_string().lines() {
            let _ = writeln!(out, " {}", line.trim_end());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_columns_line_up_whatever_the_node_ids() {
        let report = serde_json::json!({"versions": [{
            "version": 2, "entered": 1200, "discarded": 3, "live": 40,
            "nodes": [
                {"node": "start", "passed": 1200, "failed": 0, "waited": 0, "ended": 0, "current": 0},
                {"node": "wait_for_the_second_purchase_of_the_month", "passed": 7, "failed": 12345,
                 "waited": 900, "ended": 1, "current": 40, "error_codes": {"EXPR_EVAL": 12345}},
                {"node": "split", "passed": 1100, "failed": 0, "waited": 0, "ended": 0,
                 "current": 0, "branches": {"a": 550, "b": 550}},
            ]
        }]});
        let text = report_text(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "version 2: 1200 entered, 3 discarded, 40 live");
        // Counts are right-aligned: every row's `passed` and `now` cells end where the
        // header's do.
        let end_of = |line: &str, word: &str| line.find(word).map(|i| i + word.len());
        let header = lines[1];
        let passed_end = end_of(header, "passed").unwrap();
        let now_end = end_of(header, "now").unwrap();
        for (line, passed, now) in [
            (lines[2], "1200", " 0"),
            (lines[3], " 7", "40"),
            (lines[4], "1100", " 0"),
        ] {
            assert_eq!(
                &line[passed_end - passed.len()..passed_end],
                passed,
                "{text}"
            );
            assert_eq!(&line[now_end - now.len()..now_end], now, "{text}");
        }
        assert!(lines[3].ends_with("EXPR_EVAL=12345"), "{text}");
        assert!(lines[4].ends_with("a=550 b=550"), "{text}");
    }
}

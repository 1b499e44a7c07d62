//! Command-line parsing and dispatch; one file per command group.

mod assets;
mod backup;
mod bench;
mod client;
mod config;
mod event;
mod journey;
mod plugin;
mod profile;
mod reads;
mod scaffold;
mod serve;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "parcours",
    version,
    about = "Customer-journey orchestration engine"
)]
pub struct Cli {
    /// The engine the client commands call (event, profile, journey publish, report,
    /// replay, pause, resume, close, stop): `http://` or `https://`, `http://` assumed
    /// (`localhost:8080`), a path prefix kept for an engine behind a proxy.
    #[arg(
        long,
        global = true,
        default_value = client::DEFAULT_SERVER,
        env = "PARCOURS_SERVER"
    )]
    server: String,
    /// Certificate authorities (PEM) an `https://` engine's certificate may chain to,
    /// beside the system's: a private CA or a self-signed certificate.
    #[arg(long, global = true, value_name = "FILE", env = "PARCOURS_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// The log on standard error: `text` for people, `json` (one object per line) for a
    /// log collector.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "PARCOURS_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How the log is written.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: HTTP API, partitions, timers, on an embedded SQLite file.
    Serve(Box<serve::ServeArgs>),
    /// Journeys: validate and simulate offline; list, get, versions, diff, publish,
    /// report, replay, pause, resume, close and stop on a running engine.
    #[command(subcommand)]
    Journey(journey::JourneyCommand),
    /// Send events to a running engine, or read one it stored.
    #[command(subcommand)]
    Event(event::EventCommand),
    /// Profiles of a running engine: import, get, list (with a filter), delete.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Create, inspect and test plugins; list those of a running engine.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Instances of a running engine and their steps.
    #[command(subcommand)]
    Instance(reads::InstanceCommand),
    /// Audiences of a running engine.
    #[command(subcommand)]
    Audience(reads::AudienceCommand),
    /// Runs of read-audience and business-event journeys on a running engine.
    #[command(subcommand)]
    Run(reads::RunCommand),
    /// Load-test an engine over HTTP against a bare HTTP server (the floor).
    Bench(bench::BenchArgs),
    /// Create, list or revoke API tokens (stored hashed in the tokens file).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Copy the database to a new file while the engine runs (a consistent snapshot:
    /// every event accepted before the backup began is in it).
    Backup(backup::BackupArgs),
    /// Replace the database by a backup (checked first; refused while an engine runs on
    /// it).
    Restore(backup::RestoreArgs),
    /// The settings: those in effect and where each came from, or the reference of all.
    #[command(subcommand)]
    Config(Box<config::ConfigCommand>),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let remote = client::Remote {
        server: cli.server,
        ca_cert: cli.ca_cert,
    };
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Journey(cmd) => journey::run(cmd, &remote).await,
        Command::Event(cmd) => event::run(cmd, &remote).await,
        Command::Plugin(cmd) => plugin::run(cmd, &remote).await,
        Command::Instance(cmd) => reads::instance(cmd, &remote).await,
        Command::Audience(cmd) => reads::audience(cmd, &remote).await,
        Command::Run(cmd) => reads::run(cmd, &remote).await,
        Command::Profile(cmd) => profile::run(cmd, &remote).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Token(cmd) => token::run(cmd),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Config(cmd) => config::run(*cmd),
    }
}

/// The first-party plugins, carried by this binary and written to its cache folder.
pub fn builtin_plugins_dir() -> anyhow::Result<std::path::PathBuf> {
    assets::builtin_plugins_dir()
}

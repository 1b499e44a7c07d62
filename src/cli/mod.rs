//! Command-line parsing and dispatch; one file per command group.

mod bench;
mod event;
mod journey;
mod plugin;
mod profile;
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: HTTP API, partitions, timers, on an embedded SQLite file.
    Serve(Box<serve::ServeArgs>),
    /// Validate or publish journey definitions.
    #[command(subcommand)]
    Journey(journey::JourneyCommand),
    /// Send events to a running engine.
    #[command(subcommand)]
    Event(event::EventCommand),
    /// Import profiles into a running engine.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Create and inspect plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Load-test an engine over HTTP against a bare HTTP server (the floor).
    Bench(bench::BenchArgs),
    /// Create, list or revoke API tokens (stored hashed in the tokens file).
    #[command(subcommand)]
    Token(token::TokenCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Journey(cmd) => journey::run(cmd).await,
        Command::Event(cmd) => event::run(cmd).await,
        Command::Plugin(cmd) => plugin::run(cmd).await,
        Command::Profile(cmd) => profile::run(cmd).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Token(cmd) => token::run(cmd),
    }
}

/// The first-party plugins, built with this binary.
pub fn builtin_plugins_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("PARCOURS_BUILTIN_PLUGINS_DIR"))
}

/// The default address of a local engine.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Prints an API answer; fails with its message when it is an error.
pub async fn answer(response: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        let message = body["message"].as_str().unwrap_or("request failed");
        match body["problems"].as_array() {
            Some(problems) if !problems.is_empty() => {
                let lines: Vec<String> = problems
                    .iter()
                    .map(|p| {
                        format!(
                            "  {}: {}",
                            p["path"].as_str().unwrap_or(""),
                            p["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                anyhow::bail!("{status}: {message}\n{}", lines.join("\n"))
            }
            _ => match body["location"].as_str() {
                Some(at) => anyhow::bail!("{status}: {at}: {message}"),
                None => anyhow::bail!("{status}: {message}"),
            },
        }
    }
}

/// The HTTP client of the commands that call a running engine: it sends the token of
/// `PARCOURS_TOKEN`, if set, as a bearer token.
pub fn api_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(token) = std::env::var("PARCOURS_TOKEN")
        && let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
    {
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap_or_default()
}

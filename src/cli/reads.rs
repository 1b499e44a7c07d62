//! The read (and delete) commands of a running engine's resources: `journey list|get|
//! versions|diff`, `profile get|delete`, `instance get|steps`, `event get`,
//! `audience list|get`, `run list|get`, `plugin list`. Lists follow the API's pages to
//! the end; each prints a table or the object for people, or JSON with `--json`.
//!
//! Owns how a resource is shown. Must never build a request outside `client.rs`'s `Api`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{Api, Remote};

/// One resource, by its id (or name).
#[derive(Args)]
pub struct One {
    /// Its id (an audience's name).
    pub id: String,
    /// Print JSON on one line, for a program.
    #[arg(long)]
    pub json: bool,
}

/// `--json` alone.
#[derive(Args)]
pub struct AsJson {
    /// Print JSON on one line, for a program.
    #[arg(long)]
    pub json: bool,
}

/// Every item of a list endpoint, page after page (`?after=` from each `next`).
pub async fn all_pages(api: &Api, path: &str, list: &str) -> anyhow::Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &after {
            Some(a) => format!("{path}{sep}limit=1000&after={}", encode(a)),
            None => format!("{path}{sep}limit=1000"),
        };
        let page = api.get(&url).await?;
        items.extend(page[list].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return Ok(items),
        }
    }
}

/// `text` for a URL path segment or query value.
pub fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A value as JSON (`--json`: one line, for a program) or indented for people.
pub fn print_value(value: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        println!("{}", serde_json::to_string_pretty(value)?);
    }
    Ok(())
}

/// A list as a table of `columns` (header, field), or as a JSON array with `--json`.
pub fn print_list(items: &[Value], columns: &[(&str, &str)], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(items)?);
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(columns.iter().map(|(h, _)| *h));
    for item in items {
        table.add_row(columns.iter().map(|(_, field)| cell(&item[*field])));
    }
    println!("{table}");
    Ok(())
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        // A list of records (a journey's versions) is counted, a list of names joined.
        Value::Array(a) if a.iter().any(Value::is_object) => a.len().to_string(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// `parcours instance`.
#[derive(Subcommand)]
pub enum InstanceCommand {
    /// One instance: journey, version, status, node, times, data.
    Get(One),
    /// The step events of an instance, in order.
    Steps(One),
}

/// `parcours audience`.
#[derive(Subcommand)]
pub enum AudienceCommand {
    /// Every audience with its definition and size.
    List(AsJson),
    /// One audience.
    Get(One),
}

/// `parcours run`.
#[derive(Subcommand)]
pub enum RunCommand {
    /// The runs of a read-audience or business-event journey (by its id), newest first.
    List(One),
    /// One run with its progress.
    Get(One),
}

pub async fn instance(cmd: InstanceCommand, remote: &Remote) -> anyhow::Result<ExitCode> {
    let api = Api::new(remote)?;
    match cmd {
        InstanceCommand::Get(One { id, json }) => print_value(
            &api.get(&format!("/v1/instances/{}", encode(&id))).await?,
            json,
        )?,
        InstanceCommand::Steps(One { id, json }) => {
            let steps = all_pages(
                &api,
                &format!("/v1/instances/{}/steps", encode(&id)),
                "steps",
            )
            .await?;
            print_list(
                &steps,
                &[
                    ("seq", "seq"),
                    ("node", "node"),
                    ("kind", "kind"),
                    ("status", "status"),
                    ("at", "at"),
                    ("code", "code"),
                ],
                json,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audience(cmd: AudienceCommand, remote: &Remote) -> anyhow::Result<ExitCode> {
    let api = Api::new(remote)?;
    match cmd {
        AudienceCommand::List(AsJson { json }) => {
            let audiences = all_pages(&api, "/v1/audiences", "audiences").await?;
            print_list(
                &audiences,
                &[
                    ("name", "name"),
                    ("size", "size"),
                    ("updated", "updated_at"),
                ],
                json,
            )?;
        }
        AudienceCommand::Get(One { id: name, json }) => print_value(
            &api.get(&format!("/v1/audiences/{}", encode(&name))).await?,
            json,
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(cmd: RunCommand, remote: &Remote) -> anyhow::Result<ExitCode> {
    let api = Api::new(remote)?;
    match cmd {
        RunCommand::List(One { id: journey, json }) => {
            let runs = all_pages(
                &api,
                &format!("/v1/journeys/{}/runs", encode(&journey)),
                "runs",
            )
            .await?;
            print_list(
                &runs,
                &[
                    ("id", "id"),
                    ("version", "version"),
                    ("status", "status"),
                    ("entered", "entered"),
                    ("started", "started_at"),
                ],
                json,
            )?;
        }
        RunCommand::Get(One { id, json }) => {
            print_value(&api.get(&format!("/v1/runs/{}", encode(&id))).await?, json)?
        }
    }
    Ok(ExitCode::SUCCESS)
}

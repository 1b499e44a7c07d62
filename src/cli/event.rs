//! `parcours event send`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{Api, Remote};

#[derive(Subcommand)]
pub enum EventCommand {
    /// Send one event.
    Send {
        /// The event type.
        #[arg(long = "type")]
        event_type: String,
        /// The profile it belongs to.
        #[arg(long)]
        profile: String,
        /// The event data, as JSON.
        #[arg(long, default_value = "{}")]
        data: String,
        /// An id, to make sending it twice harmless.
        #[arg(long)]
        id: Option<String>,
    },
}

pub async fn run(cmd: EventCommand, server: &Remote) -> anyhow::Result<ExitCode> {
    match cmd {
        EventCommand::Send {
            event_type,
            profile,
            data,
            id,
        } => {
            let data: Value = serde_json::from_str(&data)
                .map_err(|e| anyhow::anyhow!("--data is not JSON: {e}"))?;
            let mut event = json!({"type": event_type, "profile_id": profile, "data": data});
            if let Some(id) = id {
                event["id"] = json!(id);
            }
            let body = Api::new(server)?.post("/v1/events", &event).await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

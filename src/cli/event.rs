//! `parcours event send|get`.

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
        /// Print the answer on one line.
        #[arg(long)]
        json: bool,
    },
    /// One stored event: whether it was processed, and the steps it caused.
    Get(super::reads::One),
}

pub async fn run(cmd: EventCommand, server: &Remote) -> anyhow::Result<ExitCode> {
    match cmd {
        EventCommand::Send {
            event_type,
            profile,
            data,
            id,
            json,
        } => {
            let data: Value = serde_json::from_str(&data)
                .map_err(|e| anyhow::anyhow!("--data is not JSON: {e}"))?;
            let mut event = json!({"type": event_type, "profile_id": profile, "data": data});
            if let Some(id) = id {
                event["id"] = json!(id);
            }
            let body = Api::new(server)?.post("/v1/events", &event).await?;
            super::reads::print_value(&body, json)?;
            Ok(ExitCode::SUCCESS)
        }
        EventCommand::Get(super::reads::One { id, json }) => {
            let event = Api::new(server)?
                .get(&format!("/v1/events/{}", super::reads::encode(&id)))
                .await?;
            super::reads::print_value(&event, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! An action: sends the step's message to an HTTP endpoint.
//!
//! Parameters (checked against `params_schema` in plugin.toml before the call):
//! `message`. The endpoint is the manifest's `url` setting; the step's idempotency key
//! travels as `Idempotency-Key`, so a receiver can drop the repeats of a retried step.

use parcours_sdk::action::{Action, Context};
use parcours_sdk::http::Request;
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
        if params.message.is_empty() {
            return Err(Error::InvalidInput("message: must be a non-empty string".into()));
        }
        let url = parcours_sdk::config("url")
            .ok_or_else(|| Error::Permanent("the manifest sets no url".into()))?;
        let resp = Request::post(&url)
            .header("idempotency-key", &ctx.idempotency_key)
            .json(&json!({
                "profile_id": ctx.profile_id,
                "journey_id": ctx.journey_id,
                "message": params.message,
            }))
            .send()?
            .error_for_status()?;
        parcours_sdk::log::info(&format!("message sent: HTTP {}", resp.status));
        Ok(json!({ "status": resp.status }))
    }
}

parcours_sdk::export_action!(Plugin);

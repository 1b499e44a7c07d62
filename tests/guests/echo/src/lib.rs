//! The `ok` mode of the `hostile` test guest alone, built with the SDK for
//! `wasm32-unknown-unknown`: a core module that the host encodes as a component at
//! install. Beside `hostile` (the same SDK action built for `wasm32-wasip2`) it measures
//! what the WASI imports of a standard-library build cost a fresh call
//! (`cargo bench --bench micro -- plugin_call_fresh_sdk`), and it runs through the
//! engine in the plugin tests, so that the core-module path stays tested (`{"panic":
//! "why"}` panics, to show where its message goes).

use parcours_sdk::action::{Action, Context};
use parcours_sdk::{Error, Value, json};

pub struct Echo;

impl Action for Echo {
    type Params = Value;

    fn invoke(ctx: &Context, params: Value) -> Result<Value, Error> {
        if let Some(why) = params.get("panic").and_then(Value::as_str) {
            panic!("asked to: {why}");
        }
        Ok(json!({"ok": true, "profile": ctx.profile_id, "params": params}))
    }
}

parcours_sdk::export_action!(Echo);

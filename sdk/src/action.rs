//! Action plugins: called by action nodes with JSON parameters.

#[doc(hidden)]
#[allow(clippy::too_many_arguments, reason = "generated bindings")]
pub mod bindings {
    wit_bindgen::generate!({
        world: "action",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_action_world",
        default_bindings_module: "parcours_sdk::action::bindings",
        runtime_path: "parcours_sdk::__wit_bindgen::rt",
    });
}

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use crate::{Context, Error};
use bindings::parcours::plugin::types::{CallContext, PluginError};

/// An action.
pub trait Action {
    /// The parameters, decoded from the node's `params`.
    type Params: DeserializeOwned;
    /// Performs the action; the result is available to later nodes as `actions.<node>`.
    fn invoke(ctx: &Context, params: Self::Params) -> Result<Value, Error>;
}

#[doc(hidden)]
pub fn __invoke<A: Action>(ctx: CallContext, params: String) -> Result<String, PluginError> {
    crate::__log_panics();
    let ctx = Context::from(ctx);
    let params: A::Params = serde_json::from_str(&params).map_err(Error::from)?;
    let out = A::invoke(&ctx, params)?;
    Ok(out.to_string())
}

/// Exports a type implementing [`Action`] as the component's `invoke`.
#[macro_export]
macro_rules! export_action {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __ParcoursAction;
        impl $crate::action::bindings::Guest for __ParcoursAction {
            fn invoke(
                ctx: $crate::action::bindings::parcours::plugin::types::CallContext,
                params: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::action::bindings::parcours::plugin::types::PluginError,
            > {
                $crate::action::__invoke::<$t>(ctx, params)
            }
        }
        $crate::action::bindings::__export_action_world!(__ParcoursAction);
    };
}

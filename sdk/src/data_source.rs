//! Data-source connectors: fetch one record by key, with a cache hint.

#[doc(hidden)]
#[allow(clippy::too_many_arguments, reason = "generated bindings")]
pub mod bindings {
    wit_bindgen::generate!({
        world: "data-source",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_data_source_world",
        default_bindings_module: "parcours_sdk::data_source::bindings",
        runtime_path: "parcours_sdk::__wit_bindgen::rt",
    });
}

use serde_json::Value;

pub use crate::{Context, Error};
use bindings::parcours::plugin::types::{CallContext, Lookup, PluginError};

/// What a look-up found.
pub struct Found {
    /// The record, or `None` when the key is unknown.
    pub value: Option<Value>,
    /// How long the engine may reuse the answer, in seconds (0: not at all).
    pub ttl_seconds: u32,
}

/// A data source.
pub trait DataSource {
    fn fetch(ctx: &Context, key: &str) -> Result<Found, Error>;
}

#[doc(hidden)]
pub fn __fetch<D: DataSource>(ctx: CallContext, key: String) -> Result<Lookup, PluginError> {
    crate::__log_panics();
    let found = D::fetch(&Context::from(ctx), &key)?;
    Ok(Lookup {
        value: found.value.map(|v| v.to_string()),
        ttl_seconds: found.ttl_seconds,
    })
}

/// Exports a type implementing [`DataSource`] as the component's `fetch`.
#[macro_export]
macro_rules! export_data_source {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __ParcoursDataSource;
        impl $crate::data_source::bindings::Guest for __ParcoursDataSource {
            fn fetch(
                ctx: $crate::data_source::bindings::parcours::plugin::types::CallContext,
                key: ::std::string::String,
            ) -> ::std::result::Result<
                $crate::data_source::bindings::parcours::plugin::types::Lookup,
                $crate::data_source::bindings::parcours::plugin::types::PluginError,
            > {
                $crate::data_source::__fetch::<$t>(ctx, key)
            }
        }
        $crate::data_source::bindings::__export_data_source_world!(__ParcoursDataSource);
    };
}

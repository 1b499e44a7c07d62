//! Expression-function plugins: functions callable from rhai as `<plugin>::<name>(...)`.

#[doc(hidden)]
#[allow(clippy::too_many_arguments, reason = "generated bindings")]
pub mod bindings {
    wit_bindgen::generate!({
        world: "functions",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_functions_world",
        default_bindings_module: "parcours_sdk::functions::bindings",
        runtime_path: "parcours_sdk::__wit_bindgen::rt",
    });
}

use serde_json::Value;

pub use crate::Error;
use bindings::parcours::plugin::types::{FunctionSignature, PluginError};

/// One exported function.
pub struct Signature {
    pub name: &'static str,
    /// `string`, `int`, `float`, `bool`, `array`, `map` or `any`.
    pub params: &'static [&'static str],
    pub result: &'static str,
    pub description: &'static str,
}

/// A set of functions.
pub trait Functions {
    fn describe() -> Vec<Signature>;
    /// Calls function `name` with its arguments.
    fn call(name: &str, args: Vec<Value>) -> Result<Value, Error>;
}

#[doc(hidden)]
pub fn __describe<F: Functions>() -> Vec<FunctionSignature> {
    crate::__log_panics();
    F::describe()
        .into_iter()
        .map(|s| FunctionSignature {
            name: s.name.into(),
            params: s.params.iter().map(|p| p.to_string()).collect(),
            returns: s.result.into(),
            description: s.description.into(),
        })
        .collect()
}

#[doc(hidden)]
pub fn __call<F: Functions>(name: String, args: String) -> Result<String, PluginError> {
    crate::__log_panics();
    let args: Vec<Value> = serde_json::from_str(&args).map_err(Error::from)?;
    Ok(F::call(&name, args)?.to_string())
}

/// Exports a type implementing [`Functions`].
#[macro_export]
macro_rules! export_functions {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __ParcoursFunctions;
        impl $crate::functions::bindings::Guest for __ParcoursFunctions {
            fn describe() -> ::std::vec::Vec<
                $crate::functions::bindings::parcours::plugin::types::FunctionSignature,
            > {
                $crate::functions::__describe::<$t>()
            }
            fn call(
                name: ::std::string::String,
                args: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::functions::bindings::parcours::plugin::types::PluginError,
            > {
                $crate::functions::__call::<$t>(name, args)
            }
        }
        $crate::functions::bindings::__export_functions_world!(__ParcoursFunctions);
    };
}

//! Host bindings of the plugin worlds: the three of `parcours:plugin@0.1.0`
//! (`wit/plugin.wit`), whose shared interfaces (`types`, `host`) are generated once, in
//! `action`, and reused by the other two; and the channel-provider world of 0.2.0
//! (`wit/v0.2/plugin.wit`), with interfaces of its own.

pub mod action {
    wasmtime::component::bindgen!({
        world: "action",
        path: "../wit",
        exports: { default: async },
    });
}

pub mod data_source {
    wasmtime::component::bindgen!({
        world: "data-source",
        path: "../wit",
        exports: { default: async },
        with: {
            "parcours:plugin/types": super::action::parcours::plugin::types,
            "parcours:plugin/host": super::action::parcours::plugin::host,
        },
    });
}

pub mod functions {
    wasmtime::component::bindgen!({
        world: "functions",
        path: "../wit",
        exports: { default: async },
        with: {
            "parcours:plugin/types": super::action::parcours::plugin::types,
            "parcours:plugin/host": super::action::parcours::plugin::host,
        },
    });
}

pub use action::parcours::plugin::host;
pub use action::parcours::plugin::types;

/// The channel-provider world of `parcours:plugin@0.2.0` (`wit/v0.2`): its own `types`
/// and `host` interfaces, linked beside those of 0.1.0.
pub mod channel_provider {
    wasmtime::component::bindgen!({
        world: "channel-provider",
        path: "../wit/v0.2",
        exports: { default: async },
    });
}

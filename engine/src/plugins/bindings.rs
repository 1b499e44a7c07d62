//! Host bindings of the three plugin worlds (`wit/plugin.wit`). The shared interfaces
//! (`types`, `host`) are generated once, in `action`, and reused by the other two.

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

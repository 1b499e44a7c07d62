//! Plugins shipped as core modules: a module built for `wasm32-unknown-unknown` with
//! wit-bindgen (the Rust SDK) carries its component type in custom sections, and is
//! turned into a component here, before it is compiled.
//!
//! Such a plugin imports only the interfaces its code calls (`parcours:plugin`, and
//! `wasi:http` when it makes requests): none of the twenty WASI interfaces that
//! wasi-libc and `std` import for a `wasm32-wasip2` build, each a function the host
//! links at every instantiation. (That makes the host's share of a fresh call smaller;
//! the call as a whole was not faster on 2026-12-06, docs/performance.md.)
//!
//! Owns recognising a core module and encoding it; never compiles or runs anything.

use std::borrow::Cow;

/// The component of `bytes`: the bytes themselves when they are one already, else the
/// core module encoded as a component (deterministic, so the compiled-artifact cache
/// keyed by the file's hash stays valid).
pub fn component(bytes: &[u8]) -> anyhow::Result<Cow<'_, [u8]>> {
    // A core module's preamble: the magic number and version 1 (a component's layer is 1).
    if !bytes.starts_with(b"\0asm\x01\0\0\0") {
        return Ok(Cow::Borrowed(bytes));
    }
    let encoded = wit_component::ComponentEncoder::default()
        .module(bytes)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| {
            anyhow::anyhow!(
                "the plugin is a core WebAssembly module that cannot be made a component \
                 (build it with the SDK or wit-bindgen, which embed its component type, or \
                 for wasm32-wasip2): {e:#}"
            )
        })?;
    Ok(Cow::Owned(encoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_is_left_as_it_is() {
        // The preamble of a component (layer 1), with nothing in it.
        let empty = b"\0asm\x0d\0\x01\0";
        assert!(matches!(component(empty), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn a_broken_core_module_is_refused_with_a_reason() {
        // A core module's preamble, then a section id that does not exist.
        let module = b"\0asm\x01\0\0\0\x7f\x00";
        let e = component(module).expect_err("not a valid module");
        assert!(e.to_string().contains("cannot be made a component"), "{e}");
    }

    #[test]
    fn a_core_module_becomes_a_component() {
        // Without an embedded component type it becomes an empty component, which the
        // host then refuses for not exporting what its kind needs.
        let module = b"\0asm\x01\0\0\0";
        let encoded = component(module).expect("encoded");
        assert!(encoded.starts_with(b"\0asm\x0d\0\x01\0"), "{encoded:?}");
    }
}

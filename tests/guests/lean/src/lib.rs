//! The leanest action a Rust guest can be: `#![no_std]` with `alloc`, so the component
//! imports nothing but the plugin interface (no WASI: a guest built with the standard
//! library imports some twenty WASI interfaces through wasi-libc, each a lowered import
//! to link at every instantiation), and a bump allocator over a static arena, so its
//! linear memory never grows during a call (a memory that grew is shrunk back at the
//! next instantiation, an `mprotect` whose TLB shootdown reaches every core).
//!
//! It measures the floor of a fresh plugin call through the host
//! (`cargo bench --bench micro -- plugin_call_fresh_lean`); it must never be used with
//! warm instances: the arena is not reclaimed between calls of one instance.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::String;

mod bindings {
    // The generated export glue passes the call context's fields one by one.
    #![allow(clippy::too_many_arguments)]
    wit_bindgen::generate!({ path: "../../../wit", world: "action", pub_export_macro: true });
}

use bindings::Guest;
use bindings::parcours::plugin::types::{CallContext, PluginError};

struct Lean;

impl Guest for Lean {
    fn invoke(_ctx: CallContext, params: String) -> Result<String, PluginError> {
        let mut out = String::with_capacity(params.len() + 10);
        out.push_str("{\"echo\":");
        out.push_str(&params);
        out.push('}');
        Ok(out)
    }
}

bindings::export!(Lean with_types_in bindings);

#[cfg(target_arch = "wasm32")]
mod runtime {
    use core::alloc::{GlobalAlloc, Layout};
    use core::ptr::null_mut;

    const ARENA_BYTES: usize = 1 << 20;
    static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];
    static mut NEXT: usize = 0;

    /// Hands out the arena in order and never frees: one call per instance.
    struct Bump;

    // SAFETY: a component instance runs one call at a time on one thread.
    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            unsafe {
                let start = (NEXT + layout.align() - 1) & !(layout.align() - 1);
                if start + layout.size() > ARENA_BYTES {
                    return null_mut();
                }
                NEXT = start + layout.size();
                (&raw mut ARENA as *mut u8).add(start)
            }
        }

        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }

    #[global_allocator]
    static ALLOCATOR: Bump = Bump;

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        core::arch::wasm32::unreachable()
    }

    /// The canonical ABI's allocator, which wasi-libc provides to standard-library guests.
    ///
    /// # Safety
    /// Called by the host with the canonical ABI's arguments only.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn cabi_realloc(
        old: *mut u8,
        old_len: usize,
        align: usize,
        new_len: usize,
    ) -> *mut u8 {
        unsafe {
            if old_len == 0 {
                if new_len == 0 {
                    return align as *mut u8;
                }
                ALLOCATOR.alloc(Layout::from_size_align_unchecked(new_len, align))
            } else {
                ALLOCATOR.realloc(
                    old,
                    Layout::from_size_align_unchecked(old_len, align),
                    new_len,
                )
            }
        }
    }
}

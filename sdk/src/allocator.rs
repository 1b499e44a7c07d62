//! The allocator of a plugin built as a core module (`wasm32-unknown-unknown`): Talc
//! over a static arena first, growing the linear memory only when the arena is full.
//!
//! Why not the standard library's (dlmalloc): it takes every byte from `memory.grow`,
//! so the first allocation of every fresh instance grows the linear memory, and the
//! host shrinks a grown memory back when its pool slot is used again: an `mprotect`
//! whose TLB shootdown interrupts every core of the engine (a fresh call of the SDK's
//! test action cost 28.8 µs with it against 19.4 µs with this one, docs/performance.md).
//! The arena lies in the module's zero-initialised data, inside its initial memory, so
//! a call that fits in it never grows the memory, and the host resets only the pages
//! the call wrote.
//!
//! On by default (feature `arena`); a plugin with its own `#[global_allocator]` turns
//! the feature off. Never used for `wasm32-wasip2` builds, whose allocator (wasi-libc's)
//! already uses the initial memory first.

use core::alloc::Layout;
use core::mem::MaybeUninit;

use talc::base::Talc;
use talc::base::binning::Binning;
use talc::cell::TalcSyncCell;
use talc::source::Source;
use talc::wasm::WasmBinning;

/// The arena's size: what most calls allocate (a request, its answer, their JSON)
/// without growing the memory. It adds to the module's initial memory, which counts
/// against the manifest's `limits.memory_mb`.
const ARENA_BYTES: usize = 1 << 20;

const PAGE_BYTES: usize = 1 << 16;

static mut ARENA: [MaybeUninit<u8>; ARENA_BYTES] = [MaybeUninit::uninit(); ARENA_BYTES];

/// Hands Talc the arena when it first needs memory, then pages from `memory.grow`.
#[derive(Debug)]
pub struct ArenaThenGrow {
    arena_claimed: bool,
}

// SAFETY: `acquire` allocates nothing and only gives Talc memory nothing else uses: the
// arena (claimed once) and pages just added to the linear memory.
unsafe impl Source for ArenaThenGrow {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        if !talc.source.arena_claimed {
            talc.source.arena_claimed = true;
            // SAFETY: the arena is this allocator's alone, claimed once.
            let claimed = unsafe { talc.claim((&raw mut ARENA).cast::<u8>(), ARENA_BYTES) };
            if claimed.is_some() {
                return Ok(());
            }
        }
        // Enough pages for the allocation and Talc's bookkeeping around it.
        let needed = layout.size() + layout.align() + 64;
        let pages = needed.div_ceil(PAGE_BYTES);
        let previous = core::arch::wasm32::memory_grow(0, pages);
        if previous == usize::MAX {
            return Err(());
        }
        // SAFETY: the pages were just added to the memory; nothing else refers to them.
        unsafe { talc.claim((previous * PAGE_BYTES) as *mut u8, pages * PAGE_BYTES) }
            .map(|_| ())
            .ok_or(())
    }
}

#[global_allocator]
static ALLOCATOR: TalcSyncCell<ArenaThenGrow, WasmBinning> =
    TalcSyncCell::new_wasm(ArenaThenGrow {
        arena_claimed: false,
    });

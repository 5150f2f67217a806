//! # pinalloc
//!
//! Memory for low-latency systems: trading engines, mining-protocol proxies, feed handlers.
//!
//! The crate is built in layers; lower layers never depend on higher ones:
//!
//! | layer | module | what it is |
//! |---|---|---|
//! | buffers | [`buffer`] | Stratum V2 style frame buffers: `BufferPool`, `Slice`, the `Buffer` trait |
//! | pools | `pool` | `LockFreeBufferPool`: typed buffer classes, thread caches over Treiber stacks, `BufferGuard` (with `std`) |
//! | IPC | `shm` | shared memory between processes: `SharedRegion`, `SharedArray`, `SharedBuffer` (rw-locked), `CircularBuffer` (lock-free ring) (with `std`) |
//! | arena | [`arena`] | `Arena`: bump allocation over OS chunks, an `Allocator` for `&Arena` |
//! | allocator | [`global`] | `PinAlloc`: the global allocator, with per-thread caches over lock-free depots |
//! | lock-free structures | [`stack`] | an ABA-safe Treiber stack of nodes addressed by 32-bit index, the building block of every depot and pool |
//! | OS | [`os`] | mappings, purging, huge pages with fallback, NUMA placement, thread pinning |
//! | primitives | `sync` | `core` atomics, or loom's under `--cfg loom` |
//!
//! The allocator, arena, buffer pools and shared-memory IPC described in the design are
//! built on these layers as they land.
//!
//! ## Verification
//! Every `unsafe` block states the invariant it relies on. The lock-free protocols are
//! model-checked with [loom](https://docs.rs/loom) (`RUSTFLAGS="--cfg loom"`), and the code
//! that needs no real syscalls runs under miri with Stacked and Tree Borrows, against a
//! heap-backed fake of the OS layer.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(feature = "std", test, miri, loom))]
extern crate std;

pub mod arena;
pub mod buffer;
#[cfg(all(feature = "std", not(loom)))]
pub mod global;
pub mod os;
#[cfg(all(feature = "std", not(loom)))]
pub mod pool;
#[cfg(all(feature = "std", not(loom)))]
pub mod shm;
/// Under loom only the ring's protocol is built, for its models.
#[cfg(loom)]
#[cfg_attr(not(test), allow(dead_code))]
#[path = "shm/ring/protocol.rs"]
mod shm_ring_protocol;
pub mod stack;
mod sync;

#[cfg(all(feature = "std", not(loom)))]
pub use global::{PinAlloc, pin_current_thread};

/// The crate's own unit tests run on its allocator, except under miri, where they keep
/// std's; miri checks this allocator through its `Allocator` API (tests/allocator_api.rs)
/// and as the global allocator (tests/global_alloc.rs). Pointers handed back are
/// re-derived from the mapping's root provenance (`os::root_provenance`), as the program's
/// tags die with its blocks; a freed block's link is written through the pointer as given,
/// as a `Box` passed by value and dropped is freed while the caller's frame still protects
/// it (see `Block::link`).
#[cfg(all(test, feature = "std", not(loom), not(miri)))]
#[global_allocator]
static TEST_ALLOCATOR: PinAlloc = PinAlloc::new();

/// Internals the fuzz targets in `fuzz/` drive directly. Not a stable API.
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::os::sysfs;
}

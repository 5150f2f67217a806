//! The OS layer: the only code in the crate that talks to the kernel about memory.
//!
//! Everything above this module gets its memory, page facts and CPU placement from here:
//!
//! * [`Mapping`] — an owned, aligned range of anonymous memory (`mmap`), with
//!   [`Mapping::commit`]/[`Mapping::decommit`] for reserved ranges, [`Mapping::purge`]
//!   (`MADV_DONTNEED` or `MADV_FREE`) to give pages back while keeping the addresses,
//!   [`Mapping::resize`] (`mremap`) and [`Mapping::bind_to_node`] (`mbind`). Alignments
//!   beyond a page are made by over-reserving and trimming, which costs address space,
//!   not memory or copying.
//! * Huge pages ([`HugePages`], [`PageTier`]): the chain 1 GiB → 2 MiB hugetlbfs pages →
//!   transparent huge pages → base pages, each tier probed once and remembered when it
//!   fails, and [`HugePages::Forbid`] to keep THP away from a mapping.
//! * [`page_size`], [`numa::current_cpu`] (`getcpu`), [`numa::node_count`],
//!   [`numa::node_of_cpu`], and thread pinning ([`pin_current_thread_to_core`]).
//! * [`counters`]: how much this crate has mapped and purged, from the layer's own accounting.
//! * [`SharedMapping`]: POSIX shared memory by name (`shm_open`, exclusive, mode 0600) or
//!   anonymous `MAP_SHARED` memory, the kernel half of the [`shm`](crate::shm) module.
//! * Process services without allocation: [`monotonic_ms`], [`futex_wait`]/[`futex_wake`]
//!   (process-shared or private), [`process_id`], [`process_alive`], [`env_var`],
//!   [`at_fork`], [`yield_now`].
//!
//! Nothing here panics or allocates from the heap (sysfs files are read into stack buffers),
//! because the global allocator is built on this layer and calls it while serving a call.
//! Failures are [`OsError`] values.
//!
//! # Under miri
//! With `cfg(miri)` the same API is served by a heap-backed fake (`backend/fake.rs`):
//! mappings are zeroed blocks from the system allocator, purges zero, there are no huge pages,
//! one CPU and one node. Everything built on this module therefore runs under miri.

mod accounting;
#[cfg(feature = "std")]
mod affinity;
mod backend;
mod error;
mod mapping;
pub mod numa;
mod pages;
mod process;
mod shared;
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod sysfs;
#[cfg(not(feature = "fuzz"))]
mod sysfs;

pub use accounting::{OsCounters, counters};
#[cfg(feature = "std")]
pub use affinity::{available_cores, pin_current_thread_to_core};
pub use backend::Purge;
/// `ptr` with the provenance of the mapping holding it: the identity on Linux; under miri,
/// re-derived from the fake mapping's root, so an allocator never reuses a program's tag.
#[cfg(all(feature = "std", not(loom)))]
pub(crate) use backend::root_provenance;
pub use error::OsError;
pub use mapping::{MapOptions, Mapping, RawMapping};
pub use numa::yield_now;
pub use pages::{HugePages, PageTier, TierStatus, page_size, reprobe_huge_pages, tier_status};
pub use process::{
    at_fork, copy_readable, env_var, fatal, futex_wait, futex_wake, keeping_errno, monotonic_ms,
    process_alive, process_id, set_errno,
};
pub use shared::SharedMapping;

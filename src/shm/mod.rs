//! Shared-memory IPC for Linux: named regions, arrays, a locked buffer and a lock-free ring.
//!
//! Four types over one segment format (the seed's .NET `SharedMemory` library, made robust):
//!
//! | type | what | synchronisation |
//! |---|---|---|
//! | [`SharedRegion`] | raw bytes | none: the caller's |
//! | [`SharedArray<T>`] | `len` elements of a [`Pod`](bytemuck::Pod) `T` | reader/writer lock in the segment |
//! | [`SharedBuffer`] | bytes and `Pod` structures at offsets | reader/writer lock, guards with timeouts |
//! | [`CircularBuffer`] | FIFO of messages in `N ≥ 2` nodes, many writers and readers | lock-free claim/publish/release |
//!
//! # Segments
//! `create(name, ...)` makes a POSIX shared-memory object `/name` with `O_CREAT | O_EXCL` and
//! mode 0600, sizes it and maps it shared; the creator removes the name when its handle drops
//! unless [`ShmOptions::persist`] (or `set_persist`) says otherwise. `open(name)` needs only
//! the name: the segment's header records its kind, size, layout version and
//! parameters, and every field is checked (a missing, truncated, foreign, newer or
//! mismatched segment is a distinct [`ShmError`]). `anonymous(...)` makes the same structure
//! without a name, for threads of one process.
//!
//! # Other processes are hostile input
//! Everything in a segment can be written by another process at any moment, so nothing read
//! from one is trusted: offsets and lengths are recomputed or bounds-checked before use,
//! element types are `Pod` (every byte pattern is a value), and impossible shared states are
//! errors, never out-of-bounds accesses. A process that dies holding a lock or a ring node is
//! detected by its pid (recorded in the same atomic word as the claim) and the resource is
//! recovered by whoever waits on it; a message lost that way is reported, not skipped.
//!
//! # Blocking
//! Every wait spins briefly, then sleeps on a process-shared futex in the segment, in slices
//! short enough to notice a dead peer, and ends with [`ShmError::Timeout`] when its timeout
//! runs out (`Duration::MAX` waits forever; `Duration::ZERO` tries once).
//!
//! Requires `std` (Linux). Under miri only the anonymous forms exist (the OS fake has no
//! named shared memory); the ring's protocol is model-checked with loom.

mod array;
mod buffer;
mod error;
mod name;
mod region;
pub(crate) mod ring;
mod rwlock;
mod segment;
mod wait;

pub use array::{ArrayReadGuard, ArrayWriteGuard, DEFAULT_LOCK_TIMEOUT, SharedArray};
pub use buffer::{ReadGuard, SharedBuffer, WriteGuard};
pub use error::{Kind, ShmError};
pub use name::MAX_NAME_LEN;
pub use region::SharedRegion;
pub use ring::{CircularBuffer, DEFAULT_SPIN, MAX_NODE_SIZE, MAX_NODES, RingStats};
pub use segment::ShmOptions;

/// Removes the name `name` of a segment (one created with [`ShmOptions::persist`], or left
/// behind by a creator that crashed). Mappings already made stay valid.
pub fn unlink(name: &str) -> Result<(), ShmError> {
    let name = name::SegmentName::new(name)?;
    crate::os::SharedMapping::unlink(name.posix()).map_err(ShmError::from)
}

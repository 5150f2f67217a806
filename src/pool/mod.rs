//! `LockFreeBufferPool`: fixed-size buffers in typed classes for hot paths, handed out as
//! RAII [`BufferGuard`]s from thread caches over lock-free, ABA-safe Treiber stacks.
//!
//! ```
//! use pinalloc::pool::{BufferClass, LockFreeBufferPool};
//!
//! let pool = LockFreeBufferPool::new()?;
//! let (to_worker, from_feed) = std::sync::mpsc::channel();
//! std::thread::scope(|s| {
//!     let pool = &pool;
//!     s.spawn(move || {
//!         for _ in 0..3 {
//!             let mut frame = pool.get(BufferClass::Serialization);
//!             frame[0] = 42;
//!             to_worker.send(frame).unwrap(); // a guard is Send: dropped on the other thread
//!         }
//!     });
//!     s.spawn(move || {
//!         for frame in from_feed {
//!             assert_eq!(frame[0], 42);
//!         } // each frame goes back to the pool here, on this thread
//!     });
//! });
//! let stats = pool.stats();
//! assert_eq!(stats.serialization.hits, 3);
//! assert_eq!(stats.serialization.returns, 3);
//! assert_eq!(stats.serialization.buffers_in_use, 0);
//! # Ok::<(), pinalloc::pool::PoolError>(())
//! ```
//!
//! # Layers, from the fast path down
//!
//! | layer | file | cost |
//! |---|---|---|
//! | thread cache: per thread, pool and class, a small stack of free buffers' addresses | `thread_cache.rs` | one TLS load and compare, then plain loads and stores |
//! | shared stacks: per class and NUMA node, a Treiber stack of magazines of free buffers | `class.rs` | one CAS per batch of half a cache |
//! | region: per class, address space for the maximum count, committed as buffers are created | `class.rs` | once per buffer, ever |
//! | fallback: a fresh allocation from `PinAlloc` when the class is at its maximum | `pool.rs` | per miss |
//!
//! On the shared stacks a buffer is named by a 32-bit index: buffer `i` of a class starts
//! at `region + i * stride`. Thread caches and guards hold the address itself, so the fast
//! paths compute none; a batch is converted when it moves between the two. Buffers never
//! move and are never unmapped while the pool lives (the initial ones are touched at
//! start-up, so their first use does not fault).
//!
//! # Thread caches
//! `get` pops the calling thread's cache for the class; a guard's drop pushes onto the
//! dropping thread's cache. Neither uses an atomic read-modify-write. An empty cache takes
//! a magazine (up to half a cache of buffer indices in one node of a
//! [`NodePool`](crate::stack::NodePool)) from the shared stack with one CAS; a full one
//! gives its oldest half back as a magazine with one CAS. `class.rs` explains why
//! magazines and not a chain of buffers. A thread's caches are flushed when it
//! exits (or on [`LockFreeBufferPool::flush_thread_cache`]). How a thread finds its cache,
//! and why the lookup is exact, is in `thread_cache.rs`.
//!
//! Threads pinned with [`pin_current_thread`](crate::pin_current_thread) exchange batches
//! with their NUMA node's stack; a thread whose node's stack is empty takes from the other
//! nodes' stacks before the class grows.
//!
//! # Where the seed was wrong
//! * "Pointer-based nodes prevent ABA": they do not. A popper that read `A → B` can be
//!   overtaken by pops of A and B and a push of A; its CAS from A to B then succeeds and B
//!   is both on the stack and held. The stacks here carry a tag in the head word that every
//!   push and pop changes ([`crate::stack`] shows the interleaving; loom finds it when the
//!   tag is disabled).
//! * "Wait-free progress": a Treiber stack is lock-free (some thread always completes), not
//!   wait-free (one thread can lose every CAS). The thread caches make contention rare.
//! * "Buffer return: a simple atomic store": a return to a shared stack is a CAS; with the
//!   thread cache, the common return is no atomic RMW at all.
//!
//! # Statistics
//! Every counter on the fast path lives in the thread's cache and is written only by its
//! thread (a Relaxed load and store, no RMW); [`LockFreeBufferPool::stats`] sums the live
//! caches and the totals of retired ones under the pool's registry lock. See
//! [`ClassStats`] for what each number means.

mod class;
mod config;
mod error;
mod guard;
#[allow(clippy::module_inception)] // the pool type's own file, beside its parts
mod pool;
mod stats;
mod thread_cache;

pub use class::MAGAZINE;
pub use config::{
    BufferClass, ClassConfig, ConfigError, ConfigErrorKind, LockFreeBufferPoolConfig, MAX_BUFFERS,
    MAX_THREAD_CACHE,
};
pub use error::PoolError;
pub use guard::BufferGuard;
pub use pool::LockFreeBufferPool;
pub use stats::{BufferCounts, BufferPoolStats, ClassStats};

/// One lane of a SIMD buffer: four `f64`s, the shape of an AVX register.
pub type SimdLane = [f64; 4];

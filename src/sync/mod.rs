//! The atomics every lock-free protocol in this crate is written against.
//!
//! Normally these are `core`'s atomics. Built with `RUSTFLAGS="--cfg loom"` they are
//! [loom](https://docs.rs/loom)'s, so the model checker can explore every interleaving and
//! every weak-memory outcome the orderings allow. Code above this module never names
//! `core::sync::atomic` directly, so nothing escapes the model.
//!
//! Loom's atomics cannot be built in a `const` context; types that want a `const fn new`
//! (the allocator's statics) provide it only under `not(loom)`.

// Not every build uses every type (the allocator is absent without `std` and under loom).
#[cfg(not(loom))]
#[allow(unused_imports)]
pub use core::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering, fence};

#[cfg(loom)]
#[allow(unused_imports)]
pub use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering, fence};

// The spin lock serves the allocator, which needs `std`, and the miri OS fake's table of
// mappings; under loom it is built for its model.
#[cfg(any(feature = "std", miri))]
#[cfg_attr(loom, allow(dead_code))] // under loom only its model uses it
mod spin_lock;
#[cfg(all(any(feature = "std", miri), not(loom)))]
pub(crate) use spin_lock::SpinLock;

/// Busy-wait hint: a pause instruction normally, a yield to the model under loom (loom needs
/// every spin loop to yield, or it explores the spinning forever).
#[inline]
pub fn spin_hint() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

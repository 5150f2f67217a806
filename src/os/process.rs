//! Process-level services the allocator needs: a cheap clock, futex waits, the environment
//! and fork hooks — all without allocating.

use super::backend;
use core::ffi::CStr;
use core::sync::atomic::AtomicU32;

/// Milliseconds since an arbitrary start, from a coarse monotonic clock (a few ms
/// resolution; costs a memory read, not a syscall).
pub fn monotonic_ms() -> u64 {
    backend::monotonic_ms()
}

/// Sleeps while `word` holds `expected`, for at most `timeout_ms` if given. Spurious
/// returns happen: re-check the condition. `shared` futexes work across processes (for
/// words in shared memory); private ones are cheaper.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout_ms: Option<u64>, shared: bool) {
    backend::futex_wait(word, expected, timeout_ms, shared)
}

/// Wakes up to `count` threads sleeping on `word`.
pub fn futex_wake(word: &AtomicU32, count: u32, shared: bool) {
    backend::futex_wake(word, count, shared)
}

/// An environment variable's value, read without allocating.
pub fn env_var(name: &CStr) -> Option<&'static [u8]> {
    backend::env_var(name)
}

/// Registers handlers run around `fork()`: `prepare` in the parent before, `parent` in the
/// parent after, `child` in the child after. Returns whether they were registered.
pub fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) -> bool {
    backend::at_fork(prepare, parent, child)
}

/// Writes `message` to standard error and aborts: the answer to heap corruption found by the
/// allocator's debug checks, where unwinding is not allowed and continuing would be unsound.
pub fn fatal(message: &str) -> ! {
    backend::fatal(message)
}

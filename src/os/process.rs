//! Process-level services the allocator needs: a cheap clock, futex waits, the environment
//! and fork hooks — all without allocating.

use super::backend;
use core::ffi::CStr;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

/// Milliseconds since an arbitrary start, from a coarse monotonic clock (a few ms
/// resolution; costs a memory read, not a syscall).
pub fn monotonic_ms() -> u64 {
    backend::monotonic_ms()
}

/// Sleeps while `word` holds `expected`, for at most `timeout` if given. Spurious returns
/// happen: re-check the condition. `shared` futexes work across processes (for words in
/// shared memory); private ones are cheaper.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>, shared: bool) {
    backend::futex_wait(word, expected, timeout, shared)
}

/// Wakes up to `count` threads sleeping on `word`.
pub fn futex_wake(word: &AtomicU32, count: u32, shared: bool) {
    backend::futex_wake(word, count, shared)
}

/// Runs `f` and puts the calling thread's `errno` back as it was: for C's `free`, which
/// must not change `errno` although purging or unmapping may fail inside it.
pub fn keeping_errno<R>(f: impl FnOnce() -> R) -> R {
    let saved = backend::errno();
    let result = f();
    backend::set_errno(saved);
    result
}

/// Sets the calling thread's `errno` (for the C ABI's failures).
pub fn set_errno(value: i32) {
    backend::set_errno(value)
}

/// Copies up to `len` bytes from `src` to `dst`, stopping where `src` stops being
/// readable, without faulting; returns the bytes copied. For moving a block whose size is
/// unknown (C's `realloc` of a pointer another allocator made).
///
/// # Safety
/// `dst` has `len` writable bytes that do not overlap `src`.
pub unsafe fn copy_readable(dst: *mut u8, src: *const u8, len: usize) -> usize {
    // SAFETY: forwarded.
    unsafe { backend::copy_readable(dst, src, len) }
}

/// An environment variable's value, read without allocating.
pub fn env_var(name: &CStr) -> Option<&'static [u8]> {
    backend::env_var(name)
}

/// This process's id (`getpid`), cached: a syscall the first time, and again in a child
/// after `fork` (a fork handler clears the cache).
pub fn process_id() -> u32 {
    // Relaxed: the pid is a value, not a publication; a stale read is impossible within one
    // process because the only writer outside this thread is the fork handler, which runs in
    // the child before any of its threads exist.
    let cached = PID.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // 0: not tried, 1: fork handler registered, 2: registration failed. Two threads may both
    // register; clearing the cache twice in a child is harmless.
    static FORK_HANDLER: AtomicU32 = AtomicU32::new(0);
    let registered = match FORK_HANDLER.load(Ordering::Relaxed) {
        0 => {
            let ok = at_fork(keep_pid, keep_pid, forget_pid);
            FORK_HANDLER.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
        state => state == 1,
    };
    if !registered {
        // No fork handler: never cache, so a forked child cannot inherit the parent's pid.
        return backend::process_id();
    }
    let pid = backend::process_id();
    PID.store(pid, Ordering::Relaxed);
    pid
}

static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn keep_pid() {}

extern "C" fn forget_pid() {
    PID.store(0, Ordering::Relaxed);
}

/// Whether process `pid` still exists (`kill(pid, 0)` does not fail with `ESRCH`). A process
/// that has died but has not been reaped by its parent (a zombie) still exists; and a pid can
/// be reused by a new process, so `true` is a hint, `false` is a fact.
pub fn process_alive(pid: u32) -> bool {
    backend::process_alive(pid)
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

//! Giving memory back to the OS.
//!
//! When spans become entirely free their pages are *dirty*: still resident, ready for reuse.
//! After the purge delay (default [`DEFAULT_PURGE_DELAY_MS`]) a background thread, started
//! lazily the first time pages are freed, purges them with `MADV_DONTNEED`; a program that
//! frees everything and goes quiet sees its RSS fall without calling the allocator again.
//! With a delay of zero, pages are purged at once on the freeing thread, and no thread is
//! started; nor is one with `Config::purge_thread(false)`, where the freeing threads purge
//! what is due at their slow paths. [`purge_now`] (behind `PinAlloc::purge`) purges
//! everything immediately, including the blocks parked in depots.
//!
//! The purger thread is spawned at a safe point of a slow path (no cache borrowed, no lock
//! held), because spawning allocates and that allocation comes back into this allocator.

use super::central;
use super::depot;
use super::segment::SEGMENTS;
use super::size_class::CLASSES;
use crate::os;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// Purge delay unless configured otherwise.
pub const DEFAULT_PURGE_DELAY_MS: u64 = 250;

/// The configured delay. Relaxed: a setting.
pub(crate) static DELAY_MS: AtomicU64 = AtomicU64::new(DEFAULT_PURGE_DELAY_MS);

/// Bumped whenever pages are freed: the purger's futex word (the futex compares the value
/// the purger saw, so a bump between its check and its sleep cancels the sleep).
static WORK: AtomicU32 = AtomicU32::new(0);

const NONE: u8 = 0;
const WANTED: u8 = 1;
const STARTING: u8 = 2;
const RUNNING: u8 = 3;
const UNAVAILABLE: u8 = 4;

/// Whether the purger sleeps with nothing to do (no timeout): only then does freeing
/// memory have to wake it; a purger in a timed sleep comes back by itself. SeqCst with
/// WORK, so a freer either sees the purger idle (and wakes it) or the purger sees the
/// freer's bump of WORK (and its futex wait returns at once): no wake-up is lost.
static IDLE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The purger thread's state. Acquire/Release between `start_if_wanted` (which claims the
/// start with a CAS) and `memory_freed` (which reads it to decide whether to wake).
static PURGER: AtomicU8 = AtomicU8::new(NONE);

/// Called after spans were freed or a large mapping went to the cache.
pub(crate) fn memory_freed() {
    let delay = DELAY_MS.load(Ordering::Relaxed);
    if delay == 0 {
        SEGMENTS.lock().purge_due(u64::MAX);
        super::large::purge_due(u64::MAX);
        return;
    }
    WORK.fetch_add(1, Ordering::SeqCst);
    match PURGER.load(Ordering::Acquire) {
        RUNNING if IDLE.swap(false, Ordering::SeqCst) => os::futex_wake(&WORK, 1, false),
        NONE => {
            let _ = PURGER.compare_exchange(NONE, WANTED, Ordering::AcqRel, Ordering::Relaxed);
        }
        UNAVAILABLE => {
            let deadline = os::monotonic_ms().saturating_sub(delay);
            SEGMENTS.lock().purge_due(deadline);
            super::large::purge_due(deadline);
        }
        _ => {}
    }
}

/// Starts the purger thread if pages were freed and it is not running. Call only where no
/// lock is held and no thread-cache borrow is live: spawning allocates.
#[inline]
pub(crate) fn start_if_wanted() {
    if PURGER.load(Ordering::Relaxed) == WANTED {
        start();
    }
}

#[cold]
fn start() {
    if PURGER.compare_exchange(WANTED, STARTING, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return;
    }
    if cfg!(miri) {
        // Miri has no futex to sleep on: purge on the freeing threads instead.
        PURGER.store(UNAVAILABLE, Ordering::Release);
        return;
    }
    let spawned = std::thread::Builder::new().name("pinalloc-purge".into()).spawn(run);
    let state = if spawned.is_ok() { RUNNING } else { UNAVAILABLE };
    PURGER.store(state, Ordering::Release);
}

/// The purger thread: purges what is due, then sleeps until more is due or more is freed.
fn run() {
    loop {
        IDLE.store(true, Ordering::SeqCst);
        let seen = WORK.load(Ordering::SeqCst);
        let delay = DELAY_MS.load(Ordering::Relaxed).max(1);
        let deadline = os::monotonic_ms().saturating_sub(delay);
        let dirty = SEGMENTS.lock().purge_due(deadline);
        let cached = super::large::purge_due(deadline);
        let timeout = (dirty || cached).then_some(delay.div_ceil(4));
        if timeout.is_some() {
            // Coming back by itself: freers need not wake it.
            IDLE.store(false, Ordering::SeqCst);
        }
        os::futex_wait(&WORK, seen, timeout.map(core::time::Duration::from_millis), false);
    }
}

/// Never start the purger thread: due pages are purged by the threads that free memory.
pub(crate) fn purge_on_freeing_threads() {
    PURGER.store(UNAVAILABLE, Ordering::Release);
}

/// After `fork()` the child has no purger thread; let the next free start one (unless
/// purging stays on the freeing threads).
pub(crate) fn forget_purger_after_fork() {
    if PURGER.load(Ordering::Relaxed) != UNAVAILABLE {
        PURGER.store(NONE, Ordering::Relaxed);
    }
}

/// Returns every parked block (depots, the calling thread's cache) to its span, and purges
/// every free page now.
pub(crate) fn purge_now() {
    let now = os::monotonic_ms();
    super::thread_cache::flush_current_thread();
    for class in 0..CLASSES {
        depot::drain(class, |chain| {
            // SAFETY: drained magazines are chains of free blocks of `class`, now ours. The
            // spans it frees are purged below.
            let _ = unsafe { central::give_back(class, chain, now) };
        });
    }
    SEGMENTS.lock().purge_due(u64::MAX);
    super::large::purge_due(u64::MAX);
}

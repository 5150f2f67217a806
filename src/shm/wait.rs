//! Blocking in shared memory: spin briefly (yielding the core after the first few
//! microseconds, see [`YIELD_AFTER`]), then sleep on a process-shared futex.
//!
//! An [`EventCount`] lets a process sleep until "something changed" without the changer
//! paying a syscall when nobody sleeps. A waiter announces itself (`sleepers += 1`), issues a
//! `SeqCst` fence, reads the epoch, re-checks its condition and sleeps on the epoch only if
//! the condition still fails; a notifier changes the state, issues a `SeqCst` fence and, only
//! if it then sees a sleeper, bumps the epoch and wakes. The two fences are each other's
//! partners (Dekker): either the waiter's re-check sees the new state, or the notifier sees
//! the sleeper — and then the bumped epoch makes the futex wait return at once or wakes it.
//!
//! Sleeps are cut into slices of [`LIVENESS_SLICE`], so a waiter whose peer died (and will
//! never notify) wakes to check the owners' liveness and recover.

use super::ShmError;
use crate::os;
use crate::sync::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

/// Longest single sleep: how soon a waiter notices a dead peer.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(20);

/// How long a waiter spins on its core alone; for the rest of its spin it yields the core
/// between looks. With more waiting processes than cores (two writers and two readers on
/// two cores), a pure spinner holds the core its peer needs to make progress: 1 MiB
/// messages through 2 nodes then ran at 0.27× memcpy, and at 0.75× with yields.
const YIELD_AFTER: Duration = Duration::from_micros(5);

/// An epoch and a count of sleepers, in shared memory (all-zero is the initial state).
#[repr(C)]
pub(crate) struct EventCount {
    epoch: AtomicU32,
    sleepers: AtomicU32,
}

impl EventCount {
    /// Wakes every sleeper, if there are any. Call after changing the state waited on.
    #[inline]
    pub(crate) fn notify(&self) {
        // SeqCst fence: partner of the waiter's fence in `wait_until` (see the module docs).
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.epoch.fetch_add(1, Ordering::Relaxed);
            os::futex_wake(&self.epoch, u32::MAX, true);
        }
    }
}

/// Calls `ready` until it returns `Some`, spinning for up to `spin`, then sleeping on `event`
/// in slices, for at most `timeout` in all (`Duration::MAX`: no limit). `ready(true)` asks the
/// condition to also check whether a peer it waits for has died (a syscall, so at most once
/// per slice). Runs out with [`ShmError::Timeout`] after one last look.
pub(crate) fn wait_until<R>(
    event: &EventCount,
    spin: Duration,
    timeout: Duration,
    mut ready: impl FnMut(bool) -> Option<Result<R, ShmError>>,
) -> Result<R, ShmError> {
    if let Some(result) = ready(false) {
        return result;
    }
    let start = Instant::now();
    let deadline = start.checked_add(timeout);
    let spin_until = start + spin.min(timeout).min(Duration::from_secs(3600));
    let yield_from = start + YIELD_AFTER;
    loop {
        for _ in 0..64 {
            core::hint::spin_loop();
            if let Some(result) = ready(false) {
                return result;
            }
        }
        let now = Instant::now();
        if now >= spin_until {
            break;
        }
        if now >= yield_from {
            os::yield_now();
        }
    }
    let mut last_check = start;
    loop {
        let now = Instant::now();
        let check_owners = now.duration_since(last_check) >= LIVENESS_SLICE / 2;
        if check_owners {
            last_check = now;
        }
        if let Some(result) = ready(check_owners) {
            return result;
        }
        let slice = match deadline {
            Some(deadline) if now >= deadline => return Err(ShmError::Timeout),
            Some(deadline) => (deadline - now).min(LIVENESS_SLICE),
            None => LIVENESS_SLICE,
        };
        event.sleepers.fetch_add(1, Ordering::Relaxed);
        // SeqCst fence: partner of the notifier's fence in `EventCount::notify`.
        fence(Ordering::SeqCst);
        let epoch = event.epoch.load(Ordering::Relaxed);
        let settled = ready(false);
        if settled.is_none() {
            os::futex_wait(&event.epoch, epoch, Some(slice), true);
        }
        event.sleepers.fetch_sub(1, Ordering::Relaxed);
        if let Some(result) = settled {
            return result;
        }
    }
}

//! A spin lock for the allocator's slow paths.
//!
//! The global allocator cannot use a lock that allocates or may call back into it; this one
//! is a single atomic flag. Waiters spin with exponential backoff and then yield the CPU, so
//! a holder that was descheduled is not starved. Critical sections are short (carving blocks
//! from a span, taking pages from a segment), and contention is rare because the thread
//! caches and depots absorb the common paths.

use super::{AtomicBool, Ordering, spin_hint};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

/// Mutual exclusion over a `T`, without allocation.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out one `&mut T` at a time (like `Mutex<T>`), so sharing it sends
// the `T` between threads.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: owning the lock owns the `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    #[cfg(not(loom))]
    pub(crate) const fn new(value: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        // Acquire pairs with the Release in `SpinGuard::drop`: the previous holder's writes
        // to the value are visible to us.
        if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
        SpinGuard { lock: self }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            // Relaxed: only a hint to wait; the CAS below acquires.
            while self.locked.load(Ordering::Relaxed) {
                if spins < 10 {
                    for _ in 0..1u32 << spins {
                        spin_hint();
                    }
                    spins += 1;
                } else {
                    crate::os::yield_now();
                }
            }
            // Acquire: as in `lock`.
            if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }

    /// Makes the lock usable again in a child process after `fork()`, whatever state the
    /// (now absent) threads of the parent left it in.
    ///
    /// # Safety
    /// Only in the child right after `fork()`, with no other thread running, and with the
    /// value consistent (the parent held every lock across the fork).
    pub(crate) unsafe fn force_unlock(&self) {
        // Relaxed: single-threaded at this point.
        self.locked.store(false, Ordering::Relaxed);
    }
}

/// The holder of a [`SpinLock`]; unlocks on drop.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: holding the guard means holding the lock: no other access exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` makes this access unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        // Release pairs with the Acquire in `lock`: our writes reach the next holder.
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::SpinLock;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    /// Two threads increment a counter under the lock: loom checks every interleaving for
    /// mutual exclusion (the cell reports any unordered access) and for a lost update.
    #[test]
    fn excludes_and_publishes() {
        loom::model(|| {
            let lock = Arc::new(SpinLock::new(UnsafeCell::new(0u32)));
            let other = {
                let lock = lock.clone();
                loom::thread::spawn(move || {
                    let guard = lock.lock();
                    // SAFETY: the guard gives exclusive access; loom verifies that claim.
                    guard.with_mut(|v| unsafe { *v += 1 });
                })
            };
            {
                let guard = lock.lock();
                // SAFETY: as above.
                guard.with_mut(|v| unsafe { *v += 1 });
            }
            other.join().unwrap();
            let guard = lock.lock();
            // SAFETY: as above.
            assert_eq!(guard.with(|v| unsafe { *v }), 2);
        });
    }
}

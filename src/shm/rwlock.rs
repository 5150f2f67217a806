//! [`SharedRwLock`]: a reader/writer lock in shared memory, across processes, with timeouts.
//!
//! One `AtomicU32` holds the whole state:
//!
//! | state | meaning |
//! |---|---|
//! | `0` | free |
//! | `n` (`1 ..= MAX_READERS`) | `n` readers hold it |
//! | `WRITER \| pid` | the process `pid` holds it for writing |
//!
//! Taking it is a CAS with `Acquire`, giving it back a `Release` RMW (partners: each other,
//! across holders). Writers are preferred: while `writers_waiting` is non-zero no new reader
//! enters, so a stream of readers cannot starve a writer. Sleeping is on an
//! [`EventCount`](super::wait) notified by every release.
//!
//! **A dead writer is recovered:** the writer's pid is part of the state, so a waiter that
//! finds the lock held by a process that no longer exists frees it with one CAS on the exact
//! value it saw (no other holder can be mistaken for it). A reader that dies holding the lock
//! leaves its count behind: writers then time out. Readers carry no identity in one word;
//! keep read sections short and bounded.

use super::segment::Segment;
use super::wait::{EventCount, wait_until};
use super::{Kind, ShmError};
use crate::os;
use crate::sync::{AtomicU32, Ordering};
use std::time::Duration;

const WRITER: u32 = 1 << 31;
const MAX_READERS: u32 = (1 << 30) - 1;

/// The lock's state in shared memory (all-zero is unlocked).
#[repr(C, align(64))]
pub(crate) struct SharedRwLock {
    state: AtomicU32,
    writers_waiting: AtomicU32,
    changed: EventCount,
}

/// How long a waiter spins before it sleeps.
const SPIN: Duration = Duration::from_micros(20);

impl SharedRwLock {
    /// The lock of an array or buffer segment, whose layout reserves one at the control
    /// offset.
    pub(crate) fn of(segment: &Segment) -> &SharedRwLock {
        assert!(matches!(segment.layout().kind, Kind::Array | Kind::Buffer), "a segment without a lock");
        // SAFETY: array and buffer layouts reserve an aligned SharedRwLock at the control
        // offset (64, in a page-aligned mapping), zeroed at creation (unlocked); it lives as
        // long as the mapping, which `segment` owns.
        unsafe { &*segment.control().cast::<SharedRwLock>() }
    }

    /// Takes the lock for reading, waiting at most `timeout`.
    pub(crate) fn read(&self, timeout: Duration) -> Result<(), ShmError> {
        wait_until(&self.changed, SPIN, timeout, |check_owners| {
            let state = self.state.load(Ordering::Relaxed);
            if state & WRITER != 0 {
                if check_owners {
                    self.recover(state);
                }
                return None;
            }
            if state >= MAX_READERS || self.writers_waiting.load(Ordering::Relaxed) != 0 {
                return None;
            }
            // Acquire: partner of the Release in `unlock_write` (the writer's bytes are seen).
            self.state.compare_exchange(state, state + 1, Ordering::Acquire, Ordering::Relaxed).ok()?;
            Some(Ok(()))
        })
    }

    /// Takes the lock for writing, waiting at most `timeout`.
    pub(crate) fn write(&self, timeout: Duration) -> Result<(), ShmError> {
        let me = WRITER | (os::process_id() & !WRITER);
        self.writers_waiting.fetch_add(1, Ordering::Relaxed);
        let result = wait_until(&self.changed, SPIN, timeout, |check_owners| {
            let state = self.state.load(Ordering::Relaxed);
            if state == 0 {
                // Acquire: partner of the Release in both unlocks (readers have finished
                // reading and the last writer's bytes are seen).
                self.state.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).ok()?;
                return Some(Ok(()));
            }
            if check_owners && state & WRITER != 0 {
                self.recover(state);
            }
            None
        });
        self.writers_waiting.fetch_sub(1, Ordering::Relaxed);
        if result.is_err() {
            // Readers held back for us may go now.
            self.changed.notify();
        }
        result
    }

    /// Frees a write lock whose holder's process is gone.
    fn recover(&self, seen: u32) {
        let pid = seen & !WRITER;
        if pid != os::process_id() && !os::process_alive(pid) {
            // AcqRel: takes over the dead writer's bytes as they are and releases the lock to
            // the next taker, like an unlock.
            if self.state.compare_exchange(seen, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                self.changed.notify();
            }
        }
    }

    /// Gives back a read lock.
    pub(crate) fn unlock_read(&self) {
        // Release: partner of a writer's Acquire CAS (our reads happen before its writes).
        let before = self.state.fetch_sub(1, Ordering::Release);
        debug_assert!(before & WRITER == 0 && before != 0, "read unlock of a lock not read-held");
        self.changed.notify();
    }

    /// Gives back the write lock.
    pub(crate) fn unlock_write(&self) {
        // Release: partner of the next holder's Acquire CAS (our writes are seen).
        self.state.store(0, Ordering::Release);
        self.changed.notify();
    }
}

//! The OS layer's own count of what it holds, for statistics above it.

use core::sync::atomic::{AtomicUsize, Ordering};

/// What the OS layer has mapped and released, process-wide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OsCounters {
    /// Bytes currently mapped by this crate (reserved or committed).
    pub mapped_bytes: usize,
    /// Mappings currently alive.
    pub live_mappings: usize,
    /// Bytes purged (returned to the OS while staying mapped) since the process started.
    pub purged_bytes_total: usize,
}

// Relaxed throughout: statistics. Each counter is updated by one atomic RMW and published
// with nothing; a snapshot may mix counters from slightly different moments.
static MAPPED_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_MAPPINGS: AtomicUsize = AtomicUsize::new(0);
static PURGED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// A snapshot of the counters.
pub fn counters() -> OsCounters {
    OsCounters {
        mapped_bytes: MAPPED_BYTES.load(Ordering::Relaxed),
        live_mappings: LIVE_MAPPINGS.load(Ordering::Relaxed),
        purged_bytes_total: PURGED_BYTES.load(Ordering::Relaxed),
    }
}

pub(crate) fn mapped(bytes: usize) {
    MAPPED_BYTES.fetch_add(bytes, Ordering::Relaxed);
    LIVE_MAPPINGS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn resized(old: usize, new: usize) {
    if new >= old {
        MAPPED_BYTES.fetch_add(new - old, Ordering::Relaxed);
    } else {
        MAPPED_BYTES.fetch_sub(old - new, Ordering::Relaxed);
    }
}

pub(crate) fn unmapped(bytes: usize) {
    MAPPED_BYTES.fetch_sub(bytes, Ordering::Relaxed);
    LIVE_MAPPINGS.fetch_sub(1, Ordering::Relaxed);
}

pub(crate) fn purged(bytes: usize) {
    PURGED_BYTES.fetch_add(bytes, Ordering::Relaxed);
}

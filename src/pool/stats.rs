//! What [`LockFreeBufferPool::stats`](super::LockFreeBufferPool::stats) and
//! [`counts`](super::LockFreeBufferPool::counts) report.

use super::config::BufferClass;

/// One class's counters since the pool was built.
///
/// Every get is a hit or a miss and every guard dropped is a return, so once all guards are
/// dropped `hits + misses == returns` and `buffers_in_use == 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Gets served with a pool buffer (from the thread cache or the shared stacks).
    pub hits: u64,
    /// The part of `hits` served by the thread cache alone, with no atomic operation.
    pub thread_cache_hits: u64,
    /// Gets that found the class at its maximum with nothing free and allocated a fallback.
    pub misses: u64,
    /// Buffers allocated: the pool's own (initial and grown) plus fallbacks.
    pub allocations: u64,
    /// Guards dropped.
    pub returns: u64,
    /// Compare-and-swaps on the class's shared stacks that failed and were retried.
    pub cas_retries: u64,
    /// Guards alive now.
    pub buffers_in_use: u64,
    /// Their bytes.
    pub bytes_in_use: u64,
    /// The most buffers that existed at once: pool buffers created (initial and grown; the
    /// pool never frees them) plus fallback buffers alive. What the class needed at its
    /// busiest, to size `initial` and `max` by.
    pub peak_buffers: u64,
    /// `peak_buffers` in bytes.
    pub peak_bytes: u64,
    /// Pool buffers created so far (initial plus grown).
    pub created: u64,
}

/// Counters per class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferPoolStats {
    /// Serialization buffers.
    pub serialization: ClassStats,
    /// Compression buffers.
    pub compression: ClassStats,
    /// SIMD buffers.
    pub simd: ClassStats,
}

impl BufferPoolStats {
    /// One class's counters.
    pub fn class(&self, class: BufferClass) -> &ClassStats {
        match class {
            BufferClass::Serialization => &self.serialization,
            BufferClass::Compression => &self.compression,
            BufferClass::Simd => &self.simd,
        }
    }

    /// The hit ratio over all classes (1.0 when nothing was asked for yet).
    pub fn hit_ratio(&self) -> f64 {
        let (hits, misses) = BufferClass::ALL
            .iter()
            .map(|&c| self.class(c))
            .fold((0, 0), |(h, m), s| (h + s.hits, m + s.misses));
        if hits + misses == 0 { 1.0 } else { hits as f64 / (hits + misses) as f64 }
    }
}

/// Free buffers per class, on the shared stacks and in thread caches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferCounts {
    /// Free serialization buffers.
    pub serialization: u64,
    /// Free compression buffers.
    pub compression: u64,
    /// Free SIMD buffers.
    pub simd: u64,
}

impl BufferCounts {
    /// One class's count.
    pub fn class(&self, class: BufferClass) -> u64 {
        match class {
            BufferClass::Serialization => self.serialization,
            BufferClass::Compression => self.compression,
            BufferClass::Simd => self.simd,
        }
    }
}

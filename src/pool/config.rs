//! What a [`LockFreeBufferPool`](super::LockFreeBufferPool) holds: per buffer class, the
//! buffers' size and alignment, how many exist at start-up and at most, how many a thread
//! keeps to itself, and whether they come back zeroed. Checked once, by
//! [`LockFreeBufferPoolConfig::validate`], before anything is mapped.

use super::SimdLane;
use core::fmt;

/// The buffer classes of the pool, each with its own stacks, caches and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferClass {
    /// Encoding buffers (JSON, binary protocols): 128 KiB by default.
    Serialization,
    /// Compression work buffers: 64 KiB by default.
    Compression,
    /// Vector data for SIMD code, aligned to a cache line: 1024 [`SimdLane`]s by default.
    Simd,
}

impl BufferClass {
    /// Every class, in index order.
    pub const ALL: [BufferClass; 3] =
        [BufferClass::Serialization, BufferClass::Compression, BufferClass::Simd];

    /// The class's position in per-class arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The class's name, for messages and tables.
    pub const fn name(self) -> &'static str {
        match self {
            BufferClass::Serialization => "serialization",
            BufferClass::Compression => "compression",
            BufferClass::Simd => "simd",
        }
    }
}

impl fmt::Display for BufferClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One class's settings. A `const` builder:
///
/// ```
/// use pinalloc::pool::ClassConfig;
/// let frames = ClassConfig::new(4096, 64).initial(256).max(4096).thread_cache(32).zeroed(true);
/// assert_eq!(frames.buffer_size(), 4096);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassConfig {
    buffer_size: usize,
    alignment: usize,
    initial_count: u32,
    max_count: u32,
    thread_cache: u32,
    zero_on_reuse: bool,
}

impl ClassConfig {
    /// Buffers of `buffer_size` bytes aligned to `alignment`; 64 created at start-up, up to
    /// 1024 in all, 16 kept per thread, not zeroed on reuse.
    pub const fn new(buffer_size: usize, alignment: usize) -> Self {
        ClassConfig {
            buffer_size,
            alignment,
            initial_count: 64,
            max_count: 1024,
            thread_cache: 16,
            zero_on_reuse: false,
        }
    }

    /// Buffers created (mapped and touched) when the pool is built.
    pub const fn initial(mut self, count: u32) -> Self {
        self.initial_count = count;
        self
    }

    /// The most buffers the pool will create for this class; past it, [`get`] allocates a
    /// fallback buffer (a miss) and [`try_get`] returns `None`.
    ///
    /// [`get`]: super::LockFreeBufferPool::get
    /// [`try_get`]: super::LockFreeBufferPool::try_get
    pub const fn max(mut self, count: u32) -> Self {
        self.max_count = count;
        self
    }

    /// Free buffers each thread keeps to itself (0: every operation uses the shared stack;
    /// at most [`MAX_THREAD_CACHE`]). Refills and flushes move half of this at a time.
    pub const fn thread_cache(mut self, count: u32) -> Self {
        self.thread_cache = count;
        self
    }

    /// Whether a returned buffer is zeroed before anyone gets it again (fresh ones are zero).
    pub const fn zeroed(mut self, zero_on_reuse: bool) -> Self {
        self.zero_on_reuse = zero_on_reuse;
        self
    }

    /// Bytes per buffer.
    pub const fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// Alignment of every buffer.
    pub const fn alignment(&self) -> usize {
        self.alignment
    }

    /// Buffers created at start-up.
    pub const fn initial_count(&self) -> u32 {
        self.initial_count
    }

    /// The most buffers the pool creates.
    pub const fn max_count(&self) -> u32 {
        self.max_count
    }

    /// Free buffers each thread keeps.
    pub const fn thread_cache_size(&self) -> u32 {
        self.thread_cache
    }

    /// Whether buffers are zeroed when they come back.
    pub const fn zero_on_reuse(&self) -> bool {
        self.zero_on_reuse
    }

    /// Distance between two buffers in the class's region: the size rounded up to the
    /// alignment (`None` on overflow).
    pub(crate) const fn stride(&self) -> Option<usize> {
        match self.buffer_size.checked_add(self.alignment - 1) {
            Some(padded) => Some(padded & !(self.alignment - 1)),
            None => None,
        }
    }

    fn validate(&self, class: BufferClass) -> Result<(), ConfigError> {
        let error = |kind| Err(ConfigError { class, kind });
        if self.buffer_size == 0 {
            return error(ConfigErrorKind::ZeroSize);
        }
        if !self.alignment.is_power_of_two() {
            return error(ConfigErrorKind::AlignmentNotPowerOfTwo { alignment: self.alignment });
        }
        if self.max_count == 0 {
            return error(ConfigErrorKind::ZeroMaximum);
        }
        if self.max_count < self.initial_count {
            return error(ConfigErrorKind::MaximumBelowInitial {
                initial: self.initial_count,
                max: self.max_count,
            });
        }
        if self.thread_cache as usize > MAX_THREAD_CACHE {
            return error(ConfigErrorKind::ThreadCacheTooLarge { size: self.thread_cache });
        }
        if self.max_count > MAX_BUFFERS {
            return error(ConfigErrorKind::TooManyBuffers { max: self.max_count });
        }
        let region = self.stride().and_then(|stride| stride.checked_mul(self.max_count as usize));
        if region.is_none_or(|bytes| bytes > isize::MAX as usize) {
            return error(ConfigErrorKind::TooLarge);
        }
        if class == BufferClass::Simd {
            let lane = core::mem::size_of::<SimdLane>();
            if !self.buffer_size.is_multiple_of(lane) || self.alignment < core::mem::align_of::<SimdLane>() {
                return error(ConfigErrorKind::NotSimdLanes { lane });
            }
        }
        Ok(())
    }
}

/// The most buffers one class may have: their indices must stay below the stack's index
/// space.
pub const MAX_BUFFERS: u32 = 1 << 30;

/// The largest thread cache: two magazines' worth, since a cache exchanges half of itself
/// with the shared stacks as one magazine.
pub const MAX_THREAD_CACHE: usize = 2 * super::class::MAGAZINE;

/// The whole pool's settings: one [`ClassConfig`] per [`BufferClass`].
///
/// The defaults are the seed's classes: serialization buffers of 128 KiB and compression
/// buffers of 64 KiB (both page-aligned), and SIMD buffers of 1024 `[f64; 4]` lanes (32 KiB)
/// aligned to a 64-byte cache line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockFreeBufferPoolConfig {
    classes: [ClassConfig; 3],
}

impl Default for LockFreeBufferPoolConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl LockFreeBufferPoolConfig {
    /// The default classes (see the type's docs).
    pub const fn new() -> Self {
        LockFreeBufferPoolConfig {
            classes: [
                ClassConfig::new(128 << 10, 4096).initial(32).max(512).thread_cache(8),
                ClassConfig::new(64 << 10, 4096).initial(32).max(512).thread_cache(8),
                ClassConfig::new(1024 * core::mem::size_of::<SimdLane>(), 64)
                    .initial(32)
                    .max(1024)
                    .thread_cache(8),
            ],
        }
    }

    /// Replaces one class's settings.
    pub const fn class(mut self, class: BufferClass, config: ClassConfig) -> Self {
        self.classes[class.index()] = config;
        self
    }

    /// One class's settings.
    pub const fn get(&self, class: BufferClass) -> &ClassConfig {
        &self.classes[class.index()]
    }

    /// Checks every class: non-zero sizes and maximums, power-of-two alignments, maximums
    /// not below initial counts, regions that fit the address space, and SIMD buffers made
    /// of whole, aligned lanes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        BufferClass::ALL.iter().try_for_each(|&class| self.get(class).validate(class))
    }
}

/// Why a [`LockFreeBufferPoolConfig`] was refused: which class, and what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The class whose settings are wrong.
    pub class: BufferClass,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

/// What is wrong with a class's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The buffer size is zero.
    ZeroSize,
    /// The alignment is not a power of two.
    AlignmentNotPowerOfTwo {
        /// The alignment given.
        alignment: usize,
    },
    /// The maximum count is zero.
    ZeroMaximum,
    /// The maximum count is below the initial count.
    MaximumBelowInitial {
        /// The initial count given.
        initial: u32,
        /// The maximum given.
        max: u32,
    },
    /// A thread cache larger than [`MAX_THREAD_CACHE`].
    ThreadCacheTooLarge {
        /// The size given.
        size: u32,
    },
    /// More buffers than one class can index ([`MAX_BUFFERS`]).
    TooManyBuffers {
        /// The maximum given.
        max: u32,
    },
    /// The maximum count of buffers of this size does not fit in the address space.
    TooLarge,
    /// SIMD buffers must hold whole lanes and be aligned at least as a lane.
    NotSimdLanes {
        /// Bytes per lane.
        lane: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buffer class {}: ", self.class)?;
        match self.kind {
            ConfigErrorKind::ZeroSize => f.write_str("the buffer size is zero"),
            ConfigErrorKind::AlignmentNotPowerOfTwo { alignment } => {
                write!(f, "the alignment {alignment} is not a power of two")
            }
            ConfigErrorKind::ZeroMaximum => f.write_str("the maximum buffer count is zero"),
            ConfigErrorKind::MaximumBelowInitial { initial, max } => {
                write!(f, "the maximum count {max} is below the initial count {initial}")
            }
            ConfigErrorKind::ThreadCacheTooLarge { size } => {
                write!(f, "a thread cache of {size} buffers is more than {MAX_THREAD_CACHE}")
            }
            ConfigErrorKind::TooManyBuffers { max } => {
                write!(f, "{max} buffers is more than one class can hold ({MAX_BUFFERS})")
            }
            ConfigErrorKind::TooLarge => f.write_str("the maximum count of buffers does not fit in memory"),
            ConfigErrorKind::NotSimdLanes { lane } => {
                write!(f, "SIMD buffers must be a multiple of {lane} bytes, aligned to at least a lane")
            }
        }
    }
}

impl core::error::Error for ConfigError {}

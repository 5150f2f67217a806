//! [`BufferGuard`]: one buffer held by one owner, returned to the pool when dropped.

use super::config::BufferClass;
use super::pool::Shared;
use bytemuck::Pod;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// A buffer taken from a [`LockFreeBufferPool`](super::LockFreeBufferPool): derefs to the
/// buffer as `[T]` (bytes unless typed) and goes back to the pool when dropped: to the
/// dropping thread's cache, or to the shared stack if that is full.
///
/// Invariant: the guard alone holds its buffer (`len > 0` elements of `T` at `ptr`, a
/// buffer of the class's region, or a fallback allocation when `fallback`); the pool hands
/// the buffer to nobody else until the guard drops.
///
/// `Send` (for `T: Send`): take a buffer on one thread and drop it on another. The lifetime
/// ties the guard to the pool, so the pool outlives it.
///
/// ```
/// use pinalloc::pool::LockFreeBufferPool;
/// let pool = LockFreeBufferPool::new()?;
/// let mut frame = pool.get_serialization_buffer_guard();
/// frame[..5].copy_from_slice(b"hello");
/// assert_eq!(frame.len(), 128 << 10);
/// let mut lanes = pool.get_simd_buffer_guard();
/// lanes[0] = [1.0, 2.0, 3.0, 4.0];
/// assert_eq!(lanes.as_ptr() as usize % 64, 0);
/// # Ok::<(), pinalloc::pool::PoolError>(())
/// ```
#[must_use = "dropping the guard returns the buffer at once"]
pub struct BufferGuard<'pool, T: Pod = u8> {
    ptr: NonNull<T>,
    len: usize,
    class: BufferClass,
    /// Allocated because the class had none free: freed, not pooled, when the guard drops.
    fallback: bool,
    shared: &'pool Shared,
    _holds: PhantomData<&'pool mut [T]>,
}

// SAFETY: the guard owns its buffer exclusively (invariant), like a `Box<[T]>`; returning it
// from another thread is supported (the caches and stacks are per thread or lock-free), and
// `Shared` is `Sync`.
unsafe impl<T: Pod + Send> Send for BufferGuard<'_, T> {}
// SAFETY: `&BufferGuard` gives only `&[T]`.
unsafe impl<T: Pod + Sync> Sync for BufferGuard<'_, T> {}

impl<'pool> BufferGuard<'pool> {
    /// A guard for the buffer of `class` at `ptr`.
    ///
    /// # Safety
    /// The caller was just handed that buffer (a buffer of the class, or a fallback
    /// allocation of its layout when `fallback`) and holds it exclusively.
    #[inline(always)]
    pub(crate) unsafe fn new(
        shared: &'pool Shared,
        class: BufferClass,
        ptr: NonNull<u8>,
        fallback: bool,
    ) -> Self {
        // Validated non-zero (`ConfigErrorKind::ZeroSize`).
        let len = shared.classes[class.index()].config.buffer_size();
        BufferGuard { ptr, len, class, fallback, shared, _holds: PhantomData }
    }

    /// The same buffer as elements of `T`, if the class's alignment and size suit `T`
    /// (otherwise the guard comes back unchanged).
    pub fn cast<T: Pod>(self) -> Result<BufferGuard<'pool, T>, Self> {
        let config = self.shared.classes[self.class.index()].config;
        let size = core::mem::size_of::<T>();
        if size == 0 || config.alignment() < core::mem::align_of::<T>() || !self.len.is_multiple_of(size) {
            return Err(self);
        }
        let this = core::mem::ManuallyDrop::new(self);
        Ok(BufferGuard {
            ptr: this.ptr.cast(),
            len: this.len / size,
            class: this.class,
            fallback: this.fallback,
            shared: this.shared,
            _holds: PhantomData,
        })
    }
}

impl<T: Pod> BufferGuard<'_, T> {
    /// The buffer's class.
    pub fn class(&self) -> BufferClass {
        self.class
    }

    /// Whether the pool had none free and this buffer was allocated for the occasion.
    pub fn is_fallback(&self) -> bool {
        self.fallback
    }

    /// The buffer (the seed's name for `Deref`).
    pub fn data(&self) -> &[T] {
        self
    }

    /// The buffer, mutably (the seed's name for `DerefMut`).
    pub fn data_mut(&mut self) -> &mut [T] {
        self
    }

    /// The buffer's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self)
    }

    /// The buffer's bytes, mutably.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(self)
    }
}

impl<T: Pod> BufferGuard<'_, T> {
    /// `len`, which the compiler is told is never zero, so that indexing the first element
    /// needs no bounds check (and no unwind path that would keep the guard in memory).
    #[inline(always)]
    fn non_zero_len(&self) -> usize {
        // SAFETY: `len > 0` (invariant: sizes are validated non-zero, `cast` divides exactly).
        unsafe { core::hint::assert_unchecked(self.len > 0) };
        self.len
    }
}

impl<T: Pod> Deref for BufferGuard<'_, T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: the guard holds `len` initialised `T`s at `ptr` (invariant; the region and
        // fallbacks start zeroed or hold earlier writes, and every bit pattern is a valid
        // `Pod`), and `&self` excludes writers.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.non_zero_len()) }
    }
}

impl<T: Pod> DerefMut for BufferGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`; `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.non_zero_len()) }
    }
}

impl<T: Pod> AsRef<[T]> for BufferGuard<'_, T> {
    fn as_ref(&self) -> &[T] {
        self
    }
}

impl<T: Pod> AsMut<[T]> for BufferGuard<'_, T> {
    fn as_mut(&mut self) -> &mut [T] {
        self
    }
}

impl<T: Pod> Drop for BufferGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: the guard held the buffer (invariant) and gives it up here.
        unsafe { self.shared.give_back(self.class, self.ptr.cast(), self.fallback) };
    }
}

impl<T: Pod> fmt::Debug for BufferGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferGuard")
            .field("class", &self.class)
            .field("len", &self.len)
            .field("fallback", &self.is_fallback())
            .finish()
    }
}

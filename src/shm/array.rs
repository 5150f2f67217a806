//! [`SharedArray`]: a fixed-length array of plain-old-data elements shared between processes.

use super::rwlock::SharedRwLock;
use super::segment::{Layout, Segment, ShmOptions};
use super::{Kind, ShmError};
use bytemuck::Pod;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ops::{Deref, DerefMut};
use std::time::Duration;

/// How long [`SharedArray::get`] and [`SharedArray::set`] wait for the lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// A named array of `T` in shared memory, with its length and element size in the header,
/// and a cross-process reader/writer lock (the seed's `SharedArray<T>`).
///
/// `T: Pod` makes every byte pattern a valid `T`, so whatever a peer wrote is at worst a wrong
/// value, never undefined behaviour. [`open`](Self::open) rejects a segment whose element
/// size or alignment differs from `T`'s.
pub struct SharedArray<T: Pod> {
    segment: Segment,
    len: usize,
    lock_timeout: Duration,
    _elements: PhantomData<T>,
}

impl<T: Pod> core::fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedArray").field("name", &self.segment.name()).field("len", &self.len).finish()
    }
}

fn layout<T>(len: usize) -> Result<Layout, ShmError> {
    if size_of::<T>() == 0 || align_of::<T>() > 4096 {
        return Err(ShmError::InvalidParameter {
            what: "elements must be 1 byte or more, aligned to at most 4096",
        });
    }
    if len == 0 {
        return Err(ShmError::InvalidParameter { what: "an array needs at least one element" });
    }
    let data_len = len
        .checked_mul(size_of::<T>())
        .ok_or(ShmError::InvalidParameter { what: "the array would not fit in the address space" })?;
    let params = [size_of::<T>() as u64, align_of::<T>() as u64];
    Layout::new(Kind::Array, params, size_of::<SharedRwLock>(), align_of::<T>().max(64), data_len)
}

impl<T: Pod> SharedArray<T> {
    /// Creates the array `name` of `len` zeroed elements.
    pub fn create(name: &str, len: usize) -> Result<Self, ShmError> {
        Self::create_with(name, len, ShmOptions::new())
    }

    /// [`create`](Self::create) with options.
    pub fn create_with(name: &str, len: usize, options: ShmOptions) -> Result<Self, ShmError> {
        Ok(Self::from_segment(Segment::create(Some(name), layout::<T>(len)?, options, |_| {})?, len))
    }

    /// An array with no name, for one process and its forked children.
    pub fn anonymous(len: usize) -> Result<Self, ShmError> {
        Ok(Self::from_segment(Segment::create(None, layout::<T>(len)?, ShmOptions::new(), |_| {})?, len))
    }

    /// Opens the array `name`, learning its length from the header. Fails with
    /// [`ShmError::ElementMismatch`] if its elements are not `T`-sized and `T`-aligned.
    pub fn open(name: &str) -> Result<Self, ShmError> {
        let segment = Segment::open(name, Kind::Array, |params, data_len| {
            let [size, align] = params;
            if size != size_of::<T>() as u64 || align != align_of::<T>() as u64 {
                return Err(ShmError::ElementMismatch {
                    expected_size: size_of::<T>() as u64,
                    found_size: size,
                });
            }
            if !data_len.is_multiple_of(size_of::<T>()) {
                return Err(ShmError::Corrupt { what: "the array's data is not a whole number of elements" });
            }
            layout::<T>(data_len / size_of::<T>())
        })?;
        let len = segment.layout().data_len / size_of::<T>();
        Ok(Self::from_segment(segment, len))
    }

    fn from_segment(segment: Segment, len: usize) -> Self {
        SharedArray { segment, len, lock_timeout: DEFAULT_LOCK_TIMEOUT, _elements: PhantomData }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: an array has at least one element.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The name, or `None` if anonymous.
    pub fn name(&self) -> Option<&str> {
        self.segment.name()
    }

    /// Whether dropping this handle leaves the name in place.
    pub fn set_persist(&mut self, persist: bool) {
        self.segment.set_persist(persist)
    }

    /// How long [`get`](Self::get) and [`set`](Self::set) wait for the lock
    /// ([`DEFAULT_LOCK_TIMEOUT`] unless changed).
    pub fn set_lock_timeout(&mut self, timeout: Duration) {
        self.lock_timeout = timeout;
    }

    fn lock(&self) -> &SharedRwLock {
        SharedRwLock::of(&self.segment)
    }

    fn check(&self, index: usize) -> Result<(), ShmError> {
        if index < self.len {
            Ok(())
        } else {
            Err(ShmError::OutOfBounds { offset: index as u64, len: 1, size: self.len as u64 })
        }
    }

    /// Element `index`, read under the read lock.
    pub fn get(&self, index: usize) -> Result<T, ShmError> {
        self.check(index)?;
        Ok(self.read_lock(self.lock_timeout)?[index])
    }

    /// Sets element `index` under the write lock.
    pub fn set(&self, index: usize, value: T) -> Result<(), ShmError> {
        self.check(index)?;
        self.write_lock(self.lock_timeout)?[index] = value;
        Ok(())
    }

    /// The whole array for reading, shared with other readers; derefs to `[T]`.
    pub fn read_lock(&self, timeout: Duration) -> Result<ArrayReadGuard<'_, T>, ShmError> {
        self.lock().read(timeout)?;
        Ok(ArrayReadGuard { array: self })
    }

    /// The whole array for writing, exclusive; derefs mutably to `[T]`.
    pub fn write_lock(&self, timeout: Duration) -> Result<ArrayWriteGuard<'_, T>, ShmError> {
        self.lock().write(timeout)?;
        Ok(ArrayWriteGuard { array: self })
    }

    fn elements(&self) -> *mut T {
        self.segment.data().cast::<T>()
    }
}

/// A read lock on a [`SharedArray`]: `&[T]` while it lives.
pub struct ArrayReadGuard<'a, T: Pod> {
    array: &'a SharedArray<T>,
}

impl<T: Pod> Deref for ArrayReadGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` elements of `T`, aligned (the layout aligned the data to T), mapped for
        // the array's lifetime; any bytes are a valid `T` (Pod); the read lock keeps
        // cooperating writers out while the guard lives.
        unsafe { core::slice::from_raw_parts(self.array.elements(), self.array.len) }
    }
}

impl<T: Pod> Drop for ArrayReadGuard<'_, T> {
    fn drop(&mut self) {
        self.array.lock().unlock_read()
    }
}

/// The write lock on a [`SharedArray`]: `&mut [T]` while it lives.
pub struct ArrayWriteGuard<'a, T: Pod> {
    array: &'a SharedArray<T>,
}

impl<T: Pod> Deref for ArrayWriteGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: as for the read guard; the write lock is stronger.
        unsafe { core::slice::from_raw_parts(self.array.elements(), self.array.len) }
    }
}

impl<T: Pod> DerefMut for ArrayWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`; the write lock excludes every cooperating process and
        // `&mut self` every other borrow through this guard.
        unsafe { core::slice::from_raw_parts_mut(self.array.elements(), self.array.len) }
    }
}

impl<T: Pod> Drop for ArrayWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.array.lock().unlock_write()
    }
}

//! [`SharedBuffer`]: bytes and plain structures at offsets, under a cross-process
//! reader/writer lock (the seed's `BufferReadWrite`).

use super::region::check_range;
use super::rwlock::SharedRwLock;
use super::segment::{Layout, Segment, ShmOptions};
use super::{Kind, ShmError};
use bytemuck::Pod;
use core::mem::size_of;
use std::time::Duration;

const DATA_ALIGN: usize = 64;

/// A named block of bytes with a reader/writer lock in the same segment. Read and write
/// bytes or [`Pod`] structures at offsets, bounds-checked, under
/// [`acquire_read_lock`](Self::acquire_read_lock) /
/// [`acquire_write_lock`](Self::acquire_write_lock), or through the one-call helpers that take
/// the lock themselves.
///
/// The lock works across processes (a futex in the segment) and every wait has a timeout. A
/// process that dies holding the write lock does not wedge it: the next waiter recovers it.
#[derive(Debug)]
pub struct SharedBuffer {
    segment: Segment,
}

fn layout(size: usize) -> Result<Layout, ShmError> {
    if size == 0 {
        return Err(ShmError::InvalidParameter { what: "a buffer needs at least one byte" });
    }
    Layout::new(Kind::Buffer, [size as u64, 0], size_of::<SharedRwLock>(), DATA_ALIGN, size)
}

impl SharedBuffer {
    /// Creates the buffer `name` of `size` zero bytes, unlocked.
    pub fn create(name: &str, size: usize) -> Result<Self, ShmError> {
        Self::create_with(name, size, ShmOptions::new())
    }

    /// [`create`](Self::create) with options.
    pub fn create_with(name: &str, size: usize, options: ShmOptions) -> Result<Self, ShmError> {
        Ok(SharedBuffer { segment: Segment::create(Some(name), layout(size)?, options, |_| {})? })
    }

    /// A buffer with no name, for one process and its forked children.
    pub fn anonymous(size: usize) -> Result<Self, ShmError> {
        Ok(SharedBuffer { segment: Segment::create(None, layout(size)?, ShmOptions::new(), |_| {})? })
    }

    /// Opens the buffer `name`, learning its size from the header.
    pub fn open(name: &str) -> Result<Self, ShmError> {
        let segment = Segment::open_sized(name, Kind::Buffer, layout)?;
        Ok(SharedBuffer { segment })
    }

    /// Size of the data in bytes.
    pub fn len(&self) -> usize {
        self.segment.layout().data_len
    }

    /// Always `false`.
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

    fn lock(&self) -> &SharedRwLock {
        SharedRwLock::of(&self.segment)
    }

    /// The data, for a guard.
    ///
    /// # Safety
    /// The caller holds the lock (read or write) for the returned borrow's lifetime.
    unsafe fn data(&self) -> &[u8] {
        // SAFETY: the data is `len` mapped bytes; under the lock (the caller's contract) no
        // cooperating process writes them.
        unsafe { core::slice::from_raw_parts(self.segment.data(), self.len()) }
    }

    /// The data, writable, for the write guard.
    ///
    /// # Safety
    /// The caller holds the write lock for the returned borrow's lifetime, with no other
    /// borrow of the data alive.
    #[allow(clippy::mut_from_ref)] // exclusive through the lock, not through `&self`
    unsafe fn data_mut(&self) -> &mut [u8] {
        // SAFETY: the data is `len` mapped, writable bytes; under the lock (the caller's
        // contract) no cooperating process or other borrow touches them.
        unsafe { core::slice::from_raw_parts_mut(self.segment.data(), self.len()) }
    }

    /// Takes the lock for reading (shared with other readers), waiting at most `timeout`
    /// (`Duration::MAX`: no limit); [`ShmError::Timeout`] otherwise.
    pub fn acquire_read_lock(&self, timeout: Duration) -> Result<ReadGuard<'_>, ShmError> {
        self.lock().read(timeout)?;
        Ok(ReadGuard { buffer: self })
    }

    /// Takes the lock for writing (exclusive), waiting at most `timeout`.
    pub fn acquire_write_lock(&self, timeout: Duration) -> Result<WriteGuard<'_>, ShmError> {
        self.lock().write(timeout)?;
        Ok(WriteGuard { buffer: self })
    }

    /// Copies bytes at `offset` into `dst` under a read lock.
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8], timeout: Duration) -> Result<(), ShmError> {
        self.acquire_read_lock(timeout)?.read_bytes(offset, dst)
    }

    /// Copies `src` to `offset` under the write lock.
    pub fn write_bytes(&self, offset: usize, src: &[u8], timeout: Duration) -> Result<(), ShmError> {
        self.acquire_write_lock(timeout)?.write_bytes(offset, src)
    }

    /// Reads a `T` at `offset` (any alignment) under a read lock.
    pub fn read<T: Pod>(&self, offset: usize, timeout: Duration) -> Result<T, ShmError> {
        self.acquire_read_lock(timeout)?.read(offset)
    }

    /// Writes `value` at `offset` (any alignment) under the write lock.
    pub fn write<T: Pod>(&self, offset: usize, value: &T, timeout: Duration) -> Result<(), ShmError> {
        self.acquire_write_lock(timeout)?.write(offset, value)
    }
}

/// A read lock on a [`SharedBuffer`]; released on drop.
#[derive(Debug)]
pub struct ReadGuard<'a> {
    buffer: &'a SharedBuffer,
}

impl ReadGuard<'_> {
    /// The data. Valid while the guard lives, as long as every peer honours the lock.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: we hold the read lock for the guard's lifetime.
        unsafe { self.buffer.data() }
    }

    /// Copies bytes at `offset` into `dst`.
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        copy_out(self.bytes(), offset, dst)
    }

    /// Reads a `T` at `offset` (unaligned).
    pub fn read<T: Pod>(&self, offset: usize) -> Result<T, ShmError> {
        read_pod(self.bytes(), offset)
    }
}

fn copy_out(bytes: &[u8], offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
    check_range(offset, dst.len(), bytes.len())?;
    dst.copy_from_slice(&bytes[offset..offset + dst.len()]);
    Ok(())
}

fn read_pod<T: Pod>(bytes: &[u8], offset: usize) -> Result<T, ShmError> {
    check_range(offset, size_of::<T>(), bytes.len())?;
    Ok(bytemuck::pod_read_unaligned(&bytes[offset..offset + size_of::<T>()]))
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.buffer.lock().unlock_read()
    }
}

/// The write lock on a [`SharedBuffer`]; released on drop.
#[derive(Debug)]
pub struct WriteGuard<'a> {
    buffer: &'a SharedBuffer,
}

impl WriteGuard<'_> {
    /// The data, readable.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: we hold the write lock for the guard's lifetime.
        unsafe { self.buffer.data() }
    }

    /// The data, writable. Valid while the guard lives, as long as every peer honours the lock.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: we hold the write lock for the guard's lifetime, and `&mut self` excludes
        // every other borrow through this guard.
        unsafe { self.buffer.data_mut() }
    }

    /// Copies bytes at `offset` into `dst`.
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        copy_out(self.bytes(), offset, dst)
    }

    /// Reads a `T` at `offset` (unaligned).
    pub fn read<T: Pod>(&self, offset: usize) -> Result<T, ShmError> {
        read_pod(self.bytes(), offset)
    }

    /// Copies `src` to `offset`.
    pub fn write_bytes(&mut self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        check_range(offset, src.len(), self.buffer.len())?;
        self.bytes_mut()[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }

    /// Writes `value` at `offset` (unaligned).
    pub fn write<T: Pod>(&mut self, offset: usize, value: &T) -> Result<(), ShmError> {
        self.write_bytes(offset, bytemuck::bytes_of(value))
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.buffer.lock().unlock_write()
    }
}

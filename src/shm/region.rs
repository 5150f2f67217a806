//! [`SharedRegion`]: a named block of bytes shared between processes.

use super::segment::{Layout, Segment, ShmOptions};
use super::{Kind, ShmError};

/// Data alignment of a raw region: a cache line.
const DATA_ALIGN: usize = 64;

/// A block of shared bytes, found by name: the seed's `SharedMemory.Buffer` without the
/// structure on top. The header records its size, so [`open`](Self::open) needs only the
/// name.
///
/// Access is unsynchronised: [`read`](Self::read) and [`write`](Self::write) copy bytes, and
/// ordering them against another process is the caller's business (use a
/// [`SharedBuffer`](super::SharedBuffer) for a lock, a
/// [`CircularBuffer`](super::CircularBuffer) for messages).
#[derive(Debug)]
pub struct SharedRegion {
    segment: Segment,
}

pub(crate) fn check_range(offset: usize, len: usize, size: usize) -> Result<(), ShmError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(ShmError::OutOfBounds { offset: offset as u64, len: len as u64, size: size as u64 }),
    }
}

fn layout(size: usize) -> Result<Layout, ShmError> {
    if size == 0 {
        return Err(ShmError::InvalidParameter { what: "a region needs at least one byte" });
    }
    Layout::new(Kind::Region, [size as u64, 0], 0, DATA_ALIGN, size)
}

impl SharedRegion {
    /// Creates the region `name` with `size` bytes of zeroes; the name is removed when this
    /// handle drops. Fails with [`ShmError::AlreadyExists`] if the name is taken.
    pub fn create(name: &str, size: usize) -> Result<Self, ShmError> {
        Self::create_with(name, size, ShmOptions::new())
    }

    /// [`create`](Self::create) with options (huge pages, persistence).
    pub fn create_with(name: &str, size: usize, options: ShmOptions) -> Result<Self, ShmError> {
        Ok(SharedRegion { segment: Segment::create(Some(name), layout(size)?, options, |_| {})? })
    }

    /// A region with no name, for one process and the children it forks.
    pub fn anonymous(size: usize) -> Result<Self, ShmError> {
        Ok(SharedRegion { segment: Segment::create(None, layout(size)?, ShmOptions::new(), |_| {})? })
    }

    /// Opens the region `name`, learning its size from the header.
    pub fn open(name: &str) -> Result<Self, ShmError> {
        let segment = Segment::open_sized(name, Kind::Region, layout)?;
        Ok(SharedRegion { segment })
    }

    /// The region's size in bytes.
    pub fn len(&self) -> usize {
        self.segment.layout().data_len
    }

    /// Always `false`: a region has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The first byte, aligned to 64. Valid for [`len`](Self::len) bytes while `self` lives;
    /// other processes may write any of them at any time.
    pub fn as_ptr(&self) -> *mut u8 {
        self.segment.data()
    }

    /// Copies `dst.len()` bytes from `offset` into `dst`.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        check_range(offset, dst.len(), self.len())?;
        // SAFETY: in bounds (checked); `dst` is ours, so the ranges do not overlap. Bytes have
        // no invalid values, whatever another process left there.
        unsafe { self.as_ptr().add(offset).copy_to_nonoverlapping(dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copies `src` into the region at `offset`.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        check_range(offset, src.len(), self.len())?;
        // SAFETY: in bounds (checked); the mapping is writable and not ours to borrow, so no
        // Rust reference to it exists to be invalidated.
        unsafe { self.as_ptr().add(offset).copy_from_nonoverlapping(src.as_ptr(), src.len()) };
        Ok(())
    }

    /// The name, or `None` for an anonymous region.
    pub fn name(&self) -> Option<&str> {
        self.segment.name()
    }

    /// Whether dropping this handle leaves the name in place (the creator's default is to
    /// remove it; an opener never removes it).
    pub fn set_persist(&mut self, persist: bool) {
        self.segment.set_persist(persist)
    }
}

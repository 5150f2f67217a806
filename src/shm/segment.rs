//! The header every segment starts with, and [`Segment`]: a mapping plus its validated layout.
//!
//! ```text
//! offset 0     Header (64 B): magic, version, kind, total size, offsets, kind parameters
//! offset 64    the kind's control block (a lock, or a ring's cursors and node states)
//! data_offset  the data (aligned as the kind asks; a ring's nodes start on a page)
//! total_size   end (rounded up to a page, or to 2 MiB with huge pages)
//! ```
//!
//! The creator writes every field, then the magic number last with `Release`; an opener
//! reads the magic first with `Acquire` (its partner), so it sees a finished header or
//! [`ShmError::NotInitialised`]. An opener does not take the offsets on trust: it recomputes
//! the layout from the kind's parameters and rejects any header that disagrees. From then
//! on it uses its own copy; nothing in the header is read again.

use super::{Kind, ShmError, name::SegmentName};
use crate::os::SharedMapping;
use crate::sync::{AtomicU64, Ordering};
use core::mem::size_of;

/// "PINALSHM", little-endian.
const MAGIC: u64 = u64::from_le_bytes(*b"PINALSHM");
/// Bumped whenever any kind's layout changes, so builds with different layouts refuse each
/// other's segments.
pub(crate) const LAYOUT_VERSION: u32 = 1;
const HUGE_PAGE: usize = 2 << 20;

/// The segment header, at offset 0 of every segment.
#[repr(C)]
struct Header {
    /// [`MAGIC`] once the creator has finished; zero before.
    magic: AtomicU64,
    version: u32,
    kind: u32,
    total_size: u64,
    control_offset: u64,
    data_offset: u64,
    data_len: u64,
    /// The kind's parameters: element size and alignment, or node count and node size.
    params: [u64; 2],
}

pub(crate) const HEADER_SIZE: usize = size_of::<Header>();
const _: () = assert!(HEADER_SIZE == 64);

/// Where a segment's parts lie; computed from the kind's parameters by [`Layout::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub kind: Kind,
    pub params: [u64; 2],
    pub control_offset: usize,
    pub data_offset: usize,
    pub data_len: usize,
    /// Header, control and data, rounded up to a page (the object's size).
    pub total_size: usize,
}

impl Layout {
    /// The layout of a segment of `kind` whose control block is `control_len` bytes and whose
    /// data is `data_len` bytes aligned to `data_align` (a power of two of at most a page).
    pub(crate) fn new(
        kind: Kind,
        params: [u64; 2],
        control_len: usize,
        data_align: usize,
        data_len: usize,
    ) -> Result<Layout, ShmError> {
        let too_big = ShmError::InvalidParameter { what: "the segment would not fit in the address space" };
        let control_offset = HEADER_SIZE;
        let data_offset = (control_offset.checked_add(control_len).ok_or(too_big)?)
            .checked_next_multiple_of(data_align)
            .ok_or(too_big)?;
        let end = data_offset.checked_add(data_len).ok_or(too_big)?;
        let total_size = end.checked_next_multiple_of(crate::os::page_size()).ok_or(too_big)?;
        if total_size > isize::MAX as usize / 2 {
            return Err(too_big);
        }
        Ok(Layout { kind, params, control_offset, data_offset, data_len, total_size })
    }
}

/// How a named segment is created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShmOptions {
    huge_pages: bool,
    persist: bool,
    populate: bool,
}

impl ShmOptions {
    /// No huge pages, pages faulted in as they are first touched; the name is removed when
    /// the creator drops its handle.
    pub const fn new() -> Self {
        ShmOptions { huge_pages: false, persist: false, populate: false }
    }

    /// Rounds the segment up to 2 MiB and asks for transparent huge pages on it
    /// (`MADV_HUGEPAGE`). Shared memory gets them where
    /// `/sys/kernel/mm/transparent_hugepage/shmem_enabled` is `advise` or `always`;
    /// elsewhere the request is harmless.
    pub const fn huge_pages(mut self, on: bool) -> Self {
        self.huge_pages = on;
        self
    }

    /// Faults every page of the segment in at creation (`MADV_POPULATE_WRITE`), so no first
    /// touch takes a page fault later, and a `/dev/shm` too full for the segment is an error
    /// here ([`ShmError::Os`]) instead of a `SIGBUS` on first touch. Costs the segment's
    /// whole memory up front. Kernels before 5.14 cannot: there it quietly does nothing.
    pub const fn populate(mut self, on: bool) -> Self {
        self.populate = on;
        self
    }

    /// Keeps the name after the creator's handle is dropped (remove it with
    /// [`unlink`](super::unlink)).
    pub const fn persist(mut self, on: bool) -> Self {
        self.persist = on;
        self
    }
}

/// A mapped segment with a validated layout. Owns the mapping; the creator of a named segment
/// unlinks the name on drop unless it persists.
#[derive(Debug)]
pub(crate) struct Segment {
    mapping: SharedMapping,
    layout: Layout,
    name: Option<SegmentName>,
    unlink_on_drop: bool,
}

impl Segment {
    /// Creates a named segment, or an anonymous one when `name` is `None`, zero-filled, and
    /// writes its header. `init` fills the control block before the header is published.
    pub(crate) fn create(
        name: Option<&str>,
        mut layout: Layout,
        options: ShmOptions,
        init: impl FnOnce(*mut u8),
    ) -> Result<Segment, ShmError> {
        if options.huge_pages {
            layout.total_size =
                layout.total_size.checked_next_multiple_of(HUGE_PAGE).ok_or(ShmError::InvalidParameter {
                    what: "the segment would not fit in the address space",
                })?;
        }
        let (mapping, name) = match name {
            Some(name) => {
                let name = SegmentName::new(name)?;
                (SharedMapping::create(name.posix(), layout.total_size)?, Some(name))
            }
            None => (SharedMapping::anonymous(layout.total_size)?, None),
        };
        let segment = Segment { mapping, layout, name, unlink_on_drop: name.is_some() && !options.persist };
        if options.huge_pages {
            // Best effort: without shmem THP the pages are simply base pages.
            let _ = segment.mapping.advise_huge_pages();
        }
        if options.populate {
            segment.populate()?;
        }
        let base = segment.mapping.as_ptr();
        // SAFETY: the control block lies inside the fresh mapping (the layout put it there),
        // and no other process uses the segment before the magic is published below.
        init(unsafe { base.add(layout.control_offset) });
        let header = base.cast::<Header>();
        // SAFETY: the mapping is page-aligned and at least HEADER_SIZE bytes; nobody reads
        // the header fields before the magic is set.
        unsafe {
            (&raw mut (*header).version).write(LAYOUT_VERSION);
            (&raw mut (*header).kind).write(layout.kind as u32);
            (&raw mut (*header).total_size).write(layout.total_size as u64);
            (&raw mut (*header).control_offset).write(layout.control_offset as u64);
            (&raw mut (*header).data_offset).write(layout.data_offset as u64);
            (&raw mut (*header).data_len).write(layout.data_len as u64);
            (&raw mut (*header).params).write(layout.params);
        }
        // SAFETY: as above; the magic is an atomic inside the live mapping.
        let magic = unsafe { &(*header).magic };
        // Release: publishes the header and the control block; partner of the Acquire in `open`.
        magic.store(MAGIC, Ordering::Release);
        Ok(segment)
    }

    /// Faults the whole mapping in (see [`ShmOptions::populate`]); nothing on a kernel that
    /// cannot.
    pub(crate) fn populate(&self) -> Result<(), ShmError> {
        match self.mapping.populate() {
            Err(e) if e.errno() == Some(libc::EINVAL) => Ok(()),
            result => result.map_err(ShmError::from),
        }
    }

    /// Opens the named segment of `kind`. `expected_layout` recomputes the layout from the
    /// header's parameters (or rejects them); the header must then agree with it exactly.
    pub(crate) fn open(
        name: &str,
        kind: Kind,
        expected_layout: impl FnOnce([u64; 2], usize) -> Result<Layout, ShmError>,
    ) -> Result<Segment, ShmError> {
        let name = SegmentName::new(name)?;
        let mapping = SharedMapping::open(name.posix()).map_err(|e| match e {
            crate::os::OsError::InvalidSize { .. } => {
                ShmError::Truncated { expected: HEADER_SIZE as u64, actual: 0 }
            }
            e => e.into(),
        })?;
        let layout = validate(mapping.as_ptr(), mapping.len(), kind, expected_layout)?;
        Ok(Segment { mapping, layout, name: Some(name), unlink_on_drop: false })
    }

    /// Opens a segment of `kind` whose only parameter is its data length (`[len, 0]`) and
    /// whose layout `layout_of(len)` gives: raw regions and buffers.
    pub(crate) fn open_sized(
        name: &str,
        kind: Kind,
        layout_of: fn(usize) -> Result<Layout, ShmError>,
    ) -> Result<Segment, ShmError> {
        Segment::open(name, kind, |params, data_len| {
            if params != [data_len as u64, 0] {
                return Err(ShmError::Corrupt { what: "size parameter" });
            }
            layout_of(data_len)
        })
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The control block.
    pub(crate) fn control(&self) -> *mut u8 {
        // SAFETY: the validated layout puts the control offset inside the mapping.
        unsafe { self.mapping.as_ptr().add(self.layout.control_offset) }
    }

    /// The data: `data_len` bytes, aligned as the kind asked.
    pub(crate) fn data(&self) -> *mut u8 {
        // SAFETY: the validated layout puts the data inside the mapping.
        unsafe { self.mapping.as_ptr().add(self.layout.data_offset) }
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_ref().map(SegmentName::as_str)
    }

    pub(crate) fn set_persist(&mut self, persist: bool) {
        if self.name.is_some() {
            self.unlink_on_drop = !persist;
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let (true, Some(name)) = (self.unlink_on_drop, &self.name) {
            // Someone may have unlinked it already; nothing to do about it then.
            let _ = SharedMapping::unlink(name.posix());
        }
    }
}

/// Checks the header at `base` (a mapping of `len` bytes) for `kind` and returns the layout.
/// Reads each field once; everything is bounds-checked before it is believed.
pub(crate) fn validate(
    base: *mut u8,
    len: usize,
    kind: Kind,
    expected_layout: impl FnOnce([u64; 2], usize) -> Result<Layout, ShmError>,
) -> Result<Layout, ShmError> {
    if len < HEADER_SIZE {
        return Err(ShmError::Truncated { expected: HEADER_SIZE as u64, actual: len as u64 });
    }
    let header = base.cast::<Header>();
    // SAFETY: `base` is a page-aligned mapping of at least HEADER_SIZE bytes (checked).
    let magic = unsafe { &(*header).magic };
    // Acquire: partner of the creator's Release store of the magic (the header is complete).
    match magic.load(Ordering::Acquire) {
        0 => return Err(ShmError::NotInitialised),
        MAGIC => {}
        _ => return Err(ShmError::Foreign),
    }
    // SAFETY: in bounds (above). Volatile: another process may write these at any time; each
    // is read exactly once and any value is then checked.
    let (version, raw_kind, total, control_offset, data_offset, data_len, params) = unsafe {
        (
            (&raw const (*header).version).read_volatile(),
            (&raw const (*header).kind).read_volatile(),
            (&raw const (*header).total_size).read_volatile(),
            (&raw const (*header).control_offset).read_volatile(),
            (&raw const (*header).data_offset).read_volatile(),
            (&raw const (*header).data_len).read_volatile(),
            (&raw const (*header).params).read_volatile(),
        )
    };
    if version != LAYOUT_VERSION {
        return Err(ShmError::UnsupportedVersion { found: version });
    }
    if raw_kind != kind as u32 {
        return Err(ShmError::WrongKind { expected: kind, found: raw_kind });
    }
    if total > len as u64 {
        return Err(ShmError::Truncated { expected: total, actual: len as u64 });
    }
    if total != len as u64 {
        return Err(ShmError::Corrupt { what: "the header's total size differs from the segment's size" });
    }
    let data_len = usize::try_from(data_len).map_err(|_| ShmError::Corrupt { what: "data length" })?;
    let mut layout = expected_layout(params, data_len)?;
    // A huge-page segment is rounded up further than the layout's page rounding.
    if layout.total_size > len || !len.is_multiple_of(crate::os::page_size()) {
        return Err(ShmError::Corrupt { what: "the parameters need more bytes than the segment has" });
    }
    layout.total_size = len;
    if (control_offset, data_offset) != (layout.control_offset as u64, layout.data_offset as u64)
        || layout.data_len != data_len
    {
        return Err(ShmError::Corrupt { what: "the header's offsets disagree with its parameters" });
    }
    Ok(layout)
}

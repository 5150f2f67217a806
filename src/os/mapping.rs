//! [`Mapping`]: an owned range of address space from the OS.

use super::backend::{self, HugeTlb, Purge, Request};
use super::pages::{self, HugePages, PageTier, round_down, round_up};
use super::{OsError, accounting, numa};
use core::ptr::NonNull;

const HUGE_2M: usize = 2 << 20;

/// How to map: alignment, huge pages, prefaulting, NUMA placement. A `const` builder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapOptions {
    align: usize,
    huge_pages: HugePages,
    populate: bool,
    node: Option<usize>,
}

impl Default for MapOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl MapOptions {
    /// Page-aligned, the kernel's THP default, not prefaulted, no NUMA binding.
    pub const fn new() -> Self {
        MapOptions { align: 1, huge_pages: HugePages::KernelDefault, populate: false, node: None }
    }

    /// Aligns the start of the mapping to `align` (a power of two; page alignment is always
    /// given). Large alignments cost nothing but address space: the layer over-reserves and
    /// trims.
    pub const fn align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// The huge-page policy; see [`HugePages`].
    pub const fn huge_pages(mut self, huge_pages: HugePages) -> Self {
        self.huge_pages = huge_pages;
        self
    }

    /// Faults every page in at once, so first touches on a hot path never page-fault.
    pub const fn populate(mut self, populate: bool) -> Self {
        self.populate = populate;
        self
    }

    /// Binds the pages to one NUMA node.
    pub const fn node(mut self, node: usize) -> Self {
        self.node = Some(node);
        self
    }
}

/// An owned, aligned range of anonymous memory from the OS, unmapped on drop.
///
/// Invariants: `ptr` is aligned to `align`, which is a power of two of at least the tier's
/// granule; `len` is a non-zero multiple of the granule; the range stays mapped until drop
/// (contents may be purged or decommitted, never unmapped, while the `Mapping` lives).
/// The type gives out raw pointers only: reading or writing through them is the caller's
/// `unsafe`, and touching a range that is not committed faults.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    align: usize,
    tier: PageTier,
}

// SAFETY: a Mapping is an address range; it owns no thread-bound state, and all access to
// its memory goes through raw pointers whose synchronisation is the caller's.
unsafe impl Send for Mapping {}
// SAFETY: as above: `&Mapping` only gives out the address and the madvise-style calls,
// which the kernel serialises.
unsafe impl Sync for Mapping {}

/// A [`Mapping`] taken apart, to be stored where a destructor cannot run (a static, a slab
/// directory) and put back together with [`Mapping::from_raw`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawMapping {
    /// Start of the mapping.
    pub ptr: NonNull<u8>,
    /// Length in bytes.
    pub len: usize,
    /// Alignment it was made with.
    pub align: usize,
    /// Its page tier.
    pub tier: PageTier,
}

impl Mapping {
    /// Maps at least `len` bytes of zeroed, readable and writable memory.
    ///
    /// The length is rounded up to the tier's granule (see [`Mapping::len`] for what was
    /// mapped). Fails with [`OsError::InvalidSize`] for zero or overflowing lengths,
    /// [`OsError::InvalidAlignment`], or the kernel's refusal.
    pub fn new(len: usize, options: &MapOptions) -> Result<Mapping, OsError> {
        let mapping = Self::create(len, options, false)?;
        if let Some(node) = options.node {
            mapping.bind_to_node(node)?;
        }
        Ok(mapping)
    }

    /// Reserves `len` bytes of address space without access: nothing is committed until
    /// [`Mapping::commit`] makes a range usable.
    pub fn reserve(len: usize, align: usize) -> Result<Mapping, OsError> {
        Self::create(len, &MapOptions::new().align(align), true)
    }

    fn create(len: usize, options: &MapOptions, reserve_only: bool) -> Result<Mapping, OsError> {
        if !options.align.is_power_of_two() {
            return Err(OsError::InvalidAlignment { align: options.align });
        }
        if len == 0 || len > isize::MAX as usize {
            return Err(OsError::InvalidSize { requested: len });
        }
        if options.huge_pages == HugePages::Best && !reserve_only {
            for (tier, flag) in [(PageTier::Huge1G, HugeTlb::Size1G), (PageTier::Huge2M, HugeTlb::Size2M)] {
                if let Some(mapping) = Self::try_huge_tlb(len, options, tier, flag) {
                    return Ok(mapping);
                }
            }
        }
        let base = pages::page_size();
        let want_thp = matches!(options.huge_pages, HugePages::Transparent | HugePages::Best)
            && len >= HUGE_2M
            && pages::tier_usable(PageTier::Transparent, len);
        // A THP-backed mapping is 2 MiB aligned so every whole 2 MiB of it can be a huge page.
        let align = if want_thp { options.align.max(HUGE_2M) } else { options.align.max(base) };
        let len = round_up(len, base).ok_or(OsError::InvalidSize { requested: len })?;
        let request =
            Request { len, align, granule: base, huge_tlb: None, reserve_only, populate: options.populate };
        let ptr = backend::map(&request).map_err(|errno| OsError::Syscall { call: "mmap", errno })?;
        accounting::mapped(len);
        let mut mapping = Mapping { ptr, len, align, tier: PageTier::Base };
        match options.huge_pages {
            HugePages::KernelDefault => {}
            HugePages::Forbid => {
                // SAFETY: the whole mapping, just created; the advice leaves contents alone.
                // A kernel without THP refuses it, which is what was asked for anyway.
                let _ = unsafe { backend::advise_transparent_huge(ptr, len, false) };
            }
            HugePages::Transparent | HugePages::Best if want_thp => {
                // SAFETY: as above.
                match unsafe { backend::advise_transparent_huge(ptr, len, true) } {
                    Ok(()) => mapping.tier = PageTier::Transparent,
                    Err(_) => pages::tier_failed(PageTier::Transparent, len),
                }
            }
            HugePages::Transparent | HugePages::Best => {}
        }
        Ok(mapping)
    }

    /// One attempt at a hugetlbfs tier; `None` (remembering a failure) if it is not there.
    fn try_huge_tlb(len: usize, options: &MapOptions, tier: PageTier, flag: HugeTlb) -> Option<Mapping> {
        let granule = tier.granule();
        let rounded = round_up(len, granule)?;
        if len < granule || rounded - len > len / 8 || !pages::tier_usable(tier, rounded) {
            return None;
        }
        let align = options.align.max(granule);
        let request = Request {
            len: rounded,
            align,
            granule,
            huge_tlb: Some(flag),
            reserve_only: false,
            populate: options.populate,
        };
        match backend::map(&request) {
            Ok(ptr) => {
                accounting::mapped(rounded);
                Some(Mapping { ptr, len: rounded, align, tier })
            }
            Err(_) => {
                pages::tier_failed(tier, rounded);
                None
            }
        }
    }

    /// Start of the mapping.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Start of the mapping, non-null.
    #[inline]
    pub fn as_non_null(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Bytes mapped: the requested length rounded up to the tier's granule.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a mapping is never empty
    pub fn len(&self) -> usize {
        self.len
    }

    /// The alignment of [`Mapping::as_ptr`].
    #[inline]
    pub fn align(&self) -> usize {
        self.align
    }

    /// The pages backing it.
    #[inline]
    pub fn tier(&self) -> PageTier {
        self.tier
    }

    /// The whole granules inside `offset..offset + len` (rounded inward) or covering it
    /// (rounded outward), as a pointer and a length; `None` if no whole granule lies inside.
    fn granules(
        &self,
        offset: usize,
        len: usize,
        outward: bool,
    ) -> Result<Option<(NonNull<u8>, usize)>, OsError> {
        let out_of_bounds = OsError::OutOfBounds { offset, len, mapping_len: self.len };
        let end = offset.checked_add(len).ok_or(out_of_bounds)?;
        if end > self.len {
            return Err(out_of_bounds);
        }
        let granule = self.tier.granule();
        let (start, end) = if outward {
            // `self.len` is a multiple of the granule, so rounding `end` up stays in bounds.
            (round_down(offset, granule), round_up(end, granule).ok_or(out_of_bounds)?)
        } else {
            (round_up(offset, granule).ok_or(out_of_bounds)?, round_down(end, granule))
        };
        if start >= end {
            return Ok(None);
        }
        // SAFETY: `start < end <= self.len`, so the offset stays inside the mapping.
        let ptr = unsafe { self.ptr.add(start) };
        Ok(Some((ptr, end - start)))
    }

    /// Makes the granules covering `offset..offset + len` readable and writable (they read
    /// as zero the first time). Needed only for mappings made by [`Mapping::reserve`].
    pub fn commit(&self, offset: usize, len: usize) -> Result<(), OsError> {
        let Some((ptr, len)) = self.granules(offset, len, true)? else {
            return Ok(());
        };
        // SAFETY: the range is inside this mapping and granule-aligned; committing does not
        // change the contents of memory already accessible.
        unsafe { backend::protect(ptr, len, true) }
            .map_err(|errno| OsError::Syscall { call: "mprotect", errno })
    }

    /// Releases the whole granules inside `offset..offset + len` and takes access to them
    /// away, until [`Mapping::commit`] again.
    ///
    /// # Safety
    /// Nothing in the range is in use: it will fault if touched before it is committed again.
    pub unsafe fn decommit(&self, offset: usize, len: usize) -> Result<(), OsError> {
        let Some((ptr, len)) = self.granules(offset, len, false)? else {
            return Ok(());
        };
        // SAFETY: inside this mapping and granule-aligned; unused per the contract.
        unsafe { backend::protect(ptr, len, false) }
            .map_err(|errno| OsError::Syscall { call: "mprotect", errno })?;
        accounting::purged(len);
        Ok(())
    }

    /// Gives the physical pages of the whole granules inside `offset..offset + len` back to
    /// the OS while keeping the range mapped (bytes outside those granules are untouched).
    /// After [`Purge::Discard`] the range reads as zero.
    ///
    /// # Safety
    /// No live object is in the range: its bytes become zero (or, after [`Purge::Lazy`],
    /// undefined until written).
    pub unsafe fn purge(&self, offset: usize, len: usize, how: Purge) -> Result<(), OsError> {
        let Some((ptr, len)) = self.granules(offset, len, false)? else {
            return Ok(());
        };
        // SAFETY: inside this mapping and granule-aligned; disposable per the contract.
        unsafe { backend::purge(ptr, len, how) }
            .map_err(|errno| OsError::Syscall { call: "madvise", errno })?;
        accounting::purged(len);
        Ok(())
    }

    /// Places the mapping's pages on NUMA node `node` (moving those already faulted in).
    pub fn bind_to_node(&self, node: usize) -> Result<(), OsError> {
        if node >= backend::MAX_NODES || node >= numa::node_count() {
            return Err(OsError::InvalidNode { node });
        }
        // SAFETY: the whole mapping, page-aligned; binding changes placement, not contents.
        unsafe { backend::bind(self.ptr, self.len, node) }.map_err(|errno| match errno {
            libc::ENOSYS => OsError::Unsupported { what: "mbind (kernel built without NUMA)" },
            libc::EINVAL => OsError::InvalidNode { node },
            errno => OsError::Syscall { call: "mbind", errno },
        })
    }

    /// Grows or shrinks the mapping to at least `new_len` bytes with `mremap`, preserving
    /// its contents up to the smaller length. The mapping grows in place when the address
    /// space after it is free; otherwise it moves (the kernel remaps the pages, nothing is
    /// copied), into a range aligned like the original. On failure it is left as it was.
    pub fn resize(&mut self, new_len: usize) -> Result<(), OsError> {
        let granule = self.tier.granule();
        let invalid = OsError::InvalidSize { requested: new_len };
        if new_len == 0 || new_len > isize::MAX as usize {
            return Err(invalid);
        }
        let new_len = round_up(new_len, granule).ok_or(invalid)?;
        if new_len == self.len {
            return Ok(());
        }
        // SAFETY: `self` is one whole mapping; we update `ptr` at once if it moves.
        let in_place = unsafe { backend::remap(self.ptr, self.len, new_len, self.align, false) };
        let ptr = match in_place {
            Ok(ptr) => ptr,
            Err(_) => {
                // SAFETY: as above.
                unsafe { backend::remap(self.ptr, self.len, new_len, self.align, true) }
                    .map_err(|errno| OsError::Syscall { call: "mremap", errno })?
            }
        };
        accounting::resized(self.len, new_len);
        self.ptr = ptr;
        self.len = new_len;
        Ok(())
    }

    /// Takes the mapping apart without unmapping it.
    pub fn into_raw(self) -> RawMapping {
        let raw = RawMapping { ptr: self.ptr, len: self.len, align: self.align, tier: self.tier };
        core::mem::forget(self);
        raw
    }

    /// Puts a mapping back together.
    ///
    /// # Safety
    /// `raw` came from [`Mapping::into_raw`] and no other `Mapping` owns it.
    pub unsafe fn from_raw(raw: RawMapping) -> Mapping {
        Mapping { ptr: raw.ptr, len: raw.len, align: raw.align, tier: raw.tier }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours alone (invariant) and, being dropped, unused.
        unsafe { backend::unmap(self.ptr, self.len, self.align) };
        accounting::unmapped(self.len);
    }
}

//! The two implementations of the raw calls the OS layer is built from.
//!
//! [`linux`] calls the kernel through `libc`; it is the only file in the crate that does.
//! [`fake`] serves the same functions from the heap under `cfg(miri)`, where syscalls are
//! not available, so every layer above runs under miri unchanged. Both export the same set
//! of functions with the same contracts; [`Request`] describes one mapping.

#[cfg(not(miri))]
mod linux;
#[cfg(not(miri))]
pub(crate) use linux::*;

#[cfg(miri)]
mod fake;
#[cfg(miri)]
pub(crate) use fake::*;

/// Explicit huge-page size requested from hugetlbfs (`MAP_HUGETLB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HugeTlb {
    /// 2 MiB pages.
    Size2M,
    /// 1 GiB pages.
    Size1G,
}

/// One mapping request, already validated by the caller: `len` is a non-zero multiple of
/// `granule`, `align` is a power of two, and `granule` is the page size of the request (the
/// base page, or the huge page for `huge_tlb`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Request {
    pub len: usize,
    pub align: usize,
    pub granule: usize,
    pub huge_tlb: Option<HugeTlb>,
    /// Map without access (`PROT_NONE`): address space only, committed later.
    #[cfg_attr(miri, allow(dead_code))] // heap blocks are always accessible
    pub reserve_only: bool,
    /// Fault every page in now (`MAP_POPULATE`).
    #[cfg_attr(miri, allow(dead_code))] // heap blocks have no page faults to take early
    pub populate: bool,
}

/// What a purge leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purge {
    /// `MADV_DONTNEED`: the pages are released at once and read back as zeros.
    Discard,
    /// `MADV_FREE`: the kernel may take the pages back under memory pressure; until it does
    /// they keep their contents. Cheaper when the memory is reused soon. Falls back to
    /// [`Purge::Discard`] where the kernel does not support it.
    Lazy,
}

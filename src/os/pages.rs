//! Page sizes and the huge-page fallback chain.
//!
//! A mapping asks for a [`HugePages`] policy; the chain under [`HugePages::Best`] is
//! 1 GiB hugetlbfs pages → 2 MiB hugetlbfs pages → transparent huge pages → base pages.
//! Whether a tier exists is probed once (sysfs: free hugetlbfs pages, the THP mode) and
//! remembered. When a mapping on a tier fails, the tier is probed again: if it has no free
//! pages left it is remembered as unavailable; if it still has some (the request was larger
//! than what is free), only the smallest failed length is remembered, and requests at least
//! that large skip the tier. Either way a failure is paid once, not on every call, and one
//! oversized request does not take huge pages away from every smaller one.

use super::{backend, sysfs};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// The kind of page that backs a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageTier {
    /// The base page (4 KiB on x86-64).
    Base,
    /// Base pages advised with `MADV_HUGEPAGE`: the kernel backs them with 2 MiB pages when
    /// it can, transparently.
    Transparent,
    /// Explicit 2 MiB pages from hugetlbfs (`MAP_HUGETLB | MAP_HUGE_2MB`).
    Huge2M,
    /// Explicit 1 GiB pages from hugetlbfs (`MAP_HUGETLB | MAP_HUGE_1GB`).
    Huge1G,
}

const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;

impl PageTier {
    /// The granule of a mapping of this tier: lengths, offsets of purges and commits, and
    /// alignments are multiples of it. (Transparent huge pages keep base-page granularity;
    /// their 2 MiB is a hint, see [`PageTier::huge_page_size`].)
    pub fn granule(self) -> usize {
        match self {
            PageTier::Base | PageTier::Transparent => page_size(),
            PageTier::Huge2M => 2 * MIB,
            PageTier::Huge1G => GIB,
        }
    }

    /// The size of the pages the tier hopes to be backed by.
    pub fn huge_page_size(self) -> usize {
        match self {
            PageTier::Base => page_size(),
            PageTier::Transparent | PageTier::Huge2M => 2 * MIB,
            PageTier::Huge1G => GIB,
        }
    }

    fn slot(self) -> Option<usize> {
        match self {
            PageTier::Base => None,
            PageTier::Transparent => Some(0),
            PageTier::Huge2M => Some(1),
            PageTier::Huge1G => Some(2),
        }
    }
}

/// What a mapping asks of huge pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HugePages {
    /// No advice: the kernel's THP setting decides.
    #[default]
    KernelDefault,
    /// Never huge pages: base pages, with `MADV_NOHUGEPAGE` so that even a kernel whose THP
    /// mode is `always` leaves the mapping alone (predictable RSS, no compaction stalls).
    Forbid,
    /// Transparent huge pages (`MADV_HUGEPAGE`) where the kernel allows them, else base pages.
    Transparent,
    /// The whole chain: 1 GiB pages, then 2 MiB pages, then transparent huge pages, then
    /// base pages. A hugetlbfs tier is used only for mappings of at least one such page that
    /// waste no more than an eighth of their length when rounded up to it.
    Best,
}

/// What is known of a huge-page tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierStatus {
    /// Not probed yet.
    Unknown,
    /// Probed and usable, and no mapping has failed on it since.
    Available,
    /// Not configured on this machine, or a mapping on it failed: not tried again.
    Unavailable,
}

const UNKNOWN: u8 = 0;
const AVAILABLE: u8 = 1;
const UNAVAILABLE: u8 = 2;

/// Tier knowledge, indexed by [`PageTier::slot`]. Relaxed throughout: each entry caches a
/// fact about the machine and publishes no other memory; two threads racing to probe merely
/// both read sysfs.
static TIER_STATUS: [AtomicU8; 3] = [const { AtomicU8::new(UNKNOWN) }; 3];

/// Per tier, the smallest mapping length that failed while the tier still had free pages;
/// requests at least this long skip the tier. Relaxed: a cached fact, as [`TIER_STATUS`].
static SMALLEST_FAILURE: [AtomicUsize; 3] = [const { AtomicUsize::new(usize::MAX) }; 3];

/// The base page size; 0 until first read. Relaxed: a cached fact, see [`TIER_STATUS`].
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The base page size, queried from the system once.
#[inline]
pub fn page_size() -> usize {
    match PAGE_SIZE.load(Ordering::Relaxed) {
        0 => {
            let size = backend::page_size();
            PAGE_SIZE.store(size, Ordering::Relaxed);
            size
        }
        size => size,
    }
}

/// What is currently known of `tier` (always [`TierStatus::Available`] for base pages).
pub fn tier_status(tier: PageTier) -> TierStatus {
    let Some(slot) = tier.slot() else {
        return TierStatus::Available;
    };
    match TIER_STATUS[slot].load(Ordering::Relaxed) {
        AVAILABLE => TierStatus::Available,
        UNAVAILABLE => TierStatus::Unavailable,
        _ => TierStatus::Unknown,
    }
}

/// Whether `tier` is worth trying for a mapping of `len` bytes, probing the machine on
/// first use.
pub(crate) fn tier_usable(tier: PageTier, len: usize) -> bool {
    let Some(slot) = tier.slot() else { return true };
    if len >= SMALLEST_FAILURE[slot].load(Ordering::Relaxed) {
        return false;
    }
    match TIER_STATUS[slot].load(Ordering::Relaxed) {
        AVAILABLE => true,
        UNAVAILABLE => false,
        _ => {
            let usable = probe(tier);
            TIER_STATUS[slot].store(if usable { AVAILABLE } else { UNAVAILABLE }, Ordering::Relaxed);
            usable
        }
    }
}

/// Remembers that a mapping of `len` bytes on `tier` failed (see the module docs).
pub(crate) fn tier_failed(tier: PageTier, len: usize) {
    if let Some(slot) = tier.slot() {
        if probe(tier) {
            SMALLEST_FAILURE[slot].fetch_min(len, Ordering::Relaxed);
        } else {
            TIER_STATUS[slot].store(UNAVAILABLE, Ordering::Relaxed);
        }
    }
}

/// Forgets what was learned about huge pages, so the next mapping probes again (after an
/// administrator reserved hugetlbfs pages, say).
pub fn reprobe_huge_pages() {
    for (status, failure) in TIER_STATUS.iter().zip(&SMALLEST_FAILURE) {
        status.store(UNKNOWN, Ordering::Relaxed);
        failure.store(usize::MAX, Ordering::Relaxed);
    }
}

fn probe(tier: PageTier) -> bool {
    let free_pages = |path: &core::ffi::CStr| {
        sysfs::with_file(path, sysfs::parse_u64).flatten().is_some_and(|free| free > 0)
    };
    match tier {
        PageTier::Base => true,
        PageTier::Huge1G => free_pages(c"/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages"),
        PageTier::Huge2M => free_pages(c"/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"),
        PageTier::Transparent => sysfs::with_file(c"/sys/kernel/mm/transparent_hugepage/enabled", |text| {
            sysfs::selected_choice(text).is_some_and(|mode| mode != b"never")
        })
        .unwrap_or(false),
    }
}

/// Rounds `n` up to a multiple of `granule` (a power of two), or `None` on overflow.
pub(crate) fn round_up(n: usize, granule: usize) -> Option<usize> {
    Some(n.checked_add(granule - 1)? & !(granule - 1))
}

/// Rounds `n` down to a multiple of `granule` (a power of two).
pub(crate) fn round_down(n: usize, granule: usize) -> usize {
    n & !(granule - 1)
}

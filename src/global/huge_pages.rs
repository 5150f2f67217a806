//! When the allocator asks for transparent huge pages: for memory that comes in bulk.
//!
//! A 2 MiB page saves TLB misses only where base pages would overflow the TLB, and costs
//! RSS wherever it is sparsely used: the kernel backs the whole 2 MiB as soon as one byte
//! of it is touched. The second-level data TLB of current x86-64 cores holds 2048 entries
//! (Zen 2 to 4, Golden Cove), so base pages reach 8 MiB; a heap within that reach gains
//! nothing from huge pages, and many threads' small heaps are each within it even when their
//! sum is not. So [`HugePages::Transparent`] applies, per request, to:
//!
//! - a small-block segment mapped for a thread that has carved at least [`BULK_BYTES`] of
//!   fresh blocks in its life (a thread with a large heap of its own, whose spans are
//!   dense: mixed-small's 90 MiB of live blocks ran in 0.92 of the time with them, 12
//!   alternating pairs, at 121 MiB peak RSS against 92);
//! - a large block of at least [`BULK_BYTES`].
//!
//! Everything else follows the kernel's setting. Counting per thread, not per process,
//! matters for programs whose threads each keep a little: larson's 40 nested workers each
//! hold about a megabyte of partly carved spans, and backing those with huge pages raised
//! its peak RSS from 29 to 80 MiB (mimalloc's: 50); with the rule it stays at 29. Explicit
//! choices ([`HugePages::Forbid`], [`HugePages::Best`]) apply to every request.

use crate::os::HugePages;

/// The bulk past which [`HugePages::Transparent`] applies: what 2048 TLB entries of 4 KiB
/// reach.
pub(crate) const BULK_BYTES: usize = 8 << 20;

/// What a request for memory in a bulk of `bulk` bytes (see the module docs) asks of huge
/// pages, under the configured `asked`.
pub(crate) fn for_bulk(asked: HugePages, bulk: usize) -> HugePages {
    match asked {
        HugePages::Transparent if bulk < BULK_BYTES => HugePages::KernelDefault,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_huge_pages_apply_to_bulk_only() {
        let transparent = |bulk| for_bulk(HugePages::Transparent, bulk);
        assert_eq!(transparent(0), HugePages::KernelDefault);
        assert_eq!(transparent(BULK_BYTES - 1), HugePages::KernelDefault);
        assert_eq!(transparent(BULK_BYTES), HugePages::Transparent);
        for explicit in [HugePages::Forbid, HugePages::Best, HugePages::KernelDefault] {
            assert_eq!(for_bulk(explicit, 0), explicit, "{explicit:?} applies to every request");
            assert_eq!(for_bulk(explicit, usize::MAX), explicit);
        }
    }
}

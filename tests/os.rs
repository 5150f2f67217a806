//! The OS layer: mappings, alignment, purging, huge-page fallback, NUMA and errors.
//! Under miri these run against the heap-backed fake backend.

use pinalloc::os::{self, HugePages, MapOptions, Mapping, OsError, PageTier, Purge, TierStatus};
use proptest::prelude::*;

mod common;

fn fill(mapping: &Mapping, byte: u8) {
    // SAFETY: the mapping is committed, readable and writable, and holds no Rust objects.
    unsafe { mapping.as_ptr().write_bytes(byte, mapping.len()) };
}

fn bytes(mapping: &Mapping) -> &[u8] {
    // SAFETY: committed memory of `mapping`, which outlives the slice.
    unsafe { core::slice::from_raw_parts(mapping.as_ptr(), mapping.len()) }
}

#[test]
fn maps_zeroed_page_rounded_memory() {
    let mapping = Mapping::new(1, &MapOptions::new()).unwrap();
    assert_eq!(mapping.len(), os::page_size());
    assert_eq!(mapping.as_ptr() as usize % os::page_size(), 0);
    assert!(common::is_filled(bytes(&mapping), 0));
    fill(&mapping, 0xAB);
    assert!(common::is_filled(bytes(&mapping), 0xAB));
}

#[test]
fn large_alignments_are_honoured() {
    let sizes = if cfg!(miri) { &[1 << 14][..] } else { &[1 << 12, 3 << 20, 1 << 22][..] };
    for &align in &[1usize << 16, 2 << 20, 4 << 20] {
        for &len in sizes {
            let mapping = Mapping::new(len, &MapOptions::new().align(align)).unwrap();
            assert_eq!(mapping.as_ptr() as usize % align, 0, "align {align} len {len}");
            assert!(mapping.len() >= len);
            fill(&mapping, 1);
        }
    }
}

#[test]
fn purge_discard_really_zeroes_and_keeps_the_rest() {
    let page = os::page_size();
    let mapping = Mapping::new(4 * page, &MapOptions::new()).unwrap();
    fill(&mapping, 0x5A);
    // Half a page either side: only the two whole pages inside are purged.
    // SAFETY: the mapping holds only plain bytes.
    unsafe { mapping.purge(page / 2, 3 * page, Purge::Discard) }.unwrap();
    let b = bytes(&mapping);
    assert!(common::is_filled(&b[..page], 0x5A), "first page must be untouched");
    assert!(common::is_filled(&b[page..3 * page], 0), "whole pages inside are zero");
    assert!(common::is_filled(&b[3 * page..], 0x5A), "last page must be untouched");
    assert!(os::counters().purged_bytes_total >= 2 * page);
}

#[test]
fn lazy_purge_keeps_memory_usable() {
    let page = os::page_size();
    let mapping = Mapping::new(2 * page, &MapOptions::new()).unwrap();
    fill(&mapping, 7);
    // SAFETY: plain bytes only.
    unsafe { mapping.purge(0, 2 * page, Purge::Lazy) }.unwrap();
    // Contents are now undefined until written; writing and reading back must work.
    fill(&mapping, 9);
    assert!(common::is_filled(bytes(&mapping), 9));
}

#[test]
fn huge_page_fallback_never_fails() {
    let len = 4 << 20;
    for policy in [HugePages::Best, HugePages::Transparent, HugePages::Forbid, HugePages::KernelDefault] {
        let mapping = Mapping::new(len, &MapOptions::new().huge_pages(policy)).unwrap();
        assert!(mapping.len() >= len);
        assert_eq!(mapping.as_ptr() as usize % mapping.tier().granule(), 0);
        fill(&mapping, 3);
        if policy == HugePages::Forbid || policy == HugePages::KernelDefault {
            assert_eq!(mapping.tier(), PageTier::Base);
        }
    }
    // Mappings of at least 2 MiB consider the 2 MiB tier; what was learned is remembered
    // (available, or unavailable and not retried).
    assert_ne!(os::tier_status(PageTier::Huge2M), TierStatus::Unknown);
    if !cfg!(miri) {
        // A 1 GiB request considers the 1 GiB tier too. Untouched, it costs address space only.
        let gib = Mapping::new(1 << 30, &MapOptions::new().huge_pages(HugePages::Best)).unwrap();
        assert!(gib.len() >= 1 << 30);
        assert_ne!(os::tier_status(PageTier::Huge1G), TierStatus::Unknown);
    }
}

#[test]
fn thp_tier_is_aligned_to_huge_pages() {
    let mapping = Mapping::new(4 << 20, &MapOptions::new().huge_pages(HugePages::Transparent)).unwrap();
    if mapping.tier() == PageTier::Transparent {
        assert_eq!(mapping.as_ptr() as usize % (2 << 20), 0);
        assert_eq!(os::tier_status(PageTier::Transparent), TierStatus::Available);
    }
}

#[test]
fn absurd_requests_are_errors_not_panics() {
    assert_eq!(Mapping::new(0, &MapOptions::new()).unwrap_err(), OsError::InvalidSize { requested: 0 });
    assert!(matches!(Mapping::new(usize::MAX, &MapOptions::new()), Err(OsError::InvalidSize { .. })));
    assert_eq!(
        Mapping::new(4096, &MapOptions::new().align(3)).unwrap_err(),
        OsError::InvalidAlignment { align: 3 }
    );
    // More than the address space: the kernel (or the fake's allocator) refuses.
    let err = Mapping::new(1 << 62, &MapOptions::new()).unwrap_err();
    assert!(matches!(err, OsError::Syscall { call: "mmap", .. }), "{err:?}");
    assert!(err.to_string().contains("mmap failed"), "{err}");
    let mapping = Mapping::new(4096, &MapOptions::new()).unwrap();
    // SAFETY: out-of-bounds ranges are rejected before anything is touched.
    let oob = unsafe { mapping.purge(4096, 1, Purge::Discard) }.unwrap_err();
    assert!(matches!(oob, OsError::OutOfBounds { .. }));
    // SAFETY: as above.
    let overflow = unsafe { mapping.purge(1, usize::MAX, Purge::Discard) }.unwrap_err();
    assert!(matches!(overflow, OsError::OutOfBounds { .. }));
}

#[test]
fn reserve_then_commit_and_decommit() {
    let page = os::page_size();
    let mapping = Mapping::reserve(16 * page, 1 << 16).unwrap();
    assert_eq!(mapping.as_ptr() as usize % (1 << 16), 0);
    mapping.commit(page, 2 * page).unwrap();
    // SAFETY: pages 1 and 2 are committed.
    let window = unsafe { core::slice::from_raw_parts_mut(mapping.as_ptr().add(page), 2 * page) };
    assert!(common::is_filled(window, 0));
    window.fill(0xEE);
    // SAFETY: nothing lives in the window anymore (the slice is not used again).
    unsafe { mapping.decommit(page, 2 * page) }.unwrap();
    mapping.commit(page, 2 * page).unwrap();
    // SAFETY: committed again; it must read zero.
    let window = unsafe { core::slice::from_raw_parts(mapping.as_ptr().add(page), 2 * page) };
    assert!(common::is_filled(window, 0));
}

#[test]
fn resize_keeps_contents() {
    let page = os::page_size();
    let mut mapping = Mapping::new(page, &MapOptions::new()).unwrap();
    fill(&mapping, 0x11);
    mapping.resize(64 * page).unwrap();
    assert_eq!(mapping.len(), 64 * page);
    let b = bytes(&mapping);
    assert!(common::is_filled(&b[..page], 0x11));
    assert!(common::is_filled(&b[page..], 0), "grown pages read as zero");
    mapping.resize(2 * page).unwrap();
    assert_eq!(mapping.len(), 2 * page);
    assert!(common::is_filled(&bytes(&mapping)[..page], 0x11));
    assert!(matches!(mapping.resize(0), Err(OsError::InvalidSize { .. })));
}

#[test]
fn raw_parts_round_trip() {
    let mapping = Mapping::new(8192, &MapOptions::new().align(1 << 16)).unwrap();
    let ptr = mapping.as_ptr();
    let raw = mapping.into_raw();
    assert_eq!(raw.ptr.as_ptr(), ptr);
    // SAFETY: `raw` came from into_raw just above and is rebuilt once.
    let back = unsafe { Mapping::from_raw(raw) };
    assert_eq!(back.as_ptr(), ptr);
    assert_eq!(back.align(), 1 << 16);
}

#[test]
fn numa_binding_and_location() {
    let here = os::numa::current_cpu().unwrap();
    assert!(here.node < os::numa::node_count());
    let mapping = Mapping::new(1 << 16, &MapOptions::new()).unwrap();
    match mapping.bind_to_node(0) {
        Ok(()) | Err(OsError::Unsupported { .. }) => {}
        Err(other) => panic!("binding to node 0 must work or be unsupported: {other}"),
    }
    assert_eq!(mapping.bind_to_node(100_000).unwrap_err(), OsError::InvalidNode { node: 100_000 });
    fill(&mapping, 1);
}

#[test]
fn populate_and_node_options_map() {
    let mapping = Mapping::new(1 << 16, &MapOptions::new().populate(true).align(1 << 15)).unwrap();
    assert!(common::is_filled(bytes(&mapping), 0));
    let on_node = Mapping::new(1 << 16, &MapOptions::new().node(0));
    assert!(matches!(on_node, Ok(_) | Err(OsError::Unsupported { .. })));
}

#[test]
fn counters_track_live_mappings() {
    let mapping = Mapping::new(1 << 20, &MapOptions::new()).unwrap();
    let during = os::counters();
    // Other tests run in parallel, so only lower bounds are certain while we hold ours.
    assert!(during.mapped_bytes >= 1 << 20);
    assert!(during.live_mappings >= 1);
    drop(mapping);
}

#[cfg(feature = "std")]
#[test]
fn pinning_reports_where_the_thread_runs() {
    let cores = os::available_cores();
    if let Some(&core) = cores.first() {
        // Pin a scratch thread, so the test harness thread keeps its affinity.
        std::thread::spawn(move || match os::pin_current_thread_to_core(core) {
            Ok(location) => {
                assert_eq!(location.cpu, core);
                assert_eq!(os::numa::current_cpu().unwrap().cpu, core);
            }
            Err(OsError::PinRefused { .. }) => {}
            Err(other) => panic!("{other}"),
        })
        .join()
        .unwrap();
    }
    let refused = std::thread::spawn(|| os::pin_current_thread_to_core(1 << 20)).join().unwrap();
    assert_eq!(refused.unwrap_err(), OsError::PinRefused { core: 1 << 20 });
}

proptest! {
    #![proptest_config(common::proptest_config(64, 4))]

    #[test]
    fn any_size_and_alignment_maps_aligned_zeroed_memory(len in 1usize..(1 << 18), align_shift in 0u32..23) {
        let align = 1usize << align_shift;
        let mapping = Mapping::new(len, &MapOptions::new().align(align)).unwrap();
        prop_assert_eq!(mapping.as_ptr() as usize % align, 0);
        prop_assert!(mapping.len() >= len);
        prop_assert_eq!(mapping.len() % os::page_size(), 0);
        let b = bytes(&mapping);
        prop_assert!(b[0] == 0 && b[len - 1] == 0);
    }

    #[test]
    fn purge_zeroes_exactly_the_whole_pages_inside(offset in 0usize..(8 * 4096), len in 0usize..(8 * 4096)) {
        let page = os::page_size();
        let mapping = Mapping::new(16 * page, &MapOptions::new()).unwrap();
        fill(&mapping, 0xC3);
        // SAFETY: plain bytes only.
        unsafe { mapping.purge(offset, len, Purge::Discard) }.unwrap();
        let start = offset.next_multiple_of(page);
        let end = (offset + len) / page * page;
        let mut expected = vec![0xC3; mapping.len()];
        if start < end {
            expected[start..end].fill(0);
        }
        prop_assert!(bytes(&mapping) == &expected[..], "purged {}..{} wrongly", start, end);
    }
}

/// Free 2 MiB hugetlbfs pages, read the way an administrator would.
fn free_huge_2m() -> u64 {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs where 2 MiB pages are reserved (`.ci/run` reserves some): the chain uses them, also
/// for an alignment beyond the huge page (mapped over an aligned reservation).
#[test]
#[cfg_attr(miri, ignore = "miri has no hugetlbfs")]
fn reserved_huge_pages_are_used() {
    if free_huge_2m() < 4 {
        eprintln!("no 2 MiB pages reserved here: the hugetlb tier cannot be exercised");
        return;
    }
    os::reprobe_huge_pages();
    let options = MapOptions::new().huge_pages(HugePages::Best);
    let plain = Mapping::new(2 << 20, &options).unwrap();
    let over_aligned = Mapping::new(2 << 20, &options.align(16 << 20)).unwrap();
    for mapping in [&plain, &over_aligned] {
        assert_eq!(mapping.tier(), PageTier::Huge2M);
        assert_eq!(mapping.as_ptr() as usize % (2 << 20), 0);
        fill(mapping, 0x42);
        assert!(common::is_filled(bytes(mapping), 0x42));
    }
    assert_eq!(over_aligned.as_ptr() as usize % (16 << 20), 0);
    // Purging works at huge-page granularity and zeroes.
    // SAFETY: plain bytes only.
    unsafe { plain.purge(0, 2 << 20, Purge::Discard) }.unwrap();
    assert!(common::is_filled(bytes(&plain), 0));
}

#[test]
fn resize_keeps_large_alignment_when_it_moves() {
    let align = 4 << 20;
    let mut mapping = Mapping::new(1 << 16, &MapOptions::new().align(align)).unwrap();
    fill(&mapping, 0x77);
    // A neighbour right after it forces a move on most layouts; either way alignment holds.
    let _blocker = Mapping::new(1 << 16, &MapOptions::new());
    mapping.resize(8 << 20).unwrap();
    assert_eq!(mapping.as_ptr() as usize % align, 0);
    assert!(common::is_filled(&bytes(&mapping)[..1 << 16], 0x77));
    assert!(common::is_filled(&bytes(&mapping)[1 << 16..], 0));
}

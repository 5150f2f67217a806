//! Any sequence of by-pointer operations (what the C ABI does: allocate, `free` and
//! `free_if_owned` (C's `free`, also handed foreign pointers), `resize`, `usable_size`,
//! `owns`), mixed with layout-driven frees and purges, on blocks of every kind. Each live
//! block carries a byte pattern that must survive every other operation, and a resize must
//! keep the bytes up to the smaller size.
//! Run: `cargo +nightly fuzz run by_pointer_ops`.
#![no_main]

use core::alloc::{GlobalAlloc, Layout};
use libfuzzer_sys::fuzz_target;
use pinalloc::PinAlloc;
use pinalloc::global::usable_size;

static ALLOC: PinAlloc = PinAlloc::new();

/// A live block: where, the bytes that carry the pattern, and the layout it was made with
/// (`None` once a resize has moved it to a by-pointer-only life).
struct Live {
    ptr: *mut u8,
    len: usize,
    seed: u8,
    layout: Option<Layout>,
}

/// Sizes reaching every kind of block: tiny, small classes, medium, large, huge.
fn size_of(selector: u8, scale: u8) -> usize {
    let base = [0usize, 1, 8, 24, 100, 1000, 5000, 33_000, 300_000, 3 << 20][usize::from(selector % 10)];
    base + usize::from(scale)
}

/// Alignments from none to over-aligned past a segment.
fn align_of(selector: u8) -> usize {
    [1usize, 16, 64, 4096, 64 << 10, 4 << 20][usize::from(selector % 6)]
}

fn fill(block: &Live) {
    for i in 0..block.len {
        // SAFETY: the block is live and at least `len` bytes.
        unsafe { block.ptr.add(i).write(block.seed.wrapping_add(i as u8)) };
    }
}

fn check(block: &Live, len: usize) {
    for i in 0..len.min(block.len) {
        // SAFETY: the block is live and at least `len` bytes.
        let byte = unsafe { block.ptr.add(i).read() };
        assert_eq!(byte, block.seed.wrapping_add(i as u8), "byte {i} of a {}-byte block", block.len);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut live: Vec<Live> = Vec::new();
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next();
    while let Some(op) = next() {
        let (a, b) = (next().unwrap_or(0), next().unwrap_or(0));
        let pick = |live: &Vec<Live>| usize::from(a) % live.len().max(1);
        match op % 6 {
            0 | 1 => {
                if live.len() >= 64 {
                    continue;
                }
                let layout = Layout::from_size_align(size_of(b, a), align_of(op >> 3)).unwrap();
                // SAFETY: a valid layout; size 0 is served as the smallest class.
                let ptr = unsafe { ALLOC.alloc(layout) };
                assert!(!ptr.is_null(), "out of memory for {layout:?}");
                assert!(ptr.addr().is_multiple_of(layout.align()), "{ptr:?} for {layout:?}");
                assert!(ALLOC.owns(ptr), "{ptr:?} for {layout:?} not owned");
                // SAFETY: live.
                assert!(unsafe { usable_size(ptr) } >= layout.size());
                let block = Live { ptr, len: layout.size(), seed: a ^ b, layout: Some(layout) };
                fill(&block);
                live.push(block);
            }
            2 if !live.is_empty() => {
                let block = live.swap_remove(pick(&live));
                check(&block, block.len);
                // SAFETY: live, not used again; freed by either by-pointer free (C's `free`
                // is the second).
                let freed = unsafe {
                    if b & 1 == 0 {
                        ALLOC.free(block.ptr);
                        true
                    } else {
                        ALLOC.free_if_owned(block.ptr)
                    }
                };
                assert!(freed, "{:?} not recognised as ours", block.ptr);
                // A foreign pointer (after purges, addresses come and go): left alone.
                let mut foreign = [a; 16];
                // SAFETY: a foreign pointer is allowed, and must not be touched.
                assert!(!unsafe { ALLOC.free_if_owned(foreign.as_mut_ptr()) } && foreign == [a; 16]);
            }
            3 if !live.is_empty() => {
                let block = live.swap_remove(pick(&live));
                check(&block, block.len);
                // SAFETY: live, not used again; a block never resized keeps its own layout,
                // a resized one is freed by pointer.
                unsafe {
                    match block.layout {
                        Some(layout) => ALLOC.dealloc(block.ptr, layout),
                        None => ALLOC.free(block.ptr),
                    }
                }
            }
            4 if !live.is_empty() => {
                let index = pick(&live);
                let new_len = size_of(b, op).max(1);
                // SAFETY: live; on success the old pointer is dead and replaced below.
                let moved = unsafe { ALLOC.resize(live[index].ptr, new_len) };
                assert!(!moved.is_null(), "out of memory resizing to {new_len}");
                assert!(moved.addr().is_multiple_of(16) && ALLOC.owns(moved));
                let old = Live { ptr: moved, ..live.swap_remove(index) };
                check(&old, new_len);
                let block = Live { ptr: moved, len: new_len, seed: old.seed.wrapping_add(1), layout: None };
                fill(&block);
                live.push(block);
            }
            5 => {
                if a & 1 == 0 {
                    ALLOC.purge();
                }
                for block in &live {
                    check(block, block.len);
                    assert!(ALLOC.owns(block.ptr));
                }
            }
            _ => {}
        }
    }
    for block in live {
        check(&block, block.len);
        // SAFETY: live, not used again.
        unsafe { ALLOC.free(block.ptr) };
    }
});

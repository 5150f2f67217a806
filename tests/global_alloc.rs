//! PinAlloc installed as this test binary's global allocator, stressed: every test here (and
//! the test harness itself) allocates through it.
#![cfg(not(loom))] // the allocator is not built under loom

use pinalloc::PinAlloc;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;

#[global_allocator]
static GLOBAL: PinAlloc = PinAlloc::new();

/// `native`, or `miri` under miri, which runs the same tests with fewer iterations.
const fn scaled(native: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { native }
}

/// A small deterministic generator, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A heap block filled with a pattern derived from its seed, verified before it is freed.
struct Patterned {
    ptr: *mut u8,
    layout: Layout,
    seed: u8,
}

// SAFETY: the block is plain memory owned by this value.
unsafe impl Send for Patterned {}

impl Patterned {
    fn new(size: usize, align: usize, seed: u8) -> Patterned {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { GLOBAL.alloc(layout) };
        assert!(!ptr.is_null(), "out of memory for {layout:?}");
        assert_eq!(ptr as usize % align, 0, "misaligned block for {layout:?}");
        let block = Patterned { ptr, layout, seed };
        // SAFETY: `size` writable bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, size) };
        for i in Self::checked(size) {
            bytes[i] = block.byte(i);
        }
        block
    }

    /// The bytes of a block of `size` bytes that carry the pattern: all, but under miri only
    /// the first and last 16, enough to see a block handed out twice or written by a
    /// free-list link, at a cost miri can afford for many blocks.
    fn checked(size: usize) -> impl Iterator<Item = usize> {
        let head = if cfg!(miri) { size.min(16) } else { size };
        (0..head).chain(head.max(size.saturating_sub(16))..size)
    }

    fn byte(&self, i: usize) -> u8 {
        (i as u8).wrapping_mul(31).wrapping_add(self.seed)
    }

    fn verify(&self) {
        // SAFETY: the block is live and `size` bytes long.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) };
        for i in Self::checked(bytes.len()) {
            assert_eq!(
                bytes[i],
                self.byte(i),
                "block {:p} ({:?}) corrupted at byte {i}",
                self.ptr,
                self.layout
            );
        }
    }
}

impl Drop for Patterned {
    fn drop(&mut self) {
        self.verify();
        // SAFETY: allocated with this layout, freed once.
        unsafe { GLOBAL.dealloc(self.ptr, self.layout) };
    }
}

fn random_size(rng: &mut Rng) -> usize {
    // Mostly small, sometimes medium, now and then large (up to 1 MiB).
    match rng.below(100) {
        0..=79 => 1 + rng.below(512) as usize,
        80..=97 => 1 + rng.below(32 << 10) as usize,
        _ => 1 + rng.below(1 << 20) as usize,
    }
}

#[test]
fn random_sizes_keep_their_contents() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut live: Vec<Patterned> = Vec::new();
    for round in 0..scaled(40_000, 150) as u32 {
        if live.len() < scaled(2_000, 30) && rng.below(3) != 0 {
            let align = 1 << rng.below(7);
            live.push(Patterned::new(random_size(&mut rng), align, round as u8));
        } else if !live.is_empty() {
            let victim = rng.below(live.len() as u64) as usize;
            live.swap_remove(victim);
        }
    }
}

#[test]
fn every_alignment_up_to_64_kib() {
    for shift in 0..=16 {
        let align = 1usize << shift;
        for size in [1, 7, align, 3 * align / 2 + 1, 40_000] {
            let blocks: Vec<Patterned> =
                (0..scaled(8, 1) as u8).map(|i| Patterned::new(size, align, i)).collect();
            drop(blocks);
        }
    }
}

#[test]
fn frees_on_other_threads() {
    let (to_freer, freer) = mpsc::sync_channel::<Vec<Patterned>>(16);
    let freers = thread::spawn(move || {
        let mut freed = 0usize;
        for batch in freer {
            freed += batch.len();
        }
        freed
    });
    let mut rng = Rng(42);
    let (rounds, per_batch) = (scaled(400, 4) as u32, scaled(250, 12) as u32);
    for round in 0..rounds {
        let batch = (0..per_batch)
            .map(|i| Patterned::new(1 + rng.below(2048) as usize, 8, (round + i) as u8))
            .collect();
        to_freer.send(batch).unwrap();
    }
    drop(to_freer);
    assert_eq!(freers.join().unwrap(), (rounds * per_batch) as usize);
}

#[test]
fn producer_consumer_pairs_and_a_crowd() {
    let threads = scaled(8, 3);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut rng = Rng(t as u64 + 1);
                let mut mine = Vec::new();
                for i in 0..scaled(20_000, 40) as u32 {
                    mine.push(Patterned::new(1 + rng.below(700) as usize, 16, i as u8));
                    if mine.len() > scaled(300, 10) {
                        let k = rng.below(mine.len() as u64) as usize;
                        mine.swap_remove(k);
                    }
                }
                mine // freed by the joining thread
            })
        })
        .collect();
    for handle in handles {
        drop(handle.join().unwrap());
    }
}

#[test]
fn a_thousand_threads_come_and_go() {
    for wave in 0..scaled(10, 2) {
        let handles: Vec<_> = (0..scaled(100, 3))
            .map(|t| {
                thread::spawn(move || {
                    let blocks: Vec<Patterned> = (0..scaled(50, 20))
                        .map(|i| Patterned::new(16 + i * 8, 8, (wave + t + i) as u8))
                        .collect();
                    // Half survive the thread and are freed by the joiner.
                    blocks.into_iter().skip(scaled(25, 10)).collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            drop(handle.join().unwrap());
        }
    }
}

#[test]
fn realloc_chains_preserve_contents() {
    let mut rng = Rng(7);
    for _ in 0..scaled(200, 4) {
        let mut size = 1 + rng.below(64) as usize;
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero size.
        let mut ptr = unsafe { GLOBAL.alloc(layout) };
        // SAFETY: `size` bytes.
        unsafe { ptr.write_bytes(0xA5, size) };
        for _ in 0..12 {
            let new_size = if rng.below(4) == 0 { 1 + size / 2 } else { size * 2 + rng.below(5000) as usize };
            // SAFETY: `ptr` is live with `layout`; new_size is non-zero.
            let new = unsafe { GLOBAL.realloc(ptr, Layout::from_size_align(size, 8).unwrap(), new_size) };
            assert!(!new.is_null());
            let kept = size.min(new_size);
            // SAFETY: `kept` bytes are valid in the new block.
            let bytes = unsafe { std::slice::from_raw_parts(new, kept) };
            // Compared a page at a time: a `memcmp`, which miri runs far faster than a loop.
            assert!(
                bytes.chunks(4096).all(|c| c == &[0xA5; 4096][..c.len()]),
                "realloc {size} -> {new_size} lost bytes"
            );
            // SAFETY: fill the rest of the new block.
            unsafe { new.write_bytes(0xA5, new_size) };
            ptr = new;
            size = new_size;
        }
        // SAFETY: live block with this layout.
        unsafe { GLOBAL.dealloc(ptr, Layout::from_size_align(size, 8).unwrap()) };
    }
}

#[test]
fn zeroed_memory_is_zero_even_when_reused() {
    for size in [8usize, 100, 4000, 100_000, 3 << 20] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        for _ in 0..3 {
            // SAFETY: non-zero size.
            let ptr = unsafe { GLOBAL.alloc_zeroed(layout) };
            // SAFETY: `size` bytes.
            let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, size) };
            assert!(bytes.chunks(4096).all(|c| c == &[0; 4096][..c.len()]), "alloc_zeroed({size}) not zero");
            bytes.fill(0xFF);
            // SAFETY: as allocated.
            unsafe { GLOBAL.dealloc(ptr, layout) };
        }
    }
}

#[test]
fn usable_size_covers_the_request() {
    for (size, align) in [(1, 1), (100, 8), (1000, 64), (32 << 10, 8), (100_000, 4096), (5 << 20, 16)] {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { GLOBAL.alloc(layout) };
        // SAFETY: live block from this allocator, alignment below 4 MiB.
        let usable = unsafe { pinalloc::global::usable_size(ptr) };
        assert!(usable >= size, "usable {usable} < {size}");
        // SAFETY: as allocated.
        unsafe { GLOBAL.dealloc(ptr, layout) };
    }
}

#[test]
fn absurd_requests_return_null() {
    let layout = Layout::from_size_align(isize::MAX as usize - 4096, 8).unwrap();
    // SAFETY: non-zero size; a null result is the expected answer.
    assert!(unsafe { GLOBAL.alloc(layout) }.is_null());
    let layout = Layout::from_size_align(1 << 46, 1 << 20).unwrap();
    // SAFETY: as above (64 TiB: more than the machine can map).
    let ptr = unsafe { GLOBAL.alloc(layout) };
    if !ptr.is_null() {
        // Overcommit may grant the address space; give it back untouched.
        // SAFETY: as allocated.
        unsafe { GLOBAL.dealloc(ptr, layout) };
    }
}

#[test]
#[cfg_attr(miri, ignore = "miri cannot fork")]
fn fork_then_allocate_in_the_child() {
    // Other threads allocate while we fork, so locks may be held at the moment of fork.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..2)
        .map(|t| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut rng = Rng(t + 99);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    drop(Patterned::new(1 + rng.below(20_000) as usize, 8, 1));
                }
            })
        })
        .collect();
    for _ in 0..20 {
        // SAFETY: the child only allocates, checks and exits with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = std::panic::catch_unwind(|| {
                let blocks: Vec<Patterned> =
                    (0..1000).map(|i| Patterned::new(1 + i * 13 % 5000, 8, i as u8)).collect();
                drop(blocks);
            })
            .is_ok();
            // SAFETY: leave the child without running the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child failed: {status}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in busy {
        b.join().unwrap();
    }
}

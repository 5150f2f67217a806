//! Passive false sharing: a block freed by pointer on a thread other than the one whose
//! span it came from must not be that thread's next block, or two threads would write one
//! cache line (Hoard's cache-scratch benchmark). Its own process, so no other test's blocks
//! share the heap. Runs under miri too.
#![cfg(not(any(loom, feature = "debug-checks")))]

use core::alloc::{GlobalAlloc, Layout};
use pinalloc::PinAlloc;
use std::sync::{Arc, Barrier};

static ALLOC: PinAlloc = PinAlloc::new();

const LINE: usize = 64;
const WORKERS: usize = 4;

/// A block handed to another thread.
struct Handed(*mut u8);

// SAFETY: the block is plain memory owned by whoever holds this.
unsafe impl Send for Handed {}

#[test]
fn threads_freeing_neighbouring_blocks_then_allocating_never_share_a_line() {
    let layout = Layout::from_size_align(8, 8).unwrap();
    // Blocks handed out back to back by this thread's span, as a server hands requests out.
    // SAFETY: a non-zero-size layout.
    let handed: Vec<*mut u8> = (0..WORKERS).map(|_| unsafe { ALLOC.alloc(layout) }).collect();
    let lines: Vec<usize> = handed.iter().map(|block| block.addr() / LINE).collect();
    // Every worker frees before any allocates, and none exits before all have allocated,
    // as the threads of cache-scratch run side by side.
    let (freed, done) = (Arc::new(Barrier::new(WORKERS)), Arc::new(Barrier::new(WORKERS)));
    let workers: Vec<_> = handed
        .iter()
        .map(|&block| {
            let (block, freed, done) = (Handed(block), freed.clone(), done.clone());
            std::thread::spawn(move || {
                // SAFETY: the block is live and was handed to this thread, which frees it.
                unsafe { ALLOC.free({ block }.0) };
                freed.wait();
                let mut mine = Vec::new();
                for _ in 0..if cfg!(miri) { 10 } else { 50 } {
                    // SAFETY: a non-zero-size layout.
                    let own = unsafe { ALLOC.alloc(layout) };
                    assert!(!own.is_null());
                    // SAFETY: 8 writable bytes.
                    unsafe { own.write_bytes(7, 8) };
                    mine.push(own.addr() / LINE);
                    // SAFETY: live, not used again: the next allocation may reuse it.
                    unsafe { ALLOC.free(own) };
                }
                done.wait();
                mine
            })
        })
        .collect();
    for (worker, thread) in workers.into_iter().enumerate() {
        for line in thread.join().unwrap() {
            assert!(!lines.contains(&line), "worker {worker} got a block on a line of the handed-out blocks");
        }
    }
}

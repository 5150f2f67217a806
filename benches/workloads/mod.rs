//! Workloads shared by the criterion benches and the quick ratio table, so both measure the
//! same code.
#![allow(dead_code)] // each bench binary uses its own subset

pub mod arena;
pub mod stack;

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `work(thread_index)` on `threads` threads started together (pinned to distinct
/// cores where the machine allows), and returns the wall time until the last one finished.
pub fn run_on_threads(threads: usize, work: impl Fn(usize) + Sync) -> Duration {
    let cores = pinalloc::os::available_cores();
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (barrier, work, cores) = (&barrier, &work, &cores);
            s.spawn(move || {
                if let Some(&core) = cores.get(t % cores.len().max(1)) {
                    let _ = pinalloc::os::pin_current_thread_to_core(core);
                }
                barrier.wait();
                work(t);
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins every thread.
        start
    })
    .elapsed()
}

//! Memory goes back to the OS: after a program frees a large working set, its resident
//! size falls back near where it started once the purge delay has passed, without any
//! further call into the allocator. Its own process (RSS is per process).
#![cfg(not(loom))]

use pinalloc::PinAlloc;
use pinalloc::global::Config;
use std::time::Duration;

#[global_allocator]
static GLOBAL: PinAlloc = PinAlloc::with_config(Config::new().purge_delay_ms(50));

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn resident_memory_drops_after_a_free_all() {
    let baseline = rss_bytes();
    let blocks: Vec<Box<[u8; 100]>> = (0..1_000_000).map(|i| Box::new([i as u8; 100])).collect();
    let peak = rss_bytes();
    assert!(peak > baseline + (90 << 20), "the working set is resident: {peak} vs {baseline}");
    drop(blocks);
    // Quiet now: the purger thread must do the work by itself.
    let mut after = rss_bytes();
    for _ in 0..40 {
        if after < baseline + (25 << 20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        after = rss_bytes();
    }
    assert!(
        after < baseline + (25 << 20),
        "RSS {} MB after free-all (baseline {} MB, peak {} MB)",
        after >> 20,
        baseline >> 20,
        peak >> 20
    );
    let stats = GLOBAL.stats();
    assert!(stats.purged_bytes_total >= 60 << 20, "the allocator's own accounting saw the purge: {stats:?}");
    assert!(
        stats.small_resident_bytes < 25 << 20,
        "resident small-block pages: {}",
        stats.small_resident_bytes
    );
}

//! `valgrind --tool=callgrind` target: N pairs of `Box::new([u8; 64])` + drop through
//! `#[global_allocator]`, one 64-byte block kept alive. Instructions per pair are
//! (Ir(N) - Ir(0)) / N.

use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let keep = black_box(Box::new([0u8; 64]));
    for _ in 0..n {
        drop(black_box(Box::new([1u8; 64])));
    }
    drop(keep);
}

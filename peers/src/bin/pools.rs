//! pinalloc's `LockFreeBufferPool` against an `ArrayQueue` pool, lockfree-object-pool,
//! opool and plain `Vec` allocation, in one run.
//!
//! `cargo run --release --manifest-path peers/Cargo.toml --bin pools [ROUNDS]` prints each
//! contender's median ns per buffer (contenders alternate round after round, so drift on a
//! shared machine hits them alike) and pinalloc's ratio to the `ArrayQueue` pool: the median
//! of the rounds' ratios. Targets: a get+drop pair ≤ 3 ns and ≤ 0.5× the ArrayQueue pool;
//! passing buffers between 2 threads ≤ 0.7× the ArrayQueue pool.
//!
//! The `carried` contender has no pool and no buffer (16 bytes ride inside the guard): on
//! one thread it is no work at all; between 2 threads it is the queue that carries the
//! guards with nothing else to do, which is not cheaper than with a pool (see
//! `pools.rs`). The last column is pinalloc's ratio to it.
//!
//! `… --bin pools -- one SCENARIO NAME N` runs one scenario (`pair`, `pass`) N times on one
//! contender, for a profiler.

use pinalloc_peers::pools::NAMES;
use pinalloc_peers::with_pool;
use pinalloc_peers::{Alternated, measure_alternating};

const PAIRS: u64 = 5_000_000;
const PASSED: u64 = 1_000_000;

fn row(title: &str, measured: &Alternated) {
    print!("| {title:<30} |");
    for v in measured.medians() {
        print!(" {v:>9.2} |");
    }
    println!(
        " {:>8.2} | {:>8.2} |",
        measured.ratio("pinalloc", "arrayqueue"),
        measured.ratio("pinalloc", "carried")
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("one") {
        let n = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1);
        for _ in 0..n {
            let ns = match args[2].as_str() {
                "pair" => with_pool!(args[3].as_str(), |c| get_drop_pair(&c, PAIRS)),
                "pass" => with_pool!(args[3].as_str(), |c| pass_between_threads(&c, PASSED)),
                other => panic!("no scenario {other}: pair or pass"),
            };
            println!("{ns:.2} ns");
        }
        return;
    }
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(11);
    print!("| {:<30} |", "ns per buffer (median)");
    for name in NAMES {
        print!(" {name:>9} |");
    }
    println!(" pinalloc / arrayqueue (median of rounds) | pinalloc / carried |");
    println!("|{}", "---|".repeat(NAMES.len() + 3));
    let pair = measure_alternating(&NAMES, rounds, |name| with_pool!(name, |c| get_drop_pair(&c, PAIRS)));
    row("get+drop pair, one thread", &pair);
    let pass =
        measure_alternating(&NAMES, rounds, |name| with_pool!(name, |c| pass_between_threads(&c, PASSED)));
    row("passed between 2 threads", &pass);
    println!();
    println!("targets: pair ≤ 3 ns and ≤ 0.5× arrayqueue; 2 threads ≤ 0.7× arrayqueue");
}

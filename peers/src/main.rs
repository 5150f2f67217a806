//! pinalloc against mimalloc, snmalloc, jemalloc and the system allocator, in one run.
//!
//! `cargo run --release --manifest-path peers/Cargo.toml` prints a table of times and
//! ratios (pinalloc's time / the best peer's). Every allocator is called through its
//! `GlobalAlloc` implementation, monomorphised (no dynamic dispatch), so each measures what a
//! `#[global_allocator]` would do. Also:
//! * `… -- rss` runs the RSS-after-free-all scenario, each allocator in its own process;
//! * `… -- pair NAME N` runs only N 64-byte pairs on NAME (for `valgrind --tool=callgrind`).

use pinalloc_peers::{
    alloc, dealloc, larson, median, mixed_all_free_all, pair_64, producer_consumer, vec_growth,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::Duration;

static PINALLOC: pinalloc::PinAlloc = pinalloc::PinAlloc::new();
static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
static SNMALLOC: snmalloc_rs::SnMalloc = snmalloc_rs::SnMalloc;
static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The allocators compared, in table order.
const NAMES: [&str; 5] = ["pinalloc", "mimalloc", "snmalloc", "jemalloc", "glibc"];

/// Each allocator's figure for `scenario`: every measurement is a fresh process running a
/// warm-up round and then `rounds` rounds (its median), so no scenario inherits another's
/// heap; the processes of the different allocators alternate, `repeats` times, so drift
/// on a shared machine hits them alike; the median of the repeats is reported.
fn compare(scenario: &str, rounds: usize, repeats: usize) -> Vec<(&'static str, f64)> {
    let exe = std::env::current_exe().expect("own path");
    let mut samples: [Vec<f64>; 5] = Default::default();
    for _ in 0..repeats {
        for (name, out) in NAMES.iter().zip(&mut samples) {
            let output = std::process::Command::new(&exe)
                .args(["run", scenario, name, &rounds.to_string()])
                .output()
                .expect("re-running this benchmark");
            let text = String::from_utf8_lossy(&output.stdout);
            out.push(text.trim().parse().unwrap_or(f64::NAN));
        }
    }
    NAMES.iter().zip(samples).map(|(name, s)| (*name, median(s))).collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_table(title: &str, results: Vec<(&str, f64)>) {
    let best_peer = results.iter().skip(1).map(|r| r.1).fold(f64::INFINITY, f64::min);
    let ours = results[0].1;
    print!("| {title:<36} |");
    for (_, value) in &results {
        print!(" {value:>9.2} |");
    }
    println!(" {:>6.2} |", ours / best_peer);
}

fn rss_child(name: &str) {
    fn run<A: GlobalAlloc>(a: &A) -> (usize, usize) {
        let layout = Layout::from_size_align(100, 8).unwrap();
        let n = 2_000_000;
        let mut blocks = Vec::with_capacity(n);
        // SAFETY: non-zero layout; every block freed once.
        unsafe {
            for _ in 0..n {
                let p = alloc(a, layout);
                p.write_bytes(1, 100);
                blocks.push(p);
            }
            let peak = rss_mb();
            for p in blocks.drain(..) {
                dealloc(a, p, layout);
            }
            drop(blocks);
            std::thread::sleep(Duration::from_secs(1));
            (peak, rss_mb())
        }
    }
    let (peak, after) = match name {
        "pinalloc" => run(&PINALLOC),
        "mimalloc" => run(&MIMALLOC),
        "snmalloc" => run(&SNMALLOC),
        "jemalloc" => run(&JEMALLOC),
        _ => run(&System),
    };
    println!("{peak} {after}");
}

fn rss_mb() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096 / (1 << 20)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("rss-child") => return rss_child(&args[2]),
        Some("pair") => {
            let n: u64 = args[3].parse().unwrap();
            let d = match args[2].as_str() {
                "pinalloc" => pair_64(&PINALLOC, n),
                "mimalloc" => pair_64(&MIMALLOC, n),
                "snmalloc" => pair_64(&SNMALLOC, n),
                "jemalloc" => pair_64(&JEMALLOC, n),
                _ => pair_64(&System, n),
            };
            black_box(d);
            return;
        }
        Some("run") => {
            // One scenario on one allocator in this process: a warm-up round, then the
            // median of ROUNDS rounds, printed alone (`run SCENARIO NAME ROUNDS`).
            let rounds: usize = args.get(4).map_or(5, |r| r.parse().unwrap());
            let one = || -> f64 {
                macro_rules! on {
                    ($f:expr) => {
                        match args[3].as_str() {
                            "pinalloc" => $f(&PINALLOC),
                            "mimalloc" => $f(&MIMALLOC),
                            "snmalloc" => $f(&SNMALLOC),
                            "jemalloc" => $f(&JEMALLOC),
                            _ => $f(&System),
                        }
                    };
                }
                match args[2].as_str() {
                    "pair" => on!(|a| pair_64(a, 5_000_000).as_secs_f64() * 1e9 / 5e6),
                    "mixed" => on!(|a| ms(mixed_all_free_all(a))),
                    "pc" => on!(|a| ms(producer_consumer(a))),
                    "larson" => on!(|a| ms(larson(a))),
                    _ => on!(|a| ms(vec_growth(a))),
                }
            };
            black_box(one());
            println!("{}", median((0..rounds).map(|_| one()).collect()));
            return;
        }
        Some("rss") => {
            println!("| RSS (MB) after 2M x 100 B, free-all, 1 s | peak | after |");
            println!("|---|---:|---:|");
            for name in NAMES {
                let out = std::process::Command::new(&args[0]).args(["rss-child", name]).output().unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                let mut it = text.split_whitespace();
                println!("| {name} | {} | {} |", it.next().unwrap_or("?"), it.next().unwrap_or("?"));
            }
            return;
        }
        _ => {}
    }
    println!(
        "| scenario (median of rounds)        |  pinalloc |  mimalloc |  snmalloc |  jemalloc |     glibc | ratio to best peer |"
    );
    println!(
        "|------------------------------------|----------:|----------:|----------:|----------:|----------:|------:|"
    );
    print_table("64 B alloc+free pair (ns)", compare("pair", 5, 3));
    print_table("100k mixed 16B-4KiB alloc/free (ms)", compare("mixed", 5, 3));
    print_table("producer/consumer 2M remote (ms)", compare("pc", 5, 3));
    print_table("larson 2 threads 800k ops (ms)", compare("larson", 5, 3));
    print_table("Vec growth 8M u64 by realloc x5 (ms)", compare("vec", 3, 3));
}

//! pinalloc against mimalloc, snmalloc, jemalloc and the system allocator, in one run.
//!
//! `cargo run --release --manifest-path peers/Cargo.toml` prints a table of times and
//! ratios (pinalloc's time / the best peer's). Every allocator is called through its
//! `GlobalAlloc` implementation, monomorphised (no dynamic dispatch), so each measures what a
//! `#[global_allocator]` would do. Also:
//! * `… -- rss` runs the RSS-after-free-all scenario, each allocator in its own process;
//! * `… -- pair NAME N` runs only N 64-byte pairs on NAME (for `valgrind --tool=callgrind`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::{Duration, Instant};

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

/// Deterministic xorshift.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Calls go through a non-inlined function, as `#[global_allocator]` calls go through the
/// `__rust_alloc` shim: no allocator gets inlined into the benchmark loop.
#[inline(never)]
unsafe fn alloc<A: GlobalAlloc>(a: &A, layout: Layout) -> *mut u8 {
    // SAFETY: forwarded.
    black_box(unsafe { a.alloc(layout) })
}

#[inline(never)]
unsafe fn dealloc<A: GlobalAlloc>(a: &A, p: *mut u8, layout: Layout) {
    // SAFETY: forwarded.
    unsafe { a.dealloc(black_box(p), layout) }
}

#[inline(never)]
unsafe fn realloc<A: GlobalAlloc>(a: &A, p: *mut u8, layout: Layout, size: usize) -> *mut u8 {
    // SAFETY: forwarded.
    black_box(unsafe { a.realloc(black_box(p), layout, size) })
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// 64 B alloc + free pairs with one 64 B block kept alive throughout.
fn pair_64<A: GlobalAlloc>(a: &A, pairs: u64) -> Duration {
    let layout = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: non-zero layouts; every block freed once with its layout.
    unsafe {
        let keep = alloc(a, layout);
        let start = Instant::now();
        for _ in 0..pairs {
            let p = alloc(a, layout);
            black_box(p).write(1);
            dealloc(a, p, layout);
        }
        let elapsed = start.elapsed();
        dealloc(a, keep, layout);
        elapsed
    }
}

/// Allocates 100k blocks of 16 B..4 KiB in random sizes, then frees them in random order.
fn mixed_all_free_all<A: GlobalAlloc>(a: &A) -> Duration {
    let mut rng = Rng(12345);
    let n = 100_000;
    let mut blocks: Vec<(*mut u8, Layout)> = Vec::with_capacity(n);
    let layouts: Vec<Layout> =
        (0..n).map(|_| Layout::from_size_align(16 + (rng.next() % 4081) as usize, 8).unwrap()).collect();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let start = Instant::now();
    // SAFETY: non-zero layouts; every block freed once with its layout.
    unsafe {
        for &layout in &layouts {
            let p = alloc(a, layout);
            p.write(1);
            blocks.push((p, layout));
        }
        for &i in &order {
            let (p, layout) = blocks[i];
            dealloc(a, p, layout);
        }
    }
    start.elapsed()
}

/// A producer thread allocates 64..256 B blocks and hands them, in batches of 64, to a
/// consumer thread that frees them: every free is remote.
fn producer_consumer<A: GlobalAlloc + Sync>(a: &A) -> Duration {
    const BLOCKS: usize = 2_000_000;
    const BATCH: usize = 64;
    struct Batch([(usize, usize); BATCH]);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(64);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for batch in rx {
                for (p, size) in batch.0 {
                    // SAFETY: allocated by the producer with this layout; freed once.
                    unsafe { dealloc(a, p as *mut u8, Layout::from_size_align_unchecked(size, 8)) };
                }
            }
        });
        let mut rng = Rng(99);
        for _ in 0..BLOCKS / BATCH {
            let mut batch = Batch([(0, 0); BATCH]);
            for slot in &mut batch.0 {
                let size = 64 + (rng.next() % 193) as usize;
                // SAFETY: non-zero layout.
                let p = unsafe { alloc(a, Layout::from_size_align_unchecked(size, 8)) };
                // SAFETY: at least one byte.
                unsafe { p.write(7) };
                *slot = (p as usize, size);
            }
            tx.send(batch).unwrap();
        }
        drop(tx);
    });
    start.elapsed()
}

/// Larson-style server: each of 2 threads owns 1000 slots of objects (16..1024 B) and
/// replaces random slots; every 1000 rounds the threads swap their slot arrays, so objects
/// are freed by the thread that did not allocate them.
fn larson<A: GlobalAlloc + Sync>(a: &A) -> Duration {
    const SLOTS: usize = 1000;
    const ROUNDS: usize = 400_000;
    let exchange = std::sync::Mutex::new(Vec::<Vec<(usize, usize)>>::new());
    let barrier = std::sync::Barrier::new(2);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2 {
            let (exchange, barrier) = (&exchange, &barrier);
            s.spawn(move || {
                let mut rng = Rng(t + 7);
                let alloc = |rng: &mut Rng| {
                    let size = 16 + (rng.next() % 1009) as usize;
                    // SAFETY: non-zero layout.
                    let p = unsafe { alloc(a, Layout::from_size_align_unchecked(size, 8)) };
                    // SAFETY: at least one byte.
                    unsafe { p.write(1) };
                    (p as usize, size)
                };
                let mut slots: Vec<(usize, usize)> = (0..SLOTS).map(|_| alloc(&mut rng)).collect();
                barrier.wait();
                for round in 0..ROUNDS {
                    let i = (rng.next() % SLOTS as u64) as usize;
                    let (p, size) = std::mem::replace(&mut slots[i], alloc(&mut rng));
                    // SAFETY: allocated with this layout, freed once.
                    unsafe { dealloc(a, p as *mut u8, Layout::from_size_align_unchecked(size, 8)) };
                    if round % 1000 == 999 {
                        let mut ex = exchange.lock().unwrap();
                        ex.push(std::mem::take(&mut slots));
                        slots = if ex.len() >= 2 { ex.remove(0) } else { ex.pop().unwrap() };
                    }
                }
                for (p, size) in slots {
                    // SAFETY: as above.
                    unsafe { dealloc(a, p as *mut u8, Layout::from_size_align_unchecked(size, 8)) };
                }
            });
        }
    });
    start.elapsed()
}

/// A `Vec<u64>` grown from 1 to 8M elements by doubling `realloc`s, each new half filled
/// as pushes would fill it; 5 times.
fn vec_growth<A: GlobalAlloc>(a: &A) -> Duration {
    let start = Instant::now();
    for _ in 0..5 {
        let mut cap = 1usize;
        // SAFETY: non-zero layouts; realloc'd with the current layout; freed once.
        unsafe {
            let mut p = alloc(a, Layout::array::<u64>(cap).unwrap());
            while cap < 8 << 20 {
                let old = Layout::array::<u64>(cap).unwrap();
                p = realloc(a, p, old, old.size() * 2);
                // Fill the new half, as pushes would.
                for i in cap..cap * 2 {
                    p.cast::<u64>().add(i).write(i as u64);
                }
                cap *= 2;
            }
            dealloc(a, p, Layout::array::<u64>(cap).unwrap());
        }
    }
    start.elapsed()
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

//! The scenarios pinalloc is compared on, generic over any `GlobalAlloc`: used by the
//! one-run ratio table (`src/main.rs`) and the criterion benches (`benches/peers.rs`).
//! Each returns the time of its measured part only.

pub mod buffers;
pub mod ipc;
pub mod pools;

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The median of `samples` (the upper one of an even count).
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Samples of several contenders taken in alternating rounds (see [`measure_alternating`]).
pub struct Alternated {
    names: Vec<String>,
    /// `rounds[r][c]`: contender `c`'s sample in round `r`.
    rounds: Vec<Vec<f64>>,
}

impl Alternated {
    fn column(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no contender {name}"))
    }

    /// Each contender's median, in `names` order.
    pub fn medians(&self) -> Vec<f64> {
        (0..self.names.len()).map(|c| median(self.rounds.iter().map(|round| round[c]).collect())).collect()
    }

    /// `ours / theirs`: the median of the rounds' ratios. Each round's two samples were
    /// taken moments apart, so a machine whose speed drifts between rounds (as a shared VM's
    /// does) moves both alike; a ratio of two medians would be hostage to that drift.
    pub fn ratio(&self, ours: &str, theirs: &str) -> f64 {
        let (a, b) = (self.column(ours), self.column(theirs));
        median(self.rounds.iter().map(|round| round[a] / round[b]).collect())
    }
}

/// `rounds` runs of `run(name)` for every name. The contenders alternate round after round,
/// so drift on a shared machine hits them alike.
pub fn measure_alternating(names: &[&str], rounds: usize, run: impl Fn(&str) -> f64) -> Alternated {
    let rounds = (0..rounds).map(|_| names.iter().map(|name| run(name)).collect()).collect();
    Alternated { names: names.iter().map(|n| n.to_string()).collect(), rounds }
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
///
/// # Safety
/// As for `GlobalAlloc::alloc`.
#[inline(never)]
pub unsafe fn alloc<A: GlobalAlloc>(a: &A, layout: Layout) -> *mut u8 {
    // SAFETY: forwarded.
    black_box(unsafe { a.alloc(layout) })
}

/// Frees through a non-inlined call, as `alloc` allocates.
///
/// # Safety
/// As for `GlobalAlloc::dealloc`.
#[inline(never)]
pub unsafe fn dealloc<A: GlobalAlloc>(a: &A, p: *mut u8, layout: Layout) {
    // SAFETY: forwarded.
    unsafe { a.dealloc(black_box(p), layout) }
}

#[inline(never)]
unsafe fn realloc<A: GlobalAlloc>(a: &A, p: *mut u8, layout: Layout, size: usize) -> *mut u8 {
    // SAFETY: forwarded.
    black_box(unsafe { a.realloc(black_box(p), layout, size) })
}

/// 64 B alloc + free pairs with one 64 B block kept alive throughout.
pub fn pair_64<A: GlobalAlloc>(a: &A, pairs: u64) -> Duration {
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
pub fn mixed_all_free_all<A: GlobalAlloc>(a: &A) -> Duration {
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
pub fn producer_consumer<A: GlobalAlloc + Sync>(a: &A) -> Duration {
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
pub fn larson<A: GlobalAlloc + Sync>(a: &A) -> Duration {
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
pub fn vec_growth<A: GlobalAlloc>(a: &A) -> Duration {
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

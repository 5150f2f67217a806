//! The showcase: a market-data pipeline on pinned cores, run twice side by side — once on
//! pinalloc's pools and allocator, once on plain `Vec`/`Box` and the system allocator.
//!
//! Each pipeline is a **feed** thread and a **strategy** thread, each pinned to its own core
//! (as many pipelines as there are pairs of cores; one on a 2-core machine):
//! * the feed builds a synthetic order-book update of 64–512 bytes at a steady rate, in a
//!   buffer (a `LockFreeBufferPool` guard, or a fresh `Vec<u8>`), and passes it to the
//!   strategy over a `crossbeam_queue::ArrayQueue`;
//! * the strategy decodes it, applies its price levels to an order book held in
//!   `allocator_api2` vectors, and sends an order (a small boxed object) whenever the spread
//!   tightens; it keeps the last 1024 orders, freeing older ones. The order book and orders
//!   live on `PinAlloc` in the first run and on the system allocator in the second; the
//!   code is the same, generic over the allocator;
//! * each message's latency, from the moment the feed starts building it to the moment the
//!   strategy has acted on it and let go of its buffer, goes into an `hdrhistogram`.
//!
//! `cargo run --release --example hft_pinned [-- --seconds S --rate MSGS_PER_S --rounds N]`
//!
//! The two runs alternate in short rounds (8 by default) whose histograms are merged, so a
//! stall of the machine (a descheduled thread backs the queue up) lands on both alike; the
//! last column counts the messages that waited over 100 µs. A third row, `machine alone`,
//! measures the machine itself in the same rounds: on the same cores, threads that only
//! keep the feed's schedule record how late each tick came. Its tail is what no allocator
//! can remove: where it reaches the pipelines' p99.9 (a shared VM whose host takes a core
//! for milliseconds), that percentile measures the machine, not the allocator.
//!
//! Where pinning is not permitted the threads run unpinned, and the program says so.

use allocator_api2::alloc::{Allocator, Global};
use allocator_api2::boxed::Box as ABox;
use allocator_api2::vec::Vec as AVec;
use crossbeam_queue::ArrayQueue;
use hdrhistogram::Histogram;
use pinalloc::PinAlloc;
use pinalloc::pool::{BufferClass, BufferGuard, ClassConfig, LockFreeBufferPool, LockFreeBufferPoolConfig};
use std::ops::DerefMut;
use std::time::{Duration, Instant};

/// The allocator of the first run's order book and orders.
static PINALLOC: PinAlloc = PinAlloc::new();

const MAX_PACKET: usize = 512;
const QUEUE: usize = 4096;
/// Header: sent-at ns (8), sequence number (8), length (2), side (1), level count (1).
const HEADER: usize = 20;
/// Each level: price (4), quantity (4).
const LEVEL: usize = 8;
/// Orders kept before the oldest is freed.
const ORDERS_KEPT: usize = 1024;

// ---------------------------------------------------------------- packet buffers

/// Where the feed gets a packet's memory.
trait Buffers: Sync {
    const NAME: &'static str;
    type Packet<'a>: DerefMut<Target = [u8]> + Send
    where
        Self: 'a;
    fn packet(&self, len: usize) -> Self::Packet<'_>;
}

/// pinalloc: 512-byte buffers from a `LockFreeBufferPool` (the compression class, resized).
struct Pooled(LockFreeBufferPool);

impl Pooled {
    fn new() -> Self {
        let class =
            ClassConfig::new(MAX_PACKET, 64).initial(2 * QUEUE as u32).max(4 * QUEUE as u32).thread_cache(64);
        let config = LockFreeBufferPoolConfig::new()
            .class(BufferClass::Compression, class)
            .class(BufferClass::Serialization, ClassConfig::new(4096, 4096).initial(0).max(1))
            .class(BufferClass::Simd, ClassConfig::new(32, 64).initial(0).max(1));
        Pooled(LockFreeBufferPool::with_config(config).expect("a valid pool configuration"))
    }
}

impl Buffers for Pooled {
    const NAME: &'static str = "pinalloc";
    type Packet<'a> = BufferGuard<'a>;
    fn packet(&self, _len: usize) -> BufferGuard<'_> {
        self.0.get(BufferClass::Compression)
    }
}

/// The system allocator: a fresh `Vec` per packet, freed by the strategy thread.
struct Fresh;

impl Buffers for Fresh {
    const NAME: &'static str = "system malloc";
    type Packet<'a> = Vec<u8>;
    fn packet(&self, len: usize) -> Vec<u8> {
        vec![0u8; len]
    }
}

// ---------------------------------------------------------------- the feed's packets

/// Deterministic xorshift: the same market for both runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Writes update `seq`: a side and `(len - HEADER) / LEVEL` price levels around a drifting
/// mid price. Returns the packet's length.
fn build(packet: &mut [u8], seq: u64, len: usize, sent_at_ns: u64, rng: &mut Rng) -> usize {
    let levels = (len - HEADER) / LEVEL;
    let side = (rng.next() & 1) as u8;
    let mid = 100_000 + (seq / 1000 % 200) as u32;
    packet[0..8].copy_from_slice(&sent_at_ns.to_le_bytes());
    packet[8..16].copy_from_slice(&seq.to_le_bytes());
    packet[16..18].copy_from_slice(&(len as u16).to_le_bytes());
    packet[18] = side;
    packet[19] = levels as u8;
    for level in 0..levels {
        let offset = (rng.next() % 64) as u32;
        let price = if side == 0 { mid - 1 - offset } else { mid + 1 + offset };
        let quantity = if rng.next().is_multiple_of(8) { 0 } else { (rng.next() % 1000) as u32 + 1 };
        let at = HEADER + level * LEVEL;
        packet[at..at + 4].copy_from_slice(&price.to_le_bytes());
        packet[at + 4..at + 8].copy_from_slice(&quantity.to_le_bytes());
    }
    len
}

// ---------------------------------------------------------------- the strategy's book

#[derive(Clone, Copy)]
struct Level {
    price: u32,
    quantity: u32,
}

/// An order the strategy sends: a small heap object, as order objects usually are.
#[allow(dead_code)] // fields are what an order carries; the example only keeps them alive
struct Order {
    id: u64,
    price: u32,
    quantity: u32,
    buy: bool,
    sent_at_ns: u64,
}

/// An order book (bids best first, asks best first) and the recent orders, all on `A`.
struct Strategy<A: Allocator + Copy> {
    bids: AVec<Level, A>,
    asks: AVec<Level, A>,
    orders: AVec<ABox<Order, A>, A>,
    next_order: usize,
    alloc: A,
    sent: u64,
}

impl<A: Allocator + Copy> Strategy<A> {
    fn new(alloc: A) -> Self {
        Strategy {
            bids: AVec::with_capacity_in(256, alloc),
            asks: AVec::with_capacity_in(256, alloc),
            orders: AVec::with_capacity_in(ORDERS_KEPT, alloc),
            next_order: 0,
            alloc,
            sent: 0,
        }
    }

    /// Sets a level's quantity (0 removes it); bids are kept descending, asks ascending.
    fn apply(&mut self, buy: bool, price: u32, quantity: u32) {
        let side = if buy { &mut self.bids } else { &mut self.asks };
        let found = side
            .binary_search_by(|level| if buy { price.cmp(&level.price) } else { level.price.cmp(&price) });
        match (found, quantity) {
            (Ok(i), 0) => {
                side.remove(i);
            }
            (Ok(i), q) => side[i].quantity = q,
            (Err(_), 0) => {}
            (Err(i), q) => side.insert(i, Level { price, quantity: q }),
        }
    }

    /// Decodes one update, applies it, and sends an order when the spread is tight.
    fn on_packet(&mut self, packet: &[u8]) -> (u64, u64) {
        let sent_at_ns = u64::from_le_bytes(packet[0..8].try_into().expect("8 bytes"));
        let seq = u64::from_le_bytes(packet[8..16].try_into().expect("8 bytes"));
        let len = u16::from_le_bytes(packet[16..18].try_into().expect("2 bytes")) as usize;
        let buy = packet[18] == 0;
        let levels = packet[19] as usize;
        assert_eq!(levels, (len - HEADER) / LEVEL, "packet {seq} is corrupt");
        for level in packet[HEADER..HEADER + levels * LEVEL].chunks_exact(LEVEL) {
            let price = u32::from_le_bytes(level[0..4].try_into().expect("4 bytes"));
            let quantity = u32::from_le_bytes(level[4..8].try_into().expect("4 bytes"));
            self.apply(buy, price, quantity);
        }
        if let (Some(bid), Some(ask)) = (self.bids.first(), self.asks.first())
            && ask.price.saturating_sub(bid.price) <= 4
        {
            let order = Order {
                id: seq,
                price: bid.price + 1,
                quantity: bid.quantity.min(100),
                buy: true,
                sent_at_ns,
            };
            let order = ABox::new_in(order, self.alloc);
            if self.orders.len() < ORDERS_KEPT {
                self.orders.push(order);
            } else {
                self.orders[self.next_order] = order; // frees the oldest
                self.next_order = (self.next_order + 1) % ORDERS_KEPT;
            }
            self.sent += 1;
        }
        (sent_at_ns, seq)
    }
}

// ---------------------------------------------------------------- one run

/// An empty histogram of nanoseconds, 1 ns to 60 s, three significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

struct Report {
    histogram: Histogram<u64>,
    messages: u64,
    elapsed: Duration,
    orders: u64,
}

fn pin(role: &str, core: Option<usize>, say: bool) {
    match core.map(pinalloc::pin_current_thread) {
        Some(Ok(at)) if say => println!("  {role:<10} pinned to core {} (NUMA node {})", at.cpu, at.node),
        Some(Err(error)) if say => {
            println!("  {role:<10} runs unpinned (pinning not permitted here: {error})")
        }
        None if say => println!("  {role:<10} runs unpinned (no core to pin to)"),
        _ => {}
    }
}

/// One round of one run: `seconds` of messages through every pipeline.
fn run<B: Buffers, A: Allocator + Copy + Send>(
    buffers: &B,
    alloc: A,
    cores: &[usize],
    seconds: f64,
    rate: u64,
    say: bool,
) -> Report {
    if say {
        println!("{} run:", B::NAME);
    }
    let pipelines = (cores.len() / 2).max(1);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let per_pipeline = (seconds * rate as f64) as u64 / pipelines as u64;
    let epoch = Instant::now();
    let queues: Vec<ArrayQueue<B::Packet<'_>>> = (0..pipelines).map(|_| ArrayQueue::new(QUEUE)).collect();
    let start = Instant::now();
    let results: Vec<(Histogram<u64>, u64)> = std::thread::scope(|s| {
        let mut strategies = Vec::new();
        for (p, queue) in queues.iter().enumerate() {
            let (feed_core, strategy_core) =
                (cores.get(2 * p).copied(), cores.get(2 * p + 1).or(cores.first()).copied());
            s.spawn(move || {
                pin(&format!("feed {p}"), feed_core, say);
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ p as u64);
                let mut next = Instant::now();
                for seq in 0..per_pipeline {
                    while Instant::now() < next {
                        std::hint::spin_loop();
                    }
                    next += interval;
                    let len =
                        HEADER + LEVEL * (1 + (rng.next() % ((MAX_PACKET - HEADER) / LEVEL) as u64) as usize);
                    let sent_at = epoch.elapsed().as_nanos() as u64;
                    let mut packet = buffers.packet(len);
                    build(&mut packet, seq, len, sent_at, &mut rng);
                    while let Err(back) = queue.push(packet) {
                        packet = back;
                        std::hint::spin_loop();
                    }
                }
            });
            strategies.push(s.spawn(move || {
                pin(&format!("strategy {p}"), strategy_core, say);
                let mut strategy = Strategy::new(alloc);
                let mut histogram = latency_histogram();
                let mut expected = 0;
                while expected < per_pipeline {
                    let Some(packet) = queue.pop() else {
                        std::hint::spin_loop();
                        continue;
                    };
                    let (sent_at, seq) = strategy.on_packet(&packet);
                    drop(packet);
                    assert_eq!(seq, expected, "messages arrive in order, none lost");
                    let latency = (epoch.elapsed().as_nanos() as u64).saturating_sub(sent_at).max(1);
                    histogram.record(latency).expect("latency within the histogram's bounds");
                    expected += 1;
                }
                (histogram, strategy.sent)
            }));
        }
        strategies.into_iter().map(|s| s.join().expect("strategy thread")).collect()
    });
    let elapsed = start.elapsed();
    let mut histogram = latency_histogram();
    let mut orders = 0;
    for (h, sent) in results {
        histogram.add(&h).expect("same bounds");
        orders += sent;
    }
    Report { messages: histogram.len(), histogram, elapsed, orders }
}

/// One round of the machine alone: on each pipeline core, a thread that keeps the feed's
/// schedule and does nothing else records how late each tick came (see the module docs).
fn machine_alone(cores: &[usize], seconds: f64, rate: u64) -> Report {
    let threads = (cores.len() / 2).max(1) * 2;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let ticks = (seconds * rate as f64) as u64 / (threads as u64 / 2);
    let start = Instant::now();
    let histograms: Vec<Histogram<u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let core = cores.get(t).or(cores.first()).copied();
                s.spawn(move || {
                    pin("", core, false);
                    let mut histogram = latency_histogram();
                    let mut next = Instant::now();
                    for _ in 0..ticks {
                        let mut now = Instant::now();
                        while now < next {
                            std::hint::spin_loop();
                            now = Instant::now();
                        }
                        let late = now.duration_since(next).as_nanos() as u64;
                        histogram.record(late.max(1)).expect("lateness within the histogram's bounds");
                        next += interval;
                    }
                    histogram
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("machine thread")).collect()
    });
    let elapsed = start.elapsed();
    let mut histogram = latency_histogram();
    for h in histograms {
        histogram.add(&h).expect("same bounds");
    }
    Report { messages: histogram.len(), histogram, elapsed, orders: 0 }
}

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number, got {v}")))
        .unwrap_or(default)
}

impl Report {
    fn add(&mut self, other: Report) {
        self.histogram.add(&other.histogram).expect("same bounds");
        self.messages += other.messages;
        self.elapsed += other.elapsed;
        self.orders += other.orders;
    }

    /// Messages that waited more than 100 µs: a thread of the pipeline was descheduled (on a
    /// shared VM the host takes the core for milliseconds), and the queue backed up behind it.
    fn stalled(&self) -> u64 {
        self.histogram.count_between(100_000, self.histogram.max())
    }
}

fn main() {
    let seconds = arg("--seconds", 4.0);
    let rate = arg("--rate", 200_000.0) as u64;
    let rounds = arg("--rounds", 8.0).max(1.0) as usize;
    // Read before any thread is pinned: threads inherit their creator's affinity mask.
    let cores = pinalloc::os::available_cores();
    println!(
        "order-book updates of 64-512 B at {rate} msg/s, {seconds} s per run in {rounds} alternating rounds; \
         {} core(s) available, {} pipeline(s)",
        cores.len(),
        (cores.len() / 2).max(1)
    );
    let pooled = Pooled::new();
    let slice = seconds / rounds as f64;
    // The runs alternate in short rounds, so a stall of the machine hits both alike.
    let mut ours = run(&pooled, &PINALLOC, &cores, slice, rate, true);
    let mut theirs = run(&Fresh, Global, &cores, slice, rate, true);
    let mut machine = machine_alone(&cores, slice, rate);
    for _ in 1..rounds {
        ours.add(run(&pooled, &PINALLOC, &cores, slice, rate, false));
        theirs.add(run(&Fresh, Global, &cores, slice, rate, false));
        machine.add(machine_alone(&cores, slice, rate));
    }

    println!();
    println!(
        "| latency (ns)      |      p50 |      p99 |    p99.9 |      max |   msg/s | orders | > 100 µs |"
    );
    println!(
        "|-------------------|---------:|---------:|---------:|---------:|--------:|-------:|---------:|"
    );
    let rows =
        [("pinalloc", &ours, true), ("system malloc", &theirs, true), ("machine alone", &machine, false)];
    for (name, report, pipeline) in rows {
        let h = &report.histogram;
        // The machine row has ticks, not messages: no throughput, no orders.
        let (rate, orders) = if pipeline {
            (
                format!("{:.0}", report.messages as f64 / report.elapsed.as_secs_f64()),
                report.orders.to_string(),
            )
        } else {
            ("-".to_string(), "-".to_string())
        };
        println!(
            "| {name:<17} | {:>8} | {:>8} | {:>8} | {:>8} | {rate:>7} | {orders:>6} | {:>8} |",
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            report.stalled()
        );
    }
    let ratio = |q: f64| {
        ours.histogram.value_at_quantile(q) as f64 / theirs.histogram.value_at_quantile(q).max(1) as f64
    };
    println!(
        "| pinalloc / malloc | {:>8.2} | {:>8.2} | {:>8.2} | {:>8.2} |         |        |          |",
        ratio(0.50),
        ratio(0.99),
        ratio(0.999),
        ours.histogram.max() as f64 / theirs.histogram.max().max(1) as f64
    );
    let stats = pooled.0.stats().compression;
    println!(
        "\npool: {} gets ({} from the thread cache), {} misses, {} buffers in use at the end",
        stats.hits + stats.misses,
        stats.thread_cache_hits,
        stats.misses,
        stats.buffers_in_use
    );
}

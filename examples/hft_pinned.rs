//! The showcase: a feed thread and a strategy thread, each pinned to its own core, pass
//! market-data packets (64–512 B) at a steady rate, and every packet's latency from "feed
//! starts building it" to "strategy has decoded it and let go of its memory" is recorded.
//!
//! Two runs, side by side, over the same hand-off queue (`crossbeam_queue::ArrayQueue`):
//! * **pinalloc**: packet buffers come from a lock-free free list (`stack::TreiberStack` over
//!   a preallocated `stack::NodePool`); the strategy thread pushes each buffer back;
//! * **system malloc**: each packet is a fresh `Vec<u8>` from the system allocator, freed by
//!   the strategy thread (a cross-thread free).
//!
//! `cargo run --release --example hft_pinned [-- --packets N --interval-ns NS]`
//!
//! The crate's allocator, buffer pools and shared-memory ring will take over the remaining
//! parts of this pipeline as they land.

use crossbeam_queue::ArrayQueue;
use pinalloc::os;
use pinalloc::stack::{NodePool, Owned, RawNode, TreiberStack};
use std::hint::black_box;
use std::time::{Duration, Instant};

const MAX_PACKET: usize = 512;
const QUEUE: usize = 4096;

/// A packet as the feed builds it: a sequence number, then `len - 8` payload bytes.
struct Packet {
    sent_at_ns: u64,
    len: usize,
    bytes: [u8; MAX_PACKET],
}

/// How packets get their memory and travel from the feed to the strategy.
trait PacketPath: Sync {
    const NAME: &'static str;
    /// Builds packet `seq` of `len` bytes stamped `sent_at_ns` and hands it over; `false`
    /// if the queue is full (the feed retries).
    fn send(&self, seq: u64, len: usize, sent_at_ns: u64) -> bool;
    /// Takes the next packet, decodes it, releases its memory; returns (sent_at, seq).
    fn receive(&self) -> Option<(u64, u64)>;
}

fn fill(bytes: &mut [u8], seq: u64) {
    bytes[..8].copy_from_slice(&seq.to_le_bytes());
    bytes[8..].fill(seq as u8);
}

/// What the strategy does with a packet: read its sequence number and checksum the payload.
fn decode(bytes: &[u8]) -> u64 {
    let seq = u64::from_le_bytes(bytes[..8].try_into().expect("packets are at least 64 bytes"));
    let checksum = bytes[8..].iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
    assert_eq!(checksum, (seq as u8).wrapping_mul((bytes.len() - 8) as u8), "packet {seq} corrupted");
    seq
}

struct PinallocPath<'p> {
    free: TreiberStack<Packet, &'p NodePool<Packet>>,
    queue: ArrayQueue<RawNode>,
}

impl<'p> PinallocPath<'p> {
    fn new(pool: &'p NodePool<Packet>) -> Self {
        let free = TreiberStack::new(pool);
        // More buffers than the queue holds, so the feed never finds the free list empty.
        for _ in 0..QUEUE + 64 {
            let packet = Packet { sent_at_ns: 0, len: 0, bytes: [0; MAX_PACKET] };
            free.push(pool.insert(packet).expect("the pool can hold the working set"));
        }
        PinallocPath { free, queue: ArrayQueue::new(QUEUE) }
    }
}

impl PacketPath for PinallocPath<'_> {
    const NAME: &'static str = "pinalloc free list";
    fn send(&self, seq: u64, len: usize, sent_at_ns: u64) -> bool {
        let Some(mut packet) = self.free.pop() else {
            return false;
        };
        packet.sent_at_ns = sent_at_ns;
        packet.len = len;
        fill(&mut packet.bytes[..len], seq);
        match self.queue.push(packet.into_raw()) {
            Ok(()) => true,
            Err(raw) => {
                // SAFETY: `raw` is the token we gave up just above; rebuilt once.
                self.free.push(unsafe { Owned::from_raw(self.free.pool(), raw) });
                false
            }
        }
    }
    fn receive(&self) -> Option<(u64, u64)> {
        let raw = self.queue.pop()?;
        // SAFETY: the feed gave this token up with into_raw; only we rebuild it, once.
        let packet = unsafe { Owned::from_raw(self.free.pool(), raw) };
        let seq = decode(&packet.bytes[..packet.len]);
        let sent = packet.sent_at_ns;
        self.free.push(packet);
        Some((sent, seq))
    }
}

struct MallocPath {
    queue: ArrayQueue<(u64, Vec<u8>)>,
}

impl PacketPath for MallocPath {
    const NAME: &'static str = "system malloc (Vec)";
    fn send(&self, seq: u64, len: usize, sent_at_ns: u64) -> bool {
        let mut bytes = vec![0u8; len];
        fill(&mut bytes, seq);
        self.queue.push((sent_at_ns, bytes)).is_ok()
    }
    fn receive(&self) -> Option<(u64, u64)> {
        let (sent, bytes) = self.queue.pop()?;
        let seq = decode(&bytes);
        drop(bytes);
        Some((sent, seq))
    }
}

struct Report {
    latencies_ns: Vec<u64>,
    elapsed: Duration,
}

impl Report {
    /// Packets that waited more than 100 µs: on a shared VM these are scheduling stalls of a
    /// whole thread (both runs see them), which dominate p99.9 and max.
    fn stalled(&self) -> usize {
        self.latencies_ns.len() - self.latencies_ns.partition_point(|&l| l <= 100_000)
    }

    fn percentile(&self, p: f64) -> u64 {
        let index = ((self.latencies_ns.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_ns[index]
    }
}

fn pin(role: &str, core: Option<usize>) {
    match core.map(os::pin_current_thread_to_core) {
        Some(Ok(at)) => println!("  {role:<8} pinned to core {} (NUMA node {})", at.cpu, at.node),
        Some(Err(error)) => println!("  {role:<8} runs unpinned: {error}"),
        None => println!("  {role:<8} runs unpinned: no core available to pin to"),
    }
}

fn run<P: PacketPath>(path: &P, packets: u64, interval: Duration, cores: &[usize]) -> Report {
    println!("{}:", P::NAME);
    let epoch = Instant::now();
    // Faulted in before the clock starts, so recording never page-faults.
    let mut latencies_ns = vec![0u64; packets as usize];
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            pin("feed", cores.first().copied());
            let mut next = Instant::now();
            for seq in 0..packets {
                while Instant::now() < next {
                    std::hint::spin_loop();
                }
                next += interval;
                let len = 64 + (seq.wrapping_mul(0x9E37_79B9) % (MAX_PACKET as u64 - 63)) as usize;
                let sent_at = epoch.elapsed().as_nanos() as u64;
                while !path.send(seq, len, sent_at) {
                    std::hint::spin_loop();
                }
            }
        });
        let latencies = &mut latencies_ns;
        s.spawn(move || {
            pin("strategy", cores.get(1).or(cores.first()).copied());
            let mut expected = 0;
            while expected < packets {
                match path.receive() {
                    Some((sent_at, seq)) => {
                        assert_eq!(seq, expected, "packets arrive in order, none lost");
                        latencies[seq as usize] = (epoch.elapsed().as_nanos() as u64).saturating_sub(sent_at);
                        expected += 1;
                    }
                    None => std::hint::spin_loop(),
                }
            }
        });
    });
    let elapsed = start.elapsed();
    latencies_ns.sort_unstable();
    black_box(&latencies_ns);
    Report { latencies_ns, elapsed }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a whole number, got {v}")))
        .unwrap_or(default)
}

fn main() {
    let packets = arg("--packets", 1_000_000);
    let interval = Duration::from_nanos(arg("--interval-ns", 2_000));
    let cores = os::available_cores();
    println!(
        "{packets} packets of 64-512 B, one every {interval:?}, feed -> strategy over a {QUEUE}-slot queue; {} core(s) available",
        cores.len()
    );
    let pool = NodePool::new();
    let ours = run(&PinallocPath::new(&pool), packets, interval, &cores);
    let theirs = run(&MallocPath { queue: ArrayQueue::new(QUEUE) }, packets, interval, &cores);

    println!();
    println!("| latency (ns)           |      p50 |      p99 |    p99.9 |      max | packets/s | > 100 µs |");
    println!("|------------------------|---------:|---------:|---------:|---------:|----------:|---------:|");
    for (name, report) in [(PinallocPath::NAME, &ours), (MallocPath::NAME, &theirs)] {
        println!(
            "| {name:<22} | {:>8} | {:>8} | {:>8} | {:>8} | {:>9.0} | {:>8} |",
            report.percentile(0.50),
            report.percentile(0.99),
            report.percentile(0.999),
            report.percentile(1.0),
            packets as f64 / report.elapsed.as_secs_f64(),
            report.stalled()
        );
    }
    let ratio = |p: f64| ours.percentile(p) as f64 / theirs.percentile(p).max(1) as f64;
    println!(
        "| pinalloc / malloc      | {:>8.2} | {:>8.2} | {:>8.2} | {:>8.2} |           |          |",
        ratio(0.50),
        ratio(0.99),
        ratio(0.999),
        ratio(1.0)
    );
    println!(
        "\nPackets over 100 µs waited out a stall of a whole thread (the machine descheduling it);\n\
         on a shared VM these set p99.9 and max in both runs alike."
    );
}

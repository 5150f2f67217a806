//! Cross-process messaging with `pinalloc::shm::CircularBuffer`, client side: opens the ring
//! `shm_server` created (by name alone: the geometry is in the segment's header), reads until
//! "bye" or shutdown, checks that sequence numbers are consecutive, and prints p50/p99/max
//! one-way latency (from the send time in each message) and the throughput:
//!
//! ```text
//! cargo run --release --example shm_server [NAME [COUNT]] &
//! cargo run --release --example shm_client [NAME]
//! ```

use pinalloc::shm::{CircularBuffer, ShmError};
use std::time::{Duration, Instant};

/// CLOCK_MONOTONIC in ns, the clock the server stamps messages with.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Opens the ring, waiting up to 5 s for the server to create it.
fn open(name: &str) -> Result<CircularBuffer, ShmError> {
    let start = Instant::now();
    let mut announced = false;
    loop {
        match CircularBuffer::open(name) {
            Err(ShmError::NotFound | ShmError::NotInitialised)
                if start.elapsed() < Duration::from_secs(5) =>
            {
                if !std::mem::replace(&mut announced, true) {
                    println!("client: waiting for the server to create {name:?}...");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "pinalloc-demo".to_owned());
    let mut ring = open(&name).map_err(|e| format!("cannot open the ring '{name}': {e}"))?;
    // Spin up to 1 ms for the next message before sleeping on the futex: less wake-up latency.
    ring.set_spin(Duration::from_millis(1));
    println!("client: opened {name:?}: {} nodes of {} bytes", ring.nodes(), ring.node_size());

    let mut latencies: Vec<u64> = Vec::with_capacity(1 << 17);
    let (mut expected, mut gaps, mut start) = (0u64, 0u64, None);
    loop {
        // Decode in place: (sequence number, one-way latency in ns, is it the last message?).
        let message = ring.read_with(Duration::from_secs(10), |msg| {
            let now = monotonic_ns();
            let field = |i: usize| u64::from_le_bytes(msg[i..i + 8].try_into().unwrap());
            (msg.len() >= 16).then(|| (field(0), now.saturating_sub(field(8)), &msg[16..] == b"bye"))
        });
        let (seq, latency, bye) = match message {
            Ok(Some(message)) => message,
            Ok(None) => return Err("a message shorter than its 16-byte header".into()),
            Err(ShmError::Shutdown) => break,
            Err(ShmError::MessageLost { position }) => {
                println!("client: message at ring position {position} was LOST (its writer died)");
                gaps += 1;
                expected += 1;
                continue;
            }
            Err(ShmError::Timeout) => return Err("no message for 10 s: has the server stopped?".into()),
            Err(e) => return Err(format!("read failed: {e}").into()),
        };
        if seq != expected {
            println!("client: GAP: expected message {expected}, got {seq}");
            gaps += 1;
        }
        expected = seq + 1;
        if bye {
            break;
        }
        // Message 0 is the server's hello, sent before we existed: its latency means nothing.
        if seq > 0 {
            start.get_or_insert_with(Instant::now);
            latencies.push(latency);
        }
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());

    let n = latencies.len();
    if n == 0 {
        return Err("no data messages received".into());
    }
    latencies.sort_unstable();
    let pct = |p: usize| latencies[(n * p / 100).min(n - 1)];
    println!("client: received {n} messages, {gaps} gaps/losses");
    println!("client: one-way latency p50 {} ns, p99 {} ns, max {} ns", pct(50), pct(99), latencies[n - 1]);
    println!(
        "client: {:.2} M msg/s ({n} in {:.1} ms)",
        n as f64 / elapsed.as_secs_f64() / 1e6,
        elapsed.as_secs_f64() * 1e3
    );
    if gaps > 0 {
        return Err(format!("{gaps} gaps or lost messages").into());
    }
    Ok(())
}

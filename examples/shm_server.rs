//! Cross-process messaging with `pinalloc::shm::CircularBuffer`, server side: creates a named
//! ring, waits for a client, sends N timestamped, numbered messages and a final "bye", waits
//! until the client has read them all, shuts the ring down and prints the throughput.
//! Run it with `shm_client` (the client reports the one-way latency):
//!
//! ```text
//! cargo run --release --example shm_server [NAME [COUNT]] &
//! cargo run --release --example shm_client [NAME]
//! ```
//!
//! NAME defaults to "pinalloc-demo", COUNT to 100000. Wire format of a message (little endian):
//! sequence number (u64) | send time, CLOCK_MONOTONIC ns (u64) | text. Message 0 is "hello"
//! (the data starts once a client has taken it), 1..=COUNT are data, COUNT + 1 is "bye".

use pinalloc::shm::{CircularBuffer, ShmError};
use std::time::{Duration, Instant};

const NODES: usize = 16;
const NODE_SIZE: usize = 256;
/// How long a client has to show up, and how long a full ring may stay full.
const PATIENCE: Duration = Duration::from_secs(60);

/// CLOCK_MONOTONIC in ns: unlike `Instant`, comparable between processes on one machine.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writes message `seq` straight into a ring node (zero-copy), stamping it last.
fn send(ring: &CircularBuffer, seq: u64, text: &[u8], timeout: Duration) -> Result<(), ShmError> {
    ring.write_with(timeout, |node| {
        node[..8].copy_from_slice(&seq.to_le_bytes());
        node[16..16 + text.len()].copy_from_slice(text);
        node[8..16].copy_from_slice(&monotonic_ns().to_le_bytes());
        16 + text.len()
    })?;
    Ok(())
}

/// Polls `done` every millisecond for at most `timeout`.
fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "pinalloc-demo".to_owned());
    let count: u64 = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("COUNT must be a number, not '{n}' ({e})"))?,
        None => 100_000,
    };

    let ring = match CircularBuffer::create(&name, NODES, NODE_SIZE) {
        Ok(ring) => ring,
        Err(ShmError::AlreadyExists) => {
            return Err(format!(
                "a shared-memory segment named '{name}' already exists: either another shm_server \
                 is running, or a crashed one left it behind (remove it with \
                 pinalloc::shm::unlink or `rm /dev/shm/{name}`)"
            )
            .into());
        }
        Err(e) => return Err(format!("cannot create the ring '{name}': {e}").into()),
    };
    println!("server: ring {name:?} created: {NODES} nodes of {NODE_SIZE} bytes");
    println!("server: start the client with `cargo run --release --example shm_client {name}`");

    // Message 0 says hello; the data is only sent (and timed) once the client has taken it.
    send(&ring, 0, b"hello", Duration::ZERO)?;
    println!("server: waiting up to {}s for a client...", PATIENCE.as_secs());
    if !wait_for(PATIENCE, || ring.stats().read > 0) {
        return Err(format!("no client opened '{name}' within {}s", PATIENCE.as_secs()).into());
    }
    println!("server: client connected, sending {count} messages");

    let start = Instant::now();
    for seq in 1..=count {
        send(&ring, seq, b"tick from shm_server", PATIENCE)
            .map_err(|e| format!("sending message {seq} failed: {e} (has the client stopped?)"))?;
    }
    let elapsed = start.elapsed();
    send(&ring, count + 1, b"bye", PATIENCE)?;

    // Positions claimed by readers catch up with those written: the client has everything.
    let drained = wait_for(Duration::from_secs(10), || {
        let stats = ring.stats();
        stats.read >= stats.written
    });
    ring.shutdown();
    let stats = ring.stats();
    if !drained {
        return Err(format!("the client stopped reading: {} of {} read", stats.read, stats.written).into());
    }
    let rate = count as f64 / elapsed.as_secs_f64();
    println!(
        "server: sent {count} messages in {:.1} ms: {:.2} M msg/s, {:.0} ns/msg ({stats:?})",
        elapsed.as_secs_f64() * 1e3,
        rate / 1e6,
        1e9 / rate
    );
    Ok(())
}

//! The "slower" shape: pools of any size up to 1 MiB, messages up to 64 KiB written in
//! random chunks, each slice sent to one of two other threads and held there for a random
//! time (up to 200 µs) before its bytes are checked and it is dropped, while the pool keeps
//! serving; the pool itself is dropped before the last slices. Run:
//! `cargo +nightly fuzz run buffer_threads`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinalloc::buffer::{Buffer, BufferPool, MAX_SLOTS, Slice};
use std::sync::mpsc;
use std::time::{Duration, Instant};

type Held = (Slice, Vec<u8>, Instant);

fn holder(rx: mpsc::Receiver<Held>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut held: Vec<Held> = Vec::new();
        let check = |(slice, bytes, _): Held| assert_eq!(&slice[..], &bytes[..], "a held slice changed");
        loop {
            match rx.recv_timeout(Duration::from_micros(20)) {
                Ok(item) => held.push(item),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            while let Some(pos) = held.iter().position(|item| item.2 <= now) {
                check(held.swap_remove(pos));
            }
        }
        held.into_iter().for_each(check);
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let capacity = (usize::from(u16::from_le_bytes([data[0], data[1]])) << 4) % (1 << 20);
    let slots = usize::from(data[2]) % MAX_SLOTS + 1;
    let mut pool = BufferPool::with_slots(capacity, slots).unwrap();
    let (txs, workers): (Vec<_>, Vec<_>) = (0..2)
        .map(|_| {
            let (tx, rx) = mpsc::channel();
            (tx, holder(rx))
        })
        .unzip();
    for (i, m) in data[3..].chunks(4).enumerate() {
        let get = |k: usize| usize::from(m.get(k).copied().unwrap_or(0));
        let len = ((get(0) << 8) | get(1)) % (64 << 10);
        let chunk = get(2) % 64 + 1;
        let hold = Duration::from_micros((get(3) % 200) as u64);
        let bytes: Vec<u8> = (0..len).map(|j| (i * 13 + j) as u8).collect();
        for part in bytes.chunks(chunk) {
            pool.get_writable(part.len()).copy_from_slice(part);
        }
        let slice = pool.get_data_owned();
        assert_eq!(&slice[..], &bytes[..]);
        txs[i % 2].send((slice, bytes, Instant::now() + hold)).unwrap();
    }
    drop(pool);
    drop(txs);
    workers.into_iter().for_each(|w| w.join().unwrap());
});

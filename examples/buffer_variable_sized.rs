//! Variable-sized messages: frames from 10 bytes to 3 KiB through a 8 KiB pool with 16
//! slots, each held for a while by a consumer, showing where each one lands (back, front or
//! heap) and checking every byte when it is consumed.
//!
//! `cargo run --example buffer_variable_sized`

use pinalloc::buffer::{Buffer, BufferPool, PoolMode, Slice};
use std::collections::VecDeque;

fn main() {
    let mut pool = BufferPool::with_slots(8 << 10, 16).expect("16 slots is a valid pool");
    let mut in_flight: VecDeque<(Slice, u8)> = VecDeque::new();
    let mut placed = [0usize; 3];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..40u8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 10 + (seed % 3072) as usize;
        // Written in 100-byte pieces, as a socket delivers them.
        let mut left = len;
        while left > 0 {
            let piece = left.min(100);
            pool.get_writable(piece).fill(i);
            left -= piece;
        }
        let slice = pool.get_data_owned();
        let mode = pool.mode();
        placed[mode as usize] += 1;
        println!("message {i:>2}: {len:>4} bytes -> {:<6} {}", format!("{mode:?}"), pool.diagram());
        in_flight.push_back((slice, i));
        // The consumer keeps up to five messages in flight and finishes them oldest first,
        // except every seventh, which it holds longer.
        while in_flight.len() > 5 {
            let at = if i % 7 == 0 { 1 } else { 0 };
            let (done, stamp) = in_flight.remove(at).unwrap();
            assert!(done.iter().all(|&b| b == stamp), "message {stamp} changed");
        }
    }
    println!(
        "\n{} messages in the back zone, {} in the front zone, {} on the heap",
        placed[PoolMode::Back as usize],
        placed[PoolMode::Front as usize],
        placed[PoolMode::Alloc as usize]
    );
}

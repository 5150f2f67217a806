//! Pool exhaustion: hold more frames than the pool has slots and watch it switch to alloc
//! mode (frames on the heap, in spill buffers the pool reuses), then come back to its
//! storage as slices are dropped.
//!
//! `cargo run --example buffer_exhaustion`

use pinalloc::buffer::{Buffer, BufferPool, Slice};

/// Writes and takes a frame; returns whether it went to the heap.
fn take(pool: &mut BufferPool, label: &str, held: &mut Vec<Slice>) -> bool {
    pool.get_writable(label.len()).copy_from_slice(label.as_bytes());
    let slice = pool.get_data_owned();
    let place = match slice.pool_slot() {
        Some(slot) => format!("pool slot {slot}"),
        None if slice.is_spilled() => "spill buffer".to_string(),
        None => "heap".to_string(),
    };
    println!("{label:>9} -> {:<14} {}", place, pool.diagram());
    let on_heap = !slice.is_pooled();
    held.push(slice);
    on_heap
}

fn main() {
    let mut pool = BufferPool::new(4096);
    let mut held = Vec::new();
    let mut heap_frames = 0;
    println!("Holding 12 frames in a pool of 8 slots:");
    for i in 1..=12 {
        heap_frames += usize::from(take(&mut pool, &format!("frame {i:>2}"), &mut held));
    }
    println!("\nDropping the first four frames:");
    held.drain(..4);
    println!("          {:<17} {}", "", pool.diagram());
    println!("\nFour slots are free again: the next frames go back to the pool's storage:");
    for i in 13..=16 {
        heap_frames += usize::from(take(&mut pool, &format!("frame {i:>2}"), &mut held));
    }
    println!("\nDropping everything, then one more frame (the pool starts over at slot 0):");
    held.clear();
    heap_frames += usize::from(take(&mut pool, "frame 17", &mut held));
    println!(
        "\n{heap_frames} of 17 frames were on the heap; the last one reads {:?}",
        std::str::from_utf8(&held[0]).unwrap()
    );
}

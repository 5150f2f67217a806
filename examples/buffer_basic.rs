//! Basic use of the buffer pool: write a frame, take it, read it, and watch its slot come
//! back when the slice is dropped.
//!
//! `cargo run --example buffer_basic`

use pinalloc::buffer::{Buffer, BufferPool};

fn main() {
    // 8 slots (buffer_sv2's count) over 1 KiB of preallocated storage.
    let mut pool = BufferPool::new(1024);
    println!("new pool:           {}", pool.diagram());

    // A frame is written in pieces, as a decoder fills a header and then a payload.
    pool.get_writable(6).copy_from_slice(&[0x00, 0x00, 0x1e, 0x05, 0x00, 0x00]);
    pool.get_writable(5).copy_from_slice(b"hello");
    println!("frame written:      {} ({} bytes in the frame)", pool.diagram(), pool.len());

    // Taking it hands the bytes over as a Slice that points into the pool.
    let frame = pool.get_data_owned();
    println!(
        "frame taken:        {} (slice of {} bytes in slot {:?}, payload {:?})",
        pool.diagram(),
        frame.len(),
        frame.pool_slot(),
        std::str::from_utf8(&frame[6..]).unwrap()
    );

    // Slices can be sent to other threads; dropping one there releases its slot.
    let second = {
        pool.get_writable(5).copy_from_slice(b"world");
        pool.get_data_owned()
    };
    println!("second frame taken: {}", pool.diagram());
    std::thread::spawn(move || drop(second)).join().unwrap();
    println!("second dropped:     {} ('.' released, reused when the pool needs it)", pool.diagram());
    drop(frame);
    println!("first dropped:      {}", pool.diagram());

    // The next frames reuse the pool's memory: no allocation.
    for i in 0..3u8 {
        pool.get_writable(4).copy_from_slice(&[i; 4]);
        let slice = pool.get_data_owned();
        println!("reuse {i}:            {} (slot {:?})", pool.diagram(), slice.pool_slot());
    }
    println!("the pool can be dropped now: {}", pool.is_droppable());
}

//! `SharedArray` and `SharedBuffer` across two processes, in one command:
//!
//! ```text
//! cargo run --release --example shm_array
//! ```
//!
//! The parent creates a price table (`SharedArray<[f64; 2]>`: bid and ask of 8 instruments)
//! and a `SharedBuffer`, then re-executes itself as a child that opens both by name alone (the
//! sizes are in the segments' headers). While the parent holds the table's write lock, the
//! child's 100 ms attempt to take it fails with `ShmError::Timeout`; once the parent lets go,
//! the child moves the prices under the write lock and writes a `Fill` struct into the buffer,
//! which the parent then reads and prints.

use bytemuck::{Pod, Zeroable};
use pinalloc::shm::{SharedArray, SharedBuffer, ShmError};
use std::time::{Duration, Instant};

/// Set (to the parent's pid, which makes the segment names unique) in the child's environment.
const CHILD_ENV: &str = "PINALLOC_SHM_ARRAY_CHILD";
const INSTRUMENTS: usize = 8;
/// The buffer's layout: a u32 flag the child raises after its lock attempt timed out, then a `Fill`.
const FLAG_OFFSET: usize = 0;
const FILL_OFFSET: usize = 8;
const WAIT: Duration = Duration::from_secs(5);

/// A trade report, written into the buffer as plain bytes (no padding: `Pod` needs none).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Fill {
    instrument: u32,
    child_pid: u32,
    quantity: f64,
    price: f64,
}

fn names(tag: &str) -> (String, String) {
    (format!("pinalloc-demo-prices-{tag}"), format!("pinalloc-demo-fills-{tag}"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::var(CHILD_ENV) {
        Ok(tag) => child(&tag),
        Err(_) => parent(),
    }
}

fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let tag = std::process::id().to_string();
    let (prices_name, fills_name) = names(&tag);
    let prices = SharedArray::<[f64; 2]>::create(&prices_name, INSTRUMENTS)?;
    let fills = SharedBuffer::create(&fills_name, 64)?;
    let mut table = prices.write_lock(WAIT)?;
    for (i, quote) in table.iter_mut().enumerate() {
        *quote = [100.0 + i as f64, 100.05 + i as f64];
    }
    println!("parent: created {prices_name:?} ({INSTRUMENTS} quotes) and {fills_name:?} (64 bytes)");
    println!("parent: holding the price table's write lock, starting the child");
    let mut child = std::process::Command::new(std::env::current_exe()?).env(CHILD_ENV, &tag).spawn()?;

    // Keep the lock until the child reports (through the buffer) that its attempt timed out.
    let start = Instant::now();
    while fills.read::<u32>(FLAG_OFFSET, WAIT)? == 0 {
        if child.try_wait()?.is_some() || start.elapsed() > WAIT {
            return Err("the child never tried the lock".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(table);
    println!("parent: released the write lock");

    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the child failed: {status}").into());
    }
    let fill: Fill = fills.read(FILL_OFFSET, WAIT)?;
    println!("parent: fill from the buffer: {fill:?}");
    for (i, [bid, ask]) in prices.read_lock(WAIT)?.iter().enumerate() {
        println!("parent: instrument {i}: bid {bid:7.3}  ask {ask:7.3}");
    }
    Ok(())
}

fn child(tag: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (prices_name, fills_name) = names(tag);
    let prices = SharedArray::<[f64; 2]>::open(&prices_name)?;
    let fills = SharedBuffer::open(&fills_name)?;
    println!(
        "child:  opened {prices_name:?} ({} quotes) and {fills_name:?} ({} bytes)",
        prices.len(),
        fills.len()
    );

    let start = Instant::now();
    match prices.write_lock(Duration::from_millis(100)) {
        Err(ShmError::Timeout) => {
            println!("child:  write lock busy: ShmError::Timeout after {:?}", start.elapsed());
        }
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("the write lock should have been held by the parent".into()),
    }
    fills.write(FLAG_OFFSET, &1u32, WAIT)?;

    let mut table = prices.write_lock(WAIT)?;
    println!("child:  got the write lock after {:?}; moving every price up 0.25", start.elapsed());
    for quote in table.iter_mut() {
        quote[0] += 0.25;
        quote[1] += 0.25;
    }
    let fill = Fill { instrument: 3, child_pid: std::process::id(), quantity: 500.0, price: table[3][1] };
    drop(table);
    fills.write(FILL_OFFSET, &fill, WAIT)?;
    println!("child:  wrote {fill:?}");
    Ok(())
}

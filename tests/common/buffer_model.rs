//! Drives a `BufferPool` through a sequence of operations and checks it against a model:
//! every held slice keeps exactly the bytes written into it, and the pool's bookkeeping holds
//! after every step. Shared by `tests/buffer.rs` (proptest) and `fuzz/` (cargo-fuzz).

use pinalloc::buffer::{Buffer, BufferPool, MAX_SLOTS, Slice};

/// One step.
#[derive(Clone, Debug)]
pub enum Op {
    /// Write a frame of `len` bytes in chunks of `chunk` and take it.
    Frame { len: usize, chunk: usize },
    /// Write `len` bytes into the current frame without taking it.
    Partial { len: usize },
    /// Drop the held slice at this position (modulo the count).
    Release(usize),
    /// Drop every held slice.
    ReleaseAll,
}

/// Reads a pool configuration and operations from fuzzer bytes.
#[allow(dead_code)] // used by the fuzz targets, not the tests
pub fn decode(data: &[u8], max_capacity: usize, max_len: usize) -> (usize, usize, Vec<Op>) {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let capacity = usize::from(u16::from_le_bytes([next().unwrap_or(0), next().unwrap_or(0)]))
        * (max_capacity / usize::from(u16::MAX)).max(1)
        % (max_capacity + 1);
    let slots = usize::from(next().unwrap_or(7)) % MAX_SLOTS + 1;
    let mut ops = Vec::new();
    while let Some(op) = next() {
        let arg = usize::from(u16::from_le_bytes([next().unwrap_or(0), next().unwrap_or(0)]));
        ops.push(match op % 8 {
            0..=3 => Op::Frame { len: arg % (max_len + 1), chunk: usize::from(op >> 3) + 1 },
            4 => Op::Partial { len: arg % 64 },
            5 | 6 => Op::Release(arg),
            _ => Op::ReleaseAll,
        });
    }
    (capacity, slots, ops)
}

/// Runs `ops` on a pool of `capacity` bytes and `slots` slots, checking after every step.
pub fn run(capacity: usize, slots: usize, ops: &[Op]) {
    let mut pool = BufferPool::with_slots(capacity, slots).expect("a valid configuration");
    let mut held: Vec<(Slice, Vec<u8>)> = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut stamp = 0u8;
    let mut fill = |len: usize| -> Vec<u8> {
        stamp = stamp.wrapping_add(1);
        (0..len).map(|i| stamp.wrapping_mul(31).wrapping_add(i as u8)).collect()
    };
    for op in ops {
        match *op {
            Op::Frame { len, chunk } => {
                let bytes = fill(len);
                for part in bytes.chunks(chunk.max(1)) {
                    pool.get_writable(part.len()).copy_from_slice(part);
                }
                partial.extend_from_slice(&bytes);
                assert_eq!(pool.get_data_by_ref_(usize::MAX), &partial[..]);
                let slice = pool.get_data_owned();
                assert_eq!(slice.len(), partial.len());
                assert!(pool.is_empty());
                held.push((slice, std::mem::take(&mut partial)));
            }
            Op::Partial { len } => {
                let bytes = fill(len);
                pool.get_writable(len).copy_from_slice(&bytes);
                partial.extend_from_slice(&bytes);
            }
            Op::Release(at) if !held.is_empty() => drop(held.swap_remove(at % held.len())),
            Op::Release(_) => {}
            Op::ReleaseAll => held.clear(),
        }
        if let Err(broken) = pool.check_invariants() {
            panic!("after {op:?}: {broken}: {pool:?}");
        }
        for (slice, bytes) in &held {
            assert_eq!(&slice[..], &bytes[..], "a held slice changed after {op:?}");
        }
        let pooled = held.iter().filter(|(s, _)| s.is_pooled()).count();
        assert!(pooled <= pool.slot_count());
    }
    assert_eq!(pool.get_data_by_ref_(usize::MAX), &partial[..]);
    // Half the slices outlive the pool.
    let survivors = held.split_off(held.len() / 2);
    drop(held);
    drop(pool);
    for (slice, bytes) in &survivors {
        assert_eq!(&slice[..], &bytes[..]);
    }
}

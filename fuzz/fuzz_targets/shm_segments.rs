//! Segments whose bytes a hostile peer chose. Each run creates a real named segment (a ring,
//! an array or a buffer), overwrites its header, control block (cursors, node states and
//! lengths, lock words) with fuzzer bytes through its file in /dev/shm, then opens it and
//! runs reads and writes with zero timeouts. Any outcome is fine except a crash, a hang or
//! an out-of-bounds access: a bad header must be refused, a bad state an error or a timeout.
//! Run: `cargo +nightly fuzz run shm_segments`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinalloc::shm::{CircularBuffer, SharedArray, SharedBuffer, ShmError};
use std::os::unix::fs::FileExt;
use std::time::Duration;

fn name() -> String {
    format!("pinalloc-fuzz-{}", std::process::id())
}

fuzz_target!(|data: &[u8]| {
    let Some((&[kind, header_len, nodes, size], rest)) = data.split_first_chunk::<4>() else { return };
    // The first `header_len` bytes (up to 64) replace the header's start; the next bytes, up
    // to 1 KiB, the control block (cursors, events, counters, node slots); the rest are ops.
    let header_len = usize::from(header_len % 65).min(rest.len());
    let (header, rest) = rest.split_at(header_len);
    let control_len = rest.len().min(1024) / 2;
    let (control, ops) = rest.split_at(control_len);
    let name = name();
    let _ = pinalloc::shm::unlink(&name);
    let nodes = 2 + usize::from(nodes % 6);
    let size = 1 + usize::from(size);
    let zero = Duration::ZERO;
    let overwrite = || {
        let file = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm/{name}")).unwrap();
        file.write_all_at(control, 64).unwrap();
        file.write_all_at(header, 0).unwrap();
    };
    match kind % 3 {
        0 => {
            let _owner = CircularBuffer::create(&name, nodes, size).unwrap();
            overwrite();
            let Ok(ring) = CircularBuffer::open(&name) else { return };
            let mut dst = vec![0u8; ring.node_size()];
            for &op in ops {
                let result = match op % 4 {
                    0 => ring.write(&vec![op; usize::from(op) % (ring.node_size() + 2)], zero),
                    1 => ring.read(&mut dst, zero).map(|len| assert!(len <= dst.len())),
                    2 => ring.read_with(zero, |m| assert!(m.len() <= ring.node_size())),
                    _ => ring.write_with(zero, |node| usize::from(op) % (node.len() + 2)).map(|_| ()),
                };
                if let Err(e) = result {
                    let _ = e.to_string();
                    assert!(!matches!(e, ShmError::Os(_)), "{e}");
                }
            }
        }
        1 => {
            let _owner = SharedArray::<u32>::create(&name, nodes * size).unwrap();
            overwrite();
            let Ok(mut array) = SharedArray::<u32>::open(&name) else { return };
            array.set_lock_timeout(zero);
            for (i, &op) in ops.iter().enumerate() {
                let index = usize::from(op) * 7 % (array.len() + 3);
                let _ =
                    if i % 2 == 0 { array.set(index, u32::from(op)) } else { array.get(index).map(|_| ()) };
            }
        }
        _ => {
            let _owner = SharedBuffer::create(&name, size).unwrap();
            overwrite();
            let Ok(buffer) = SharedBuffer::open(&name) else { return };
            for &op in ops {
                let offset = usize::from(op) % (buffer.len() + 9);
                let _ = if op % 2 == 0 {
                    buffer.write(offset, &u64::from(op), zero)
                } else {
                    buffer.read::<u64>(offset, zero).map(|_| ())
                };
            }
        }
    }
});

#![cfg(not(loom))]
//! The shared-memory types within one process: segments, validation, locks and the ring
//! under threads. Named segments need the kernel (not under miri); the anonymous forms and
//! the ring run under miri too. Cross-process behaviour is in `tests/shm_processes.rs`.

use pinalloc::shm::{
    CircularBuffer, Kind, SharedArray, SharedBuffer, SharedRegion, ShmError, ShmOptions, unlink,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

/// A name no other test (or test run) uses.
#[allow(dead_code)] // not under miri
fn unique(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("pinalloc-test-{}-{tag}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

const SHORT: Duration = Duration::from_millis(20);
/// Miri runs about a thousand times slower: fewer messages.
const MESSAGES: u64 = if cfg!(miri) { 60 } else { 20_000 };

#[test]
fn names_are_validated() {
    for bad in ["", "a/b", "/x", ".", "..", "sp ace", "ü", &"x".repeat(201)] {
        assert!(
            matches!(SharedRegion::create(bad, 64), Err(ShmError::InvalidName { .. })),
            "{bad:?} should be rejected"
        );
    }
    let message = SharedRegion::open("a/b").unwrap_err().to_string();
    assert!(message.contains("'/'"), "{message}");
}

#[test]
fn parameters_are_validated() {
    assert!(matches!(SharedRegion::anonymous(0), Err(ShmError::InvalidParameter { .. })));
    assert!(matches!(CircularBuffer::anonymous(1, 64), Err(ShmError::InvalidParameter { .. })));
    assert!(matches!(CircularBuffer::anonymous(4, 0), Err(ShmError::InvalidParameter { .. })));
    assert!(matches!(SharedArray::<u64>::anonymous(0), Err(ShmError::InvalidParameter { .. })));
    assert!(matches!(SharedArray::<u64>::anonymous(usize::MAX / 4), Err(ShmError::InvalidParameter { .. })));
}

#[cfg(not(miri))]
#[test]
fn region_opens_by_name_alone_and_the_creator_unlinks() {
    let name = unique("region");
    let created = SharedRegion::create(&name, 10_000).unwrap();
    assert!(matches!(SharedRegion::create(&name, 10), Err(ShmError::AlreadyExists)));
    created.write(9_990, b"0123456789").unwrap();
    let opened = SharedRegion::open(&name).unwrap();
    assert_eq!(opened.len(), 10_000, "the size comes from the header");
    let mut back = [0u8; 10];
    opened.read(9_990, &mut back).unwrap();
    assert_eq!(&back, b"0123456789");
    assert!(matches!(
        opened.read(9_991, &mut back),
        Err(ShmError::OutOfBounds { offset: 9_991, len: 10, size: 10_000 })
    ));
    assert!(matches!(opened.write(usize::MAX, b"x"), Err(ShmError::OutOfBounds { .. })));
    assert_eq!(opened.name(), Some(name.as_str()));
    drop(opened);
    drop(created);
    assert!(matches!(SharedRegion::open(&name), Err(ShmError::NotFound)));
}

#[cfg(not(miri))]
#[test]
fn persisted_names_stay_until_unlinked() {
    let name = unique("persist");
    drop(SharedRegion::create_with(&name, 100, ShmOptions::new().persist(true)).unwrap());
    assert_eq!(SharedRegion::open(&name).unwrap().len(), 100);
    unlink(&name).unwrap();
    assert!(matches!(SharedRegion::open(&name), Err(ShmError::NotFound)));
    assert!(matches!(unlink(&name), Err(ShmError::NotFound)));
}

/// Resident pages of the pages holding `len` bytes at `ptr`, and how many pages those are.
#[cfg(not(miri))]
fn resident_pages(ptr: *mut u8, len: usize) -> (usize, usize) {
    let start = ptr.map_addr(|addr| addr & !4095);
    let len = len + (ptr.addr() - start.addr());
    let mut residency = vec![0u8; len.div_ceil(4096)];
    // SAFETY: the pages lie in one live mapping; mincore writes one byte per page.
    let rc = unsafe { libc::mincore(start.cast(), len, residency.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore");
    (residency.iter().filter(|&&r| r & 1 != 0).count(), residency.len())
}

#[cfg(not(miri))]
#[test]
fn populated_segments_are_resident_from_the_start() {
    let size = 1 << 20;
    let lazy = SharedRegion::create(&unique("lazy"), size).unwrap();
    let eager = SharedRegion::create_with(&unique("eager"), size, ShmOptions::new().populate(true)).unwrap();
    // Only the lazy region's header page was touched; all of the eager one is in.
    let (resident, pages) = resident_pages(lazy.as_ptr(), size);
    assert!(resident <= 1, "{resident} of {pages} pages resident");
    let (resident, pages) = resident_pages(eager.as_ptr(), size);
    assert_eq!(resident, pages);
    let mut bytes = [1u8; 16];
    eager.read(size - 16, &mut bytes).unwrap();
    assert_eq!(bytes, [0; 16], "populating changes no byte");
}

#[cfg(not(miri))]
#[test]
fn huge_page_request_rounds_to_2_mib() {
    let name = unique("huge");
    let ring = CircularBuffer::create_with(&name, 2, 1 << 20, ShmOptions::new().huge_pages(true)).unwrap();
    let opened = CircularBuffer::open(&name).unwrap();
    assert_eq!((opened.nodes(), opened.node_size()), (2, 1 << 20));
    ring.write(&[7; 1000], SHORT).unwrap();
    let mut back = vec![0; 1 << 20];
    assert_eq!(opened.read(&mut back, SHORT).unwrap(), 1000);
}

#[cfg(not(miri))]
#[test]
fn open_of_the_wrong_kind_or_element_fails_clearly() {
    let name = unique("kinds");
    let _array = SharedArray::<u32>::create(&name, 10).unwrap();
    let err = CircularBuffer::open(&name).unwrap_err();
    assert_eq!(err, ShmError::WrongKind { expected: Kind::Ring, found: Kind::Array as u32 });
    assert!(err.to_string().contains("Array"), "{err}");
    assert!(matches!(SharedBuffer::open(&name), Err(ShmError::WrongKind { .. })));
    let err = SharedArray::<u64>::open(&name).unwrap_err();
    assert_eq!(err, ShmError::ElementMismatch { expected_size: 8, found_size: 4 });
    assert_eq!(SharedArray::<u32>::open(&name).unwrap().len(), 10);
    assert_eq!(
        SharedArray::<[u8; 4]>::open(&name).unwrap_err(),
        ShmError::ElementMismatch { expected_size: 4, found_size: 4 }
    );
}

#[test]
fn array_get_set_and_slices() {
    let array = SharedArray::<[u32; 3]>::anonymous(17).unwrap();
    assert_eq!(array.len(), 17);
    array.set(16, [1, 2, 3]).unwrap();
    assert_eq!(array.get(16).unwrap(), [1, 2, 3]);
    assert!(matches!(array.get(17), Err(ShmError::OutOfBounds { offset: 17, len: 1, size: 17 })));
    assert!(matches!(array.set(usize::MAX, [0; 3]), Err(ShmError::OutOfBounds { .. })));
    {
        let mut all = array.write_lock(SHORT).unwrap();
        for (i, element) in all.iter_mut().enumerate() {
            *element = [i as u32; 3];
        }
        assert!(matches!(array.read_lock(Duration::ZERO), Err(ShmError::Timeout)));
    }
    let all = array.read_lock(SHORT).unwrap();
    let again = array.read_lock(SHORT).unwrap();
    assert_eq!(all[5], [5; 3]);
    assert_eq!(again.len(), 17);
    assert!(matches!(array.write_lock(SHORT), Err(ShmError::Timeout)), "readers exclude a writer");
}

#[test]
fn buffer_reads_and_writes_structures_and_bytes_under_the_lock() {
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Quote {
        bid: f64,
        ask: f64,
        size: u32,
        venue: u32,
    }
    let buffer = SharedBuffer::anonymous(100).unwrap();
    let quote = Quote { bid: 99.5, ask: 100.25, size: 300, venue: 7 };
    buffer.write(3, &quote, SHORT).unwrap();
    assert_eq!(buffer.read::<Quote>(3, SHORT).unwrap(), quote);
    assert!(matches!(
        buffer.write(80, &quote, SHORT),
        Err(ShmError::OutOfBounds { offset: 80, len: 24, size: 100 })
    ));
    buffer.write_bytes(90, b"0123456789", SHORT).unwrap();
    let mut back = [0; 10];
    buffer.read_bytes(90, &mut back, SHORT).unwrap();
    assert_eq!(&back, b"0123456789");
    let mut writer = buffer.acquire_write_lock(SHORT).unwrap();
    assert!(matches!(buffer.acquire_read_lock(Duration::ZERO), Err(ShmError::Timeout)));
    assert!(matches!(buffer.acquire_write_lock(SHORT), Err(ShmError::Timeout)));
    writer.bytes_mut()[0] = 42;
    drop(writer);
    assert_eq!(buffer.acquire_read_lock(SHORT).unwrap().bytes()[0], 42);
}

/// A writer waiting for the lock holds new readers back (writer preference), and gets in
/// once the readers leave.
#[test]
fn a_waiting_writer_is_not_starved() {
    let buffer = SharedBuffer::anonymous(8).unwrap();
    let reader = buffer.acquire_read_lock(SHORT).unwrap();
    thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut guard = buffer.acquire_write_lock(Duration::from_secs(60)).unwrap();
            guard.write(0, &1u64).unwrap();
        });
        // Wait until the writer is queued: new readers are then refused.
        while buffer.acquire_read_lock(Duration::ZERO).is_ok() {
            thread::yield_now();
        }
        drop(reader);
        writer.join().unwrap();
    });
    assert_eq!(buffer.read::<u64>(0, SHORT).unwrap(), 1);
}

#[test]
fn ring_copies_in_order_and_reports_errors() {
    let ring = CircularBuffer::anonymous(3, 16).unwrap();
    assert!(matches!(ring.read(&mut [0; 16], Duration::ZERO), Err(ShmError::Timeout)));
    for i in 0..3u8 {
        ring.write(&[i; 5], SHORT).unwrap();
    }
    assert!(matches!(ring.write(b"x", Duration::ZERO), Err(ShmError::Timeout)), "full");
    assert!(matches!(ring.write(&[0; 17], SHORT), Err(ShmError::MessageTooLarge { len: 17, capacity: 16 })));
    let mut dst = [0u8; 16];
    assert_eq!(ring.read(&mut dst, SHORT).unwrap(), 5);
    assert_eq!(&dst[..5], &[0; 5]);
    assert_eq!(ring.read_with(SHORT, |m| m.to_vec()).unwrap(), vec![1; 5]);
    assert!(matches!(ring.read(&mut [0; 4], SHORT), Err(ShmError::BufferTooSmall { len: 5, capacity: 4 })));
    // An empty message is a message.
    ring.write(b"", SHORT).unwrap();
    assert_eq!(ring.read(&mut dst, SHORT).unwrap(), 0);
    // A filler that claims too much loses its position, and the reader is told.
    assert!(matches!(ring.write_with(SHORT, |_| 17), Err(ShmError::MessageTooLarge { .. })));
    assert!(matches!(ring.read(&mut dst, SHORT), Err(ShmError::MessageLost { position: 4 })));
    let stats = ring.stats();
    assert_eq!((stats.written, stats.read, stats.lost_writes, stats.lost_reads), (5, 5, 1, 0));
}

#[test]
fn a_panicking_filler_or_consumer_loses_nothing_else() {
    let ring = CircularBuffer::anonymous(2, 8).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ring.write_with(SHORT, |_| panic!("filler fails")).unwrap();
    }));
    assert!(panicked.is_err());
    ring.write(b"after", SHORT).unwrap();
    assert!(matches!(ring.read(&mut [0; 8], SHORT), Err(ShmError::MessageLost { position: 0 })));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ring.read_with(SHORT, |_| panic!("consumer fails")).unwrap();
    }));
    assert!(panicked.is_err(), "the consumer's panic consumed message 1");
    // Both nodes are free again: two writes fit.
    ring.write(b"a", Duration::ZERO).unwrap();
    ring.write(b"b", Duration::ZERO).unwrap();
    assert_eq!(ring.read_with(SHORT, |m| m.to_vec()).unwrap(), b"a");
}

#[test]
fn shutdown_wakes_everyone_and_readers_drain_first() {
    let ring = CircularBuffer::anonymous(2, 8).unwrap();
    thread::scope(|s| {
        let sleeper = s.spawn(|| ring.read(&mut [0; 8], Duration::MAX));
        thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 50 }));
        ring.shutdown();
        assert!(matches!(sleeper.join().unwrap(), Err(ShmError::Shutdown)));
    });
    let ring = CircularBuffer::anonymous(2, 8).unwrap();
    ring.write(b"last", SHORT).unwrap();
    ring.shutdown();
    assert!(ring.is_shutdown());
    assert!(matches!(ring.write(b"more", SHORT), Err(ShmError::Shutdown)));
    assert_eq!(ring.read_with(SHORT, |m| m.to_vec()).unwrap(), b"last");
    assert!(matches!(ring.read(&mut [0; 8], Duration::MAX), Err(ShmError::Shutdown)));
}

/// Writers and readers on threads: every message arrives exactly once, and each writer's
/// messages arrive in the order it sent them.
fn exchange(writers: u64, readers: usize, nodes: usize) {
    let ring = CircularBuffer::anonymous(nodes, 16).unwrap();
    let per_writer = MESSAGES / writers;
    let received: Vec<Vec<(u64, u64)>> = thread::scope(|s| {
        for w in 0..writers {
            let ring = &ring;
            s.spawn(move || {
                for seq in 0..per_writer {
                    let mut message = [0u8; 16];
                    message[..8].copy_from_slice(&w.to_le_bytes());
                    message[8..].copy_from_slice(&seq.to_le_bytes());
                    ring.write(&message, Duration::MAX).unwrap();
                }
            });
        }
        let handles: Vec<_> = (0..readers)
            .map(|_| {
                s.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        match ring.read_with(Duration::MAX, |m| {
                            (
                                u64::from_le_bytes(m[..8].try_into().unwrap()),
                                u64::from_le_bytes(m[8..].try_into().unwrap()),
                            )
                        }) {
                            Ok(message) => got.push(message),
                            Err(ShmError::Shutdown) => return got,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        while ring.stats().read < writers * per_writer {
            thread::yield_now();
        }
        ring.shutdown();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut next = vec![0u64; writers as usize];
    let mut total = 0;
    for got in &received {
        let mut last = vec![None; writers as usize];
        for &(w, seq) in got {
            assert!(
                last[w as usize].is_none_or(|l| l < seq),
                "writer {w}'s messages reordered within one reader"
            );
            last[w as usize] = Some(seq);
            next[w as usize] += 1;
            total += 1;
        }
    }
    assert_eq!(total, writers * per_writer, "every message exactly once");
    assert!(next.iter().all(|&n| n == per_writer));
    if readers == 1 {
        // One reader sees each writer's sequence exactly in order.
        let mut expected = vec![0u64; writers as usize];
        for &(w, seq) in &received[0] {
            assert_eq!(seq, expected[w as usize]);
            expected[w as usize] += 1;
        }
    }
}

#[test]
fn threads_one_writer_one_reader() {
    exchange(1, 1, 2);
}

#[test]
fn threads_two_writers_two_readers() {
    exchange(2, 2, 4);
}

#[test]
fn threads_four_writers_one_reader() {
    exchange(4, 1, 3);
}

/// Opening a segment whose header was damaged on purpose (through its file in /dev/shm)
/// fails with the matching error, never with a crash.
#[cfg(not(miri))]
#[test]
fn corrupted_headers_are_refused() {
    use std::os::unix::fs::FileExt;
    let name = unique("corrupt");
    let _ring = CircularBuffer::create(&name, 4, 256).unwrap();
    let file = std::fs::OpenOptions::new().read(true).write(true).open(format!("/dev/shm/{name}")).unwrap();
    let mut original = [0u8; 64];
    file.read_exact_at(&mut original, 0).unwrap();
    let damage = |offset: u64, bytes: &[u8]| {
        file.write_all_at(&original, 0).unwrap();
        file.write_all_at(bytes, offset).unwrap();
        CircularBuffer::open(&name).unwrap_err()
    };
    assert_eq!(damage(0, b"NOTOURS!"), ShmError::Foreign);
    assert_eq!(damage(0, &[0; 8]), ShmError::NotInitialised);
    assert_eq!(damage(8, &99u32.to_le_bytes()), ShmError::UnsupportedVersion { found: 99 });
    assert_eq!(damage(12, &77u32.to_le_bytes()), ShmError::WrongKind { expected: Kind::Ring, found: 77 });
    assert!(matches!(damage(16, &u64::MAX.to_le_bytes()), ShmError::Truncated { expected: u64::MAX, .. }));
    assert!(matches!(damage(16, &4096u64.to_le_bytes()), ShmError::Corrupt { .. }));
    assert!(matches!(damage(32, &0u64.to_le_bytes()), ShmError::Corrupt { .. }), "data offset");
    assert!(matches!(damage(40, &u64::MAX.to_le_bytes()), ShmError::Corrupt { .. }), "data length");
    assert!(matches!(damage(48, &1u64.to_le_bytes()), ShmError::Corrupt { .. }), "one node");
    assert!(matches!(damage(48, &(1u64 << 40).to_le_bytes()), ShmError::Corrupt { .. }), "too many nodes");
    assert!(matches!(damage(56, &(1u64 << 20).to_le_bytes()), ShmError::Corrupt { .. }), "node size");
    file.write_all_at(&original, 0).unwrap();
    assert_eq!(CircularBuffer::open(&name).unwrap().nodes(), 4, "the repaired header opens");
    file.set_len(4096).unwrap();
    assert!(matches!(CircularBuffer::open(&name), Err(ShmError::Truncated { actual: 4096, .. })));
    file.set_len(10).unwrap();
    assert_eq!(CircularBuffer::open(&name).unwrap_err(), ShmError::Truncated { expected: 64, actual: 10 });
    file.set_len(0).unwrap();
    assert!(matches!(CircularBuffer::open(&name), Err(ShmError::Truncated { actual: 0, .. })));
}

//! The Stratum V2 style buffers: what buffer_sv2's own tests cover, the seed's slot diagrams,
//! the reference's defects, and slices held on other threads while the pool keeps serving.
//! Runs under miri too (with fewer cases).

use pinalloc::buffer::{
    Buffer, BufferFromSystemMemory, BufferPool, MAX_SLOTS, PoolError, PoolMode, Slice, SlotState, Write,
};
use proptest::prelude::*;
use std::collections::VecDeque;

mod common;

/// Writes `bytes` as one frame in chunks of `chunk` and takes it.
fn frame<B: Buffer>(buffer: &mut B, bytes: &[u8], chunk: usize) -> B::Slice {
    for part in bytes.chunks(chunk.max(1)) {
        buffer.get_writable(part.len()).copy_from_slice(part);
    }
    buffer.get_data_owned()
}

/// Five bytes that tell frames apart.
fn five(i: usize) -> [u8; 5] {
    let b = (i as u8).wrapping_mul(37);
    [b, b ^ 1, b ^ 2, b ^ 3, b ^ 4]
}

#[test]
fn eight_live_slices_fit_without_the_heap() {
    let mut pool = BufferPool::new(8 * 5);
    let slices: Vec<Slice> = (0..8).map(|i| frame(&mut pool, &five(i), 5)).collect();
    for (i, slice) in slices.iter().enumerate() {
        assert_eq!(**slice, five(i));
        assert_eq!(slice.len(), 5, "buffer_sv2 3.0.1 said 0 for pool-backed slices");
        assert!(slice.is_pooled());
    }
    assert!(pool.is_back_mode());
}

#[test]
fn a_hundred_cycles_reuse_the_pool() {
    let mut pool = BufferPool::new(8 * 5);
    for i in 0..100 {
        let slice = frame(&mut pool, &five(i), 2);
        assert_eq!(*slice, five(i));
        assert!(slice.is_pooled(), "cycle {i} fell back to the heap");
    }
}

#[test]
fn eighteen_live_slices_fall_back_to_the_heap_past_eight() {
    let mut pool = BufferPool::new(8 * 5);
    let slices: Vec<Slice> = (0..18).map(|i| frame(&mut pool, &five(i), 3)).collect();
    for (i, slice) in slices.iter().enumerate() {
        assert_eq!(**slice, five(i));
        assert_eq!(slice.is_pooled(), i < 8, "slice {i}");
    }
    assert!(pool.is_alloc_mode());
}

#[test]
fn a_pool_without_room_serves_every_frame_from_the_heap() {
    for capacity in [0, 1, 4] {
        let mut pool = BufferPool::new(capacity);
        let slices: Vec<Slice> = (0..18).map(|i| frame(&mut pool, &five(i), 5)).collect();
        assert!(slices.iter().enumerate().all(|(i, s)| **s == five(i) && !s.is_pooled()));
    }
}

#[test]
fn more_slots_keep_more_frames_in_the_pool() {
    let mut pool = BufferPool::with_slots(64 * 5, 64).unwrap();
    let mut slices: Vec<Slice> = (0..64).map(|i| frame(&mut pool, &five(i), 5)).collect();
    assert!(slices.iter().enumerate().all(|(i, s)| **s == five(i) && s.is_pooled()));
    assert_eq!(pool.slot_count(), 64);
    let slots: Vec<Option<usize>> = slices.iter().map(Slice::pool_slot).collect();
    assert_eq!(slots, (0..64).map(Some).collect::<Vec<_>>(), "back mode hands out slots in order");
    assert!(!frame(&mut pool, &five(64), 5).is_pooled());
    // Every slot, the highest included, gives its bytes back: dropped from the top, all 64
    // frames fit again.
    while let Some(slice) = slices.pop() {
        drop(slice);
    }
    let again: Vec<Slice> = (0..64).map(|i| frame(&mut pool, &five(i), 5)).collect();
    assert!(again.iter().all(Slice::is_pooled));
}

/// The pool's slots drawn as in the seed: each live slot shows its frame's label.
struct Diagram {
    labels: [char; MAX_SLOTS],
}

impl Diagram {
    fn new() -> Self {
        Diagram { labels: ['?'; MAX_SLOTS] }
    }

    /// Writes a 5-byte frame labelled `label`, returning the slice.
    fn take(&mut self, pool: &mut BufferPool, label: char) -> Slice {
        let slice = frame(pool, &[label as u8; 5], 5);
        if let Some(slot) = slice.pool_slot() {
            self.labels[slot] = label;
        }
        slice
    }

    fn draw(&self, pool: &BufferPool) -> String {
        (0..pool.slot_count())
            .map(|slot| match pool.slot_state(slot) {
                SlotState::Live => self.labels[slot],
                SlotState::Free | SlotState::Released => '-',
            })
            .collect()
    }
}

#[test]
fn case_1_exhaustion_switches_to_alloc_mode() {
    let mut pool = BufferPool::new(1024);
    let mut diagram = Diagram::new();
    assert_eq!(diagram.draw(&pool), "--------");
    let expected =
        ["1-------", "12------", "123-----", "1234----", "12345---", "123456--", "1234567-", "12345678"];
    let mut live = Vec::new();
    for (label, drawn) in ('1'..='8').zip(expected) {
        live.push(diagram.take(&mut pool, label));
        assert_eq!((diagram.draw(&pool).as_str(), pool.mode()), (drawn, PoolMode::Back));
    }
    for label in ['9', 'a'] {
        let slice = diagram.take(&mut pool, label);
        assert!(!slice.is_pooled());
        assert_eq!((diagram.draw(&pool).as_str(), pool.mode()), ("12345678", PoolMode::Alloc));
        live.push(slice);
    }
    assert!(live.iter().all(|s| s.len() == 5));
}

#[test]
fn case_2_dropping_everything_resets_to_the_start() {
    let mut pool = BufferPool::new(1024);
    let mut diagram = Diagram::new();
    let full: Vec<Slice> = ('1'..='8').map(|label| diagram.take(&mut pool, label)).collect();
    assert_eq!(diagram.draw(&pool), "12345678");
    drop(full);
    assert_eq!(diagram.draw(&pool), "--------");
    let nine = diagram.take(&mut pool, '9');
    assert_eq!((diagram.draw(&pool).as_str(), pool.mode()), ("9-------", PoolMode::Back));
    let a = diagram.take(&mut pool, 'a');
    assert_eq!((diagram.draw(&pool).as_str(), pool.mode()), ("9a------", PoolMode::Back));
    assert!(nine.is_pooled() && a.is_pooled());
    assert_eq!(nine.pool_slot(), Some(0), "the reset starts again at the first slot");
}

#[test]
fn case_3_back_front_back() {
    // Exactly eight 5-byte frames fit, so freeing slots is what makes room.
    let mut pool = BufferPool::new(8 * 5);
    let mut diagram = Diagram::new();
    let mut live: VecDeque<Slice> = ('1'..='8').map(|label| diagram.take(&mut pool, label)).collect();
    assert_eq!(diagram.draw(&pool), "12345678");
    live.pop_front();
    live.pop_front();
    assert_eq!(diagram.draw(&pool), "--345678");
    live.push_front(diagram.take(&mut pool, '9'));
    assert_eq!((diagram.draw(&pool).as_str(), pool.mode()), ("-9345678", PoolMode::Front));
    live.push_front(diagram.take(&mut pool, 'a'));
    assert_eq!((diagram.draw(&pool).as_str(), pool.mode()), ("a9345678", PoolMode::Front));
    live.pop_back();
    live.pop_back();
    assert_eq!(diagram.draw(&pool), "a93456--");
    live.push_back(diagram.take(&mut pool, 'b'));
    assert_eq!((diagram.draw(&pool).as_str(), pool.mode()), ("a93456b-", PoolMode::Back));
    live.push_back(diagram.take(&mut pool, 'c'));
    assert_eq!((diagram.draw(&pool).as_str(), pool.mode()), ("a93456bc", PoolMode::Back));
    let labels: String = live.iter().map(|s| s[0] as char).collect();
    assert_eq!(labels, "a93456bc");
    // Full in both directions: the next frame goes to the heap.
    assert!(!diagram.take(&mut pool, 'd').is_pooled());
    assert!(pool.is_alloc_mode());
}

#[test]
fn the_pool_leaves_alloc_mode_once_slots_come_back() {
    let mut pool = BufferPool::new(8 * 5);
    let mut live: Vec<Slice> = (0..10).map(|i| frame(&mut pool, &five(i), 5)).collect();
    assert!(pool.is_alloc_mode());
    live.drain(..3);
    let back = frame(&mut pool, &five(10), 5);
    assert!(back.is_pooled() && pool.is_front_mode());
    assert_eq!(*back, five(10));
    assert!(live.iter().enumerate().all(|(i, s)| **s == five(i + 3)));
}

/// Alloc mode's frames for a pool of 2 slots of 1 KiB, held by `slots`: frames of `len`.
fn exhausted_pool() -> (BufferPool, Vec<Slice>) {
    let mut pool = BufferPool::with_slots(2048, 2).unwrap();
    let slots: Vec<Slice> = (0..2).map(|i| frame(&mut pool, &[i as u8; 1024], 100)).collect();
    assert!(slots.iter().all(Slice::is_pooled));
    (pool, slots)
}

#[test]
fn alloc_mode_frames_reuse_their_spill_buffers() {
    let (mut pool, _slots) = exhausted_pool();
    let first = frame(&mut pool, &[7; 300], 7);
    assert!(pool.is_alloc_mode() && first.is_spilled() && !first.is_pooled());
    assert_eq!((first.len(), first.pool_slot()), (300, None));
    let (at, second) = (first.as_ptr(), frame(&mut pool, &[8; 200], 9));
    assert!(second.is_spilled() && second.as_ptr() != at, "the first buffer is still out");
    drop(first);
    // Written into the buffer the first slice gave back: no allocation, no zero fill.
    let third = frame(&mut pool, &[9; 250], 10);
    assert!(third.is_spilled() && third.as_ptr() == at);
    assert_eq!((&*second, &*third), (&[8; 200][..], &[9; 250][..]));
}

#[test]
fn a_spill_buffer_grows_with_its_frame() {
    let (mut pool, _slots) = exhausted_pool();
    drop(frame(&mut pool, &[1; 64], 8));
    let long: Vec<u8> = (0..1500).map(|i| i as u8).collect();
    let grown = frame(&mut pool, &long, 13);
    assert!(grown.is_spilled());
    assert_eq!(*grown, *long);
}

#[test]
fn spill_buffers_kept_stay_within_the_pool_capacity() {
    let (mut pool, _slots) = exhausted_pool();
    let mut held: Vec<Slice> = Vec::new();
    while held.last().is_none_or(Slice::is_spilled) {
        assert!(held.len() < 8, "2048 bytes of budget cannot keep eight 600-byte frames");
        held.push(frame(&mut pool, &[held.len() as u8; 600], 50));
    }
    let over = held.last().unwrap();
    assert!(!over.is_pooled(), "past the budget a frame is a one-off vector");
    assert!(held.len() > 2, "frames up to the budget are kept");
    assert!(held.iter().enumerate().all(|(i, s)| **s == [i as u8; 600]));
}

#[test]
fn spilled_slices_outlive_their_pool_on_any_thread() {
    let (mut pool, slots) = exhausted_pool();
    let spilled: Vec<Slice> = (0..3).map(|i| frame(&mut pool, &[i + 10; 100], 30)).collect();
    drop(frame(&mut pool, &[0; 100], 30)); // a buffer back in the table, idle
    drop(pool);
    drop(slots);
    let handle =
        std::thread::spawn(move || spilled.iter().enumerate().all(|(i, s)| **s == [i as u8 + 10; 100]));
    assert!(handle.join().unwrap(), "the last slice out frees the storage and every buffer");
}

#[test]
fn a_pool_of_sixty_four_slots_has_no_spill_buffers() {
    let mut pool = BufferPool::with_slots(64, MAX_SLOTS).unwrap();
    let live: Vec<Slice> = (0..MAX_SLOTS + 2).map(|i| frame(&mut pool, &[i as u8; 1], 1)).collect();
    assert!(pool.is_alloc_mode());
    assert!(live.iter().all(|s| !s.is_spilled()));
    assert_eq!(live.iter().filter(|s| s.is_pooled()).count(), MAX_SLOTS);
}

#[test]
fn a_frame_outgrowing_its_zone_moves_with_its_bytes() {
    // To the front: the back zone is full, its oldest slot released.
    let mut pool = BufferPool::new(100);
    let first = frame(&mut pool, &[1; 40], 40);
    let _second = frame(&mut pool, &[2; 40], 40);
    drop(first);
    let moved = frame(&mut pool, &(0..30).collect::<Vec<u8>>(), 7);
    assert!(moved.is_pooled() && pool.is_front_mode());
    assert_eq!(*moved, (0..30).collect::<Vec<u8>>()[..]);
    // To the heap: longer than the whole pool.
    let long: Vec<u8> = (0..=255).cycle().take(1000).collect();
    let big = frame(&mut pool, &long, 33);
    assert!(!big.is_pooled());
    assert_eq!(*big, long[..]);
}

#[test]
fn a_slice_outlives_its_pool() {
    for order in 0..3 {
        let mut pool = BufferPool::new(64);
        let a = frame(&mut pool, b"first", 2);
        let b = frame(&mut pool, b"second", 4);
        let c = frame(&mut pool, b"third", 5);
        drop(b); // released before the pool goes: the pool takes it into account
        drop(pool); // returns at once (buffer_sv2 3.0.1 spins here forever)
        assert_eq!((&*a, &*c), (&b"first"[..], &b"third"[..]));
        match order {
            0 => drop((a, c)),
            1 => drop((c, a)),
            _ => {
                let c = std::thread::spawn(move || {
                    assert_eq!(*a, *b"first");
                    c
                })
                .join()
                .unwrap();
                assert_eq!(*c, *b"third");
            }
        }
    }
}

#[test]
fn dropping_a_pool_with_every_slice_gone_frees_at_once() {
    let mut pool = BufferPool::new(64);
    drop(frame(&mut pool, b"x", 1));
    assert!(pool.is_droppable());
    let held = frame(&mut pool, b"y", 1);
    assert!(!pool.is_droppable());
    drop(held);
    assert!(pool.is_droppable());
}

#[test]
fn the_trait_s_reads_and_the_write_trait() {
    let mut pool = BufferPool::new(64);
    pool.write_all(b"header").unwrap();
    assert_eq!(pool.write(b"-body").unwrap(), 5);
    assert_eq!(pool.len(), 11);
    assert_eq!(pool.get_data_by_ref(6), b"header");
    assert_eq!(pool.get_data_by_ref_(100), b"header-body");
    pool.danger_set_start(7);
    assert_eq!(pool.as_ref(), b"body");
    pool.as_mut()[0] = b'B';
    let slice = pool.get_data_owned();
    assert_eq!(*slice, *b"header-Body");
    assert!(pool.is_empty());
    assert!(pool.get_data_owned().is_empty(), "an empty frame takes no slot");
    assert_eq!(Slice::from(vec![1, 2, 3]).len(), 3);
    assert_eq!(Slice::from(Vec::new()).len(), 0);
}

#[test]
fn slices_index_and_mutate() {
    let mut pool = BufferPool::new(64);
    let mut slice = frame(&mut pool, &[1, 2, 3, 4], 4);
    slice[0] = 9;
    slice.as_mut()[3] = 8;
    assert_eq!((slice[0], &slice[1..3], slice.as_ref()), (9, &[2, 3][..], &[9, 2, 3, 8][..]));
    let from_vec: Slice = vec![5, 6].into();
    assert_eq!(&from_vec[..], &[5, 6]);
}

#[test]
fn bad_configurations_are_errors() {
    assert_eq!(BufferPool::with_slots(64, 0).unwrap_err(), PoolError::InvalidSlotCount { slots: 0 });
    assert_eq!(BufferPool::with_slots(64, 65).unwrap_err(), PoolError::InvalidSlotCount { slots: 65 });
    assert_eq!(
        BufferPool::try_new(usize::MAX).unwrap_err(),
        PoolError::CapacityTooLarge { capacity: usize::MAX }
    );
    assert!(PoolError::InvalidSlotCount { slots: 65 }.to_string().contains("1 to 64"));
}

#[test]
fn system_memory_frames_are_vectors() {
    let mut buffer = BufferFromSystemMemory::new(0);
    let v: Vec<u8> = frame(&mut buffer, b"abcdef", 4);
    assert_eq!(v, b"abcdef");
    let s: Slice = v.into();
    assert_eq!(s.len(), 6);
}

/// A worker thread that holds each slice it receives for a while, then checks it still
/// holds the bytes written when it was taken.
fn holder(rx: std::sync::mpsc::Receiver<(Slice, Vec<u8>, u32)>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut held: VecDeque<(Slice, Vec<u8>, u32)> = VecDeque::new();
        let mut checked = 0;
        let mut check = |(slice, expected, _): (Slice, Vec<u8>, u32)| {
            assert_eq!(&*slice, &expected[..], "a slice's bytes changed while it was held");
            checked += 1;
        };
        loop {
            match rx.try_recv() {
                Ok(item) => held.push_back(item),
                Err(std::sync::mpsc::TryRecvError::Empty) => std::thread::yield_now(),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
            }
            // Hold times count down in receive rounds: some slices go quickly, some late,
            // out of order.
            for item in held.iter_mut() {
                item.2 = item.2.saturating_sub(1);
            }
            while let Some(pos) = held.iter().position(|item| item.2 == 0) {
                check(held.remove(pos).unwrap());
            }
        }
        held.into_iter().for_each(&mut check);
        checked
    })
}

proptest! {
    #![proptest_config(common::proptest_config(48, 3))]

    /// Slices sent to two other threads, held for random times and dropped there in any
    /// order, keep exactly their bytes while the pool keeps serving.
    #[test]
    fn slices_held_on_other_threads_keep_their_bytes(
        capacity in 0usize..4096,
        slots in 1usize..=64,
        messages in prop::collection::vec((0usize..600, 1usize..64, 0u32..40), 1..if cfg!(miri) { 12 } else { 120 }),
    ) {
        let mut pool = BufferPool::with_slots(capacity, slots).unwrap();
        let (txs, workers): (Vec<_>, Vec<_>) = (0..2)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel();
                (tx, holder(rx))
            })
            .unzip();
        for (i, &(len, chunk, hold)) in messages.iter().enumerate() {
            let bytes: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
            let slice = frame(&mut pool, &bytes, chunk);
            prop_assert_eq!(&*slice, &bytes[..]);
            txs[i % 2].send((slice, bytes, hold)).unwrap();
        }
        drop(txs);
        let checked: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        prop_assert_eq!(checked, messages.len());
        prop_assert!(pool.is_droppable());
    }
}

#[path = "common/buffer_model.rs"]
mod buffer_model;

fn op() -> impl Strategy<Value = buffer_model::Op> {
    use buffer_model::Op;
    prop_oneof![
        4 => (0usize..200, 1usize..40).prop_map(|(len, chunk)| Op::Frame { len, chunk }),
        1 => (0usize..30).prop_map(|len| Op::Partial { len }),
        3 => any::<usize>().prop_map(Op::Release),
        1 => Just(Op::ReleaseAll),
    ]
}

proptest! {
    #![proptest_config(common::proptest_config(400, 6))]

    /// Any sequence of frames, partial writes and releases (in any order) keeps every held
    /// slice's bytes, and the pool's bookkeeping, intact.
    #[test]
    fn any_operation_sequence_keeps_slices_intact(
        capacity in 0usize..2048,
        slots in 1usize..=64,
        ops in prop::collection::vec(op(), 0..if cfg!(miri) { 30 } else { 300 }),
    ) {
        buffer_model::run(capacity, slots, &ops);
    }
}

#[test]
fn an_impossible_frame_panics_before_changing_the_pool() {
    let mut pool = BufferPool::new(64);
    pool.get_writable(3).copy_from_slice(b"abc");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.get_writable(usize::MAX - 1);
    }));
    assert!(caught.is_err());
    pool.check_invariants().unwrap();
    assert!(pool.is_back_mode());
    pool.get_writable(2).copy_from_slice(b"de");
    let slice = pool.get_data_owned();
    assert_eq!((&*slice, slice.is_pooled()), (&b"abcde"[..], true));
}

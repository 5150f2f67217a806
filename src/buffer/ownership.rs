//! The slot word: how slices hand their memory back to the pool, and who frees the storage.
//!
//! A pool gives out up to 64 slots. Which slots are out is the owner's private business (a
//! plain `u64` in the pool); the one word shared with the slices, [`SlotWord`], holds only
//! what crosses threads: bit `i` set means *slot `i` was released and the owner has not yet
//! taken it back*.
//!
//! | who | does | ordering | partner |
//! |---|---|---|---|
//! | owner, taking a frame | nothing: the slot's bit is already 0 | | |
//! | slice, on drop | `fetch_xor(bit)` | Release | the owner's `reclaim` / `orphan`, or the last slice's fence |
//! | owner, needing slots | `swap(0)` (`reclaim`) | Acquire | every release it takes back |
//! | owner, on drop | `fetch_xor(out)` (`orphan`) | AcqRel | releases before it; the last slice's fence |
//!
//! Handing a frame out therefore costs no atomic operation at all, and a release costs one.
//! The owner reclaims lazily, when it runs out of room or slots: one `swap` takes back every
//! slot released since.
//!
//! **Dropping the pool while slices live.** The storage must outlive the last slice, without
//! the pool's `Drop` waiting and without a second atomic on every release. The owner's drop
//! flips, in one `fetch_xor`, the bit of every slot it gave out and has not reclaimed. A
//! released slot's bit goes 1 → 0 (done); an outstanding slot's goes 0 → 1. From then on the
//! word is exactly the set of outstanding slots, and each remaining release flips its bit
//! back to 0. A slice tells the two eras apart by its own bit in the value its `fetch_xor`
//! returned: before the owner's flip it was 0 (given out with 0, nobody else touches it),
//! after it is 1. The slice whose release leaves the word at 0 after the flip was the last
//! one out and frees the storage; if the flip itself leaves 0, the owner frees it. Every
//! decision is read from the result of the caller's own read-modify-write, so no party
//! touches the word after another could have freed it, and exactly one party frees.
//! (`release` and `orphan` still hold `&self` while their RMW returns, as `Arc::drop` holds
//! `&ArcInner`: the word is an `UnsafeCell`, which a shared reference does not protect
//! from deallocation, the rule miri applies to `Arc` too.)
//!
//! A leaked slice (`mem::forget`) keeps its slot forever: its zone cannot give bytes back
//! past it, and the storage leaks with it once the pool is dropped. Nothing unsound follows.
//! (buffer_sv2 3.0.1 instead spins in `Drop` until every slice is gone.)

use crate::sync::{AtomicU64, Ordering};

/// Released-but-not-reclaimed slots, one bit per slot; after the owner's drop, the
/// outstanding slots. See the module docs for the protocol.
#[derive(Debug)]
pub(crate) struct SlotWord(AtomicU64);

impl SlotWord {
    pub(crate) fn new() -> Self {
        SlotWord(AtomicU64::new(0))
    }

    /// A slice gives slot `bit` back. Returns `true` if the caller was the last user of the
    /// storage and must free it (the owner is gone and every other slice released).
    #[inline]
    pub(crate) fn release(&self, bit: u64) -> bool {
        // Release: publishes every access to the slot's bytes to the owner's `reclaim`
        // (Acquire), to its `orphan` (AcqRel), or to whichever party frees the storage.
        let before = self.0.fetch_xor(bit, Ordering::Release);
        if before & bit == 0 {
            // Pool alive at our release: it will reclaim the slot.
            return false;
        }
        if before != bit {
            return false; // other slices are still out
        }
        // Acquire: pairs with the Release half of every earlier release (all in this word's
        // release sequence) and of the owner's `orphan`, so their accesses to the storage
        // happen before the caller frees it.
        crate::sync::fence(Ordering::Acquire);
        true
    }

    /// Owner: whether any slot was released since the last reclaim. A hint, Relaxed: the
    /// reclaim that follows is what synchronises.
    #[inline]
    pub(crate) fn any_released(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    /// Owner: takes back every slot released since the last reclaim, as a bit set.
    #[inline]
    pub(crate) fn reclaim(&self) -> u64 {
        // Acquire: pairs with each slice's Release in `release`, so the owner's next writes
        // into those slots happen after the slices' last reads.
        self.0.swap(0, Ordering::Acquire)
    }

    /// Owner: the released-but-not-reclaimed slots, without taking them back.
    pub(crate) fn peek(&self) -> u64 {
        // Acquire: pairs with the slices' Release, as in `reclaim`.
        self.0.load(Ordering::Acquire)
    }

    /// Owner: whether every slot in `given_out` has been released.
    #[inline]
    pub(crate) fn all_released(&self, given_out: u64) -> bool {
        // Acquire: pairs with the slices' Release, as in `reclaim`.
        self.0.load(Ordering::Acquire) == given_out
    }

    /// Owner, when the pool is dropped: `given_out` are the slots out and not reclaimed.
    /// Returns `true` if none is outstanding, and the caller must free the storage now;
    /// otherwise the last slice will.
    pub(crate) fn orphan(&self, given_out: u64) -> bool {
        if given_out == 0 {
            return true; // nothing was ever out since the last reclaim: no slice can race
        }
        // AcqRel: Acquire pairs with the releases already in the word (their accesses happen
        // before we free); Release publishes the owner's accesses to the last slice's fence.
        let before = self.0.fetch_xor(given_out, Ordering::AcqRel);
        before == given_out
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::SlotWord;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicUsize, Ordering};

    /// The storage of the model: two slots of data, the word, and a free counter.
    struct Storage {
        word: SlotWord,
        data: [UnsafeCell<u64>; 2],
        frees: AtomicUsize,
    }

    // SAFETY: the model's cells are accessed under the slot protocol being checked; loom
    // reports any access it does not order.
    unsafe impl Sync for Storage {}

    fn storage() -> Arc<Storage> {
        Arc::new(Storage {
            word: SlotWord::new(),
            data: [UnsafeCell::new(0), UnsafeCell::new(0)],
            frees: AtomicUsize::new(0),
        })
    }

    /// A slice on another thread: reads its slot, checks the frame, releases.
    fn slice_thread(storage: Arc<Storage>, slot: usize, expect: u64) -> loom::thread::JoinHandle<()> {
        loom::thread::spawn(move || {
            // SAFETY: (model) the slot is ours until the release below.
            let seen = storage.data[slot].with(|p| unsafe { *p });
            assert_eq!(seen, expect);
            if storage.word.release(1 << slot) {
                storage.frees.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    #[test]
    fn a_reclaimed_slot_is_rewritten_only_after_its_slice_read_it() {
        loom::model(|| {
            let storage = storage();
            // SAFETY: (model) the owner writes slot 0 before handing it out.
            storage.data[0].with_mut(|p| unsafe { *p = 7 });
            let reader = slice_thread(storage.clone(), 0, 7);
            // The owner waits for the slot to come back, then reuses it.
            let mut back = 0;
            while back & 1 == 0 {
                back |= storage.word.reclaim();
                loom::thread::yield_now();
            }
            // SAFETY: (model) reclaimed with Acquire: loom reports a race if not ordered.
            storage.data[0].with_mut(|p| unsafe { *p = 8 });
            reader.join().unwrap();
            assert_eq!(storage.frees.load(Ordering::Relaxed), 0, "a live pool's storage was freed");
        });
    }

    #[test]
    fn dropping_the_pool_while_slices_live_frees_the_storage_exactly_once() {
        loom::model(|| {
            let storage = storage();
            for slot in 0..2 {
                // SAFETY: (model) written before being handed out.
                storage.data[slot].with_mut(|p| unsafe { *p = slot as u64 + 1 });
            }
            let a = slice_thread(storage.clone(), 0, 1);
            let b = slice_thread(storage.clone(), 1, 2);
            // The owner may have taken back some releases before it is dropped.
            let mut given_out = 0b11;
            given_out &= !storage.word.reclaim();
            if storage.word.orphan(given_out) {
                for slot in 0..2 {
                    // SAFETY: (model) "freeing" touches every slot: it must come after the
                    // slices' reads.
                    storage.data[slot].with_mut(|p| unsafe { *p = 0 });
                }
                storage.frees.fetch_add(1, Ordering::Relaxed);
            }
            a.join().unwrap();
            b.join().unwrap();
            assert_eq!(storage.frees.load(Ordering::Relaxed), 1);
        });
    }

    #[test]
    fn the_last_slice_out_after_the_pool_frees() {
        loom::model(|| {
            let storage = storage();
            // SAFETY: (model) written before being handed out.
            storage.data[1].with_mut(|p| unsafe { *p = 5 });
            let reader = slice_thread(storage.clone(), 1, 5);
            let owner_frees = storage.word.orphan(0b10);
            reader.join().unwrap();
            let frees = storage.frees.load(Ordering::Relaxed) + usize::from(owner_frees);
            assert_eq!(frees, 1);
        });
    }
}

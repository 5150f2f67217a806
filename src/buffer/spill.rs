//! Spill buffers: alloc mode's frames, kept for the next time the pool runs out.
//!
//! When every slot is out or no zone has room, a frame goes to the heap (alloc mode). A
//! fresh vector per frame costs an allocation, a zero fill of every byte (`get_writable`
//! hands out initialised bytes), reallocations as the frame grows, and a free, often on the
//! receiver's thread. With buffer_sv2's 8 slots and frames held 10 µs, as in its "sent to a
//! thread" benchmark, that was a tenth of the producer's time (the zero fill alone 9%,
//! measured with `perf`).
//!
//! So the slot word's bits above the pool's slots stand for *spill buffers*: heap vectors
//! the storage keeps in its table (see [`storage`](super::storage)), every byte initialised
//! once. An alloc-mode frame is written into an idle spill buffer; taking it hands the
//! buffer to a slice that releases its bit on drop, exactly as a pool-backed slice releases
//! its slot, and the pool reclaims the bit with the slots and writes into the buffer again,
//! without allocating or zeroing. The slot protocol ([`ownership`](super::ownership))
//! covers them unchanged, including a pool dropped while spilled slices live: whoever frees
//! the storage frees the table's buffers too.
//!
//! The buffers kept are bounded: at most `64 - slots` of them, and at most the pool's
//! capacity in bytes together (so a burst of huge frames does not stay pinned). A frame
//! whose buffer would exceed that, or that finds no idle bit, is a one-off heap vector as
//! before, freed by its slice.

/// The owner's view of its spill bits. Invariant: `idle`, `out` and `writing` are disjoint
/// and above the pool's slots; `kept` is the sum of the capacities of the buffers in the
/// table and out with slices, at most `budget`.
#[derive(Clone, Debug)]
pub(crate) struct Spills {
    /// Bits whose buffer (or lack of one) the owner may use: not out, not being written.
    idle: u64,
    /// Bits a slice holds (given out and not reclaimed).
    out: u64,
    /// The bit whose buffer the pool's heap vector is (out of the table, being written).
    writing: Option<usize>,
    /// Bytes of the buffers kept (see the invariant).
    kept: usize,
    budget: usize,
}

impl Spills {
    /// The spill bits of a pool with slots `slots` (a mask), keeping at most `budget` bytes.
    pub(crate) fn new(slots: u64, budget: usize) -> Self {
        Spills { idle: !slots, out: 0, writing: None, kept: 0, budget }
    }

    /// Bits a slice holds.
    pub(crate) fn out(&self) -> u64 {
        self.out
    }

    /// Whether the pool's heap vector is a spill buffer.
    pub(crate) fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Takes an idle bit for the next alloc-mode frames to be written into; the caller then
    /// takes its buffer out of the table and reports its size to [`Spills::unkeep`].
    pub(crate) fn take_idle(&mut self) -> Option<usize> {
        debug_assert!(self.writing.is_none());
        let index = (self.idle != 0).then(|| self.idle.trailing_zeros() as usize)?;
        self.idle &= !(1 << index);
        self.writing = Some(index);
        Some(index)
    }

    /// The buffer of the bit just taken left the table, with `capacity` bytes.
    pub(crate) fn unkeep(&mut self, capacity: usize) {
        self.kept -= capacity;
    }

    /// The frame written into the spill buffer (now `capacity` bytes), if the heap vector is
    /// one, is being taken: returns its bit if the buffer is kept (the slice holds the bit);
    /// `None` if the vector leaves as a one-off (not a spill buffer, or over budget: then
    /// the bit goes back idle, without a buffer).
    pub(crate) fn give_out(&mut self, capacity: usize) -> Option<usize> {
        let index = self.writing.take()?;
        if self.kept + capacity > self.budget {
            self.idle |= 1 << index;
            return None;
        }
        self.kept += capacity;
        self.out |= 1 << index;
        Some(index)
    }

    /// Takes back spill bits released by their slices (the spill bits of a
    /// `SlotWord::reclaim` result).
    pub(crate) fn take_back(&mut self, reclaimed: u64) {
        #[cfg(feature = "debug")]
        assert!(
            reclaimed & !self.out == 0,
            "spill bits {reclaimed:#x} released without being out ({:#x})",
            self.out
        );
        self.out &= !reclaimed;
        self.idle |= reclaimed;
    }

    /// Checks the invariant against the pool's slot mask.
    pub(crate) fn check(&self, slots: u64) -> Result<(), &'static str> {
        let writing = self.writing.map_or(0, |index| 1 << index);
        if self.idle & self.out != 0 || (self.idle | self.out) & writing != 0 {
            return Err("a spill bit is in two states at once");
        }
        if (self.idle | self.out | writing) & slots != 0 {
            return Err("a spill bit is a slot");
        }
        if self.kept > self.budget {
            return Err("the spill buffers kept exceed their budget");
        }
        Ok(())
    }
}

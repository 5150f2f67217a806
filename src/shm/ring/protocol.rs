//! The ring's claim/publish/release protocol: which process owns which node, when.
//!
//! A ring of `N` nodes is driven by two cursors, monotonically increasing 64-bit positions:
//! message `p` lives in node `p % N` during lap `p / N`. Each node has one state word:
//!
//! ```text
//!  63                     24 23 22 21                  0
//! +-------------------------+-----+---------------------+
//! |  lap (40 bits)          |phase|  owner pid (22 bits) |
//! +-------------------------+-----+---------------------+
//! ```
//!
//! | transition | who | how | ordering (partner) |
//! |---|---|---|---|
//! | `(L, Free)` → `(L, Writing, me)` | writer of position `p` (lap `L`) | CAS, then help the write cursor past `p` | Acquire (the reader's Release in *release*: its reads of the old bytes are done) |
//! | `(L, Writing, me)` → `(L, Published, me)` | that writer, after filling the node and its length | CAS | Release (the reader's Acquire claim) |
//! | `(L, Published, w)` → `(L, Reading, me)` | reader of position `p` | CAS, then help the read cursor past `p` | Acquire (the writer's Release publish) |
//! | `(L, Reading, me)` → `(L+1, Free, 0)` | that reader, after consuming | CAS | Release (the next writer's Acquire claim) |
//! | `(L, Writing, dead)` → `(L, Published, 0)` | anyone blocked on it | CAS on the exact value seen | AcqRel |
//! | `(L, Reading, dead)` → `(L+1, Free, 0)` | anyone blocked on it | CAS on the exact value seen | AcqRel |
//!
//! **Why the order holds.** A position is claimed by exactly one CAS on its node's state
//! (the lap in the word rules out a stale claim from an earlier lap), and a cursor only moves
//! past `p` once someone has seen `p` claimed, so it never skips an unclaimed position. A
//! reader claims only the position at the read cursor, and only once it is published: a slow
//! writer holds back the readers behind it instead of being overtaken, so messages come out in
//! the order their positions were claimed, and nothing is lost when a writer is slow.
//!
//! **Why a dead process cannot wedge the ring.** The owner's pid is in the state word, so the
//! claim and the ownership record are one atomic fact. Whoever waits on a node whose owner no
//! longer exists recovers it with a CAS on the exact word it saw: a node a dead writer held is
//! published *empty-handed* (`pid 0`) and its reader reports [`ShmError::MessageLost`](crate::shm::ShmError::MessageLost)
//!  instead of skipping it silently; a node a dead reader held is freed
//! (that message had been delivered to the reader that died). A cursor whose mover died between
//! its claim and its cursor step is moved by the next thread that sees the claim.
//!
//! **Hostile words.** Every state is interpreted relative to the position the caller expects;
//! positions wrap rather than overflow, impossible combinations are treated as "not ready",
//! and a bounded number of cursor steps per attempt keeps a corrupted ring from looping
//! forever: the caller waits and times out.
//!
//! Laps are 40 bits, compared on the circle: a thread would have to stall for 2^39 laps of
//! the ring for a stale claim to succeed. Pids are 22 bits (Linux's `PID_MAX_LIMIT` is
//! 2^22); a pid that does not fit is recorded as all ones, "unknown", and never recovered.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Where a node is in its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Free for the writer of its lap.
    Free = 0,
    /// Claimed by a writer, being filled.
    Writing = 1,
    /// Filled and waiting for a reader.
    Published = 2,
    /// Claimed by a reader, being consumed.
    Reading = 3,
}

const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;
const PHASE_SHIFT: u32 = PID_BITS;
const LAP_SHIFT: u32 = PID_BITS + 2;
const LAP_BITS: u32 = 64 - LAP_SHIFT;
const LAP_MASK: u64 = (1 << LAP_BITS) - 1;
/// The owner of a claim whose pid does not fit in 22 bits: never presumed dead.
const UNKNOWN_PID: u64 = PID_MASK;

/// One decoded node state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotState(u64);

impl SlotState {
    fn new(lap: u64, phase: Phase, pid: u32) -> Self {
        let pid = u64::from(pid).min(UNKNOWN_PID);
        SlotState(((lap & LAP_MASK) << LAP_SHIFT) | ((phase as u64) << PHASE_SHIFT) | pid)
    }

    fn lap(self) -> u64 {
        self.0 >> LAP_SHIFT
    }

    pub(crate) fn phase(self) -> Phase {
        match (self.0 >> PHASE_SHIFT) & 3 {
            0 => Phase::Free,
            1 => Phase::Writing,
            2 => Phase::Published,
            _ => Phase::Reading,
        }
    }

    /// The owner's pid; for a published node, 0 when its writer was lost.
    pub(crate) fn pid(self) -> u32 {
        (self.0 & PID_MASK) as u32
    }

    /// How many laps this state is ahead of `lap` (negative: behind), on the 40-bit circle.
    fn laps_ahead_of(self, lap: u64) -> i64 {
        let delta = self.lap().wrapping_sub(lap & LAP_MASK) & LAP_MASK;
        ((delta << LAP_SHIFT) as i64) >> LAP_SHIFT
    }
}

/// A node's shared metadata: its state word and the length of the message in it.
#[repr(C, align(64))]
pub(crate) struct Slot {
    state: AtomicU64,
    len: AtomicU32,
}

impl Slot {
    /// A free node of lap 0 (the all-zero word: a zeroed mapping is a fresh ring).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Slot { state: AtomicU64::new(0), len: AtomicU32::new(0) }
    }
}

/// A cursor on its own cache line.
#[repr(C, align(64))]
pub(crate) struct Cursor(AtomicU64);

impl Cursor {
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Cursor(AtomicU64::new(0))
    }

    pub(crate) fn position(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Moves the cursor from `position` to the next one, unless someone already has.
    /// Relaxed: the cursor is a hint; the node state words carry every ordering.
    fn step_past(&self, position: u64) {
        let _ =
            self.0.compare_exchange(position, position.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// What a writer's attempt found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteAttempt {
    /// Position `p` is ours: fill node `p % N`, then [`Ring::publish`] or [`Ring::abandon`].
    Claimed(u64),
    /// The node at the write cursor still holds an earlier lap (`index`, the state seen).
    Full(usize, SlotState),
}

/// What a reader's attempt found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadAttempt {
    /// Position `p` is ours: consume node `p % N`, then [`Ring::release`]. `lost` when its
    /// writer died before publishing: there is no message, only the report.
    Claimed { position: u64, lost: bool },
    /// Nothing is published at the read cursor (`index`, the state seen): empty, or its
    /// writer is still filling it.
    Empty(usize, SlotState),
}

/// Who a recovery freed a node from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// A writer died holding the node: it is now published as lost.
    Writer,
    /// A reader died holding the node: it is free for the next lap.
    Reader,
}

/// The protocol over one ring's cursors and node states.
pub(crate) struct Ring<'a> {
    pub(crate) write: &'a Cursor,
    pub(crate) read: &'a Cursor,
    pub(crate) slots: &'a [Slot],
}

impl Ring<'_> {
    fn locate(&self, position: u64) -> (&Slot, usize, u64) {
        let n = self.slots.len() as u64;
        let index = (position % n) as usize;
        (&self.slots[index], index, position / n)
    }

    /// Cursor steps one attempt may help with before it gives up (a sane ring needs at most
    /// one per concurrent claimer; a corrupted one could ask for any number).
    fn step_budget(&self) -> usize {
        self.slots.len() * 2 + 64
    }

    /// Tries to claim the position at the write cursor for process `me`.
    pub(crate) fn try_claim_write(&self, me: u32) -> WriteAttempt {
        let mut budget = self.step_budget();
        loop {
            let position = self.write.0.load(Ordering::Relaxed);
            let (slot, index, lap) = self.locate(position);
            let seen = SlotState(slot.state.load(Ordering::Relaxed));
            let ahead = seen.laps_ahead_of(lap);
            if ahead == 0 && seen.phase() == Phase::Free {
                let mine = SlotState::new(lap, Phase::Writing, me);
                // Acquire: partner of the Release in `release` (the last reader of this node
                // is done with its bytes before we overwrite them).
                if slot.state.compare_exchange(seen.0, mine.0, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                    self.write.step_past(position);
                    return WriteAttempt::Claimed(position);
                }
            } else if ahead >= 0 {
                // Claimed already; its claimer has not moved the cursor yet: help.
                self.write.step_past(position);
            } else {
                return WriteAttempt::Full(index, seen);
            }
            budget -= 1;
            if budget == 0 {
                return WriteAttempt::Full(index, seen);
            }
        }
    }

    /// Publishes the message of `len` bytes now in position `position`'s node.
    /// Returns `false` if the node was taken from us (recovered by a peer that believed this
    /// process dead, or overwritten by a hostile one): the message is then lost.
    pub(crate) fn publish(&self, position: u64, me: u32, len: u32) -> bool {
        let (slot, _, lap) = self.locate(position);
        slot.len.store(len, Ordering::Relaxed);
        let claimed = SlotState::new(lap, Phase::Writing, me);
        let published = SlotState::new(lap, Phase::Published, me);
        // Release: partner of the reader's Acquire claim (the bytes and the length are seen).
        slot.state.compare_exchange(claimed.0, published.0, Ordering::Release, Ordering::Relaxed).is_ok()
    }

    /// Gives up a claimed position without a message (the filler failed or panicked): it is
    /// published as lost, and its reader reports it.
    pub(crate) fn abandon(&self, position: u64, me: u32) {
        let (slot, _, lap) = self.locate(position);
        let claimed = SlotState::new(lap, Phase::Writing, me);
        let lost = SlotState::new(lap, Phase::Published, 0);
        // Release: partner of the reader's Acquire claim, like a publish.
        let _ = slot.state.compare_exchange(claimed.0, lost.0, Ordering::Release, Ordering::Relaxed);
    }

    /// Tries to claim the position at the read cursor for process `me`.
    pub(crate) fn try_claim_read(&self, me: u32) -> ReadAttempt {
        let mut budget = self.step_budget();
        loop {
            let position = self.read.0.load(Ordering::Relaxed);
            let (slot, index, lap) = self.locate(position);
            let seen = SlotState(slot.state.load(Ordering::Relaxed));
            let ahead = seen.laps_ahead_of(lap);
            if ahead == 0 && seen.phase() == Phase::Published {
                let mine = SlotState::new(lap, Phase::Reading, me);
                // Acquire: partner of the writer's Release publish (the bytes are complete).
                if slot.state.compare_exchange(seen.0, mine.0, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                    self.read.step_past(position);
                    return ReadAttempt::Claimed { position, lost: seen.pid() == 0 };
                }
            } else if ahead > 0 || (ahead == 0 && seen.phase() == Phase::Reading) {
                // Claimed by another reader that has not moved the cursor yet: help.
                self.read.step_past(position);
            } else {
                return ReadAttempt::Empty(index, seen);
            }
            budget -= 1;
            if budget == 0 {
                return ReadAttempt::Empty(index, seen);
            }
        }
    }

    /// The length the writer recorded for `position` (read after claiming it; unvalidated).
    pub(crate) fn len(&self, position: u64) -> u32 {
        // Relaxed: ordered by the Acquire claim, which saw the writer's Release publish.
        self.locate(position).0.len.load(Ordering::Relaxed)
    }

    /// Hands the node of a consumed `position` back to the writers of the next lap.
    pub(crate) fn release(&self, position: u64, me: u32) {
        let (slot, _, lap) = self.locate(position);
        let claimed = SlotState::new(lap, Phase::Reading, me);
        let free = SlotState::new(lap + 1, Phase::Free, 0);
        // Release: partner of the next writer's Acquire claim (our reads come first).
        let _ = slot.state.compare_exchange(claimed.0, free.0, Ordering::Release, Ordering::Relaxed);
    }

    /// Recovers node `index` if it still holds `seen` and `seen`'s owner is gone
    /// (`alive(pid)` false; an unknown owner, pid 0, is never recovered).
    pub(crate) fn recover(
        &self,
        index: usize,
        seen: SlotState,
        alive: impl Fn(u32) -> bool,
    ) -> Option<Recovered> {
        let slot = self.slots.get(index)?;
        let (next, who) = match seen.phase() {
            Phase::Writing => (SlotState::new(seen.lap(), Phase::Published, 0), Recovered::Writer),
            Phase::Reading => (SlotState::new(seen.lap() + 1, Phase::Free, 0), Recovered::Reader),
            Phase::Free | Phase::Published => return None,
        };
        if seen.pid() == 0 || u64::from(seen.pid()) == UNKNOWN_PID || alive(seen.pid()) {
            return None;
        }
        // AcqRel: takes the node over as its dead owner left it (Acquire) and hands it on to
        // the next claimer like a publish or a release (Release).
        slot.state.compare_exchange(seen.0, next.0, Ordering::AcqRel, Ordering::Relaxed).ok().map(|_| who)
    }
}

/// The protocol under loom: every interleaving and weak-memory outcome of small rings. Node
/// contents are loom cells, so a missing Acquire/Release pair shows up as a data race.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;
    use std::vec;
    use std::vec::Vec;

    /// Every schedule with at most 3 preemptions (the bound the stack's models use: enough
    /// for the races here, which need two).
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    struct Model {
        write: Cursor,
        read: Cursor,
        slots: Vec<Slot>,
        data: Vec<UnsafeCell<u64>>,
    }

    impl Model {
        fn new(nodes: usize) -> Arc<Self> {
            Arc::new(Model {
                write: Cursor::new(),
                read: Cursor::new(),
                slots: (0..nodes).map(|_| Slot::new()).collect(),
                data: (0..nodes).map(|_| UnsafeCell::new(0)).collect(),
            })
        }

        fn ring(&self) -> Ring<'_> {
            Ring { write: &self.write, read: &self.read, slots: &self.slots }
        }

        fn cell(&self, position: u64) -> &UnsafeCell<u64> {
            &self.data[(position % self.data.len() as u64) as usize]
        }

        /// Writes `value` as process `me`, spinning while full.
        fn send(&self, me: u32, value: u64) -> u64 {
            loop {
                match self.ring().try_claim_write(me) {
                    WriteAttempt::Claimed(position) => {
                        self.cell(position).with_mut(|p| {
                            // SAFETY: the claimed node is ours until published.
                            unsafe { *p = value }
                        });
                        assert!(self.ring().publish(position, me, 8));
                        return position;
                    }
                    WriteAttempt::Full(..) => thread::yield_now(),
                }
            }
        }

        /// Reads as process `me`, spinning while empty; `None` for a lost message.
        fn receive(&self, me: u32) -> (u64, Option<u64>) {
            loop {
                match self.ring().try_claim_read(me) {
                    ReadAttempt::Claimed { position, lost } => {
                        let value = (!lost).then(|| {
                            self.cell(position).with(|p| {
                                // SAFETY: the claimed node is ours until released.
                                unsafe { *p }
                            })
                        });
                        if !lost {
                            assert_eq!(self.ring().len(position), 8);
                        }
                        self.ring().release(position, me);
                        return (position, value);
                    }
                    ReadAttempt::Empty(..) => thread::yield_now(),
                }
            }
        }
    }

    #[test]
    fn one_writer_one_reader_wraps_in_order() {
        model(|| {
            let ring = Model::new(2);
            let writer = {
                let ring = ring.clone();
                thread::spawn(move || {
                    for value in 10..13 {
                        ring.send(1, value);
                    }
                })
            };
            for (expected_position, value) in (10..13).enumerate() {
                assert_eq!(ring.receive(2), (expected_position as u64, Some(value)));
            }
            writer.join().unwrap();
        });
    }

    #[test]
    fn two_writers_each_message_once_in_claim_order() {
        model(|| {
            let ring = Model::new(2);
            let writers: Vec<_> = [100u64, 200]
                .into_iter()
                .map(|value| {
                    let ring = ring.clone();
                    thread::spawn(move || (ring.send(1, value), value))
                })
                .collect();
            let first = ring.receive(2);
            let second = ring.receive(2);
            let sent: Vec<(u64, u64)> = writers.into_iter().map(|w| w.join().unwrap()).collect();
            assert_eq!((first.0, second.0), (0, 1), "positions come out in order");
            for (position, value) in sent {
                let got = if position == 0 { first.1 } else { second.1 };
                assert_eq!(got, Some(value), "the message claimed at {position}");
            }
        });
    }

    /// Two readers race for two published messages (claims, and helping each other's cursor
    /// steps), while a writer reuses the first node freed.
    #[test]
    fn two_readers_split_the_messages() {
        model(|| {
            let ring = Model::new(2);
            ring.send(1, 7);
            ring.send(1, 8);
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let ring = ring.clone();
                    thread::spawn(move || ring.receive(2))
                })
                .collect();
            ring.send(1, 9);
            let mut got: Vec<(u64, Option<u64>)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
            got.sort();
            assert_eq!(got, vec![(0, Some(7)), (1, Some(8))]);
            assert_eq!(ring.receive(2), (2, Some(9)));
        });
    }

    /// A writer (pid 7) claimed position 0 and died. A live writer and a reader race; the
    /// reader, finding the dead claim, recovers it and reports position 0 lost, then gets
    /// the live writer's message.
    #[test]
    fn dead_writer_is_recovered_and_reported() {
        const DEAD: u32 = 7;
        model(|| {
            let ring = Model::new(2);
            assert_eq!(ring.ring().try_claim_write(DEAD), WriteAttempt::Claimed(0));
            let writer = {
                let ring = ring.clone();
                thread::spawn(move || ring.send(1, 42))
            };
            let first = loop {
                match ring.ring().try_claim_read(2) {
                    ReadAttempt::Claimed { position, lost } => {
                        ring.ring().release(position, 2);
                        break (position, lost);
                    }
                    ReadAttempt::Empty(index, seen) => {
                        if seen.phase() == Phase::Writing {
                            assert_eq!(seen.pid(), DEAD);
                            ring.ring().recover(index, seen, |pid| pid != DEAD);
                        }
                        thread::yield_now();
                    }
                }
            };
            assert_eq!(first, (0, true), "the dead writer's position is reported lost");
            assert_eq!(ring.receive(2), (1, Some(42)));
            assert_eq!(writer.join().unwrap(), 1);
        });
    }

    /// A reader (pid 9) claimed position 0 of a 2-node ring and died. A writer that needs the
    /// node again recovers it, and a live reader gets every later message.
    #[test]
    fn dead_reader_is_recovered() {
        const DEAD: u32 = 9;
        model(|| {
            let ring = Model::new(2);
            ring.send(1, 1);
            assert!(matches!(
                ring.ring().try_claim_read(DEAD),
                ReadAttempt::Claimed { position: 0, lost: false }
            ));
            let reader = {
                let ring = ring.clone();
                thread::spawn(move || (ring.receive(2), ring.receive(2)))
            };
            ring.send(1, 2);
            loop {
                match ring.ring().try_claim_write(1) {
                    WriteAttempt::Claimed(position) => {
                        ring.cell(position).with_mut(|p| {
                            // SAFETY: the claimed node is ours until published.
                            unsafe { *p = 3 }
                        });
                        assert!(ring.ring().publish(position, 1, 8));
                        break;
                    }
                    WriteAttempt::Full(index, seen) => {
                        ring.ring().recover(index, seen, |pid| pid != DEAD);
                        thread::yield_now();
                    }
                }
            }
            assert_eq!(reader.join().unwrap(), ((1, Some(2)), (2, Some(3))));
        });
    }

    /// A writer gives its claim up (its filler failed) while a reader waits: the reader gets
    /// the position reported lost, and the ring goes on.
    #[test]
    fn abandoned_claim_is_reported_lost() {
        model(|| {
            let ring = Model::new(2);
            let reader = {
                let ring = ring.clone();
                thread::spawn(move || (ring.receive(2), ring.receive(2)))
            };
            let WriteAttempt::Claimed(position) = ring.ring().try_claim_write(1) else {
                panic!("ring is empty")
            };
            ring.ring().abandon(position, 1);
            ring.send(1, 5);
            assert_eq!(reader.join().unwrap(), ((0, None), (1, Some(5))));
            assert_eq!((ring.write.position(), ring.read.position()), (2, 2));
        });
    }
}

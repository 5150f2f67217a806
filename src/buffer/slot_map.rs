//! The owner's map of its storage: which slot holds which bytes, and where the next frame
//! goes. Plain bookkeeping, no `unsafe` and no atomics: the pool feeds it the slots its
//! [`SlotWord`](super::ownership::SlotWord) says came back.
//!
//! ## Zones
//! Frames are laid out in at most two *zones*, each a stack of slots in address order:
//!
//! ```text
//!  0                                                              capacity
//!  | front zone ->        |          | back zone ->             |         |
//!  [ a ][ 9 ]              [ 3 ][ 4 ][ 5 ][ 6 ]      [ b ][ c ]
//! ```
//!
//! * **Back mode** writes after the back zone's last slot, up to the end of the storage.
//! * **Front mode** writes after the front zone's last slot, up to the back zone's first.
//! * **Alloc mode** writes to the heap: neither zone has room, or every slot is out.
//!
//! A zone gives bytes back only from its ends: a released slot in the middle is a *hole*
//! that stays until its neighbours towards an end are released too (buffer_sv2's "can only
//! be fragmented between the front and back and between back and end"). When the back zone
//! empties, the front zone becomes the back zone; when both are empty, frames start again at
//! offset 0 (the seed's "reset").
//!
//! ## Slot numbers
//! Back mode gives out the lowest free slot, front mode the highest, so the seed's diagrams
//! (slot `i` is character `i`) come out as drawn: after `12345678` with `1` and `2` released,
//! front mode writes `9` into slot 2 and `a` into slot 1 (`a9345678`).
//!
//! Invariants ([`SlotMap::check`]): every configured slot is in exactly one of *free*, the
//! back zone or the front zone; a zone's slots are in address order without overlap; the
//! front zone lies below the back zone's first slot; *released* slots are in a zone; the
//! back zone is empty only if the front zone is.

use core::fmt;

/// The most slots a pool can have: one bit each in a `u64`.
pub const MAX_SLOTS: usize = 64;

/// Where a [`BufferPool`](super::BufferPool) is writing frames (see the
/// [module docs](super#modes)). Read-only: the pool decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    /// After the last slot of the back zone, towards the end of the storage.
    Back,
    /// At the start of the storage, below the back zone's oldest live slot.
    Front,
    /// On the heap (served by [`PinAlloc`](crate::PinAlloc) when `std` is on).
    Alloc,
}

/// A zone's slots in address order: a ring, since the back zone also loses slots at its
/// bottom while gaining them at its top.
#[derive(Clone, Copy)]
struct Zone {
    ring: [u8; MAX_SLOTS],
    first: usize,
    len: usize,
}

impl Zone {
    const EMPTY: Zone = Zone { ring: [0; MAX_SLOTS], first: 0, len: 0 };

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn get(&self, i: usize) -> usize {
        usize::from(self.ring[(self.first + i) % MAX_SLOTS])
    }

    fn first_slot(&self) -> Option<usize> {
        (self.len > 0).then(|| self.get(0))
    }

    fn last_slot(&self) -> Option<usize> {
        (self.len > 0).then(|| self.get(self.len - 1))
    }

    fn push(&mut self, slot: usize) {
        debug_assert!(self.len < MAX_SLOTS && slot < MAX_SLOTS);
        self.ring[(self.first + self.len) % MAX_SLOTS] = slot as u8;
        self.len += 1;
    }

    fn pop_first(&mut self) {
        self.first = (self.first + 1) % MAX_SLOTS;
        self.len -= 1;
    }

    fn pop_last(&mut self) {
        self.len -= 1;
    }

    fn clear(&mut self) {
        (self.first, self.len) = (0, 0);
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).map(|i| self.get(i))
    }
}

/// Where the slow path put the frame being written: at `start`, growing up to `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    pub(crate) start: usize,
    pub(crate) limit: usize,
}

impl Placement {
    fn room(&self) -> usize {
        self.limit - self.start
    }
}

/// The owner's bookkeeping. See the module docs for the invariants.
#[derive(Clone)]
pub(crate) struct SlotMap {
    capacity: usize,
    /// One bit per configured slot.
    all: u64,
    /// Slots in no zone: the ones that may be given out.
    free: u64,
    /// Slots whose slices released them, still in a zone until trimmed from an end.
    released: u64,
    /// `[start, end)` of each slot in a zone.
    spans: [[usize; 2]; MAX_SLOTS],
    back: Zone,
    front: Zone,
    mode: PoolMode,
}

/// What a slot holds: see [`BufferPool::slot_state`](super::BufferPool::slot_state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Not in use.
    Free,
    /// A live slice owns it.
    Live,
    /// Its slice was dropped; its bytes come back when the pool next runs short, once the
    /// slots between it and an end of its zone are released too.
    Released,
}

impl SlotMap {
    /// `slots` in `1..=MAX_SLOTS` (checked by the pool).
    pub(crate) fn new(capacity: usize, slots: usize) -> Self {
        debug_assert!((1..=MAX_SLOTS).contains(&slots));
        let all = if slots == MAX_SLOTS { u64::MAX } else { (1u64 << slots) - 1 };
        SlotMap {
            capacity,
            all,
            free: all,
            released: 0,
            spans: [[0; 2]; MAX_SLOTS],
            back: Zone::EMPTY,
            front: Zone::EMPTY,
            mode: PoolMode::Back,
        }
    }

    pub(crate) fn mode(&self) -> PoolMode {
        self.mode
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// One bit per configured slot.
    pub(crate) fn slots(&self) -> u64 {
        self.all
    }

    pub(crate) fn slot_count(&self) -> usize {
        self.all.count_ones() as usize
    }

    /// Slots given out whose release the owner has not taken back: what the slot word can
    /// still receive.
    pub(crate) fn outstanding(&self) -> u64 {
        self.all & !self.free & !self.released
    }

    pub(crate) fn has_free_slot(&self) -> bool {
        self.free != 0
    }

    /// Records `[start, end)`, the frame just written in the current zone, as a slot, and
    /// returns the slot's number. The caller placed the frame (mode is not Alloc) and checked
    /// there is a free slot.
    #[inline]
    pub(crate) fn commit(&mut self, start: usize, end: usize) -> usize {
        debug_assert!(self.free != 0 && start < end && end <= self.capacity);
        let (slot, zone) = match self.mode {
            PoolMode::Front => (63 - self.free.leading_zeros() as usize, &mut self.front),
            _ => (self.free.trailing_zeros() as usize, &mut self.back),
        };
        self.free &= !(1 << slot);
        self.spans[slot] = [start, end];
        zone.push(slot);
        slot
    }

    /// Takes back slots whose slices released them (a `SlotWord::reclaim` result).
    pub(crate) fn take_back(&mut self, reclaimed: u64) {
        #[cfg(feature = "debug")]
        assert!(
            reclaimed & !self.outstanding() == 0,
            "slots {:#x} released without being out (outstanding {:#x})",
            reclaimed,
            self.outstanding()
        );
        self.released |= reclaimed;
    }

    /// Gives the bytes of released slots at the zones' ends back, and renames the front zone
    /// to back when the back zone empties.
    fn trim(&mut self) {
        if self.outstanding() == 0 {
            // Every slot given out came back (a codec that drops its frames before the slots
            // run out): what the loops below would reach one slot at a time.
            (self.free, self.released) = (self.all, 0);
            self.back.clear();
            self.front.clear();
            return;
        }
        for zone in [&mut self.back, &mut self.front] {
            while let Some(slot) = zone.first_slot().filter(|&s| self.released & (1 << s) != 0) {
                zone.pop_first();
                self.released &= !(1 << slot);
                self.free |= 1 << slot;
            }
            while let Some(slot) = zone.last_slot().filter(|&s| self.released & (1 << s) != 0) {
                zone.pop_last();
                self.released &= !(1 << slot);
                self.free |= 1 << slot;
            }
        }
        if self.back.is_empty() && !self.front.is_empty() {
            self.back = core::mem::replace(&mut self.front, Zone::EMPTY);
        }
    }

    fn back_room(&self) -> Placement {
        let start = self.back.last_slot().map_or(0, |s| self.spans[s][1]);
        Placement { start, limit: self.capacity }
    }

    fn front_room(&self) -> Option<Placement> {
        let limit = self.spans[self.back.first_slot()?][0];
        let start = self.front.last_slot().map_or(0, |s| self.spans[s][1]);
        Some(Placement { start, limit })
    }

    /// The slow path's decision: where a frame of `needed` bytes goes. Trims, then tries the
    /// current zone and the other one; `None` means no slot or no room, and the mode is now
    /// Alloc. From Alloc, the back zone is tried first.
    pub(crate) fn place(&mut self, needed: usize) -> Option<Placement> {
        self.trim();
        let chosen = if self.free == 0 {
            None
        } else {
            let back = Some((PoolMode::Back, self.back_room()));
            let front = self.front_room().map(|p| (PoolMode::Front, p));
            let order = if self.mode == PoolMode::Front { [front, back] } else { [back, front] };
            order.into_iter().flatten().find(|(_, p)| p.room() >= needed)
        };
        match chosen {
            Some((mode, placement)) => {
                self.mode = mode;
                Some(placement)
            }
            None => {
                self.mode = PoolMode::Alloc;
                None
            }
        }
    }

    /// What slot `slot` holds now.
    pub(crate) fn state(&self, slot: usize) -> SlotState {
        let bit = 1u64 << slot;
        if self.free & bit != 0 || self.all & bit == 0 {
            SlotState::Free
        } else if self.released & bit != 0 {
            SlotState::Released
        } else {
            SlotState::Live
        }
    }

    /// Checks the invariants in the module docs.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        let mut seen = self.free;
        if self.free & !self.all != 0 {
            return Err("a free slot beyond the configured count");
        }
        for zone in [&self.back, &self.front] {
            let mut end = 0;
            for slot in zone.iter() {
                let bit = 1u64 << slot;
                if seen & bit != 0 || self.all & bit == 0 {
                    return Err("a slot is in two places, or is not configured");
                }
                seen |= bit;
                let [start, stop] = self.spans[slot];
                if start < end || start >= stop || stop > self.capacity {
                    return Err("a zone's slots overlap, are out of order or out of bounds");
                }
                end = stop;
            }
        }
        if seen != self.all {
            return Err("a slot is neither free nor in a zone");
        }
        if self.released & (self.free | !self.all) != 0 {
            return Err("a released slot is not in a zone");
        }
        match (self.front.last_slot(), self.back.first_slot()) {
            (Some(_), None) => return Err("the front zone is in use while the back zone is empty"),
            (Some(f), Some(b)) if self.spans[f][1] > self.spans[b][0] => {
                return Err("the front zone reaches into the back zone");
            }
            _ => {}
        }
        Ok(())
    }
}

impl fmt::Debug for SlotMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spans = |zone: &Zone| zone.iter().map(|s| (s, self.spans[s])).collect::<alloc::vec::Vec<_>>();
        f.debug_struct("SlotMap")
            .field("mode", &self.mode)
            .field("capacity", &self.capacity)
            .field("free", &format_args!("{:#x}", self.free))
            .field("released", &format_args!("{:#x}", self.released))
            .field("back", &spans(&self.back))
            .field("front", &spans(&self.front))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills slots of `len` bytes: places, commits, returns the slot numbers.
    fn fill(map: &mut SlotMap, frames: usize, len: usize) -> alloc::vec::Vec<usize> {
        (0..frames)
            .map(|_| {
                let p = map.place(len).expect("room");
                map.commit(p.start, p.start + len)
            })
            .collect()
    }

    #[test]
    fn the_back_zone_fills_then_alloc_mode_then_a_reset() {
        let mut map = SlotMap::new(40, 8);
        assert_eq!(fill(&mut map, 8, 5), [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(map.place(5), None);
        assert_eq!(map.mode(), PoolMode::Alloc);
        map.take_back(map.outstanding());
        assert_eq!(map.place(5), Some(Placement { start: 0, limit: 40 }));
        assert_eq!(map.mode(), PoolMode::Back);
        map.check().unwrap();
    }

    #[test]
    fn released_head_moves_to_the_front_and_released_tail_back() {
        let mut map = SlotMap::new(40, 8);
        fill(&mut map, 8, 5);
        map.take_back(0b11);
        assert_eq!(map.place(5), Some(Placement { start: 0, limit: 10 }));
        assert_eq!(map.mode(), PoolMode::Front);
        assert_eq!(map.commit(0, 5), 1);
        let p = map.place(5).unwrap();
        assert_eq!(map.commit(p.start, p.start + 5), 0);
        map.take_back(0b1100_0000);
        assert_eq!(map.place(5), Some(Placement { start: 30, limit: 40 }));
        assert_eq!(map.mode(), PoolMode::Back);
        map.check().unwrap();
    }

    #[test]
    fn a_hole_waits_for_its_neighbours() {
        let mut map = SlotMap::new(40, 8);
        fill(&mut map, 3, 5);
        map.take_back(0b010);
        assert_eq!(map.state(1), SlotState::Released);
        map.place(5).unwrap();
        assert_eq!(map.state(1), SlotState::Released, "slot 1 is between two live slots");
        map.take_back(0b100);
        map.place(5).unwrap();
        assert_eq!((map.state(1), map.state(2)), (SlotState::Free, SlotState::Free));
        map.check().unwrap();
    }
}

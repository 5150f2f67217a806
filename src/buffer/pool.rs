//! `BufferPool`: frames written into one preallocated region, taken as slices that give
//! their slot back on drop, from any thread.
//!
//! The hot path is the write: [`Buffer::get_writable`] compares the length with the bytes
//! left before the frame must move, then bumps a cursor and counts those bytes down.
//! Everything else (running out of room or slots, switching modes, moving a partly written
//! frame, heap growth) is the slow path, [`Ledger::make_room`]. Taking a frame records its
//! slot in the [`SlotMap`] and costs no atomic operation; the pool takes released slots
//! back only when it runs short (one `swap`).
//!
//! **Why the bookkeeping is boxed.** A codec calls `get_writable` in a loop. If the slow path
//! received the pool itself, the pool's address would escape into an opaque call inside that
//! loop, and the compiler would have to reload and store the cursor through memory on every
//! write. The pool is therefore the write loop's state (the cursor and the bytes left) plus
//! a box, the [`Ledger`], and only the ledger's address reaches the slow path.
//!
//! **Why the slow path cannot unwind.** That is not enough if the slow path may unwind: the
//! compiler then stores the cursor back to the pool on every write, in case a landing pad
//! reads the pool while the call unwinds. [`Ledger::make_room`] is therefore `extern "C"`,
//! which Rust compiles as `nounwind` (a panic inside aborts), and what can fail is checked
//! before the call, by [`frame_length`], whose panic leaves the loop. Whatever still panics
//! inside (out of memory without std's abort, the `debug` feature's checks, debug
//! assertions) aborts, after printing its message. A write loop over a pool that is a local
//! of its function then keeps the frame state in registers (LLVM does not promote a field
//! of memory it cannot prove writable and unobserved, such as a pool behind `&mut`, to a
//! register across a loop; there each write also stores the cursor: about 20% slower in the
//! single-thread benchmark, measured).

use alloc::boxed::Box;
use core::ptr::NonNull;

use super::ownership::SlotWord;
use super::slot_map::{MAX_SLOTS, PoolMode, SlotMap, SlotState};
use super::spill::Spills;
use super::storage::{HeapBytes, PoolSlot, Storage, heap};
use super::{Buffer, PoolError, Slice, Write, WriteError};

/// The default number of slots: buffer_sv2's fixed count.
pub const DEFAULT_SLOTS: usize = 8;

/// A pool of frame memory: see the [module docs](super).
///
/// Invariant (the frame): `frame <= cursor <= cursor + left`, within one allocation (or
/// `frame == cursor` dangling and `left == 0`, `room == 0`, after an alloc-mode frame was
/// taken), and `[frame, cursor + left)` is initialised memory that no slice owns: in pool modes bytes
/// `[frame_start, frame_start + room)` of the storage, inside the placement the slot map
/// chose (or `room == 0`); in alloc mode the initialised bytes of the ledger's `heap`. The
/// frame is `[frame, cursor)`, `written` bytes long; `room` is `written + left`. In pool
/// modes `room > 0` only if a slot is free, so a frame can always be committed.
///
/// A count of bytes left rather than a limit pointer because the write loop then needs the
/// fewest instructions: a write compares `len` with `left`, subtracts it and bumps `cursor`
/// (against a limit it would also compute `limit - cursor` every time). The frame's start
/// lives in the ledger: the loop does not read it, and a value the loop keeps alive for its
/// slow path takes one of the six registers a call preserves; with the start held here the
/// compiler ran out of them and reloaded the caller's own loop state from the stack on
/// every write (12% of the single-thread benchmark's time, measured).
pub struct BufferPool {
    /// End of the bytes written so far: where the next write goes.
    cursor: NonNull<u8>,
    /// Bytes after `cursor` the frame may still grow into where it is.
    left: usize,
    ledger: Box<Ledger>,
}

/// Where the frame is after [`Ledger::make_room`], and how far it may grow there.
#[repr(C)]
struct Room {
    frame: NonNull<u8>,
    room: usize,
}

/// The length of a frame of `written` bytes after `len` more. Panics if that is more than
/// an allocation can hold.
#[inline]
fn frame_length(written: usize, len: usize) -> usize {
    written
        .checked_add(len)
        .filter(|&n| n <= isize::MAX as usize)
        .expect("a frame longer than isize::MAX bytes")
}

/// Everything but the write loop's state, out of line (see the module docs).
struct Ledger {
    /// Start of the frame being written (the pool's invariant calls it `frame`).
    frame: NonNull<u8>,
    storage: Storage,
    /// Offset of the frame in the storage's bytes (pool modes).
    frame_start: usize,
    map: SlotMap,
    spills: Spills,
    /// Alloc mode's frame; its length is what is initialised, the frame its first
    /// `written` bytes. A spill buffer while `spills` is writing one.
    heap: HeapBytes,
    /// Length of the last alloc-mode frame: the next one starts with that much room.
    heap_hint: usize,
    /// `danger_set_start`'s offset for `AsRef`/`AsMut`.
    start: usize,
}

// SAFETY: the pool owns its bookkeeping, the frame being written and its heap vector (from
// `PinAlloc`, which is `Sync` and frees blocks from any thread); what it shares with slices
// on other threads is the slot word (atomics, see `ownership`).
unsafe impl Send for BufferPool {}
// SAFETY: `&BufferPool` only reads the pool's own frame and bookkeeping.
unsafe impl Sync for BufferPool {}

impl BufferPool {
    /// A pool of `capacity` bytes and [`DEFAULT_SLOTS`] slots. Panics if the capacity does not
    /// fit in an allocation, and calls `handle_alloc_error` when out of memory, as
    /// `Vec::with_capacity` does; [`BufferPool::try_new`] returns the error instead.
    pub fn new(capacity: usize) -> Self {
        match Self::try_new(capacity) {
            Ok(pool) => pool,
            Err(PoolError::OutOfMemory { bytes }) => alloc::alloc::handle_alloc_error(
                core::alloc::Layout::from_size_align(bytes, 64).unwrap_or(core::alloc::Layout::new::<u8>()),
            ),
            Err(error) => panic!("{error}"),
        }
    }

    /// A pool of `capacity` bytes and [`DEFAULT_SLOTS`] slots.
    pub fn try_new(capacity: usize) -> Result<Self, PoolError> {
        Self::with_slots(capacity, DEFAULT_SLOTS)
    }

    /// A pool of `capacity` bytes and `slots` slots (1 to 64): at most `slots` pool-backed
    /// slices live at once before frames go to the heap.
    pub fn with_slots(capacity: usize, slots: usize) -> Result<Self, PoolError> {
        if !(1..=MAX_SLOTS).contains(&slots) {
            return Err(PoolError::InvalidSlotCount { slots });
        }
        let storage = Storage::allocate(capacity)?;
        let frame = storage.bytes();
        let map = SlotMap::new(capacity, slots);
        let ledger = Box::new(Ledger {
            frame,
            storage,
            frame_start: 0,
            spills: Spills::new(map.slots(), capacity),
            map,
            heap: HeapBytes::new_in(heap()),
            heap_hint: 0,
            start: 0,
        });
        Ok(BufferPool { cursor: frame, left: capacity, ledger })
    }

    /// Bytes of preallocated storage.
    pub fn capacity(&self) -> usize {
        self.ledger.map.capacity()
    }

    /// Number of slots.
    pub fn slot_count(&self) -> usize {
        self.ledger.map.slot_count()
    }

    /// Where frames are being written.
    pub fn mode(&self) -> PoolMode {
        self.ledger.map.mode()
    }

    /// Whether frames are written after the back zone (see [`PoolMode::Back`]).
    pub fn is_back_mode(&self) -> bool {
        self.mode() == PoolMode::Back
    }

    /// Whether frames are written in the front zone (see [`PoolMode::Front`]).
    pub fn is_front_mode(&self) -> bool {
        self.mode() == PoolMode::Front
    }

    /// Whether frames are written to the heap (see [`PoolMode::Alloc`]).
    pub fn is_alloc_mode(&self) -> bool {
        self.mode() == PoolMode::Alloc
    }

    /// What slot `slot` holds now, counting releases the pool has not taken back yet.
    pub fn slot_state(&self, slot: usize) -> SlotState {
        if slot >= self.slot_count() {
            return SlotState::Free;
        }
        match self.ledger.map.state(slot) {
            SlotState::Live if self.ledger.word().peek() & (1 << slot) != 0 => SlotState::Released,
            state => state,
        }
    }

    /// The slots drawn as in the [module docs](super#modes), for logs and examples: one
    /// character per slot (`#` live, `.` released but its bytes not yet reusable, `-` free),
    /// then the mode.
    pub fn diagram(&self) -> SlotDiagram<'_> {
        SlotDiagram(self)
    }

    /// Checks the pool's bookkeeping: the invariants of the slot map and of the frame being
    /// written. For tests and fuzzing (the `debug` feature runs it after every slow path
    /// and every taken frame).
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let ledger = &self.ledger;
        if ledger.frame > self.cursor || self.cursor.addr().get().checked_add(self.left).is_none() {
            return Err("the frame starts after its cursor, or its room overflows");
        }
        let placed_right = match ledger.map.mode() {
            PoolMode::Alloc => {
                self.room() == 0
                    || (ledger.frame.as_ptr().cast_const() == ledger.heap.as_ptr()
                        && self.room() == ledger.heap.len())
            }
            _ => ledger.frame == ledger.byte(ledger.frame_start),
        };
        if !placed_right {
            return Err("the frame is not where the ledger says");
        }
        ledger.check(self.written(), self.room())
    }

    /// Length of the frame written so far.
    #[inline]
    fn written(&self) -> usize {
        self.cursor.addr().get() - self.ledger.frame.addr().get()
    }

    /// How long the frame may grow where it is.
    #[inline]
    fn room(&self) -> usize {
        self.written() + self.left
    }

    /// Moves the frame to `frame`, with `written` bytes written and room for `room`.
    ///
    /// # Safety
    /// `written <= room`, and `[frame, frame + room)` is memory the frame invariant allows.
    #[inline]
    unsafe fn set_frame(&mut self, frame: NonNull<u8>, written: usize, room: usize) {
        self.ledger.frame = frame;
        // SAFETY: `written <= room` and `frame + room` is within (or one past) the frame's
        // allocation (the caller's contract).
        self.cursor = unsafe { frame.add(written) };
        self.left = room - written;
    }

    /// The frame written so far.
    fn frame(&self) -> &[u8] {
        // SAFETY: `[frame, cursor)` is initialised and unowned (invariant).
        unsafe { core::slice::from_raw_parts(self.ledger.frame.as_ptr(), self.written()) }
    }

    fn frame_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `frame`; `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ledger.frame.as_ptr(), self.written()) }
    }
}

impl Ledger {
    #[inline]
    fn word(&self) -> &SlotWord {
        // SAFETY: the pool is alive, so the storage is (the protocol frees it only after the
        // pool's `orphan`, in `Drop`).
        unsafe { self.storage.word() }
    }

    /// Slots and spill bits given out whose release the pool has not taken back.
    fn outstanding(&self) -> u64 {
        self.map.outstanding() | self.spills.out()
    }

    fn check(&self, written: usize, room: usize) -> Result<(), &'static str> {
        self.map.check()?;
        self.spills.check(self.map.slots())?;
        if written > room {
            return Err("the frame is longer than its room");
        }
        if self.map.mode() != PoolMode::Alloc && self.frame_start + room > self.map.capacity() {
            return Err("the frame's room runs past the storage");
        }
        Ok(())
    }

    #[cfg(feature = "debug")]
    fn debug_check(&self, written: usize, room: usize) {
        if let Err(broken) = self.check(written, room) {
            panic!("buffer pool invariant broken: {broken}: {:?}", self.map);
        }
    }

    #[cfg(not(feature = "debug"))]
    #[inline(always)]
    fn debug_check(&self, _written: usize, _room: usize) {}

    fn byte(&self, offset: usize) -> NonNull<u8> {
        debug_assert!(offset <= self.map.capacity());
        // SAFETY: offsets come from the slot map's placements, which lie within
        // `[0, capacity]` (its invariant): within the storage's bytes or one past their end.
        unsafe { self.storage.bytes().add(offset) }
    }

    /// The slow path of `get_writable`: finds room for the frame (`written`
    /// bytes so far) to grow to `needed` bytes (`written <= needed <= isize::MAX`, checked by
    /// [`frame_length`]), moving it if needed. Returns the frame's new start and room.
    ///
    /// `extern "C"` so that it cannot unwind (see the module docs): a panic in it aborts.
    #[cold]
    #[inline(never)]
    extern "C" fn make_room(&mut self, written: usize, needed: usize) -> Room {
        debug_assert!(written <= needed && needed <= isize::MAX as usize);
        let in_pool = self.map.mode() != PoolMode::Alloc;
        if in_pool || written == 0 {
            if self.word().any_released() {
                let reclaimed = self.word().reclaim();
                self.map.take_back(reclaimed & self.map.slots());
                self.spills.take_back(reclaimed & !self.map.slots());
            }
            if let Some(placement) = self.map.place(needed) {
                let mut frame = self.frame;
                if !in_pool || placement.start != self.frame_start {
                    let to = self.byte(placement.start);
                    // SAFETY: the frame's `written` bytes are initialised and unowned (frame
                    // invariant; from alloc mode `written == 0`), and the placement is free
                    // storage of at least `needed` bytes (slot map); `copy` allows overlap.
                    unsafe { core::ptr::copy(frame.as_ptr(), to.as_ptr(), written) };
                    frame = to;
                    self.frame_start = placement.start;
                }
                let room = placement.limit - placement.start;
                self.debug_check(written, room);
                return Room { frame, room };
            }
            // Alloc mode: a new frame goes to a spill buffer if one is idle.
            if !self.spills.is_writing()
                && let Some(index) = self.spills.take_idle()
            {
                // SAFETY: the pool is alive and bit `index` was idle: no slice holds it.
                self.heap = unsafe { self.storage.take_spill(index) };
                self.spills.unkeep(self.heap.capacity());
            }
        }
        if self.heap.len() < needed {
            if in_pool {
                self.heap.clear(); // stale bytes: nothing to copy when it grows
            }
            let grown = needed.max(self.heap_hint).max(2 * self.heap.len()).max(64).min(isize::MAX as usize);
            // Exactly: the doubling is ours, and the vector's own would overflow past isize::MAX.
            self.heap.reserve_exact(grown - self.heap.len());
            // All of the capacity: a spill buffer's length is its capacity.
            self.heap.resize(self.heap.capacity(), 0);
        }
        if in_pool {
            // SAFETY: the frame's first `written` bytes are initialised and unowned; the
            // heap vector is another allocation, at least `needed >= written` long.
            unsafe { core::ptr::copy_nonoverlapping(self.frame.as_ptr(), self.heap.as_mut_ptr(), written) };
        }
        let frame = NonNull::new(self.heap.as_mut_ptr()).expect("a vector's pointer is non-null");
        self.debug_check(written, self.heap.len());
        Room { frame, room: self.heap.len() }
    }

    /// Takes an alloc-mode frame of `written` bytes: the spill buffer it was written into,
    /// or the heap vector itself.
    #[cold]
    #[inline(never)]
    fn take_heap_frame(&mut self, written: usize) -> Slice {
        if written == 0 {
            return Slice::empty();
        }
        self.heap_hint = written;
        let mut bytes = core::mem::replace(&mut self.heap, HeapBytes::new_in(heap()));
        if let Some(index) = self.spills.give_out(bytes.capacity()) {
            debug_assert_eq!(bytes.len(), bytes.capacity());
            let mut bytes = core::mem::ManuallyDrop::new(bytes);
            let ptr = NonNull::new(bytes.as_mut_ptr()).expect("a vector's pointer is non-null");
            // SAFETY: the pool is alive; entry `index` was cleared when the buffer was taken
            // out, and bit `index` goes to the slice below. The buffer's length is its
            // capacity (`make_room` grows it to all of it), every byte initialised.
            unsafe { self.storage.put_spill(index, ptr.as_ptr(), bytes.capacity()) };
            // SAFETY: the frame's `written` bytes lie in that buffer, initialised, and the
            // pool writes there again only after the bit comes back; `index` < MAX_SLOTS.
            return unsafe { Slice::from_spill(ptr, written, PoolSlot::new(self.storage, index)) };
        }
        bytes.truncate(written);
        Slice::from_heap(bytes)
    }
}

impl Buffer for BufferPool {
    type Slice = Slice;

    #[inline]
    fn get_writable(&mut self, len: usize) -> &mut [u8] {
        if len > self.left {
            let written = self.written();
            // Checked here, before the pool changes, so that a panic leaves it as it was.
            let needed = frame_length(written, len);
            let room = self.ledger.make_room(written, needed);
            // SAFETY: `make_room` returns a frame holding the `written` bytes, with room for
            // `needed >= written`, in memory the frame invariant allows.
            unsafe { self.set_frame(room.frame, written, room.room) };
        }
        let at = self.cursor;
        // SAFETY: `len <= left` (checked, or made so by `make_room`): in bounds.
        self.cursor = unsafe { at.add(len) };
        self.left -= len;
        // SAFETY: `[at, at + len)` lay within `[cursor, cursor + left)` before the bump: initialised,
        // and no slice owns it (frame invariant); `&mut self` is exclusive.
        unsafe { core::slice::from_raw_parts_mut(at.as_ptr(), len) }
    }

    #[inline]
    fn get_data_owned(&mut self) -> Slice {
        let len = self.written();
        let ledger = &mut *self.ledger;
        if ledger.map.mode() == PoolMode::Alloc {
            (ledger.frame, self.cursor, self.left) = (NonNull::dangling(), NonNull::dangling(), 0);
            return ledger.take_heap_frame(len);
        }
        if len == 0 {
            return Slice::empty();
        }
        let start = ledger.frame_start;
        let slot = ledger.map.commit(start, start + len);
        let ptr = ledger.frame;
        ledger.frame_start = start + len;
        // The next frame starts where this one ends, with the rest of the placement as room
        // if a slot is left for it.
        ledger.frame = self.cursor;
        if !ledger.map.has_free_slot() {
            self.left = 0;
        }
        // SAFETY: the bytes were the frame's: initialised and unowned; slot `slot` now owns
        // them and the pool will not place a frame over them until the slot comes back.
        // `commit` numbers slots below the pool's count, at most MAX_SLOTS (`PoolSlot::new`).
        let slice = unsafe { Slice::from_pool(ptr, len, PoolSlot::new(ledger.storage, slot)) };
        self.ledger.debug_check(0, self.room());
        slice
    }

    #[inline]
    fn get_data_by_ref(&mut self, len: usize) -> &mut [u8] {
        let len = len.min(self.written());
        &mut self.frame_mut()[..len]
    }

    #[inline]
    fn get_data_by_ref_(&self, len: usize) -> &[u8] {
        &self.frame()[..len.min(self.written())]
    }

    #[inline]
    fn len(&self) -> usize {
        self.written()
    }

    fn danger_set_start(&mut self, index: usize) {
        self.ledger.start = index;
    }

    #[inline]
    fn is_droppable(&self) -> bool {
        self.ledger.word().all_released(self.ledger.outstanding())
    }
}

impl AsRef<[u8]> for BufferPool {
    fn as_ref(&self) -> &[u8] {
        &self.frame()[self.ledger.start..]
    }
}

impl AsMut<[u8]> for BufferPool {
    fn as_mut(&mut self) -> &mut [u8] {
        let start = self.ledger.start;
        &mut self.frame_mut()[start..]
    }
}

impl Write for BufferPool {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> Result<usize, WriteError> {
        self.get_writable(buf.len()).copy_from_slice(buf);
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> Result<(), WriteError> {
        self.get_writable(buf.len()).copy_from_slice(buf);
        Ok(())
    }
}

impl core::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BufferPool")
            .field("capacity", &self.capacity())
            .field("written", &self.written())
            .field("map", &self.ledger.map)
            .finish_non_exhaustive()
    }
}

/// [`BufferPool::diagram`]'s `Display`.
pub struct SlotDiagram<'a>(&'a BufferPool);

impl core::fmt::Display for SlotDiagram<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write as _;
        for slot in 0..self.0.slot_count() {
            f.write_char(match self.0.slot_state(slot) {
                SlotState::Live => '#',
                SlotState::Released => '.',
                SlotState::Free => '-',
            })?;
        }
        let mode = match self.0.mode() {
            PoolMode::Back => "BACK",
            PoolMode::Front => "FRONT",
            PoolMode::Alloc => "ALLOC",
        };
        write!(f, " {mode} MODE")
    }
}

impl Drop for BufferPool {
    fn drop(&mut self) {
        if self.ledger.word().orphan(self.ledger.outstanding()) {
            // SAFETY: `orphan` returned true: no slice is out, none will touch the storage.
            unsafe { self.ledger.storage.free() };
        }
    }
}

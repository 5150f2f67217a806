//! The pool's storage: one zeroed allocation, a header (the slot word on a line of its own,
//! then the table of spill buffers), then the bytes frames are written into.
//!
//! The allocation comes from [`PinAlloc`](crate::PinAlloc) when `std` is on (a pool larger
//! than the allocator's large-block threshold is its own mapping, transparent-huge-page
//! backed from 2 MiB) and from the global allocator without `std`. Frames that do not fit
//! (alloc mode) are heap vectors from the same allocator.
//!
//! A [`Storage`] is a plain handle: the pool holds one, every pool-backed or spilled slice a
//! [`PoolSlot`] (the handle with the slot's number packed into its alignment bits), and the
//! slot protocol ([`ownership`](super::ownership)) decides which of them frees it, with the
//! spill buffers the table holds (see [`spill`](super::spill)).

use core::alloc::Layout;
use core::ptr::NonNull;

use allocator_api2::alloc::Allocator;

use super::PoolError;
use super::ownership::SlotWord;
use super::slot_map::MAX_SLOTS;

/// The allocator of pool storage and of alloc-mode frames.
#[cfg(all(feature = "std", not(loom)))]
pub(crate) type HeapAlloc = &'static crate::PinAlloc;
#[cfg(all(feature = "std", not(loom)))]
static HEAP: crate::PinAlloc = crate::PinAlloc::new();

/// The allocator of pool storage and of alloc-mode frames.
#[cfg(all(feature = "std", not(loom)))]
#[inline]
pub(crate) fn heap() -> HeapAlloc {
    &HEAP
}

/// The allocator of pool storage and of alloc-mode frames (the global one without `std`).
#[cfg(not(all(feature = "std", not(loom))))]
pub(crate) type HeapAlloc = allocator_api2::alloc::Global;

/// The allocator of pool storage and of alloc-mode frames (the global one without `std`).
#[cfg(not(all(feature = "std", not(loom))))]
#[inline]
pub(crate) fn heap() -> HeapAlloc {
    allocator_api2::alloc::Global
}

/// An alloc-mode frame.
pub(crate) type HeapBytes = allocator_api2::vec::Vec<u8, HeapAlloc>;

/// The start of the storage: written once before the storage is shared, then only the
/// word (by anyone, atomically) and the spill table (by the owner, and by whoever frees the
/// storage) change.
#[repr(C, align(64))]
struct Header {
    /// The slot word on a line of its own, so releases from other cores contend neither with
    /// the owner's writes into the first frame nor with its spill table.
    line: WordLine,
    /// Spill buffer `i` belongs to bit `i` of the word (bits above the pool's slots): a
    /// vector's pointer and capacity, every byte of it initialised; null when there is none
    /// or the owner holds it while writing a frame into it.
    spills: [SpillEntry; MAX_SLOTS],
}

#[repr(C, align(64))]
struct WordLine {
    word: SlotWord,
    /// Size of the whole allocation, to free it.
    size: usize,
}

/// A spill buffer at rest, or out with a slice: the raw parts of a [`HeapBytes`] whose
/// length is its capacity.
#[derive(Clone, Copy)]
struct SpillEntry {
    ptr: *mut u8,
    capacity: usize,
}

impl SpillEntry {
    const NONE: SpillEntry = SpillEntry { ptr: core::ptr::null_mut(), capacity: 0 };
}

const HEADER: usize = size_of::<Header>();

/// A handle to a pool's storage. Invariant: `header` points to an initialised `Header`
/// at the start of a live allocation of `header.size` bytes from [`heap`], aligned to 64,
/// whose bytes after the header are initialised; it stays live until [`Storage::free`].
/// Each non-null spill entry holds a live vector from [`heap`] that nothing else frees.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Storage {
    header: NonNull<Header>,
}

impl Storage {
    /// Allocates `capacity` zeroed bytes behind a fresh header.
    pub(crate) fn allocate(capacity: usize) -> Result<Storage, PoolError> {
        let too_large = PoolError::CapacityTooLarge { capacity };
        let size = capacity.checked_add(HEADER).ok_or(too_large)?;
        let layout = Layout::from_size_align(size, align_of::<Header>()).map_err(|_| too_large)?;
        let block = heap().allocate_zeroed(layout).map_err(|_| PoolError::OutOfMemory { bytes: size })?;
        let header = block.cast::<Header>();
        // SAFETY: the block is fresh, at least HEADER bytes and aligned for Header (layout).
        unsafe {
            header.as_ptr().write(Header {
                line: WordLine { word: SlotWord::new(), size },
                spills: [SpillEntry::NONE; MAX_SLOTS],
            })
        };
        Ok(Storage { header })
    }

    /// The first byte after the header (frames are placed from here).
    #[inline]
    pub(crate) fn bytes(self) -> NonNull<u8> {
        // SAFETY: the allocation is at least HEADER bytes (invariant): one past the header
        // is in bounds or one past the end.
        unsafe { self.header.cast::<u8>().add(HEADER) }
    }

    /// The slot word.
    ///
    /// # Safety
    /// The storage is not freed while the reference lives.
    #[inline]
    pub(crate) unsafe fn word<'a>(self) -> &'a SlotWord {
        // SAFETY: the header is initialised and live (invariant and the caller's promise);
        // the word is only accessed through shared references (atomics).
        unsafe { &(*self.header.as_ptr()).line.word }
    }

    /// Takes spill buffer `index` out of the table: the vector, every byte initialised, or an
    /// empty one if there was none.
    ///
    /// # Safety
    /// The storage is live and the caller alone accesses entry `index`: the pool while bit
    /// `index` is not out (no slice holds that buffer), or the party freeing the storage.
    pub(crate) unsafe fn take_spill(self, index: usize) -> HeapBytes {
        // SAFETY: the header is live and the caller alone accesses the entry (the
        // contract), through raw places, no reference.
        let entry = unsafe { &raw mut (*self.header.as_ptr()).spills[index] };
        // SAFETY: as above.
        let SpillEntry { ptr, capacity } = unsafe { entry.replace(SpillEntry::NONE) };
        if ptr.is_null() {
            return HeapBytes::new_in(heap());
        }
        // SAFETY: a non-null entry is a vector from `heap` with every byte initialised
        // (invariant), now owned by the caller alone (the entry is cleared).
        unsafe { HeapBytes::from_raw_parts_in(ptr, capacity, capacity, heap()) }
    }

    /// Records spill buffer `index`: `ptr` and `capacity`, the raw parts of a [`HeapBytes`]
    /// with every byte initialised, which the storage frees if nobody takes it back.
    ///
    /// # Safety
    /// The caller is the pool; entry `index` is null (the buffer was taken out, or there was
    /// none), and no slice holds bit `index`. The parts are as described, and the caller
    /// gives up freeing them (it may still lend them to the slice that takes bit `index`).
    pub(crate) unsafe fn put_spill(self, index: usize, ptr: *mut u8, capacity: usize) {
        // SAFETY: the header is live; the owner alone accesses this entry (the contract).
        unsafe { (&raw mut (*self.header.as_ptr()).spills[index]).write(SpillEntry { ptr, capacity }) };
    }

    /// Frees the storage and the spill buffers in its table. Once per pool, so out of line:
    /// inlined, it sat in every slice's drop, and so in codecs' write loops, whose registers
    /// it crowded (the single-thread benchmark's loop reloaded three values from the stack
    /// on every write instead of one: 28% slower, measured).
    ///
    /// # Safety
    /// No one uses the storage afterwards: the slot protocol chose the caller, after every
    /// other user's last access (module docs of `ownership`).
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn free(self) {
        // SAFETY: live and initialised (invariant); read before the header is dropped.
        let size = unsafe { (*self.header.as_ptr()).line.size };
        for index in 0..MAX_SLOTS {
            // SAFETY: the storage is still live, and the caller is its last user: each spill
            // entry's buffer is taken back once, by this loop, and freed.
            drop(unsafe { self.take_spill(index) });
        }
        // SAFETY: as above; nobody references the header any more (the caller's promise).
        unsafe { core::ptr::drop_in_place(self.header.as_ptr()) };
        // SAFETY: from `allocate` with this size; align and size were valid then.
        let layout = unsafe { Layout::from_size_align_unchecked(size, align_of::<Header>()) };
        // SAFETY: allocated by `heap()` with `layout` and not freed before (the caller's
        // promise that the protocol chose them alone).
        unsafe { heap().deallocate(self.header.cast(), layout) };
    }
}

/// One slot of one storage, packed in a word: the storage's header address (aligned to 64)
/// with the slot's number (`0..64`) in its low six bits. What a pool-backed
/// [`Slice`](super::Slice) holds, so that a slice is four words.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSlot(NonNull<u8>);

const SLOT_BITS: usize = align_of::<Header>() - 1;
const _: () = assert!(align_of::<Header>() >= MAX_SLOTS);

impl PoolSlot {
    /// Slot `slot` of `storage`.
    ///
    /// # Safety
    /// `slot < MAX_SLOTS`: a larger number would spill into the header's address, and the
    /// slot's release would act on memory that is not the storage's.
    #[inline]
    pub(crate) unsafe fn new(storage: Storage, slot: usize) -> Self {
        debug_assert!(slot < MAX_SLOTS);
        // The header is aligned to 64, so its low six bits are free (`map_addr` keeps its
        // provenance for `storage`).
        PoolSlot(storage.header.cast::<u8>().map_addr(|addr| addr | slot))
    }

    /// The slot's number.
    #[inline]
    pub(crate) fn index(self) -> usize {
        self.0.addr().get() & SLOT_BITS
    }

    /// The storage: the packed pointer with the slot number cleared.
    #[inline]
    fn storage(self) -> Storage {
        let header = self.0.as_ptr().map_addr(|addr| addr & !SLOT_BITS);
        // SAFETY: clearing the slot number gives back the header's address exactly (`new`
        // set only bits the alignment left zero), and that address is non-null.
        Storage { header: unsafe { NonNull::new_unchecked(header) }.cast() }
    }

    /// Gives the slot back to its pool, and frees the storage if the pool is gone and this
    /// was the last slot out.
    ///
    /// # Safety
    /// The slot is out (given out by its pool and not released since), so the storage is
    /// live; the caller's accesses to the slot's bytes are over, and it releases the slot
    /// once.
    #[inline]
    pub(crate) unsafe fn release(self) {
        let storage = self.storage();
        // SAFETY: the storage lives until the slot protocol says otherwise, and this slot
        // is still out, so it cannot have said so yet.
        let last = unsafe { storage.word() }.release(1 << self.index());
        if last {
            // SAFETY: `release` returned true: the pool is gone and every other slice
            // released; nobody touches the storage again.
            unsafe { storage.free() };
        }
    }
}

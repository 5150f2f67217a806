//! [`Arena`]: bump allocation over chunks mapped from the OS layer.
//!
//! An arena hands out memory by moving a pointer *down* through its current chunk (so
//! aligning is one `AND`), and frees everything at once: [`Arena::reset`] keeps every chunk
//! for reuse, [`Arena::scope`] rewinds to a checkpoint when a closure returns. Chunks come
//! straight from the OS layer (huge-page backed when asked), double in size up to a ceiling,
//! and count against an optional memory limit, past which allocation fails with
//! [`ArenaError::LimitExceeded`] instead of growing. `&Arena` implements allocator-api2's
//! [`Allocator`](allocator_api2::alloc::Allocator), so collections can live in an arena —
//! which bumpalo cannot back with an allocator of your choosing; that is why this one exists.
//!
//! ```
//! use pinalloc::arena::Arena;
//!
//! let mut arena = Arena::new();
//! let quote = arena.alloc(42u64);
//! let name = arena.alloc_str("ESZ6");
//! assert_eq!((*quote, &*name), (42, "ESZ6"));
//! let total = arena.scope(|scratch| scratch.alloc_slice_copy(&[1u32, 2, 3]).iter().sum::<u32>());
//! assert_eq!(total, 6);
//! arena.reset(); // every chunk kept for the next round
//! ```

use crate::os::{HugePages, MapOptions, Mapping, OsError, RawMapping};
use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::{fmt, mem, slice, str};

/// Why an arena could not allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArenaError {
    /// The allocation would take the arena's chunks past its memory limit.
    LimitExceeded {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The request cannot be served by any chunk (its size overflows).
    TooLarge {
        /// The requested size.
        size: usize,
    },
    /// The OS would not map another chunk.
    Os(OsError),
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArenaError::LimitExceeded { limit } => write!(f, "arena memory limit of {limit} bytes reached"),
            ArenaError::TooLarge { size } => write!(f, "arena allocation of {size} bytes is too large"),
            ArenaError::Os(error) => write!(f, "arena cannot map a chunk: {error}"),
        }
    }
}

impl core::error::Error for ArenaError {}

/// How an arena gets its chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaOptions {
    first_chunk: usize,
    max_chunk: usize,
    limit: usize,
    huge_pages: HugePages,
}

impl Default for ArenaOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ArenaOptions {
    /// 64 KiB first chunk, doubling up to 4 MiB, no limit, the kernel's huge-page setting.
    pub const fn new() -> Self {
        ArenaOptions {
            first_chunk: 64 << 10,
            max_chunk: 4 << 20,
            limit: usize::MAX,
            huge_pages: HugePages::KernelDefault,
        }
    }

    /// Size of the first chunk (later ones double, up to `max_chunk`).
    pub const fn first_chunk(mut self, bytes: usize) -> Self {
        self.first_chunk = bytes;
        self
    }

    /// Largest regular chunk (a bigger single request still gets a chunk of its own).
    pub const fn max_chunk(mut self, bytes: usize) -> Self {
        self.max_chunk = bytes;
        self
    }

    /// Total bytes of chunks the arena may map; allocation past it fails cleanly.
    pub const fn limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// What backs the chunks; [`HugePages::Best`] uses hugetlbfs pages where reserved.
    pub const fn huge_pages(mut self, huge_pages: HugePages) -> Self {
        self.huge_pages = huge_pages;
        self
    }
}

/// The start of every chunk: the chain of chunks and the mapping to give back.
#[repr(C)]
struct ChunkHeader {
    /// The chunk made after this one (reused after a reset), or null.
    next: *mut ChunkHeader,
    mapping: RawMapping,
    /// Bytes used in this chunk when the arena moved on to the next one (for statistics;
    /// the fast path keeps no counter).
    used_when_left: usize,
}

const HEADER: usize = mem::size_of::<ChunkHeader>();

/// A bump allocator. Allocation is a pointer decrement and a comparison; nothing is freed
/// until [`Arena::reset`], a [`scope`](Arena::scope) ends, or the arena drops.
///
/// Invariants: `bottom <= top` lie in the chunk `current` (bytes `bottom..top` are free),
/// or both are the non-null `EMPTY` sentinel before the first chunk (so the fast path
/// needs no null check: a request never fits between them); chunks form a chain from
/// `first` through `next`, the ones after `current` unused; every chunk is a mapping owned
/// by the arena, unmapped on drop.
pub struct Arena {
    /// Next free byte is below `top`; the free range of the current chunk is `bottom..top`.
    top: Cell<*mut u8>,
    bottom: Cell<*mut u8>,
    first: Cell<*mut ChunkHeader>,
    current: Cell<*mut ChunkHeader>,
    options: ArenaOptions,
    chunk_bytes: Cell<usize>,
    chunks: Cell<usize>,
}

/// `top` and `bottom` of an arena without chunks: one page up, never dereferenced.
const EMPTY: *mut u8 = ptr::without_provenance_mut(4096);

// SAFETY: the arena owns its chunks; moving it to another thread moves them. It is not
// `Sync` (the `Cell`s), so only one thread allocates at a time.
unsafe impl Send for Arena {}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

/// A saved position of an arena, to rewind to (see [`Arena::scope`]).
#[derive(Clone, Copy)]
struct Checkpoint {
    current: *mut ChunkHeader,
    top: *mut u8,
    bottom: *mut u8,
}

impl Arena {
    /// An empty arena with the default [`ArenaOptions`]; maps nothing until first used.
    pub const fn new() -> Self {
        Self::with_options(ArenaOptions::new())
    }

    /// An empty arena with `options`.
    pub const fn with_options(options: ArenaOptions) -> Self {
        Arena {
            top: Cell::new(EMPTY),
            bottom: Cell::new(EMPTY),
            first: Cell::new(ptr::null_mut()),
            current: Cell::new(ptr::null_mut()),
            options,
            chunk_bytes: Cell::new(0),
            chunks: Cell::new(0),
        }
    }

    /// Memory for `layout`, or why not. The fast path: bump down, align, compare.
    #[inline]
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, ArenaError> {
        let top = self.top.get();
        // Align the top down first, then take the size rounded up to the alignment (it
        // cannot overflow: `Layout` keeps it within `isize::MAX`); the room check is then
        // one subtraction, as in bumpalo.
        let aligned = top.addr() & !(layout.align() - 1);
        let size = layout.pad_to_align().size();
        if let Some(room) = aligned.checked_sub(self.bottom.get().addr())
            && room >= size
        {
            let ptr = top.with_addr(aligned - size);
            self.top.set(ptr);
            // SAFETY: `aligned - size >= bottom`, which is non-null (a chunk or the
            // sentinel, and nothing fits between the sentinel's equal ends).
            return Ok(unsafe { NonNull::new_unchecked(ptr) });
        }
        self.alloc_in_new_chunk(layout)
    }

    #[cold]
    #[inline(never)]
    fn alloc_in_new_chunk(&self, layout: Layout) -> Result<NonNull<u8>, ArenaError> {
        let needed =
            layout.size().checked_add(layout.align()).ok_or(ArenaError::TooLarge { size: layout.size() })?;
        // Reuse a chunk kept by `reset` if it is large enough.
        let mut next = if self.current.get().is_null() {
            self.first.get()
        } else {
            // SAFETY: `current` is a live chunk of this arena.
            unsafe { (*self.current.get()).next }
        };
        while !next.is_null() {
            // SAFETY: chunks on the chain are live and owned by this arena.
            let (len, after) = unsafe { ((*next).mapping.len, (*next).next) };
            if len - HEADER >= needed {
                self.enter(next);
                return self.try_alloc_layout(layout);
            }
            next = after;
        }
        self.map_chunk(needed)?;
        self.try_alloc_layout(layout)
    }

    /// Makes `chunk` the current one, all of it free (recording what the one we leave used).
    fn enter(&self, chunk: *mut ChunkHeader) {
        let leaving = self.current.get();
        if !leaving.is_null() {
            // SAFETY: `leaving` is a live chunk of this arena; `top` lies inside it.
            unsafe {
                (*leaving).used_when_left =
                    (*leaving).mapping.ptr.as_ptr().addr() + (*leaving).mapping.len - self.top.get().addr()
            };
        }
        // SAFETY: `chunk` is a live chunk of this arena.
        let mapping = unsafe { (*chunk).mapping };
        let base = mapping.ptr.as_ptr();
        self.current.set(chunk);
        // SAFETY: `HEADER` and `len` are inside the mapping.
        unsafe {
            self.bottom.set(base.add(HEADER));
            self.top.set(base.add(mapping.len));
        }
    }

    /// Maps a chunk with at least `needed` free bytes and appends it after the current one.
    fn map_chunk(&self, needed: usize) -> Result<(), ArenaError> {
        let o = &self.options;
        let doubled =
            if self.chunks.get() == 0 { o.first_chunk } else { (self.chunk_bytes.get()).min(o.max_chunk) };
        let size =
            doubled.max(needed.checked_add(HEADER).ok_or(ArenaError::TooLarge { size: needed })?).max(4096);
        if self.chunk_bytes.get().saturating_add(size) > o.limit {
            return Err(ArenaError::LimitExceeded { limit: o.limit });
        }
        let mapping =
            Mapping::new(size, &MapOptions::new().huge_pages(o.huge_pages)).map_err(ArenaError::Os)?;
        let raw = mapping.into_raw();
        let chunk: *mut ChunkHeader = raw.ptr.as_ptr().cast();
        // SAFETY: a fresh mapping, ours, larger than the header and aligned for it.
        unsafe {
            let after =
                if self.current.get().is_null() { self.first.get() } else { (*self.current.get()).next };
            chunk.write(ChunkHeader { next: after, mapping: raw, used_when_left: 0 });
            if self.current.get().is_null() {
                self.first.set(chunk);
            } else {
                (*self.current.get()).next = chunk;
            }
        }
        self.chunks.set(self.chunks.get() + 1);
        self.chunk_bytes.set(self.chunk_bytes.get() + raw.len);
        self.enter(chunk);
        Ok(())
    }

    /// Moves `value` into the arena. Out of memory (or past the limit) reports through
    /// [`alloc::alloc::handle_alloc_error`], as `Box::new` does; see [`Arena::try_alloc`].
    #[inline]
    #[allow(clippy::mut_from_ref)] // every call returns a distinct, fresh region
    pub fn alloc<T>(&self, value: T) -> &mut T {
        self.try_alloc(value).unwrap_or_else(|_| alloc::alloc::handle_alloc_error(Layout::new::<T>()))
    }

    /// Moves `value` into the arena, or says why it cannot.
    #[inline]
    #[allow(clippy::mut_from_ref)] // every call returns a distinct, fresh region
    pub fn try_alloc<T>(&self, value: T) -> Result<&mut T, ArenaError> {
        let ptr = self.try_alloc_layout(Layout::new::<T>())?.cast::<T>();
        // SAFETY: fresh, aligned memory for a `T`, handed out once and valid for the
        // arena's borrow (it is only reused after `reset`/`scope`, which need `&mut self`).
        unsafe {
            ptr.as_ptr().write(value);
            Ok(&mut *ptr.as_ptr())
        }
    }

    /// Copies `src` into the arena.
    #[allow(clippy::mut_from_ref)] // every call returns a distinct, fresh region
    pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> &mut [T] {
        self.try_alloc_slice_copy(src)
            .unwrap_or_else(|_| alloc::alloc::handle_alloc_error(Layout::for_value(src)))
    }

    /// Copies `src` into the arena, or says why it cannot.
    #[allow(clippy::mut_from_ref)] // every call returns a distinct, fresh region
    pub fn try_alloc_slice_copy<T: Copy>(&self, src: &[T]) -> Result<&mut [T], ArenaError> {
        let ptr = self.try_alloc_layout(Layout::for_value(src))?.cast::<T>();
        // SAFETY: fresh memory for `src.len()` `T`s, not overlapping `src`; `T: Copy`.
        unsafe {
            ptr::copy_nonoverlapping(src.as_ptr(), ptr.as_ptr(), src.len());
            Ok(slice::from_raw_parts_mut(ptr.as_ptr(), src.len()))
        }
    }

    /// Copies `src` into the arena.
    #[allow(clippy::mut_from_ref)] // every call returns a distinct, fresh region
    pub fn alloc_str(&self, src: &str) -> &mut str {
        let bytes = self.alloc_slice_copy(src.as_bytes());
        // SAFETY: a byte-for-byte copy of a `str` is valid UTF-8.
        unsafe { str::from_utf8_unchecked_mut(bytes) }
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint { current: self.current.get(), top: self.top.get(), bottom: self.bottom.get() }
    }

    /// Runs `f` with the arena, then frees everything `f` allocated. The closure cannot let
    /// a reference into the arena escape (its result type is chosen outside it), so the
    /// rewind is safe.
    pub fn scope<R>(&mut self, f: impl FnOnce(&Arena) -> R) -> R {
        let saved = self.checkpoint();
        let result = f(self);
        // Chunks entered after the checkpoint stay on the chain, free for reuse.
        if saved.current.is_null() {
            self.reset();
        } else {
            self.current.set(saved.current);
            self.top.set(saved.top);
            self.bottom.set(saved.bottom);
        }
        result
    }

    /// Frees every allocation; the chunks stay mapped for the next round.
    pub fn reset(&mut self) {
        let first = self.first.get();
        if first.is_null() {
            return;
        }
        self.current.set(ptr::null_mut()); // nothing to record for the chunks left behind
        self.enter(first);
    }

    /// Bytes handed out since the last reset, including alignment padding and the tails of
    /// chunks that were too small for the request that moved on.
    pub fn allocated_bytes(&self) -> usize {
        let current = self.current.get();
        if current.is_null() {
            return 0;
        }
        let mut used = 0;
        let mut chunk = self.first.get();
        // SAFETY: chunks on the chain are live and owned by the arena; `top` lies in
        // `current`.
        unsafe {
            while chunk != current {
                used += (*chunk).used_when_left;
                chunk = (*chunk).next;
            }
            used + (*current).mapping.ptr.as_ptr().addr() + (*current).mapping.len - self.top.get().addr()
        }
    }

    /// Bytes of chunks mapped (what the limit counts).
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes.get()
    }

    /// Chunks mapped.
    pub fn chunks(&self) -> usize {
        self.chunks.get()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        let mut chunk = self.first.get();
        while !chunk.is_null() {
            // SAFETY: every chunk on the chain is a mapping the arena owns; nothing borrows
            // the arena anymore. Read `next` before the header goes away with its mapping.
            unsafe {
                let next = (*chunk).next;
                drop(Mapping::from_raw((*chunk).mapping));
                chunk = next;
            }
        }
    }
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("allocated_bytes", &self.allocated_bytes())
            .field("chunk_bytes", &self.chunk_bytes())
            .field("chunks", &self.chunks())
            .finish()
    }
}

// SAFETY: blocks are fresh regions valid until `reset`/`scope`/drop, which need `&mut
// Arena` and so cannot happen while `&Arena` (this allocator) is borrowed; `deallocate` is
// a no-op; `grow`/`shrink` use the default (allocate, copy, leave the old region).
unsafe impl allocator_api2::alloc::Allocator for &Arena {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        let ptr = self.try_alloc_layout(layout).map_err(|_| allocator_api2::alloc::AllocError)?;
        Ok(NonNull::slice_from_raw_parts(ptr, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, _ptr: NonNull<u8>, _layout: Layout) {}
}

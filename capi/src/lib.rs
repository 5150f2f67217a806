//! `libpinalloc.so`: pinalloc as the C library's allocator, for any program.
//!
//! ```sh
//! LD_PRELOAD=/path/to/libpinalloc.so program args   # any dynamically linked program
//! cc app.c -Icapi/include -Lpath/to -lpinalloc      # or linked, with pinalloc.h
//! ```
//!
//! The exports follow glibc's documented semantics, which programs rely on:
//!
//! | function | edge cases |
//! |---|---|
//! | `malloc(n)` | `malloc(0)` is a unique, freeable pointer; failure: `NULL`, `errno = ENOMEM` |
//! | `free(p)` | `free(NULL)` does nothing; `errno` is never changed |
//! | `calloc(n, s)` | `n * s` overflowing: `NULL`, `ENOMEM` |
//! | `realloc(p, n)` | `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and returns `NULL`; failure leaves `p` intact |
//! | `reallocarray(p, n, s)` | as `realloc`, with the overflow check of `calloc` |
//! | `posix_memalign(&p, a, n)` | `a` not a power of two times `sizeof(void *)`: `EINVAL`; out of memory: `ENOMEM`; `errno` untouched |
//! | `aligned_alloc(a, n)` | `a` not a power of two: `NULL`, `errno = EINVAL` (glibc 2.38 and C17) |
//! | `memalign(a, n)` | `a` rounded up to a power of two; above `SIZE_MAX / 2 + 1`: `EINVAL` |
//! | `valloc(n)`, `pvalloc(n)` | page-aligned; `pvalloc` also rounds `n` up to whole pages |
//! | `malloc_usable_size(p)` | at least the size asked for; `0` for `NULL` |
//!
//! Every block is aligned to 16 bytes at least.
//!
//! # Pointers from elsewhere
//! Before a preloaded library is relocated, the dynamic loader allocates with its own
//! minimal allocator, and a program may hand over memory from another allocator. The
//! [segment map](pinalloc_core::PinAlloc::owns) tells such *foreign* pointers apart in one
//! load. `free` leaves them alone (their owner may be a bump allocator that cannot take
//! them back; the bytes are leaked, as glibc's loader leaks them), `realloc` moves their
//! contents into a fresh block, copying what is readable up to the new size (their size is
//! unknown), and `malloc_usable_size` reports `0`. `pinalloc_stats` counts them.
//!
//! # Thread-local state
//! Each thread's cache is a `const`-initialised thread-local without a destructor, so
//! reaching it needs no lazy set-up and cannot allocate. Its first slow path registers a
//! thread-exit hook (through glibc's `__cxa_thread_atexit_impl`, which allocates a list
//! entry: by then the cache is usable, so that `calloc` is served normally). At thread
//! exit the hook returns the cache's blocks to the shared depots; allocations made after
//! it (by later destructors, or by glibc freeing its per-thread data) are served one block
//! at a time. Threads made by `pthread_create` from C need nothing else.
//!
//! The cache lives in the static TLS block and is reached with the initial-exec model (the
//! crate's `initial-exec-tls` feature: two instructions, where Rust's own thread-locals in
//! a shared object call `__tls_get_addr` on every access). A library loaded at start-up
//! (`LD_PRELOAD` or linked) always gets its static TLS; `dlopen`ing this library is not
//! supported (it fails for want of static TLS room, and a `malloc` replaced after start-up
//! would be handed pointers it never made anyway).
//!
//! # fork
//! The allocator's fork handlers hold every lock across `fork()`, so the child starts with
//! consistent, unlocked state. The child's other threads are gone, and the blocks in their
//! caches with them (as with every thread-caching allocator); so are the spans they held
//! for carving (one per size class each), with the blocks the child frees into them.
//!
//! # Purging
//! Free pages are given back to the OS after the purge delay by the threads that free
//! memory, not by a background thread: a preloaded library must not add threads to
//! programs that count them (or `fork` and expect to be alone). `pinalloc_purge()`
//! returns everything free at once.
//!
//! # Huge pages
//! As the crate's default: transparent huge pages for memory that comes in bulk (segments
//! mapped for a thread that has carved 8 MiB of blocks, large blocks of 8 MiB or more), the
//! kernel's setting for the rest. A C program's heap is many small blocks, and a 2 MiB page
//! is resident as soon as one block on it lives, so a process-wide rule would cost programs
//! with many threads, each keeping a little, their RSS (larson's 29 MiB became 80); per
//! thread, only a thread with a large heap of its own gets them (mixed-small, 90 MiB of live
//! blocks: 0.92 of the time, at 121 MiB peak RSS against 92 and mimalloc's 123).
//! `PINALLOC_THP=default` leaves everything to the kernel, `never` forbids them.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};
use pinalloc_core::global::{Config, PinAlloc, usable_size};
use pinalloc_core::os;

/// The allocator behind every export, and behind this library's own Rust code.
#[global_allocator]
static PINALLOC: PinAlloc = PinAlloc::with_config(Config::new().purge_thread(false));

/// The alignment of every block (glibc's `MALLOC_ALIGNMENT` on 64-bit targets).
const MIN_ALIGN: usize = 16;

/// Foreign pointers met by `free` and `realloc`. Relaxed, no partner: statistics.
static FOREIGN_FREES: AtomicU64 = AtomicU64::new(0);
static FOREIGN_REALLOCS: AtomicU64 = AtomicU64::new(0);

/// A block of `size` bytes aligned to `align` (a power of two), zeroed if asked, or null
/// (with `errno` untouched) when the layout is impossible or memory runs out.
#[inline(always)]
fn block(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    // Size 0 is served as the smallest block: a unique pointer, as glibc's.
    let Ok(layout) = Layout::from_size_align(size.max(1), align) else { return ptr::null_mut() };
    // SAFETY: the layout has a non-zero size.
    unsafe { if zeroed { PINALLOC.alloc_zeroed(layout) } else { PINALLOC.alloc(layout) } }
}

/// `block` as `malloc` reports it: null sets `errno` to `ENOMEM`.
#[inline(always)]
fn or_enomem(block: *mut u8) -> *mut c_void {
    if block.is_null() {
        os::set_errno(libc::ENOMEM);
    }
    block.cast()
}

/// [`block`] for the `malloc` family.
#[inline(always)]
fn allocate(size: usize, align: usize) -> *mut c_void {
    or_enomem(block(size, align, false))
}

/// `malloc(3)`.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    match PINALLOC.alloc_cached(size) {
        Some(block) => block.as_ptr().cast(),
        None => malloc_slow(size),
    }
}

/// `malloc` past the thread's list. `extern "C"` (it cannot unwind), so `malloc` reaches it
/// with a jump, and needs no stack frame of its own on the fast path.
#[cold]
#[inline(never)]
extern "C" fn malloc_slow(size: usize) -> *mut c_void {
    allocate(size, MIN_ALIGN)
}

/// `free(3)`.
///
/// # Safety
/// `ptr` is null or a live block from this library's allocation functions (or a foreign
/// pointer, which is left alone); it is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    // SAFETY: per the contract, null, foreign, or a live block of ours given up.
    if !unsafe { PINALLOC.free_if_owned(ptr.cast()) } && !ptr.is_null() {
        FOREIGN_FREES.fetch_add(1, Ordering::Relaxed);
    }
}

/// `calloc(3)`.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    or_enomem(count.checked_mul(size).map_or(ptr::null_mut(), |total| block(total, MIN_ALIGN, true)))
}

/// `realloc(3)`.
///
/// # Safety
/// As for [`free`]: `ptr` is null, a live block of ours, or foreign; on success it is dead.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    let old = ptr.cast::<u8>();
    if old.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // glibc: frees the block and returns NULL.
        // SAFETY: forwarded.
        unsafe { free(ptr) };
        return ptr::null_mut();
    }
    if !PINALLOC.owns(old) {
        // SAFETY: forwarded: a foreign pointer to readable memory.
        return unsafe { realloc_foreign(old, size) };
    }
    // SAFETY: per the contract, a live block of ours; a non-zero size.
    or_enomem(unsafe { PINALLOC.resize(old, size) })
}

/// Moves a foreign block of unknown size: a fresh block gets what can be read of the old
/// one, up to `size` bytes. The old block is left to its owner.
///
/// # Safety
/// `old` is a live block of another allocator.
#[cold]
unsafe fn realloc_foreign(old: *mut u8, size: usize) -> *mut c_void {
    FOREIGN_REALLOCS.fetch_add(1, Ordering::Relaxed);
    let new = malloc(size).cast::<u8>();
    if !new.is_null() {
        // SAFETY: `new` has `size` bytes of its own; the copy stops at unreadable memory.
        unsafe { os::copy_readable(new, old, size) };
    }
    new.cast()
}

/// `reallocarray(3)`.
///
/// # Safety
/// As for [`realloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        // SAFETY: forwarded.
        Some(total) => unsafe { realloc(ptr, total) },
        None => or_enomem(ptr::null_mut()),
    }
}

/// `posix_memalign(3)`: 0, `EINVAL` or `ENOMEM`; `errno` is left alone.
///
/// # Safety
/// `out` is valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let block = block(size, align.max(MIN_ALIGN), false);
    if block.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: per the contract.
    unsafe { out.write(block.cast()) };
    0
}

/// `aligned_alloc(3)`: the alignment must be a power of two (`EINVAL` otherwise, as
/// glibc 2.38 and C17); any size is accepted.
#[unsafe(no_mangle)]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        os::set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    allocate(size, align.max(MIN_ALIGN))
}

/// `memalign(3)`: an alignment that is not a power of two is rounded up to one.
#[unsafe(no_mangle)]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    let Some(align) = align.max(MIN_ALIGN).checked_next_power_of_two() else {
        os::set_errno(libc::EINVAL);
        return ptr::null_mut();
    };
    allocate(size, align)
}

/// `valloc(3)`: page-aligned.
#[unsafe(no_mangle)]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    allocate(size, os::page_size())
}

/// `pvalloc(3)`: page-aligned, the size rounded up to whole pages.
#[unsafe(no_mangle)]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = os::page_size();
    match size.checked_next_multiple_of(page) {
        Some(rounded) => allocate(rounded.max(page), page),
        None => or_enomem(ptr::null_mut()),
    }
}

/// `malloc_usable_size(3)`: `0` for null and for foreign pointers.
///
/// # Safety
/// `ptr` is null, a live block of ours, or foreign.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    let ptr = ptr.cast::<u8>();
    if !PINALLOC.owns(ptr) {
        return 0;
    }
    // SAFETY: per the contract, a live block of ours.
    unsafe { usable_size(ptr) }
}

/// What `pinalloc_stats` fills in; mirrors `struct pinalloc_stats` in `pinalloc.h`.
#[repr(C)]
pub struct PinallocStats {
    /// Bytes of blocks out of the allocator's shared structures (live or in thread caches).
    pub allocated_bytes: usize,
    /// Bytes of pages in use by spans and live large blocks.
    pub active_bytes: usize,
    /// Bytes mapped from the OS.
    pub mapped_bytes: usize,
    /// Resident bytes of small-block segments.
    pub small_resident_bytes: usize,
    /// Small-block segments mapped.
    pub segments: usize,
    /// Bytes of freed large mappings kept for reuse.
    pub large_cached_bytes: usize,
    /// Bytes of free blocks in the calling thread's cache.
    pub thread_cache_bytes: usize,
    /// Bytes of free pages given back to the OS since start.
    pub purged_bytes_total: usize,
    /// `free` calls on pointers this allocator did not make (left alone).
    pub foreign_frees: u64,
    /// `realloc` calls on pointers this allocator did not make (moved).
    pub foreign_reallocs: u64,
}

/// Fills `*out` with the allocator's statistics. Returns 0, or `EINVAL` for a null `out`.
///
/// # Safety
/// `out` is null or valid for writing a `struct pinalloc_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pinalloc_stats(out: *mut PinallocStats) -> c_int {
    if out.is_null() {
        return libc::EINVAL;
    }
    let stats = PINALLOC.stats();
    let result = PinallocStats {
        allocated_bytes: stats.allocated_bytes,
        active_bytes: stats.active_bytes,
        mapped_bytes: stats.mapped_bytes,
        small_resident_bytes: stats.small_resident_bytes,
        segments: stats.segments,
        large_cached_bytes: stats.large_cached_bytes,
        thread_cache_bytes: stats.thread_cache_bytes,
        purged_bytes_total: stats.purged_bytes_total,
        foreign_frees: FOREIGN_FREES.load(Ordering::Relaxed),
        foreign_reallocs: FOREIGN_REALLOCS.load(Ordering::Relaxed),
    };
    // SAFETY: per the contract.
    unsafe { out.write(result) };
    0
}

/// Gives every free page back to the OS now (the calling thread's cache included).
#[unsafe(no_mangle)]
pub extern "C" fn pinalloc_purge() {
    PINALLOC.purge();
}

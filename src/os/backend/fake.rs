//! The OS layer served from the heap, for miri (which cannot make syscalls).
//!
//! Mappings are zeroed heap blocks from [`std::alloc::System`] (never from the global
//! allocator, which may be this crate's own). Purging zeroes, reserve-only mappings are
//! ordinary memory, there are no huge pages, one CPU and one NUMA node. The functions keep
//! the contracts of the Linux backend, so code tested here runs there unchanged.

use super::{Purge, Request};
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::CStr;
use core::ptr::NonNull;
use std::alloc::System;

pub(crate) fn page_size() -> usize {
    4096
}

fn layout(len: usize, align: usize) -> Result<Layout, i32> {
    Layout::from_size_align(len, align.max(page_size())).map_err(|_| libc::ENOMEM)
}

/// The largest mapping granted: the x86-64 user address space, as the kernel refuses larger
/// ones; under miri, which backs every byte of an allocation with the host's memory (a
/// 64 TiB request is killed by the host's OOM killer rather than failed), 4 GiB, as an OS
/// that does not overcommit refuses what it cannot back.
const LARGEST_MAPPING: usize = if cfg!(miri) { 1 << 32 } else { 1 << 47 };

pub(crate) fn map(req: &Request) -> Result<NonNull<u8>, i32> {
    // Heap blocks are always accessible and never prefaulted, so those flags change nothing.
    let Request { len, align, granule, huge_tlb, reserve_only: _, populate: _ } = *req;
    debug_assert_eq!(len % granule, 0);
    if huge_tlb.is_some() || len > LARGEST_MAPPING {
        return Err(libc::ENOMEM);
    }
    let layout = layout(len, align)?;
    // SAFETY: `layout` has a non-zero size (the caller validated `len`).
    let ptr = unsafe { System.alloc_zeroed(layout) };
    let ptr = NonNull::new(ptr).ok_or(libc::ENOMEM)?;
    roots::register(ptr.as_ptr(), len);
    Ok(ptr)
}

/// # Safety
/// `ptr..ptr + len` is a whole mapping from [`map`] with alignment `align`. Unlike the
/// Linux backend, parts of a mapping cannot be unmapped here.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, len: usize, align: usize) {
    if let Ok(layout) = layout(len, align) {
        roots::unregister(ptr.as_ptr());
        // SAFETY: per the contract this is the block `map` allocated, with this layout.
        unsafe { System.dealloc(ptr.as_ptr(), layout) };
    }
}

/// # Safety
/// As for the Linux backend: the range is inside a mapping and its contents are disposable.
pub(crate) unsafe fn purge(ptr: NonNull<u8>, len: usize, how: Purge) -> Result<(), i32> {
    // MADV_FREE may keep the contents; MADV_DONTNEED zeroes them. Zeroing serves both.
    let _ = how;
    // SAFETY: per the contract the range is ours and disposable.
    unsafe { ptr.as_ptr().write_bytes(0, len) };
    Ok(())
}

/// # Safety
/// As for the Linux backend.
pub(crate) unsafe fn protect(ptr: NonNull<u8>, len: usize, commit: bool) -> Result<(), i32> {
    if !commit {
        // SAFETY: per the contract the range is ours and disposable.
        unsafe { ptr.as_ptr().write_bytes(0, len) };
    }
    Ok(())
}

/// # Safety
/// As for the Linux backend.
pub(crate) unsafe fn advise_transparent_huge(_ptr: NonNull<u8>, _len: usize, _on: bool) -> Result<(), i32> {
    Ok(())
}

/// # Safety
/// As for the Linux backend; `align` is the alignment the mapping was made with.
pub(crate) unsafe fn remap(
    ptr: NonNull<u8>,
    old_len: usize,
    new_len: usize,
    align: usize,
    may_move: bool,
) -> Result<NonNull<u8>, i32> {
    if !may_move {
        return Err(libc::ENOMEM);
    }
    if new_len > LARGEST_MAPPING {
        return Err(libc::ENOMEM);
    }
    let old = layout(old_len, align)?;
    layout(new_len, align)?;
    // SAFETY: `ptr` was allocated by `map` with `old`; `new_len` is non-zero and forms a
    // valid layout with the same alignment (checked above).
    let new = unsafe { System.realloc(ptr.as_ptr(), old, new_len) };
    let new = NonNull::new(new).ok_or(libc::ENOMEM)?;
    roots::unregister(ptr.as_ptr());
    roots::register(new.as_ptr(), new_len);
    if new_len > old_len {
        // Fresh pages of a grown mapping read as zero, as mremap's do.
        // SAFETY: the tail lies inside the block just reallocated.
        unsafe { new.as_ptr().add(old_len).write_bytes(0, new_len - old_len) };
    }
    Ok(new)
}

pub(crate) const MAX_NODES: usize = 1;

/// # Safety
/// As for the Linux backend.
pub(crate) unsafe fn bind(_ptr: NonNull<u8>, _len: usize, _node: usize) -> Result<(), i32> {
    Ok(())
}

pub(crate) fn getcpu() -> Result<(u32, u32), i32> {
    Ok((0, 0))
}

pub(crate) fn read_small_file(_path: &CStr, _buf: &mut [u8]) -> Option<usize> {
    None
}

pub(crate) fn yield_now() {
    std::thread::yield_now();
}

pub(crate) fn monotonic_ms() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

pub(crate) fn futex_wait(
    word: &core::sync::atomic::AtomicU32,
    expected: u32,
    timeout: Option<core::time::Duration>,
    _shared: bool,
) {
    // No futex under miri: poll briefly.
    let _ = timeout;
    if word.load(core::sync::atomic::Ordering::Acquire) == expected {
        std::thread::yield_now();
    }
}

pub(crate) fn futex_wake(_word: &core::sync::atomic::AtomicU32, _count: u32, _shared: bool) {}

pub(crate) fn env_var(_name: &CStr) -> Option<&'static [u8]> {
    None
}

pub(crate) fn set_errno(_value: i32) {}

pub(crate) fn errno() -> i32 {
    0
}

/// Every byte is readable on the heap-backed fake (miri reports any that is not).
///
/// # Safety
/// As for the Linux backend's; here `src` must also be readable for `len` bytes.
pub(crate) unsafe fn copy_readable(dst: *mut u8, src: *const u8, len: usize) -> usize {
    // SAFETY: per the contract.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
    len
}

pub(crate) fn at_fork(_prepare: extern "C" fn(), _parent: extern "C" fn(), _child: extern "C" fn()) -> bool {
    false
}

pub(crate) fn fatal(message: &str) -> ! {
    use std::io::Write;
    let _ = std::io::stderr().write_all(message.as_bytes());
    std::process::abort()
}

/// The pointer to the same address with the provenance of the mapping that holds it (see
/// [`roots`]); `ptr` itself if no mapping does.
#[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
pub(crate) fn root_provenance(ptr: *mut u8) -> *mut u8 {
    roots::find(ptr)
}

/// Every live mapping's base pointer, which carries the root provenance of its heap block.
///
/// An allocator gets back the pointers it handed out with the *program's* borrow tags, and
/// would hand them out again derived from those tags; miri (rightly) rejects that reuse once
/// the program's tag is dead. The allocator therefore re-derives every pointer it is given
/// from the root kept here, as a real allocator's pointers derive from its mapping. Without
/// miri there are no tags and the Linux backend's `root_provenance` is the identity.
mod roots {
    use crate::sync::SpinLock;
    use core::ptr;

    const SLOTS: usize = 1024;

    /// `(base, len)` of the live mappings, in `slots[..used]`; a null base is a free slot.
    struct Table {
        slots: [(*mut u8, usize); SLOTS],
        used: usize,
    }

    // SAFETY: the pointers are only compared and re-based, never dereferenced here, and the
    // table is reached only through its lock.
    unsafe impl Send for Table {}

    static TABLE: SpinLock<Table> = SpinLock::new(Table { slots: [(ptr::null_mut(), 0); SLOTS], used: 0 });

    pub(super) fn register(base: *mut u8, len: usize) {
        // A full table only means later lookups fall back to the pointer given.
        let mut table = TABLE.lock();
        let used = table.used;
        if let Some(i) = table.slots[..used].iter().position(|s| s.0.is_null()) {
            table.slots[i] = (base, len);
        } else if used < SLOTS {
            table.slots[used] = (base, len);
            table.used += 1;
        }
    }

    pub(super) fn unregister(base: *mut u8) {
        let mut table = TABLE.lock();
        let used = table.used;
        if let Some(slot) = table.slots[..used].iter_mut().find(|s| s.0.addr() == base.addr()) {
            *slot = (ptr::null_mut(), 0);
        }
    }

    pub(super) fn find(ptr: *mut u8) -> *mut u8 {
        let addr = ptr.addr();
        let table = TABLE.lock();
        table.slots[..table.used]
            .iter()
            .find(|(base, len)| !base.is_null() && (base.addr()..base.addr() + len).contains(&addr))
            .map_or(ptr, |(base, _)| base.with_addr(addr))
    }
}

/// Named shared memory needs the kernel: not available under miri.
pub(crate) fn shm_create(_name: &[u8], _len: usize) -> Result<NonNull<u8>, i32> {
    Err(libc::ENOSYS)
}

pub(crate) fn shm_open(_name: &[u8]) -> Result<(NonNull<u8>, usize), i32> {
    Err(libc::ENOSYS)
}

pub(crate) fn shm_unlink(_name: &[u8]) -> Result<(), i32> {
    Err(libc::ENOSYS)
}

/// An anonymous shared mapping is, within one process, just zeroed memory.
pub(crate) fn map_shared_anonymous(len: usize) -> Result<NonNull<u8>, i32> {
    let granule = page_size();
    map(&Request { len, align: granule, granule, huge_tlb: None, reserve_only: false, populate: false })
}

/// The fake's memory is usable from the start: nothing to fault in.
///
/// # Safety
/// As for the Linux backend.
pub(crate) unsafe fn populate_write(_ptr: NonNull<u8>, _len: usize) -> Result<(), i32> {
    Ok(())
}

/// # Safety
/// `ptr..ptr + len` came from [`map_shared_anonymous`] and nothing refers to it anymore.
pub(crate) unsafe fn unmap_shared(ptr: NonNull<u8>, len: usize) {
    // SAFETY: per the contract, a whole block from `map` with the page alignment.
    unsafe { unmap(ptr, len, page_size()) }
}

/// One process under miri.
pub(crate) fn process_id() -> u32 {
    1
}

pub(crate) fn process_alive(pid: u32) -> bool {
    pid == 1
}

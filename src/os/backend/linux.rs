//! The kernel calls, through `libc`. Nothing outside this file calls a libc memory function.
//!
//! Every function here either returns an `errno` or succeeds; none panics, none allocates
//! (the global allocator is built on them).

use super::{HugeTlb, Purge, Request};
use core::ffi::CStr;
use core::ptr::{self, NonNull};

pub(crate) fn errno() -> i32 {
    // SAFETY: `__errno_location` returns the calling thread's errno slot, valid for the
    // thread's lifetime.
    unsafe { *libc::__errno_location() }
}

/// The base page size from `sysconf`, or 4096 if it cannot be read.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as usize } else { 4096 }
}

/// Maps `req.len` bytes aligned to `req.align`, zero-filled. Alignment beyond what `mmap`
/// gives is obtained by over-reserving `len + align - granule` bytes and unmapping the
/// misaligned head and the unused tail, so it costs one extra `munmap` or two, never a copy.
pub(crate) fn map(req: &Request) -> Result<NonNull<u8>, i32> {
    if req.huge_tlb.is_some() && req.align > req.granule {
        return map_huge_over_aligned(req);
    }
    let natural = req.granule.max(page_size());
    let over = if req.align > natural { req.align - req.granule } else { 0 };
    let total = req.len.checked_add(over).ok_or(libc::ENOMEM)?;
    let prot = if req.reserve_only { libc::PROT_NONE } else { libc::PROT_READ | libc::PROT_WRITE };
    let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    if req.reserve_only {
        flags |= libc::MAP_NORESERVE;
    }
    if req.populate && over == 0 {
        // With an over-reservation, populate after trimming instead (below), so the trimmed
        // parts are never faulted in.
        flags |= libc::MAP_POPULATE;
    }
    match req.huge_tlb {
        None => {}
        Some(HugeTlb::Size2M) => flags |= libc::MAP_HUGETLB | libc::MAP_HUGE_2MB,
        Some(HugeTlb::Size1G) => flags |= libc::MAP_HUGETLB | libc::MAP_HUGE_1GB,
    }
    // SAFETY: an anonymous mapping at a kernel-chosen address aliases no existing memory.
    let raw = unsafe { libc::mmap(ptr::null_mut(), total, prot, flags, -1, 0) };
    if raw == libc::MAP_FAILED {
        return Err(errno());
    }
    let base = raw.cast::<u8>();
    if over == 0 {
        // SAFETY: mmap never returns null on success (MAP_FIXED was not asked for).
        return Ok(unsafe { NonNull::new_unchecked(base) });
    }
    let head = base.addr().next_multiple_of(req.align) - base.addr();
    let tail = over - head;
    // A failed trim (the kernel can refuse to split a mapping at its map-count limit) only
    // leaves address space mapped.
    // SAFETY: `head` and `tail` are multiples of the granule (the base and `align` are
    // granule-aligned) and lie inside the mapping just created, which nobody else knows of.
    unsafe {
        let aligned = base.add(head);
        if head > 0 {
            libc::munmap(base.cast(), head);
        }
        if tail > 0 {
            libc::munmap(aligned.add(req.len).cast(), tail);
        }
        if req.populate && !req.reserve_only {
            // Best effort, as MAP_POPULATE is: a failure only means later page faults.
            libc::madvise(aligned.cast(), req.len, libc::MADV_WILLNEED);
            prefault(aligned, req.len);
        }
        Ok(NonNull::new_unchecked(aligned))
    }
}

/// Hugetlbfs pages with an alignment beyond their own size. Over-reserving with hugetlb
/// pages would take huge pages for the trimmed parts (and fail where just enough are free),
/// so the aligned address range is reserved with ordinary `PROT_NONE` pages and the huge
/// pages are mapped over it with `MAP_FIXED`.
fn map_huge_over_aligned(req: &Request) -> Result<NonNull<u8>, i32> {
    let total = req.len.checked_add(req.align).ok_or(libc::ENOMEM)?;
    let page = page_size();
    let reservation = Request {
        len: total,
        align: page,
        granule: page,
        huge_tlb: None,
        reserve_only: true,
        populate: false,
    };
    let base = map(&reservation)?.as_ptr();
    let head = base.addr().next_multiple_of(req.align) - base.addr();
    let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_HUGETLB;
    flags |= match req.huge_tlb {
        Some(HugeTlb::Size1G) => libc::MAP_HUGE_1GB,
        _ => libc::MAP_HUGE_2MB,
    };
    if req.populate {
        flags |= libc::MAP_POPULATE;
    }
    // SAFETY: `base + head .. + len` lies inside the reservation just made, which nobody else
    // knows of; MAP_FIXED replaces exactly that part of it.
    let raw = unsafe {
        libc::mmap(base.add(head).cast(), req.len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0)
    };
    if raw == libc::MAP_FAILED {
        let err = errno();
        // SAFETY: the whole reservation is still ours and unused.
        unsafe { libc::munmap(base.cast(), total) };
        return Err(err);
    }
    // SAFETY: the reserved parts before and after the huge pages are ours and unused;
    // `head` and the tail are multiples of the base page. A failed trim (the kernel can
    // refuse to split a mapping at its map-count limit) only leaves address space reserved.
    unsafe {
        if head > 0 {
            libc::munmap(base.cast(), head);
        }
        let tail = total - head - req.len;
        if tail > 0 {
            libc::munmap(base.add(head + req.len).cast(), tail);
        }
    }
    // SAFETY: mmap never returns null on success.
    Ok(unsafe { NonNull::new_unchecked(raw.cast()) })
}

/// Touches one byte per page so a trimmed mapping is as faulted-in as `MAP_POPULATE` makes one.
///
/// # Safety
/// `ptr..ptr + len` is a readable and writable mapping that holds no Rust objects yet.
unsafe fn prefault(ptr: *mut u8, len: usize) {
    let step = page_size();
    let mut offset = 0;
    while offset < len {
        // SAFETY: in bounds per the contract; a volatile zero store keeps the fresh zero
        // contents and cannot be elided.
        unsafe { ptr.add(offset).write_volatile(0) };
        offset += step;
    }
}

/// Unmaps a mapping (or a granule-aligned part of one).
///
/// # Safety
/// `ptr..ptr + len` was returned by [`map`] (or is part of it) and nothing refers to it anymore.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, len: usize, _align: usize) {
    // SAFETY: per the contract the range is ours to unmap. Unmapping a whole mapping cannot
    // fail; a part of one can (splitting at the map-count limit), and then it merely stays
    // mapped.
    unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
}

/// Releases the physical pages behind `ptr..ptr + len`.
///
/// # Safety
/// The range is page-aligned, inside a mapping from [`map`], and holds no live objects the
/// caller still reads (their bytes become zero, or with `Lazy` undefined until rewritten).
pub(crate) unsafe fn purge(ptr: NonNull<u8>, len: usize, how: Purge) -> Result<(), i32> {
    let advice = match how {
        Purge::Discard => libc::MADV_DONTNEED,
        Purge::Lazy => libc::MADV_FREE,
    };
    // SAFETY: per the contract the range is mapped and its contents are disposable.
    let rc = unsafe { libc::madvise(ptr.as_ptr().cast(), len, advice) };
    if rc == 0 {
        return Ok(());
    }
    let err = errno();
    if how == Purge::Lazy && err == libc::EINVAL {
        // MADV_FREE is refused on hugetlb and shared mappings, and on kernels before 4.5.
        // SAFETY: as above.
        return unsafe { purge(ptr, len, Purge::Discard) };
    }
    Err(err)
}

/// Makes `ptr..ptr + len` readable and writable (`commit`) or inaccessible (`!commit`).
/// Taking access away also releases the pages, so a later commit reads zeros.
///
/// # Safety
/// The range is page-aligned and inside a mapping from [`map`]; when decommitting, nothing
/// in it is still in use.
pub(crate) unsafe fn protect(ptr: NonNull<u8>, len: usize, commit: bool) -> Result<(), i32> {
    if !commit {
        // SAFETY: per the contract the contents are disposable.
        unsafe { purge(ptr, len, Purge::Discard)? };
    }
    let prot = if commit { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_NONE };
    // SAFETY: per the contract the range is one of our mappings.
    let rc = unsafe { libc::mprotect(ptr.as_ptr().cast(), len, prot) };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// Asks for (`on`) or forbids (`!on`) transparent huge pages on the range.
///
/// # Safety
/// The range is page-aligned and inside a mapping from [`map`].
pub(crate) unsafe fn advise_transparent_huge(ptr: NonNull<u8>, len: usize, on: bool) -> Result<(), i32> {
    let advice = if on { libc::MADV_HUGEPAGE } else { libc::MADV_NOHUGEPAGE };
    // SAFETY: per the contract the range is one of our mappings; this advice never changes
    // its contents.
    let rc = unsafe { libc::madvise(ptr.as_ptr().cast(), len, advice) };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// `MADV_POPULATE_WRITE` (Linux 5.14), spelled out: libc declares it only in recent versions.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// Faults every page of the range in, writable, as if each were written (without changing
/// a byte). `EINVAL` on kernels older than 5.14; `ENOMEM` or `EFAULT` when the memory
/// cannot be had (for shared memory: the tmpfs is full).
///
/// # Safety
/// The range is page-aligned and inside one of our mappings.
pub(crate) unsafe fn populate_write(ptr: NonNull<u8>, len: usize) -> Result<(), i32> {
    // SAFETY: per the contract the range is one of our mappings; populating never changes
    // its contents.
    let rc = unsafe { libc::madvise(ptr.as_ptr().cast(), len, MADV_POPULATE_WRITE) };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// Grows or shrinks a mapping with `mremap`: in place if `may_move` is false; anywhere if
/// it is true and `align` is at most a page; otherwise into a freshly reserved range aligned
/// to `align` (`MREMAP_FIXED`), so over-aligned mappings keep their alignment.
///
/// # Safety
/// `ptr..ptr + old_len` is a whole mapping from [`map`] aligned to `align`; if it moves,
/// the old addresses are dead and the caller must not use them.
pub(crate) unsafe fn remap(
    ptr: NonNull<u8>,
    old_len: usize,
    new_len: usize,
    align: usize,
    may_move: bool,
) -> Result<NonNull<u8>, i32> {
    if may_move && align > page_size() {
        let reservation = Request {
            len: new_len,
            align,
            granule: page_size(),
            huge_tlb: None,
            reserve_only: true,
            populate: false,
        };
        let target = map(&reservation)?;
        let flags = libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED;
        // SAFETY: the old range is one whole mapping of ours (contract); the target is the
        // reservation just made, which MREMAP_FIXED replaces.
        let raw = unsafe { libc::mremap(ptr.as_ptr().cast(), old_len, new_len, flags, target.as_ptr()) };
        if raw == libc::MAP_FAILED {
            let err = errno();
            // SAFETY: the reservation is ours and unused.
            unsafe { libc::munmap(target.as_ptr().cast(), new_len) };
            return Err(err);
        }
        return Ok(target);
    }
    let flags = if may_move { libc::MREMAP_MAYMOVE } else { 0 };
    // SAFETY: per the contract the old range is one whole mapping of ours.
    let raw = unsafe { libc::mremap(ptr.as_ptr().cast(), old_len, new_len, flags) };
    if raw == libc::MAP_FAILED {
        return Err(errno());
    }
    // SAFETY: mremap never returns null on success.
    Ok(unsafe { NonNull::new_unchecked(raw.cast()) })
}

/// Largest node number `bind` accepts: the mask below has this many bits.
pub(crate) const MAX_NODES: usize = 1024;

/// Binds the range's pages to one NUMA node (`mbind(MPOL_BIND)`), moving pages already there.
///
/// # Safety
/// The range is page-aligned and inside a mapping from [`map`].
pub(crate) unsafe fn bind(ptr: NonNull<u8>, len: usize, node: usize) -> Result<(), i32> {
    const MPOL_BIND: libc::c_long = 2;
    const MPOL_MF_MOVE: libc::c_long = 1 << 1;
    let mut mask = [0u64; MAX_NODES / 64];
    mask[node / 64] |= 1 << (node % 64);
    // The kernel reads `maxnode - 1` bits (a long-standing off-by-one that libnuma also
    // works around), hence the + 1.
    let maxnode = (MAX_NODES + 1) as libc::c_ulong;
    // SAFETY: mbind reads `mask` (which outlives the call) and changes only the placement
    // policy of our own range.
    let rc = unsafe {
        libc::syscall(libc::SYS_mbind, ptr.as_ptr(), len, MPOL_BIND, mask.as_ptr(), maxnode, MPOL_MF_MOVE)
    };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// The CPU the calling thread runs on and that CPU's NUMA node.
pub(crate) fn getcpu() -> Result<(u32, u32), i32> {
    let mut cpu: libc::c_uint = 0;
    let mut node: libc::c_uint = 0;
    // SAFETY: getcpu writes two unsigned ints through the pointers, which are valid; the
    // third (cache) argument is unused since Linux 2.6.24 and may be null.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_getcpu,
            &mut cpu as *mut libc::c_uint,
            &mut node as *mut libc::c_uint,
            ptr::null_mut::<libc::c_void>(),
        )
    };
    if rc == 0 { Ok((cpu, node)) } else { Err(errno()) }
}

/// Reads a small file (a sysfs or procfs entry) into `buf` without allocating. Returns the
/// number of bytes read, or `None` if it cannot be opened or read.
pub(crate) fn read_small_file(path: &CStr, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: `path` is NUL-terminated; open has no other preconditions.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut filled = 0;
    let result = loop {
        if filled == buf.len() {
            break Some(filled);
        }
        // SAFETY: reads at most the unfilled remainder of `buf`, which is valid for writes.
        let n = unsafe { libc::read(fd, buf[filled..].as_mut_ptr().cast(), buf.len() - filled) };
        match n {
            0 => break Some(filled),
            n if n > 0 => filled += n as usize,
            _ if errno() == libc::EINTR => continue,
            _ => break None,
        }
    };
    // SAFETY: `fd` is the descriptor opened above, closed exactly once.
    unsafe { libc::close(fd) };
    result
}

/// Gives the CPU to another runnable thread.
#[cfg_attr(loom, allow(dead_code))] // loom builds yield to the model instead
pub(crate) fn yield_now() {
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

/// Milliseconds of `CLOCK_MONOTONIC_COARSE` (a vDSO read, no syscall).
pub(crate) fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Sleeps while `*word == expected`, at most `timeout` if given (`FUTEX_WAIT`). Returns on
/// a wake, a timeout, a signal or a value change; callers re-check their condition.
pub(crate) fn futex_wait(
    word: &core::sync::atomic::AtomicU32,
    expected: u32,
    timeout: Option<core::time::Duration>,
    shared: bool,
) {
    let timeout = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let op = if shared { libc::FUTEX_WAIT } else { libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG };
    let timeout_ptr = timeout.as_ref().map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the futex word is a live, aligned u32; the timeout outlives the call.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, expected, timeout_ptr) };
}

/// Wakes up to `count` threads waiting on `word`.
pub(crate) fn futex_wake(word: &core::sync::atomic::AtomicU32, count: u32, shared: bool) {
    let op = if shared { libc::FUTEX_WAKE } else { libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG };
    // SAFETY: the futex word is a live, aligned u32.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, count) };
}

/// The value of environment variable `name`, without allocating.
pub(crate) fn env_var(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv reads the environment; the returned string lives as long as the
    // environment entry (the process does not modify its environment concurrently with
    // allocator start-up, which is when this is read).
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string.
    Some(unsafe { CStr::from_ptr(value) }.to_bytes())
}

/// Sets the calling thread's `errno`.
pub(crate) fn set_errno(value: i32) {
    // SAFETY: as in `errno`: the thread's own errno slot.
    unsafe { *libc::__errno_location() = value };
}

/// Copies up to `len` bytes from `src` to `dst`, stopping at the first page of `src` that
/// cannot be read; returns the bytes copied. `process_vm_readv` on this process reads
/// through the kernel, so an unmapped or unreadable page is an error, not a fault. Partial
/// transfers happen only between iovec elements, so the source is split at page
/// boundaries.
///
/// # Safety
/// `dst` has `len` writable bytes not overlapping `src`.
pub(crate) unsafe fn copy_readable(dst: *mut u8, src: *const u8, len: usize) -> usize {
    const PIECES: usize = 64;
    let page = page_size();
    let mut done = 0;
    while done < len {
        let mut remote = [libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 }; PIECES];
        let mut pieces = 0;
        let mut planned = done;
        while pieces < PIECES && planned < len {
            let at = src.wrapping_add(planned);
            let to_page_end = page - at.addr() % page;
            let piece = to_page_end.min(len - planned);
            remote[pieces] = libc::iovec { iov_base: at.cast_mut().cast(), iov_len: piece };
            pieces += 1;
            planned += piece;
        }
        let local = libc::iovec { iov_base: dst.wrapping_add(done).cast(), iov_len: planned - done };
        // SAFETY: the local iovec is inside `dst` (per the contract); the kernel checks the
        // remote ones and reports unreadable pages instead of faulting.
        let copied = unsafe {
            libc::process_vm_readv(libc::getpid(), &local, 1, remote.as_ptr(), pieces as libc::c_ulong, 0)
        };
        if copied <= 0 {
            break;
        }
        done += copied as usize;
        if done < planned {
            break;
        }
    }
    done
}

/// Registers fork handlers (`pthread_atfork`). Returns whether it worked.
pub(crate) fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) -> bool {
    // SAFETY: the handlers are plain functions with static lifetime.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) == 0 }
}

/// Writes `message` to standard error and aborts the process (no allocation, no unwinding).
pub(crate) fn fatal(message: &str) -> ! {
    let mut rest = message.as_bytes();
    while !rest.is_empty() {
        // SAFETY: writes from a live slice; a failed write only loses the message.
        let written = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if written <= 0 {
            break;
        }
        rest = &rest[written as usize..];
    }
    // SAFETY: abort takes no arguments and does not return.
    unsafe { libc::abort() }
}

/// The identity: without miri, pointers carry no borrow tags (see the fake backend).
#[inline(always)]
#[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
pub(crate) fn root_provenance(ptr: *mut u8) -> *mut u8 {
    ptr
}

/// Copies `name` (without NUL) into `buf` as a NUL-terminated C string, or `ENAMETOOLONG`.
fn c_name<'a>(name: &[u8], buf: &'a mut [u8; 256]) -> Result<&'a CStr, i32> {
    if name.len() >= buf.len() || name.contains(&0) {
        return Err(libc::ENAMETOOLONG);
    }
    buf[..name.len()].copy_from_slice(name);
    buf[name.len()] = 0;
    CStr::from_bytes_with_nul(&buf[..=name.len()]).map_err(|_| libc::EINVAL)
}

/// Maps `len` bytes of the open descriptor `fd` shared, read-write; closes `fd` either way.
fn map_shared_fd(fd: libc::c_int, len: usize) -> Result<NonNull<u8>, i32> {
    // SAFETY: a shared mapping of a file we hold open, at a kernel-chosen address, aliases
    // no memory of this process (other mappings of the same object are the point).
    let raw = unsafe {
        libc::mmap(ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
    };
    let result = if raw == libc::MAP_FAILED { Err(errno()) } else { Ok(raw.cast::<u8>()) };
    // SAFETY: `fd` is ours; the mapping keeps its own reference to the object.
    unsafe { libc::close(fd) };
    // SAFETY: mmap never returns null on success.
    result.map(|p| unsafe { NonNull::new_unchecked(p) })
}

/// Creates the POSIX shared-memory object `name` (`/name`, exclusive, mode 0600), sizes it to
/// `len` and maps it shared. On failure nothing is left behind.
pub(crate) fn shm_create(name: &[u8], len: usize) -> Result<NonNull<u8>, i32> {
    let mut buf = [0u8; 256];
    let path = c_name(name, &mut buf)?;
    let len_off = libc::off_t::try_from(len).map_err(|_| libc::EFBIG)?;
    // SAFETY: `path` is a NUL-terminated string; shm_open has no memory preconditions.
    let fd = unsafe { libc::shm_open(path.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0o600) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: `fd` is the descriptor just opened.
    let sized = unsafe { libc::ftruncate(fd, len_off) };
    let mapped = if sized == 0 { map_shared_fd(fd, len) } else { Err(errno()) };
    if mapped.is_err() {
        if sized != 0 {
            // SAFETY: `fd` is still ours (map_shared_fd was not called, so it is not closed).
            unsafe { libc::close(fd) };
        }
        // SAFETY: as for shm_open; removes the object this call created.
        unsafe { libc::shm_unlink(path.as_ptr()) };
    }
    mapped
}

/// Opens the existing shared-memory object `name` and maps all of it shared: returns the
/// mapping and its length (the object's size from `fstat`).
pub(crate) fn shm_open(name: &[u8]) -> Result<(NonNull<u8>, usize), i32> {
    let mut buf = [0u8; 256];
    let path = c_name(name, &mut buf)?;
    // SAFETY: `path` is a NUL-terminated string.
    let fd = unsafe { libc::shm_open(path.as_ptr(), libc::O_RDWR, 0) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `fd` is open; `st` is a valid out-pointer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        let e = errno();
        // SAFETY: `fd` is ours.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let len = usize::try_from(st.st_size).unwrap_or(0);
    if len == 0 {
        // SAFETY: `fd` is ours.
        unsafe { libc::close(fd) };
        return Ok((NonNull::dangling(), 0));
    }
    map_shared_fd(fd, len).map(|p| (p, len))
}

/// Removes the name `name` (the memory lives on until the last mapping goes).
pub(crate) fn shm_unlink(name: &[u8]) -> Result<(), i32> {
    let mut buf = [0u8; 256];
    let path = c_name(name, &mut buf)?;
    // SAFETY: `path` is a NUL-terminated string.
    if unsafe { libc::shm_unlink(path.as_ptr()) } == 0 { Ok(()) } else { Err(errno()) }
}

/// Maps `len` bytes of anonymous memory shared (`MAP_SHARED | MAP_ANONYMOUS`): shared with
/// children forked later, and the in-process form of a shared region.
pub(crate) fn map_shared_anonymous(len: usize) -> Result<NonNull<u8>, i32> {
    // SAFETY: an anonymous mapping at a kernel-chosen address aliases no existing memory.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(errno());
    }
    // SAFETY: mmap never returns null on success.
    Ok(unsafe { NonNull::new_unchecked(raw.cast()) })
}

/// Unmaps a shared mapping.
///
/// # Safety
/// `ptr..ptr + len` is a whole mapping from [`shm_create`], [`shm_open`] or
/// [`map_shared_anonymous`], and nothing refers to it anymore.
pub(crate) unsafe fn unmap_shared(ptr: NonNull<u8>, len: usize) {
    // SAFETY: per the contract the mapping is ours and unused.
    unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
}

/// This process's id.
pub(crate) fn process_id() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// Whether process `pid` exists (`kill(pid, 0)`): only `ESRCH` means it is gone. A zombie —
/// dead but not yet reaped by its parent — still counts as existing.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission; nothing is delivered.
    unsafe { libc::kill(pid, 0) == 0 || errno() != libc::ESRCH }
}

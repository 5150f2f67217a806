//! [`SharedMapping`]: memory mapped `MAP_SHARED`, by name (POSIX shared memory) or anonymous.
//!
//! This is the kernel half of the crate's shared-memory IPC: it creates, opens, maps and
//! unlinks; it knows nothing of what the bytes mean. Everything read from a shared mapping
//! is written by another process, so the layers above treat it as hostile input.

use super::{OsError, backend};
use core::ptr::NonNull;

/// A shared mapping, unmapped on drop (the name, if any, is not unlinked: see
/// [`SharedMapping::unlink`]).
///
/// Invariants: `ptr..ptr + len` is mapped readable and writable, shared, for the value's
/// lifetime; `len > 0`. Other processes may write any byte of it at any time, so the type
/// hands out raw pointers only.
#[derive(Debug)]
pub struct SharedMapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is an address range shared by design; all access goes through raw
// pointers whose synchronisation is the caller's.
unsafe impl Send for SharedMapping {}
// SAFETY: as above; `&SharedMapping` only gives out the address and length.
unsafe impl Sync for SharedMapping {}

fn syscall(call: &'static str) -> impl Fn(i32) -> OsError {
    move |errno| OsError::Syscall { call, errno }
}

impl SharedMapping {
    /// Creates the shared-memory object `name` (a POSIX name such as `b"/orders"`: one
    /// leading slash, no other; the caller validates it) exclusively with mode 0600, sizes it
    /// to `len` bytes and maps it. Fails with `EEXIST` if the name is taken. On failure the
    /// name is not left behind.
    pub fn create(name: &[u8], len: usize) -> Result<Self, OsError> {
        if len == 0 {
            return Err(OsError::InvalidSize { requested: len });
        }
        let ptr = backend::shm_create(name, len).map_err(syscall("shm_open"))?;
        Ok(SharedMapping { ptr, len })
    }

    /// Opens the existing object `name` and maps all of it; the length is the object's size.
    /// An object of size 0 (created but not yet sized) is [`OsError::InvalidSize`].
    pub fn open(name: &[u8]) -> Result<Self, OsError> {
        let (ptr, len) = backend::shm_open(name).map_err(syscall("shm_open"))?;
        if len == 0 {
            return Err(OsError::InvalidSize { requested: 0 });
        }
        Ok(SharedMapping { ptr, len })
    }

    /// Maps `len` bytes of zeroed anonymous shared memory: the in-process form (and what a
    /// `fork`ed child inherits).
    pub fn anonymous(len: usize) -> Result<Self, OsError> {
        if len == 0 {
            return Err(OsError::InvalidSize { requested: len });
        }
        let ptr = backend::map_shared_anonymous(len).map_err(syscall("mmap"))?;
        Ok(SharedMapping { ptr, len })
    }

    /// Removes the name `name`; mappings already made stay valid until they are dropped.
    pub fn unlink(name: &[u8]) -> Result<(), OsError> {
        backend::shm_unlink(name).map_err(syscall("shm_unlink"))
    }

    /// Asks for transparent huge pages on the mapping (`MADV_HUGEPAGE`): honoured for shared
    /// memory when `/sys/kernel/mm/transparent_hugepage/shmem_enabled` allows it.
    pub fn advise_huge_pages(&self) -> Result<(), OsError> {
        // SAFETY: the whole range is one live mapping (the type's invariant).
        unsafe { backend::advise_transparent_huge(self.ptr, self.len, true) }.map_err(syscall("madvise"))
    }

    /// Faults every page in, writable (`MADV_POPULATE_WRITE`), so that first touches do not
    /// take page faults on a hot path; for a named object this also allocates its memory,
    /// which is how a full `/dev/shm` shows up here (`ENOMEM`/`EFAULT`) rather than as a
    /// `SIGBUS` on first touch. Kernels before 5.14 refuse with `EINVAL`.
    pub fn populate(&self) -> Result<(), OsError> {
        // SAFETY: the whole range is one live mapping (the type's invariant).
        unsafe { backend::populate_write(self.ptr, self.len) }.map_err(syscall("madvise"))
    }

    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours (the invariant) and, being dropped, unreferenced by
        // this value; borrowers are tied to its lifetime.
        unsafe { backend::unmap_shared(self.ptr, self.len) }
    }
}

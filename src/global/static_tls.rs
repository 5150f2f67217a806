//! The thread cache in the static TLS block, reached with the *initial-exec* model: for a
//! shared library that is loaded at program start (`LD_PRELOAD`, or linked), as
//! `libpinalloc.so` is. Feature `initial-exec-tls`, x86-64 Linux.
//!
//! Rust's `thread_local!` in a shared object uses the general-dynamic model: every access
//! calls `__tls_get_addr`, about ten instructions and a call that spills registers, which
//! made the by-pointer `free` a five-register function and cost 9% of the instructions of
//! a malloc-heavy C program. Stable Rust cannot choose a TLS model, so the cache's storage
//! is declared here in assembly, in `.tbss`, and found as a C compiler does for
//! `__thread __attribute__((tls_model("initial-exec")))`:
//!
//! ```text
//! mov  %fs:0, %reg                               # the thread pointer
//! add  pinalloc_thread_cache@GOTTPOFF(%rip), %reg # + the block's offset, fixed at load
//! ```
//!
//! `.tbss` starts zeroed in every thread, so the cache's initial state must be all-zero
//! bytes: `ThreadCache::FRESH` is (a test checks `mem::zeroed` against it).
//!
//! The cost: the dynamic loader must find room for the block in the static TLS area. It
//! always does for libraries loaded at start-up; a library `dlopen`ed later gets only
//! glibc's small surplus (`glibc.rtld.optional_static_tls`, 512 bytes by default), less
//! than the cache's size, so `dlopen` fails with "cannot allocate memory in static TLS
//! block". Rust programs and libraries meant for `dlopen` leave the feature off.

use super::thread_cache::ThreadCache;

core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".globl pinalloc_thread_cache",
    // Not exported from a shared object, and never interposed.
    ".hidden pinalloc_thread_cache",
    ".type pinalloc_thread_cache, @object",
    ".p2align 6",
    "pinalloc_thread_cache:",
    ".zero {size}",
    ".size pinalloc_thread_cache, {size}",
    ".popsection",
    size = const core::mem::size_of::<ThreadCache>(),
    options(att_syntax),
);

/// This thread's cache: two instructions, no call.
#[inline(always)]
pub(crate) fn current() -> *mut ThreadCache {
    let cache: *mut ThreadCache;
    // SAFETY: reads the thread pointer (the TCB's self pointer at %fs:0, x86-64 ABI) and the
    // GOT slot that the loader fills with the block's offset from it; writes only `cache`.
    // `pure, nomem`: the result is fixed for the thread that runs it.
    unsafe {
        core::arch::asm!(
            "movq %fs:0, {cache}",
            "addq pinalloc_thread_cache@GOTTPOFF(%rip), {cache}",
            cache = out(reg) cache,
            options(att_syntax, pure, nomem, nostack),
        );
    }
    cache
}

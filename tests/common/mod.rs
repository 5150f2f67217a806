//! Helpers shared by the integration tests.

use proptest::test_runner::Config;

/// A proptest configuration running `native` cases normally and `miri` cases under miri,
/// where failures are not persisted (miri's isolation forbids the file system).
#[allow(dead_code)] // each test binary uses its own subset of the helpers
pub fn proptest_config(native: u32, miri: u32) -> Config {
    if cfg!(miri) {
        Config { cases: miri, failure_persistence: None, ..Config::default() }
    } else {
        Config { cases: native, ..Config::default() }
    }
}

/// Whether every byte of `bytes` is `byte`. Compares page-sized chunks with `==` (a
/// `memcmp`), which miri executes far faster than a byte-by-byte loop.
#[allow(dead_code)]
pub fn is_filled(bytes: &[u8], byte: u8) -> bool {
    let pattern = [byte; 4096];
    bytes.chunks(pattern.len()).all(|chunk| chunk == &pattern[..chunk.len()])
}

/// The pattern a block stamped with `seed` carries: byte `i` is `seed + i` (mod 256).
fn period(seed: u8) -> [u8; 256] {
    core::array::from_fn(|i| seed.wrapping_add(i as u8))
}

/// Stamps the first `len` bytes at `ptr` with `seed`'s pattern, a 256-byte period at a time
/// (one copy each, which miri runs far faster than a byte loop).
///
/// # Safety
/// `ptr` is valid for writes of `len` bytes.
#[allow(dead_code)]
pub unsafe fn stamp(ptr: *mut u8, len: usize, seed: u8) {
    let period = period(seed);
    for start in (0..len).step_by(period.len()) {
        // SAFETY: `start + n <= len`, and the caller vouches for `len` bytes.
        unsafe { ptr.add(start).copy_from_nonoverlapping(period.as_ptr(), (len - start).min(period.len())) };
    }
}

/// Whether the first `len` bytes at `ptr` still carry `seed`'s pattern (see [`stamp`]).
///
/// # Safety
/// `ptr` is valid for reads of `len` bytes.
#[allow(dead_code)]
pub unsafe fn is_stamped(ptr: *const u8, len: usize, seed: u8) -> bool {
    let period = period(seed);
    (0..len).step_by(period.len()).all(|start| {
        let n = (len - start).min(period.len());
        // SAFETY: `start + n <= len`, and the caller vouches for `len` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(ptr.add(start), n) };
        bytes == &period[..n]
    })
}

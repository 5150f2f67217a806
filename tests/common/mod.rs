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

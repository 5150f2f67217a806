//! Reading the kernel's small text files (`/sys`, `/proc`) without allocating, so the
//! global allocator can consult them while serving a call. The parsers are fuzzed
//! (`fuzz/fuzz_targets/sysfs_parse.rs`).

use super::backend;
use core::ffi::CStr;

/// Enough for every file read here (`cpulist` of a 1024-CPU node is well under this).
const BUF: usize = 512;

/// Calls `f` with the contents of the file at `path`, trimmed of trailing whitespace, or
/// returns `None` if it cannot be read or does not fit the buffer (a cut-off list or number
/// would give wrong answers).
pub fn with_file<R>(path: &CStr, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let mut buf = [0u8; BUF];
    let n = backend::read_small_file(path, &mut buf)?;
    if n == buf.len() {
        return None;
    }
    Some(f(buf[..n].trim_ascii_end()))
}

/// Parses a decimal number, ignoring surrounding whitespace.
pub fn parse_u64(text: &[u8]) -> Option<u64> {
    let text = text.trim_ascii();
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        let digit = (b as char).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Iterates over the ranges of a kernel CPU or node list such as `0-3,8,10-11`.
/// A malformed entry (not a number, or a range whose end is below its start) ends the
/// iteration.
pub fn list_ranges(text: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    text.trim_ascii().split(|&b| b == b',').filter(|part| !part.is_empty()).map_while(|part| {
        match part.iter().position(|&b| b == b'-') {
            Some(dash) => {
                let (lo, hi) = (parse_u64(&part[..dash])?, parse_u64(&part[dash + 1..])?);
                (lo <= hi).then_some((lo, hi))
            }
            None => parse_u64(part).map(|n| (n, n)),
        }
    })
}

/// Whether `n` is in a kernel list such as `0-3,8`.
pub fn list_contains(text: &[u8], n: u64) -> bool {
    list_ranges(text).any(|(lo, hi)| lo <= n && n <= hi)
}

/// The largest number in a kernel list, if any.
pub fn list_max(text: &[u8]) -> Option<u64> {
    list_ranges(text).map(|(_, hi)| hi).max()
}

/// The bracketed choice of a kernel setting such as `always [madvise] never`.
pub fn selected_choice(text: &[u8]) -> Option<&[u8]> {
    let open = text.iter().position(|&b| b == b'[')?;
    let close = open + text[open..].iter().position(|&b| b == b']')?;
    Some(&text[open + 1..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_lists() {
        assert_eq!(parse_u64(b" 42\n"), Some(42));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"4x"), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
        assert!(list_contains(b"0-3,8,10-11", 8));
        assert!(list_contains(b"0-3,8,10-11", 11));
        assert!(!list_contains(b"0-3,8,10-11", 9));
        assert_eq!(list_max(b"0-3,8,10-11\n"), Some(11));
        assert_eq!(list_max(b"0"), Some(0));
        assert_eq!(list_max(b""), None);
        // Found by the fuzzer: a reversed range is malformed, not a range ending at 6.
        assert_eq!(list_max(b"32-6"), None);
        assert_eq!(list_max(b"1,32-6,40"), Some(1));
        assert_eq!(selected_choice(b"always [madvise] never"), Some(&b"madvise"[..]));
        assert_eq!(selected_choice(b"always madvise"), None);
    }
}

//! The parsers for the kernel's text files (CPU and node lists, numbers, bracketed choices):
//! no panic on any input, and answers consistent with each other.
//! Run: `cargo +nightly fuzz run sysfs_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinalloc::fuzzing::sysfs;

fuzz_target!(|text: &[u8]| {
    let _ = sysfs::parse_u64(text);
    if let Some(choice) = sysfs::selected_choice(text) {
        assert!(!choice.contains(&b']'));
    }
    if let Some(max) = sysfs::list_max(text) {
        assert!(sysfs::list_contains(text, max), "the maximum of a list is in it");
        assert!(max == u64::MAX || !sysfs::list_contains(text, max + 1) || text.contains(&b'-'));
    }
});

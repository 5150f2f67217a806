//! The "faster" shape: one thread, small pools, any sequence of frames (random lengths and
//! write chunk sizes), partial writes and releases in any order, checked against a model
//! (`tests/common/buffer_model.rs`). Run: `cargo +nightly fuzz run buffer_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/buffer_model.rs"]
mod buffer_model;

fuzz_target!(|data: &[u8]| {
    let (capacity, slots, ops) = buffer_model::decode(data, 4096, 1024);
    buffer_model::run(capacity, slots, &ops);
});

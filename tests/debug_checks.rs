//! The allocator's debug checks catch misuse (feature `debug-checks`): each misuse runs in a
//! child process (this test binary re-run on one test), which must abort with the check's
//! message. The rest of the suite runs under the checks too (`cargo test --features
//! debug-checks`), which shows they stay quiet on correct programs.
#![cfg(all(feature = "debug-checks", not(miri), not(loom)))]

use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

#[global_allocator]
static GLOBAL: pinalloc::PinAlloc = pinalloc::PinAlloc::new();

/// The environment variable naming the misuse the child commits.
const MISUSE: &str = "PINALLOC_TEST_MISUSE";

/// Runs `misuse` in a child and returns its standard error, checking it aborted.
fn run_child(misuse: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "misuse_child", "--nocapture", "--test-threads=1"])
        .env(MISUSE, misuse)
        .output()
        .expect("re-running the test binary");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{misuse}: {:?}\n{stderr}", output.status);
    stderr
}

/// The child: commits the misuse named in the environment (does nothing in a normal run).
#[test]
fn misuse_child() {
    let Ok(misuse) = std::env::var(MISUSE) else { return };
    let small = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: none; each arm commits its misuse on purpose, and the allocator must abort at
    // the call that commits it.
    unsafe {
        match misuse.as_str() {
            "double_free" => {
                let p = GLOBAL.alloc(small);
                GLOBAL.dealloc(p, small);
                GLOBAL.dealloc(p, small);
            }
            "wrong_layout" => {
                let p = GLOBAL.alloc(small);
                GLOBAL.dealloc(p, Layout::from_size_align(512, 8).unwrap());
            }
            "interior_pointer" => {
                let p = GLOBAL.alloc(small);
                GLOBAL.dealloc(p.add(16), small);
            }
            "write_after_free" => {
                let p = GLOBAL.alloc(small);
                GLOBAL.dealloc(p, small);
                p.add(40).write(7);
                // The block comes back once the allocations have used up the blocks before
                // it (the thread's freed list is taken over when the other runs dry); the
                // allocation that takes it must abort.
                for _ in 0..1 << 16 {
                    let _ = GLOBAL.alloc(small);
                }
            }
            "large_layout_too_big" => {
                let layout = Layout::from_size_align(1 << 20, 8).unwrap();
                let p = GLOBAL.alloc(layout);
                GLOBAL.dealloc(p, Layout::from_size_align(64 << 20, 8).unwrap());
            }
            other => panic!("unknown misuse {other}"),
        }
    }
    // Only reached if the check missed: the parent sees a normal exit and fails.
}

#[test]
fn double_free_aborts() {
    assert!(run_child("double_free").contains("double free"));
}

#[test]
fn free_with_another_class_layout_aborts() {
    assert!(run_child("wrong_layout").contains("layout of another size class"));
}

#[test]
fn free_of_an_interior_pointer_aborts() {
    assert!(run_child("interior_pointer").contains("inside a block"));
}

#[test]
fn write_after_free_is_caught_at_the_next_allocation() {
    assert!(run_child("write_after_free").contains("written after it was freed"));
}

#[test]
fn large_free_with_a_too_large_layout_aborts() {
    assert!(run_child("large_layout_too_big").contains("larger layout"));
}

#[test]
fn fresh_blocks_are_junk_not_zero() {
    let layout = Layout::from_size_align(200, 8).unwrap();
    // SAFETY: allocated and freed with the same layout; only read after being handed out.
    unsafe {
        let p = GLOBAL.alloc(layout);
        assert!(std::slice::from_raw_parts(p, 200).iter().all(|&b| b == 0xA5), "junk-filled");
        GLOBAL.dealloc(p, layout);
    }
}

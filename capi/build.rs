//! Links the unwinder statically (`libgcc_eh.a`) instead of as `libgcc_s.so.1`, where the
//! C toolchain has it.
//!
//! Rust's standard library needs an unwinder, and on GNU/Linux it names `libgcc_s`: every
//! program run under `LD_PRELOAD=libpinalloc.so` would have the loader find, map and
//! relocate one more library before `main`. That was 0.075 ms of a 0.78 ms `/bin/true`
//! (300 runs; mimalloc, which needs no unwinder, starts in 0.74 ms). The static archive
//! resolves the unwinder's symbols first (this crate's libraries come before the standard
//! library's on the link line), so `--as-needed` drops `libgcc_s`. Its symbols stay
//! private to the library: a `cdylib` exports only the C ABI, so a C++ program's exceptions
//! still go through its own `libgcc_s` (`tests/c/exceptions.cpp`).
//!
//! Where the archive is missing (another toolchain), nothing changes: `libgcc_s` is linked
//! as before.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.contains("-linux-gnu") {
        return;
    }
    // The C compiler rustc links with, asked where its archive is. It echoes the bare name
    // when it has none.
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".into());
    let found = Command::new(&linker)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    match found.as_deref().map(Path::new) {
        Some(archive) if archive.is_absolute() && archive.exists() => {
            let dir = archive.parent().expect("an absolute file path has a parent");
            println!("cargo::rustc-link-search=native={}", dir.display());
            println!("cargo::rustc-link-lib=static:-bundle=gcc_eh");
        }
        _ => println!("cargo::warning={linker} has no libgcc_eh.a: libpinalloc.so will load libgcc_s.so.1"),
    }
}

//! libpinalloc.so from the outside: C and C++ test programs (`tests/c/`) built with the
//! system's compilers and run both under `LD_PRELOAD` and linked against the library, and real,
//! unmodified programs (python3, git) run under `LD_PRELOAD`. Each program must exit 0
//! (and the C ones print "ok"); each checks that pinalloc really served it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The directory holding libpinalloc.so: `cargo test` builds it (the crate's cdylib) next to
/// the test executable, in `target/<profile>/deps/`.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("target/<profile>/deps/<test>").to_path_buf();
    assert!(dir.join("libpinalloc.so").exists(), "libpinalloc.so not built in {}", dir.display());
    dir
}

fn library() -> PathBuf {
    library_dir().join("libpinalloc.so")
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// How a C program reaches the library.
#[derive(Clone, Copy, Debug)]
enum Use {
    Preloaded,
    Linked,
}

/// Compiles `tests/c/<file>` (once per variant), C or C++ by its extension, and returns the
/// executable.
fn build(file: &str, how: Use) -> PathBuf {
    // Two tests may build the same program: one compiler writes each output at a time.
    static COMPILING: OnceLock<std::sync::Mutex<()>> = OnceLock::new();
    let _serial = COMPILING.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{file}-{how:?}"));
    let (variable, fallback) = if file.ends_with(".cpp") { ("CXX", "c++") } else { ("CC", "cc") };
    let mut cc = Command::new(std::env::var(variable).unwrap_or_else(|_| fallback.into()));
    cc.args(["-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join("tests/c").join(file))
        .arg("-o")
        .arg(&out);
    if let Use::Linked = how {
        let dir = library_dir();
        cc.arg(format!("-L{}", dir.display())).arg("-lpinalloc").arg(format!("-Wl,-rpath,{}", dir.display()));
    }
    cc.arg("-ldl");
    let status =
        cc.status().unwrap_or_else(|e| panic!("{fallback} (or ${variable}) is needed for these tests: {e}"));
    assert!(status.success(), "compiling {file} failed");
    out
}

fn run(mut command: Command, how: Use) -> Output {
    if let Use::Preloaded = how {
        command.env("LD_PRELOAD", library());
    }
    command.output().expect("the program starts")
}

/// Runs a C or C++ test program and checks it printed "ok" and exited 0.
fn run_c(file: &str, how: Use, env: &[(&str, &str)]) {
    let mut command = Command::new(build(file, how));
    command.envs(env.iter().copied());
    let output = run(command, how);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "{file} ({how:?}) failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

#[test]
fn every_function_keeps_glibc_semantics_preloaded() {
    run_c("api.c", Use::Preloaded, &[]);
}

#[test]
fn every_function_keeps_glibc_semantics_linked() {
    run_c("api.c", Use::Linked, &[]);
}

#[test]
fn every_function_keeps_glibc_semantics_purging_at_once() {
    run_c("api.c", Use::Preloaded, &[("PINALLOC_PURGE_DELAY_MS", "0")]);
}

#[test]
fn blocks_cross_threads_and_threads_exit_cleanly_preloaded() {
    run_c("threads.c", Use::Preloaded, &[]);
}

#[test]
fn blocks_cross_threads_and_threads_exit_cleanly_linked() {
    run_c("threads.c", Use::Linked, &[]);
}

#[test]
fn fork_while_other_threads_allocate() {
    run_c("fork.c", Use::Preloaded, &[]);
}

#[test]
fn cpp_exceptions_unwind_through_the_program_preloaded() {
    run_c("exceptions.cpp", Use::Preloaded, &[]);
}

/// Runs an unmodified program under `LD_PRELOAD`; panics with its output if it fails.
fn run_preloaded(program: &str, args: &[&str], dir: Option<&Path>) -> String {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = run(command, Use::Preloaded);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed under pinalloc: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn python_runs_an_allocation_heavy_workload() {
    let script = r#"
import json, random
random.seed(1)
maps = open('/proc/self/maps').read()
assert 'libpinalloc' in maps, 'pinalloc is not loaded'
docs = [{'id': i, 'name': 'n' * (i % 300), 'tags': [str(j) for j in range(i % 17)]} for i in range(200000)]
text = json.dumps(docs)
again = json.loads(text)
assert again == docs
words = {}
for i in range(300000):
    key = random.randrange(50000)
    words.setdefault(key, []).append(bytearray(random.randrange(1, 3000)))
    if i % 3 == 0:
        words.pop(random.randrange(50000), None)
print('ok', len(text), len(words))
"#;
    let out = run_preloaded("python3", &["-c", script], None);
    assert!(out.starts_with("ok "), "{out}");
}

#[test]
fn git_works_on_a_repository() {
    let repo = Path::new(env!("CARGO_TARGET_TMPDIR")).join("git-under-pinalloc");
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let mut all =
            vec!["-c", "user.name=pinalloc", "-c", "user.email=ci@pinalloc.invalid", "-c", "gc.auto=0"];
        all.extend_from_slice(args);
        run_preloaded("git", &all, Some(&repo))
    };
    git(&["init", "-q"]);
    for round in 0..20 {
        for file in 0..50 {
            let text: String =
                (0..200).map(|line| format!("round {round} file {file} line {line}\n")).collect();
            std::fs::write(repo.join(format!("f{file}.txt")), text).unwrap();
        }
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", &format!("round {round}")]);
    }
    assert_eq!(git(&["rev-list", "--count", "HEAD"]).trim(), "20");
    git(&["gc", "-q", "--aggressive"]);
    git(&["fsck", "--strict", "--no-progress"]);
    let log = git(&["log", "-p", "--stat"]);
    assert!(log.contains("round 0") && log.contains("round 19"));
    let diff = git(&["diff", "HEAD~19", "HEAD", "--stat"]);
    assert!(diff.contains("50 files changed"), "{diff}");
}

//! pinalloc's `BufferPool` against buffer_sv2 3.0.1 and the other contenders, in one run.
//!
//! `cargo run --release --manifest-path peers/Cargo.toml --bin buffers [ROUNDS]` prints each
//! contender's median time per scenario (the contenders alternate, round after round, so
//! drift on a shared machine hits them alike) and pinalloc's ratios to buffer_sv2 and to the
//! do-nothing bound, each the median of the rounds' ratios. Targets: every scenario ≤ 0.5×
//! buffer_sv2 and ≤ 1.5× do-nothing; the 64 B frame cycle ≤ 0.4× buffer_sv2 and ≤ 1.0× bytes.
//! The last column is the ratio to `sequential`, the floor for a buffer that writes each
//! frame to bytes of its own (see `Sequential`): what bookkeeping costs on top of it.
//!
//! `… --bin buffers -- one SCENARIO NAME N` runs one scenario (`single`, `send`, `wait`,
//! `cycle`) N times on one contender, for a profiler.

use pinalloc_peers::buffers::{Input, NAMES};
use pinalloc_peers::with_contender;
use pinalloc_peers::{Alternated, measure_alternating};

fn row(title: &str, unit: &str, measured: &Alternated, bytes_ratio: bool) {
    print!("| {title:<28} |");
    for v in measured.medians() {
        print!(" {v:>9.3} |");
    }
    let third = if bytes_ratio { "bytes" } else { "do-nothing" };
    println!(
        " {:>6.2} | {:>6.2} | {:>6.2} | {unit}",
        measured.ratio("pinalloc", "buffer_sv2"),
        measured.ratio("pinalloc", third),
        measured.ratio("pinalloc", "sequential")
    );
}

/// One scenario on one contender, once: milliseconds (nanoseconds per frame for `cycle`).
/// Not inlined, so that the table and `one` run the same machine code: inlined into a
/// caller, the write loop compiled differently with each (25% apart, measured).
#[inline(never)]
fn measure(scenario: &str, name: &str, input: &Input) -> f64 {
    match scenario {
        "single" => with_contender!(name, |make| single_thread(make, input)).as_secs_f64() * 1e3,
        "send" => with_contender!(name, |make| send_to_thread(make, input, false)).as_secs_f64() * 1e3,
        "wait" => with_contender!(name, |make| send_to_thread(make, input, true)).as_secs_f64() * 1e3,
        "cycle" => with_contender!(name, |make| frame_cycle(make, 2_000_000)),
        other => panic!("no scenario {other}: single, send, wait or cycle"),
    }
}

/// One scenario on one contender, `n` times, printing each time.
fn one(scenario: &str, name: &str, n: usize, input: &Input) {
    for _ in 0..n {
        println!("{:.3}", measure(scenario, name, input));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let input = Input::new();
    if args.get(1).map(String::as_str) == Some("one") {
        let n = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1);
        return one(&args[2], &args[3], n, &input);
    }
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(11);
    print!("| {:<28} |", "scenario");
    for name in NAMES {
        print!(" {name:>9} |");
    }
    println!(" vs sv2 | vs 3rd | vs seq |");
    println!("|{}", "---|".repeat(NAMES.len() + 4));
    let single = measure_alternating(&NAMES, rounds, |name| measure("single", name, &input));
    row("single thread", "ms (3rd: do-nothing)", &single, false);
    let send = measure_alternating(&NAMES, rounds, |name| measure("send", name, &input));
    row("sent to a thread", "ms (3rd: do-nothing)", &send, false);
    let wait = measure_alternating(&NAMES, rounds, |name| measure("wait", name, &input));
    row("sent, waiting for both", "ms (3rd: do-nothing)", &wait, false);
    let cycle = measure_alternating(&NAMES, rounds, |name| measure("cycle", name, &input));
    row("64 B frame cycle", "ns (3rd: bytes)", &cycle, true);
}

#!/usr/bin/env python3
"""Runs allocation-heavy C programs under glibc, mimalloc, jemalloc and pinalloc (all through
LD_PRELOAD, in the same run) and prints wall time and peak RSS side by side, with
pinalloc's ratios: time against the best of the others, peak RSS against mimalloc's.

usage: capi/bench/compare.py [--runs N] [--quick]

Needs gcc, cargo, and Debian's libmimalloc2.0 and libjemalloc2 packages (`.ci/run` and
the README say how to install them). Each figure is the median of N runs (default 5),
the programs interleaved so that a noisy moment hits every allocator alike."""

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")

# name: (source, full-size arguments, quick arguments)
PROGRAMS = {
    "larson": ("larson.c", ["2", "40", "500000", "1000"], ["2", "4", "20000", "500"]),
    "xmalloc": ("xmalloc.c", ["1", "40000", "256"], ["1", "500", "64"]),
    "cache-scratch": ("cache_scratch.c", ["2", "2000", "20000", "8"], ["2", "100", "1000", "8"]),
    "mixed-small": ("mixed_small.c", ["5", "2000000", "200000"], ["1", "50000", "5000"]),
}


def build():
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "pinalloc-capi"], cwd=ROOT, check=True
    )
    out = ROOT / "target" / "bench-c"
    out.mkdir(parents=True, exist_ok=True)
    for name, source in [("measure", "measure.c")] + [(n, p[0]) for n, p in PROGRAMS.items()]:
        subprocess.run(
            ["gcc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", str(HERE / source), "-o", str(out / name)],
            check=True,
        )
    return out


def allocators():
    found = {"glibc": None}
    for name, lib in [("mimalloc", "libmimalloc.so.2"), ("jemalloc", "libjemalloc.so.2")]:
        path = LIBDIR / lib
        if path.exists():
            found[name] = str(path)
        else:
            print(f"warning: {path} not found (apt-get install libmimalloc2.0 libjemalloc2)", file=sys.stderr)
    found["pinalloc"] = str(ROOT / "target" / "release" / "libpinalloc.so")
    return found


def run_once(executable, args, preload):
    """(seconds, peak RSS KiB) of one run, through the `measure` launcher."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    measure = executable.parent / "measure"
    done = subprocess.run([str(measure), str(executable), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.startswith("ok"):
        raise SystemExit(f"{executable.name} failed under {preload or 'glibc'}: {done.returncode}\n{done.stdout}{done.stderr}")
    seconds, rss = done.stderr.split()[-2:]
    return float(seconds), int(rss)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny inputs: checks correctness, not speed")
    options = parser.parse_args()
    out = build()
    libs = allocators()
    results = {}
    for _ in range(options.runs):
        for name, (_, full, quick) in PROGRAMS.items():
            for lib, path in libs.items():
                results.setdefault((name, lib), []).append(run_once(out / name, quick if options.quick else full, path))

    header = f"{'program':<14}" + "".join(f"{lib:>20}" for lib in libs) + f"{'time/best':>11}{'rss/mi':>8}"
    print(f"median of {options.runs} runs: seconds, peak RSS MiB")
    print(header)
    print("-" * len(header))
    verdicts = []
    for name in PROGRAMS:
        cells, times, rss = "", {}, {}
        for lib in libs:
            samples = results[(name, lib)]
            times[lib] = statistics.median(s[0] for s in samples)
            rss[lib] = statistics.median(s[1] for s in samples)
            cells += f"{times[lib]:>9.3f} s {rss[lib] / 1024:>7.1f} M"
        best = min(t for lib, t in times.items() if lib != "pinalloc")
        time_ratio = times["pinalloc"] / best
        rss_ratio = rss["pinalloc"] / rss["mimalloc"] if "mimalloc" in rss else float("nan")
        verdicts.append(time_ratio <= 1.0 and rss_ratio <= 1.2)
        print(f"{name:<14}{cells}{time_ratio:>11.2f}{rss_ratio:>8.2f}")
    print(f"targets (time <= 1.0x best, RSS <= 1.2x mimalloc) met on {sum(verdicts)}/{len(verdicts)} programs")


if __name__ == "__main__":
    main()

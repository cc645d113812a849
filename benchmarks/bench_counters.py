#!/usr/bin/env python3
"""Cost and accuracy of one counting window: maple_edge_lite's in-process counters (C API and
Python) side by side with `perf stat` as a subprocess, MAPLE-Edge's authors' method.

    python benchmarks/bench_counters.py [--json] [--skip-install]

Cost: start + stop + read for a 4-event group and for MAPLE-Edge's 11 events (the C++ harness
csrc/tools/bench_counters.cpp, and the Python context manager), against the wall time of a
`perf stat` run around no work at all (`perf stat -e ... -- true`).
Accuracy: a known amount of work (N freshly touched pages, about 50 ms of CPU) counted by each
method; `perf stat -p PID` is attached before the work and, as in the paper, stops about a second
after it. The error is counted minus known.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as runner  # noqa: E402  (the predictor benchmark's build helpers)

PAGES = 4096
SPIN_S = 0.05


def touch_pages(n):
    buf = mmap.mmap(-1, n * mmap.PAGESIZE)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        buf.madvise(mmap.MADV_NOHUGEPAGE)
    for off in range(0, n * mmap.PAGESIZE, mmap.PAGESIZE):
        buf[off] = 1
    return buf


def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def work():
    """The known work: PAGES first-touch faults and about SPIN_S of CPU. Returns (buffer, CPU ns)."""
    t0 = time.thread_time_ns()
    buf = touch_pages(PAGES)
    spin(SPIN_S)
    return buf, time.thread_time_ns() - t0


def python_cost(names, reps=21, iters=2000):
    from maple_edge_lite.device.counters import Counters

    c = Counters(names)
    for _ in range(200):
        with c:
            pass
        c.results
    per = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            with c:
                pass
            c.results
        per.append((time.perf_counter_ns() - t0) / iters)
    c.close()
    return statistics.median(per)


def ours_accuracy():
    from maple_edge_lite.device.counters import Counters

    c = Counters(["task-clock", "page-faults"], inherit=False)
    with c:
        buf, cpu = work()
    buf.close()
    r = c.results
    c.close()
    return {"task_clock_error_ms": (r["task-clock"].value - cpu) / 1e6,
            "page_faults_error": r["page-faults"].value - PAGES}


def perf_stat_cost(perf, events, reps=5):
    walls = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run([perf, "stat", "-x,", "-e", ",".join(events), "--", "true"], capture_output=True, check=True)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls) * 1e6


def perf_stat_accuracy(perf):
    p = subprocess.Popen([perf, "stat", "-x,", "-e", "task-clock,page-faults", "-p", str(os.getpid())],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    time.sleep(0.5)  # let perf attach
    buf, cpu = work()
    time.sleep(1.0)  # the paper's window ran about a second past the timed loop
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    buf.close()
    vals = {}
    for line in err.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[2] in ("task-clock", "page-faults"):
            try:
                vals[parts[2]] = float(parts[0])
            except ValueError:
                pass
    if set(vals) != {"task-clock", "page-faults"}:
        return None
    # perf prints task-clock in ms
    return {"task_clock_error_ms": vals["task-clock"] - cpu / 1e6, "page_faults_error": vals["page-faults"] - PAGES}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--skip-install", action="store_true")
    ap.add_argument("--work-dir", type=Path, default=runner.default_workdir())
    args = ap.parse_args(argv)
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    if not args.skip_install:
        runner.install(work)
    exe = runner.build_harness(work, os.cpu_count() or 1, target="bench_counters")
    harness = json.loads(subprocess.run([str(exe), "--json"], capture_output=True, text=True, check=True).stdout)

    from maple_edge_lite.device.counters import MAPLE_EDGE_EVENTS

    four = ["cpu-cycles", "instructions", "cache-references", "cache-misses"] if harness["hardware_pmu"] else \
        ["task-clock", "page-faults", "context-switches", "cpu-migrations"]
    report = {
        "hardware_pmu": harness["hardware_pmu"],
        "four_events": four,
        "c_api_ns": {"four": harness["four"]["median_ns"], "eleven": harness["eleven"]["median_ns"]},
        "counted": {"four": harness["four"]["counted"], "eleven": harness["eleven"]["counted"]},
        "python_ns": {"four": python_cost(four), "eleven": python_cost(list(MAPLE_EDGE_EVENTS))},
        "harness_page_faults": harness["page_faults"],
        "ours_accuracy": ours_accuracy(),
    }
    perf = shutil.which("perf")
    if perf:
        report["perf_stat_us"] = {"four": perf_stat_cost(perf, four), "eleven": perf_stat_cost(perf, MAPLE_EDGE_EVENTS)}
        report["perf_stat_accuracy"] = perf_stat_accuracy(perf)
    else:
        report["perf_stat_us"] = None
        report["perf_stat_accuracy"] = None
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    f4, f11 = report["counted"]["four"], report["counted"]["eleven"]
    print(f"Counting window cost (hardware PMU: {'yes' if report['hardware_pmu'] else 'no, software events only'})\n")
    print("| method | 4 events | MAPLE-Edge's 11 events |")
    print("|---|---:|---:|")
    print(f"| C API start + stop + read | {report['c_api_ns']['four'] / 1e3:.2f} µs ({f4} counted) | "
          f"{report['c_api_ns']['eleven'] / 1e3:.2f} µs ({f11} counted) |")
    print(f"| Python `with Counters(...)` + `.results` | {report['python_ns']['four'] / 1e3:.2f} µs | "
          f"{report['python_ns']['eleven'] / 1e3:.2f} µs |")
    if report["perf_stat_us"]:
        print(f"| `perf stat -e ... -- true` subprocess | {report['perf_stat_us']['four'] / 1e3:.1f} ms | "
              f"{report['perf_stat_us']['eleven'] / 1e3:.1f} ms |")
    print(f"\nCounting known work ({PAGES} fresh pages, ~{SPIN_S * 1e3:.0f} ms CPU): error = counted - known\n")
    print("| method | task-clock error | page-faults error |")
    print("|---|---:|---:|")
    o = report["ours_accuracy"]
    print(f"| maple_edge_lite, in-process window | {o['task_clock_error_ms']:+.3f} ms | {o['page_faults_error']:+d} |")
    hp = report["harness_page_faults"]
    print(f"| C++ harness (touch loop in C) | — | {hp['counted'] - hp['touched']:+d} |")
    a = report["perf_stat_accuracy"]
    if a:
        print(f"| `perf stat -p PID`, stopped ~1 s after the work | {a['task_clock_error_ms']:+.3f} ms | "
              f"{a['page_faults_error']:+.0f} |")
    elif perf is None:
        print("| `perf stat` | not installed (Debian: linux-perf) | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

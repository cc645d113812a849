#!/usr/bin/env python3
"""Count the same child workload with `perf stat` and with maple_edge_lite.device.counters, and print
both next to the known instruction count (tools/aarch64/perf_compare.sh runs this inside the arm64
VM; it runs on any Linux machine with a PMU, a `perf` binary and the package installed):

    python perf_compare.py WORKLOAD [--n 0,10000000,40000000] [--reps 3] [--json OUT]

WORKLOAD is tools/aarch64/perf_workload.c compiled: `WORKLOAD N` executes a loop of exactly 2*N
instructions plus a fixed start-up and exit. For every N it is counted

- by `perf stat -x, -e cycles,instructions,cycles:u,instructions:u -- WORKLOAD N` (perf forks,
  the counters are enabled when the child calls exec and stop when it exits), and
- by ``Counters(["cpu-cycles", "instructions"], inherit=True, exclude_kernel=...)`` opened in this
  process before it starts the workload with ``os.posix_spawn`` and waits for it: the child
  inherits the counters and its counts are added to ours when it exits. Also with
  ``subprocess.run`` instead of posix_spawn, and around an empty window, to show the edges.

Each measurement is repeated --reps times; the table shows the median and the spread. Then the
slope: (count(N_b) - count(N_a)) / (2 (N_b - N_a)), which is 1 exactly when a tool counts every
loop instruction once, whatever its window's edges cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from maple_edge_lite.device import _perf_stat as PS

PERF_EVENTS = ("cycles", "instructions", "cycles:u", "instructions:u")
MEL_EVENTS = {"cycles": "cpu-cycles", "instructions": "instructions"}
CHILD_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}


def mel_count(argv, exclude_kernel, how="posix_spawn"):
    """{event: CounterResult} for one window around `how`: posix_spawn + waitpid of argv,
    subprocess.run(argv), or nothing ("empty")."""
    from maple_edge_lite.device.counters import Counters

    c = Counters([MEL_EVENTS["cycles"], MEL_EVENTS["instructions"]], inherit=True, exclude_kernel=exclude_kernel)
    try:
        with c:  # the first window enables the group; the measured one is the second
            pass
        with c:
            if how == "posix_spawn":
                pid = os.posix_spawn(argv[0], argv, CHILD_ENV)
                _, status = os.waitpid(pid, 0)
            elif how == "subprocess":
                status = subprocess.run(argv, env=CHILD_ENV).returncode
            else:
                status = 0
        if status != 0:
            raise RuntimeError(f"{argv} exited with status {status}")
        return dict(c.results)
    finally:
        c.close()


def measure(workload, ns, reps, perf):
    """rows: dicts with tool, how, event, mode, n, counts (one per rep), states."""
    rows = []
    # One run first: the workload's pages come from the disk once (block I/O in the kernel, inside
    # the first window of whichever tool ran first), then from the page cache.
    subprocess.run([workload, "0"], check=True)
    for n in ns:
        argv = [workload, str(n)]
        runs = [PS.stat(perf, argv, PERF_EVENTS) for _ in range(reps)]
        for ev in PERF_EVENTS:
            base, user = ev.split(":")[0], ev.endswith(":u")
            rows.append(dict(tool="perf stat", how="", event=base, mode="user" if user else "all", n=n,
                             counts=[None if r[ev].value is None else int(r[ev].value) for r in runs],
                             note=f"{runs[0][ev].running_pct}% running"))
        for how in ("posix_spawn", "subprocess") + (("empty",) if n == ns[0] else ()):
            for user in (False, True):
                res = [mel_count(argv, user, how) for _ in range(reps)]
                for base, name in MEL_EVENTS.items():
                    r0 = res[0][name]
                    note = r0.state + ("" if r0.inherited else ", NOT inherited") + \
                        (", kernel excluded" if r0.kernel_excluded and not user else "")
                    rows.append(dict(tool="maple_edge_lite", how=how, event=base, mode="user" if user else "all",
                                     n=None if how == "empty" else n, counts=[r[name].value for r in res], note=note))
    return rows


def med(xs):
    xs = [x for x in xs if x is not None]
    return int(statistics.median(xs)) if xs else None


def print_table(rows, out=sys.stdout):
    perf = {(r["event"], r["mode"], r["n"]): med(r["counts"]) for r in rows if r["tool"] == "perf stat"}
    head = ("tool", "event", "user/all", "N", "count (median)", "spread", "count - 2N", "ratio to perf", "note")
    lines = [head]
    for r in rows:
        m = med(r["counts"])
        vals = [x for x in r["counts"] if x is not None]
        spread = max(vals) - min(vals) if vals else None
        p = perf.get((r["event"], r["mode"], r["n"]))
        tool = r["tool"] + (f" ({r['how']})" if r["how"] else "")
        lines.append((tool, r["event"], r["mode"], "-" if r["n"] is None else f"{r['n']:,}",
                      "-" if m is None else f"{m:,}", "-" if spread is None else f"{spread:,}",
                      "-" if m is None or r["n"] is None else f"{m - 2 * r['n']:+,}",
                      "-" if m is None or not p or r["tool"] == "perf stat" else f"{m / p:.6f}", r["note"]))
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(head))]
    for i, l in enumerate(lines):
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(l, widths)) + " |", file=out)
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)


def print_slopes(rows, ns, out=sys.stdout):
    big = [n for n in ns if n]
    if len(big) < 2:
        return
    a, b = big[0], big[-1]
    print(f"\nslope (count(N={b:,}) - count(N={a:,})) / (2 * {b - a:,}): 1 = every loop instruction counted once", file=out)
    by = {}
    for r in rows:
        if r["n"] in (a, b):
            by.setdefault((r["tool"], r["how"], r["event"], r["mode"]), {})[r["n"]] = med(r["counts"])
    for (tool, how, ev, mode), v in by.items():
        if v.get(a) is not None and v.get(b) is not None:
            d = v[b] - v[a]
            print(f"  {tool + (' (' + how + ')' if how else ''):34s} {ev:13s} {mode:4s} {d:>14,}  {d / (2 * (b - a)):.7f}",
                  file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload")
    ap.add_argument("--n", default="0,10000000,40000000", help="loop counts N (the loop is 2N instructions)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--perf", help="the perf binary (default: perf on PATH, then perf_<version>)")
    ap.add_argument("--json", help="also write the raw counts here")
    a = ap.parse_args(argv)
    ns = [int(x) for x in a.n.split(",")]
    perf, why = PS.find(a.perf)
    if not perf:
        print(f"perf_compare: no working perf: {why}", file=sys.stderr)
        return 2
    ver = subprocess.run([perf, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"perf: {perf} ({ver}); kernel {os.uname().release}; workload {a.workload}; {a.reps} runs each")
    rows = measure(os.path.abspath(a.workload), ns, a.reps, perf)
    print_table(rows)
    print_slopes(rows, ns)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(perf=perf, perf_version=ver, kernel=os.uname().release, rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

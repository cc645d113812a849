#!/usr/bin/env python3
"""Profiling a device-runtime pair: maple_edge_lite's profiler side by side with MAPLE-Edge's
authors' method, in one run. Wall time of one profile, and repeatability: the coefficient of
variation of each descriptor feature over several profiles.

    python benchmarks/bench_profile.py [--profiles 5] [--threads 1] [--json] [--out FILE]

- **maple_edge_lite**: ``maple_edge_lite.device.profile.profile()`` with its defaults (the 19-model
  suite, 6 passes of a fresh session per op, median per window, smallest window median,
  in-process perf_event counters around exactly each timed loop).
- **authors' method**: for each op model, 50 warm-up runs, then ``perf stat -x, -e <events> -p
  <pid>`` started as a subprocess (attach wait 0.2 s), 50 timed runs, a trailing window of
  ``--trailing-s`` (1 s), SIGINT to perf; latency = 10% trimmed mean of the 50 runs, count per
  inference = count / 50, rate = count per inference / latency (events per ms).

The two alternate (ours, theirs, ours, ...), so a change in machine load hits both. Counter
features are compared where both methods count them (here: software events; a VM has no
hardware PMU). Run with the installed package (``python -P`` from the checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import numpy as np

from maple_edge_lite.device import _perf_stat as PS
from maple_edge_lite.device import builders, runtimes
from maple_edge_lite.device import profile as P
from maple_edge_lite.device.measure import host_facts, trimmed_mean

WARMUP = 50
RUNS = 50
ATTACH_S = 0.2


def parse_perf(text, events):
    """perf stat -x, lines -> {event: (state, value or None)}; task-clock in ns (perf prints ms)."""
    out = {}
    for e, c in PS.parse(text, events).items():
        v = c.value * 1e6 if c.value is not None and c.unit == "msec" else c.value
        out[e] = (c.state, v)
    return out


def authors_profile(threads, events, trailing_s, perf):
    """One descriptor (same feature names as ours) by the authors' protocol."""
    t_begin = time.perf_counter()
    rt = runtimes.get("onnxruntime", threads=threads)
    suite = builders.default_suite()
    feats = {}
    for spec in suite:
        with rt.load(builders.op_onnx(spec)) as s:
            for _ in range(WARMUP):
                s.run()
            p = subprocess.Popen([perf, "stat", "-x,", "-e", ",".join(events), "-p", str(os.getpid())],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(ATTACH_S)
            ts = []
            for _ in range(RUNS):
                t0 = time.perf_counter_ns()
                s.run()
                ts.append((time.perf_counter_ns() - t0) / 1e6)
            time.sleep(trailing_s)
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=30)
        lat = trimmed_mean(ts, 0.10)
        feats[f"lat:{spec.name}"] = ("counted", lat)
        for e, (state, v) in parse_perf(err, events).items():
            raw = None if v is None else v / RUNS
            feats[f"raw:{e}@{spec.name}"] = (state, raw)
            feats[f"rate:{e}@{spec.name}"] = (state, None if raw is None else raw / lat)
    names = P.feature_names([s.name for s in suite], events)
    return {"features": [{"name": n, "state": feats[n][0], "value": feats[n][1]} for n in names],
            "wall_s": time.perf_counter() - t_begin}


def ours_profile(threads, events):
    d = P.profile("onnxruntime", threads=threads, events=events)
    return {"features": d["features"], "wall_s": d["wall_s"]}


def cvs(profiles, kind, event=None):
    """CV (std/mean, ddof 1) of each feature of ``kind`` counted in every profile."""
    names = [f["name"] for f in profiles[0]["features"]]
    out = {}
    for i, n in enumerate(names):
        if not n.startswith(kind + ":") or (event and not n.startswith(f"{kind}:{event}@")):
            continue
        vals = [p["features"][i]["value"] for p in profiles]
        if any(v is None for v in vals):
            continue
        m = float(np.mean(vals))
        if m > 0:
            out[n] = float(np.std(vals, ddof=1) / m)
    return out


def summary(cv):
    if not cv:
        return None
    worst = max(cv, key=cv.get)
    return {"n": len(cv), "median_cv": statistics.median(cv.values()), "max_cv": cv[worst], "worst": worst}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profiles", type=int, default=5, help="profiles per method (default 5)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--trailing-s", type=float, default=1.0, help="authors' trailing window (default 1 s)")
    ap.add_argument("--json", action="store_true", help="print the JSON report instead of the tables")
    ap.add_argument("--out", metavar="FILE", help="also write the JSON report to FILE")
    args = ap.parse_args()
    perf = next(iter(PS.candidates()), None)
    events = P.default_events()
    load_before = os.getloadavg()
    ours, theirs = [], []
    for k in range(args.profiles):
        ours.append(ours_profile(args.threads, events))
        print(f"profile {k + 1}/{args.profiles}: maple_edge_lite {ours[-1]['wall_s']:.1f} s", end="", file=sys.stderr,
              flush=True)
        if perf:
            theirs.append(authors_profile(args.threads, events, args.trailing_s, perf))
            print(f", perf stat {theirs[-1]['wall_s']:.1f} s", end="", file=sys.stderr)
        print(file=sys.stderr)
    soft = [e for e in events if all(f["state"] == "counted" for f in ours[0]["features"]
                                     if f["name"].startswith(f"rate:{e}@"))]
    report = {"host": host_facts(), "loadavg_before": [round(x, 2) for x in load_before],
              "threads": args.threads, "profiles": args.profiles, "events_counted_here": soft, "methods": {}}
    for name, profs in (("maple_edge_lite", ours), ("perf stat -p (authors)", theirs)):
        if not profs:
            report["methods"][name] = None
            continue
        report["methods"][name] = {
            "wall_s_median": statistics.median(p["wall_s"] for p in profs),
            "latency": summary(cvs(profs, "lat")),
            "rate": summary(cvs(profs, "rate")),
            "rate_by_event": {e: summary(cvs(profs, "rate", e)) for e in soft},
        }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    def pct(s, key):
        return "—" if s is None else f"{100 * s[key]:.2f}%"

    print(f"Profiling onnxruntime at {args.threads} thread(s), {args.profiles} profiles per method, "
          f"{report['host']['cpu_model']}, load {report['loadavg_before']} -> {report['host']['loadavg']}")
    print(f"Counter features compared on the events counted here: {', '.join(soft)}\n")
    print("| method | wall / profile | latency CV median | latency CV max | rate CV median | rate CV max |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, m in report["methods"].items():
        if m is None:
            print(f"| {name} | perf not found | | | | |")
            continue
        print(f"| {name} | {m['wall_s_median']:.1f} s | {pct(m['latency'], 'median_cv')} "
              f"| {pct(m['latency'], 'max_cv')} | {pct(m['rate'], 'median_cv')} | {pct(m['rate'], 'max_cv')} |")
    print("\nRate CV by event (median / max over the 19 ops):\n")
    print("| event | " + " | ".join(n for n, m in report["methods"].items() if m) + " |")
    print("|---|" + "---:|" * sum(1 for m in report["methods"].values() if m))
    for e in soft:
        cells = [f"{pct(m['rate_by_event'][e], 'median_cv')} / {pct(m['rate_by_event'][e], 'max_cv')}"
                 for m in report["methods"].values() if m]
        print(f"| {e} | " + " | ".join(cells) + " |")
    for name, m in report["methods"].items():
        if m and m["latency"]:
            print(f"\n{name}: least repeatable latency feature {m['latency']['worst']} "
                  f"({100 * m['latency']['max_cv']:.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

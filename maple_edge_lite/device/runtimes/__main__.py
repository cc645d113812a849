"""``python -m maple_edge_lite.device.runtimes``: list the runtimes here and time each one's per-call
cost on two small seeded models (needs ``onnx``).

    python -m maple_edge_lite.device.runtimes                     # every installed runtime, 1 thread
    python -m maple_edge_lite.device.runtimes --calls 2000 --threads 1 onnxruntime mnn
    python -m maple_edge_lite.device.runtimes --option onnxruntime:spinning=true --threads 2

Prints, per runtime and model, the median and 90th percentile wall time of ``Session.run()``
in microseconds and the process CPU time per call (all threads; above the wall time when
worker threads spin). ``tiny`` is one 1x1 convolution on 3x8x8: its time is mostly the
runtime's overhead per call. ``conv_net`` is a NAS-Bench-201-sized small conv net on 3x32x32.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Dict, List

import numpy as np

from . import available, get


def time_calls(run, calls: int, warmup: int) -> Dict[str, float]:
    """Median and p90 wall time (us) of ``run()`` over ``calls`` calls after ``warmup``, and
    process CPU time per call (us)."""
    for _ in range(warmup):
        run()
    clock = time.perf_counter_ns
    ts = np.empty(calls, dtype=np.int64)
    cpu0 = time.process_time_ns()
    for i in range(calls):
        t0 = clock()
        run()
        ts[i] = clock() - t0
    cpu = (time.process_time_ns() - cpu0) / calls
    return {
        "median_us": float(np.median(ts)) / 1e3,
        "p90_us": float(np.percentile(ts, 90)) / 1e3,
        "cpu_us_per_call": cpu / 1e3,
    }


def _parse_options(items: List[str]) -> Dict[str, Dict[str, object]]:
    out: Dict[str, Dict[str, object]] = {}
    for item in items:
        try:
            rt, kv = item.split(":", 1)
            k, v = kv.split("=", 1)
        except ValueError:
            raise SystemExit(f"--option wants RUNTIME:KEY=VALUE, got {item!r}") from None
        low = v.lower()
        value: object = {"true": True, "false": False, "none": None}.get(low, v)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        out.setdefault(rt, {})[k] = value
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m maple_edge_lite.device.runtimes", description=__doc__.split("\n\n")[0])
    ap.add_argument("runtimes", nargs="*", help="runtimes to time (default: every installed one)")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="tiny,conv_net")
    ap.add_argument("--option", action="append", default=[], metavar="RUNTIME:KEY=VALUE")
    ap.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    args = ap.parse_args(argv)

    from . import _testnets

    avail = available()
    names = args.runtimes or [n for n, v in avail.items() if not v.startswith(("not installed", "unavailable")) and n != "litert"]
    options = _parse_options(args.option)
    models = {m: getattr(_testnets, m)() for m in args.models.split(",")}
    failed = 0
    if not args.json:
        print(f"{'runtime':12} {'version':24} {'model':9} {'median us':>10} {'p90 us':>9} {'cpu us':>9}")
    for name in names:
        try:
            rt = get(name, args.threads, **options.get(name, {}))
        except Exception as e:
            print(f"{name:12} {avail.get(name, '?')}: {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
            continue
        for mname, model in models.items():
            try:
                with rt.load(model) as s:
                    r = time_calls(s.run, args.calls, args.warmup)
            except Exception as e:
                print(f"{name:12} {mname}: {type(e).__name__}: {e}", file=sys.stderr)
                failed += 1
                continue
            if args.json:
                print(json.dumps({"model": mname, "calls": args.calls, **rt.info(), **r}))
            else:
                print(f"{name:12} {rt.version[:24]:24} {mname:9} {r['median_us']:10.1f} {r['p90_us']:9.1f} {r['cpu_us_per_call']:9.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""``maple-edge-lite measure``, ``profile`` and ``counters``: the device-side commands.

    maple-edge-lite measure --sample 10 --seed 0 -o lat.csv          # + lat.csv.json
    maple-edge-lite measure --arch '|nor_conv_3x3~0|+|...|' --threads 2 --json
    maple-edge-lite profile -o desc.json
    maple-edge-lite profile --runtime onnxruntime --threads 2 --json

Every output file is written atomically (temporary file, fsync, rename), and its folder is
checked before any measuring starts. Imported only when the CLI is built."""

from __future__ import annotations

import json
import os
import sys
import time


class _Progress:
    """A one-line progress bar on stderr; silent when stderr is not a terminal or when quiet."""

    def __init__(self, enabled: bool, width: int = 24):
        self.enabled = enabled
        self.width = width
        self.t0 = time.perf_counter()
        self._shown = False

    def __call__(self, i: int, n: int, label: str, result) -> None:
        if not self.enabled:
            return
        done = int(self.width * i / max(n, 1))
        bar = "#" * done + "." * (self.width - done)
        text = f"\r[{bar}] {i}/{n} {time.perf_counter() - self.t0:5.1f}s {label[:60]}"
        sys.stderr.write(text.ljust(100)[:100])
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # the line is cleared on an error or Ctrl-C too


def _progress(args) -> _Progress:
    return _Progress(enabled=not args.quiet and sys.stderr.isatty())


def _common(p, what: str) -> None:
    p.add_argument("--runtime", default="onnxruntime",
                   help="runtime adapter (default onnxruntime; `python -m maple_edge_lite.device.runtimes` lists them)")
    p.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    p.add_argument("--cpu", metavar="LIST",
                   help=f"pin the process (and the runtime's threads) to these CPUs while {what}, e.g. 2, 0,2 "
                   "or 0-3 (default: not pinned)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


# Exit codes of `maple-edge-lite counters`, for scripts.
EXIT_ALL_COUNTERS = 0      # every requested event counts here
EXIT_SOME_COUNTERS = 3     # some hardware events count, others are unsupported or denied
EXIT_NO_HW_COUNTERS = 4    # no hardware event counts (software events only: VMs, containers)
EXIT_COUNTERS_DENIED = 5   # hardware events exist but permission is denied: see the printed fix
EXIT_SOME_REJECTED = 3     # measure: the runtime rejected some networks; the others are written


def _counters(args) -> int:
    from ..device import counters as C

    events = [e.strip() for e in args.events.split(",") if e.strip()] if args.events else C.known_events()
    results = C.probe(events)
    paranoid = C.paranoid_level()
    pmus = C.pmus()
    hw = [r for n, r in results.items() if n not in C.SOFTWARE_EVENTS]
    ok = lambda r: r.state in ("counted", "scaled")  # noqa: E731
    denied = [r for r in results.values() if r.state == "denied"]
    if all(ok(r) for r in results.values()):
        code = EXIT_ALL_COUNTERS
    elif hw and any(ok(r) for r in hw):
        code = EXIT_SOME_COUNTERS
    elif denied:
        code = EXIT_COUNTERS_DENIED
    else:
        code = EXIT_NO_HW_COUNTERS
    fix = None
    if denied:
        fix = ("sudo sysctl -w kernel.perf_event_paranoid=2" if paranoid is not None and paranoid > 2
               else "sudo setcap cap_perfmon+ep " + os.path.realpath(sys.executable))
    if args.json:
        print(json.dumps({
            "perf_event_paranoid": paranoid,
            "pmus": pmus,
            "events": {n: r.as_dict() for n, r in results.items()},
            "fix": fix,
            "exit_code": code,
        }, indent=2))
        return code
    print(f"perf_event_paranoid: {paranoid if paranoid is not None else 'unreadable'}")
    print(f"PMUs: {', '.join(f'{k} (type {v})' for k, v in pmus.items()) or 'none listed'}")
    width = max(len(n) for n in results)
    for n, r in results.items():
        extra = " (user space only)" if ok(r) and r.kernel_excluded else ""
        print(f"  {n:<{width}}  {r.state:<11}  {r.reason}{extra}")
    counted = sum(ok(r) for r in results.values())
    print(f"{counted} of {len(results)} events count on this machine.")
    if fix:
        print(f"To allow the denied events: {fix}")
    return code


def add_parser(subparsers) -> None:
    c = subparsers.add_parser(
        "counters",
        help="which perf_event counters this machine can read, and why the others cannot be",
        description="Probe every known event (or --events). Exit status: 0 all count; 3 some hardware "
        "events count; 4 no hardware event counts (software only); 5 hardware events denied; 1 error.",
    )
    c.add_argument("--events", help="comma-separated event names (default: all known events)")
    c.add_argument("--json", action="store_true", help="print a JSON report")
    c.set_defaults(func=_counters)
    m = subparsers.add_parser(
        "measure",
        help="measure NAS-Bench-201 network latencies under a runtime -> CSV (+ JSON sidecar)",
        description="Build each NAS-Bench-201 network (32x32 input by default), run it under the runtime and "
        "record its latency in ms. Timing: each network is timed in 3 windows (passes over the list, a fresh "
        "session each); a window warms up, then times single runs until their median is stable (median of "
        "the last half within 0.5% of all, after at least 30 runs and 0.6 s) or 2 s are spent; the latency "
        "is the smallest window median. The CSV has the shared table columns nb201_index,arch_str,device,"
        "latency_ms (nb201_index empty unless --archs gives it); the conditions go to <output>.json "
        "(lat.csv -> lat.csv.json). A network the runtime rejects twice (e.g. a converter crash) is left out "
        "and listed in the sidecar. Exit status: 0 done; 1 error (nothing written); 3 done, but the runtime "
        "rejected some networks (the others are written).",
    )
    src = m.add_argument_group("architectures (at least one source)")
    src.add_argument("--arch", action="append", default=[], metavar="STR",
                     help="a NAS-Bench-201 architecture string (repeatable)")
    src.add_argument("--archs", metavar="FILE",
                     help="a file of architecture strings, one per line, or a CSV with an arch_str column "
                     "(and optionally nb201_index, as in nb201_archs.csv)")
    src.add_argument("--sample", type=int, metavar="N", help="N distinct random architectures (seeded)")
    src.add_argument("--onnx", nargs="+", default=[], metavar="FILE",
                     help="ONNX files instead of NAS-Bench-201 cells (CSV columns path,sha256,device,latency_ms)")
    src.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    from .predict import PRECISION_HELP, _input_shape

    m.add_argument("--precision", choices=("f32", "bf16", "f16"), default=None, help=PRECISION_HELP)

    m.add_argument("--input-shape", action="append", default=[], type=_input_shape, metavar="NAME=D0,D1,...",
                   help="with --onnx: the full shape of an input whose dimensions besides the batch are dynamic "
                   "(e.g. input=1,3,640,640; repeatable; for every file given), fixed in the model the runtime "
                   "loads")
    _common(m, "measuring")
    m.add_argument("--resolution", type=int, default=None,
                   help="input height and width (default 32 for NAS-Bench-201 cells, 224 for FBNet networks)")
    m.add_argument("--device", metavar="NAME", help="the device column (default <hostname>-<runtime>-<threads>t)")
    m.add_argument("-o", "--output", metavar="FILE.csv",
                   help="write the CSV here and the conditions to FILE.csv.json (atomically)")
    m.add_argument("--passes", type=int, metavar="N", help="windows per network, each a fresh session (default 3)")
    m.add_argument("--budget-s", type=float, metavar="S", help="seconds at most per window (default 2)")
    m.add_argument("--min-time-s", type=float, metavar="S",
                   help="seconds of timed runs at least before a window's median may be called stable (default 0.6)")
    m.set_defaults(func=_measure)

    p = subparsers.add_parser(
        "profile",
        help="profile a runtime on MAPLE-Edge's operator suite -> hardware-runtime descriptor (JSON)",
        description="Run each op model of the default suite (19 models) under the runtime, 6 passes of a fresh "
        "session each (latency: the smallest of an op's window medians), with perf_event counters "
        "(MAPLE-Edge's 11 events plus task-clock, page-faults, context-switches) read in-process around "
        "exactly each timed loop. Writes the descriptor: per op the "
        "latency (ms) and per event the count per inference and per ms, each with its counter state.",
    )
    _common(p, "profiling")
    p.add_argument("-o", "--output", metavar="FILE.json", help="write the descriptor here (atomically)")
    p.add_argument("--passes", type=int, help="times the suite is run (default 6)")
    p.add_argument("--budget-s", type=float, metavar="S", help="seconds at most per op and pass (default 0.08)")
    p.add_argument("--repeat", type=int, help="copies of each cell op chained in its model (default 8)")
    p.add_argument("--suite", choices=("ops", "layers"), default="ops",
                   help="ops: MAPLE-Edge's operator suite -> the descriptor (default); layers: the layer cost "
                   "model's suite (65 chains of one layer kind, ~60 s) -> its latencies (schema "
                   "maple_edge_lite.layer_profile/1)")
    p.set_defaults(func=_profile)


def _archs(args):
    from .._errors import InputError
    from ..device.measure import read_archs, sample_archs

    archs, index = list(args.arch), {}
    if args.archs:
        more, index = read_archs(args.archs)
        archs += more
    if args.sample is not None:
        archs += sample_archs(args.sample, args.seed)
    if not archs:
        raise InputError("nothing to measure: give --arch STR, --archs FILE or --sample N")
    return list(dict.fromkeys(archs)), index


def _measure(args) -> int:
    from .._errors import InputError
    from ..device import measure as M
    from .predict import _runtime_options

    if args.output:
        M.check_writable(args.output)
        M.check_writable(M.sidecar_path(args.output))
    if args.onnx and (args.arch or args.archs or args.sample is not None):
        raise InputError("--onnx measures ONNX files; give it without --arch/--archs/--sample")
    if args.input_shape and not args.onnx:
        raise InputError("--input-shape goes with --onnx (the shape of an ONNX network's input)")
    if args.onnx:
        archs, index = list(args.onnx), {}
    else:
        archs, index = _archs(args)
    for a in ([] if args.onnx else archs):  # every string checked before the first is measured
        M.arch_space(a)
    timing = {}
    if args.budget_s is not None:
        timing["budget_s"] = args.budget_s
    if args.min_time_s is not None:
        timing["min_time_s"] = args.min_time_s
    with _progress(args) as bar:
        if args.onnx:
            rows = M.measure_onnx(archs, runtime=args.runtime, threads=args.threads, device=args.device, cpus=args.cpu,
                                  passes=args.passes, progress=bar, input_shapes=dict(args.input_shape) or None,
                                  runtime_options=_runtime_options(args), **timing)
        else:
            rows = M.measure(archs, runtime=args.runtime, threads=args.threads, resolution=args.resolution,
                             device=args.device, index=index, cpus=args.cpu, passes=args.passes, progress=bar,
                             runtime_options=_runtime_options(args), **timing)
    rows.conditions["selection"] = {
        "onnx": len(args.onnx),
        "arch": len(args.arch),
        "archs_file": args.archs,
        "sample": None if args.sample is None else {"n": args.sample, "seed": args.seed},
    }
    if args.output:
        csv_path, side = M.write_csv(rows, args.output)
    _warn_if_busy(rows)
    if args.json:
        out = {"rows": [{"device": r.device, **r.summary()} for r in rows],
               "conditions": rows.conditions}
        print(json.dumps(out, indent=2, allow_nan=False))
        return _report_rejected(rows)
    width = max(len(r.arch_str) for r in rows)
    print(f"{'arch_str':<{width}}  {'latency ms':>10}  {'p10-p90 ms':>17}  {'runs':>6}  stable  window medians ms")
    for r in rows:
        t = r.timing
        print(f"{r.arch_str:<{width}}  {r.latency_ms:10.4f}  {t.p10_ms:8.4f}-{t.p90_ms:<8.4f}  {t.runs:6d}  "
              f"{'yes' if t.stable else 'NO ':<6}  {' '.join(f'{m:.4f}' for m in r.window_medians_ms)}")
    c = rows.conditions
    print(f"device {c['device']}: {c['runtime'].get('name')} {c['runtime'].get('version')}, {c['threads']} thread(s), "
          f"{len(rows)} network(s) in {c['wall_s']:.1f} s, load {c['host'].get('loadavg')}")
    if args.output:
        print(f"wrote {csv_path} and {side}")
    unstable = sum(not r.timing.stable for r in rows)
    if unstable:
        print(f"note: the fastest window of {unstable} network(s) did not settle within its budget (busy machine?); "
              "raise --budget-s or measure when it is quieter", file=sys.stderr)
    return _report_rejected(rows)


def _report_rejected(rows) -> int:
    rejected = rows.conditions.get("rejected") or []
    if not rejected:
        return 0
    print(f"maple-edge-lite: warning: the runtime rejected {len(rejected)} network(s), left out of the results "
          f"(listed in the sidecar); the first, {rejected[0]['arch_str']}: {rejected[0]['error'][:200]}",
          file=sys.stderr)
    return EXIT_SOME_REJECTED


def _profile_timing(args, defaults) -> dict:
    """``--passes`` and ``--budget-s`` as timing overrides (a budget also caps the minimum timed
    time at half of it, from the suite's ``defaults``)."""
    kw = {}
    if args.passes is not None:
        kw["passes"] = args.passes
    if args.budget_s is not None:
        kw["budget_s"] = args.budget_s
        kw["min_time_s"] = min(defaults["min_time_s"], args.budget_s / 2)
    return kw


def _profile_layers(args) -> int:
    from .._errors import InputError
    from ..device import profile as P
    from ..format import write_atomic

    if args.repeat is not None:
        raise InputError("--repeat applies to the operator suite, not --suite layers")
    kw = _profile_timing(args, P.LAYER_SUITE_TIMING)
    with _progress(args) as bar:
        doc = P.profile_layers(args.runtime, threads=args.threads, cpus=args.cpu, progress=bar, **kw)
    if args.output:
        write_atomic(args.output, (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode())
    if args.json:
        print(json.dumps(doc, indent=1, allow_nan=False))
    else:
        rt = doc["runtime"]
        print(f"{rt.get('name')} {rt.get('version')}, {rt.get('threads')} thread(s): {len(doc['entries'])} layer suite "
              f"entries in {doc['wall_s']:.1f} s")
        for e in doc["entries"]:
            print(f"  {e['name']:<34} {e['kind']:<16} {e['latency_ms']:10.4f} ms")
        for name, why in doc["rejected"].items():
            print(f"  {name:<34} rejected: {why[:80]}")
        if args.output:
            print(f"wrote {args.output}")
    return 0


def _warn_if_busy(rows) -> None:
    """At one thread the calling thread does all the work: if it held a CPU for much less than
    the window, other processes were running on it and the latencies include that waiting."""
    if rows.conditions.get("threads") != 1:
        return
    shares = [r.timing.thread_cpu_ms / r.timing.window_ms for r in rows if r.timing.window_ms > 0]
    if shares and min(shares) < 0.9:
        print(f"note: this process held a CPU for only {100 * min(shares):.0f}% of a timed window: other work "
              "was running on it and the latencies include waiting for it; measure on a quiet machine or pin "
              "with --cpu to a CPU nothing else uses", file=sys.stderr)


def _profile(args) -> int:
    from ..device import profile as P
    from ..device.measure import check_writable

    if args.output:
        check_writable(args.output)
    if args.suite == "layers":
        return _profile_layers(args)
    kw = _profile_timing(args, P.PROFILE_TIMING)
    if args.repeat is not None:
        kw["repeat"] = args.repeat
    with _progress(args) as bar:
        desc = P.profile(args.runtime, threads=args.threads, cpus=args.cpu, progress=bar, **kw)
    if args.output:
        P.save_descriptor(desc, args.output)
    if args.json:
        print(json.dumps(desc, indent=2, allow_nan=False))
        return 0
    rt = desc["runtime"]
    print(f"{rt.get('name')} {rt.get('version')}, {rt.get('threads')} thread(s) on {desc['device']['cpu_model']} "
          f"({desc['device']['kernel']}): {len(desc['suite']['ops'])} ops x {desc['timing']['passes']} passes "
          f"in {desc['wall_s']:.1f} s, load {desc['device'].get('loadavg')}")
    events = desc["events"]
    counted = [e for e in events
               if all(desc["ops"][o["name"]]["counters"].get(e, {}).get("state") in P.VALUED
                      for o in desc["suite"]["ops"] if desc["ops"][o["name"]]["timing"] is not None)]
    shown = [e for e in counted if e in ("task-clock", "instructions", "cpu-cycles", "cache-misses")][:3]
    head = "".join(f"  {e + '/ms':>18}" for e in shown)
    print(f"  {'op':<24}  {'latency ms':>10}{head}")
    for o in desc["suite"]["ops"]:
        r = desc["ops"][o["name"]]
        if r["timing"] is None:
            print(f"  {o['name']:<24}  {'rejected':>10}  {r['reason'][:60]}")
            continue
        cells = "".join(f"  {r['counters'][e]['rate']:18.6g}" for e in shown)
        print(f"  {o['name']:<24}  {r['timing']['latency_ms']:10.5f}{cells}")
    states = {}
    for f in desc["features"]:
        states[f["state"]] = states.get(f["state"], 0) + 1
    print(f"features: {len(desc['features'])} ({', '.join(f'{v} {k}' for k, v in states.items())}); "
          f"events counted: {', '.join(counted) or 'none'}")
    not_counted = [e for e in events if e not in counted]
    if not_counted:
        first = next((r["counters"][not_counted[0]] for r in desc["ops"].values() if r["counters"]), None)
        why = f" ({first['state']}: {first.get('reason') or '?'})" if first else ""
        print(f"not counted: {', '.join(not_counted)}{why}")
    if args.output:
        print(f"wrote {args.output}")
    return 0

"""``maple-edge-lite evaluate``: score few-shot latency predictors on unseen devices.

    maple-edge-lite evaluate --data ../shared/data --leave-one-out --shots 10 --seeds 5 --json
    maple-edge-lite evaluate --data DIR --train-devices A,B --test-devices C --methods kriging,ceiling

Imported only when the CLI is built; the evaluation modules themselves load on first use."""

from __future__ import annotations

import json
import math
from pathlib import Path

_METHOD_HELP = ("comma-separated method names (default: all, the shipped predictor's method bayes_linear and its "
                "variants first, then mlp and the baselines flops, ridge_enc, ridge_dev, kriging, kriging_greedy, "
                "ceiling), or module:factory for any Method (a zero-argument callable)")
#: Points drawn by --plot at most (sampled evenly over the test devices, seed 0's draw).
PLOT_POINTS = 3000


def add_parser(subparsers) -> None:
    e = subparsers.add_parser(
        "evaluate",
        help="score few-shot latency predictors on held-out devices (leave-one-group-out or a split)",
        description="Fit each method on the training devices, adapt it to each test device from --shots "
        "measured archs (--seeds random draws, the same archs for every method), and report acc5/10/15 "
        "(fractions), Spearman, RMSPE and MAPE (percent) per device and on average. With --leave-one-out, "
        "each group of near-duplicate devices is held out in turn; the headline is the group mean. "
        "Tip: on a busy machine, OPENBLAS_NUM_THREADS=1 can be many times faster. Exit status: 0 done; "
        "1 error; 3 --plot without matplotlib (pip install 'maple-edge-lite[plot]'), nothing was run.",
    )
    e.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="folder in the shared latency-table format, searched recursively (repeatable)")
    e.add_argument("--space", choices=("nb201", "fbnet"), default="nb201")
    e.add_argument("--train-devices", metavar="A,B,...", help="training devices (with --test-devices)")
    e.add_argument("--test-devices", metavar="C,D,...", help="test devices (with --train-devices)")
    e.add_argument("--leave-one-out", action="store_true",
                   help="hold out each group of near-duplicate devices in turn")
    e.add_argument("--devices", metavar="A,B,...", help="with --leave-one-out: only these devices (default all)")
    e.add_argument("--shots", type=int, default=10, help="measured archs per test device (default 10)")
    e.add_argument("--seeds", type=int, default=5, help="random draws per test device (default 5)")
    e.add_argument("--protocol", choices=("all", "help"), default="all",
                   help="all: adapt on any arch, score on all others; help: HELP's pools (adapt from arch "
                   "indices 0-899, score on 900-1899, each trimmed to the 10-90th latency percentile)")
    e.add_argument("--methods", metavar="M,...", help=_METHOD_HELP)
    e.add_argument("--primary", metavar="M",
                   help="method whose paired differences to the others are reported (default: the first)")
    e.add_argument("--encoder", choices=("auto", "simple", "encode"), default="auto",
                   help="auto: maple_edge_lite.encode when importable, else the simple numpy encoder")
    e.add_argument("--group-threshold", type=float, metavar="R",
                   help="correlation (log latency) that makes two devices near-duplicates (default 0.995)")
    e.add_argument("--no-group-metadata", action="store_true",
                   help="group by correlation only, ignoring the setups declared in devices.csv")
    e.add_argument("--json", action="store_true", help="print the JSON report")
    e.add_argument("--out", metavar="FILE", help="also write the JSON report to FILE")
    e.add_argument("--plot", metavar="FILE.png",
                   help="draw predicted against measured ms of the primary method (the first by default) on the "
                   f"test devices, first draw, at most {PLOT_POINTS} points, with its intervals")
    e.set_defaults(func=_run)


def _split(s):
    return [x.strip() for x in s.split(",") if x.strip()] if s else []


def _factories(spec):
    from .._errors import InputError
    from ..learn.methods import all_methods

    known = all_methods()
    if not spec or spec.strip() == "all":
        return known
    out = {}
    for name in _split(spec):
        if name in known:
            out[name] = known[name]
        elif ":" in name:
            import importlib

            mod, _, attr = name.partition(":")
            try:
                factory = getattr(importlib.import_module(mod), attr)
            except (ImportError, AttributeError) as e:
                raise InputError(f"--methods: cannot load {name!r} ({e})") from None
            out[getattr(factory(), "name", attr)] = factory
        else:
            raise InputError(f"--methods: unknown method {name!r}; known: {', '.join(known)} "
                             "(or module:factory)")
    return out


def _json_safe(x):
    """NaN/inf are not JSON: write them as null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _run(args) -> int:
    from .._errors import InputError
    from ..learn.data import load_table
    from ..format import write_atomic
    from ..learn.evaluate import evaluate, format_report, leave_one_out

    split = bool(args.train_devices or args.test_devices)
    if split == bool(args.leave_one_out):
        raise InputError("evaluate: give either --train-devices and --test-devices, or --leave-one-out")
    if split and not (args.train_devices and args.test_devices):
        raise InputError("evaluate: --train-devices and --test-devices go together")
    if not args.leave_one_out and (args.devices or args.group_threshold is not None or args.no_group_metadata):
        raise InputError("evaluate: --devices, --group-threshold and --no-group-metadata go with --leave-one-out")
    factories = _factories(args.methods)
    if args.primary and args.primary not in factories:
        raise InputError(f"--primary {args.primary!r} is not among the methods: {', '.join(factories)}")
    observe, points = None, {}
    if args.plot:
        from .validate import EXIT_NO_PLOT, no_plot

        if no_plot(args.plot):
            return EXIT_NO_PLOT
        shown = args.primary or next(iter(factories))

        def observe(method, device, seed, measured, predicted, lo, hi):
            if method == shown and seed == 0:
                points[device] = (measured, predicted, lo, hi)
    if split:
        train, test = _split(args.train_devices), _split(args.test_devices)
        table = load_table(args.data, args.space, devices=list(dict.fromkeys(train + test)))
        report = evaluate(table, args.encoder, factories, train, test, shots=args.shots, seeds=args.seeds,
                          protocol=args.protocol, primary=args.primary or (next(iter(factories))
                                                                             if len(factories) > 1 else None),
                          observe=observe)
    else:
        devices = _split(args.devices) or None
        table = load_table(args.data, args.space, devices=devices)
        report = leave_one_out(table, args.encoder, factories, devices=devices, shots=args.shots,
                               seeds=args.seeds, protocol=args.protocol, primary=args.primary,
                               group_threshold=args.group_threshold,
                               group_metadata=not args.no_group_metadata, observe=observe)
    report["config"]["data"] = [str(d) for d in args.data]
    text = json.dumps(_json_safe(report), indent=2, allow_nan=False)
    if args.out:
        write_atomic(Path(args.out), (text + "\n").encode("utf-8"))
    if args.plot:
        _plot(args.plot, points, shown, args.shots)
    print(text if args.json else format_report(report))
    if args.plot and not args.json:
        print(f"plot: {args.plot}")
    return 0


def _plot(path, points, method, shots):
    """Seed 0's predictions of ``method`` on every test device, an even share of PLOT_POINTS each."""
    import numpy as np

    from .validate import plot

    rng = np.random.default_rng(0)
    per = max(1, PLOT_POINTS // max(len(points), 1))
    cols = [[], [], [], []]
    total = 0
    for dev in sorted(points):
        y, p, lo, hi = points[dev]
        total += len(y)
        take = np.sort(rng.choice(len(y), min(per, len(y)), replace=False))
        for c, v in zip(cols, (y, p, lo, hi)):
            c.append(None if v is None else np.asarray(v, float)[take])
    y, p = np.concatenate(cols[0]), np.concatenate(cols[1])
    lo = hi = None
    if all(v is not None for v in cols[2]):
        lo, hi = np.concatenate(cols[2]), np.concatenate(cols[3])
    plot(path, y, p, lo, hi, title=f"{method}, {shots} shots, first draw: {len(y)} of {total} predictions "
                                   f"on {len(points)} test devices")

"""``maple-edge-lite validate``: how good this device's predictor is, measured on this device.

    maple-edge-lite validate --sample 100 --seed 1 --plot validate.png
    maple-edge-lite validate --onnx a.onnx b.onnx       # the layer cost model on your networks

Measures ``--sample`` random connected NAS-Bench-201 cells under the runtime (the same timing as
``measure``), predicts them with this device's cached predictor (built first if there is none),
and reports ±5/10/15% accuracy, Spearman, MAPE and how many measurements fall inside the
predictor's interval; ``--plot`` draws predicted against measured (log-log, the ±10% band, the
intervals). ``--onnx FILE ...`` does the same for the layer cost model on the user's own networks
(``predict --onnx``'s model), with the device's speed drift since it was calibrated. The cache is
only read (or built once, as ``predict`` would): an interrupted run
leaves it as it was."""

from __future__ import annotations

import json
import os
import sys
import time

EXIT_NO_PLOT = 3  # --plot asked for but matplotlib is not installed (nothing was measured)


def add_parser(subparsers) -> None:
    from .predict import PRECISION_HELP, _input_shape

    v = subparsers.add_parser(
        "validate",
        help="measure random architectures on this device and score this device's predictor on them",
        description="Measure --sample random connected NAS-Bench-201 cells (--space fbnet: FBNet networks; --onnx: "
        "the ONNX files given, against this device's layer cost model) under --runtime at --threads (the "
        "timing of `measure`), predict them with this device's cached predictor (built first if needed, as "
        "`predict` does), and print +-5/10/15%% accuracy, Spearman, MAPE and the share of measurements inside "
        "the predicted interval. Exit status: 0 done; 1 error; %d --plot without matplotlib "
        "(pip install 'maple-edge-lite[plot]'); 130 interrupted (the cache is left as it was)." % EXIT_NO_PLOT,
    )
    v.add_argument("--onnx", nargs="+", metavar="FILE", help="ONNX CNNs instead of random cells: predicted with this "
                   "device's layer cost model (as `predict --onnx`), measured (as `measure --onnx`), and the model's "
                   "calibration networks timed again for the device's speed drift")
    v.add_argument("--input-shape", action="append", default=[], type=_input_shape, metavar="NAME=D0,D1,...",
                   help="with --onnx: the full shape of an input whose dimensions besides the batch are dynamic")
    v.add_argument("--precision", choices=("f32", "bf16", "f16"), default=None,
                   help="with --onnx: " + PRECISION_HELP)
    v.add_argument("--sample", type=int, default=None, metavar="N",
                   help="random connected cells to measure (default 50)")
    v.add_argument("--seed", type=int, default=None, metavar="S", help="seed of the sample (default 0)")
    v.add_argument("--runtime", default=None, metavar="NAME", help="runtime (default onnxruntime)")
    v.add_argument("--threads", type=int, default=1, metavar="N", help="runtime threads (default 1)")
    v.add_argument("--plot", metavar="FILE.png", help="draw predicted against measured into this PNG")
    v.add_argument("--csv", metavar="FILE", help="also write the measurements (the shared CSV format + sidecar)")
    v.add_argument("--space", choices=("nb201", "fbnet"), default=None,
                   help="nb201: random connected NAS-Bench-201 cells and this device's nb201 predictor (default); "
                   "fbnet: random FBNet networks (224x224) and its fbnet predictor")
    v.add_argument("--json", action="store_true", help="print a JSON report")
    v.set_defaults(func=_validate)


def _check_plot_target(path):
    """Before measuring: matplotlib importable and the PNG's folder writable."""
    from .._errors import InputError
    from ..device.measure import check_writable

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise _NoPlot("--plot needs matplotlib, which is not installed: pip install 'maple-edge-lite[plot]' "
                      "(or pip install matplotlib)") from None
    if not str(path).lower().endswith(".png"):
        raise InputError(f"--plot {path}: give a .png file name")
    check_writable(path)


class _NoPlot(Exception):
    pass


def no_plot(path) -> bool:
    """Before anything runs: True (the reason printed) when --plot cannot draw because matplotlib
    is missing, so the command exits EXIT_NO_PLOT; a path it cannot write raises InputError."""
    try:
        _check_plot_target(path)
    except _NoPlot as e:
        print(f"maple-edge-lite: error: {e}", file=sys.stderr)
        return True
    return False


def plot(path, measured, predicted, lo=None, hi=None, title=""):
    """Predicted against measured ms, log-log, with the ±10% band and the intervals (if any)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    y, p = np.asarray(measured, float), np.asarray(predicted, float)
    a, b = min(y.min(), p.min()) * 0.8, max(y.max(), p.max()) * 1.25
    fig, ax = plt.subplots(figsize=(5.2, 5.0), dpi=120)
    g = np.geomspace(a, b, 50)
    ax.fill_between(g, g / 1.1, g * 1.1, color="0.85", label="±10%")
    ax.plot(g, g, color="0.4", lw=0.8)
    inside = np.abs(p / y - 1) <= 0.10 + 1e-9
    if lo is not None:
        err = np.vstack([p - np.asarray(lo, float), np.asarray(hi, float) - p])
        ax.errorbar(y, p, yerr=err, fmt="none", ecolor="tab:blue", alpha=0.35, lw=0.8, label="interval")
    ax.scatter(y[inside], p[inside], s=14, color="tab:blue", label="within ±10%")
    ax.scatter(y[~inside], p[~inside], s=14, color="tab:red", label="outside")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(a, b)
    ax.set_ylim(a, b)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis in (ax.xaxis, ax.yaxis):  # plain numbers at 1, 2, 5 x 10^k; no labels on the minor ticks
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("measured (ms)")
    ax.set_ylabel("predicted (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    import io

    from ..format import write_atomic

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    write_atomic(path, buf.getvalue())


def _reference_rows(entry) -> list:
    """The measurements (arch_str, latency_ms) the predictor in cache entry ``entry`` was adapted
    to ([] if unreadable)."""
    from ..device import measure as M

    try:
        return M.read_csv(entry / "measurements.csv")
    except Exception:  # noqa: BLE001 - the drift check is informative only
        return []


def _validate(args) -> int:
    import numpy as np

    from .._cache import DEFAULT_RUNTIME, RECHECK_MIN, _device_model, recheck_archs
    from .._errors import InputError
    from ..device import measure as M
    from ..learn.evaluate import metrics
    from .predict import _progress_printer

    if args.onnx:
        return _validate_onnx(args)
    if args.input_shape or args.precision:
        raise InputError("--input-shape and --precision go with --onnx (an ONNX network's input shape; the layer "
                         "cost model's runtime precision)")
    args.sample = 50 if args.sample is None else args.sample
    args.seed = 0 if args.seed is None else args.seed
    args.space = args.space or "nb201"
    if isinstance(args.sample, bool) or args.sample < 1:
        raise InputError(f"--sample must be at least 1, got {args.sample}")
    if args.plot and no_plot(args.plot):
        return EXIT_NO_PLOT
    if args.csv:
        M.check_writable(args.csv)
    runtime = args.runtime or DEFAULT_RUNTIME
    space = args.space
    archs = M.sample_fbnet(args.sample, args.seed) if space == "fbnet" else M.sample_connected(args.sample, args.seed)
    t0 = time.perf_counter()
    model, entry, built = _device_model(runtime, args.threads, base=space, progress=_progress_printer())
    level = model.interval_level
    show = _progress_printer()
    # The cells `predict --recheck` would time are measured again with the sample (the same
    # passes, so the same conditions): if the device runs at another speed than when they were
    # measured to build the predictor, every prediction is off by that much, and the report says so.
    ref_rows = [r for r in _reference_rows(entry) if r["arch_str"] not in set(archs)]
    then = {r["arch_str"]: float(r["latency_ms"]) for r in ref_rows}
    extra = recheck_archs(ref_rows)
    rows = M.measure(archs + extra, runtime, args.threads, device=M.default_device(runtime, args.threads),
                     progress=lambda i, n, a, r: (r is None or i == n) and show("validate", i, n, a))
    now = {r.arch_str: r.latency_ms for r in rows if r.arch_str in set(extra)}
    drift = float(np.median([now[a] / then[a] for a in now])) if now else None
    rows[:] = [r for r in rows if r.arch_str not in now]
    measured = np.array([r.latency_ms for r in rows])
    archs = [r.arch_str for r in rows]  # less any the runtime rejected (listed in --csv's sidecar)
    if level is not None:
        pred, lo, hi = (np.asarray(v, float) for v in model.predict_archs_interval(archs))
        cover = float(np.mean((measured >= lo) & (measured <= hi)))
    else:
        pred, lo, hi, cover = np.asarray(model.predict_archs(archs), float), None, None, None
    m = metrics(pred, measured)
    small = measured < 0.3
    report = {
        "device_model": str(entry / "device.melw"), "built": built, "space": space, "runtime": runtime,
        "threads": args.threads,
        "sample": args.sample, "seed": args.seed, "seconds": round(time.perf_counter() - t0, 1),
        "loadavg": list(os.getloadavg()),
        "acc5": m["acc5"], "acc10": m["acc10"], "acc15": m["acc15"], "spearman": m["spearman"], "mape": m["mape"],
        "interval_level": level, "coverage": cover,
        "acc10_under_0.3ms": (float(np.mean(np.abs(pred[small] / measured[small] - 1) <= 0.10 + 1e-9))
                              if small.any() else None),
        "n_under_0.3ms": int(small.sum()),
        "reference_drift": None if drift is None else round(drift, 4), "drift_refs": len(now),
        "acc10_drift_corrected": None if drift is None else float(np.mean(np.abs(pred * drift / measured - 1)
                                                                          <= 0.10 + 1e-9)),
        "archs": [{"arch": a, "measured_ms": round(float(y), 6), "latency_ms": round(float(p), 6),
                   "lo_ms": None if lo is None else round(float(lo[i]), 6),
                   "hi_ms": None if hi is None else round(float(hi[i]), 6)}
                  for i, (a, y, p) in enumerate(zip(archs, measured, pred))],
    }
    what = "FBNet networks" if space == "fbnet" else "connected cells"
    if args.csv:
        M.write_csv(rows, args.csv)
    if args.plot:
        plot(args.plot, measured, pred, lo, hi,
             title=f"{runtime}, {args.threads} thread(s), {args.sample} random {what}\n±10% {m['acc10']:.2f}, "
                   f"Spearman {m['spearman']:.3f}" + ("" if cover is None else f", {level:.0%} interval covers {cover:.2f}"))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.sample} random {what}, {runtime} at {args.threads} thread(s), this device's predictor "
              f"({'built now' if built else 'cached'}):")
        print(f"  within ±5% {m['acc5']:.2f}   ±10% {m['acc10']:.2f}   ±15% {m['acc15']:.2f}   "
              f"Spearman {m['spearman']:.3f}   MAPE {m['mape']:.1f}%")
        if cover is not None:
            print(f"  {level:.0%} interval covers {cover:.2f} of the measurements")
        if small.any():
            print(f"  under 0.3 ms ({int(small.sum())} networks): ±10% {report['acc10_under_0.3ms']:.2f}")
        if drift is not None:
            print(f"  {len(now)} of the predictor's reference networks run {100 * (drift - 1):+.1f}% (median) against when "
                  f"it was built; with that factor ±10% would be {report['acc10_drift_corrected']:.2f}"
                  + ("" if abs(drift - 1) < RECHECK_MIN else
                     f" - the device's speed moved: `maple-edge-lite predict --recheck{' --space fbnet' if space == 'fbnet' else ''}"
                     f"{'' if runtime == DEFAULT_RUNTIME else ' --runtime ' + runtime}"
                     f"{'' if args.threads == 1 else ' --threads %d' % args.threads}` rescales the predictor "
                     "to the speed now"))
        if args.plot:
            print(f"  plot: {args.plot}")
    return 0


def _validate_onnx(args) -> int:
    """``validate --onnx FILE ...``: the files predicted with this device's cached layer cost model
    (built first if there is none, as ``predict --onnx`` does), measured with ``measure --onnx``'s
    timing, then the model's calibration networks timed again (what ``predict --onnx --recheck``
    would apply, without changing the cache): ±5/10/15% accuracy, Spearman (three networks or
    more), MAPE, the interval's coverage and the device's speed drift."""
    import numpy as np

    from .._cache import LAYER_FILES, RECHECK_MIN, layer_speed_ratio, read_manifest
    from .._errors import InputError
    from ..device import measure as M
    from ..learn.evaluate import metrics
    from .predict import _layer_core, _layer_table, _progress_printer, _runtime_options, _unpriced

    if args.sample is not None or args.seed is not None or args.space is not None:
        raise InputError("--onnx goes without --sample/--seed/--space: it measures the ONNX files given")
    tables = [f for f in args.onnx if str(f).lower().endswith(".json")]
    if tables:
        raise InputError(f"{tables[0]} is a layer table: validate --onnx measures the networks, give their ONNX files")
    if args.plot and no_plot(args.plot):
        return EXIT_NO_PLOT
    if args.csv:
        M.check_writable(args.csv)
    t0 = time.perf_counter()
    shapes = dict(args.input_shape) or None
    files = list(dict.fromkeys(os.fspath(f) for f in args.onnx))
    layer_tables = [_layer_table(f, shapes) for f in files]  # every file read before a first use spends a minute
    for f, t in zip(files, layer_tables):
        _unpriced(f, t)
    core, entry, built, runtime, threads = _layer_core(args, t0)
    opts = _runtime_options(args)
    show = _progress_printer()
    rows = M.measure_onnx(files, runtime, threads, runtime_options=opts, input_shapes=shapes,
                          progress=lambda i, n, a, r: (r is None or i == n) and show("validate", i, n, a))
    # The calibration networks, timed again right after the files: has the device's speed moved
    # since the model was calibrated (the ratio `predict --onnx --recheck` would apply)?
    drift, timed = layer_speed_ratio(read_manifest(entry), runtime, threads, opts, show)
    by_path = {r.arch_str: r.latency_ms for r in rows}
    kept = [i for i, f in enumerate(files) if f in by_path]  # less any the runtime rejected (the sidecar lists them)
    if not kept:
        raise InputError("the runtime ran none of the files: nothing to validate (`maple-edge-lite measure --onnx` "
                         "says why)")
    measured = np.array([by_path[files[i]] for i in kept])
    pred, lo, hi = (np.array(v) for v in zip(*(core.predict_layers(layer_tables[i].array()) for i in kept)))
    m = metrics(pred, measured)
    level = core.interval_level
    cover = float(np.mean((measured >= lo) & (measured <= hi)))
    report = {
        "model": str(entry / LAYER_FILES["model"]), "built": built, "runtime": runtime, "threads": threads,
        "runtime_options": opts or None, "seconds": round(time.perf_counter() - t0, 1), "loadavg": list(os.getloadavg()),
        "acc5": m["acc5"], "acc10": m["acc10"], "acc15": m["acc15"],
        "spearman": m["spearman"] if len(kept) >= 3 else None, "mape": m["mape"],
        "interval_level": level, "coverage": cover,
        "calibration_drift": None if drift is None else round(drift, 4), "drift_networks": timed,
        "acc10_drift_corrected": None if drift is None else float(np.mean(np.abs(pred * drift / measured - 1)
                                                                          <= 0.10 + 1e-9)),
        "networks": [{"path": files[i], "measured_ms": round(float(y), 6), "latency_ms": round(float(p), 6),
                      "lo_ms": round(float(a), 6), "hi_ms": round(float(b), 6)}
                     for i, y, p, a, b in zip(kept, measured, pred, lo, hi)],
    }
    if args.csv:
        M.write_csv(rows, args.csv)
    if args.plot:
        plot(args.plot, measured, pred, lo, hi,
             title=f"{runtime}, {threads} thread(s), {len(kept)} ONNX networks\n±10% {m['acc10']:.2f}, "
                   f"MAPE {m['mape']:.1f}%, {level:.0%} interval covers {cover:.2f}")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{len(kept)} ONNX networks, {runtime} at {threads} thread(s), this device's layer cost model "
          f"({'built now' if built else 'cached'}):")
    for r in report["networks"]:
        print(f"  {r['latency_ms']:10.4f} ms predicted [{r['lo_ms']:.4f}, {r['hi_ms']:.4f}]  {r['measured_ms']:10.4f} ms "
              f"measured  {100 * (r['latency_ms'] / r['measured_ms'] - 1):+6.1f}%  {r['path']}")
    print(f"  within ±5% {m['acc5']:.2f}   ±10% {m['acc10']:.2f}   ±15% {m['acc15']:.2f}   "
          + (f"Spearman {m['spearman']:.3f}   " if report["spearman"] is not None else "") + f"MAPE {m['mape']:.1f}%")
    print(f"  {level:.0%} interval covers {cover:.2f} of the measurements")
    if drift is not None:
        again = " ".join(["maple-edge-lite predict --onnx FILE --recheck"]
                         + ([f"--runtime {runtime}"] if args.runtime else []) + ([f"--threads {threads}"] if threads != 1 else [])
                         + ([f"--precision {args.precision}"] if args.precision else []))
        print(f"  the model's {timed} calibration networks run {100 * (drift - 1):+.1f}% (median) against when it was "
              f"calibrated; with that factor ±10% would be {report['acc10_drift_corrected']:.2f}"
              + ("" if abs(drift - 1) < RECHECK_MIN else f" - the device's speed moved: `{again}` rescales the model"))
    if args.plot:
        print(f"  plot: {args.plot}")
    return 0

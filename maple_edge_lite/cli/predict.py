"""``maple-edge-lite adapt`` and ``maple-edge-lite predict``: the main job on a fresh board.

    maple-edge-lite adapt --descriptor desc.json --measurements m.csv -o device.melw [--model nb201@1.0.0]
    maple-edge-lite predict --arch '|nor_conv_3x3~0|+|...|' [--archs FILE] [--model device.melw]

``predict`` without ``--model`` uses this device's predictor from the cache (maple_edge_lite._cache),
building it on first use. Imported whenever the CLI is built, so it imports nothing at module
level beyond the standard library: the cached ``predict`` path loads no runtime and no onnx."""

from __future__ import annotations

import json
import os
import sys
import time

MIN_MEASUREMENTS = 10


def _input_shape(text: str):
    """argparse type of --input-shape (layers, predict --onnx, measure --onnx): NAME=D0,D1,..."""
    import argparse

    name, sep, dims = text.rpartition("=")
    try:
        shape = [int(d) for d in dims.split(",")]
    except ValueError:
        shape = None
    if not sep or not name or not shape or any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"expected NAME=D0,D1,... with positive integers, got {text!r}")
    return name, shape


#: What ``--precision`` says (predict --onnx, layers --predict, measure).
PRECISION_HELP = ("the runtime's inference precision, for OpenVINO: f32, bf16 or f16 (default: its own for the CPU, "
                  "bf16 on x86 CPUs with AMX or AVX-512 BF16, where the layer cost model fits worst); other runtimes "
                  "take none")


def _runtime_options(args):
    """The runtime adapter's options the CLI sets (``--precision``), or None."""
    return {"precision": args.precision} if getattr(args, "precision", None) else None


def add_parser(subparsers) -> None:
    a = subparsers.add_parser(
        "adapt",
        help="adapt a base predictor to this device: descriptor + >= 10 measurements -> device .melw",
        description="Fold a device descriptor (`maple-edge-lite profile`) and at least 10 measured "
        "architectures (`maple-edge-lite measure`, the shared CSV format) into a device-specialised "
        "weights file that takes architectures only. Closed form, no PyTorch. Refuses a descriptor "
        "whose feature schema does not match the model's, naming the features that differ.",
    )
    a.add_argument("--model", metavar="BASE", default=None,
                   help="base predictor: a registry name (nb201, nb201@1.0.0, fbnet) or a .melw path "
                   "(default: the registry's default)")
    a.add_argument("--descriptor", metavar="FILE", help="descriptor JSON of this device (required)")
    a.add_argument("--measurements", metavar="FILE",
                   help="measurements CSV (nb201_index,arch_str,device,latency_ms; or the fbnet columns) (required)")
    a.add_argument("-o", "--output", metavar="FILE", help="where to write the device .melw (required)")
    a.add_argument("--reference-archs", action="store_true",
                   help="print the base's reference architectures (what to measure), one per line, and exit: "
                   "`maple-edge-lite adapt --reference-archs > refs.txt; maple-edge-lite measure --archs refs.txt "
                   "-o m.csv`")
    a.add_argument("--json", action="store_true", help="print a JSON report")
    a.set_defaults(func=_adapt)

    p = subparsers.add_parser(
        "predict",
        help="predicted latency (ms) of architectures on this device",
        description="Print the predicted latency in milliseconds of each architecture. Without --model, "
        "the first call on a device profiles it, measures the base predictor's reference architectures "
        "under --runtime at --threads, adapts the default predictor and caches the result (about a "
        "minute, progress on stderr); later calls read the cache. The cache is keyed by device (CPU "
        "model, cores, kernel, PMUs) and runtime (name, version, threads): "
        "$MAPLE_EDGE_LITE_CACHE, else $XDG_CACHE_HOME/maple_edge_lite, else ~/.cache/maple_edge_lite.",
    )
    p.add_argument("--arch", action="append", default=[], metavar="STR", help="an architecture string (repeatable)")
    p.add_argument("--onnx", nargs="+", default=[], metavar="FILE",
                   help="ONNX CNNs (or their .json layer tables from `maple-edge-lite layers -o`, which need no onnx "
                   "package here) to predict with this device's layer cost model (built on first use: the layer "
                   "suite and five zoo networks measured, about 65 s)")
    p.add_argument("--input-shape", action="append", default=[], type=_input_shape, metavar="NAME=D0,D1,...",
                   help="with --onnx: the full shape of an input whose dimensions besides the batch are dynamic "
                   "(e.g. input=1,3,640,640; repeatable; for every file given)")
    p.add_argument("--precision", choices=("f32", "bf16", "f16"), default=None,
                   help="with --onnx: " + PRECISION_HELP + " (each precision its own cached model)")
    p.add_argument("--archs", metavar="FILE",
                   help="architecture strings, one per line, or a CSV with an arch_str column")
    p.add_argument("--model", metavar="FILE",
                   help="a device .melw (from `adapt`) instead of this device's cached predictor")
    p.add_argument("--runtime", default=None, metavar="NAME", help="runtime to build the predictor for "
                   "(default onnxruntime)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="runtime threads (default 1)")
    p.add_argument("--refresh", action="store_true", help="rebuild this device's cached predictor")
    p.add_argument("--recheck", action="store_true",
                   help="first time 5 of the cached predictor's measured architectures again (about 15 s) and, if the "
                   "device's speed moved by 2%% or more since they were measured (thermal throttling, a governor, a "
                   "busy neighbour), rescale the predictor to the speed now; `validate` reports that drift. "
                   "Without --arch/--archs: only that. With --onnx: the layer cost model's 5 calibration networks "
                   "(about 20 s)")
    p.add_argument("--shots", type=_shots_arg, default=None, metavar="N|auto",
                   help="measurements behind this device's predictor: N >= 10 (a cached predictor with fewer is "
                   "extended with random further architectures, without profiling again), or auto: "
                   "measure in rounds of 5 until the model expects 90%% of architectures within ±10%% or "
                   "--budget-s is spent (default: what the cache has, 10 when building)")
    p.add_argument("--budget-s", type=float, default=None, metavar="S",
                   help="with --shots auto: seconds of measuring at most")
    p.add_argument("--space", choices=("nb201", "fbnet"), default=None,
                   help="search space of the architectures, so of the base predictor adapted to this device "
                   "(default: the one whose notation the strings are in; FBNet networks are measured at 224x224)")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=_predict)


# --- adapt -----------------------------------------------------------------------------------


def _read_measurements(path, space):
    """(archs, latency_ms, devices) from a measurements CSV of ``space``'s columns."""
    import csv

    from .._errors import InputError, ModelNotFoundError
    from ..learn.data import SPACES

    header = list(SPACES[space][1])
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if [c.strip() for c in (reader.fieldnames or [])] != header:
                other = [s for s, (_, h) in SPACES.items() if list(h) == [c.strip() for c in reader.fieldnames or []]]
                hint = (f" (that is the {other[0]} format: use a {other[0]} base model)" if other else "")
                raise InputError(f"{path}: header {','.join(reader.fieldnames or [])!r} is not the {space} "
                                 f"measurements format {','.join(header)}{hint}")
            archs, ms, devices = [], [], []
            for i, row in enumerate(reader, start=2):
                a = (row.get(header[1]) or "").strip()
                try:
                    v = float(row.get("latency_ms") or "")
                except ValueError:
                    raise InputError(f"{path}:{i}: latency_ms {row.get('latency_ms')!r} is not a number") from None
                if not a:
                    raise InputError(f"{path}:{i}: empty {header[1]}")
                if not (v > 0 and v < float("inf")):
                    raise InputError(f"{path}:{i}: latency_ms must be a positive number of ms, got {v!r}")
                archs.append(a)
                ms.append(v)
                devices.append((row.get("device") or "").strip())
    except FileNotFoundError:
        raise ModelNotFoundError(f"measurements file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"measurements file {path} is a directory") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a UTF-8 CSV ({e})") from None
    seen = {}
    for i, a in enumerate(archs):
        if a in seen:
            raise InputError(f"{path}: architecture {a} is measured twice (rows {seen[a] + 2} and {i + 2}); "
                             "keep one row per architecture")
        seen[a] = i
    return archs, ms, sorted(set(devices))


def _same_runtime(desc, sidecar):
    """A reason why the measurements and the descriptor come from different runtime settings, or None."""
    rd, rs = desc.get("runtime") or {}, (sidecar or {}).get("runtime") or {}
    for k in ("name", "version", "threads"):
        if k in rd and k in rs and rd[k] != rs[k]:
            return f"runtime {k} {rs[k]!r} in the measurements, {rd[k]!r} in the descriptor"
    return None


def _adapt(args) -> int:
    from .. import registry
    from .._errors import InputError
    from ..learn.adapt import adapt_base
    from ..device.measure import check_writable, sidecar_path
    from ..device.profile import load_descriptor

    t_load = time.perf_counter()
    if not args.reference_archs:
        missing = [o for o, v in (("--descriptor", args.descriptor), ("--measurements", args.measurements),
                                  ("-o/--output", args.output)) if not v]
        if missing:
            raise InputError(f"adapt needs {', '.join(missing)} (or --reference-archs to list what to measure)")
        check_writable(args.output)
    base = registry.load(args.model)
    meta = base.metadata
    if meta.get("model_kind") != "base":
        raise InputError(f"{args.model or 'the default predictor'} is not a base predictor (model_kind "
                         f"{meta.get('model_kind')!r}): adapt a base (nb201, fbnet or a `train` output)")
    if args.reference_archs:
        sys.stdout.write("".join(a + "\n" for a in registry.reference_archs(base)))
        return 0
    space = meta.get("search_space")
    desc = load_descriptor(args.descriptor)
    archs, ms, devices = _read_measurements(args.measurements, space)
    if len(archs) < MIN_MEASUREMENTS:
        raise InputError(f"{args.measurements}: {len(archs)} measured architectures; adapt needs at least "
                         f"{MIN_MEASUREMENTS} (measure the base's reference architectures: `maple-edge-lite adapt "
                         "--reference-archs > refs.txt; maple-edge-lite measure --archs refs.txt -o m.csv`)")
    if len(devices) > 1:
        raise InputError(f"{args.measurements} mixes devices {', '.join(devices)}: adapt to one device at a time")
    sidecar = None
    side = sidecar_path(args.measurements)
    if os.path.exists(side):
        try:
            with open(side, encoding="utf-8") as f:
                sidecar = json.load(f)
        except (OSError, ValueError) as e:
            raise InputError(f"{side}: unreadable measurements sidecar ({e})") from None
        why = _same_runtime(desc, sidecar)
        if why:
            raise InputError(f"the measurements and the descriptor were taken under different runtimes ({why}): "
                             "profile and measure with the same --runtime and --threads")
    prov = {"measurements": {"file": os.path.basename(args.measurements), "rows": len(archs),
                             "device": devices[0] if devices else None,
                             "runtime": (sidecar or {}).get("runtime")}}
    if meta.get("provenance", {}).get("predictor"):
        prov["base_predictor"] = meta["provenance"]["predictor"]
    t0 = time.perf_counter()
    adapt_base(base, archs, ms, out=args.output, descriptor=desc, provenance=prov)
    adapt_ms = (time.perf_counter() - t0) * 1e3
    size = os.path.getsize(args.output)
    ref = meta.get("provenance", {}).get("predictor") or {}
    name = f"{ref['name']}@{ref['version']}" if ref else (args.model or "the default predictor")
    report = {"output": args.output, "bytes": size, "base": name, "search_space": space,
              "measurements": len(archs), "device": devices[0] if devices else None,
              "descriptor_device": (desc.get("device") or {}).get("cpu_model"),
              "runtime": desc.get("runtime"), "adapt_ms": round(adapt_ms, 3),
              "total_ms": round((time.perf_counter() - t_load) * 1e3, 3)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        rt = desc.get("runtime") or {}
        print(f"adapted {name} to {report['device'] or 'this device'} ({rt.get('name', '?')} {rt.get('version', '')}, "
              f"{rt.get('threads', '?')} thread(s)) from {len(archs)} measurements in {adapt_ms:.1f} ms "
              f"-> {args.output} ({size} bytes)")
    return 0


# --- predict ---------------------------------------------------------------------------------


def _shots_arg(v: str):
    import argparse

    if v == "auto":
        return v
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 10 or 'auto', not {v!r}") from None
    if n < 10:
        raise argparse.ArgumentTypeError(f"must be at least 10 (the base predictor's reference architectures), not {n}")
    return n


def _progress_printer():
    """progress(stage, i, n, item) on stderr: one rewritten line on a terminal; otherwise a line
    when a stage starts and ends and about every tenth of the way."""
    tty = sys.stderr.isatty()
    t0 = time.perf_counter()
    what = {"profile": "profiling the operator suite", "measure": "measuring reference architectures",
            "adapt": "adapting the base predictor", "validate": "measuring the sample",
            "extend": "measuring more architectures", "recheck": "timing reference architectures again",
            "layers": "measuring the layer suite", "calibrate": "measuring calibration networks",
            "recheck_layers": "timing calibration networks again"}

    def show(stage, i, n, item):
        el = time.perf_counter() - t0
        if tty:
            end = "\n" if i == n else ""
            sys.stderr.write(f"\r\033[Kmaple-edge-lite: {what[stage]} {i}/{n} ({el:.0f} s) {item if i < n else ''}"
                             f"{end}")
            sys.stderr.flush()
        elif i == 0 or i == n or i % max(1, n // 10) == 0:
            sys.stderr.write(f"maple-edge-lite: {what[stage]} {i}/{n} ({el:.1f} s)\n")
    return show


def _cache_shots(entry):
    from .._cache import _shots_of, read_manifest
    from .._errors import MapleEdgeError

    try:
        return _shots_of(read_manifest(entry))
    except (MapleEdgeError, OSError, ValueError):  # the count is informative only
        return None


def _predict(args) -> int:
    from .._errors import InputError

    if args.onnx:
        if (args.arch or args.archs or args.model or args.shots is not None or args.budget_s is not None
                or args.space is not None):
            raise InputError("--onnx goes without --arch/--archs/--model/--shots/--budget-s/--space: it "
                             "predicts ONNX files with this device's layer cost model")
        return _predict_onnx(args)
    if args.input_shape or args.precision:
        raise InputError("--input-shape and --precision go with --onnx (an ONNX network's input shape; the layer "
                         "cost model's runtime precision)")
    archs = list(args.arch)
    if args.archs:
        from ..device.measure import read_archs

        archs += read_archs(args.archs)[0]
    if not archs and not (args.recheck and not args.model):
        raise InputError("no architectures: give --arch STR (repeatable) or --archs FILE")
    t0 = time.perf_counter()
    cache = None
    if args.model:
        if (args.runtime is not None or args.threads is not None or args.refresh or args.shots is not None
                or args.recheck):
            raise InputError("--runtime, --threads, --refresh, --recheck and --shots choose the cached predictor; they "
                             "do not apply with --model")
        from .. import registry

        model = registry.load(args.model)
        source = args.model
    else:
        from .. import encode as enc, registry
        from .._cache import DEFAULT_RUNTIME, _device_model

        # Check the strings before a first use spends a minute profiling and measuring.
        space = (args.space or (enc.notation(archs[0]) if archs else None)
                 or registry.resolve().info.get("search_space", "nb201"))
        try:
            enc.encode(space, archs)
        except InputError as e:
            raise InputError(f"{e} (predicting {space} architectures: one search space per call)") from None
        runtime = args.runtime or DEFAULT_RUNTIME
        threads = 1 if args.threads is None else args.threads
        progress = _progress_printer()
        if args.budget_s is not None and args.shots != "auto":
            raise InputError("--budget-s goes with --shots auto")
        if args.shots == "auto" and args.budget_s is None:
            raise InputError("--shots auto needs --budget-s S, the seconds of measuring it may spend")
        rc = None
        if args.recheck and not args.refresh:
            from .._cache import RECHECK_MIN, recheck

            rc = recheck(runtime, threads, base=space, progress=progress)
            if rc is not None:
                print(f"maple-edge-lite: {rc['archs']} reference architectures run {100 * (rc['ratio'] - 1):+.1f}% "
                      f"(median) against the predictor's measurements ({rc['measure_s']:.1f} s): "
                      + ("predictor rescaled to the speed now" if rc["applied"] else
                         f"within {RECHECK_MIN:.0%}, predictor left as it was"), file=sys.stderr)
        model, entry, built = _device_model(runtime, threads, base=space, refresh=args.refresh, progress=progress,
                                            shots=args.shots, budget_s=args.budget_s)
        if built:
            print(f"maple-edge-lite: cached this device's predictor in {entry} "
                  f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        source = str(entry / "device.melw")
        cache = {"dir": str(entry), "built": built, "runtime": runtime, "threads": threads,
                 "shots": _cache_shots(entry), "recheck": rc}
    meta = model.metadata
    if meta.get("model_kind") == "base":
        raise InputError(f"{source} is a base predictor (device-agnostic, unit latency scale): adapt it to the "
                         "device first (`maple-edge-lite adapt`), or omit --model")
    level = model.interval_level
    try:
        if not archs:  # --recheck alone
            ms = lo = hi = []
        elif level is not None:
            ms, lo, hi = model.predict_archs_interval(archs)
        else:  # a device model from before 0.2 (or a hand-made one): no interval
            ms = model.predict_archs(archs)
            lo = hi = [None] * len(archs)
    except InputError as e:
        raise InputError(f"{e} (the model predicts {meta.get('search_space')} architectures)") from None
    r6 = lambda v: None if v is None else round(float(v), 6)  # noqa: E731
    if args.json:
        print(json.dumps({"model": source, "search_space": meta.get("search_space"), "cache": cache,
                          "interval_level": level,
                          "predictions": [{"arch": a, "latency_ms": r6(v), "lo_ms": r6(l), "hi_ms": r6(h)}
                                          for a, v, l, h in zip(archs, ms, lo, hi)]}, indent=2))
    else:
        # ms, then the interval, a tab, the architecture: `cut -f2` gives the strings back.
        out = "".join(f"{float(v):.4f} ms" + ("" if l is None else f" [{float(l):.4f}, {float(h):.4f}]") + f"\t{a}\n"
                      for a, v, l, h in zip(archs, ms, lo, hi))
        sys.stdout.write(out)
    return 0


def _predict_onnx(args) -> int:
    """``predict --onnx FILE ...``: layer tables, then this device's layer cost model (cached)."""
    import numpy as np

    from .._cache import LAYER_FILES

    t0 = time.perf_counter()
    shapes = dict(args.input_shape) or None
    tables = [_layer_table(f, shapes) for f in args.onnx]  # every file read before a first use spends a minute
    unpriced = [_unpriced(f, t) for f, t in zip(args.onnx, tables)]
    rc = _layer_recheck(args) if args.recheck and not args.refresh else None
    core, entry, built, runtime, threads = _layer_core(args, t0, refresh=args.refresh)
    ms, lo, hi = (np.array(v) for v in zip(*(core.predict_layers(t.array()) for t in tables)))
    if args.json:
        print(json.dumps({"model": str(entry / LAYER_FILES["model"]), "core_model": str(entry / LAYER_FILES["core"]),
                          "runtime": runtime, "threads": threads,
                          "built": built, "recheck": rc, "interval_level": core.interval_level,
                          "predictions": [{"path": f, "latency_ms": round(float(v), 6), "lo_ms": round(float(a), 6),
                                           "hi_ms": round(float(b), 6), "macs": int(t.totals()["macs"]),
                                           **({"unpriced_layers": u} if u else {})}
                                          for f, t, v, a, b, u in zip(args.onnx, tables, ms, lo, hi, unpriced)]},
                         indent=2))
    else:
        sys.stdout.write("".join(f"{float(v):.4f} ms [{float(a):.4f}, {float(b):.4f}]\t{f}\n"
                                 for f, v, a, b in zip(args.onnx, ms, lo, hi)))
    return 0


def _layer_recheck(args):
    """``predict --onnx --recheck``: time the cached layer cost model's calibration networks
    again and rescale it if the device's speed moved (``_cache.layer_recheck``); says so on
    stderr. None (nothing said) when there is no cached model yet: the build measures now."""
    from .._cache import DEFAULT_RUNTIME, RECHECK_MIN, layer_recheck

    rc = layer_recheck(args.runtime or DEFAULT_RUNTIME, 1 if args.threads is None else args.threads,
                       runtime_options=_runtime_options(args), progress=_progress_printer())
    if rc is not None:
        print(f"maple-edge-lite: {rc['networks']} calibration networks run {100 * (rc['ratio'] - 1):+.1f}% (median) "
              f"against the layer cost model's measurements ({rc['measure_s']:.1f} s): "
              + ("model rescaled to the speed now" if rc["applied"] else
                 f"within {RECHECK_MIN:.0%}, model left as it was"), file=sys.stderr)
    return rc


def _layer_core(args, t0: float, refresh: bool = False):
    """``(core Model, entry, built, runtime, threads)``: this device's layer cost model for
    ``args.runtime`` / ``--threads`` / ``--precision`` from the cache (built now on first use, said
    on stderr with the seconds since ``t0``), loaded in the C core from the entry's ``.melw``:
    the numbers a scheduler on this board gets (``mel_model_predict_layers``), not a second
    implementation's."""
    from .._cache import DEFAULT_RUNTIME, LAYER_FILES, layer_model
    from .._model import Model

    runtime = args.runtime or DEFAULT_RUNTIME
    threads = 1 if args.threads is None else args.threads
    _, entry, built = layer_model(runtime, threads, refresh=refresh, progress=_progress_printer(),
                                  runtime_options=_runtime_options(args))
    if built:
        print(f"maple-edge-lite: cached this device's layer cost model in {entry} ({time.perf_counter() - t0:.1f} s)",
              file=sys.stderr)
    return Model.load(entry / LAYER_FILES["core"]), entry, built, runtime, threads


#: Ops of quantized (int8) networks: ONNX Runtime's quantizer writes them (QOperator, QDQ and
#: dynamic formats). The layer cost model is fitted on float32 layers, so it cannot price them.
QUANTIZED_OPS = frozenset(("QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "QGemm", "QLinearAdd",
                           "QLinearMul", "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat",
                           "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", "QuantizeLinear",
                           "DequantizeLinear", "DynamicQuantizeLinear"))


def _unpriced(path, table) -> dict:
    """{op type: rows} of the layers of ``table`` the layer cost model cannot price (kind
    ``other``), with a warning on stderr (from the table's rows, so a cached table warns too);
    ``InputError`` for a quantized network, whose prediction would leave its convolutions out."""
    from collections import Counter

    from .._errors import InputError

    other = [r for r in table if r.kind == "other"]
    if not other:
        return {}
    ops = Counter("+".join(r.op_types) or "?" for r in other)
    listed = ", ".join(f"{k} x{v}" for k, v in ops.most_common(4)) + (", ..." if len(ops) > 4 else "")
    if any(op in QUANTIZED_OPS for r in other for op in r.op_types):
        raise InputError(f"{path} is a quantized (int8) network ({listed}): the layer cost model is fitted on float32 "
                         "layers and cannot price these; predict its float32 export, or time this one with "
                         "`maple-edge-lite measure --onnx`")
    print(f"maple-edge-lite: warning: {path}: {sum(ops.values())} of {len(table)} layers are ops the layer cost model "
          f"cannot price ({listed}): the prediction leaves them out", file=sys.stderr)
    return dict(ops)


def _layer_table(path, input_shapes=None):
    """The layer table of ``path``: a ``.json`` layer table file (``maple-edge-lite layers -o``,
    made on a host: no onnx needed here), else an ONNX file, whose table is kept in the cache
    by the file's sha256 and this package's version, so that predicting the same file again
    neither imports onnx nor parses the model. A file seen before with the same inode, size and
    modification time (nanoseconds) is not even read again: its sha256 is remembered under
    those (as git's index does; ResNet-50's 100 MB took 0.37 s to hash and look up here)."""
    import hashlib
    import re

    from .. import __version__
    from .._cache import cache_root
    from .._errors import MapleEdgeError
    from ..device.layers import LayerTable, from_onnx
    from ..format import read_bytes, write_atomic

    if str(path).lower().endswith(".json"):
        if input_shapes:
            from .._errors import InputError

            raise InputError(f"{path} is a layer table, whose shapes were fixed when it was made: --input-shape "
                             "goes with ONNX files")
        return LayerTable.read(path)
    # a table made with given input shapes is another table: its own name in the cache
    tag = "" if not input_shapes else "-" + hashlib.sha256(
        json.dumps(sorted((k, list(v)) for k, v in input_shapes.items())).encode()).hexdigest()[:16]
    tables = cache_root() / "tables"
    seen = None
    try:
        st = os.stat(path)
        seen = tables / "seen" / (hashlib.sha256(repr((os.path.realpath(path), st.st_dev, st.st_ino, st.st_size,
                                                        st.st_mtime_ns)).encode()).hexdigest() + ".sha256")
        digest = seen.read_text().strip()
        if re.fullmatch(r"[0-9a-f]{64}", digest):
            return LayerTable.read(tables / f"{digest}-{__version__}{tag}.layers.json")
    except (OSError, MapleEdgeError):
        pass  # not seen (or the path is bad: read_bytes says how)
    data = read_bytes(path, "ONNX model")
    digest = hashlib.sha256(data).hexdigest()
    cached = tables / f"{digest}-{__version__}{tag}.layers.json"
    try:
        table = LayerTable.read(cached)
    except MapleEdgeError:
        import warnings

        from ..device.layers import LayerWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LayerWarning)
            table = from_onnx(data, input_shapes=input_shapes, external_data_dir=os.path.dirname(os.path.abspath(path)),
                              name=path)
        for w in caught:  # the ops the table does not know are reported from its rows (_unpriced)
            if not issubclass(w.category, LayerWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            elif "is not known to the layer table" not in str(w.message):
                print(f"maple-edge-lite: warning: {w.message}", file=sys.stderr)  # it names the path
        try:
            tables.mkdir(parents=True, exist_ok=True)
            write_atomic(cached, (json.dumps(table.to_dict()) + "\n").encode())
        except (OSError, MapleEdgeError):  # the table cache is an optimisation only
            return table
    if seen is not None:
        try:
            seen.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(seen, (digest + "\n").encode())
        except (OSError, MapleEdgeError):
            pass
    return table

"""Command line: ``maple-edge-lite`` or ``python -m maple_edge_lite``.

Every failure prints one line a person can act on and exits non-zero."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def cflags() -> str:
    """Compiler flags for a C program using the installed header."""
    return f"-I{_package_dir() / 'include'}"


def libs() -> str:
    """Linker flags for the installed shared library, with an rpath so the program finds it."""
    lib = _package_dir() / "lib"
    return f"-L{lib} -Wl,-rpath,{lib} -lmaple_edge_lite"


def _selfcheck(args) -> int:
    """Pack a seeded random 64->256->256->1 model, load it through the C core, and check the
    core against the numpy reference bit for bit. The main job until a default predictor ships."""
    import tempfile

    import numpy as np

    import maple_edge_lite as mel

    rng = np.random.default_rng(args.seed)
    dims = [64, 256, 256, 1]
    layers = [
        (rng.standard_normal((o, i)) * np.sqrt(2.0 / i), rng.standard_normal(o) * 0.1)
        for i, o in zip(dims[:-1], dims[1:])
    ]
    names = [f"f{i}" for i in range(dims[0])]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.out) if args.out else Path(tmp) / "selfcheck.melw"
        q = mel.pack(layers, path, feature_names=names, output_shift=1.0,
                     metadata={"provenance": {"kind": "selfcheck", "seed": args.seed}})
        size = path.stat().st_size
        model = mel.Model.load(path)
        x = rng.standard_normal((1000, dims[0])).astype(np.float32)
        got = model.predict(x)
        want = q.predict(x)
        exact = bool(np.array_equal(got.view(np.uint32), want.view(np.uint32)))
        one = np.ascontiguousarray(x[:1])
        n = 20000
        t0 = time.perf_counter()
        for _ in range(n):
            model.predict(one)
        us = (time.perf_counter() - t0) / n * 1e6
    report = {
        "version": mel.__version__,
        "kernel": mel._core.kernel_name(),
        "model": "->".join(map(str, dims)),
        "file_bytes": size,
        "rows_checked": int(len(x)),
        "bit_exact_vs_numpy": exact,
        "predicted_ms_row0": float(got[0]),
        "single_predict_us_python": round(us, 3),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"maple_edge_lite {report['version']} self-check (kernel: {report['kernel']})")
        print(f"  packed and loaded a {report['model']} int8 model, {size} bytes")
        print(f"  C core vs numpy reference on {len(x)} rows: {'bit-exact' if exact else 'MISMATCH'}")
        print(f"  predicted latency, row 0: {report['predicted_ms_row0']:.4f} ms")
        print(f"  single prediction from Python: {us:.2f} us")
    return 0 if exact else 1


def _train(args) -> int:
    """Fit the few-shot predictor's prior on the given devices and write it as a base .melw."""
    import datetime
    import subprocess

    import numpy as np

    from . import encode as enc
    from .data import load_table
    from .fewshot import BayesLinear, feature_absmax, pack_base
    from .registry import file_sha256

    split = lambda v: [x.strip() for x in v.split(",") if x.strip()] if v else []  # noqa: E731
    t0 = time.perf_counter()
    devices = split(args.devices) or None
    table = load_table(args.data, args.space, devices=devices)
    if args.exclude:
        table = table.select([d for d in table.devices if d not in set(split(args.exclude))])
    X = enc.encode(args.space, table.archs)
    names = enc.feature_names(args.space)
    if args.method == "mlp":
        from .mlp import MLP

        method = MLP(seed=args.seed).fit(X, np.log(table.latency_ms), table.devices, names)
        how = (f"mlp (seed {args.seed}; {method.epochs_run} epochs, early stopping on "
               f"{', '.join(method.val_devices) or 'the training devices'})")
    else:
        method = BayesLinear().fit(X, np.log(table.latency_ms), table.devices, names)
        how = "bayes_linear (deterministic: no seed)"
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None

    from . import __version__

    provenance = {
        "tables": [{"path": s, "sha256": file_sha256(s)} for s in table.sources],
        "devices": table.devices,
        "n_archs": len(table.archs),
        "method": how,
        "trained_by": f"maple_edge_lite {__version__}",
        "commit": commit,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if args.method == "mlp":
        from .mlp import pack_base as pack_mlp

        pack_mlp(method, args.output, archs=table.archs, search_space=args.space, provenance=provenance)
    else:
        pack_base(method, args.output, feature_names=names, absmax=feature_absmax(X), search_space=args.space,
                  provenance=provenance)
    secs = time.perf_counter() - t0
    print(f"trained the {args.space} {args.method} base model on {len(table.devices)} devices x {len(table.archs)} archs "
          f"in {secs:.1f} s -> {args.output} ({Path(args.output).stat().st_size} bytes)")
    return 0


def _inspect(args) -> int:
    """What a weights file holds: shape, feature schema, search space, quantization, provenance."""
    import maple_edge_lite as mel

    path = Path(args.model)
    m = mel.Model.load(path)
    meta = m.metadata
    names = list(m.feature_names)
    report = {
        "path": str(path),
        "file_bytes": path.stat().st_size,
        "layers": [m.input_dim, *m.layer_dims],
        "input_dim": m.input_dim,
        "feature_names": names,
        "search_space": meta.get("search_space"),
        "quantization": meta.get("quantization"),
        "packed_by": meta.get("packed_by"),
        "provenance": meta.get("provenance"),
        "metadata": meta,
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
    print(f"{path}: {report['file_bytes']} bytes, {' -> '.join(map(str, report['layers']))} int8 MLP")
    print(f"  features:     {shown}")
    print(f"  search space: {report['search_space'] or 'none (feature vectors only)'}")
    print(f"  quantization: {json.dumps(report['quantization'])}")
    print(f"  packed by:    {report['packed_by']}")
    prov = json.dumps(report["provenance"], ensure_ascii=False)
    print(f"  provenance:   {prov if len(prov) <= 300 else prov[:297] + '...'}  (--json for all)")
    return 0


def _info(args) -> int:
    import maple_edge_lite as mel

    info = {
        "version": mel.__version__,
        "abi_version": mel._core.abi_version(),
        "format_version": mel._core.FORMAT_VERSION,
        "quant_scheme_version": mel._core.QUANT_SCHEME_VERSION,
        "kernel": mel._core.kernel_name(),
        "package_dir": str(_package_dir()),
    }
    print(json.dumps(info, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in info.items()))
    return 0


# Exit codes of `maple-edge-lite counters`, for scripts.
EXIT_ALL_COUNTERS = 0      # every requested event counts here
EXIT_SOME_COUNTERS = 3     # some hardware events count, others are unsupported or denied
EXIT_NO_HW_COUNTERS = 4    # no hardware event counts (software events only: VMs, containers)
EXIT_COUNTERS_DENIED = 5   # hardware events exist but permission is denied: see the printed fix


def _counters(args) -> int:
    from . import counters as C

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maple-edge-lite", description="Latency predictor for edge devices.")
    p.add_argument("--cflags", action="store_true", help="print compiler flags for the C API header")
    p.add_argument("--libs", action="store_true", help="print linker flags for libmaple_edge_lite")
    p.add_argument("--version", action="store_true", help="print the package version")
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("selfcheck", help="pack, load and run a model; check the core against numpy")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="keep the packed model at this path")
    s.add_argument("--json", action="store_true", help="print a JSON report")
    s.set_defaults(func=_selfcheck)
    c = sub.add_parser(
        "counters",
        help="which perf_event counters this machine can read, and why the others cannot be",
        description="Probe every known event (or --events). Exit status: 0 all count; 3 some hardware "
        "events count; 4 no hardware event counts (software only); 5 hardware events denied; 1 error.",
    )
    c.add_argument("--events", help="comma-separated event names (default: all known events)")
    c.add_argument("--json", action="store_true", help="print a JSON report")
    c.set_defaults(func=_counters)
    tr = sub.add_parser("train", help="train the few-shot predictor on latency tables -> base .melw")
    tr.add_argument("--data", action="append", required=True, metavar="DIR",
                    help="folder of latency tables in the shared format (repeatable)")
    tr.add_argument("--space", default="nb201", choices=["nb201", "fbnet"])
    tr.add_argument("--devices", metavar="A,B,...", help="train on these devices (default: all in the tables)")
    tr.add_argument("--exclude", metavar="A,B,...", help="leave these devices out")
    tr.add_argument("--method", choices=("bayes_linear", "mlp"), default="bayes_linear",
                    help="bayes_linear (default: the more accurate here, see the README) or mlp (numpy MLP on "
                    "log-latency with a reference-latency descriptor, Adam, early stopping, quantization-aware)")
    tr.add_argument("--seed", type=int, default=0, help="training seed (mlp)")
    tr.add_argument("-o", "--output", required=True, help="where to write the base model (.melw)")
    tr.set_defaults(func=_train)
    ins = sub.add_parser("inspect", help="what a .melw weights file holds: shape, features, provenance")
    ins.add_argument("model", help="path of a .melw file")
    ins.add_argument("--json", action="store_true", help="print a JSON report")
    ins.set_defaults(func=_inspect)
    i = sub.add_parser("info", help="versions and the int8 kernel in use")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)
    from ._cli_evaluate import add_parser as _add_eval; _add_eval(sub)  # noqa: E702
    from ._cli_device import add_parser as _add_dev; _add_dev(sub)  # noqa: E702
    from ._cli_predict import add_parser as _add_pred; _add_pred(sub)  # noqa: E702
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cflags or args.libs or args.version:
        if args.version:
            import maple_edge_lite as mel

            print(mel.__version__)
        flags = ([cflags()] if args.cflags else []) + ([libs()] if args.libs else [])
        if flags:
            print(" ".join(flags))
        return 0
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from ._errors import MapleEdgeError

    try:
        return args.func(args)
    except MapleEdgeError as e:
        print(f"maple-edge-lite: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("maple-edge-lite: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"maple-edge-lite: error: {e}", file=sys.stderr)
        return 1

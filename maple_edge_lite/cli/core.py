"""``maple-edge-lite selfcheck``, ``train``, ``inspect``, ``info``: the core and host-side commands."""

from __future__ import annotations

import json
import time
from pathlib import Path


def _package_dir() -> Path:
    """The installed package's folder (it holds include/ and lib/ for C programs)."""
    return Path(__file__).resolve().parent.parent


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
    from ..learn.train import train_base

    split = lambda v: [x.strip() for x in v.split(",") if x.strip()] if v else []  # noqa: E731
    got = train_base(args.data, args.output, space=args.space, method=args.method, devices=split(args.devices),
                     exclude=split(args.exclude), seed=args.seed)
    print(f"trained the {args.space} {args.method} base model on {got['devices']} devices x {got['archs']} archs "
          f"in {got['seconds']:.1f} s -> {args.output} ({got['bytes']} bytes)")
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


def add_parser(sub) -> None:
    s = sub.add_parser("selfcheck", help="pack, load and run a model; check the core against numpy")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="keep the packed model at this path")
    s.add_argument("--json", action="store_true", help="print a JSON report")
    s.set_defaults(func=_selfcheck)
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

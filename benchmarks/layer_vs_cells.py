"""The layer cost model on NAS-Bench-201 cells and FBNet networks, beside the cell predictors.

    python benchmarks/layer_vs_cells.py V.json [V2.json ...] [--runtime onnxruntime] [--threads 1]

Each ``V.json`` is a ``maple-edge-lite validate --json`` report (``--space nb201`` or ``fbnet``):
the architectures it measured here, their latencies and what this device's cell predictor (the
shipped base adapted to ten reference measurements, with the descriptor's operator-sum prior for
NAS-Bench-201) predicted. This script builds each network (``builders.nb201_onnx`` at 32x32,
``builders.fbnet_onnx`` at 224x224), reads its layer table and predicts it with this device's
layer cost model (``predict --onnx``'s, from the cache; built if missing: the layer suite and five
zoo networks are measured), which saw no cell and no FBNet network. Prints ±10% accuracy, MAPE,
Spearman and the interval's coverage of both, per report; ``--json`` for the numbers.

``--entry DIR`` (a cache entry of the fbnet predictor: its descriptor and reference measurements)
also adapts the fbnet base again from those same ten references twice, with the prior's mean at the
training devices' mean and at the layer cost model (``learn.layer_prior``), and scores both on the
FBNet reports: the prior's effect with everything else equal."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+", help="validate --json reports")
    ap.add_argument("--runtime", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--entry", help="an fbnet predictor's cache entry: compare the two priors on its references")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from maple_edge_lite import _cache
    from maple_edge_lite._model import Model
    from maple_edge_lite.device import builders, layers
    from maple_edge_lite.learn.evaluate import metrics

    out = []
    for path in args.reports:
        rep = json.load(open(path))
        runtime = args.runtime or rep["runtime"]
        threads = args.threads or rep["threads"]
        _, entry, _ = _cache.layer_model(runtime, threads)
        core = Model.load(entry / _cache.LAYER_FILES["core"])
        space = rep.get("space", "nb201")
        build = builders.fbnet_onnx if space == "fbnet" else builders.nb201_onnx
        archs = [a["arch"] for a in rep["archs"]]
        y = np.array([a["measured_ms"] for a in rep["archs"]])
        cell = np.array([a["latency_ms"] for a in rep["archs"]])
        cell_lo = np.array([a["lo_ms"] for a in rep["archs"]])
        cell_hi = np.array([a["hi_ms"] for a in rep["archs"]])
        got = [core.predict_layers(layers.from_onnx(build(a)).array()) for a in archs]
        lay, lo, hi = (np.array(v, dtype=np.float64) for v in zip(*got))
        row = {"report": path, "space": space, "n": len(y), "runtime": runtime, "threads": threads}
        for name, p, a, b in (("cell_predictor", cell, cell_lo, cell_hi), ("layer_model", lay, lo, hi)):
            m = metrics(p, y)
            row[name] = {"acc10": m["acc10"], "mape": m["mape"], "spearman": m["spearman"],
                         "cover": float(np.mean((y >= a) & (y <= b))),
                         "median_signed_err": float(np.median(p / y - 1))}
        if args.entry and space == "fbnet":
            row.update(_priors(args.entry, core, archs, y, metrics))
        out.append(row)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for r in out:
            print(f"{r['report']}: {r['n']} {r['space']} networks, {r['runtime']} {r['threads']}t")
            for name in ("cell_predictor", "layer_model", "prior_training_mean", "prior_layer_model"):
                if name not in r:
                    continue
                v = r[name]
                print(f"  {name:15s} ±10% {v['acc10']:.3f}  MAPE {v['mape']:5.1f}%  rho {v['spearman']:.3f}  "
                      f"cover {v['cover']:.2f}  median error {100 * v['median_signed_err']:+.1f}%")
    return 0


def _priors(entry, core, archs, y, metrics):
    """The fbnet base adapted from ``entry``'s references with each prior mean, scored on ``archs``."""
    from pathlib import Path

    import maple_edge_lite as mel
    from maple_edge_lite import encode as enc
    from maple_edge_lite.device import measure as M, profile as P
    from maple_edge_lite.learn.adapt import adapt_base
    from maple_edge_lite.learn.layer_prior import fbnet_layer_costs

    entry = Path(entry)
    ref = M.read_csv(entry / "measurements.csv")
    desc = P.load_descriptor(entry / "descriptor.json")
    X = enc.encode("fbnet", archs)
    got = {}
    for name, kw in (("prior_training_mean", {}), ("prior_layer_model", {"layer_costs": fbnet_layer_costs(core)})):
        m = adapt_base(mel.load("fbnet"), [r["arch_str"] for r in ref], [r["latency_ms"] for r in ref],
                       descriptor=desc, **kw)
        p = m.predict_features(X)
        lo, hi = m.interval_features(X)
        mt = metrics(p, y)
        got[name] = {"acc10": mt["acc10"], "mape": mt["mape"], "spearman": mt["spearman"],
                     "cover": float(np.mean((y >= lo) & (y <= hi))), "median_signed_err": float(np.median(p / y - 1))}
    return got


if __name__ == "__main__":
    sys.exit(main())

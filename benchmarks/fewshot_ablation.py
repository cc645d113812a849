#!/usr/bin/env python3
"""Ablations behind maple_edge_lite.learn.bayes_linear.BayesLinear, on the shared NAS-Bench-201 tables.

    OPENBLAS_NUM_THREADS=1 python benchmarks/fewshot_ablation.py --data ../shared/data [--shots 10,100] [--mlp]

1. Per-device ceilings of a least-squares fit on 10,000 architectures (tested on the rest):
   edge one-hots in log-latency vs in latency space, with the live-edge one-hots added, in relative
   error, and in relative error with Student-t weights (the scale: the residuals' MAD).
2. Leave-one-group-out, 10 measurements (``--shots``: each of a comma-separated list), 5 seeds:
   the method with its reference-architecture choices (greedy among 1,000 random candidates /
   greedy over the whole pool / random), the prior's shrinkage and its target (tied across
   positions or isotropic), its measurement noise (Student-t with 8 degrees of freedom, or 2, 4,
   16, or Gaussian as before predictor 1.3.0's adaptation).
3. With --mlp (about 8 minutes): the numpy MLP on log-latency (maple_edge_lite.learn.mlp: reference-
   latency descriptor, Adam, early stopping on validation devices), scored in float, and in int8
   through the C++ core with and without its quantization-aware finishing epochs.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from maple_edge_lite import encode as enc
from maple_edge_lite.learn.data import load_table
from maple_edge_lite.learn.evaluate import leave_one_out
from maple_edge_lite.learn.bayes_linear import BayesLinear, student_t_weights
from maple_edge_lite.learn.mlp import MLP, MLPInt8


def ceilings(table, X, names):
    onehot = [i for i, n in enumerate(names) if n.startswith("edge")]
    live = onehot + [i for i, n in enumerate(names) if n.startswith("live_edge") or n == "cell_connected"]
    rng = np.random.default_rng(0)
    df = BayesLinear().noise_df  # the shipped adaptation's degrees of freedom
    rows = []
    for label, cols, space in [("edge one-hots, log latency", onehot, "log"),
                               ("edge one-hots, latency", onehot, "lin"),
                               ("edge + live-edge one-hots, latency", live, "lin"),
                               ("the same, relative error", live, "rel"),
                               (f"the same, relative, Student-t weights (df {df:g})", live, "t")]:
        A = np.column_stack([np.ones(len(X)), X[:, cols]])
        accs = []
        for j in range(len(table.devices)):
            y = table.latency_ms[:, j]
            idx = np.flatnonzero(np.isfinite(y))
            rng.shuffle(idx)
            tr, te = idx[:10000], idx[10000:]
            t = np.log(y[tr]) if space == "log" else y[tr]
            c, *_ = np.linalg.lstsq(A[tr], t, rcond=None)
            if space in ("rel", "t"):  # weighted by 1/y; "t": re-weighted as BayesLinear.adapt's EM does
                u = np.ones(len(tr))
                for _ in range(1 if space == "rel" else 10):
                    c, *_ = np.linalg.lstsq(A[tr] * (np.sqrt(u) / t)[:, None], np.sqrt(u), rcond=None)
                    r = A[tr] @ c / t - 1
                    sig = 1.4826 * np.median(np.abs(r - np.median(r)))
                    u = student_t_weights(r / sig, df)
            p = A[te] @ c
            p = np.exp(p) if space == "log" else np.maximum(p, 1e-6)
            accs.append(np.mean(np.abs(p / y[te] - 1) <= 0.1))
        rows.append((label, float(np.mean(accs))))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--shots", default="10", help="comma-separated measurement counts (default 10)")
    ap.add_argument("--mlp", action="store_true", help="also train the MLP-trunk variant (slow)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    table = load_table(args.data, "nb201")
    X = enc.encode("nb201", table.archs).astype(np.float64)
    names = enc.feature_names("nb201")
    print("Per-device ceilings (least squares on 10,000 archs, mean ±10% accuracy over 30 devices):")
    for label, acc in ceilings(table, X, names):
        print(f"  {label:<46} {acc:.3f}")
    methods = {
        "greedy among 1,000 random candidates (default)": BayesLinear,
        "greedy over the whole pool": lambda: BayesLinear(candidates=None),
        "random reference archs": lambda: BayesLinear(select="random"),
        "prior shrinkage 0.1 instead of 0.3": lambda: BayesLinear(shrink=0.1),
        "prior shrinkage 1.0 (a wider prior)": lambda: BayesLinear(shrink=1.0),
        "prior shrinkage 3.0": lambda: BayesLinear(shrink=3.0),
        "isotropic shrinkage target (shrink_tie 0, as 1.0.0)": lambda: BayesLinear(shrink_tie=0.0),
        "shrinkage target tied at 0.5": lambda: BayesLinear(shrink_tie=0.5),
        "shrinkage target tied at 0.8": lambda: BayesLinear(shrink_tie=0.8),
        "shrinkage target tied at 0.99": lambda: BayesLinear(shrink_tie=0.99),
        "Gaussian measurement noise (noise_df None)": lambda: BayesLinear(noise_df=None),
        "Student-t noise, 2 degrees of freedom": lambda: BayesLinear(noise_df=2),
        "Student-t noise, 4 degrees of freedom": lambda: BayesLinear(noise_df=4),
        "Student-t noise, 16 degrees of freedom": lambda: BayesLinear(noise_df=16),
    }
    if args.mlp:
        methods["mlp, float"] = MLP
        methods["mlp, int8 through the core (quantization-aware finishing)"] = MLPInt8
        methods["mlp, int8 through the core, no quantization-aware epochs"] = lambda: MLPInt8(qat_epochs=0)
    facs = {label: f for label, f in methods.items()}
    for shots in (int(k) for k in args.shots.split(",")):
        r = leave_one_out(table, None, facs, shots=shots, seeds=args.seeds)
        print(f"\nLeave-one-group-out, {shots} measurements (group-mean ±10% accuracy / Spearman / 90% "
              "interval coverage; paired difference in ±10% accuracy to the first, ± its standard error over groups):")
        for label, v in r["methods"].items():
            d = r["paired"]["vs"].get(label, {}).get("acc10")
            diff = f"   {d['mean']:+.3f} ± {d['se']:.3f}" if d else ""
            cover = f" / {v['mean']['cover']:.3f}" if "cover" in v["mean"] else ""
            print(f"  {label:<60} {v['mean']['acc10']:.3f} / {v['mean']['spearman']:.3f}{cover}{diff}")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

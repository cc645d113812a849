"""The shipped predictor adapted to each pair of the committed pool (benchmarks/data/pool) from
the pair's own descriptor and k random measurements of that pair, scored on the pair's other
networks: ±10% accuracy and the 90% interval's coverage, per pair and on average.

    OPENBLAS_NUM_THREADS=1 python benchmarks/pool_shots.py [--k 10] [--draws 5]

(The numbers quoted for the operator-sum prior's terms in docs/predict.md: this script at the
commit before them, f8e7f80, and after.)"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

POOL = Path(__file__).resolve().parent / "data" / "pool"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=10, help="measurements per pair (default 10)")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--pool", default=str(POOL))
    ap.add_argument("--by-pools", action="store_true",
                    help="also print, per pair, the median signed error of the cells with 0/1/2/3 average pools")
    args = ap.parse_args(argv)

    import maple_edge_lite as mel
    from maple_edge_lite import encode as enc
    from maple_edge_lite.device import measure as M, profile as P
    from maple_edge_lite.learn.adapt import adapt_base

    pool = Path(args.pool)
    man = json.loads((pool / "manifest.json").read_text())
    base = mel.load()
    res = {}
    for dev, info in man["pairs"].items():
        rows = M.read_csv(pool / f"{dev}.csv")
        archs = [r["arch_str"] for r in rows]
        y = np.array([r["latency_ms"] for r in rows])
        X = enc.encode("nb201", archs)
        desc = P.load_descriptor(pool / info["descriptor"])
        out = []
        err = np.full((args.draws, len(archs)), np.nan)
        for seed in range(args.draws):
            idx = np.random.default_rng(seed).choice(len(archs), args.k, replace=False)
            rest = np.setdiff1d(np.arange(len(archs)), idx)
            m = adapt_base(base, [archs[i] for i in idx], y[idx], descriptor=desc)
            ms = m.predict_features(X[rest])
            lo, hi = m.interval_features(X[rest])
            out.append((np.mean(np.abs(ms / y[rest] - 1) <= 0.10), np.mean((y[rest] >= lo) & (y[rest] <= hi))))
            err[seed, rest] = ms / y[rest] - 1
        res[dev] = np.mean(out, axis=0)
        print(f"{dev:24s} ±10% {res[dev][0]:.3f}  coverage {res[dev][1]:.3f}")
        if args.by_pools:
            names = enc.feature_names("nb201")
            pools = X[:, [names.index(f"exec_edge{e}:avg_pool_3x3") for e in range(6)]].sum(1)
            e = np.nanmean(err, 0)
            print(" " * 25 + "median error by average pools: " + "  ".join(
                f"{k}: {100 * np.median(e[pools == k]):+.1f}% ({int((pools == k).sum())})"
                for k in range(4) if (pools == k).any()))
    allm = np.mean(list(res.values()), axis=0)
    one = np.mean([v for d, v in res.items() if d.endswith("-1t")], axis=0)
    print(f"{'mean, 13 pairs':24s} ±10% {allm[0]:.3f}  coverage {allm[1]:.3f}")
    print(f"{'mean, 1-thread pairs':24s} ±10% {one[0]:.3f}  coverage {one[1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

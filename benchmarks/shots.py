"""More measurements, scored on a committed test table of this machine (benchmarks/data/device/).

    python benchmarks/shots.py benchmarks/data/device/vm-onnxruntime-1t.csv [--runtime onnxruntime] [--entry DIR]

The device model of the main job (this machine's cache entry for the runtime at one thread: its
descriptor and its ten reference measurements; built if missing, or ``--entry`` a cache entry
folder) is scored on the table (k = 10), then adapted again with k - 10 random cells of the
table as further shots and scored on the rest (k = 20, 50, 100; five draws), as ``predict
--shots k`` would, with the table's cells standing in for what it would measure. Beside it, the
least-squares ceiling: the same linear design fitted in relative error on 9/10 of the table,
scored on the other tenth (10-fold). Prints ±10% accuracy, the cells under 0.3 ms, Spearman and
the 90% interval's coverage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table")
    ap.add_argument("--runtime", help="default: from the table's file name (vm-<runtime>-1t.csv)")
    ap.add_argument("--entry", help="a cache entry folder (default: this machine's, built if missing)")
    ap.add_argument("--draws", type=int, default=5)
    args = ap.parse_args(argv)

    import maple_edge_lite as mel
    from maple_edge_lite import _cache, encode as enc
    from maple_edge_lite.device import measure as M, profile as P
    from maple_edge_lite.learn.adapt import adapt_base

    rows = M.read_csv(args.table)
    archs = [r["arch_str"] for r in rows]
    y = np.array([r["latency_ms"] for r in rows])
    X = enc.encode("nb201", archs)
    if args.entry:
        entry = Path(args.entry)
    else:
        runtime = args.runtime or Path(args.table).name.split("-")[1]
        _, entry, _ = _cache._device_model(runtime, 1)
    desc = P.load_descriptor(entry / "descriptor.json")
    ref = M.read_csv(entry / "measurements.csv")
    ra, ry = [r["arch_str"] for r in ref], np.array([r["latency_ms"] for r in ref])
    base = mel.load()

    def scores(m, idx):
        ms = m.predict_features(X[idx])
        lo, hi = m.interval_features(X[idx])
        t, rel = y[idx], ms / y[idx] - 1
        small = t < 0.3
        rk = lambda v: np.argsort(np.argsort(v))  # noqa: E731
        return {"acc10": np.mean(np.abs(rel) <= 0.10),
                "small": np.mean(np.abs(rel[small]) <= 0.10) if small.sum() >= 5 else np.nan,
                "spearman": np.corrcoef(rk(ms), rk(t))[0, 1],
                "cover": np.mean((t >= lo) & (t <= hi))}

    m = adapt_base(base, ra, ry, descriptor=desc)
    everything = np.arange(len(y))
    print(f"{args.table}: {len(y)} cells ({int(np.sum(y < 0.3))} under 0.3 ms); main job entry {entry}")
    print(f"{'k':>4}  {'±10%':>6} {'<0.3ms':>7} {'rho':>6} {'cover':>6}")
    r = scores(m, everything)
    print(f"{10:4d}  {r['acc10']:6.3f} {r['small']:7.3f} {r['spearman']:6.3f} {r['cover']:6.3f}")
    for k in (20, 50, 100):
        rs = []
        for d in range(args.draws):
            ch = np.random.default_rng(d).choice(len(y), k - 10, replace=False)
            rest = np.setdiff1d(everything, ch)
            mm = adapt_base(base, ra + [archs[i] for i in ch], np.concatenate([ry, y[ch]]), descriptor=desc)
            rs.append(scores(mm, rest))
        r = {key: float(np.nanmean([x[key] for x in rs])) for key in rs[0]}
        print(f"{k:4d}  {r['acc10']:6.3f} {r['small']:7.3f} {r['spearman']:6.3f} {r['cover']:6.3f}")
    A = np.column_stack([np.ones(len(y)), X[:, m.cols]])
    perm = np.random.default_rng(0).permutation(len(y))
    pc = np.zeros(len(y))
    for f in np.array_split(perm, 10):
        tr = np.setdiff1d(perm, f)
        Aw = A[tr] / y[tr, None]
        c = np.linalg.solve(Aw.T @ Aw + 1e-3 * np.eye(A.shape[1]), Aw.T @ np.ones(len(tr)))
        pc[f] = A[f] @ c
    print(f"ceiling (least squares in relative error, 10-fold over the table): ±10% "
          f"{np.mean(np.abs(pc / y - 1) <= 0.10):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Ablations behind maple_edge_lite.fewshot.BayesLinear, on the shared NAS-Bench-201 tables.

    OPENBLAS_NUM_THREADS=1 python benchmarks/fewshot_ablation.py --data ../shared/data [--mlp]

1. Per-device ceilings of a least-squares fit on 10,000 architectures (tested on the rest):
   edge one-hots in log-latency vs in latency space, and with the live-edge one-hots added.
2. Leave-one-group-out, 10 measurements, 5 seeds: the method with its reference-architecture
   choices (greedy among 1,000 random candidates / greedy over the whole pool / random) and the
   prior's shrinkage.
3. With --mlp (about 3 minutes): an MLP trunk trained in numpy with Adam (one linear head per
   training device, relative squared error) whose features are added to the one-hots.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from maple_edge_lite import encode as enc
from maple_edge_lite.data import load_table
from maple_edge_lite.evaluate import _complete_cached, leave_one_out
from maple_edge_lite.fewshot import BayesLinear, structural_columns


def ceilings(table, X, names):
    onehot = [i for i, n in enumerate(names) if n.startswith("edge")]
    live = onehot + [i for i, n in enumerate(names) if n.startswith("live_edge") or n == "cell_connected"]
    rng = np.random.default_rng(0)
    rows = []
    for label, cols, space in [("edge one-hots, log latency", onehot, "log"),
                               ("edge one-hots, latency", onehot, "lin"),
                               ("edge + live-edge one-hots, latency", live, "lin")]:
        A = np.column_stack([np.ones(len(X)), X[:, cols]])
        accs = []
        for j in range(len(table.devices)):
            y = table.latency_ms[:, j]
            idx = np.flatnonzero(np.isfinite(y))
            rng.shuffle(idx)
            tr, te = idx[:10000], idx[10000:]
            t = np.log(y[tr]) if space == "log" else y[tr]
            c, *_ = np.linalg.lstsq(A[tr], t, rcond=None)
            p = A[te] @ c
            p = np.exp(p) if space == "log" else np.maximum(p, 1e-6)
            accs.append(np.mean(np.abs(p / y[te] - 1) <= 0.1))
        rows.append((label, float(np.mean(accs))))
    return rows


class MLPBasis(BayesLinear):
    """BayesLinear over [one-hots, MLP trunk features]; the trunk (d -> hidden -> out, ReLU) is
    trained with Adam on all training devices at once, one linear head per device."""

    def __init__(self, hidden=64, out=16, epochs=1000, lr=3e-3, seed=0, **kw):
        super().__init__(**kw)
        self.name = f"mlp_basis_{epochs}"
        self.h, self.o, self.epochs, self.lr, self.seed = hidden, out, epochs, lr, seed

    def fit(self, X, Y, devices, feature_names=()):
        B0 = np.asarray(X, np.float64)[:, structural_columns(X)]
        lat = np.exp(_complete_cached(Y))
        Z = lat / lat.mean(0)
        rng = np.random.default_rng(self.seed)
        n, d = B0.shape
        W1 = rng.standard_normal((d, self.h)) * np.sqrt(2 / d)
        b1 = np.zeros(self.h)
        W2 = rng.standard_normal((self.h, self.o)) * np.sqrt(2 / self.h)
        b2 = np.zeros(self.o)
        C0, *_ = np.linalg.lstsq(np.column_stack([np.ones(n), B0]), Z, rcond=None)
        H = np.vstack([C0, np.zeros((self.o, Z.shape[1]))])
        params = [W1, b1, W2, b2, H]
        m1 = [np.zeros_like(q) for q in params]
        m2 = [np.zeros_like(q) for q in params]
        for t in range(1, self.epochs + 1):
            idx = rng.choice(n, 512, replace=False)
            x, z = B0[idx], Z[idx]
            h1 = np.maximum(x @ W1 + b1, 0)
            phi = np.maximum(h1 @ W2 + b2, 0)
            Bb = np.column_stack([np.ones(len(idx)), x, phi])
            r = (Bb @ H - z) / z
            g = 2 * r / z / r.size
            gphi = (g @ H.T)[:, 1 + d:] * (phi > 0)
            gh1 = gphi @ W2.T * (h1 > 0)
            grads = [x.T @ gh1, gh1.sum(0), h1.T @ gphi, gphi.sum(0), Bb.T @ g]
            for q, gq, a, v in zip(params, grads, m1, m2):
                a *= 0.9
                a += 0.1 * gq
                v *= 0.999
                v += 0.001 * gq * gq
                q -= self.lr * (a / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        phi = np.maximum(np.maximum(B0 @ W1 + b1, 0) @ W2 + b2, 0)
        F = np.column_stack([B0, phi / (phi.max(0) + 1e-9)])
        A = np.column_stack([np.ones(n), F])
        C, *_ = np.linalg.lstsq(A, Z, rcond=None)
        mu = C.mean(1)
        S = np.cov(C)
        S = S + self.shrink * (np.trace(S) / len(mu) + 1e-12) * np.eye(len(mu))
        self.cols = np.arange(F.shape[1])
        self.A, self.m, self.L = A, A @ mu, A @ np.linalg.cholesky(S)
        return self


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--mlp", action="store_true", help="also train the MLP-trunk variant (slow)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    table = load_table(args.data, "nb201")
    X = enc.encode("nb201", table.archs).astype(np.float64)
    names = enc.feature_names("nb201")
    print("Per-device ceilings (least squares on 10,000 archs, mean ±10% accuracy over 30 devices):")
    for label, acc in ceilings(table, X, names):
        print(f"  {label:<40} {acc:.3f}")
    methods = {
        "greedy among 1,000 random candidates (default)": BayesLinear,
        "greedy over the whole pool": lambda: BayesLinear(candidates=None),
        "random reference archs": lambda: BayesLinear(select="random"),
        "prior shrinkage 0.1 instead of 0.3": lambda: BayesLinear(shrink=0.1),
    }
    if args.mlp:
        methods["+ MLP trunk features (Adam, 1,000 steps)"] = lambda: MLPBasis(epochs=1000)
        methods["+ MLP trunk features (Adam, 3,000 steps)"] = lambda: MLPBasis(epochs=3000)
    facs = {label: f for label, f in methods.items()}
    r = leave_one_out(table, None, facs, shots=10, seeds=args.seeds)
    print("\nLeave-one-group-out, 10 measurements (group-mean ±10% accuracy / Spearman):")
    for label, v in r["methods"].items():
        print(f"  {label:<48} {v['mean']['acc10']:.3f} / {v['mean']['spearman']:.3f}")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

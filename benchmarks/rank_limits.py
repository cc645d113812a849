#!/usr/bin/env python3
"""What keeps the few-shot predictor's rank correlation at ten measurements where it is, on the
shared NAS-Bench-201 tables (leave one group of devices out, as ``maple-edge-lite evaluate``).

    OPENBLAS_NUM_THREADS=1 python benchmarks/rank_limits.py --data ../shared/data [--seeds 5] [--quick]

1. Per group: Spearman of the shipped method at k = 10 against the additive model's own ceiling
   (least squares in relative error on every architecture of the device, scored in sample: no
   model on these features ranks better with any number of measurements).
2. How far each held-out device's coefficients (its least-squares fit, on the prior's scale) lie
   from the prior learned without its group, in units of the prior: ``|w|`` for ``c = mu + L w``,
   against the training devices' own.
3. What the additive model leaves, per device: the share of its residual variance that pairwise
   edge-operation interactions explain on held-out architectures (ridge on the 375 pair one-hots,
   half the architectures each way), and the training device whose residuals correlate most with
   it (structure a prior across devices could carry).
4. (not with --quick) The shipped method plus kriging of its residuals over the training devices'
   residual profiles (a Gaussian-process prior whose covariance is theirs), at k = 10: whether
   that shared structure reaches ten measurements.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from maple_edge_lite.learn._numerics import _complete_cached
from maple_edge_lite.learn.bayes_linear import BayesLinear, device_coefficients
from maple_edge_lite.learn.data import device_groups, load_table
from maple_edge_lite.learn.evaluate import _features, leave_one_out, spearman

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _relative_fit(A, y):
    """Least squares of y ~ A c in relative error: c, predictions."""
    c = np.linalg.lstsq(A / y[:, None], np.ones(len(y)), rcond=None)[0]
    return c, A @ c


def _pair_onehots(archs):
    E = np.array([[OPS.index(e.split("~")[0]) for node in a.strip("|").split("|+|") for e in node.strip("|").split("|")]
                  for a in archs])
    cols = [(E[:, i] * 5 + E[:, j])[:, None] == np.arange(25)[None, :] for i in range(6) for j in range(i + 1, 6)]
    P = np.concatenate(cols, 1).astype(np.float64)
    return P[:, P.std(0) > 0]


class KrigedResiduals(BayesLinear):
    """BayesLinear, then a Gaussian-process correction of its log residuals whose prior
    covariance is the training devices' residual profiles (those of their own least-squares fits)."""

    name = "bayes_linear+kriged_residuals"

    def fit(self, X, Y, devices, feature_names=(), **kw):
        super().fit(X, Y, devices, feature_names, **kw)
        lat = np.exp(_complete_cached(Y))
        z = lat / lat.mean(0)
        R = np.log(np.maximum(z, 1e-12) / np.maximum(self.A @ device_coefficients(self.A, Y), 1e-12))
        R -= R.mean(0)
        self.U = R / np.sqrt(max(R.shape[1] - 1, 1))
        return self

    def adapt(self, idx, y_log, descriptor=None):
        super().adapt(idx, y_log, descriptor)
        idx = np.asarray(idx)
        r = np.asarray(y_log) - super().predict(idx)
        Us = self.U[idx]
        K = Us @ Us.T + np.diag(self.noise ** 2 / np.maximum(self.weights, 1e-6))
        self.wr = Us.T @ np.linalg.solve(K, r)
        return self

    def predict(self, idx):
        return super().predict(idx) + self.U[np.asarray(idx)] @ self.wr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="skip part 4 (about 3 minutes)")
    args = ap.parse_args(argv)
    t0 = time.time()
    table = load_table(args.data, "nb201")
    X, names, _ = _features(table, None)
    Y = table.latency_ms
    groups = device_groups(table)
    col = {d: j for j, d in enumerate(table.devices)}

    # per device: the additive model on all its archs (relative error), its residuals and its rho
    A_all = np.column_stack([np.ones(len(X)), X])
    R, rho_ceiling = np.full(Y.shape, np.nan), {}
    for d, j in col.items():
        m = np.isfinite(Y[:, j])
        _, p = _relative_fit(A_all[m], Y[m, j])
        R[m, j] = np.log(Y[m, j] / np.maximum(p, 1e-9))
        rho_ceiling[d] = spearman(p, Y[m, j])

    shipped = {"bayes_linear": BayesLinear}
    if not args.quick:
        shipped["bayes_linear+kriged_residuals"] = KrigedResiduals
    rep = leave_one_out(table, method_factories=shipped, shots=10, seeds=args.seeds)
    got = {m: {tuple(g["devices"]): g for g in rep["methods"][m]["groups"]} for m in shipped}

    print("1. Spearman at k = 10 (leave one group out) against the additive model's in-sample ceiling")
    print(f"   {'group':52s} {'k=10':>7s} {'ceiling':>8s}")
    for g in groups:
        print(f"   {','.join(g)[:52]:52s} {got['bayes_linear'][tuple(g)]['spearman']:7.4f} "
              f"{np.mean([rho_ceiling[d] for d in g]):8.4f}")
    print(f"   mean over groups: {rep['methods']['bayes_linear']['mean']['spearman']:.4f} against "
          f"{np.mean([np.mean([rho_ceiling[d] for d in g]) for g in groups]):.4f}")

    print("\n2. Distance of each held-out device's coefficients from the prior without its group (|w|, c = mu + L w)")
    Ylog = np.log(Y)
    # completing a held-out device's missing cells from the others averages empty rows: harmless
    warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
    for g in groups:
        tr = [j for d, j in col.items() if d not in g]
        bl = BayesLinear().fit(X, Ylog[:, tr], [table.devices[j] for j in tr], names)

        def dist(C):
            out = []
            for k in range(C.shape[1]):
                s = np.median((bl.A @ C[:, k]) / np.maximum(bl.A @ bl.mu, 1e-12))
                out.append(float(np.linalg.norm(np.linalg.solve(bl.Lc, C[:, k] / s - bl.mu))))
            return out

        held = dist(device_coefficients(bl.A, Ylog[:, [col[d] for d in g]]))
        own = dist(device_coefficients(bl.A, Ylog[:, tr]))
        print(f"   {','.join(g)[:52]:52s} held out {np.median(held):6.1f}   training devices: median "
              f"{np.median(own):4.1f}, max {np.max(own):4.1f}")

    print("\n3. What the additive model leaves: share of its residual variance pairwise interactions explain "
          "(held-out half), and the most correlated other device's residuals")
    P = _pair_onehots(table.archs)
    perm = np.random.default_rng(0).permutation(len(P))
    a, b = perm[: len(P) // 2], perm[len(P) // 2:]
    full = np.all(np.isfinite(R), 1)
    C = np.corrcoef((R[full] - R[full].mean(0)).T)
    for d, j in col.items():
        r = R[:, j]
        ia, ib = a[np.isfinite(r[a])], b[np.isfinite(r[b])]
        mu = P[ia].mean(0)
        w = np.linalg.solve((P[ia] - mu).T @ (P[ia] - mu) + 10 * np.eye(P.shape[1]), (P[ia] - mu).T @ (r[ia] - r[ia].mean()))
        rb = r[ib] - r[ia].mean()
        explained = 1 - np.var(rb - (P[ib] - mu) @ w) / np.var(rb)
        o = max((i for i in range(len(C)) if i != j), key=lambda i: C[j, i])
        print(f"   {d[:44]:44s} residual sd {np.nanstd(r):.3f}  pairs explain {explained:5.2f}  "
              f"nearest residuals {table.devices[o][:30]} ({C[j, o]:.2f})")

    if not args.quick:
        k = rep["methods"]["bayes_linear+kriged_residuals"]["mean"]
        b0 = rep["methods"]["bayes_linear"]["mean"]
        print(f"\n4. With kriged residuals, k = 10: ±10% {k['acc10']:.3f} / Spearman {k['spearman']:.4f} "
              f"(the shipped method: {b0['acc10']:.3f} / {b0['spearman']:.4f})")
    print(f"\n({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

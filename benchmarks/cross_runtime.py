#!/usr/bin/env python3
"""MAPLE-Edge's cross-runtime test on real runtimes of one machine: leave one runtime out.

    OPENBLAS_NUM_THREADS=1 python -P benchmarks/cross_runtime.py [--pool benchmarks/data/pool]
        [--public ../shared/data] [--seeds 5] [--shots 10] [--holdout runtime|pair] [--only GLOB]
        [--descriptor-ridge auto|R] [--json]

The pool (tools/collect_pool.py) holds, for every (runtime, threads) pair, a descriptor and the
latencies of one seeded sample of NAS-Bench-201 networks. For each runtime R, every pair of R is
held out together (``--holdout runtime``, the default: the predictor has seen neither thread
setting of R, so it cannot learn R from its sibling) and BayesLinear is trained on the other pairs,
then adapted to each held-out pair from ``--shots`` measurements and scored on the rest of the
pool's archs. The reference archs are chosen once per (held-out pair, seed) by the no-descriptor
model's ``select`` (greedy among a random half of the pool, so that seeds differ) and reused by
every variant, so the variants differ in the descriptor alone.

Variants (descriptor features given to ``BayesLinear.fit``/``adapt``; logs of the values, then
standardised over the training devices by BayesLinear; features not counted on any pool device,
i.e. every hardware counter on a VM without a PMU, and constant ones are dropped):

- ``none``: no descriptor;
- ``lat``: operator latencies ``lat:*``;
- ``raw``: raw counts per inference ``raw:*`` (software events only here);
- ``rate``: counts per ms of operator latency ``rate:*`` (MAPLE-Edge's normalisation);
- ``lat+rate``: both. For these four the regression's strength is chosen by BayesLinear's
  cross-validation over the training pairs (one runtime left out at a time, ``groups``), or fixed
  with ``--descriptor-ridge R``;
- ``opsum-prior`` (shipped: what ``maple-edge-lite adapt --descriptor`` does with the shipped
  base): the prior's mean is the network latency the held-out pair's own operator latencies add
  up to (``learn.operator_sum.operator_sum_prior``), the covariance the one learned from the training pairs;
- ``opsum-blend``: prior mean ``(1 - alpha) * training mean + alpha * operator sum``, alpha fitted
  on the training pairs (each against the pairs of other runtimes);
- ``oplat-sum``: no learning across devices: the operator sum, affinely calibrated (least
  squares, ms) on the same measurements;
- ``ls-cv-ceiling``: not a few-shot method: 5-fold cross-validated least squares (relative
  error) of BayesLinear's linear model on the held-out pair's own archs (~400 training archs): the
  ceiling that measurement noise and the model's form leave (one value, no seeds).

``--only GLOB ...`` keeps the pairs whose device name matches (``'*-1t'``: the one-thread pairs).
With ``--public DIR`` the 30 public devices of ``load_table(DIR, "nb201")`` (rows aligned by arch
string) are added to training, each with every descriptor feature masked (NaN).
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from maple_edge_lite import encode as enc
from maple_edge_lite.device import measure as M
from maple_edge_lite.device import profile as P
from maple_edge_lite.learn.evaluate import metrics
from maple_edge_lite.learn.bayes_linear import BayesLinear, device_coefficients
from maple_edge_lite.learn.operator_sum import _use_operator_sum_prior, descriptor_operator_latencies, operator_sum_prior

VARIANTS = ("none", "lat", "raw", "rate", "lat+rate", "opsum-prior", "opsum-blend")
SHIPPED = "opsum-prior"  # what `maple-edge-lite adapt --descriptor` does with the shipped base
BASELINE = "oplat-sum"
CEILING = "ls-cv-ceiling"


def load_pool(pool: Path):
    """(archs, devices, runtimes, Y_ms [n, P], descriptors {device: dict}) over the archs every
    pair has (a partial collection gives a smaller common set)."""
    devices, rows_by, descs, runtimes = [], {}, {}, []
    manifest = json.loads((pool / "manifest.json").read_text()) if (pool / "manifest.json").exists() else {}
    for csv in sorted(pool.glob("*.csv")):
        dev = csv.stem
        dpath = pool / f"{dev}.descriptor.json"
        if not dpath.exists():
            continue
        rows = M.read_csv(csv)
        if not rows:
            continue
        devices.append(dev)
        rows_by[dev] = {r["arch_str"]: r["latency_ms"] for r in rows}
        descs[dev] = P.load_descriptor(dpath)
        info = manifest.get("pairs", {}).get(dev, {})
        runtimes.append(info.get("runtime") or dev.split("-")[1])
    common = set.intersection(*(set(r) for r in rows_by.values()))
    archs = [a for a in rows_by[devices[0]] if a in common]  # the sample's order
    Y = np.array([[rows_by[d][a] for d in devices] for a in archs])
    return archs, devices, runtimes, Y, descs


def descriptor_matrix(descs: Dict[str, dict], devices: Sequence[str], prefixes: Sequence[str]):
    """[P, q] log-feature matrix and names for the features starting with one of ``prefixes``,
    keeping those valued on at least two pool devices and not constant. Log of positive values;
    a feature that is zero somewhere (counts of rare events) gets log1p instead."""
    names = [f["name"] for f in descs[devices[0]]["features"] if f["name"].startswith(tuple(prefixes))]
    D = np.array([P.descriptor_vector(descs[d], names)[0] for d in devices])
    keep, out = [], []
    for j in range(D.shape[1]):
        v = D[:, j]
        ok = np.isfinite(v)
        if ok.sum() < 2 or np.nanmax(v) == np.nanmin(v):
            continue
        out.append(np.log(v) if (v[ok] > 0).all() else np.log1p(np.maximum(v, 0)))
        keep.append(names[j])
    return (np.column_stack(out) if out else np.zeros((len(devices), 0))), keep


def oplat_sum(desc: dict, X: np.ndarray, fnames: Sequence[str]) -> np.ndarray:
    """ms per arch: the descriptor's own op latencies summed over the executed edges
    (``learn.operator_sum.operator_sum_prior``, the rule the shipped predictor centres its prior on)."""
    lat, repeat = descriptor_operator_latencies(desc)
    got = operator_sum_prior(lat, fnames, repeat)
    if got is None:
        raise SystemExit("a pool descriptor lacks the operator latencies the operator sum needs")
    c0, w = got
    return c0 + X @ w


def cv_ceiling(A: np.ndarray, y_ms: np.ndarray, folds: int = 5) -> np.ndarray:
    """Out-of-fold predictions (ms) of a least-squares fit of the same linear model on 80% of the
    pair's own archs, in relative error (rows weighted by 1/latency, as the metrics judge): what the
    model family reaches with hundreds of measurements instead of 10, i.e. the ceiling set by
    measurement noise and model form (not a few-shot method)."""
    n = len(y_ms)
    order = np.random.default_rng(0).permutation(n)
    pred = np.empty(n)
    for k in range(folds):
        te = order[k::folds]
        tr = np.setdiff1d(order, te)
        c, *_ = np.linalg.lstsq(A[tr] / y_ms[tr, None], np.ones(len(tr)), rcond=None)
        pred[te] = A[te] @ c
    return np.maximum(pred, 1e-3 * y_ms.min())


def public_block(public: str, archs: Sequence[str]) -> (np.ndarray, List[str]):
    from maple_edge_lite.learn.data import load_table

    t = load_table(public, "nb201")
    row = {a: i for i, a in enumerate(t.archs)}
    Y = np.full((len(archs), len(t.devices)), np.nan)
    for i, a in enumerate(archs):
        if a in row:
            Y[i] = t.latency_ms[row[a]]
    return Y, list(t.devices)


def _opsum_model(none: BayesLinear, desc: dict, fnames: Sequence[str]) -> BayesLinear:
    """A copy of the no-descriptor model whose prior mean is the descriptor's operator sum."""
    m = copy.deepcopy(none)
    lat, repeat = descriptor_operator_latencies(desc)
    if not _use_operator_sum_prior(m, lat, fnames, repeat, v8_rule=True):  # blended with the base's design
        raise SystemExit("a pool descriptor lacks the operator latencies the operator sum needs")
    return m


def blend_weight(A: np.ndarray, C: np.ndarray, O: np.ndarray, groups: Sequence[str]) -> float:
    """alpha in [0, 1] for the prior mean ``(1 - alpha) * training mean + alpha * operator sum``,
    fitted on the training pairs alone, each against the mean of the pairs outside its group
    (runtime): least squares of ``C_i - mean_{-g(i)}`` on ``O_i - mean_{-g(i)}`` in latency error
    (``A``'s rows). C, O: [p, m]."""
    G = A.T @ A / len(A)
    groups = np.asarray(groups, dtype=object)
    num = den = 0.0
    for i in range(C.shape[1]):
        if (groups != groups[i]).sum() == 0:
            continue
        rest = C[:, groups != groups[i]].mean(1)
        a, b = O[:, i] - rest, C[:, i] - rest
        num += a @ G @ b
        den += a @ G @ a
    return float(np.clip(num / den, 0.0, 1.0)) if den > 0 else 0.0


def run(pool: Path, public=None, seeds: int = 5, shots: int = 10, holdout: str = "runtime", log=None,
        only: Sequence[str] = (), descriptor_ridge="auto"):
    archs, devices, runtimes, Y, descs = load_pool(pool)
    if only:
        keep = [j for j, d in enumerate(devices) if any(fnmatch.fnmatch(d, pat) for pat in only)]
        if len(keep) < 3:
            raise SystemExit(f"--only {' '.join(only)} keeps {len(keep)} pairs; the experiment needs 3")
        devices, runtimes, Y = [devices[j] for j in keep], [runtimes[j] for j in keep], Y[:, keep]
    fnames = list(enc.feature_names("nb201"))
    X = np.asarray(enc.encode("nb201", archs), dtype=np.float64)
    n = len(archs)
    Ylog = np.log(Y)
    if public:
        Ypub, pub_devices = public_block(public, archs)
        Ypub_log = np.log(Ypub)
    else:
        Ypub_log, pub_devices = np.zeros((n, 0)), []
    desc_sets = {"lat": ("lat:",), "raw": ("raw:",), "rate": ("rate:",), "lat+rate": ("lat:", "rate:")}
    D = {v: descriptor_matrix(descs, devices, p) for v, p in desc_sets.items()}
    groups = ({rt: [j for j, r in enumerate(runtimes) if r == rt] for rt in dict.fromkeys(runtimes)}
              if holdout == "runtime" else {d: [j] for j, d in enumerate(devices)})
    res, fold_info = {}, {}  # device -> variant -> list of metrics dicts (one per seed)
    for g, test in groups.items():
        train = [j for j in range(len(devices)) if j not in test]
        Ytr = np.column_stack([Ylog[:, train], Ypub_log])
        tr_devs = [devices[j] for j in train] + pub_devices
        tr_groups = [runtimes[j] for j in train] + pub_devices  # inner CV leaves a runtime out, as here
        models = {"none": BayesLinear(candidates=n // 2).fit(X, Ytr, tr_devs, fnames)}
        for v, (Dv, names) in D.items():
            Dtr = np.vstack([Dv[train], np.full((len(pub_devices), Dv.shape[1]), np.nan)])
            models[v] = BayesLinear(candidates=n // 2, descriptor_ridge=descriptor_ridge).fit(
                X, Ytr, tr_devs, fnames, descriptors=Dtr, descriptor_names=names, groups=tr_groups)
        none = models["none"]
        # opsum-blend: the mixing weight learned from the training pairs (their own operator sums
        # against their coefficients); the public devices have no descriptor and take no part.
        C = device_coefficients(none.A, Ylog[:, train])
        O = np.column_stack([_opsum_model(none, descs[devices[j]], fnames).mu for j in train])
        alpha = blend_weight(none.A, C, O, [runtimes[j] for j in train])
        fold_info[g] = {"train": [devices[j] for j in train], "blend_alpha": round(alpha, 3),
                        "ridge": {v: models[v].desc["ridge"] for v in D}}
        for j in test:
            dev = devices[j]
            res[dev] = {v: [] for v in VARIANTS + (BASELINE, CEILING)}
            base = oplat_sum(descs[dev], X, fnames)
            res[dev][CEILING] = [metrics(cv_ceiling(none.A, Y[:, j]), Y[:, j])]
            models["opsum-prior"] = _opsum_model(none, descs[dev], fnames)
            models["opsum-blend"] = blend = copy.deepcopy(none)
            blend._set_prior(blend.cols, (1 - alpha) * none.mu + alpha * models["opsum-prior"].mu, blend.Lc, blend.A)
            for s in range(seeds):
                idx = none.select(shots, np.arange(n), np.random.default_rng(s))
                rest = np.setdiff1d(np.arange(n), idx)
                for v in VARIANTS:
                    m = models[v]
                    if v in D:
                        m.adapt(idx, Ylog[idx, j], descriptor=D[v][0][j])
                    else:
                        m.adapt(idx, Ylog[idx, j])
                    res[dev][v].append(metrics(np.exp(m.predict(rest)), Y[rest, j]))
                A = np.column_stack([np.ones(len(idx)), base[idx]])
                coef, *_ = np.linalg.lstsq(A, Y[idx, j], rcond=None)
                pred = np.maximum(coef[0] + coef[1] * base[rest], 1e-3 * Y[idx, j].min())
                res[dev][BASELINE].append(metrics(pred, Y[rest, j]))
            if log:
                log(f"{dev}: " + "  ".join(f"{v} {np.mean([r['acc10'] for r in res[dev][v]]):.3f}"
                                           for v in res[dev]))
    return {"archs": n, "devices": devices, "runtimes": runtimes, "public_devices": pub_devices,
            "holdout": holdout, "shots": shots, "seeds": seeds, "shipped": SHIPPED, "folds": fold_info,
            "descriptor_ridge": descriptor_ridge,
            "descriptor_features": {v: D[v][1] for v in D}, "results": res}


def summarise(out):
    """Per device and variant: mean and std over seeds of acc10 and spearman; plus the mean over
    devices (std over seeds of the per-seed device mean)."""
    res = out["results"]
    variants = list(next(iter(res.values())))
    table = {}
    for dev, by in res.items():
        table[dev] = {v: {k: (float(np.mean([r[k] for r in rs])), float(np.std([r[k] for r in rs])))
                          for k in ("acc10", "spearman")} for v, rs in by.items()}
    mean = {}
    for v in variants:
        mean[v] = {}
        for k in ("acc10", "spearman"):
            per_seed = np.mean([[r[k] for r in res[d][v]] for d in res], axis=0)
            mean[v][k] = (float(per_seed.mean()), float(per_seed.std()))
    table["MEAN"] = mean
    return table


def print_table(out, table, file=sys.stdout):
    variants = list(table["MEAN"])
    print(f"leave-one-{out['holdout']}-out, {out['shots']} shots, {out['seeds']} seeds, {out['archs']} archs, "
          f"train +{len(out['public_devices'])} public devices", file=file)
    for k, label in (("acc10", "+-10% accuracy"), ("spearman", "Spearman")):
        print(f"\n{label} (mean +- std over seeds)", file=file)
        print(f"{'held-out pair':<22}" + "".join(f"{v:>16}" for v in variants), file=file)
        for dev, by in table.items():
            print(f"{dev:<22}" + "".join(f"{by[v][k][0]:>9.3f} +-{by[v][k][1]:.3f}" for v in variants), file=file)
    print("\nper fold: opsum-blend's alpha (fitted on the training pairs) and the descriptor ridge chosen by "
          f"cross-validation ({out['descriptor_ridge']}; None: the descriptor got no weight)", file=file)
    for g, f in out["folds"].items():
        print(f"  {g:<20} alpha {f['blend_alpha']:.2f}  " + "  ".join(f"{v} {r}" for v, r in f["ridge"].items()),
              file=file)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = Path(__file__).resolve().parent
    ap.add_argument("--pool", type=Path, default=here / "data" / "pool")
    ap.add_argument("--public", default=None, help="also train on the public tables in this folder (../shared/data)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--holdout", choices=("runtime", "pair"), default="runtime")
    ap.add_argument("--only", nargs="+", default=(), metavar="GLOB",
                    help="use only the pool pairs whose device name matches (e.g. '*-1t')")
    ap.add_argument("--descriptor-ridge", default="auto", type=lambda v: v if v == "auto" else float(v),
                    help="'auto' (cross-validated, the default) or a fixed ridge for the descriptor regression")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    t0 = time.time()
    out = run(a.pool, a.public, a.seeds, a.shots, a.holdout,
              log=None if a.json else (lambda s: print(s, file=sys.stderr, flush=True)), only=a.only,
              descriptor_ridge=a.descriptor_ridge)
    table = summarise(out)
    if a.json:
        print(json.dumps({"summary": table, "wall_s": round(time.time() - t0, 1),
                          **{k: v for k, v in out.items() if k != "results"}}, indent=1))
    else:
        print_table(out, table)
        print(f"\n({time.time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

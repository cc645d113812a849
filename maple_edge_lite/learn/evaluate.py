"""Few-shot latency prediction on unseen devices: the evaluation harness.

Every method (``maple_edge_lite.learn.methods``: the interface and the registry; the baselines
are in ``baselines``) is scored the same way on the same samples: ``fit`` once per training
split, ``select`` the archs to measure on the new device, ``adapt`` to their log latencies,
``predict`` the rest.

Row positions index the table's rows (``table.index[i]`` is the arch index of row i). Random
selection draws ``rng.permutation(pool)[:k]`` from a generator seeded by (seed, device), created
afresh for every method, so all randomly-selecting methods see the same archs, and a method
measuring more archs sees a superset (shots are nested).

Metrics (``metrics``) are computed in ms on the query archs: acc5/acc10/acc15 are fractions
(0..1) of archs predicted within 5/10/15 % of the truth; ``spearman`` is the rank correlation
(ties get average ranks); ``rmspe`` and ``mape`` are in PERCENT.

``leave_one_out`` holds out each group of near-duplicate devices (``data.device_groups``) in
turn, trains on all other devices and tests each device of the group. The headline is the
group mean: each group weighted once.
"""

from __future__ import annotations

import importlib
import math
import time
import zlib
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .._errors import InputError
from .data import GROUP_THRESHOLD, LatencyTable, device_groups
from .methods import Method, all_methods

__all__ = [
    "METRICS",
    "metrics",
    "all_methods",
    "resolve_encoder",
    "evaluate",
    "leave_one_out",
    "paired_differences",
    "format_report",
]

METRICS = ("acc5", "acc10", "acc15", "spearman", "rmspe", "mape")
#: Reported for the methods that give intervals (an ``interval(idx) -> (lo_ms, hi_ms)`` method):
#: ``cover``, the share of query archs whose measured latency lies inside the interval.
OPTIONAL_METRICS = ("cover",)
# Larger is better for these; smaller for rmspe and mape.
HIGHER_IS_BETTER = {"acc5": True, "acc10": True, "acc15": True, "spearman": True, "rmspe": False, "mape": False}

# HELP's protocol (HayeonLee/HELP, loader.py): adaptation samples from arch indices 0-899, query
# archs 900-1899; in both ranges only the archs between the 10th and 90th latency percentile of
# the device (by rank within the range) are used.
HELP_POOL = (0, 900)
HELP_QUERY = (900, 1900)
HELP_TRIM = (0.1, 0.9)

# Relative slack on the acc thresholds so that a prediction exactly 10 % off counts as within 10 %
# despite binary floating point (1.1 / 1.0 - 1 = 0.10000000000000009).
_ACC_EPS = 1e-9


# --------------------------------------------------------------------------------------------
# metrics


def _rank(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, ties get the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new = np.empty(len(x), dtype=bool)
    new[:1] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(x))
    avg = (starts + ends - 1) / 2.0
    r = np.empty(len(x))
    r[order] = avg[np.cumsum(new) - 1]
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation with average ranks for ties; NaN when either side is constant."""
    ra, rb = _rank(np.asarray(a, dtype=np.float64)), _rank(np.asarray(b, dtype=np.float64))
    ra -= ra.mean()
    rb -= rb.mean()
    den = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / den if den > 0 else float("nan")


def metrics(pred_ms, true_ms) -> Dict[str, float]:
    """Accuracy of predicted latencies (ms) against the truth (ms), both 1-D of equal length.

    acc5, acc10, acc15: fraction of archs with |pred/true - 1| <= 5 %, 10 %, 15 %;
    spearman: rank correlation; rmspe: root mean squared relative error in percent;
    mape: mean absolute relative error in percent."""
    p = np.asarray(pred_ms, dtype=np.float64).ravel()
    t = np.asarray(true_ms, dtype=np.float64).ravel()
    if p.shape != t.shape or p.size == 0:
        raise InputError(f"metrics: pred has {p.size} values and true {t.size}; need the same, non-zero")
    if not (np.isfinite(t).all() and (t > 0).all()):
        raise InputError("metrics: true latencies must be positive and finite")
    if not np.isfinite(p).all():
        raise InputError("metrics: a predicted latency is not finite")
    rel = p / t - 1.0
    a = np.abs(rel)
    return {
        "acc5": float(np.mean(a <= 0.05 + _ACC_EPS)),
        "acc10": float(np.mean(a <= 0.10 + _ACC_EPS)),
        "acc15": float(np.mean(a <= 0.15 + _ACC_EPS)),
        "spearman": spearman(p, t),
        "rmspe": float(np.sqrt(np.mean(rel * rel)) * 100.0),
        "mape": float(np.mean(a) * 100.0),
    }



# --------------------------------------------------------------------------------------------
# encoder


def resolve_encoder(encoder=None):
    """-> (encode(space, archs) -> float32 [n, d], feature_names(space) -> list, label).

    None or "auto": ``maple_edge_lite.encode`` when importable, else ``_simple_encode``.
    "simple" / "encode": force one. A module or object with ``encode`` and ``feature_names``;
    or a bare callable ``encode(space, archs)`` (feature names then f0, f1, ...)."""
    if encoder is None or encoder == "auto":
        try:
            mod = importlib.import_module("maple_edge_lite.encode")
            if hasattr(mod, "encode") and hasattr(mod, "feature_names"):
                return mod.encode, mod.feature_names, "maple_edge_lite.encode"
            why = "maple_edge_lite.encode lacks encode/feature_names"
        except ImportError as e:
            why = f"maple_edge_lite.encode not importable: {e}"
        from . import _simple_encode as se

        return se.encode, se.feature_names, f"maple_edge_lite.learn._simple_encode ({why})"
    if encoder == "simple":
        from . import _simple_encode as se

        return se.encode, se.feature_names, "maple_edge_lite.learn._simple_encode"
    if encoder == "encode":
        mod = importlib.import_module("maple_edge_lite.encode")
        return mod.encode, mod.feature_names, "maple_edge_lite.encode"
    if hasattr(encoder, "encode") and hasattr(encoder, "feature_names"):
        return encoder.encode, encoder.feature_names, getattr(encoder, "__name__", type(encoder).__name__)
    if callable(encoder):
        return encoder, None, getattr(encoder, "__name__", repr(encoder))
    raise InputError(f"encoder must be None, 'auto', 'simple', 'encode', a module or a callable, not {encoder!r}")


def _features(table: LatencyTable, encoder) -> Tuple[np.ndarray, List[str], str]:
    enc, names_fn, label = resolve_encoder(encoder)
    X = np.asarray(enc(table.space, table.archs), dtype=np.float32)
    if X.ndim != 2 or X.shape[0] != table.n_archs:
        raise InputError(f"encoder {label} returned shape {X.shape} for {table.n_archs} archs")
    if not np.isfinite(X).all():
        raise InputError(f"encoder {label} returned non-finite features")
    names = list(names_fn(table.space)) if names_fn else [f"f{i}" for i in range(X.shape[1])]
    if len(names) != X.shape[1]:
        raise InputError(f"encoder {label}: {len(names)} feature names for {X.shape[1]} features")
    return X, names, label


# --------------------------------------------------------------------------------------------
# the loop


def _factories(method_factories) -> Dict[str, Callable[[], Method]]:
    known = all_methods()
    if method_factories is None:
        return known
    if isinstance(method_factories, Mapping):
        return dict(method_factories)
    out = {}
    for f in method_factories:
        if isinstance(f, str):
            if f not in known:
                raise InputError(f"unknown method {f!r}; known: {', '.join(known)}")
            out[f] = known[f]
        else:
            out[getattr(f(), "name", f"method{len(out)}")] = f
    return out


def _pools(table: LatencyTable, device: str, protocol: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(pool, query) row positions. query None: every arch the device has minus the adapted ones."""
    col = table.latency_ms[:, table.devices.index(device)]
    has = np.isfinite(col)
    if protocol == "all":
        return np.flatnonzero(has), None
    if protocol == "help":

        def trimmed(lo, hi):
            rows = np.flatnonzero(has & (table.index >= lo) & (table.index < hi))
            order = rows[np.argsort(col[rows], kind="mergesort")]
            n = len(order)
            return np.sort(order[int(n * HELP_TRIM[0]):int(n * HELP_TRIM[1])])

        return trimmed(*HELP_POOL), trimmed(*HELP_QUERY)
    raise InputError(f"unknown protocol {protocol!r}; known: all, help")


def _device_seed(seed: int, device: str) -> List[int]:
    return [int(seed), zlib.crc32(device.encode("utf-8"))]


def _run_split(table, X, names, factories, train, test, shots, seeds, protocol, timings, observe=None):
    """-> {method: {device: [per-seed dict]}}; fits every method once on ``train``. ``observe``:
    called as observe(method, device, seed, measured_ms, predicted_ms, lo_ms, hi_ms) for every
    scored draw (lo/hi None for a method without intervals)."""
    tcols = [table.devices.index(d) for d in train]
    Y = np.log(table.latency_ms[:, tcols])
    out: Dict[str, Dict[str, List[dict]]] = {}
    for mname, factory in factories.items():
        t0 = time.perf_counter()
        method = factory()
        method.fit(X, Y, list(train), list(names))
        timings.setdefault(mname, {"fit_s": 0.0, "adapt_predict_s": 0.0})
        timings[mname]["fit_s"] += time.perf_counter() - t0
        timings[mname]["description"] = method.describe()
        t0 = time.perf_counter()
        per_dev = out.setdefault(mname, {})
        for dev in test:
            col = table.latency_ms[:, table.devices.index(dev)]
            pool, query = _pools(table, dev, protocol)
            k = shots if method.shots is None else method.shots
            runs = []
            for s in range(seeds):
                rng = np.random.default_rng(_device_seed(s, dev))
                kk = min(int(k), len(pool) - (0 if query is not None else 1))
                if query is None and method.max_pool_share:
                    kk = min(kk, int(len(pool) * method.max_pool_share))
                if kk < 1:
                    raise InputError(f"device {dev}: {len(pool)} archs in the pool, too few for {k} shots")
                idx = np.asarray(method.select(kk, pool, rng), dtype=np.int64)
                if len(np.unique(idx)) != len(idx) or not np.isin(idx, pool).all():
                    raise InputError(f"method {mname}: select returned archs outside the pool or repeated")
                method.adapt(idx, np.log(col[idx]))
                if query is None:
                    q = np.setdiff1d(pool, idx, assume_unique=True)
                else:
                    q = query
                pred = np.exp(np.asarray(method.predict(q), dtype=np.float64))
                r = metrics(pred, col[q])
                lo = hi = None
                if hasattr(method, "interval"):
                    lo, hi = method.interval(q)
                    r["cover"] = float(np.mean((col[q] >= lo) & (col[q] <= hi)))
                if observe is not None:
                    observe(mname, dev, s, col[q], pred, lo, hi)
                r["n_query"] = int(len(q))
                r["shots"] = int(len(idx))
                runs.append(r)
            per_dev[dev] = runs
        timings[mname]["adapt_predict_s"] += time.perf_counter() - t0
    return out


def _metrics_of(runs_by_device: Dict[str, List[dict]]) -> Tuple[str, ...]:
    """METRICS, then the optional ones every run of this method reports."""
    runs = [r for rs in runs_by_device.values() for r in rs]
    return METRICS + tuple(m for m in OPTIONAL_METRICS if runs and all(m in r for r in runs))


def _summarise_device(runs: List[dict]) -> dict:
    d = {}
    for mt in _metrics_of({"": runs}):
        v = np.array([r[mt] for r in runs], dtype=np.float64)
        d[mt] = float(np.mean(v))
        d[mt + "_std"] = float(np.std(v))
    d["n_query"] = int(np.mean([r["n_query"] for r in runs]))
    d["shots"] = int(np.mean([r["shots"] for r in runs]))
    return d


def _seed_matrix(raw: Dict[str, List[dict]], devices: Sequence[str], metric: str) -> np.ndarray:
    return np.array([[r[metric] for r in raw[d]] for d in devices], dtype=np.float64)  # [dev, seed]


def _check_devices(table, devices, what):
    devices = list(devices)
    unknown = [d for d in devices if d not in table.devices]
    if unknown:
        from .data import UnknownDeviceError

        raise UnknownDeviceError(
            f"{what}: unknown device(s) {', '.join(unknown)}; the table has: {', '.join(table.devices)}")
    if len(set(devices)) != len(devices):
        raise InputError(f"{what}: a device is listed twice")
    return devices


def evaluate(table: LatencyTable, encoder=None, method_factories=None, train_devices: Sequence[str] = (),
             test_devices: Sequence[str] = (), shots: int = 10, seeds: int = 5, protocol: str = "all",
             primary: Optional[str] = None, observe=None) -> dict:
    """Fit every method once on ``train_devices``, then for each test device and seed select
    ``shots`` archs, adapt, and score on the query archs (``observe``: see ``_run_split``; the
    predictions themselves are not in the report). Returns the JSON-ready report:

        {"config": {...},
         "methods": {name: {"description": str, "fit_s": s, "adapt_predict_s": s,
                            "devices": {device: {metric: mean over seeds, metric+"_std": std, ...}},
                            "mean": {metric: mean over test devices, metric+"_std": std over seeds}}}}
    """
    train = _check_devices(table, train_devices, "train devices")
    test = _check_devices(table, test_devices, "test devices")
    if not train or not test:
        raise InputError("evaluate needs at least one train and one test device")
    both = sorted(set(train) & set(test))
    if both:
        raise InputError(f"devices both in train and test: {', '.join(both)}")
    _check_run_args(shots, seeds, protocol)
    factories = _factories(method_factories)
    X, names, label = _features(table, encoder)
    t0 = time.perf_counter()
    timings: Dict[str, dict] = {}
    raw = _run_split(table, X, names, factories, train, test, shots, seeds, protocol, timings, observe)
    groups = device_groups(table.select(train + test))
    same = [g for g in groups if set(g) & set(train) and set(g) & set(test)]
    report = {
        "config": _config(table, label, names, shots, seeds, protocol, mode="split", train_devices=train,
                          test_devices=test, split_near_duplicates=same),
        "methods": {},
    }
    for mname in factories:
        devs = {d: _summarise_device(raw[mname][d]) for d in test}
        mean = {}
        for mt in _metrics_of(raw[mname]):
            S = _seed_matrix(raw[mname], test, mt)  # [dev, seed]
            mean[mt] = float(S.mean())
            mean[mt + "_std"] = float(np.std(S.mean(0)))
        report["methods"][mname] = {**_round_t(timings[mname]),
                                    "devices": devs, "mean": mean}
    report["config"]["wall_s"] = round(time.perf_counter() - t0, 3)
    if primary is not None:
        report["paired"] = paired_differences(report, primary, unit="device")
    return report


def leave_one_out(table: LatencyTable, encoder=None, method_factories=None, devices: Optional[Sequence[str]] = None,
                  shots: int = 10, seeds: int = 5, protocol: str = "all", groups: Optional[List[List[str]]] = None,
                  primary: Optional[str] = None, group_threshold: Optional[float] = None,
                  group_metadata: bool = True, observe=None) -> dict:
    """Leave one group of near-duplicate devices out at a time: train on every other device of
    ``devices`` (default: all of the table), test each device of the group. Groups default to
    ``device_groups`` of those devices.

    Report: as ``evaluate``, plus "groups" (the list of groups) at the top and per method
    "groups": [{"devices": [...], metric: mean over the group's devices}] aligned with it; a
    method's "mean" is the group mean (each group weighted once), "<metric>_std" its std over
    seeds; "paired": the primary method (default: the first) minus each other method, over groups:
    mean difference and its standard error. ``observe``: as in ``evaluate``."""
    devices = _check_devices(table, devices if devices is not None else table.devices, "devices")
    _check_run_args(shots, seeds, protocol)
    if groups is None:
        kw = {} if group_threshold is None else {"threshold": group_threshold}
        groups = device_groups(table.select(devices), metadata=group_metadata, **kw)
    else:
        groups = [list(g) for g in groups]
        flat = [d for g in groups for d in g]
        if sorted(flat) != sorted(devices):
            raise InputError("leave_one_out: the groups must partition the devices exactly")
    if len(groups) < 2:
        raise InputError("leave_one_out needs at least two groups of devices")
    factories = _factories(method_factories)
    X, names, label = _features(table, encoder)
    t0 = time.perf_counter()
    timings: Dict[str, dict] = {}
    raw: Dict[str, Dict[str, List[dict]]] = {m: {} for m in factories}
    train_sets = []
    for g in groups:
        train = [d for d in devices if d not in g]
        train_sets.append(train)
        part = _run_split(table, X, names, factories, train, g, shots, seeds, protocol, timings, observe)
        for m in factories:
            raw[m].update(part[m])
    report = {
        "config": _config(table, label, names, shots, seeds, protocol, mode="leave_one_group_out",
                          devices=devices, group_threshold=GROUP_THRESHOLD if group_threshold is None else group_threshold,
                          group_metadata=group_metadata),
        "groups": groups,
        "methods": {},
    }
    for mname in factories:
        devs = {d: _summarise_device(raw[mname][d]) for g in groups for d in g}
        for gi, g in enumerate(groups):
            for d in g:
                devs[d]["group"] = gi
        gblocks = []
        for g in groups:
            gb = {"devices": list(g)}
            for mt in _metrics_of(raw[mname]):
                gb[mt] = float(np.mean([devs[d][mt] for d in g]))
            gblocks.append(gb)
        mean = {}
        for mt in _metrics_of(raw[mname]):
            # per seed: group means, then their mean; std of that over seeds
            per_seed = np.mean([_seed_matrix(raw[mname], g, mt).mean(0) for g in groups], axis=0)
            mean[mt] = float(np.mean([gb[mt] for gb in gblocks]))
            mean[mt + "_std"] = float(np.std(per_seed))
        report["methods"][mname] = {**_round_t(timings[mname]),
                                    "devices": devs, "groups": gblocks, "mean": mean}
    report["config"]["wall_s"] = round(time.perf_counter() - t0, 3)
    if len(factories) > 1:
        report["paired"] = paired_differences(report, primary or next(iter(factories)))
    return report


def paired_differences(report: dict, primary: str, others: Optional[Sequence[str]] = None,
                       unit: str = "group") -> dict:
    """primary minus each other method, per group (leave_one_out) or per device (evaluate):
    {"primary": name, "unit": unit, "vs": {other: {metric: {"mean": d, "se": se, "n": n,
    "better": count of units where primary is better}}}}. se = std(ddof=1)/sqrt(n)."""
    methods = report["methods"]
    if primary not in methods:
        raise InputError(f"paired differences: no method {primary!r}; have {', '.join(methods)}")
    others = [m for m in (others or methods) if m != primary]

    def units(m):
        if unit == "group":
            return [[gb[mt] for mt in METRICS] for gb in methods[m]["groups"]]
        return [[methods[m]["devices"][d][mt] for mt in METRICS] for d in methods[m]["devices"]]

    P = np.array(units(primary))
    out = {"primary": primary, "unit": unit, "vs": {}}
    for o in others:
        Dm = P - np.array(units(o))
        n = len(Dm)
        block = {}
        for j, mt in enumerate(METRICS):
            d = Dm[:, j]
            se = float(np.std(d, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
            better = int(np.sum(d > 0)) if HIGHER_IS_BETTER[mt] else int(np.sum(d < 0))
            block[mt] = {"mean": float(np.mean(d)), "se": se, "n": n, "better": better}
        out["vs"][o] = block
    return out


def _round_t(t):
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in t.items()}


def _check_run_args(shots, seeds, protocol):
    if int(shots) < 1:
        raise InputError(f"shots must be >= 1, not {shots}")
    if int(seeds) < 1:
        raise InputError(f"seeds must be >= 1, not {seeds}")
    if protocol not in ("all", "help"):
        raise InputError(f"unknown protocol {protocol!r}; known: all, help")


def _config(table, label, names, shots, seeds, protocol, mode, **extra):
    cfg = {
        "mode": mode,
        "space": table.space,
        "sources": list(table.sources),
        "n_archs": int(table.n_archs),
        "encoder": label,
        "n_features": len(names),
        "shots": int(shots),
        "seeds": int(seeds),
        "protocol": protocol,
        "metrics": {"acc5/acc10/acc15": "fraction of query archs within 5/10/15 % (0..1)",
                    "spearman": "rank correlation, ties averaged",
                    "rmspe": "percent", "mape": "percent",
                    "<metric>_std": "std over seeds (ddof=0)"},
    }
    if protocol == "help":
        cfg["help"] = {"pool_index_range": list(HELP_POOL), "query_index_range": list(HELP_QUERY),
                       "percentile_trim": list(HELP_TRIM), "trim_applies_to": "pool and query, as HELP's loader"}
    cfg.update(extra)
    return cfg


# --------------------------------------------------------------------------------------------
# readable report


def format_report(report: dict, metric: str = "acc10", second: str = "spearman") -> str:
    """A plain-text table: one row per device, one column per method, ``metric / second``."""
    methods = list(report["methods"])
    cfg = report["config"]
    lines = [f"{cfg['mode']}: space {cfg['space']}, {cfg['shots']} shots, {cfg['seeds']} seeds, "
             f"protocol {cfg['protocol']}, encoder {cfg['encoder']}",
             f"cells: {metric} / {second} (mean over seeds)"]
    first = report["methods"][methods[0]]
    devices = list(first["devices"])
    groups = report.get("groups")
    wdev = max([len(d) for d in devices] + [10])
    wcol = max([len(m) for m in methods] + [13])
    head = f"{'device':<{wdev}}  {'grp':>3}  " + "  ".join(f"{m:>{wcol}}" for m in methods)
    lines += [head, "-" * len(head)]

    def cell(block):
        return f"{block[metric]:.3f} / {block[second]:.3f}"

    for d in devices:
        g = first["devices"][d].get("group", "")
        lines.append(f"{d:<{wdev}}  {g!s:>3}  " + "  ".join(
            f"{cell(report['methods'][m]['devices'][d]):>{wcol}}" for m in methods))
    lines.append("-" * len(head))
    label = "group mean" if groups else "mean"
    lines.append(f"{label:<{wdev}}  {'':>3}  " + "  ".join(
        f"{cell(report['methods'][m]['mean']):>{wcol}}" for m in methods))
    lines.append(f"{'seed std':<{wdev}}  {'':>3}  " + "  ".join(
        f"{report['methods'][m]['mean'][metric + '_std']:.3f} / {report['methods'][m]['mean'][second + '_std']:.3f}"
        .rjust(wcol) for m in methods))
    if groups:
        lines.append("")
        lines.append(f"{len(groups)} groups: " + "; ".join("+".join(g) if len(g) > 1 else g[0]
                                                       for g in groups if len(g) > 1) + "; the rest alone")
    p = report.get("paired")
    if p:
        lines.append("")
        lines.append(f"paired differences, {p['primary']} minus each method, over {p['unit']}s "
                     f"(mean +- standard error; units where {p['primary']} is better):")
        for o, b in p["vs"].items():
            lines.append(f"  vs {o:<{wcol}} {metric} {b[metric]['mean']:+.3f} +- {b[metric]['se']:.3f} "
                         f"({b[metric]['better']}/{b[metric]['n']})   {second} {b[second]['mean']:+.3f} "
                         f"+- {b[second]['se']:.3f} ({b[second]['better']}/{b[second]['n']})")
    for m in methods:
        lines.append(f"{m}: {report['methods'][m]['description']}")
    lines.append(f"wall time {cfg.get('wall_s', float('nan')):.1f} s")
    return "\n".join(lines)

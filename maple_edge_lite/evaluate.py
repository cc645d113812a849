"""Few-shot latency prediction on unseen devices: the evaluation harness and its baselines.

Every method is scored the same way on the same samples:

    fit(X, Y, devices, feature_names)   once per training split
        X  float32 [n_archs, d]  features of every arch of the table (from the encoder)
        Y  float64 [n_archs, n_train_devices]  LOG latency (natural log of ms), NaN where missing
    select(k, pool, rng) -> idx          which archs to measure on the new device (row positions)
    adapt(idx, y_log)                    the k measurements, log ms
    predict(idx_query) -> log ms

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
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._errors import InputError
from .data import GROUP_THRESHOLD, LatencyTable, device_groups

__all__ = [
    "METRICS",
    "metrics",
    "Method",
    "FlopsLinear",
    "RidgeEncoding",
    "RidgeDevices",
    "Kriging",
    "Ceiling",
    "BASELINES",
    "resolve_encoder",
    "evaluate",
    "leave_one_out",
    "paired_differences",
    "format_report",
]

METRICS = ("acc5", "acc10", "acc15", "spearman", "rmspe", "mape")
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
# the method interface


class Method:
    """Base of a few-shot predictor. Subclasses implement fit, adapt and predict; ``select``
    defaults to the shared random draw. ``shots``: None measures the harness's k archs; an int
    makes this method always measure that many (capped at the pool), e.g. the ceiling.
    ``describe()`` is called after ``fit`` for the report."""

    name = "method"
    shots: Optional[int] = None
    # With protocol "all", never adapt on more than this share of the device's archs (so a
    # method with a large ``shots`` still leaves a query set); None: no cap beyond pool - 1.
    max_pool_share: Optional[float] = None

    def fit(self, X: np.ndarray, Y: np.ndarray, devices: Sequence[str], feature_names: Sequence[str] = ()):
        raise NotImplementedError

    def select(self, k: int, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(pool)[:k]

    def adapt(self, idx: np.ndarray, y_log: np.ndarray):
        raise NotImplementedError

    def predict(self, idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return self.__doc__.strip().splitlines()[0] if self.__doc__ else self.name


# --------------------------------------------------------------------------------------------
# shared numerics

_LAMBDAS = np.logspace(-4, 4, 33)
# Above this many points the regularisation is chosen by generalised cross-validation (GCV)
# instead of exact leave-one-out: same answer in the limit, and O(rank) per candidate.
_GCV_ABOVE = 500
# Kriging nugget candidates, as fractions of the mean prior variance per arch.
_NUGGETS = np.logspace(-3, 1, 17)


def _complete(Y: np.ndarray, iters: int = 30) -> np.ndarray:
    """Fill the NaNs of a log-latency matrix [n, m] by iterative low-rank reconstruction.

    Rank: the components holding 99 % of the centred variance of the complete rows. Only rows with
    a gap change, so the Gram matrix of the complete rows is computed once."""
    Y = np.asarray(Y, dtype=np.float64)
    M = np.isfinite(Y)
    if M.all():
        return Y.copy()
    counts = M.sum(0)
    if (counts < 2).any():
        raise InputError("training device with fewer than 2 measured archs")
    mu = np.nanmean(Y, axis=0)
    Z = np.where(M, Y - mu, np.nan)
    rows = np.flatnonzero(~M.all(1))
    full = np.setdiff1d(np.arange(len(Y)), rows)
    Zr = Z[rows]
    Mr = M[rows]
    # Start from the row's mean centred value (an arch slow everywhere stays slow).
    rmean = np.nanmean(Zr, axis=1)
    rmean = np.where(np.isfinite(rmean), rmean, 0.0)
    Zr = np.where(Mr, Zr, rmean[:, None])
    Zf = Z[full]
    G_full = Zf.T @ Zf
    if len(full) >= 2:
        w = np.linalg.eigvalsh(G_full)[::-1]
        w = np.clip(w, 0, None)
        frac = np.cumsum(w) / max(w.sum(), 1e-300)
        r = int(np.searchsorted(frac, 0.99) + 1)
    else:
        r = 1
    r = max(1, min(r, Y.shape[1] - 1))
    for _ in range(iters):
        G = G_full + Zr.T @ Zr
        _, V = np.linalg.eigh(G)
        V = V[:, ::-1][:, :r]
        approx = (Zr @ V) @ V.T
        new = np.where(Mr, Zr, approx)
        if np.max(np.abs(new - Zr)) < 1e-6:
            Zr = new
            break
        Zr = new
    Z[full] = Zf
    Z[rows] = Zr
    return Z + mu


_COMPLETE_CACHE: Dict[Tuple, np.ndarray] = {}


def _complete_cached(Y: np.ndarray) -> np.ndarray:
    """The methods of one split all complete the same Y: do it once (keyed by content)."""
    key = (Y.shape, zlib.crc32(np.ascontiguousarray(Y).view(np.uint8)))
    got = _COMPLETE_CACHE.get(key)
    if got is None:
        got = _complete(Y)
        _COMPLETE_CACHE.clear()
        _COMPLETE_CACHE[key] = got
    return got


def _ridge_loo(F: np.ndarray, Z: Optional[np.ndarray], y: np.ndarray, lambdas=_LAMBDAS, relative: bool = True):
    """Least squares y ~ F a + Z b with a unpenalised and a ridge penalty lam*|b|^2, lam chosen by
    exact leave-one-out error over ``lambdas`` (relative=True: in units of the mean squared
    singular value of Z, so the grid is unit-free). Returns (a, b, lam). Z may be None (OLS)."""
    k = len(y)
    if F.shape[1]:
        Qf, Rf = np.linalg.qr(F)
        # Drop dependent directions (e.g. a prior that is constant at these k points).
        keep = np.abs(np.diag(Rf)) > 1e-10 * max(1.0, np.abs(Rf).max())
        Qf = Qf[:, keep]
    else:
        Qf = np.zeros((k, 0))
    hF = np.sum(Qf * Qf, axis=1)
    ry = y - Qf @ (Qf.T @ y)
    if Z is None or Z.shape[1] == 0 or k - Qf.shape[1] <= 1:
        b = np.zeros(0 if Z is None else Z.shape[1])
        lam = float("nan")
    else:
        Zr = Z - Qf @ (Qf.T @ Z)
        big = k > _GCV_ABOVE
        if big:
            # Many points: the Gram matrix (p x p) gives the same spectrum as an SVD of the
            # k x p matrix at a fraction of the cost; py = P^T ry = V^T Zr^T ry / s.
            s2, V = np.linalg.eigh(Zr.T @ Zr)
            s2 = np.where(s2 > 1e-10 * max(float(s2.max()), 1e-300), s2, 0.0)
            s = np.sqrt(s2)
            with np.errstate(divide="ignore", invalid="ignore"):
                py = np.where(s > 0, (V.T @ (Zr.T @ ry)) / s, 0.0)
            Vt = V.T
        else:
            P, s, Vt = np.linalg.svd(Zr, full_matrices=False)
            s2 = s * s
            py = P.T @ ry
            P2 = P * P
        unit = float(np.mean(s2)) if relative and s2.size and s2.mean() > 0 else 1.0
        best = None
        rr = float(ry @ ry)
        for lam in lambdas:
            shrink = s2 / (s2 + lam * unit)
            if big:
                # Generalised cross-validation, O(rank) per lambda (P orthonormal:
                # |ry - P shrink py|^2 = |ry|^2 - sum (2 shrink - shrink^2) py^2).
                rss = rr - float(np.sum((2 * shrink - shrink * shrink) * py * py))
                dof = Qf.shape[1] + float(shrink.sum())
                err = max(rss, 0.0) / k / max(1 - dof / k, 1e-9) ** 2
            else:
                fit = P @ (shrink * py)
                h = np.minimum(hF + P2 @ shrink, 1 - 1e-9)
                err = float(np.mean(((ry - fit) / (1 - h)) ** 2))
            if best is None or err < best[0] * (1 - 1e-12):
                best = (err, lam)
        lam = best[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            coef = np.where(s > 0, s / (s2 + lam * unit), 0.0)
        b = Vt.T @ (coef * py)
    if F.shape[1]:
        resid = y - (Z @ b if Z is not None and Z.shape[1] else 0.0)
        a = np.linalg.lstsq(F, resid, rcond=None)[0]
    else:
        a = np.zeros(0)
    return a, b, lam


def _standardise(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    mu = X.mean(0)
    sd = X.std(0)
    sd[sd == 0] = 1.0
    return (X - mu) / sd


# --------------------------------------------------------------------------------------------
# baselines


class FlopsLinear(Method):
    """(a) log latency = a + b log FLOPs, least squares on the k measurements (2 parameters)."""

    name = "flops"

    def fit(self, X, Y, devices, feature_names=()):
        names = list(feature_names)
        col = None
        for want in ("flops_32", "flops"):
            if want in names:
                col = names.index(want)
                break
        if col is None:
            col = next((i for i, n in enumerate(names) if "flops" in n.lower() or "macs" in n.lower()), None)
        if col is not None:
            v = np.asarray(X[:, col], dtype=np.float64)
            self.source = f"feature {names[col]!r}"
            if names[col].lower().startswith("log"):
                self.logf = v
            else:
                self.logf = np.log(np.maximum(v, 1e-12))
        else:
            self.logf = np.log(_count_proxy(X, names))
            self.source = "count-based proxy (no FLOPs feature in the encoding): " + _PROXY_DOC
        return self

    def adapt(self, idx, y_log):
        idx = np.asarray(idx)
        f = self.logf[idx]
        if len(idx) >= 2 and np.ptp(f) > 0:
            A = np.column_stack([np.ones(len(idx)), f])
            (self.a, self.b), *_ = np.linalg.lstsq(A, y_log, rcond=None)
        else:  # one point (or all of equal FLOPs): latency proportional to FLOPs
            self.b = 1.0
            self.a = float(np.mean(y_log - f))
        return self

    def predict(self, idx):
        return self.a + self.b * self.logf[np.asarray(idx)]

    def describe(self):
        src = getattr(self, "source", "the encoder's FLOPs feature (flops_32) or, without one, a count-based proxy")
        return f"log latency linear in log FLOPs, fit on the k measurements; FLOPs from {src}"


_PROXY_DOC = ("1 + sum of per-op counts weighted by kernel area x expansion / groups parsed from the op "
              "name (conv kxk: k*k; FBNet kK_eE[_g2]: K*K*E/groups; pooling 1; skip/none 0); "
              "without count features, the row sum of the features")


def _count_proxy(X, names):
    import re

    weights = np.zeros(len(names))
    for i, n in enumerate(names):
        if not n.startswith("count:"):
            continue
        op = n.split(":", 1)[1]
        m = re.fullmatch(r"k(\d+)_e(\d+)(?:_g(\d+))?", op)
        if m:
            kk, e, g = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
            weights[i] = kk * kk * e / g
        elif "conv" in op:
            m = re.search(r"(\d+)x(\d+)", op)
            weights[i] = int(m.group(1)) * int(m.group(2)) if m else 1.0
        elif "pool" in op:
            weights[i] = 1.0
    X = np.asarray(X, dtype=np.float64)
    if weights.any():
        return 1.0 + X @ weights
    return 1.0 + np.maximum(X, 0).sum(1)


class _AffineRidge(Method):
    """log latency = a + b * base + Z.w: a and b free, w ridge-penalised, lambda by leave-one-out
    over the k points. Subclasses set ``base`` [n_archs] and ``Z`` [n_archs, r] in ``fit``."""

    def adapt(self, idx, y_log):
        idx = np.asarray(idx)
        F = np.column_stack([np.ones(len(idx)), self.base[idx]])
        self.ab, self.w, self.lam = _ridge_loo(F, self.Z[idx], np.asarray(y_log, dtype=np.float64))
        if len(self.ab) < 2:  # base dropped as degenerate at these points
            self.ab = np.append(self.ab, 0.0)
        return self

    def predict(self, idx):
        idx = np.asarray(idx)
        return self.ab[0] + self.ab[1] * self.base[idx] + self.Z[idx] @ self.w


class RidgeEncoding(_AffineRidge):
    """(b) ridge on the arch encoding, fit on the k measurements only, with a prior towards the
    mean training device: log latency = a + b * prior(x) + x.delta, a and b free, delta ridge-
    penalised (lambda by leave-one-out over the k points); prior = ridge fit of the mean centred
    training profile on the standardised encoding, over all archs."""

    name = "ridge_enc"

    def fit(self, X, Y, devices, feature_names=()):
        Yc = _complete_cached(Y)
        A = Yc - Yc.mean(0)
        mu = A.mean(1)
        self.Xs = _standardise(X)
        n, d = self.Xs.shape
        G = self.Xs.T @ self.Xs
        beta0 = np.linalg.solve(G + 1e-3 * n * np.eye(d), self.Xs.T @ mu)
        self.base = self.Xs @ beta0  # the prior: the mean training device's ridge model
        self.Z = self.Xs
        return self

    def describe(self):
        return ("ridge on the encoding, fit on the k points: a + b*prior(x) + x.delta (delta penalised, "
                "lambda by leave-one-out); prior = the mean training device's ridge model")


class RidgeDevices(_AffineRidge):
    """(c) ridge over the training devices: the new device's log latency as a + b * mean profile
    + sum_j w_j * profile_j (profiles centred per device and scaled to unit variance, NaNs filled
    by low-rank completion), w ridge-penalised, lambda by leave-one-out over the k points."""

    name = "ridge_dev"

    def fit(self, X, Y, devices, feature_names=()):
        Yc = _complete_cached(Y)
        A = Yc - Yc.mean(0)
        self.mu = A.mean(1)
        # Unit-variance columns: the penalty treats every training device alike, whatever the
        # spread of its log latencies (a batch-1 GPU's profile is flatter than a phone's).
        sd = A.std(0)
        self.A = A / np.where(sd > 0, sd, 1.0)
        self.base = self.mu
        self.Z = self.A  # the penalised design; RidgeDevicesEncoding appends the encoding
        return self

    def describe(self):
        return ("ridge over training devices' log-latency columns (a + b*mean + A.w, w penalised, lambda by "
                "leave-one-out on the k points)")


def _out_of_span_variance(A: np.ndarray, threshold: float = GROUP_THRESHOLD) -> float:
    """Median over devices j of the per-arch residual variance of A[:, j] regressed on the other
    columns (A: centred profiles [n, m]), leaving out j's near-duplicates (r >= threshold): how
    much of a device the others cannot express - the kriging nugget. Gram-matrix form, O(m^4)."""
    n, m = A.shape
    G = A.T @ A
    d = np.sqrt(np.clip(np.diag(G), 1e-300, None))
    R = G / np.outer(d, d)
    res = []
    for j in range(m):
        S = [i for i in range(m) if i != j and R[i, j] < threshold]
        if not S:
            res.append(G[j, j] / n)
            continue
        GS = G[np.ix_(S, S)]
        coef = np.linalg.lstsq(GS, G[S, j], rcond=None)[0]
        res.append(max(float(G[j, j] - G[j, S] @ coef), 0.0) / n)
    v = float(np.median(res)) if res else 0.0
    return v if v > 0 else 1e-6


class Kriging(Method):
    """(d) kriging: a Gaussian-process prior over the new device's log-latency profile, built from
    the training devices: mean = offset + mean centred profile, covariance = empirical covariance
    of the centred profiles across training devices + offset variance + a nugget sigma^2 on the
    diagonal. The prediction is the posterior mean given the k measurements.

    Low rank: the covariance is U U^T + sigma^2 I with U [n_archs, m+1] (m training devices), so
    conditioning is an (m+1)x(m+1) solve, never n_archs x n_archs.

    select="random" (the shared draw) or "greedy": pick k archs one at a time, each minimising the
    posterior variance summed over all archs (deterministic; depends on the training devices only).
    nugget: "auto" (default): sigma^2 = the median, over training devices, of the per-arch variance
    of a device's centred profile that the other training devices (near-duplicates excluded) do not
    explain by least squares - the part of a new device the prior cannot express; "loo": chosen per
    device by leave-one-out over the k points; a number: that fraction of the mean prior variance.
    """

    name = "kriging"

    def __init__(self, select: str = "random", nugget: Union[str, float] = "auto", offset_sd: float = 10.0):
        if select not in ("random", "greedy"):
            raise InputError(f"Kriging select must be 'random' or 'greedy', not {select!r}")
        if nugget not in ("auto", "loo") and not (isinstance(nugget, (int, float)) and nugget > 0):
            raise InputError(f"Kriging nugget must be 'auto', 'loo' or a positive fraction, not {nugget!r}")
        self.selection = select
        self.nugget = nugget
        self.offset_sd = float(offset_sd)
        if select == "greedy":
            self.name = "kriging_greedy"
        self._greedy_cache: Dict[Tuple, np.ndarray] = {}

    def fit(self, X, Y, devices, feature_names=()):
        Yc = _complete_cached(Y)
        m = Yc.shape[1]
        c = Yc.mean(0)
        A = Yc - c
        self.mean = c.mean() + A.mean(1)
        D = (A - A.mean(1, keepdims=True)) / math.sqrt(max(m - 1, 1))
        n = len(Yc)
        self.U = np.column_stack([D, np.full(n, self.offset_sd)])
        self.var = float(np.sum(D * D)) / n  # mean prior variance per arch (offset excluded)
        # Floor: training devices that span each other exactly would give sigma^2 = 0 and an
        # ill-conditioned solve.
        self.auto_sigma2 = max(_out_of_span_variance(A), 1e-6 * self.var, 1e-12)
        self.sigma2 = self.auto_sigma2 if self.nugget in ("auto", "loo") else self.nugget * self.var
        self._greedy_cache = {}
        return self

    def select(self, k, pool, rng):
        if self.selection == "random":
            return super().select(k, pool, rng)
        pool = np.asarray(pool)
        key = (int(k), len(pool), zlib.crc32(pool.astype(np.int64).tobytes()))
        got = self._greedy_cache.get(key)
        if got is None:
            got = self._greedy(int(k), pool)
            self._greedy_cache[key] = got
        return got.copy()

    def _greedy(self, k: int, pool: np.ndarray) -> np.ndarray:
        """Greedy A-optimal design in weight space: f = U w, w ~ N(0, I), noise sigma^2. Adding
        arch i cuts the summed latent variance tr(U S U^T) by v_i^T G v_i / (sigma^2 + u_i^T v_i)
        with v_i = S u_i, G = U^T U; S and the per-arch terms are updated in O(n r) per step."""
        U = self.U
        G = U.T @ U
        Up = U[pool]
        V = Up.copy()  # rows: S u_i with S = I
        W = V @ G
        chosen = []
        avail = np.ones(len(pool), dtype=bool)
        for _ in range(min(k, len(pool))):
            num = np.einsum("ij,ij->i", W, V)
            den = self.sigma2 + np.einsum("ij,ij->i", V, Up)
            gain = np.where(avail, num / den, -np.inf)
            i = int(np.argmax(gain))
            chosen.append(i)
            avail[i] = False
            v = V[i].copy()
            d = self.sigma2 + float(v @ Up[i])
            Vu = V @ Up[i]  # rows: u_j^T S u_i = (S u_j) . u_i
            V -= np.outer(Vu, v) / d
            W -= np.outer(Vu, v @ G) / d
        return pool[np.array(chosen, dtype=np.int64)]

    def adapt(self, idx, y_log):
        idx = np.asarray(idx)
        Us = self.U[idx]
        r = np.asarray(y_log, dtype=np.float64) - self.mean[idx]
        if self.nugget == "loo":
            # Posterior mean = ridge on U's rows with lambda = sigma^2 (prior w ~ N(0, I)): pick
            # sigma^2 by exact leave-one-out over the k points.
            _, self.w, self.sigma2_used = _ridge_loo(np.zeros((len(idx), 0)), Us, r,
                                                     lambdas=self.var * _NUGGETS, relative=False)
        else:
            self.sigma2_used = self.sigma2
            A = Us.T @ Us + self.sigma2 * np.eye(Us.shape[1])
            self.w = np.linalg.solve(A, Us.T @ r)
        return self

    def predict(self, idx):
        idx = np.asarray(idx)
        return self.mean[idx] + self.U[idx] @ self.w

    def describe(self):
        how = ("greedy reference archs minimising the summed posterior variance (deterministic)"
               if self.selection == "greedy" else "random archs")
        nug = {"loo": "nugget by leave-one-out on the k points",
               "auto": "nugget = median variance of a training device outside the span of the others"
               }.get(self.nugget) or f"nugget {self.nugget:g} x mean prior variance"
        return (f"kriging: GP posterior mean, prior from the training devices' centred profiles, {nug}; {how}")


class RidgeDevicesEncoding(RidgeDevices):
    """ridge over the training devices' columns and the standardised encoding together:
    a + b * mean profile + A.w + x.delta (w, delta penalised; lambda by leave-one-out)."""

    name = "ridge_dev_enc"

    def fit(self, X, Y, devices, feature_names=()):
        super().fit(X, Y, devices, feature_names)
        Xs = _standardise(X)
        self.Z = np.column_stack([self.A, Xs])  # both blocks unit-variance columns
        return self

    def describe(self):
        return ("ridge over training devices' log-latency columns and the standardised encoding together "
                "(a + b*mean + A.w + x.delta, w and delta penalised, lambda by cross-validation)")


class Ceiling(Method):
    """(e) the per-device ceiling: a baseline family fit on ``shots`` (10,000) measurements of the
    test device itself (capped at its pool), scored on the rest. Default family "ridge_dev_enc":
    ridge over the training devices' columns and the encoding together, which nests (b) and (c)
    and measured above each of (b), (c), (d) at 10,000 points on the 30 NB201 devices."""

    name = "ceiling"
    # 10,000 of NAS-Bench-201's 15,625 archs; on a smaller space the same share (FBNet: 3,200).
    max_pool_share = 0.64

    def __init__(self, family: str = "ridge_dev_enc", shots: int = 10000):
        families = {"ridge_enc": RidgeEncoding, "ridge_dev": RidgeDevices, "kriging": Kriging,
                    "ridge_dev_enc": RidgeDevicesEncoding}
        if family not in families:
            raise InputError(f"Ceiling family must be one of {', '.join(families)}, not {family!r}")
        self.family = family
        self.shots = int(shots)
        self.inner = families[family]()

    def fit(self, X, Y, devices, feature_names=()):
        self.inner.fit(X, Y, devices, feature_names)
        return self

    def adapt(self, idx, y_log):
        self.inner.adapt(idx, y_log)
        return self

    def predict(self, idx):
        return self.inner.predict(idx)

    def describe(self):
        return (f"per-device ceiling: {self.family} fit on {self.shots} measurements of the test device "
                f"(at most {self.max_pool_share:.0%} of its archs); {self.inner.describe()}")


BASELINES: Dict[str, Callable[[], Method]] = {
    "flops": FlopsLinear,
    "ridge_enc": RidgeEncoding,
    "ridge_dev": RidgeDevices,
    "kriging": Kriging,
    "kriging_greedy": lambda: Kriging(select="greedy"),
    "ceiling": Ceiling,
}




def all_methods() -> Dict[str, Callable[[], Method]]:
    """The predictor's own methods (maple_edge_lite.fewshot) first, then the baselines."""
    from .fewshot import METHODS
    from .mlp import METHODS as MLP_METHODS

    return {**METHODS, **MLP_METHODS, **BASELINES}


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

        return se.encode, se.feature_names, f"maple_edge_lite._simple_encode ({why})"
    if encoder == "simple":
        from . import _simple_encode as se

        return se.encode, se.feature_names, "maple_edge_lite._simple_encode"
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


def _run_split(table, X, names, factories, train, test, shots, seeds, protocol, timings):
    """-> {method: {device: [per-seed dict]}}; fits every method once on ``train``."""
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
                r["n_query"] = int(len(q))
                r["shots"] = int(len(idx))
                runs.append(r)
            per_dev[dev] = runs
        timings[mname]["adapt_predict_s"] += time.perf_counter() - t0
    return out


def _summarise_device(runs: List[dict]) -> dict:
    d = {}
    for mt in METRICS:
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
             primary: Optional[str] = None) -> dict:
    """Fit every method once on ``train_devices``, then for each test device and seed select
    ``shots`` archs, adapt, and score on the query archs. Returns the JSON-ready report:

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
    raw = _run_split(table, X, names, factories, train, test, shots, seeds, protocol, timings)
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
        for mt in METRICS:
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
                  group_metadata: bool = True) -> dict:
    """Leave one group of near-duplicate devices out at a time: train on every other device of
    ``devices`` (default: all of the table), test each device of the group. Groups default to
    ``device_groups`` of those devices.

    Report: as ``evaluate``, plus "groups" (the list of groups) at the top and per method
    "groups": [{"devices": [...], metric: mean over the group's devices}] aligned with it; a
    method's "mean" is the group mean (each group weighted once), "<metric>_std" its std over
    seeds; "paired": the primary method (default: the first) minus each other method, over groups:
    mean difference and its standard error."""
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
        part = _run_split(table, X, names, factories, train, g, shots, seeds, protocol, timings)
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
            for mt in METRICS:
                gb[mt] = float(np.mean([devs[d][mt] for d in g]))
            gblocks.append(gb)
        mean = {}
        for mt in METRICS:
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

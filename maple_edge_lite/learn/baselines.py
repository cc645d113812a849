"""The baselines the predictor is measured against: FLOPs fit, ridge on the encoding, ridge over
the training devices' latencies, kriging, and the per-device ceiling."""

from __future__ import annotations

import math
import zlib
from typing import Callable, Dict, Tuple, Union

import numpy as np

from .._errors import InputError
from ._numerics import _complete_cached, _ridge_loo, _standardise
from .data import GROUP_THRESHOLD
from .methods import Method

# Kriging nugget candidates, as fractions of the mean prior variance per arch.
_NUGGETS = np.logspace(-3, 1, 17)


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
#: The harness's registry reads this (``methods.PROVIDERS``).
METHODS = BASELINES

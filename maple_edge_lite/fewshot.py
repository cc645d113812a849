"""Few-shot latency prediction on an unseen device: a Bayesian linear model in normalised
*latency* space over the architecture's structural indicators, with its prior learned from the
training devices, and reference architectures chosen to be most informative under that prior.

Why this shape (measured on the shared NAS-Bench-201 tables, see the README):

* latency is close to additive in the ops a network executes, in milliseconds rather than in
  log-milliseconds: a per-device least-squares fit on edge one-hots reaches ±10% accuracy 0.81
  in latency space against 0.73 in log space;
* runtimes differ in whether they execute dead branches of a cell (the HELP devices do, most
  mobile converters prune them): adding the live-edge one-hots lifts that fit to 0.87;
* a new device's coefficients are a draw from the population of devices: the prior mean and
  covariance of the (scale-normalised) coefficients come from the training devices, so ten
  measurements only have to place the device within that population (closed form, a p x p solve).

Model: for a device with latency scale s, ``latency(a) = s * A(a) @ c`` with ``A = [1, binary
structural features]`` and ``c ~ N(mu, S)``; measurement error relative, ``N(0, (r * z)^2)`` on
``z = latency / s``. ``s`` is re-estimated from the posterior a few times.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ._errors import InputError
from .evaluate import Method, _complete_cached


def structural_columns(X: np.ndarray, names: Sequence[str] = ()) -> np.ndarray:
    """Indices of the binary (0/1) features: one-hots, live-edge one-hots, connectivity."""
    X = np.asarray(X)
    binary = np.all((X == 0) | (X == 1), axis=0) & (X.max(0) > 0)
    return np.flatnonzero(binary)


class BayesLinear(Method):
    """bayes_linear: Bayesian linear model in normalised latency space over the structural
    one-hots, prior from the training devices, greedy A-optimal reference architectures."""

    name = "bayes_linear"

    def __init__(self, select: str = "greedy", noise: float = 0.08, shrink: float = 0.3, design_noise: float = 0.1,
                 candidates: Optional[int] = 1000, scale_iters: int = 3):
        if select not in ("greedy", "random"):
            raise InputError(f"BayesLinear select must be 'greedy' or 'random', not {select!r}")
        self.selection = select
        if select == "random":
            self.name = "bayes_linear_random"
        self.noise = float(noise)
        self.shrink = float(shrink)
        self.design_noise = float(design_noise)
        self.candidates = candidates
        self.scale_iters = int(scale_iters)

    def fit(self, X, Y, devices, feature_names=()):
        cols = structural_columns(X, feature_names)
        if len(cols) == 0:
            raise InputError("bayes_linear needs binary structural features (one-hots) in the encoding")
        self.cols = cols
        A = np.column_stack([np.ones(len(X)), np.asarray(X, dtype=np.float64)[:, cols]])
        lat = np.exp(_complete_cached(Y))  # [n, m] latency, missing entries completed
        Z = lat / lat.mean(0)  # each training device on its own scale
        C, *_ = np.linalg.lstsq(A, Z, rcond=None)  # [p, m] coefficients per device
        mu = C.mean(1)
        S = np.cov(C) if C.shape[1] > 1 else np.zeros((len(mu), len(mu)))
        p = len(mu)
        # Shrink towards an isotropic prior: ~25 devices cannot estimate a p x p covariance, and
        # a new device may vary along directions no training device did.
        S = S + self.shrink * (np.trace(S) / p + 1e-12) * np.eye(p)
        Lc = np.linalg.cholesky(S)
        self.A = A
        self.m = A @ mu  # prior mean of z for every arch
        self.L = A @ Lc  # prior covariance of z: L L^T
        return self

    # --- which architectures to measure -------------------------------------------------------
    def select(self, k, pool, rng):
        """Greedy over a random subset of ``candidates`` archs of the pool. Over the whole pool the
        design favours the most extreme architectures (high leverage, least typical latency);
        a random candidate set keeps it among typical ones (+0.04 ±10% accuracy here)."""
        pool = np.asarray(pool)
        if self.selection == "random":
            return super().select(k, pool, rng)
        if self.candidates and len(pool) > self.candidates:
            pool = rng.choice(pool, self.candidates, replace=False)
        return self._greedy(int(k), pool)

    def _greedy(self, k: int, pool: np.ndarray) -> np.ndarray:
        """A-optimal design: each step adds the arch that most reduces the prior-predictive
        variance of z summed over every arch (weights w ~ N(0, I), z = m + L w, noise s2)."""
        L = self.L
        s2 = self.design_noise**2
        G = L.T @ L
        Up = L[pool]
        V = Up.copy()
        W = V @ G
        avail = np.ones(len(pool), dtype=bool)
        chosen = []
        for _ in range(min(k, len(pool))):
            gain = np.einsum("ij,ij->i", W, V) / (s2 + np.einsum("ij,ij->i", V, Up))
            gain[~avail] = -np.inf
            i = int(np.argmax(gain))
            chosen.append(i)
            avail[i] = False
            v = V[i].copy()
            d = s2 + float(v @ Up[i])
            Vu = V @ Up[i]
            V -= np.outer(Vu, v) / d
            W -= np.outer(Vu, v @ G) / d
        return pool[np.asarray(chosen, dtype=np.int64)]

    # --- adaptation: closed form --------------------------------------------------------------
    def adapt(self, idx, y_log):
        idx = np.asarray(idx)
        y = np.exp(np.asarray(y_log, dtype=np.float64))
        m, Lk = self.m[idx], self.L[idx]
        s = float(np.median(y / np.maximum(m, 1e-12)))
        for _ in range(self.scale_iters):
            z = y / s
            K = Lk @ Lk.T + np.diag((self.noise * z) ** 2)
            self.w = Lk.T @ np.linalg.solve(K, z - m)
            f = m + Lk @ self.w
            s *= float(np.median(z / np.maximum(f, 1e-12)))
        self.s = s
        self.floor = 1e-3 * float(y.min())
        return self

    def predict(self, idx):
        idx = np.asarray(idx)
        f = (self.m[idx] + self.L[idx] @ self.w) * self.s
        return np.log(np.maximum(f, self.floor))

    def coefficients(self) -> Tuple[np.ndarray, np.ndarray]:
        """The adapted model as (columns of X, weights in ms): latency = w[0] + X[:, cols] @ w[1:]."""
        Lc = np.linalg.lstsq(self.A, self.L, rcond=None)[0]
        mu = np.linalg.lstsq(self.A, self.m, rcond=None)[0]
        return self.cols, (mu + Lc @ self.w) * self.s

    def describe(self):
        how = (f"greedy A-optimal reference archs among {self.candidates or 'all'} random candidates"
               if self.selection == "greedy" else "random archs")
        return (f"bayes_linear: Bayesian linear model in normalised latency space over "
                f"{len(self.cols)} structural one-hots, prior from the training devices "
                f"(shrink {self.shrink:g}), relative noise {self.noise:g}; {how}")


METHODS = {
    "bayes_linear": BayesLinear,
    "bayes_linear_random": lambda: BayesLinear(select="random"),
}


def pack_adapted(method: BayesLinear, path, *, feature_names: Sequence[str], X: np.ndarray, search_space=None,
                 metadata=None):
    """Write the adapted predictor as a device-specialised ``.melw`` (architecture features in,
    milliseconds out): one linear layer over the standardised features, identity output.
    ``X``: the encoded architectures of the space (sets the standardisation and calibration).
    Returns the quantized model (its ``predict`` is what the core will compute)."""
    from .format import pack

    X = np.asarray(X, dtype=np.float64)
    cols, w = method.coefficients()
    W = np.zeros(X.shape[1])
    W[cols] = w[1:]
    # Scale every feature into [-1, 1] without centring: binary features stay exactly 0 or 1,
    # which the int8 input then represents exactly (1 -> 127); centred, standardised one-hots
    # of rare ops reach |z| > 10 and coarsen every input's quantization step.
    mean = np.zeros(X.shape[1])
    std = np.maximum(np.abs(X).max(0), 1.0)
    # The layer sees z = (x - mean) / std: fold the scaling into its weights and bias.
    layer = ((W * std)[None, :], np.array([w[0] + W @ mean]))
    return pack([layer], path, feature_names=list(feature_names), input_mean=mean, input_std=std, output="identity",
                calibration=X, search_space=search_space, metadata=metadata)

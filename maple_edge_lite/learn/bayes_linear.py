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

from .._errors import InputError
from ._numerics import _complete_cached, student_t_weights
from .methods import Method


def structural_columns(X: np.ndarray, names: Sequence[str] = ()) -> np.ndarray:
    """Indices of the binary (0/1) features: one-hots, live-edge one-hots, connectivity."""
    X = np.asarray(X)
    binary = np.all((X == 0) | (X == 1), axis=0) & (X.max(0) > 0)
    return np.flatnonzero(binary)


def tie_groups(names: Sequence[str]) -> np.ndarray:
    """One label per design column: columns naming the same op at different positions of the
    network share a label (``edge3:nor_conv_3x3``, ``live_edge3:...``, ``exec_edge3:...`` and
    ``layer7:k3_e6`` with the position removed); every other column (the intercept, counts,
    connectivity) gets -1, tied to nothing."""
    import re

    keys, out = {}, []
    for n in names:
        m = re.fullmatch(r"((?:live_|exec_)?edge|layer)\d+:(.+)", str(n))
        out.append(keys.setdefault((m.group(1), m.group(2)), len(keys)) if m else -1)
    return np.asarray(out, dtype=np.int64)


def device_coefficients(A: np.ndarray, Y_log) -> np.ndarray:
    """[p, m]: each device's least-squares coefficients of ``latency ~ A @ c`` on its own scale
    (latency divided by the device's mean over the archs); ``Y_log`` [n, m] log ms, missing
    entries completed first. What BayesLinear's prior is learned from."""
    lat = np.exp(_complete_cached(Y_log))
    C, *_ = np.linalg.lstsq(A, lat / lat.mean(0), rcond=None)
    return C


class BayesLinear(Method):
    """bayes_linear: Bayesian linear model in normalised latency space over the structural
    one-hots, prior from the training devices, greedy A-optimal reference architectures."""

    name = "bayes_linear"

    def __init__(self, select: str = "greedy", noise: float = 0.08, shrink: float = 0.3, design_noise: float = 0.1,
                 candidates: Optional[int] = 1000, scale_iters: int = 3, descriptor_ridge="auto",
                 shrink_tie: float = 0.95, noise_df: Optional[float] = 8.0, noise_df_iters: int = 8):
        if select not in ("greedy", "random"):
            raise InputError(f"BayesLinear select must be 'greedy' or 'random', not {select!r}")
        self.selection = select
        if select == "random":
            self.name = "bayes_linear_random"
        self.noise = float(noise)
        self.shrink = float(shrink)
        self.design_noise = float(design_noise)
        self.candidates = candidates
        if isinstance(scale_iters, bool) or not isinstance(scale_iters, (int, np.integer)) or scale_iters < 0:
            raise InputError(f"BayesLinear scale_iters must be an integer >= 0, got {scale_iters!r}")
        self.scale_iters = int(scale_iters)
        if descriptor_ridge != "auto" and not (isinstance(descriptor_ridge, (int, float)) and descriptor_ridge > 0):
            raise InputError(f"descriptor_ridge must be 'auto' or a positive number, not {descriptor_ridge!r}")
        self.descriptor_ridge = descriptor_ridge
        if not (isinstance(shrink_tie, (int, float)) and 0.0 <= shrink_tie < 1.0):
            raise InputError(f"BayesLinear shrink_tie must be in [0, 1), not {shrink_tie!r}")
        self.shrink_tie = float(shrink_tie)
        if noise_df is not None and not (isinstance(noise_df, (int, float)) and not isinstance(noise_df, bool)
                                         and np.isfinite(noise_df) and noise_df > 0):
            raise InputError(f"BayesLinear noise_df must be None (Gaussian noise) or a number > 0, not {noise_df!r}")
        if isinstance(noise_df_iters, bool) or not isinstance(noise_df_iters, (int, np.integer)) or noise_df_iters < 1:
            raise InputError(f"BayesLinear noise_df_iters must be an integer >= 1, got {noise_df_iters!r}")
        self.noise_df = None if noise_df is None else float(noise_df)
        self.noise_df_iters = int(noise_df_iters)
        self._tie_groups = None

    def fit(self, X, Y, devices, feature_names=(), descriptors=None, descriptor_names=(), groups=None):
        """``descriptors``: optional [m, q] array of the training devices' descriptor features
        (e.g. counters normalised by operator latency), aligned with Y's columns; NaN marks a
        missing (masked) feature, so devices with and without a PMU train one model. The prior
        mean of a device's coefficients then depends on its descriptor; how strongly is chosen by
        cross-validation over the training devices, leaving out one of ``groups`` at a time (one
        label per device: e.g. the runtime of each hardware-runtime pair; default: each device)."""
        cols = structural_columns(X, feature_names)
        if len(cols) == 0:
            raise InputError("bayes_linear needs binary structural features (one-hots) in the encoding")
        self.cols = cols
        names = list(feature_names)
        self._tie_groups = tie_groups(["1"] + [names[c] if c < len(names) else f"f{c}" for c in cols])
        A = np.column_stack([np.ones(len(X)), np.asarray(X, dtype=np.float64)[:, cols]])
        C = device_coefficients(A, Y)  # [p, m] coefficients per device
        mu = C.mean(1)
        self._set_prior(cols, mu, self._shrunk_factor(C - mu[:, None]), A)
        self.desc = None
        if descriptors is not None:
            self._fit_descriptor(C - mu[:, None], np.asarray(descriptors, dtype=np.float64), descriptor_names, A,
                                 ridge=self.descriptor_ridge, groups=groups)
        return self

    def _shrunk_factor(self, R):
        """Cholesky factor of the covariance of the coefficient deviations R [p, m], shrunk towards
        a target: ~25 devices cannot estimate a p x p covariance, and a new device may vary along
        directions no training device did. The target has the mean variance on its diagonal and
        correlation ``shrink_tie`` between the coefficients of one op at different positions
        (``edge0:nor_conv_3x3`` ... ``edge5:nor_conv_3x3``; ``layer3:k5_e6`` ... : see
        :func:`tie_groups`): a new device that runs an op faster does so wherever the op sits, while
        an isotropic target lets ten measurements move each position's cost on its own. Measured
        (``benchmarks/fewshot_ablation.py``: development devices, leave one group out, 10
        measurements, 5 seeds), ±10% accuracy / Spearman: tie 0 (isotropic) 0.667 / 0.942, 0.5
        0.681 / 0.947, 0.8 0.702 / 0.950, 0.95 0.710 / 0.949, 0.99 0.714 / 0.948; FBNet (the README's
        command with ``--space fbnet``) 0.891 -> 0.898."""
        p, m = R.shape
        S = R @ R.T / max(m - 1, 1)
        T = np.eye(p)
        g = self._tie_groups
        if self.shrink_tie > 0 and g is not None and len(g) == p:
            same = (g[:, None] == g[None, :]) & (g[:, None] >= 0)
            T = np.where(same, self.shrink_tie, 0.0)
            np.fill_diagonal(T, 1.0)
        S = S + self.shrink * (np.trace(S) / p + 1e-12) * T
        return np.linalg.cholesky(S)

    #: Ridge strengths tried by the descriptor regression's inner cross-validation (features are
    #: standardised, so the scale is the number of devices' worth of evidence a feature needs).
    DESCRIPTOR_RIDGES = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)

    def _fit_descriptor(self, Cc, D, names, A, ridge="auto", groups=None):
        """Ridge regression of the training devices' coefficient deviations ``Cc`` [p, m] on their
        standardised descriptors. ``ridge="auto"`` picks the strength by leave-one-device-out
        cross-validation over the training devices that carry a descriptor (``groups``: one label
        per device, e.g. its runtime; a device's whole group is left out with it), scored by the error
        of the held-out device's predicted latencies (mean square over the archs of ``A``), paired
        against predicting no deviation (the unconditioned prior); when no strength beats it by three
        standard errors, the descriptor is kept but given no weight (``B = 0``): with a handful of
        training devices and tens of features a regression fits noise (benchmarks/cross_runtime.py:
        with a fixed ridge of 1, every descriptor variant was worse than none)."""
        m = Cc.shape[1]
        if D.ndim != 2 or D.shape[0] != m:
            raise InputError(f"descriptors must be [{m} training devices, q features] (got {list(D.shape)})")
        seen = np.isfinite(D)
        mean = np.array([D[seen[:, j], j].mean() if seen[:, j].any() else 0.0 for j in range(D.shape[1])])
        std = np.array([D[seen[:, j], j].std() if seen[:, j].sum() > 1 else 1.0 for j in range(D.shape[1])])
        std[~(std > 0)] = 1.0
        Phi = np.where(seen, (np.nan_to_num(D) - mean) / std, 0.0)  # masked -> the mean
        G = A.T @ A / len(A)  # ||A d||^2 / n = d' G d: latency error of a coefficient error d

        def solve(C, P, r):
            return C @ P @ np.linalg.inv(P.T @ P + r * np.eye(P.shape[1]))

        cv = None
        if ridge == "auto":
            groups = np.asarray(list(range(m)) if groups is None else list(groups), dtype=object)
            if len(groups) != m:
                raise InputError(f"groups must name one group per training device ({m}), got {len(groups)}")
            held = [i for i in range(m) if seen[i].any()]
            cv = {"ridge": None, "loo_mse": {}, "held_out_devices": len(held),
                  "held_out_groups": len({groups[i] for i in held})}
            if len(held) >= 3 and cv["held_out_groups"] >= 3:
                def loo(r):  # the held-out devices' latency errors (mean square over the archs)
                    err = []
                    for i in held:
                        keep = groups != groups[i]  # its whole group out: siblings would flatter
                        Ck = Cc[:, keep] - Cc[:, keep].mean(1, keepdims=True)
                        d = Cc[:, i] - Cc[:, keep].mean(1)
                        if r is not None:
                            d = d - solve(Ck, Phi[keep], r) @ Phi[i]
                        err.append(float(d @ G @ d))
                    return np.array(err)

                base = loo(None)
                cv["loo_mse"]["none"] = round(float(base.mean()), 8)
                best, gain = None, 0.0
                for r in self.DESCRIPTOR_RIDGES:
                    diff = base - loo(r)  # paired over held-out devices: > 0 where r helps
                    cv["loo_mse"][str(r)] = round(float(base.mean() - diff.mean()), 8)
                    se = diff.std(ddof=1) / np.sqrt(len(diff))
                    # Taking the best of several strengths on a dozen devices finds spurious gains:
                    # a strength must beat the unconditioned prior by three standard errors (the
                    # folds share all but one device: the paired differences are not independent).
                    if diff.mean() > max(gain, 3.0 * se):
                        best, gain = r, float(diff.mean())
                cv["ridge"] = ridge = best
            else:
                ridge = None
        if ridge is None:
            B = np.zeros((Cc.shape[0], Phi.shape[1]))
        else:
            B = solve(Cc, Phi, float(ridge))
        Lres = self._shrunk_factor(Cc - B @ Phi.T)
        self.desc = {"names": list(names) or [f"d{j}" for j in range(D.shape[1])], "mean": mean, "std": std,
                     "B": B, "Lc": Lres, "ridge": ridge, "cv": cv}
        self.L_res = A @ Lres

    def _descriptor_prior(self, descriptor):
        """(mu, Lc, L over the archs) for a device: conditioned on its descriptor when the model
        has one and at least one feature is present, else the unconditioned prior."""
        if descriptor is None or self.desc is None:
            return self.mu, self.Lc, self.L
        d = np.asarray(descriptor, dtype=np.float64)
        if d.shape != self.desc["mean"].shape:
            raise InputError(f"descriptor has {d.size} features, the model was trained with "
                             f"{self.desc['mean'].size} ({', '.join(self.desc['names'][:5])}, ...)")
        seen = np.isfinite(d)
        if not seen.any():
            return self.mu, self.Lc, self.L
        phi = np.where(seen, (np.nan_to_num(d) - self.desc["mean"]) / self.desc["std"], 0.0)
        mu = self.mu + self.desc["B"] @ phi
        if seen.all():
            return mu, self.desc["Lc"], self.L_res
        # Masked features are marginalised, not assumed average: their standardised values have
        # unit variance, so their effect B[:, masked] adds to the prior covariance.
        Bm = self.desc["B"][:, ~seen]
        Lc = np.linalg.cholesky(self.desc["Lc"] @ self.desc["Lc"].T + Bm @ Bm.T)
        return mu, Lc, self.A @ Lc

    def _set_prior(self, cols, mu, Lc, A=None):
        """The prior over the coefficients c of ``z = [1, x[cols]] @ c``: mean mu, covariance Lc Lc^T.
        ``A``: the design rows of the architectures ``select``/``adapt``/``predict`` index."""
        self.cols = np.asarray(cols, dtype=np.int64)
        self.mu = np.asarray(mu, dtype=np.float64)
        self.Lc = np.asarray(Lc, dtype=np.float64)
        if A is not None:
            self.A = A
            self.m = A @ self.mu  # prior mean of z for every arch
            self.L = A @ self.Lc  # prior covariance of z: L L^T

    def design(self, X) -> np.ndarray:
        """Design rows [1, x[cols]] for raw encoded architectures X [n, d]."""
        X = np.asarray(X, dtype=np.float64)
        return np.column_stack([np.ones(len(X)), X[:, self.cols]])

    # --- a trained prior as plain data (stored in a base model's metadata) ------------------
    def to_prior(self, feature_names: Sequence[str]) -> dict:
        names = list(feature_names)
        return {
            "method": "bayes_linear",
            "version": 1,
            "columns": [names[i] for i in self.cols],
            "mu": self.mu.tolist(),
            "prior_factor": self.Lc.tolist(),
            "noise": self.noise,
            "shrink": self.shrink,
            "shrink_tie": self.shrink_tie,
            "design_noise": self.design_noise,
            "candidates": self.candidates,
            "scale_iters": self.scale_iters,
            "descriptor": None if self.desc is None else {
                "names": self.desc["names"], "mean": self.desc["mean"].tolist(), "std": self.desc["std"].tolist(),
                "B": self.desc["B"].tolist(), "prior_factor": self.desc["Lc"].tolist(),
                "ridge": self.desc.get("ridge")},
        }

    @classmethod
    def from_prior(cls, prior: dict, feature_names: Sequence[str]) -> "BayesLinear":
        if prior.get("method") != "bayes_linear" or prior.get("version") != 1:
            raise InputError(f"not a bayes_linear v1 prior (method {prior.get('method')!r}, "
                             f"version {prior.get('version')!r}); upgrade maple_edge_lite")
        names = list(feature_names)
        missing = [c for c in prior["columns"] if c not in names]
        if missing:
            raise InputError(f"the prior uses features the encoder does not compute: {', '.join(missing[:5])}")
        m = cls(noise=prior["noise"], shrink=prior["shrink"], design_noise=prior["design_noise"],
                candidates=prior["candidates"], scale_iters=prior["scale_iters"],
                shrink_tie=prior.get("shrink_tie", 0.0))  # priors written before it: isotropic
        mu = np.asarray(prior["mu"], dtype=np.float64)
        Lc = np.asarray(prior["prior_factor"], dtype=np.float64)
        p = len(prior["columns"]) + 1
        if mu.shape != (p,) or Lc.shape != (p, p) or not (np.isfinite(mu).all() and np.isfinite(Lc).all()):
            raise InputError("corrupt bayes_linear prior: mu / prior_factor shapes or values are wrong")
        m._set_prior([names.index(c) for c in prior["columns"]], mu, Lc)
        m.desc = None
        d = prior.get("descriptor")
        if d:
            m.desc = {"names": list(d["names"]), "mean": np.asarray(d["mean"], float),
                      "std": np.asarray(d["std"], float), "B": np.asarray(d["B"], float),
                      "Lc": np.asarray(d["prior_factor"], float)}
            q = len(m.desc["names"])
            if m.desc["B"].shape != (p, q) or m.desc["Lc"].shape != (p, p) or m.desc["mean"].shape != (q,):
                raise InputError("corrupt bayes_linear prior: descriptor block shapes are wrong")
        return m

    def use_archs(self, X) -> "BayesLinear":
        """Index ``select``/``adapt``/``predict`` by the rows of X (encoded architectures)."""
        self._set_prior(self.cols, self.mu, self.Lc, self.design(X))
        if self.desc is not None:
            self.L_res = self.A @ self.desc["Lc"]
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
    def adapt(self, idx, y_log, descriptor=None):
        """Posterior from measurements of the archs ``idx`` (log ms); ``descriptor``: the
        device's descriptor features (NaN = masked), if the model was trained with them.

        The measurement noise is Student-t with ``noise_df`` degrees of freedom (scale ``noise``,
        relative), fitted by EM: each measurement's weight ``u = (df + 1) / (df + r^2)``, r its
        residual in units of the noise, re-estimated ``noise_df_iters`` times; ``weights`` holds
        them after ``adapt`` (1 about nominal, near 0 for a measurement the model treats as an
        outlier). ``noise_df=None``: Gaussian noise (every weight 1). Why (docs/predict.md): about 4%
        of the cells of the Eagle phone tables are 50-110% off any additive model, and one such
        measurement drags every coefficient; development devices, leave one group out
        (``benchmarks/fewshot_ablation.py --shots 10,100``), ±10% accuracy Gaussian 0.710 / 0.771 at
        k = 10 / 100, df 8 0.716 / 0.810 (df 2, 4, 16 within 0.003)."""
        idx = np.asarray(idx)
        y = np.exp(np.asarray(y_log, dtype=np.float64))
        mu, Lc, L = self._descriptor_prior(descriptor)
        m, Lk = self.A[idx] @ mu, L[idx]
        sd = np.sqrt(np.einsum("ij,ij->i", Lk, Lk))
        if np.median(m / np.maximum(sd, 1e-300)) >= 1.0:
            s = float(np.median(y / np.maximum(m, 1e-12)))
        else:
            # The prior's mean is within its own spread of zero at most measured archs (a degenerate
            # descriptor regression): dividing by it made z vanish. Match magnitudes instead.
            s = float(np.median(y) / max(float(np.median(np.hypot(m, sd))), 1e-300))
        u = np.ones(len(y))  # each measurement's noise precision relative to the nominal one
        df = self.noise_df
        # The posterior is computed at least once; ``scale_iters`` counts the re-estimations of
        # the scale s that follow each posterior (0: s stays the measurements' median ratio to
        # the prior mean); with Student-t noise the weights u are re-estimated too (EM).
        iters = max(self.scale_iters, 1) if df is None else max(self.scale_iters, self.noise_df_iters)
        for i in range(iters):
            z = y / s
            K = Lk @ Lk.T + np.diag((self.noise * z) ** 2 / u)
            w = Lk.T @ np.linalg.solve(K, z - m)
            f = m + Lk @ w
            if df is not None and i + 1 < iters:
                u = student_t_weights((z - f) / (self.noise * z), df)
            if i < self.scale_iters:
                s *= float(np.median(z / np.maximum(f, 1e-12)))
        self.weights = u
        self.coef = (mu + Lc @ w) * s  # latency (ms) = [1, x[cols]] @ coef
        self.floor = 1e-3 * float(y.min())
        self._interval_factor(Lc, Lk, y / s, s, m, u)
        return self

    #: Device models give a central interval of this level around each prediction ...
    interval_level = 0.9
    #: ... from the posterior of the coefficients plus this relative noise (measurement noise and
    #: what a linear model misses), both scaled by the device's calibration below. 0.05 until the
    #: tied shrinkage target (``shrink_tie``), whose posterior is narrower: with it, coverage of the
    #: 90% interval on the development devices (leave one group out, k = 10, 5 seeds) is 0.78 at
    #: 0.05, 0.850 at 0.08, 0.870 at 0.09, 0.887 at 0.1; on the 13 pool pairs (10 random
    #: measurements, benchmarks/pool_shots.py) 0.829, 0.872, 0.883 (0.09), 0.894.
    interval_noise = 0.09

    #: The interval's scale is calibrated per device from the measurements themselves: the
    #: leave-one-out standardised residuals of the k measurements under the model (closed form)
    #: give kappa^2 = mean(e^2), shrunk towards 1 as if from ``interval_calibration_prior``
    #: further points with e^2 = 1. Chosen among 0, 1, 3, 10 so that the 90% interval's coverage
    #: is inside 0.85-0.95 both on the development devices (leave one group out, k = 10: 0.830,
    #: 0.855, 0.873, 0.890) and on this VM's 200 measured cells under ONNX Runtime (0.935, 0.950,
    #: 0.965, 0.985); without the calibration: 0.886 and 0.995.
    interval_calibration_prior = 1.0

    def _interval_factor(self, Lc, Lk, z, s, m, u=None):
        """``post_factor`` F [p, r]: the posterior covariance of the coefficients in ms, F F^T
        (weights w ~ N(0, I) a priori, c = s (mu + Lc w); measurements of z with relative noise),
        truncated to the directions holding 99.9% of its trace, and scaled by this device's
        calibration ``interval_scale`` (also applied to ``interval_noise`` via ``noise_scaled``)."""
        R = (self.noise * z) ** 2 / (1.0 if u is None else u)
        kappa2 = 1.0
        if len(z) >= 3:
            K = Lk @ Lk.T + np.diag(R)
            Ki = np.linalg.inv(K)
            e = (Ki @ (z - m)) / np.sqrt(np.diag(Ki))  # leave-one-out standardised residuals
            n0 = self.interval_calibration_prior
            kappa2 = float((np.sum(e * e) + n0) / (len(z) + n0))
        self.interval_scale = float(np.sqrt(kappa2))
        # The posterior covariance of w, (I + B^T B)^-1, B = Lk / sqrt(R), factored by B^T B's eigen-
        # decomposition: positive definite however ill-conditioned B is (a Cholesky of it was not).
        B = Lk / np.sqrt(R)[:, None]
        lam_b, V = np.linalg.eigh(B.T @ B)
        F = self.interval_scale * s * Lc @ (V / np.sqrt(1.0 + np.maximum(lam_b, 0.0)))
        # The principal directions of F F^T by its eigen-decomposition (p x p): LAPACK's SVD of F
        # fails to converge on some well-posed but ill-conditioned factors.
        lam, U = np.linalg.eigh(F @ F.T)
        lam, U = np.maximum(lam[::-1], 0.0), U[:, ::-1]
        keep = int(np.searchsorted(np.cumsum(lam) / max(float(lam.sum()), 1e-300), 0.999) + 1)
        self.post_factor = U[:, :keep] * np.sqrt(lam[:keep])
        self.noise_scaled = self.interval_noise * self.interval_scale

    def add_speed_sd(self, sd: float) -> "BayesLinear":
        """After ``adapt``: widen the interval by a relative sd ``sd`` common to every prediction,
        in quadrature with the noise: how far the device's speed is expected to have moved by the
        time a prediction is measured (``_cache.recheck`` estimates it from the device's rechecks)."""
        sd = float(sd)
        if not (np.isfinite(sd) and sd >= 0):
            raise InputError(f"a speed sd must be a finite number >= 0, got {sd!r}")
        self.noise_scaled = float(np.hypot(self.noise_scaled, sd))
        return self

    def _predictive(self, A):
        """(ms, sd) after ``adapt`` for design rows A: the prediction and the relative sd of the
        log-normal predictive distribution the interval describes."""
        ms = np.maximum(A @ self.coef, self.floor)
        sd = np.sqrt(np.sum((A @ self.post_factor) ** 2, axis=1) + (self.noise_scaled * ms) ** 2) / ms
        return ms, sd

    def share_within(self, X, tol: float = 0.10) -> float:
        """After ``adapt``: the share of the architectures X expected within ``tol`` of the
        prediction under the model's predictive distribution (log-normal, the interval's sd)."""
        from statistics import NormalDist

        _, sd = self._predictive(self.design(X))
        nd = NormalDist()
        return float(np.mean([2 * nd.cdf(np.log1p(tol) / max(v, 1e-12)) - 1 for v in sd]))

    def interval(self, idx):
        """(lo, hi) ms: the central ``interval_level`` interval around the prediction for the archs
        ``idx`` (what the device model's INTERVAL section computes, in float64)."""
        return self._interval(self.A[np.asarray(idx)])

    def interval_features(self, X):
        """As :meth:`interval`, for encoded architectures X [n, d] (like :meth:`predict_features`)."""
        return self._interval(self.design(X))

    def _interval(self, A):
        from statistics import NormalDist

        ms, sd = self._predictive(A)
        w = np.minimum(NormalDist().inv_cdf((1 + self.interval_level) / 2) * sd, 40.0)  # the core's cap
        return ms * np.exp(-w), ms * np.exp(w)

    def predict(self, idx):
        return np.log(np.maximum(self.A[np.asarray(idx)] @ self.coef, self.floor))

    def predict_features(self, X) -> np.ndarray:
        """Milliseconds for encoded architectures X [n, d], after ``adapt``."""
        return np.maximum(self.design(X) @ self.coef, self.floor)

    def coefficients(self) -> Tuple[np.ndarray, np.ndarray]:
        """The adapted model as (columns of X, weights in ms): latency = w[0] + X[:, cols] @ w[1:]."""
        return self.cols, self.coef

    def describe(self):
        how = (f"greedy A-optimal reference archs among {self.candidates or 'all'} random candidates"
               if self.selection == "greedy" else "random archs")
        return (f"bayes_linear: Bayesian linear model in normalised latency space over "
                f"{len(self.cols)} structural one-hots, prior from the training devices "
                f"(shrink {self.shrink:g} towards a target tying each op's positions at {self.shrink_tie:g}), relative noise {self.noise:g}; {how}")


class BayesLinearInt8(BayesLinear):
    """bayes_linear_int8: the same predictor, scored through the int8 device model the core runs
    (adapt, pack with pack_adapted, predict with the C++ core): what a board gets."""

    name = "bayes_linear_int8"

    def fit(self, X, Y, devices, feature_names=()):
        super().fit(X, Y, devices, feature_names)
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.names = list(feature_names) or [f"f{i}" for i in range(self.X.shape[1])]
        self.absmax = feature_absmax(self.X)
        return self

    def adapt(self, idx, y_log):
        import os
        import tempfile

        from .._model import Model

        super().adapt(idx, y_log)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "device.melw")
            pack_adapted(self, path, feature_names=self.names, absmax=self.absmax)
            self.device = Model.load(path)
        return self

    def predict(self, idx):
        # Exactly what the core returns: the device model floors its own output (a linear model
        # can go below zero for an architecture far from every measured one), so ms > 0.
        ms = self.device.predict(np.ascontiguousarray(self.X[np.asarray(idx)])).astype(np.float64)
        return np.log(ms)

    def interval(self, idx):
        _, lo, hi = self.device.predict_interval(np.ascontiguousarray(self.X[np.asarray(idx)]))
        return lo.astype(np.float64), hi.astype(np.float64)


METHODS = {
    "bayes_linear": BayesLinear,
    "bayes_linear_random": lambda: BayesLinear(select="random"),
    "bayes_linear_int8": BayesLinearInt8,
}


def feature_absmax(X) -> np.ndarray:
    """Per-feature scale for packing: max |x| over the space (at least 1)."""
    return np.maximum(np.abs(np.asarray(X, dtype=np.float64)).max(0), 1.0)


def _pack_linear(path, coef, cols, *, feature_names, absmax, search_space, metadata, floor=None, interval=None):
    """One linear layer over the features scaled into [-1, 1] (not centred: binary features stay
    exactly 0 or 1, which the int8 input represents exactly as 0 or 127; centred, standardised
    one-hots of rare ops reach |z| > 10 and coarsen every input's quantization step). ``floor``
    (ms > 0): the model's output never goes below it (transform ``floor``, format 2)."""
    from ..format import pack

    absmax = np.asarray(absmax, dtype=np.float64)
    W = np.zeros(len(absmax))
    W[cols] = coef[1:]
    layer = ((W * absmax)[None, :], np.array([coef[0]]))
    return pack([layer], path, feature_names=list(feature_names), input_std=absmax,
                output="identity" if floor is None else "floor", output_floor=floor, interval=interval,
                calibration=absmax[None, :], search_space=search_space, metadata=metadata)


def pack_adapted(method: BayesLinear, path, *, feature_names: Sequence[str], absmax, search_space=None,
                 metadata=None):
    """Write the adapted predictor as a device-specialised ``.melw``: architecture features in,
    milliseconds out, never below the method's floor (a thousandth of the fastest measurement).
    Returns the quantized model (its ``predict`` is what the core computes)."""
    cols, coef = method.coefficients()
    interval = {"level": method.interval_level, "index": cols, "factor": method.post_factor,
                "noise": method.noise_scaled}
    return _pack_linear(path, coef, cols, feature_names=feature_names, absmax=absmax, search_space=search_space,
                        metadata=metadata, floor=method.floor, interval=interval)


def pack_base(method: BayesLinear, path, *, feature_names: Sequence[str], absmax, search_space=None,
              provenance=None, reference_archs: Optional[Sequence[str]] = None,
              descriptor_feature_schema: Optional[str] = None):
    """Write a trained prior as a base ``.melw``: its layer predicts the average training device
    on a unit latency scale, and its metadata holds the prior that ``adapt_base`` needs.

    ``reference_archs``: the architectures to measure on a new device (e.g. ``method.select``
    over the whole space), stored as ``metadata["fewshot"]["reference_archs"]`` (where an mlp base
    keeps its own). ``descriptor_feature_schema``: the descriptor feature schema the prior's
    descriptor features follow (default ``profile.FEATURE_SCHEMA``), stored as
    ``metadata["descriptor_feature_schema"]``; ``adapt_base`` refuses a descriptor of another one.

    The prior's covariance factors are stored as float32 little-endian base64 (the lower triangle
    of the Cholesky factor): as JSON lists an FBNet prior (201 x 201) would be ~800 KB."""
    import base64

    from .. import encode as enc

    def packed(a, tril=False):
        a = np.asarray(a, dtype=np.float64)
        flat = a[np.tril_indices(a.shape[0])] if tril else a.ravel()
        return {"shape": list(a.shape), "tril": bool(tril),
                "f32le_base64": base64.b64encode(np.ascontiguousarray(flat, dtype="<f4").tobytes()).decode("ascii")}

    prior = method.to_prior(feature_names)
    prior["prior_factor"] = packed(method.Lc, tril=True)
    if prior.get("descriptor"):
        prior["descriptor"]["B"] = packed(method.desc["B"])
        prior["descriptor"]["prior_factor"] = packed(method.desc["Lc"], tril=True)
    if reference_archs is not None:
        refs = [str(a) for a in reference_archs]
        if len(set(refs)) != len(refs) or not refs:
            raise InputError("reference_archs must be distinct architecture strings (at least one)")
        if search_space is not None:
            enc.encode(search_space, refs)  # InputError naming a bad string
        prior["reference_archs"] = refs
    if descriptor_feature_schema is None:
        from ..device.profile import FEATURE_SCHEMA as descriptor_feature_schema
    meta = {"model_kind": "base", "fewshot": prior, "descriptor_feature_schema": str(descriptor_feature_schema),
            "feature_absmax": [float(v) for v in absmax], "provenance": provenance or {}}
    return _pack_linear(path, method.mu, method.cols, feature_names=feature_names, absmax=absmax,
                        search_space=search_space, metadata=meta)


"""Numerics the few-shot methods share: completing a training latency matrix, ridge regression
with exact leave-one-out (or GCV) regularisation, standardising."""

from __future__ import annotations

import zlib
from typing import Dict, Optional, Tuple

import numpy as np

from .._errors import InputError

_LAMBDAS = np.logspace(-4, 4, 33)
# Above this many points the regularisation is chosen by generalised cross-validation (GCV)
# instead of exact leave-one-out: same answer in the limit, and O(rank) per candidate.
_GCV_ABOVE = 500


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


def student_t_weights(r, df: float) -> np.ndarray:
    """EM weights of residuals ``r`` (in units of the noise scale) under Student-t noise with ``df``
    degrees of freedom: (df + 1) / (df + r^2), about 1 near the fit and towards 0 far from it
    (``BayesLinear.adapt``'s measurement weights)."""
    r = np.asarray(r, dtype=np.float64)
    return (df + 1.0) / (df + r * r)

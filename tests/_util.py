"""Helpers shared by the tests (import with `from _util import ...`)."""

from __future__ import annotations

import numpy as np

import maple_edge_lite as mel


def random_layers(dims, seed=0, bias_scale=0.1):
    """He-initialised float MLP with the given widths, e.g. [64, 256, 256, 1]."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((o, i)) * np.sqrt(2.0 / i), rng.standard_normal(o) * bias_scale)
        for i, o in zip(dims[:-1], dims[1:])
    ]


def feature_names(d):
    return [f"f{i}" for i in range(d)]


def kernels_here():
    """Every int8 kernel this build has and this CPU runs."""
    return [k for k in ("scalar", "avx2", "avx512vnni", "neon") if mel._core.kernel_available(k)]

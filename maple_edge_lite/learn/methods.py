"""The few-shot method interface, and the registry the evaluation harness finds methods through.

Every method is scored the same way on the same samples:

    fit(X, Y, devices, feature_names)   once per training split
        X  float32 [n_archs, d]  features of every arch of the table (from the encoder)
        Y  float64 [n_archs, n_train_devices]  LOG latency (natural log of ms), NaN where missing
    select(k, pool, rng) -> idx          which archs to measure on the new device (row positions)
    adapt(idx, y_log)                    the k measurements, log ms
    predict(idx_query) -> log ms

A new method subclasses :class:`Method` in a module of its own that defines ``METHODS`` (name ->
zero-argument factory) and adds that module to :data:`PROVIDERS`. Methods never import the
harness (``maple_edge_lite.learn.evaluate``); the harness imports only this module, which loads
the providers by name when asked: no import circle.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, Optional, Sequence

import numpy as np

__all__ = ["Method", "PROVIDERS", "all_methods"]

#: Modules whose ``METHODS`` make up the known methods, in report order: the predictor's own
#: methods first, then the baselines.
PROVIDERS = (
    "maple_edge_lite.learn.bayes_linear",
    "maple_edge_lite.learn.mlp",
    "maple_edge_lite.learn.baselines",
)


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



def all_methods() -> Dict[str, Callable[[], Method]]:
    """Every known method, name -> zero-argument factory: the providers' ``METHODS`` in order."""
    out: Dict[str, Callable[[], Method]] = {}
    for mod in PROVIDERS:
        out.update(importlib.import_module(mod).METHODS)
    return out

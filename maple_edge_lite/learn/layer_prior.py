"""The layer-cost prior for FBNet: an FBNet network's latency on a device from the device's
layer cost model (``learn.layer_cost``, fitted to the layer suite and calibrated on five zoo
networks; it never sees an FBNet network), used to centre the fbnet base's prior in ``adapt``
as the operator sum centres the NAS-Bench-201 one.

The layer cost model is a sum over a network's layers, and an FBNet network is a sum over its 22
searchable layers plus a fixed stem and header, so the model gives the one-hot coefficients
directly: the cost of op ``o`` at position ``i`` is what the model charges the rows that layer
``i`` of the network becomes (``builders.fbnet_onnx`` names them ``stage{s}.layer{i}.*``), read
off one network per op with that op everywhere (nine networks); the intercept is what it charges
the stem, the header and the per-inference cost.

Measured on this VM (ONNX Runtime, one thread; 40 random FBNet networks measured by
``maple-edge-lite validate --space fbnet --sample 40 --seed 21``, then ``benchmarks/layer_vs_cells.py
--entry``): the layer cost model alone is 15-19% slow (±10% 0.08-0.13) but ranks them better than
the adapted fbnet predictor (Spearman 0.953 vs 0.903); the fbnet base adapted from the same ten
reference networks scores ±10% 0.825 centred on the training devices' mean and 1.00 (MAPE 2.5%)
centred on the layer cost model."""

from __future__ import annotations

import re
from typing import Sequence, Tuple

import numpy as np

def fbnet_layer_costs(core) -> Tuple[float, np.ndarray]:
    """``(fixed_ms, costs [22, 9])`` of FBNet networks under the layer cost model ``core`` (a
    ``Model`` of kind ``layer_cost``): the stem, header and per-inference cost, and each op's cost
    at each position (order ``builders.fbnet.OPS``; an identity ``skip`` costs 0). Builds nine
    FBNet networks (about 15 s with the onnx package); ``adapt_base(..., layer_costs=)`` takes the
    result."""
    from ..device import builders, layers
    from ..device.builders.fbnet import OPS, STAGE_LAYERS

    n = sum(STAGE_LAYERS)
    empty = np.zeros((0, len(layers.ARRAY_COLUMNS)), dtype=np.float32)
    base = float(core.predict_layers(empty, interval=False)[0])  # the per-inference cost
    costs = np.zeros((n, len(OPS)))
    fixed = None
    for j, op in enumerate(OPS):
        table = layers.from_onnx(builders.fbnet_onnx("|".join([op] * n)))
        rows = table.array()
        pos = np.array([_position(r.name) for r in table.rows])
        for i in range(n):
            sel = rows[pos == i]
            if len(sel):
                costs[i, j] = float(core.predict_layers(sel, interval=False)[0]) - base
        if fixed is None:  # the stem, the header and the per-inference cost: the same in all nine
            fixed = float(core.predict_layers(rows[pos < 0], interval=False)[0])
    return fixed, costs


def _position(name: str) -> int:
    m = re.match(r"stage\d+\.layer(\d+)\.", name)
    return int(m.group(1)) if m else -1


def _use_layer_prior(m, layer_costs, names: Sequence[str], space_X: np.ndarray) -> bool:
    """Centre the fbnet prior of ``m`` (a ``BayesLinear`` over the fbnet encoder's ``names``) on
    ``layer_costs`` (:func:`fbnet_layer_costs`), scale-normalised like the training devices (mean 1 over the
    encoded architectures ``space_X``), keeping the learned covariance. False (nothing changed)
    when a one-hot the costs need is not among the prior's columns."""
    from ..device.builders.fbnet import OPS

    fixed, costs = layer_costs
    costs = np.asarray(costs, dtype=np.float64)
    if costs.shape != (22, len(OPS)) or not (np.isfinite(costs).all() and np.isfinite(fixed)):
        from .._errors import InputError

        raise InputError(f"layer_costs must be (fixed ms, [22, {len(OPS)}] ms), finite")
    names = list(names)
    pos = {int(c): k + 1 for k, c in enumerate(m.cols)}
    mu = np.zeros(len(m.cols) + 1)
    mu[0] = fixed
    for i in range(costs.shape[0]):
        for j, op in enumerate(OPS):
            col = f"layer{i}:{op}"
            if col not in names or names.index(col) not in pos:
                return False
            mu[pos[names.index(col)]] = costs[i, j]
    mean = float(np.mean(m.design(space_X) @ mu))
    if not (np.isfinite(mean) and mean > 0):
        return False
    m._set_prior(m.cols, mu / mean, m.Lc, m.A)
    return True


_SPACE: dict = {}


def _fbnet_space() -> np.ndarray:
    """Encoded features of 2,000 random FBNet architectures (cached): what the prior's mean is
    normalised over (the fbnet base's training devices are scale-normalised over the tables' 5,000)."""
    X = _SPACE.get("X")
    if X is None:
        from .. import encode as enc
        from ..device.measure import sample_fbnet

        X = _SPACE["X"] = enc.encode("fbnet", sample_fbnet(2000, seed=0))
    return X


__all__ = ["fbnet_layer_costs"]

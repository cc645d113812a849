"""The operator-sum prior: a NAS-Bench-201 network's latency as the sum of its operators'
latencies from a device's descriptor (a rule about how a runtime executes a network), used to
centre a device's prior in ``adapt``."""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

NB201_STAGES = ("16x32x32", "32x16x16", "64x8x8")
NB201_CELLS_PER_STAGE = 5
_NB201_SPACE_MEAN: dict = {}


def operator_sum_prior(lat_ms: dict, feature_names: Sequence[str], repeat: int = 8):
    """The NAS-Bench-201 network latency implied by a descriptor's operator latencies, as
    ``(intercept_ms, weights_ms over feature_names)`` of ``latency ~ intercept + x @ weights``:
    stem, both reduction blocks and head once; each executed cell edge (``exec_edge{e}:{op}``
    one-hots, schema 2) costs its op's per-op latency at every stage times the cells per stage;
    each addition a cell computes (``exec_adds``, schema 3: a node summing k executed edges adds
    k - 1 times) one element-wise pass, the ``none`` chain's per-op latency (a ``Mul`` over the
    same tensor), when the profile has it; each pool a runtime need not compute twice
    (``tensor_shared_avg_pools``, schema 4: pools on one tensor, a node whose one input is a
    skip_connect being its source's tensor; ``shared_avg_pools`` by source node on schema 3) minus
    one pool edge (:func:`op_network_ms` of ``avg_pool_3x3``); a disconnected
    cell (``cell_connected`` 0), whose zero the builders export as ``x * 0``, one pass (the
    zero-fed direction prices the ``Mul`` of a zero node whose edges run; the output of a cell
    whose node 3 has no input at all is one too, and the all-``none`` cell is among the base's
    references: unpriced, its ``Mul`` went into the intercept and every small network paid it;
    ``benchmarks/fresh_runs.py`` 0.870 -> 0.884 ±10%, cells under 0.3 ms 0.695 -> 0.737).
    ``lat_ms``: ``{"nor_conv_3x3@16x32x32": ms, ...}`` for chains of ``repeat`` ops (the
    profile's suite); the skip_connect chain, which runtimes reduce to a call, is subtracted as the
    per-call cost; a runtime that rejects that identity-only model (ncnn's converter does) is taken
    to have none. Returns None when another operator is missing (e.g. a runtime rejected it) or
    ``feature_names`` lacks the executed-edge one-hots or ``exec_adds``.

    Before ``ADAPT_VERSION`` 9 every executed edge into node 2 or 3 paid the pass instead (no
    schema had ``exec_adds``): it prices a node with a single input as if it summed, and the
    cells made of such nodes are the smallest networks, which it over-predicted (by 14-37% the
    identity cells of 0.088 ms here, where no op runs at all). With ``exec_adds`` as a column of
    its own (:func:`_use_operator_sum_prior`): ``benchmarks/fresh_runs.py`` ±10% 0.871 -> 0.889,
    cells under 0.3 ms 0.662 -> 0.732 (see docs/predict.md for the other tables)."""
    names = list(feature_names)
    need = [f"{o}@{st}" for st in NB201_STAGES for o in ("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")]
    fixed = ["stem@16x32x32", "reduction@16x32x32", "reduction@32x16x16", "head@64x8x8"]
    vals = {k: lat_ms.get(k) for k in need + fixed}
    if any(v is None or not np.isfinite(v) or v <= 0 for v in vals.values()) or "exec_adds" not in names:
        return None
    # skip_connect's chain less itself is nothing (and none at all without a chain)
    op_ms = {o: op_network_ms(lat_ms, o, repeat) for o in ("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")}
    op_ms["skip_connect"] = 0.0
    w = np.zeros(len(names))
    for e in range(6):
        for o in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"):
            col = f"exec_edge{e}:{o}"
            if col not in names:
                return None
            w[names.index(col)] = op_ms[o]
    pas = _elementwise_pass_ms(lat_ms, repeat)
    w[names.index("exec_adds")] = pas
    # The pools computed once: grouped by tensor (schema 4) when the encoder has it, else by node.
    shared = next((n for n in ("tensor_shared_avg_pools", "shared_avg_pools") if n in names), None)
    if shared is not None:
        w[names.index(shared)] = -op_ms["avg_pool_3x3"]
    c0 = float(sum(vals[k] for k in fixed))
    if "cell_connected" in names:
        # A disconnected cell's zero is exported as x * 0: one pass more than a connected cell.
        c0 += pas
        w[names.index("cell_connected")] = -pas
    return c0, w


def descriptor_operator_latencies(doc: dict) -> Tuple[dict, int]:
    """``({op name: ms}, repeat)`` from a descriptor document (``maple_edge_lite.device.profile``): its
    valued ``lat:`` features and the suite's chain length, as :func:`operator_sum_prior` takes them."""
    lat = {f["name"][4:]: f.get("value") for f in doc.get("features") or ()
           if isinstance(f, dict) and str(f.get("name", "")).startswith("lat:")
           and f.get("state") in ("counted", "scaled") and f.get("value") is not None}
    return lat, int((doc.get("suite") or {}).get("repeat") or 8)


def _nb201_space():
    """Encoded features of all 15,625 NAS-Bench-201 cells (cached)."""
    X = _NB201_SPACE_MEAN.get("X")
    if X is None:
        import itertools

        from .. import encode as enc

        ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
        archs = [f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"
                 for o in itertools.product(ops, repeat=6)]
        X = _NB201_SPACE_MEAN["X"] = enc.encode("nb201", archs)
    return X


#: Prior sd (in units of the space's mean latency) of the cost of an edge executed on a zero
#: node, beyond its op's profiled cost: see :func:`zero_fed_direction`. Chosen on this VM's
#: measured tables (the 13 pool pairs, 10 random measurements x 5 draws; the 200-cell ONNX
#: Runtime table from the main job's 10 reference archs) among 0.05, 0.075, 0.1, 0.2.
ZERO_FED_SD = 0.075


def zero_fed_direction(names: Sequence[str], cols) -> np.ndarray:
    """Over the design ``[1, x[cols]]``: +1 on ``exec_edge{e}:{op}``, -1 on ``live_edge{e}:{op}``,
    i.e. the number of executed edges whose input is a zero node (a node fed only by ``none``
    edges, exported as ``x * 0``). What such an edge costs is runtime specific: ONNX Runtime's
    NCHWc layout pass cannot carry its blocked layout through the ``Mul``, so a cell with a
    zero node gets layout reorders and loses its Conv+Add+ReLU fusions (measured here: about
    4x the profiled ``Mul``; 1.4x with graph optimisations off; OpenVINO and MNN nearly 0).
    Empty when the model does not use both one-hot families."""
    names = list(names)
    pos = {int(c): k + 1 for k, c in enumerate(cols)}
    d = np.zeros(len(pos) + 1)
    for e in range(6):
        for o in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"):
            a, b = f"exec_edge{e}:{o}", f"live_edge{e}:{o}"
            if a not in names or b not in names or names.index(a) not in pos or names.index(b) not in pos:
                return np.zeros(0)
            d[pos[names.index(a)]] += 1.0
            d[pos[names.index(b)]] -= 1.0
    return d


#: Prior sd of what a shared-pool count (``tensor_shared_avg_pools``; ``shared_avg_pools`` on schema 3) is worth, in units of the profiled cost of one
#: ``avg_pool_3x3`` edge (its prior mean: minus one such edge, the pool a runtime eliminating common
#: subexpressions does not compute twice). A runtime either merges the two pools or not (about -1
#: or 0: least-squares coefficients on this VM's 200-cell tables -1.05 ONNX Runtime, -0.61 OpenVINO,
#: -0.79 ncnn, +0.03 MNN): one sd covers both. Chosen on this VM's committed 200-cell tables with each runtime's main-job
#: entry (``benchmarks/shots.py``), ±10% at k = 10 for sd 0.5 / 1: ONNX Runtime 0.915 / 0.915
#: (cells under 0.3 ms 0.756 / 0.778; without the column 0.860 and 0.578), OpenVINO 0.575 / 0.555
#: (0.400), MNN 0.810 / 0.795 (0.645; MNN merges nothing: least-squares coefficient ~0), ncnn
#: 0.803 / 0.778 (0.596).
SHARED_POOL_SD = 1.0


def op_network_ms(lat_ms: dict, op: str, repeat: int):
    """What one cell position carrying ``op`` costs over the network's 15 cells: at each stage the
    per-op cost of the profile's ``op`` chain less its skip_connect chain (the per-call cost; none
    when the runtime rejected that chain), times the cells per stage; None when a stage's ``op``
    chain is missing or not a positive number."""
    per_op = []
    for st in NB201_STAGES:
        v, s = lat_ms.get(f"{op}@{st}"), lat_ms.get(f"skip_connect@{st}")
        if v is None or not np.isfinite(v) or v <= 0:
            return None
        s = float(s) if s is not None and np.isfinite(s) and s > 0 else 0.0
        per_op.append(max(float(v) - s, 0.0) / repeat)
    return NB201_CELLS_PER_STAGE * sum(per_op)


def _elementwise_pass_ms(lat_ms: dict, repeat: int) -> float:
    """One element-wise pass per cell, summed over the network's cells: the profile's ``none``
    chain (``Mul(x, 0)``) per op less the per-call cost (:func:`op_network_ms`); 0 without it. A
    zero node's ``Mul`` costs this, and so does each addition a cell computes."""
    ms = op_network_ms(lat_ms, "none", repeat)
    return 0.0 if ms is None else ms


#: How far the prior's learned spread is kept around the operator sum: its covariance factor is
#: scaled by this. The training devices' covariance says how far one device's costs are from the
#: population's mean; the operator sum is this device's own costs measured op by op, so what is
#: left is how a network differs from its ops in chains. Measured on the 13 pool pairs
#: (``benchmarks/pool_shots.py``, 10 random measurements; the tuning set), ±10% for scales 1 /
#: 0.7 / 0.5 / 0.35 / 0.25 / 0.15 / 0.1: 0.612 / 0.634 / 0.650 / 0.666 / 0.673 / 0.673 / 0.663
#: (coverage 0.884 -> 0.880 at 0.5: the per-device interval calibration follows), OpenVINO the
#: one runtime it hurts (it fuses across ops: 1t 0.742 -> 0.714 at 0.25). Checked on the
#: README's new-user run with predictor 1.1.0 (its ten references re-adapted, scored on its
#: `validate --sample 100 --seed 31` cells): 0.81 / 0.80 / 0.69 at 1 / 0.5 / 0.25, cells under 0.3 ms 0.56 / 0.78 /
#: 0.89: the pool's optimum trusts one profile's chains more than a fresh profile bears, so 0.5.
OPERATOR_SUM_PRIOR_SCALE = 0.5


#: Prior sd of what one ``exec_adds`` addition is worth, in units of the profiled element-wise
#: pass that is its mean: runtimes fuse an addition into the convolution before it (ONNX Runtime's
#: NCHWc Conv+Sum) or run it alone. ``benchmarks/fresh_runs.py`` for 0.5 / 1 / 2 / 3: ±10% 0.889 /
#: 0.889 / 0.888 / 0.887, cells under 0.3 ms 0.727 / 0.729 / 0.715 / 0.713, coverage 0.853 / 0.853 /
#: 0.853 / 0.852: flat; 1, as ``SHARED_POOL_SD``.
ADD_SD = 1.0

#: The count columns the operator sum may price and the base does not have, with the name of the
#: constant holding their prior sd (in units of their operator-sum weight; read at each call); a
#: column :func:`operator_sum_prior` leaves at 0 (``shared_avg_pools`` once the encoder counts pools
#: by tensor, ``exec_adds`` without a ``none`` chain) is not added.
COUNT_COLUMNS = (("exec_adds", "ADD_SD"), ("shared_avg_pools", "SHARED_POOL_SD"),
                 ("tensor_shared_avg_pools", "SHARED_POOL_SD"))


def _use_operator_sum_prior(m, lat_ms: dict, names: Sequence[str], repeat: int, v8_rule: bool = False) -> bool:
    """Centre the prior of ``m`` on the operator-sum model of a device's descriptor
    (:func:`operator_sum_prior`, scale-normalised like the training devices: mean 1 over the
    space), keeping the learned covariance scaled by :data:`OPERATOR_SUM_PRIOR_SCALE`, plus one
    direction for edges executed on a zero node (:func:`zero_fed_direction`; mean: the profiled
    ``Mul``; sd :data:`ZERO_FED_SD`), which the operator sum does not price and which the
    training devices do not show; and the count columns the operator sum prices
    (:data:`COUNT_COLUMNS`: ``exec_adds`` and the shared pools, ``tensor_shared_avg_pools`` or on
    schema 3 ``shared_avg_pools``: the one :func:`operator_sum_prior` weights), which the base's design does not
    have: each is added to the design with its operator-sum weight as its mean and a direction
    of its own (sd :data:`ADD_SD`, :data:`SHARED_POOL_SD` of that weight). The design then has
    more columns, and ``m.use_archs`` must be called again before adapting. ``v8_rule=True``: the
    operator sum of ``ADAPT_VERSION`` 8 (predictor 1.1.0's device models), for comparisons and for
    a blend with the base's design (``benchmarks/cross_runtime.py``): the base's design, the
    additions priced per executed edge into node 2 or 3, shared pools and disconnected cells not
    at all. On this VM under ONNX Runtime, 50
    random architectures: ±10% accuracy 0.86 with the operator sum against 0.58 with the training
    devices' mean (docs/predict.md). The zero-fed direction, main job's 10 reference archs, 200
    measured cells (benchmarks/data/device): ±10% 0.755 -> 0.830; the 13 pool pairs, 10 random
    measurements: mean 0.597 -> 0.606, ONNX Runtime 1 thread 0.784 -> 0.856."""
    got = operator_sum_prior(lat_ms, names, repeat)
    if got is None:
        return False
    c0, w = got
    names = list(names)
    cols = [int(c) for c in m.cols]
    extra = sorted((names.index(n), globals()[sd]) for n, sd in COUNT_COLUMNS  # in feature order, as packed
                   if not v8_rule and n in names and names.index(n) not in cols and w[names.index(n)] != 0)
    pas = w[names.index("exec_adds")]  # one element-wise pass (_elementwise_pass_ms)
    cc = names.index("cell_connected") if "cell_connected" in names else None
    if cc is not None and (v8_rule or cc not in cols):  # a disconnected cell not priced: every cell as connected
        c0 += w[cc]
        w[cc] = 0.0
    if v8_rule:  # the base's design: each executed edge into node 2 or 3 pays the pass
        for e in range(1, 6):
            for o in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"):
                w[names.index(f"exec_edge{e}:{o}")] += pas
    cols_x = np.asarray(cols + [k for k, _ in extra], dtype=np.int64)
    X = _nb201_space()
    mean = float(np.mean(c0 + X[:, cols_x] @ w[cols_x]))
    if not mean > 0:
        return False
    mu = np.concatenate([[c0], w[cols_x]]) / mean
    p, r = len(cols) + 1, m.Lc.shape[1]
    Lc = np.zeros((len(mu), r + len(extra)))
    Lc[:p, :r] = OPERATOR_SUM_PRIOR_SCALE * m.Lc
    for j, (k, sd) in enumerate(extra):
        Lc[p + j, r + j] = sd * abs(w[k]) / mean
    d = zero_fed_direction(names, cols)
    if d.size:
        d = np.concatenate([d, np.zeros(len(extra))])
        mu = mu + d * (pas / mean)
        Lc = np.column_stack([Lc, ZERO_FED_SD * d])
    m._set_prior(cols_x, mu, Lc, m.A if not extra else None)
    return True

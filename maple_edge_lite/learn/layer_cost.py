"""The layer cost model: any CNN's latency on a device from its layer table
(``maple_edge_lite.device.layers``), fitted to the device's layer suite
(``maple_edge_lite.device.builders.layer_suite``) and calibrated with a few whole networks.

**Features.** The layers fall into cost classes (:data:`CLASSES`); a layer costs
``a + b * MACs + c * bytes`` with its class's coefficients, so a network costs
``c0 + features @ w`` where ``features`` are, per class, the number of layers, their MACs
(millions), the bytes they read (inputs and weights) and the bytes they write (MB)
(:func:`network_features`), and ``c0`` is the
runtime's per-inference cost. Linear in the features, so the device model is a linear ``.melw``
like the cell predictor's.

**Spill** (:func:`spill_mbytes`): one more term, the MB each layer moves beyond the device's
per-core cache (``device.host.core_cache``: the L2 here, 2 MiB), priced per MB and calibrated as a
part of its own; off (``cache_bytes`` None) where sysfs tells no cache. On this VM's zoo
(``benchmarks/zoo.py score`` against ``score --no-spill``): ±10% ONNX Runtime 0.69 -> 0.81,
OpenVINO f32 0.56 -> 0.62, MNN 0.44 -> 0.46, OpenVINO bf16 0.24 -> 0.16, 38-49 us per MB
(layer suite version 2).

**Alignment** (:func:`unaligned_mmacs`): per conv-like class (:data:`ALIGN_CLASSES`), the MACs of
layers whose output channels, or input channels above :data:`ALIGN_MIN_CIN`, are not a multiple of
:data:`ALIGN` (8), priced per MMAC in their class's part: ONNX Runtime runs such convolutions off
its blocked NCHWc layout. Fitted after the classes (``from_suite(class_fit=)``: the classes on the
suite without its unaligned entries, then the term alone on what they leave), so aligned networks
predict as before; fitted jointly it cost ONNX Runtime's zoo 0.78 -> 0.62. Suite, zoo and
``benchmarks/zoo.py``'s unaligned set measured in one sitting (``score --data
benchmarks/data/zoo-same-sitting`` against ``--no-align``): the unaligned set's MAPE ONNX Runtime
48% -> 22%, OpenVINO f32 15% -> 8.5%, MNN 37% -> 37%; the zoo's ±10% 0.78 -> 0.81, 0.75 -> 0.75,
0.56 -> 0.56. Carried by the ``.melw`` as LAYER_COST scheme 3 (format 5) when not all 0.

**Fit** (:func:`fit_suite`): non-negative least squares in relative error over the suite's
measured entries (each entry a short chain of one kind of layer at one shape, or two chained
blocks of a real network): every class coefficient is >= 0, so no layer ever predicts a negative
cost. Entries can weigh differently (the suite's whole blocks weigh
``layer_suite.BLOCK_WEIGHT``: they show what the runtime fuses across layers, as networks do).

**Calibration** (:class:`LayerCostModel`. ``calibrate``): a whole network is not its layers timed
one kind at a time (caches warm across layers, runtimes fuse across them), so a few measured
networks correct the suite's fit: a multiplier per class and one for the per-inference cost,
Gaussian around 1, sharing one scale (sd :data:`SCALE_SD`) plus a deviation per class (sd
:data:`CLASS_SD`), fitted in closed form to the measured networks in relative error. Zero
networks: the suite's fit as it is. Measured on this VM's zoo (``benchmarks/zoo.py score
--class-sd S``, leave one family out, five networks of other families): per-class deviations did
not transfer across families (±10% ONNX Runtime 0.81 / 0.80 / 0.78 and OpenVINO f32 0.62 / 0.61 /
0.52 with CLASS_SD 0 / 0.03 / 0.1), so CLASS_SD is 0: one scale. The noise is Student-t
(:data:`NOISE_DF`, fitted by EM): a calibration network the suite misprices weighs less than the
rest instead of moving the scale of every prediction. The posterior gives the interval
(:meth:`interval`).

This is one cohesive module: the features, the fit, the model and the packer that checks its
per-layer form against those features change together (the spill and the alignment terms each
touched all four), so they stay in one file past the usual 600 lines."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .._errors import InputError

#: Cost classes: (name, layer-table kinds). Kinds not listed (none today) fall into "other".
CLASSES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("conv", ("conv", "deconv")),
    ("pointwise", ("pointwise",)),
    ("depthwise", ("depthwise",)),
    ("grouped", ("grouped",)),
    ("gemm", ("gemm", "matmul")),
    ("pool", ("maxpool", "avgpool")),
    ("globalpool", ("globalpool", "reduce")),
    ("eltwise", ("add", "mul", "elementwise", "batchnorm", "norm", "relu", "clip")),
    ("activation", ("hardswish", "hardsigmoid", "sigmoid", "swish", "other_activation", "softmax")),
    ("fused_exp", ()),
    ("memory", ("concat", "transpose", "pad", "copy", "resize")),
    ("other", ("other",)),
)
QUANTITIES = ("n", "mmacs", "mbytes_in", "mbytes_out")
#: Activations a layer table fuses into the layer before them that runtimes may run as a pass of
#: their own (ONNX Runtime fuses Relu/Clip into its convolutions, not x * sigmoid(x) or hardswish),
#: and the class that pass costs in: one more layer of that class reading and writing the layer's
#: output. The exponential ones (SiLU, sigmoid) have a class of their own, ``fused_exp``, no kind's:
#: fused into a convolution they cost what the suite's blocks that hold them (EfficientNet's MBConv,
#: squeeze-excite) show, not what a chain of them alone does. OpenVINO computes them in the
#: convolution's epilogue at about half a standalone pass's cost per element, 4-5x a hardswish's;
#: priced as a hardswish pass, EfficientNet came out 22-24% low under OpenVINO f32 (docs/layers.md).
FUSED_PASS: Dict[str, str] = {"hardswish": "activation", "hardsigmoid": "activation", "leakyrelu": "activation",
                              "sigmoid": "fused_exp", "swish": "fused_exp"}
_PASS_CLASS: Dict[str, int] = {a: [c for c, _ in CLASSES].index(c) for a, c in FUSED_PASS.items()}
#: Feature schema of the layer cost model (versioned with the names below and how they are
#: computed; 1, never released, lacked the pass of a fused SiLU/hardswish; 3 adds
#: :data:`SPILL_FEATURE` after them for a model fitted with a cache size; 4 adds
#: :data:`ALIGN_FEATURES` before it for a model fitted with a channel alignment; 5 prices the pass
#: of a fused SiLU/sigmoid in a class of its own, ``fused_exp`` (:data:`FUSED_PASS`); 6 adds
#: :data:`CHANNEL_FEATURE` as the last of :data:`ALIGN_FEATURES`).
FEATURE_SCHEMA = 6
FEATURE_NAMES: Tuple[str, ...] = tuple(f"{c}:{q}" for c, _ in CLASSES for q in QUANTITIES)
#: The feature after :data:`FEATURE_NAMES` (and :data:`ALIGN_FEATURES`) of a model with a spill term:
#: :func:`spill_mbytes`.
SPILL_FEATURE = "spill:mbytes"
#: The classes whose layers a runtime's blocked layout takes only at aligned channel counts
#: (:func:`unaligned_mmacs`), and the features of a model with the alignment term: per class, the
#: MMACs of its unaligned layers, after :data:`FEATURE_NAMES`.
ALIGN_CLASSES: Tuple[str, ...] = ("conv", "pointwise", "depthwise", "grouped")
#: The channel term, beside the alignment term (a model with one has the other): the thousands of
#: output channels of depthwise layers whose channel count is not a multiple of
#: :data:`DW_CHANNEL_ALIGN`, priced per channel in the depthwise part. ONNX Runtime's depthwise
#: kernel off its blocked layout takes channels four at a time: probed alone at 24x24, 0.41 us per
#: channel at 64-72 and 76 channels, 1.37 at 74 and 78, which a cost per MMAC cannot follow (a
#: 614-channel layer at 6x6 ran 3.7x the per-MMAC term's price, a 19-channel one at 96x96 0.9x).
CHANNEL_FEATURE = "depthwise:unaligned_kchannels"
DW_CHANNEL_ALIGN = 4
ALIGN_FEATURES: Tuple[str, ...] = tuple(f"{c}:unaligned_mmacs" for c in ALIGN_CLASSES) + (CHANNEL_FEATURE,)
#: The index in :data:`CLASSES` of each class of :data:`ALIGN_CLASSES`.
_ALIGN_CLASS_INDEX: Tuple[int, ...] = tuple([c for c, _ in CLASSES].index(c) for c in ALIGN_CLASSES)
#: The index in :data:`CLASSES` of the class the channel term prices in.
_DW_CLASS = [c for c, _ in CLASSES].index("depthwise")
#: The channel alignment a model is fitted with by default (ONNX Runtime's NCHWc block on AVX2 and
#: AVX-512 machines is 8 or 16 floats; every count that is a multiple of 16 is one of 8) and the
#: input channels at or below which a layer's input is not counted (an image stem: 3 channels,
#: which every layout takes).
ALIGN = 8
ALIGN_MIN_CIN = 4
#: Calibration prior: the multipliers share one scale (sd SCALE_SD: how far whole networks are
#: from their layers timed alone on this device) and each deviates from it a little (CLASS_SD).
SCALE_SD = 0.3
CLASS_SD = 0.0
#: Least relative noise of a network in calibration and in the interval (how far a whole network
#: is from what its layers say, beyond what the suite fit shows); a device's model uses the larger
#: of this and the robust sd (1.4826 MAD) of its suite fit's log errors (the RMS, dominated by a
#: few entries no network resembles, gave 0.98-1.00 coverage). Chosen on the zoo's 90% interval
#: coverage (``benchmarks/zoo.py score``, leave one family out): ONNX Runtime, whose suite fits
#: itself to < 5%, 0.80 / 0.88 / 0.96 / 0.99 at 0.05 / 0.08 / 0.1 / 0.12 on the committed files and
#: 0.78 / 0.95 / 0.98 / 1.00 on those measured in one sitting, ±10% unchanged (0.79-0.81); the other
#: runtimes' suite fits are above 0.08 already. 0.05 until the spill and alignment terms.
NOISE = 0.08
#: Degrees of freedom of the calibration's Student-t noise (None: Gaussian). A whole network the
#: suite misprices (SqueezeNet's pools: +16% under ONNX Runtime, +38% under OpenVINO) is one of a
#: handful of calibration networks; under Gaussian noise it drags the one scale every network
#: shares. With Student-t noise, fitted by EM (weights u = (df + 1) / (df + r^2), r a network's
#: residual over the noise), such a network weighs less. Zoo, leave one family out, the
#: same-sitting files (``benchmarks/zoo.py score --calibration-df D``), ±10% ONNX Runtime / OpenVINO
#: f32: Gaussian 0.83 / 0.74, df 2 / 4 / 8 / 16 0.85 / 0.83, 0.85 / 0.82, 0.84 / 0.82, 0.83 / 0.78.
NOISE_DF: Optional[float] = 4.0
#: EM iterations of the Student-t calibration.
NOISE_DF_ITERS = 10


def _class_index() -> Dict[str, int]:
    from ..device.layers import KINDS

    out = {}
    for ci, (_, kinds) in enumerate(CLASSES):
        for k in kinds:
            out[k] = ci
    other = len(CLASSES) - 1
    return {k: out.get(k, other) for k in KINDS}


def network_features(table, cache_bytes: Optional[float] = None, align: Optional[int] = None) -> np.ndarray:
    """The feature vector (:data:`FEATURE_NAMES`) of a ``LayerTable``: per cost class, the
    number of layers, their MACs in millions, the MB they read and the MB they write; with
    ``align``, then :data:`ALIGN_FEATURES` (:func:`unaligned_mmacs` at that alignment); with
    ``cache_bytes``, last, :data:`SPILL_FEATURE` (:func:`spill_mbytes` against that cache):
    what a model with those terms takes (:meth:`LayerCostModel.features`). The sum of
    :func:`layer_features` over the table's rows."""
    return layer_features(table, cache_bytes, align).sum(0)


def layer_features(table, cache_bytes: Optional[float] = None, align: Optional[int] = None) -> np.ndarray:
    """[rows, features]: :func:`network_features` of each row of a ``LayerTable`` alone, so a
    model's prediction splits over the layers (``LayerCostModel.layer_ms``)."""
    from ..device.layers import ACTIVATIONS, ARRAY_COLUMNS, KINDS

    A = np.asarray(table.array(), dtype=np.float64).reshape(-1, len(ARRAY_COLUMNS))
    n = len(A)
    f = np.zeros((n, len(FEATURE_NAMES)))
    if n:
        col = ARRAY_COLUMNS.index
        idx = _class_index()
        cls = np.array([idx[k] for k in KINDS])[A[:, col("kind")].astype(int)]
        q = len(QUANTITIES)
        rows = np.arange(n)
        written = A[:, col("bytes_written")] / 1e6
        f[rows, cls * q] = 1.0
        f[rows, cls * q + 1] = A[:, col("macs")] / 1e6
        f[rows, cls * q + 2] = A[:, col("bytes_read")] / 1e6
        f[rows, cls * q + 3] = written
        # An activation the table fused into its layer but that runtimes compute as a pass of its
        # own (FUSED_PASS): one more layer of its class reading and writing the layer's output.
        act = A[:, col("activation")].astype(int)
        for a, ci in _PASS_CLASS.items():
            if a not in ACTIVATIONS:
                continue
            extra = act == ACTIVATIONS.index(a)
            f[extra, ci * q] += 1.0
            f[extra, ci * q + 2] += written[extra]
            f[extra, ci * q + 3] += written[extra]
    parts = [f]
    if align is not None:
        parts.append(_unaligned_rows(A, _check_align(align, "layer_features")))
    if cache_bytes is not None:
        parts.append(_spill_rows(A, cache_bytes)[:, None])
    return np.concatenate(parts, axis=1)


def spill_mbytes(table, cache_bytes: float) -> float:
    """The MB a ``LayerTable``'s layers move beyond a cache of ``cache_bytes``: the sum over its
    layers of ``max(0, bytes_read + bytes_written - cache_bytes) / 1e6``.

    A layer whose inputs, weights and output fit in a core's L2 streams them from there; the
    bytes beyond it come from L3 or memory, whatever the layer's kind. The layer suite's entries
    are small and warm (two chained blocks at most), whole networks are not, so a cost per spilled
    MB, fitted on the suite's larger entries, prices what the per-class coefficients miss: the
    spill term of :class:`LayerCostModel` (``cache_bytes``: the device's per-core cache,
    ``device.host.core_cache``), carried by the ``.melw`` as LAYER_COST scheme 2 (format 4)."""
    return float(_spill_rows(np.asarray(table.array(), dtype=np.float64), cache_bytes).sum())


def _spill_rows(A: np.ndarray, cache_bytes) -> np.ndarray:
    """Per row of a layer table's ``array()`` A: the MB it moves beyond ``cache_bytes``."""
    from ..device.layers import ARRAY_COLUMNS

    c = float(cache_bytes)
    if not (np.isfinite(c) and c >= 0):
        raise InputError(f"spill_mbytes: cache_bytes must be a finite number >= 0, not {cache_bytes!r}")
    A = A.reshape(-1, len(ARRAY_COLUMNS))
    moved = A[:, ARRAY_COLUMNS.index("bytes_read")] + A[:, ARRAY_COLUMNS.index("bytes_written")]
    return np.maximum(moved - c, 0.0) / 1e6


def unaligned_mmacs(table, align: int = ALIGN) -> np.ndarray:
    """Per class of :data:`ALIGN_CLASSES`, the MACs (millions) of a ``LayerTable``'s *unaligned*
    layers: those whose output channels (``cout``), or whose input channels (``cin``) when more
    than :data:`ALIGN_MIN_CIN`, are not a multiple of ``align``.

    ONNX Runtime converts a convolution to its blocked (NCHWc) layout only when its channel counts
    fit the block; the others run on its generic path, measured here at up to ~2x the cost per
    MAC (MobileNetV1 0.6 at 192: 19, 38, 76, ... channels, 4.15 ms against 1.60 / 2.48 / 3.16 ms
    for the aligned widths 0.5 / 0.625 / 0.75). The model prices these MACs once more, per class
    (>= 0, fitted on the suite's unaligned entries): aligned networks have none, and a runtime
    without such a layout fits about 0. A layer's ``cin`` is all its input channels (a grouped or
    depthwise layer's too), as the layer table counts them."""
    a = _check_align(align, "unaligned_mmacs")
    return _unaligned_rows(np.asarray(table.array(), dtype=np.float64), a)[:, :len(ALIGN_CLASSES)].sum(0)


def _unaligned_rows(A: np.ndarray, align: int) -> np.ndarray:
    """[rows, ALIGN_FEATURES]: :func:`unaligned_mmacs` of each row of a layer table's ``array()`` A,
    then the row's thousands of output channels if it is a depthwise layer off
    :data:`DW_CHANNEL_ALIGN` (:data:`CHANNEL_FEATURE`)."""
    from ..device.layers import ARRAY_COLUMNS, KINDS

    A = A.reshape(-1, len(ARRAY_COLUMNS))
    out = np.zeros((len(A), len(ALIGN_FEATURES)))
    if not len(A):
        return out
    col = ARRAY_COLUMNS.index
    idx = _class_index()
    pos = {ci: j for j, ci in enumerate(_ALIGN_CLASS_INDEX)}
    cls = np.array([pos.get(idx[k], -1) for k in KINDS])[A[:, col("kind")].astype(int)]
    cin, cout = A[:, col("cin")], A[:, col("cout")]
    off = (np.mod(cout, align) != 0) | ((cin > ALIGN_MIN_CIN) & (np.mod(cin, align) != 0))
    sel = np.flatnonzero(off & (cls >= 0))
    out[sel, cls[sel]] = A[sel, col("macs")] / 1e6
    dw = np.flatnonzero((cls == pos[_DW_CLASS]) & (np.mod(cout, DW_CHANNEL_ALIGN) != 0))
    out[dw, -1] = cout[dw] / 1e3
    return out


def _check_align(align, where: str) -> int:
    if isinstance(align, bool) or not isinstance(align, (int, np.integer)) or not 2 <= int(align) <= 1024:
        raise InputError(f"{where}: align must be a whole number of channels in 2..1024 (e.g. 8), not {align!r}")
    return int(align)


def _nnls_unit(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`_nnls` with A's columns scaled to unit norm for the solver, then back (a zero
    column stays as it is)."""
    norm = np.linalg.norm(A, axis=0)
    norm[norm == 0] = 1.0
    return _nnls(A / norm, b) / norm


def _robust_noise(m: "LayerCostModel", F, y) -> float:
    """A model's noise from its fit: the larger of :data:`NOISE` and the robust sd (1.4826 MAD)
    of its log errors over the entries ``F`` measured at ``y`` ms."""
    return max(NOISE, 1.4826 * float(np.median(np.abs(np.log(m.predict(F) / y)))))


def _nnls(A: np.ndarray, b: np.ndarray, iters: int = 500) -> np.ndarray:
    """min ||A x - b|| subject to x >= 0 (Lawson-Hanson active set; A is small here)."""
    m, n = A.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = A.T @ (b - A @ x)
    for _ in range(iters):
        if passive.all() or not np.any(w[~passive] > 1e-12 * max(1.0, np.abs(w).max())):
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(A[:, passive], b, rcond=None)[0]
            if np.all(z[passive] > 0):
                x = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(x[neg] / np.maximum(x[neg] - z[neg], 1e-300))
            x = x + alpha * (z - x)
            passive &= x > 1e-15
            x[~passive] = 0.0
        w = A.T @ (b - A @ x)
    return x


def fit_suite(F: np.ndarray, latency_ms: Sequence[float],
              weights: Optional[Sequence[float]] = None, *, extra: Optional[np.ndarray] = None):
    """``(c0_ms, w)``: the non-negative least-squares fit, in relative error, of
    ``latency ~ c0 + F @ w`` over the measured suite entries (F: [entries, features]);
    ``weights`` (one per entry, >= 0, default 1) multiply each entry's squared relative error.
    ``extra`` ([entries, k], finite, >= 0): further feature columns fitted alongside the same way
    (e.g. :func:`spill_mbytes`); then the result is ``(c0_ms, w, w_extra)``."""
    F = np.asarray(F, dtype=np.float64)
    y = np.asarray(latency_ms, dtype=np.float64)
    if F.ndim != 2 or F.shape != (len(y), len(FEATURE_NAMES)):
        raise InputError(f"fit_suite: features {F.shape} do not match {len(y)} latencies x {len(FEATURE_NAMES)}")
    nf = F.shape[1]
    if extra is not None:
        E = np.asarray(extra, dtype=np.float64)
        E = E[:, None] if E.ndim == 1 else E
        if E.ndim != 2 or len(E) != len(y) or not (np.all(np.isfinite(E)) and np.all(E >= 0)):
            raise InputError(f"fit_suite: extra must be [{len(y)}, k] finite numbers >= 0, not {list(E.shape)}")
        F = np.column_stack([F, E])
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        raise InputError("fit_suite: latencies must be finite and positive milliseconds")
    sw = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    if sw.shape != y.shape or not (np.all(np.isfinite(sw)) and np.all(sw >= 0) and np.any(sw > 0)):
        raise InputError(f"fit_suite: weights must be {len(y)} finite numbers >= 0, not all 0")
    sw = np.sqrt(sw)
    A = np.column_stack([np.ones(len(y)), F]) / y[:, None] * sw[:, None]
    x = _nnls_unit(A, sw)
    if extra is None:
        return float(x[0]), x[1:]
    return float(x[0]), x[1:1 + nf], x[1 + nf:]


def _prior_cov(p: int) -> np.ndarray:
    return SCALE_SD**2 * np.ones((p, p)) + CLASS_SD**2 * np.eye(p)


def _factor(S: np.ndarray) -> np.ndarray:
    """F with F F^T = S for a covariance that may be singular (eigen-decomposition, clipped at 0)."""
    lam, U = np.linalg.eigh((S + S.T) / 2)
    return U * np.sqrt(np.maximum(lam, 0.0))


class LayerCostModel:
    """A device's layer cost model: the suite's fit, then (optionally) calibrated.

    ``cache_bytes`` (None: no spill term) is the per-core cache the model was fitted with and
    ``w_spill`` its cost in ms per MB moved beyond it (:func:`spill_mbytes`): a part of its own,
    after the classes, calibrated and in the posterior like them. Such a model takes features
    with :data:`SPILL_FEATURE` last (:meth:`features`).

    ``align`` (None: no alignment term) is the channel alignment the model was fitted with and
    ``w_align`` the ms per MMAC of unaligned layers (:func:`unaligned_mmacs`), one per class of
    :data:`ALIGN_CLASSES`, >= 0: in their class's part (the class's multiplier calibrates them).
    Such a model takes :data:`ALIGN_FEATURES` after :data:`FEATURE_NAMES`, their last the
    channel term's (:data:`CHANNEL_FEATURE`), whose ms per 1000 channels is ``w_chan`` (>= 0, in
    the depthwise part)."""

    def __init__(self, c0_ms: float, w: np.ndarray, *, cache_bytes: Optional[float] = None, w_spill: float = 0.0,
                 align: Optional[int] = None, w_align=None, w_chan: float = 0.0):
        self.c0 = float(c0_ms)
        self.w = np.asarray(w, dtype=np.float64)
        if self.w.shape != (len(FEATURE_NAMES),):
            raise InputError(f"LayerCostModel: {self.w.shape} weights, expected {len(FEATURE_NAMES)}")
        if align is not None:
            align = _check_align(align, "LayerCostModel")
            wa = np.zeros(len(ALIGN_CLASSES)) if w_align is None else np.asarray(w_align, dtype=np.float64)
            if wa.shape != (len(ALIGN_CLASSES),) or not (np.all(np.isfinite(wa)) and np.all(wa >= 0)):
                raise InputError(f"LayerCostModel: w_align must be {len(ALIGN_CLASSES)} finite numbers >= 0 (ms per "
                                 f"unaligned MMAC of {', '.join(ALIGN_CLASSES)}), not {w_align!r}")
        elif w_align is not None and np.any(np.asarray(w_align, dtype=np.float64) != 0):
            raise InputError("LayerCostModel: an alignment cost (w_align) needs the alignment it was fitted with "
                             "(align)")
        w_chan = float(w_chan)
        if not (np.isfinite(w_chan) and w_chan >= 0) or (w_chan and align is None):
            raise InputError(f"LayerCostModel: w_chan (ms per 1000 unaligned depthwise channels) must be a finite "
                             f"number >= 0, and needs align; not {w_chan!r}")
        self.align = align
        self.w_align = wa if align is not None else np.zeros(len(ALIGN_CLASSES))
        self.w_chan = w_chan
        if cache_bytes is not None:
            cache_bytes = float(cache_bytes)
            if not (np.isfinite(cache_bytes) and cache_bytes >= 0 and np.isfinite(w_spill) and w_spill >= 0):
                raise InputError(f"LayerCostModel: cache_bytes ({cache_bytes!r}) and w_spill ({w_spill!r}, ms per MB) "
                                 "must be finite numbers >= 0")
        elif w_spill:
            raise InputError("LayerCostModel: a spill cost (w_spill) needs the cache size it was fitted with "
                             "(cache_bytes)")
        self.cache_bytes = cache_bytes
        self.w_spill = float(w_spill)
        p = len(CLASSES) + 1 + self.has_spill
        self.mult = np.ones(p)  # per-inference cost, then each class (then the spill term)
        self.post = _factor(_prior_cov(p))  # factor of the multipliers' covariance
        self.shots = 0
        self.noise = NOISE
        self.noise_df = NOISE_DF
        self.weights = np.zeros(0)  # each calibration network's Student-t weight (1: Gaussian)
        self.speed_sd = 0.0  # how far the device's speed has moved between rechecks (_cache.layer_recheck)

    @property
    def has_spill(self) -> bool:
        """Whether the model has the spill term (a cache size)."""
        return self.cache_bytes is not None

    @property
    def has_align(self) -> bool:
        """Whether the model has the alignment term (an alignment)."""
        return self.align is not None

    @property
    def n_features(self) -> int:
        """Columns of the features the model takes: :data:`FEATURE_NAMES`, then the unaligned
        MMACs (:data:`ALIGN_FEATURES`), then the spill MB."""
        return len(FEATURE_NAMES) + len(ALIGN_FEATURES) * self.has_align + self.has_spill

    def features(self, table) -> np.ndarray:
        """:func:`network_features` of a ``LayerTable`` as this model takes them (with the
        unaligned MMACs at its alignment and the spill MB against its cache when it has the terms)."""
        return network_features(table, self.cache_bytes, self.align)

    @classmethod
    def from_suite(cls, F, latency_ms, weights=None, *, cache_bytes: Optional[float] = None,
                   align: Optional[int] = None, class_fit=None) -> "LayerCostModel":
        """The suite's fit (:func:`fit_suite`, ``weights`` per entry), its noise the robust
        relative error over every entry. F's columns are ``network_features(t, cache_bytes,
        align)``: with ``align``, the unaligned MMACs after :data:`FEATURE_NAMES`, fitted as the
        alignment term; with ``cache_bytes``, each entry's spill MB last, fitted as the spill term.

        ``class_fit`` (one bool per entry; with ``align``): fit in two stages. The per-class
        coefficients (and the spill term) on the entries it marks, as a model without the term
        would be fitted; then the alignment term alone (NNLS, >= 0, relative error, the same
        weights) on what they leave of every entry with unaligned MMACs. A suite's entries built to
        measure alignment (``layer_suite.class_fit_mask``) are left out of the first stage, so
        aligned networks predict exactly as the suite without them says: fitted jointly, the term
        moved per-layer costs that the zoo's small networks rely on (docs/layers.md)."""
        F = np.atleast_2d(np.asarray(F, dtype=np.float64))
        nf, na = len(FEATURE_NAMES), len(ALIGN_FEATURES) * (align is not None)
        want = nf + na + (cache_bytes is not None)
        if F.shape[1] != want:
            raise InputError(f"from_suite: the features are {want} columns ({nf} per class"
                             + (f", {na} of the alignment and channel terms" if na else "") + (", the spill MB" if cache_bytes is not None
                                                                            else "") + f"), not {F.shape[1]}")
        if class_fit is not None:
            return cls._from_suite_two_stage(F, latency_ms, weights, cache_bytes, align, class_fit)
        if want == nf:
            m = cls(*fit_suite(F, latency_ms, weights))
        else:
            c0, w, we = fit_suite(F[:, :nf], latency_ms, weights, extra=F[:, nf:])
            m = cls(c0, w, cache_bytes=cache_bytes, w_spill=float(we[-1]) if cache_bytes is not None else 0.0,
                    align=align, w_align=we[:na - 1] if na else None, w_chan=float(we[na - 1]) if na else 0.0)
        m.noise = _robust_noise(m, F, np.asarray(latency_ms, dtype=np.float64))
        return m

    @classmethod
    def _from_suite_two_stage(cls, F, latency_ms, weights, cache_bytes, align, class_fit) -> "LayerCostModel":
        nf, na = len(FEATURE_NAMES), len(ALIGN_FEATURES)
        y = np.asarray(latency_ms, dtype=np.float64)
        mask = np.asarray(class_fit, dtype=bool)
        if align is None:
            raise InputError("from_suite: class_fit fits the alignment term in a stage of its own; give align")
        if mask.shape != (len(F),) or not mask.any():
            raise InputError(f"from_suite: class_fit must be {len(F)} booleans, one per entry, not all False")
        wts = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
        rest = np.column_stack([F[:, :nf], F[:, nf + na:]])
        base = cls.from_suite(rest[mask], y[mask], wts[mask], cache_bytes=cache_bytes)
        U = F[:, nf:nf + na]
        on = U.sum(axis=1) > 0
        wa = np.zeros(na)
        if on.any():
            sw = np.sqrt(wts[on])
            r = (y[on] - base.predict(rest[on])) / y[on] * sw
            wa = _nnls_unit(U[on] / y[on, None] * sw[:, None], r)
        m = cls(base.c0, base.w, cache_bytes=cache_bytes, w_spill=base.w_spill, align=align, w_align=wa[:-1],
                w_chan=float(wa[-1]))
        m.noise = _robust_noise(m, F, y)
        return m

    def parts(self, F: np.ndarray) -> np.ndarray:
        """[networks, 1 + classes (+ 1)]: the per-inference cost, each class's share of the
        suite model's prediction (and the spill term's), in ms."""
        F = np.atleast_2d(np.asarray(F, dtype=np.float64))
        if F.shape[1] != self.n_features:
            raise InputError(f"layer cost model: features have {F.shape[1]} columns, this model takes "
                             f"{self.n_features}" + (" (the spill MB last: model.features(table))" if self.has_spill
                                                     else ""))
        q = len(QUANTITIES)
        nf = len(FEATURE_NAMES)
        P = (F[:, :nf] * self.w).reshape(len(F), len(CLASSES), q).sum(2)
        if self.has_align:  # each class's unaligned MMACs, in its part; the channel term in depthwise's
            for j, ci in enumerate(_ALIGN_CLASS_INDEX):
                P[:, ci] += self.w_align[j] * F[:, nf + j]
            P[:, _DW_CLASS] += self.w_chan * F[:, nf + len(ALIGN_FEATURES) - 1]
        cols = [np.full(len(F), self.c0), P]
        if self.has_spill:
            cols.append(self.w_spill * F[:, -1])
        return np.column_stack(cols)

    def calibrate(self, F, latency_ms) -> "LayerCostModel":
        """Fit the multipliers to measured whole networks (closed form for Gaussian noise,
        ``noise_df`` None; else :data:`NOISE_DF_ITERS` EM steps of that closed form with each
        network's noise variance divided by its Student-t weight, ``weights`` after; see the module doc)."""
        F = np.atleast_2d(np.asarray(F, dtype=np.float64))
        y = np.asarray(latency_ms, dtype=np.float64)
        if len(y) != len(F) or not (np.all(np.isfinite(y)) and np.all(y > 0)):
            raise InputError("calibrate: one finite, positive latency (ms) per network")
        df = self.noise_df
        if df is not None and not (np.isfinite(df) and df > 0):
            raise InputError(f"calibrate: noise_df must be a number > 0 (Student-t degrees of freedom) or None "
                             f"(Gaussian), not {df!r}")
        P = self.parts(F) / y[:, None]  # relative: each row predicts 1
        m0 = np.ones(P.shape[1])
        S0 = _prior_cov(P.shape[1])
        u = np.ones(len(y))
        for _ in range(1 if df is None else 1 + NOISE_DF_ITERS):
            K = P @ S0 @ P.T + np.diag(self.noise**2 / u)
            G = S0 @ P.T @ np.linalg.inv(K)
            self.mult = m0 + G @ (1.0 - P @ m0)
            if df is not None:
                r = (1.0 - P @ self.mult) / self.noise
                u = (df + 1.0) / (df + r**2)
        S = S0 - G @ P @ S0
        self.post = _factor(S)
        self.shots = len(y)
        self.weights = u if df is not None else np.ones(len(y))
        return self

    def rescaled(self, ratio: float) -> "LayerCostModel":
        """The model of the same device ``ratio`` times slower: every cost (the per-inference one,
        the classes', the spill and alignment terms) times ``ratio``, the calibration as it was.
        Exactly what fitting and calibrating again on every measurement times ``ratio`` gives: the
        fit and the calibration are in relative error, so their solutions scale and their
        multipliers stay (``_cache.layer_recheck``)."""
        r = float(ratio)
        if not (np.isfinite(r) and r > 0):
            raise InputError(f"rescaled: ratio must be a finite number > 0, not {ratio!r}")
        m = LayerCostModel(self.c0 * r, self.w * r, cache_bytes=self.cache_bytes, w_spill=self.w_spill * r,
                           align=self.align, w_align=self.w_align * r if self.has_align else None,
                           w_chan=self.w_chan * r)
        m.mult, m.post, m.noise, m.shots = self.mult.copy(), self.post.copy(), self.noise, self.shots
        m.noise_df, m.weights, m.speed_sd = self.noise_df, self.weights.copy(), self.speed_sd
        return m

    def coefficients(self) -> Tuple[float, np.ndarray]:
        """The calibrated model as ``(c0_ms, w)`` over :data:`FEATURE_NAMES` (then, with the
        alignment term, its calibrated ms per unaligned MMAC per class of :data:`ALIGN_CLASSES` and
        the channel term's ms per 1000 channels; then, with the spill term, its calibrated ms per MB
        as w's last value)."""
        q = len(QUANTITIES)
        w = self.w * np.repeat(self.mult[1:1 + len(CLASSES)], q)
        if self.has_align:
            w = np.append(w, self.w_align * self.mult[[1 + ci for ci in _ALIGN_CLASS_INDEX]])
            w = np.append(w, self.w_chan * self.mult[1 + _DW_CLASS])
        if self.has_spill:
            w = np.append(w, self.w_spill * self.mult[-1])
        return self.c0 * self.mult[0], w

    def predict(self, F) -> np.ndarray:
        """Milliseconds for networks with features F [n, features]."""
        return self.parts(F) @ self.mult

    def layer_ms(self, table) -> Tuple[float, np.ndarray]:
        """``(per-inference ms, ms per row)`` of a ``LayerTable``: the prediction split over its
        layers (:func:`layer_features`); their sum plus the first is :meth:`predict` of the table."""
        parts = self.parts(layer_features(table, self.cache_bytes, self.align))
        return self.c0 * float(self.mult[0]), parts[:, 1:] @ self.mult[1:]

    def to_dict(self) -> dict:
        """The model as JSON-ready data (schema :data:`MODEL_SCHEMA`)."""
        return {"schema": MODEL_SCHEMA, "feature_schema": FEATURE_SCHEMA, "feature_names": list(FEATURE_NAMES),
                "classes": [c for c, _ in CLASSES], "c0_ms": self.c0, "w": self.w.tolist(),
                "cache_bytes": self.cache_bytes, "w_spill": self.w_spill,
                "align": self.align, "w_align": self.w_align.tolist(), "w_chan": self.w_chan,
                "mult": self.mult.tolist(), "post": self.post.tolist(), "noise": self.noise, "shots": self.shots,
                "noise_df": self.noise_df, "weights": self.weights.tolist(), "speed_sd": self.speed_sd}

    @property
    def interval_noise(self) -> float:
        """The relative noise of a new network's prediction: the model's noise and the device's
        speed drift (``speed_sd``) together, what the ``.melw`` carries as its noise."""
        return float(np.hypot(self.noise, self.speed_sd))

    @classmethod
    def from_dict(cls, d) -> "LayerCostModel":
        """The model :meth:`to_dict` wrote; ``FormatError`` naming what is wrong otherwise."""
        from .._errors import FormatError

        if not isinstance(d, dict) or d.get("schema") != MODEL_SCHEMA:
            raise FormatError(f"not a layer cost model of schema {MODEL_SCHEMA} "
                              f"(schema {d.get('schema') if isinstance(d, dict) else None!r})")
        if d.get("feature_schema") != FEATURE_SCHEMA or d.get("feature_names") != list(FEATURE_NAMES):
            raise FormatError(f"layer cost model of feature schema {d.get('feature_schema')!r}; this version "
                              f"computes {FEATURE_SCHEMA}: build it again (delete the cache entry)")
        try:
            cache = d["cache_bytes"]
            m = cls(float(d["c0_ms"]), np.asarray(d["w"], dtype=np.float64),
                    cache_bytes=None if cache is None else float(cache), w_spill=float(d["w_spill"]),
                    align=d["align"], w_align=d["w_align"], w_chan=d["w_chan"])
            m.mult = np.asarray(d["mult"], dtype=np.float64)
            m.post = np.asarray(d["post"], dtype=np.float64)
            m.noise = float(d["noise"])
            m.shots = int(d["shots"])
            m.noise_df = None if d["noise_df"] is None else float(d["noise_df"])
            m.weights = np.asarray(d["weights"], dtype=np.float64).reshape(-1)
            m.speed_sd = float(d["speed_sd"])
        except (KeyError, TypeError, ValueError, InputError) as e:
            raise FormatError(f"corrupt layer cost model: {e}") from None
        p = len(CLASSES) + 1 + m.has_spill
        ok = (m.mult.shape == (p,) and m.post.ndim == 2 and m.post.shape[0] == p and np.isfinite(m.mult).all()
              and np.isfinite(m.post).all() and np.isfinite(m.w).all() and m.c0 >= 0 and m.noise > 0
              and np.isfinite(m.speed_sd) and m.speed_sd >= 0)
        if not ok:
            raise FormatError("corrupt layer cost model: multipliers, posterior or noise out of shape or range")
        return m

    def interval(self, F, level: float = 0.9) -> Tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval (ms): the multipliers' posterior plus the relative noise
        (:meth:`interval_noise`: with the device's speed drift)."""
        from statistics import NormalDist

        P = self.parts(F)
        ms = P @ self.mult
        sd = np.sqrt(np.sum((P @ self.post) ** 2, axis=1) / ms**2 + self.interval_noise**2)
        w = np.minimum(NormalDist().inv_cdf((1 + level) / 2) * sd, 40.0)
        return ms * np.exp(-w), ms * np.exp(w)


#: Schema of a saved layer cost model (``LayerCostModel.to_dict``).
#: 2: cache_bytes and w_spill; 3: align and w_align; 4: noise_df, the calibration's weights and speed_sd;
#: 5: w_chan.
MODEL_SCHEMA = "maple_edge_lite.layer_model/5"




def macs_linear(macs: Sequence[float], latency_ms: Sequence[float]) -> Tuple[float, float]:
    """The baseline a user would fit: ``latency ~ a + b * MACs`` by least squares in relative error
    (``(a_ms, b_ms_per_mac)``); with one network, the line through the origin."""
    x = np.asarray(macs, dtype=np.float64)
    y = np.asarray(latency_ms, dtype=np.float64)
    if len(y) == 1:
        return 0.0, float(y[0] / x[0])
    A = np.column_stack([np.ones(len(y)), x]) / y[:, None]
    a, b = np.linalg.lstsq(A, np.ones(len(y)), rcond=None)[0]
    return float(a), float(b)


def pack(model: LayerCostModel, path, *, metadata=None, level: float = 0.9) -> bytes:
    """Write ``model`` as a format-3 ``.melw`` (docs/format.md, LAYER_COST; format 4, scheme 2,
    for a model with the spill term; format 5, scheme 3, for one whose alignment term is not 0) that the C++ core
    evaluates layer by layer (``Model.predict_layers``, ``mel_model_predict_layers``); returns
    the bytes written (atomically). The kind -> class mapping (:data:`CLASSES`) and the
    activations that run as a pass of their own are resolved here, into one coefficient row
    per layer kind and per activation, so the core needs no change when the classes do.
    Checks first that this per-layer form reproduces the model's per-class parts (so
    ``predict`` and ``interval``) over :func:`network_features` for every kind with every activation:
    ``InputError`` if the features stopped being a per-layer sum the format can carry.
    ``metadata``: further JSON keys (e.g. ``provenance``). A model whose channel term is not 0 is
    written as format 6 (LAYER_COST scheme 4)."""
    from .. import __version__
    from ..device.layers import ACTIVATIONS, ARRAY_COLUMNS, KINDS, SCHEMA
    from ..format import METADATA_SCHEMA, encode_layer_cost, write_atomic

    q = len(QUANTITIES)
    if QUANTITIES != ("n", "mmacs", "mbytes_in", "mbytes_out"):
        raise InputError(f"pack: the .melw layer cost model computes [1, MMACs, MB read, MB written] per layer, "
                         f"not {QUANTITIES}; extend the LAYER_COST section first")
    W = model.w.reshape(len(CLASSES), q)
    idx = _class_index()
    kind_part = [1 + idx[k] for k in KINDS]
    act_part = [1 + _PASS_CLASS[a] if a in _PASS_CLASS else 0 for a in ACTIVATIONS]
    kind_w = np.array([W[idx[k]] for k in KINDS])
    act_w = np.array([W[p - 1] if p else np.zeros(q) for p in act_part])
    # The alignment term per kind (ms per unaligned MMAC, 0 outside ALIGN_CLASSES); a model whose
    # term is all 0 predicts as one without it, and is written without it (the oldest format).
    # The channel term (ms per 1000 channels of depthwise layers off DW_CHANNEL_ALIGN, 0 for the
    # other kinds) goes with it when not 0 (format 6).
    align = None
    if model.has_align and (np.any(model.w_align > 0) or model.w_chan > 0):
        by_class = dict(zip(_ALIGN_CLASS_INDEX, model.w_align))
        align = (model.align, ALIGN_MIN_CIN, np.array([by_class.get(idx[k], 0.0) for k in KINDS]))
        if model.w_chan > 0:
            align += ((DW_CHANNEL_ALIGN, np.array([model.w_chan if idx[k] == _DW_CLASS else 0.0 for k in KINDS])),)
    _check_per_layer(model, kind_part, kind_w, act_part, act_w, align)
    user = dict(metadata or {})
    reserved = {"schema", "packed_by", "model_kind"} & set(user)
    if reserved:
        raise InputError(f"metadata keys {sorted(reserved)} are reserved for the packer")
    meta = {"schema": METADATA_SCHEMA, "packed_by": f"maple_edge_lite {__version__}", "model_kind": "layer_cost",
            "layer_model_schema": MODEL_SCHEMA, "feature_schema": FEATURE_SCHEMA, "layer_table_schema": SCHEMA,
            "classes": [c for c, _ in CLASSES], "shots": model.shots, "cache_bytes": model.cache_bytes,
            "align": model.align, "channel_align": DW_CHANNEL_ALIGN if model.w_chan > 0 else None,
            "provenance": user.pop("provenance", {})}
    meta.update(user)
    data = encode_layer_cost(table_schema=int(SCHEMA.rsplit("/", 1)[1]), columns=ARRAY_COLUMNS, kinds=KINDS,
                             activations=ACTIVATIONS, kind_part=kind_part, kind_w=kind_w, act_part=act_part,
                             act_w=act_w, c0_ms=model.c0, mult=model.mult, post=model.post, noise=model.interval_noise,
                             level=level, metadata=meta,
                             spill=(len(CLASSES) + 1, model.cache_bytes, model.w_spill) if model.has_spill else None,
                             align=align)
    write_atomic(path, data)
    return data


def _check_per_layer(model: LayerCostModel, kind_part, kind_w, act_part, act_w, align=None) -> None:
    """The per-layer form against ``parts`` over ``network_features``, one layer per (kind,
    activation, channel counts) with distinct counts: what pack writes must be what the features
    compute."""
    from ..device.layers import ACTIVATIONS, ARRAY_COLUMNS, KINDS

    col = ARRAY_COLUMNS.index
    # Channel counts: aligned, an unaligned output, an unaligned input, an unaligned stem input, an
    # output off the channel term's alignment, one on it but off the alignment term's.
    a0 = model.align or ALIGN
    chans = [(2 * a0, 4 * a0), (2 * a0, 4 * a0 + 1), (2 * a0 + 3, 4 * a0), (3, 2 * a0),
             (2 * a0, 4 * a0 + 2), (2 * a0, 4 * a0 + DW_CHANNEL_ALIGN)][:6 if model.has_align else 1]
    combos = [(k, a, c) for k in range(len(KINDS)) for a in range(len(ACTIVATIONS)) for c in chans]
    A = np.zeros((len(combos), len(ARRAY_COLUMNS)))
    for i, (k, a, c) in enumerate(combos):
        A[i, [col("kind"), col("activation"), col("cin"), col("cout")]] = k, a, c[0], c[1]
        A[i, [col("macs"), col("bytes_read"), col("bytes_written")]] = (1e6 * (i % 7 + 1), 1e6 * (i % 5 + 1),
                                                                          1e6 * (i % 3 + 1))
    for rows in [A[i:i + 1] for i in range(len(A))]:
        want = model.parts(model.features(_Rows(rows)))[0]
        parts = np.zeros(len(model.mult))
        parts[0] = model.c0
        r = rows[0]
        k, a = int(r[col("kind")]), int(r[col("activation")])
        x = np.array([1.0, r[col("macs")] / 1e6, r[col("bytes_read")] / 1e6, r[col("bytes_written")] / 1e6])
        parts[kind_part[k]] += kind_w[k] @ x
        if act_part[a]:
            parts[act_part[a]] += act_w[a] @ np.array([1.0, 0.0, x[3], x[3]])
        if model.has_spill:  # the core's spill term, layer by layer
            parts[-1] += model.w_spill * max(0.0, r[col("bytes_read")] + r[col("bytes_written")] - model.cache_bytes) / 1e6
        if align is not None:  # the core's alignment and channel terms, layer by layer
            al, min_cin, per_kind = align[:3]
            cin, cout = r[col("cin")], r[col("cout")]
            if cout % al != 0 or (cin > min_cin and cin % al != 0):
                parts[kind_part[k]] += per_kind[k] * x[1]
            if len(align) > 3 and cout % align[3][0] != 0:
                parts[kind_part[k]] += align[3][1][k] * cout / 1e3
        if not np.allclose(parts, want, rtol=1e-9, atol=1e-12):
            raise InputError(f"pack: layer kind {KINDS[k]!r} with activation {ACTIVATIONS[a]!r} costs {want} ms per "
                             f"part over network_features but {parts} per layer: the features are no longer a per-layer "
                             "sum the LAYER_COST section carries; extend the section (docs/format.md) first")


class _Rows:
    """A stand-in for a LayerTable: network_features reads only ``array()``."""

    def __init__(self, a: np.ndarray):
        self._a = a

    def array(self) -> np.ndarray:
        return self._a


__all__ = ["CLASSES", "FEATURE_NAMES", "FEATURE_SCHEMA", "SPILL_FEATURE", "ALIGN_CLASSES", "ALIGN_FEATURES", "ALIGN",
           "ALIGN_MIN_CIN", "CHANNEL_FEATURE", "DW_CHANNEL_ALIGN", "MODEL_SCHEMA", "network_features", "spill_mbytes", "unaligned_mmacs", "fit_suite",
           "LayerCostModel", "macs_linear", "pack"]

"""int8 quantization scheme 1 and its numpy reference.

This module is the executable form of the arithmetic written in ``docs/format.md``: the C++
core computes exactly the same integers and the same float results (the tests compare them bit
for bit). Summary, for a model with layers ``(W_l, b_l)`` and ReLU between them:

* input:   ``q0 = round_half_up(clip((x - mean) * mul, -127, 127))`` in float32, int8 result;
* layer:   ``acc = b_q + sum_i W_q[o, i] * q[i]`` in int32 (int8 weights, symmetric, per output
  channel, in [-127, 127]);
* hidden:  ``q' = clip((acc * mult[o] + 2**(shift[o]-1)) >> shift[o], 0, 127)``, the clip at 0
  being the ReLU;
* output:  ``t = float64(acc) * float64(deq) * out_scale + out_shift``; ``ms = float32(exp(t))``
  (``transform="exp"``), ``float32(t)`` (``"identity"``) or ``float32(max(t, float64(floor)))``
  (``"floor"``, format 2: ``floor`` is a float32 > 0, so the result is never <= 0).

``round_half_up`` is the single rounding rule: round half toward +infinity, used for the input,
for the fixed-point requantization (``+ 2**(shift-1)`` then an arithmetic shift) and by the
quantizer for weights, biases and multipliers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from ._errors import InputError, NumericError

QUANT_SCHEME_VERSION = 1
MAX_LAYERS = 16
MAX_DIM = 4096
TRANSFORMS = {"identity": 0, "exp": 1, "floor": 2}
INT32_MAX = 2**31 - 1
CALIBRATION_ROWS = 4096


@dataclass(frozen=True)
class QLayer:
    """One quantized layer. ``mult``/``shift`` for hidden layers, ``deq`` for the output layer."""

    w: np.ndarray  # int8 [out, in]
    bias: np.ndarray  # int32 [out]
    mult: Optional[np.ndarray] = None  # int32 [out], in [0, 2**31)
    shift: Optional[np.ndarray] = None  # int32 [out], in [1, 62]
    deq: Optional[np.ndarray] = None  # float32 [out] > 0

    @property
    def is_output(self) -> bool:
        return self.deq is not None


@dataclass(frozen=True)
class QuantizedMLP:
    """A model in quantization scheme 1, exactly as stored in a ``.melw`` file."""

    input_mean: np.ndarray  # float32 [d]
    input_mul: np.ndarray  # float32 [d] = 1 / (std * input_scale)
    layers: Tuple[QLayer, ...]
    transform: str = "exp"
    output_scale: float = 1.0
    output_shift: float = 0.0
    output_floor: float = 0.0  # "floor" transform: a float32 value > 0
    interval: Optional["Interval"] = None  # the INTERVAL section, if any

    @property
    def input_dim(self) -> int:
        return int(self.input_mean.shape[0])

    # --- the reference arithmetic ---------------------------------------------------------
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Raw float features ``[n, d]`` -> int8 ``[n, d]``."""
        x = _as_rows(x, self.input_dim)
        if not np.all(np.isfinite(x)):
            r, c = np.argwhere(~np.isfinite(x))[0]
            raise InputError(f"input row {r}, feature {c} is not a finite number")
        v = (x - self.input_mean) * self.input_mul  # float32 throughout
        v = np.clip(v, np.float32(-127.0), np.float32(127.0))
        return round_half_up(v).astype(np.int8)

    def accumulators(self, x: np.ndarray) -> list:
        """int32 accumulators of every layer (a list of ``[n, out]`` int64 arrays)."""
        q = self.quantize_input(x)
        accs = []
        for layer in self.layers:
            acc = int_matmul(q, layer.w) + layer.bias.astype(np.int64)
            accs.append(acc)
            if not layer.is_output:
                q = requantize(acc, layer.mult, layer.shift)
        return accs

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """Output before the transform (log-latency for an ``exp`` model), float64 ``[n]``."""
        acc = self.accumulators(x)[-1][:, 0]
        y = acc.astype(np.float64) * np.float64(self.layers[-1].deq[0])
        return y * np.float64(self.output_scale) + np.float64(self.output_shift)

    def predict_interval(self, x: np.ndarray):
        """(ms, lo, hi): what ``Model.predict_interval`` returns, bit for bit."""
        if self.interval is None:
            raise InputError("this model has no interval")
        ms = self.predict(x)
        lo, hi = self.interval.bounds(_as_rows(x, self.input_dim), ms)
        return ms, lo, hi

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Milliseconds, float32 ``[n]``: what ``Model.predict`` returns, bit for bit."""
        t = self.predict_raw(x)
        with np.errstate(over="ignore", under="ignore"):
            if self.transform == "exp":
                out = np.exp(t).astype(np.float32)
            elif self.transform == "floor":
                out = np.maximum(t, np.float64(np.float32(self.output_floor))).astype(np.float32)
            else:
                out = t.astype(np.float32)
        bad = ~np.isfinite(out)
        if bad.any():
            raise NumericError(f"prediction for row {int(np.argmax(bad))} is not finite")
        if self.transform == "exp" and (out <= 0).any():
            raise NumericError(f"prediction for row {int(np.argmax(out <= 0))} underflows to 0")
        return out


@dataclass(frozen=True)
class Interval:
    """A model's central interval (the INTERVAL section, docs/format.md): for a prediction ``ms``
    and design row ``a = [1, x[index]]``, ``sd = sqrt(|F^T a|^2 + (noise * ms)^2) / ms`` and the
    interval is ``ms * exp(-+ z * sd)``. ``factor`` F: float32 ``[1 + len(index), rank]`` in ms."""

    level: float
    z: float
    noise: float
    index: np.ndarray  # uint32 [terms - 1], increasing feature indices
    factor: np.ndarray  # float32 [terms, rank]

    def bounds(self, x: np.ndarray, ms: np.ndarray):
        """(lo, hi) float32 for raw features ``x`` [n, d] and predictions ``ms`` (float32 [n]): the
        core's arithmetic, in its order (so the two agree bit for bit)."""
        x = np.asarray(x, dtype=np.float32)
        F = self.factor.astype(np.float64)
        u = np.repeat(F[:1], len(x), axis=0)  # the intercept's term, a_0 = 1
        for t, i in enumerate(self.index, start=1):
            u = u + x[:, i].astype(np.float64)[:, None] * F[t]
        v = np.zeros(len(x))
        for j in range(F.shape[1]):
            v = v + u[:, j] * u[:, j]
        y = ms.astype(np.float64)
        e = np.float64(self.noise) * y
        sd = np.sqrt(v + e * e) / y
        w = np.minimum(np.float64(self.z) * sd, 40.0)  # the core's cap (docs/format.md)
        return (y * np.exp(-w)).astype(np.float32), (y * np.exp(w)).astype(np.float32)


def make_interval(level: float, index, factor, noise: float = 0.0) -> Interval:
    """Check and normalise an interval: ``level`` in (0, 1) (z is the standard normal's quantile
    of (1 + level) / 2), ``index`` increasing feature indices, ``factor`` finite ``[1 +
    len(index), rank]`` (rank <= rows), ``noise`` >= 0."""
    from statistics import NormalDist

    level = float(level)
    if not 0.0 < level < 1.0:
        raise InputError(f"interval level must be in (0, 1), got {level}")
    idx = np.asarray(index, dtype=np.int64).ravel()
    F = np.asarray(factor, dtype=np.float64)
    if F.ndim != 2 or F.shape[0] != len(idx) + 1 or not 1 <= F.shape[1] <= F.shape[0]:
        raise InputError(f"interval factor must be [{len(idx) + 1}, rank <= {len(idx) + 1}], got {list(F.shape)}")
    if len(idx) and (idx.min() < 0 or np.any(np.diff(idx) <= 0)):
        raise InputError("interval index must hold increasing feature indices")
    F32 = F.astype(np.float32)
    if not np.all(np.isfinite(F32)):
        raise InputError("interval factor must be finite in float32")
    if not (np.isfinite(noise) and noise >= 0):
        raise InputError("interval noise must be a finite number >= 0")
    z = NormalDist().inv_cdf((1.0 + level) / 2.0)
    return Interval(level, float(z), float(noise), idx.astype(np.uint32), F32)


def round_half_up(v: np.ndarray) -> np.ndarray:
    """The format's rounding rule: nearest integer, halves toward +infinity (int64 result).

    ``v - floor(v)`` is exact in binary floating point for the magnitudes used here, so the
    comparison with 0.5 decides ties exactly as the C++ core does."""
    v = np.asarray(v)
    f = np.floor(v)
    return (f + ((v - f) >= v.dtype.type(0.5))).astype(np.int64)


def int_matmul(q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact ``q @ w.T`` for int8 operands, as int64. Computed in float64, which is exact:
    every partial sum is an integer below 2**53 (the reader bounds accumulators by 2**31)."""
    out = q.astype(np.float64) @ w.astype(np.float64).T
    return out.astype(np.int64)


def requantize(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Fixed-point requantization plus ReLU: int64 accumulators -> int8 in [0, 127]."""
    m = mult.astype(np.int64)
    s = shift.astype(np.int64)
    v = (acc.astype(np.int64) * m + (np.int64(1) << (s - 1))) >> s
    return np.clip(v, 0, 127).astype(np.int8)


def quantize_multiplier(m: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Real multipliers ``m > 0`` -> (int32 mult in [2**30, 2**31), shift in [1, 62]) with
    ``m ~= mult * 2**-shift``. Multipliers below 2**-32 become (0, 62): the output is 0."""
    m = np.asarray(m, dtype=np.float64)
    if np.any(~np.isfinite(m)) or np.any(m <= 0):
        raise InputError("requantization multipliers must be finite and positive")
    frac, exp = np.frexp(m)  # m = frac * 2**exp, frac in [0.5, 1)
    mult = round_half_up(frac * 2.0**31)
    carry = mult == 2**31
    mult = np.where(carry, 2**30, mult)
    exp = exp + carry
    shift = 31 - exp.astype(np.int64)
    if np.any(shift < 1):
        raise InputError(
            f"a requantization multiplier of {float(m.max()):.3g} is too large (> 2**30): "
            "the layer's activations are badly scaled; normalise the inputs or the weights"
        )
    tiny = shift > 62
    mult = np.where(tiny, 0, mult)
    shift = np.where(tiny, 62, shift)
    return mult.astype(np.int32), shift.astype(np.int32)


def _as_rows(x: np.ndarray, d: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1 and x.shape[0] == d:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != d:
        raise InputError(f"x must have shape [n, {d}] (got {list(x.shape)})")
    return x


def _check_layers(layers) -> list:
    if not isinstance(layers, (list, tuple)) or not layers:
        raise InputError("layers must be a non-empty list of (W[out, in], b[out]) pairs")
    if len(layers) > MAX_LAYERS:
        raise InputError(f"{len(layers)} layers; the format allows at most {MAX_LAYERS}")
    out = []
    prev = None
    for i, pair in enumerate(layers):
        try:
            w, b = pair
        except (TypeError, ValueError):
            raise InputError(f"layer {i} must be a (W, b) pair") from None
        w = np.asarray(w, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if w.ndim != 2 or b.ndim != 1 or b.shape[0] != w.shape[0]:
            raise InputError(
                f"layer {i}: W must be [out, in] and b [out] (got W {list(w.shape)}, b {list(b.shape)})"
            )
        if min(w.shape) == 0 or max(w.shape) > MAX_DIM:
            raise InputError(f"layer {i}: dimensions {list(w.shape)} must be within 1..{MAX_DIM}")
        if prev is not None and w.shape[1] != prev:
            raise InputError(f"layer {i} takes {w.shape[1]} inputs but layer {i - 1} gives {prev}")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise InputError(f"layer {i} has non-finite weights or biases")
        prev = w.shape[0]
        out.append((w, b))
    if prev != 1:
        raise InputError(f"the last layer must have one output (it has {prev})")
    return out


def quantize(
    layers: Sequence,
    *,
    input_mean: Optional[np.ndarray] = None,
    input_std: Optional[np.ndarray] = None,
    output: str = "exp",
    output_scale: float = 1.0,
    output_shift: float = 0.0,
    calibration: Optional[np.ndarray] = None,
    seed: int = 0,
    output_floor: Optional[float] = None,
) -> QuantizedMLP:
    """Quantize a float MLP (``layers``: ``(W[out, in], b[out])`` pairs, ReLU between them).

    ``calibration`` is a ``[n, in]`` array of representative raw inputs that sets the
    activation scales (the largest activation seen maps to 127). Without it, ``CALIBRATION_ROWS``
    rows are drawn from N(input_mean, input_std**2) with ``seed``: fine for standardised
    inputs, but real data gives tighter scales."""
    ls = _check_layers(layers)
    d = ls[0][0].shape[1]
    mean = np.zeros(d) if input_mean is None else np.asarray(input_mean, dtype=np.float64)
    std = np.ones(d) if input_std is None else np.asarray(input_std, dtype=np.float64)
    if mean.shape != (d,) or std.shape != (d,):
        raise InputError(f"input_mean and input_std must have shape [{d}]")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise InputError("input_mean must be finite and input_std finite and positive")
    if output not in TRANSFORMS:
        raise InputError(f"output must be one of {sorted(TRANSFORMS)} (got {output!r})")
    if not (np.isfinite(output_scale) and np.isfinite(output_shift)):
        raise InputError("output_scale and output_shift must be finite")
    if output == "floor":
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                floor32 = np.float32(output_floor)
        except (TypeError, ValueError):
            floor32 = np.float32(np.nan)
        if not (np.isfinite(floor32) and floor32 > 0):
            raise InputError(f"output='floor' needs output_floor, a positive number that float32 holds (got {output_floor!r})")
        output_floor = float(floor32)
    elif output_floor is not None:
        raise InputError("output_floor goes with output='floor'")
    else:
        output_floor = 0.0

    if calibration is None:
        rng = np.random.default_rng(seed)
        calib = mean + rng.standard_normal((CALIBRATION_ROWS, d)) * std
    else:
        calib = np.asarray(calibration, dtype=np.float64)
        if calib.ndim != 2 or calib.shape[1] != d or calib.shape[0] == 0:
            raise InputError(f"calibration must have shape [n, {d}] with n >= 1")
        if not np.all(np.isfinite(calib)):
            raise InputError("calibration contains non-finite values")

    z = (calib - mean) / std
    amax = float(np.max(np.abs(z)))
    s_in = amax / 127.0 if amax > 0 else 1.0 / 127.0
    mean32 = mean.astype(np.float32)
    mul32 = (1.0 / (std * s_in)).astype(np.float32)
    if not np.all(np.isfinite(mul32)) or np.any(mul32 <= 0):
        raise InputError("input_std is too small or too large to quantize (scale overflows float32)")
    head = QuantizedMLP(mean32, mul32, (), output, float(output_scale), float(output_shift), output_floor)
    q = head.quantize_input(calib.astype(np.float32))
    s_x = s_in  # the stored float32 multipliers carry it up to a relative 6e-8
    qlayers = []
    for i, (w, b) in enumerate(ls):
        last = i == len(ls) - 1
        amax_w = np.max(np.abs(w), axis=1)
        s_w = np.where(amax_w > 0, amax_w / 127.0, 1.0)
        qw = np.clip(round_half_up(w / s_w[:, None]), -127, 127).astype(np.int8)
        acc_scale = s_x * s_w
        qb = round_half_up(b / acc_scale)
        bound = np.abs(qb) + 127 * np.abs(qw.astype(np.int64)).sum(axis=1)
        if np.any(bound > INT32_MAX):
            o = int(np.argmax(bound))
            raise InputError(
                f"layer {i}, output {o}: the bias is too large relative to the weights to fit the "
                "int32 accumulator; rescale the layer (e.g. normalise its inputs)"
            )
        qb = qb.astype(np.int32)
        acc = int_matmul(q, qw) + qb.astype(np.int64)
        if last:
            qlayers.append(QLayer(qw, qb, deq=(acc_scale).astype(np.float32)))
            if not np.all(qlayers[-1].deq > 0):
                raise InputError("output layer scale underflows float32")
        else:
            act = np.maximum(acc.astype(np.float64) * acc_scale, 0.0)
            amax_y = float(act.max())
            s_y = amax_y / 127.0 if amax_y > 0 else 1.0
            mult, shift = quantize_multiplier(acc_scale / s_y)
            qlayers.append(QLayer(qw, qb, mult=mult, shift=shift))
            q = requantize(acc, mult, shift)
            s_x = s_y
    return QuantizedMLP(mean32, mul32, tuple(qlayers), output, float(output_scale), float(output_shift), output_floor)

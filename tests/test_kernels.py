"""Every int8 kernel (scalar, AVX2, AVX-512 VNNI, ...) against the numpy reference, bit for bit.

The reference is ``QuantizedMLP.predict`` / ``predict_raw`` (maple_edge_lite.quantize): the C++
core must give the same float32 / float64 bits with every kernel on every batch size (the
kernels tile rows and output blocks differently, so batch sizes around the tile sizes matter).
Kernels this CPU lacks are skipped with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.format import encode
from maple_edge_lite.quantize import QLayer, QuantizedMLP
from _util import feature_names, kernels_here

ALL_KERNELS = ("scalar", "avx2", "avx512vnni", "neon")
BATCHES = (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 1000)


@pytest.fixture(params=ALL_KERNELS)
def kernel(request):
    name = request.param
    if not mel._core.kernel_available(name):
        pytest.skip(f"kernel {name!r} is not in this build or not supported by this CPU")
    return name


def assert_same(model, q, x, kernel):
    """predict and predict_raw with `kernel` equal the numpy reference bit for bit."""
    want = q.predict(x)
    want_raw = q.predict_raw(x)
    got = model._m.predict(x, kernel=kernel)
    got_raw = model._m.predict_raw(x, kernel=kernel)
    assert got.dtype == np.float32 and got_raw.dtype == np.float64
    bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert bad.size == 0, f"{kernel}: {bad.size}/{len(x)} predictions differ, first row {bad[0]}: {got[bad[0]]!r} != {want[bad[0]]!r}"
    bad = np.flatnonzero(got_raw.view(np.uint64) != want_raw.view(np.uint64))
    assert bad.size == 0, f"{kernel}: {bad.size}/{len(x)} raw outputs differ, first row {bad[0]}: {got_raw[bad[0]]!r} != {want_raw[bad[0]]!r}"


def random_inputs(rng, n, d, q):
    """Raw features whose quantized values spread over [-127, 127] (about N(0, 60^2)), some
    beyond the clamp and 2% far outside it."""
    v = rng.standard_normal((n, d)) * 60.0
    v[rng.random((n, d)) < 0.02] *= 1e3
    return np.ascontiguousarray(q.input_mean + v / q.input_mul.astype(np.float64), dtype=np.float32)


SHAPES = [
    [64, 256, 256, 1],
    [7, 5, 1],
    [1, 1],
    [33, 17, 9, 1],
    [300, 1024, 1],
    [16, 16, 1],
    [4, 48, 31, 1],
    [129, 65, 1],
    [100, 2, 1],  # few outputs: dot-product path, signed input
    [300, 3, 40, 1],
    [10, 1, 3, 1],  # a one-wide hidden layer
    [12] + [40] * 15 + [1],  # 16 layers, the format's maximum
]


@pytest.mark.parametrize("dims", SHAPES, ids=lambda d: "x".join(map(str, d)) if len(d) < 8 else f"{len(d) - 1}layers")
def test_random_models_bit_exact(kernel, pack_random, dims):
    path, q = pack_random(dims, seed=len(dims) * 1000 + dims[0], output="exp", output_scale=0.5, output_shift=0.25)
    model = mel.Model.load(path)
    rng = np.random.default_rng(dims[0] + 7 * len(dims))
    x = random_inputs(rng, 1000, dims[0], q)
    for n in BATCHES:
        assert_same(model, q, np.ascontiguousarray(x[:n]), kernel)
    assert_same(model, q, x[3], kernel)  # one row given as a 1-D array


@pytest.mark.parametrize("dims", [[64, 256, 256, 1], [7, 5, 1], [33, 17, 9, 1]], ids=lambda d: "x".join(map(str, d)))
def test_default_entry_points_bit_exact(pack_random, dims):
    """Model.predict / predict_raw without a kernel name (the dispatched kernel; up to 64 rows
    the GIL is kept, above it is released)."""
    path, q = pack_random(dims, seed=5)
    model = mel.Model.load(path)
    x = random_inputs(np.random.default_rng(6), 300, dims[0], q)
    for n in (1, 5, 64, 65, 300):
        xn = np.ascontiguousarray(x[:n])
        assert np.array_equal(model.predict(xn).view(np.uint32), q.predict(xn).view(np.uint32)), n
        assert np.array_equal(model.predict_raw(xn).view(np.uint64), q.predict_raw(xn).view(np.uint64)), n


def test_kernels_agree_with_each_other(pack_random):
    """All kernels here give identical bits (a second check, independent of the reference)."""
    path, q = pack_random([37, 96, 50, 1], seed=11)
    model = mel.Model.load(path)
    x = random_inputs(np.random.default_rng(5), 333, 37, q)
    outs = {k: model._m.predict_raw(x, kernel=k).view(np.uint64) for k in kernels_here()}
    ref = outs.pop("scalar")
    for k, v in outs.items():
        assert np.array_equal(v, ref), k


# --- hand-built models at the edges of the arithmetic -------------------------------------------


def load_q(q: QuantizedMLP) -> mel.Model:
    return mel.Model.from_bytes(encode(q, feature_names(q.input_dim), {}))


def unit_input(d):
    """input_mean 0, input_mul 1: the raw feature is the value quantized (ties, +-127 exact)."""
    return np.zeros(d, np.float32), np.ones(d, np.float32)


def edge_rows(rng, n, d):
    """Quantized inputs at the edges: exactly +-127, .5 ties, beyond the clamp, zeros."""
    special = np.array(
        [127, -127, 126.5, -126.5, 127.5, -127.5, 0.5, -0.5, 1.5, -1.5, 0, -0.0, 200, -200, 1e30, -1e30,
         3.4e38, -3.4e38, 1e-40, -1e-40, 0.49999997, -0.49999997, 126.49999, -126.50001, 63.5, -63.5],
        dtype=np.float32,
    )
    x = rng.choice(special, size=(n, d))
    x[0] = 127
    x[1] = -127
    x[2] = np.where(np.arange(d) % 2 == 0, 127, -127)
    x[3] = 126.5
    x[4] = -126.5
    mixed = rng.random((n, d)) < 0.3
    x[5:][mixed[5:]] = (rng.integers(-127, 128, size=mixed[5:].sum()) + rng.choice([0, 0.5], size=mixed[5:].sum()))
    return np.ascontiguousarray(x, dtype=np.float32)


def extreme_weights(rng, out, inp):
    """int8 weights mostly at +-127, some rows all +127 / all -127, some random."""
    w = rng.choice(np.array([127, -127], np.int8), size=(out, inp))
    w[0] = 127
    if out > 1:
        w[1] = -127
    if out > 2:
        w[2] = rng.integers(-127, 128, size=inp)
    return w.astype(np.int8)


def max_bias(w, sign):
    """The largest |bias| the reader accepts for these weights: |b| + 127 * sum|W| = 2^31 - 1."""
    return sign * (2**31 - 1 - 127 * np.abs(w.astype(np.int64)).sum(axis=1))


def out_layer(rng, inp, bias=0):
    w = rng.integers(-127, 128, size=(1, inp)).astype(np.int8)
    w[w == 0] = 1  # every input visible in the output
    return QLayer(w, np.array([bias], np.int32), deq=np.array([1.0], np.float32))


@pytest.mark.parametrize("d", [1, 3, 4, 7, 16, 64, 65, 127, 256])
def test_single_layer_accumulator_exact(kernel, d):
    """[d, 1]: the first layer is also the output; with deq 1 and an identity transform,
    predict_raw is the exact int32 accumulator of the signed first layer (max-magnitude weights
    and inputs, and biases at the reader's bound, where offset tricks wrap in int32)."""
    rng = np.random.default_rng(d)
    mean, mul = unit_input(d)
    for sign in (1, -1, 0):
        w = extreme_weights(rng, 1, d)
        b = max_bias(w, sign).astype(np.int32) if sign else np.zeros(1, np.int32)
        q = QuantizedMLP(mean, mul, (QLayer(w, b, deq=np.array([1.0], np.float32)),), transform="identity")
        model = load_q(q)
        x = edge_rows(rng, 300, d)
        for n in (1, 2, 7, 8, 9, 300):
            assert_same(model, q, x[:n], kernel)
        acc = q.accumulators(x)[-1][:, 0]
        assert np.array_equal(model._m.predict_raw(x, kernel=kernel), acc.astype(np.float64))


@pytest.mark.parametrize("d,h", [(64, 256), (5, 16), (7, 17), (33, 48), (256, 40), (4, 1)])
def test_extreme_hidden_layers(kernel, d, h):
    """Weights and inputs at +-127 (vpmaddubsw's pair bound 2*127*127), biases at the int32
    bound, and requantization multipliers / shifts over their whole range (shift 1..62,
    including 31, 32, 33; mult 0 .. 2^31-1). The output layer has deq 1, so predict_raw is its
    exact accumulator, in which every hidden activation is visible."""
    rng = np.random.default_rng(d * 1000 + h)
    mean, mul = unit_input(d)
    w1 = extreme_weights(rng, h, d)
    typical = 100.0 * np.sqrt((w1.astype(np.float64) ** 2).sum(axis=1)) + 1  # |accumulator| scale
    b1 = (rng.standard_normal(h) * typical / 2).astype(np.int64)
    b1[0] = max_bias(w1[:1], 1)[0]
    if h > 1:
        b1[1] = max_bias(w1[1:2], -1)[0]
    if h > 3:
        b1[3] = max_bias(w1[3:4], 1)[0]
    # Pick shifts so that typical accumulators land inside [0, 127], then scatter some.
    mult = rng.integers(0, 2**31, size=h, dtype=np.int64)
    mult[: max(1, h // 8)] = 2**31 - 1
    if h > 2:
        mult[2] = 0
    shift = np.clip(np.round(np.log2(typical * np.maximum(mult, 1) / 64.0)), 1, 62).astype(np.int64)
    pick = rng.random(h)
    shift = np.where(pick < 0.1, rng.integers(1, 63, size=h), shift)
    for i, s in enumerate((31, 32, 33, 1, 62)):
        if 4 + i < h:
            shift[4 + i] = s
    # Outputs 16..31 and 64..127: whole SIMD groups (8, 16 or 64 outputs) with every shift in
    # 32..34 (the boundary of the kernels' 32-bit fast path), with multipliers that keep the
    # results inside [0, 127].
    for j in [*range(16, min(h, 32)), *range(64, min(h, 128))]:
        shift[j] = 32 + j % 3
        mult[j] = min(2**31 - 1, int(64 * 2.0 ** shift[j] / typical[j]))
    w2 = extreme_weights(rng, h, h)
    b2 = rng.integers(-1000, 1000, size=h)
    mult2 = np.full(h, 2**30, np.int64)
    k2 = max(0, int(round(np.log2(127 * 60 * np.sqrt(h) / 64))))
    shift2 = np.full(h, 30 + k2, np.int64)  # typical accumulators / 2^k2 within +-64
    layers = (
        QLayer(w1, b1.astype(np.int32), mult=mult.astype(np.int32), shift=shift.astype(np.int32)),
        QLayer(w2, b2.astype(np.int32), mult=mult2.astype(np.int32), shift=shift2.astype(np.int32)),
        out_layer(rng, h, bias=-12345),
    )
    q = QuantizedMLP(mean, mul, layers, transform="identity")
    model = load_q(q)
    x = edge_rows(rng, 500, d)
    hidden = q.accumulators(x)
    q1 = np.clip((hidden[0] * mult + (1 << (shift - 1))) >> shift, 0, 127)
    if h >= 16:  # the test exercises the clamps, not only them
        inside = ((q1 > 0) & (q1 < 127)).mean()
        assert inside > 0.1 and (q1 == 0).any() and (q1 == 127).any(), inside
    for n in (1, 3, 8, 9, 17, 500):
        assert_same(model, q, x[:n], kernel)


def test_input_quantization_ties_and_clamps(kernel):
    """Non-trivial mean/scale: raw values placed on .5 ties of (x - mean) * mul (as far as
    float32 allows) and at the +-127 clamp, through the SIMD and the scalar tail of the input
    loop (d = 13 is not a multiple of the vector width)."""
    d = 13
    rng = np.random.default_rng(99)
    mean = rng.standard_normal(d).astype(np.float32)
    mul = (2.0 ** rng.integers(-3, 4, size=d)).astype(np.float32)  # powers of two: exact ties
    w = rng.integers(-127, 128, size=(1, d)).astype(np.int8)
    q = QuantizedMLP(mean, mul, (QLayer(w, np.array([7], np.int32), deq=np.array([1.0], np.float32)),), transform="identity")
    model = load_q(q)
    k = rng.integers(-140, 140, size=(600, d)) + rng.choice([0.0, 0.5, 0.25, -0.5], size=(600, d))
    x = np.ascontiguousarray(mean + k / mul, dtype=np.float32)
    x[0] = mean + 127 / mul
    x[1] = mean - 127 / mul
    x[2] = mean + 126.5 / mul
    x[3] = mean - 126.5 / mul
    v = (x - mean) * mul
    assert np.any(v - np.floor(v) == 0.5)
    for n in (1, 2, 8, 9, 600):
        assert_same(model, q, x[:n], kernel)


@pytest.mark.parametrize("d", [3, 16, 21])
def test_non_finite_input_names_first_bad_feature(kernel, d):
    """A NaN/inf input is an error naming the first bad row and feature, wherever it sits in
    the vectorised part of the row or in its tail, and in whichever tile."""
    rng = np.random.default_rng(d)
    mean, mul = unit_input(d)
    w = rng.integers(-127, 128, size=(1, d)).astype(np.int8)
    q = QuantizedMLP(mean, mul, (QLayer(w, np.array([0], np.int32), deq=np.array([1.0], np.float32)),), transform="identity")
    model = load_q(q)
    for row, feat, bad in ((0, 0, np.nan), (5, d - 1, np.inf), (12, d // 2, -np.inf), (12, 1, np.nan)):
        x = rng.standard_normal((20, d)).astype(np.float32)
        x[row, feat] = bad
        if feat + 2 < d:
            x[row, feat + 2] = np.nan  # a later bad feature must not be the one reported
        x[row + 1 :, 0] = np.nan
        with pytest.raises(mel.InputError, match=rf"input row {row}, feature {feat} "):
            model._m.predict(x, kernel=kernel)
        with pytest.raises(mel.InputError, match=rf"input row {row}, feature {feat} "):
            model._m.predict_raw(x, kernel=kernel)


# --- dispatch ------------------------------------------------------------------------------------


def run_kernel_name(env_value):
    """kernel_name() in a fresh interpreter, run outside the checkout (whose maple_edge_lite/
    source folder would shadow the installed package)."""
    env = dict(os.environ)
    env.pop("MEL_KERNEL", None)
    if env_value is not None:
        env["MEL_KERNEL"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", "import maple_edge_lite as m; print(m._core.kernel_name())"],
        env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_default_kernel_is_the_best_available():
    here = kernels_here()
    assert "scalar" in here
    best = next(k for k in ("avx512vnni", "avx2", "neon", "scalar") if k in here)
    assert run_kernel_name(None) == best


def test_mel_kernel_forces_a_kernel(kernel):
    assert run_kernel_name(kernel) == kernel


@pytest.mark.parametrize("value", ["no-such-kernel", "", "AVX2"])
def test_mel_kernel_unknown_falls_back(value):
    assert run_kernel_name(value) == run_kernel_name(None)


def test_unavailable_kernel_is_refused(pack_random):
    path, _ = pack_random([4, 8, 1])
    model = mel.Model.load(path)
    with pytest.raises(mel.UnsupportedError):
        model._m.predict(np.zeros((1, 4), np.float32), kernel="no-such-kernel")
    for k in ALL_KERNELS:
        if not mel._core.kernel_available(k):
            with pytest.raises(mel.UnsupportedError):
                model._m.predict(np.zeros((1, 4), np.float32), kernel=k)

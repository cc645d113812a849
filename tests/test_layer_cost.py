"""The layer suite (``device.builders.layer_suite``) and the layer cost model (``learn.layer_cost``):
features against hand-worked tables, the fit against known coefficients, calibration against a
device whose classes cost other than the suite says."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.learn import layer_cost as LC

onnx = pytest.importorskip("onnx")

from maple_edge_lite.device import layers as L  # noqa: E402
from maple_edge_lite.device.builders import layer_suite as LS  # noqa: E402


def _layer(kind, macs=0, r=0, w=0):
    return {"kind": kind, "name": kind, "op_types": ["X"], "inputs": [[1, 8, 4, 4]], "output": [1, 8, 4, 4],
            "kernel": [1, 1], "stride": [1, 1], "dilation": [1, 1], "padding": [0, 0, 0, 0], "groups": 1,
            "activation": "", "fused_add": False, "se": False, "macs": macs, "params": 0,
            "bytes_read": r, "bytes_written": w}


def _table(rows):
    return L.LayerTable.from_dict({"schema": L.SCHEMA, "source": {"path": None, "sha256": None, "batch": 1},
                                   "kinds": list(L.KINDS), "layers": rows})


def test_features_by_hand():
    t = _table([_layer("conv", 2_000_000, 1_000_000, 500_000), _layer("conv", 1_000_000, 0, 1_000_000),
                _layer("depthwise", 300_000, 200_000, 100_000), _layer("relu", 0, 50_000, 50_000),
                _layer("add", 0, 100_000, 50_000), _layer("transpose", 0, 10_000, 10_000)])
    f = dict(zip(LC.FEATURE_NAMES, LC.network_features(t)))
    assert f["conv:n"] == 2 and f["conv:mmacs"] == pytest.approx(3.0)
    assert f["conv:mbytes_in"] == pytest.approx(1.0) and f["conv:mbytes_out"] == pytest.approx(1.5)
    assert f["depthwise:n"] == 1 and f["depthwise:mmacs"] == pytest.approx(0.3)
    assert f["depthwise:mbytes_in"] == pytest.approx(0.2) and f["depthwise:mbytes_out"] == pytest.approx(0.1)
    assert f["eltwise:n"] == 2 and f["eltwise:mbytes_in"] == pytest.approx(0.15)  # relu and add share a class
    assert f["memory:n"] == 1 and f["memory:mbytes_out"] == pytest.approx(0.01)
    assert sum(v for k, v in f.items() if k.startswith(("pointwise", "gemm", "pool", "other", "activation"))) == 0
    assert not LC.network_features(_table([])).any()
    # a conv with a fused SiLU: the conv row, plus one fused_exp-class pass over its output
    # (written 1 MB -> read 1 MB, written 1 MB); a fused hardswish the same pass in the activation
    # class (written 0.25 MB); a fused Relu adds nothing; a standalone SiLU row is an activation
    silu = dict(_layer("conv", 1_000_000, 500_000, 1_000_000), activation="swish")
    sig = dict(_layer("pointwise", 1_000, 4_000, 2_000), activation="sigmoid")
    hsw = dict(_layer("depthwise", 1_000, 250_000, 250_000), activation="hardswish")
    relu = dict(_layer("conv", 1_000_000, 500_000, 1_000_000), activation="relu")
    alone = _layer("swish", 0, 30_000, 30_000)
    g = dict(zip(LC.FEATURE_NAMES, LC.network_features(_table([silu, sig, hsw, relu, alone]))))
    assert g["conv:n"] == 2 and g["pointwise:n"] == 1 and g["depthwise:n"] == 1
    assert g["fused_exp:n"] == 2 and g["fused_exp:mmacs"] == 0
    assert g["fused_exp:mbytes_in"] == pytest.approx(1.002) and g["fused_exp:mbytes_out"] == pytest.approx(1.002)
    assert g["activation:n"] == 2 and g["activation:mmacs"] == 0
    assert g["activation:mbytes_in"] == pytest.approx(0.28) and g["activation:mbytes_out"] == pytest.approx(0.28)
    # no kind is of the fused_exp class: only the pass of a fused SiLU/sigmoid
    assert dict(LC.CLASSES)["fused_exp"] == ()
    # every layer-table kind has a class
    assert set(LC._class_index()) == set(L.KINDS)


def test_nnls_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        A = rng.standard_normal((12, 4))
        b = rng.standard_normal(12)
        x = LC._nnls(A, b)
        best = None
        for act in itertools.product([False, True], repeat=4):  # every active set
            idx = np.flatnonzero(act)
            z = np.zeros(4)
            if len(idx):
                z[idx] = np.linalg.lstsq(A[:, idx], b, rcond=None)[0]
            if np.all(z >= 0):
                r = np.linalg.norm(A @ z - b)
                best = r if best is None else min(best, r)
        assert np.all(x >= 0) and np.linalg.norm(A @ x - b) == pytest.approx(best, rel=1e-9, abs=1e-12)


def _synthetic_suite(c0, w, n=80, seed=0):
    """Suite-like rows: each entry one class, positive count/MACs/bytes; latency = c0 + F @ w."""
    rng = np.random.default_rng(seed)
    F = np.zeros((n, len(LC.FEATURE_NAMES)))
    q = len(LC.QUANTITIES)
    for i in range(n):
        c = i % len(LC.CLASSES)
        F[i, c * q:(c + 1) * q] = [rng.integers(1, 9), rng.uniform(0, 200), rng.uniform(0.1, 20), rng.uniform(0.1, 20)]
    return F, c0 + F @ w


def test_fit_suite_recovers_nonnegative_costs():
    q = len(LC.QUANTITIES)
    w = np.zeros(len(LC.FEATURE_NAMES))
    w[0::q] = 0.002  # 2 us per layer
    w[1::q] = np.linspace(0.0, 0.02, len(LC.CLASSES))  # ms per million MACs (one class free)
    w[2::q] = 0.01
    w[3::q] = 0.02
    F, y = _synthetic_suite(0.004, w, n=120)
    c0, got = LC.fit_suite(F, y)
    assert c0 == pytest.approx(0.004, rel=1e-6) and np.allclose(got, w, rtol=1e-6, atol=1e-9)
    # a negative true cost cannot come back: the fit stays >= 0 and predicts every entry > 0
    w2 = w.copy()
    w2[1] = -0.001
    F2, y2 = _synthetic_suite(0.004, w2)
    y2 = np.maximum(y2, 0.001)
    c0b, got2 = LC.fit_suite(F2, y2)
    assert np.all(got2 >= 0) and c0b >= 0
    with pytest.raises(mel.InputError, match="positive"):
        LC.fit_suite(F, -y)
    with pytest.raises(mel.InputError, match="features"):
        LC.fit_suite(F[:, :3], y)


def test_spill_mbytes_by_hand():
    """MB moved beyond the cache, layer by layer: 1.5 + 1.0 MB against 2 MB spills 0.5 MB, 3 + 1 MB
    spills 2 MB, 0.2 + 0.1 MB nothing (no layer gives back what another spills); a 0-byte cache
    spills every byte."""
    t = _table([_layer("conv", 1_000_000, 1_500_000, 1_000_000), _layer("pointwise", 0, 3_000_000, 1_000_000),
                _layer("relu", 0, 200_000, 100_000)])
    assert LC.spill_mbytes(t, 2_000_000) == pytest.approx(2.5)
    assert LC.spill_mbytes(t, 0) == pytest.approx(6.8)
    assert LC.spill_mbytes(t, 5_000_000) == 0.0
    assert LC.spill_mbytes(_table([]), 1_000_000) == 0.0
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(mel.InputError, match="cache_bytes"):
            LC.spill_mbytes(t, bad)


def test_fit_suite_extra_column_recovers_its_cost():
    """A latency with a cost per extra unit (e.g. spilled MB) the class features do not carry: the
    fit with ``extra`` recovers every coefficient, that one included; without it, it cannot."""
    q = len(LC.QUANTITIES)
    w = np.zeros(len(LC.FEATURE_NAMES))
    w[0::q], w[1::q], w[2::q], w[3::q] = 0.002, 0.01, 0.01, 0.02
    F, y = _synthetic_suite(0.004, w, n=120, seed=5)
    e = np.random.default_rng(6).uniform(0, 30, len(y)) * (np.arange(len(y)) % 3 == 0)
    y = y + 0.05 * e
    c0, got, ge = LC.fit_suite(F, y, extra=e)
    assert c0 == pytest.approx(0.004, rel=1e-6) and np.allclose(got, w, rtol=1e-6, atol=1e-9)
    assert ge.shape == (1,) and ge[0] == pytest.approx(0.05, rel=1e-6)
    c0n, gn = LC.fit_suite(F, y)
    assert not np.allclose(gn, w, rtol=1e-3)
    with pytest.raises(mel.InputError, match="extra"):
        LC.fit_suite(F, y, extra=-e)
    with pytest.raises(mel.InputError, match="extra"):
        LC.fit_suite(F, y, extra=e[:-1])


def test_layer_features_split_the_network_features():
    """Each layer's features alone sum to the network's, with and without the spill and the
    alignment terms; a model's per-layer milliseconds plus its per-inference cost are its
    prediction of the network."""
    from maple_edge_lite.device.builders import zoo

    t = L.from_onnx(zoo.zoo_onnx("shufflenet_v2_x0.5"))  # unaligned layers, layers beyond a small cache
    for cache, align in ((None, None), (250_000.0, None), (None, 8), (250_000.0, 8)):
        R = LC.layer_features(t, cache, align)
        assert R.shape == (len(t.rows), len(LC.network_features(t, cache, align)))
        np.testing.assert_allclose(R.sum(0), LC.network_features(t, cache, align), rtol=1e-12, atol=1e-12)
    assert (LC.layer_features(t, 250_000.0, 8)[:, -1] > 0).sum() >= 5
    assert LC.layer_features(_table([]), 2e6, 8).shape == (0, len(LC.FEATURE_NAMES) + len(LC.ALIGN_FEATURES) + 1)
    rng = np.random.default_rng(3)
    m = LC.LayerCostModel(0.3, rng.uniform(0, 0.2, len(LC.FEATURE_NAMES)), cache_bytes=250_000.0, w_spill=0.04,
                          align=8, w_align=[0.01, 0.0, 0.05, 0.02])
    F = rng.uniform(0, 20, (6, m.n_features))
    m.calibrate(F, m.predict(F) * rng.uniform(0.7, 1.4, len(F)))
    c0, per = m.layer_ms(t)
    assert per.shape == (len(t.rows),) and (per >= 0).all() and c0 == pytest.approx(0.3 * m.mult[0])
    assert c0 + per.sum() == pytest.approx(m.predict(m.features(t)[None])[0], rel=1e-12)


def test_fit_suite_weights_are_repeated_entries():
    """An integer weight k counts an entry as k copies of it: the weighted fit equals the
    unweighted fit of the suite with the rows repeated; weight 0 drops the entry."""
    q = len(LC.QUANTITIES)
    w = np.zeros(len(LC.FEATURE_NAMES))
    w[0::q], w[1::q], w[2::q], w[3::q] = 0.002, 0.01, 0.01, 0.02
    F, y = _synthetic_suite(0.004, w, n=60, seed=3)
    y = y * np.random.default_rng(4).uniform(0.7, 1.4, len(y))  # entries the model cannot all fit
    k = np.where(np.arange(len(y)) % 4 == 0, 3, 1)
    c0, got = LC.fit_suite(F, y, weights=k)
    c0r, want = LC.fit_suite(np.repeat(F, k, axis=0), np.repeat(y, k))
    assert c0 == pytest.approx(c0r, rel=1e-9, abs=1e-12) and np.allclose(got, want, rtol=1e-8, atol=1e-12)
    keep = k == 1
    c0d, dropped = LC.fit_suite(F, y, weights=keep.astype(float))
    c0k, kept = LC.fit_suite(F[keep], y[keep])
    assert c0d == pytest.approx(c0k, rel=1e-9, abs=1e-12) and np.allclose(dropped, kept, rtol=1e-8, atol=1e-12)
    assert not np.allclose(got, LC.fit_suite(F, y)[1])  # the weights matter here
    for bad in ([1.0] * (len(y) - 1), [-1.0] * len(y), [0.0] * len(y), [np.nan] * len(y)):
        with pytest.raises(mel.InputError, match="weights"):
            LC.fit_suite(F, y, weights=bad)


def _nets(rng, n, q):
    F = np.zeros((n, len(LC.FEATURE_NAMES)))
    for c in range(len(LC.CLASSES)):
        F[:, c * q:(c + 1) * q] = rng.uniform(0, 10, (n, q)) * (20 if c == 0 else 1)
    return F


def test_calibration_finds_the_device_s_scale():
    """A device whose networks run 1.3x slower than its layers timed alone: five networks put the
    calibrated model within a percent; uncalibrated it is 23% off."""
    q = len(LC.QUANTITIES)
    w = np.full(len(LC.FEATURE_NAMES), 0.005)
    base = LC.LayerCostModel(0.01, w)
    rng = np.random.default_rng(1)
    F_shot, F_test = _nets(rng, 5, q), _nets(rng, 200, q)
    y_shot, y_test = 1.3 * base.predict(F_shot), 1.3 * base.predict(F_test)
    m = LC.LayerCostModel(0.01, w).calibrate(F_shot, y_shot)
    err0 = np.abs(base.predict(F_test) / y_test - 1)
    err = np.abs(m.predict(F_test) / y_test - 1)
    assert np.median(err0) == pytest.approx(1 - 1 / 1.3) and np.max(err) < 0.01
    c0, wc = m.coefficients()  # the calibrated model as plain coefficients predicts the same
    np.testing.assert_allclose(c0 + F_test @ wc, m.predict(F_test), rtol=1e-12)
    lo, hi = m.interval(F_test)
    assert np.all(lo < m.predict(F_test)) and np.all(m.predict(F_test) < hi)
    assert np.mean((y_test >= lo) & (y_test <= hi)) == 1.0
    lo0, hi0 = base.interval(F_test)  # before calibration the scale is unknown: wider
    assert np.all(hi0 / lo0 > hi / lo)
    with pytest.raises(mel.InputError):
        LC.LayerCostModel(0.01, w).calibrate(F_shot, -y_shot)


def _calibrate_by_hand(P, noise, df, iters):
    """The Student-t calibration written out another way: per EM step, the multipliers' posterior
    mean in information form over the prior's factor (mult = 1 + L z, z ~ N(0, I), S0 = L L^T:
    singular with CLASS_SD 0), each network's relative error N(0, noise^2 / u)."""
    L = LC._factor(LC._prior_cov(P.shape[1]))
    B = P @ L
    u = np.ones(len(P))
    for _ in range(1 + iters):
        prec = np.eye(L.shape[1]) + B.T @ (B * (u / noise**2)[:, None])
        mult = 1 + L @ np.linalg.solve(prec, B.T @ ((1 - P.sum(1)) * u / noise**2))
        if df is not None:
            u = (df + 1) / (df + ((1 - P @ mult) / noise) ** 2)
    return mult, u


def test_calibration_student_t():
    """Student-t calibration noise (NOISE_DF): equal to the EM rule written out in information form
    (Gaussian and df 2/4/8); six networks 1.3x slower than their layers and one more 2x off (a
    network the suite misprices): its weight falls below 0.15, the rest stay near 1, and the others
    predict within 0.5% of 1.3x, where Gaussian noise lets it drag them by 2.5% or more (a relative
    error is at most 1 however slow the network); the weights and
    the degrees of freedom round-trip through the JSON form; a bad noise_df is refused."""
    q = len(LC.QUANTITIES)
    w = np.full(len(LC.FEATURE_NAMES), 0.005)
    base = LC.LayerCostModel(0.01, w)
    rng = np.random.default_rng(4)
    F_shot, F_test = _nets(rng, 7, q), _nets(rng, 100, q)
    y_shot = 1.3 * base.predict(F_shot)
    y_shot[3] *= 2.0
    P = base.parts(F_shot) / y_shot[:, None]
    for df in (None, 2.0, 4.0, 8.0):
        m = LC.LayerCostModel(0.01, w)
        m.noise_df = df
        m.calibrate(F_shot, y_shot)
        mult, u = _calibrate_by_hand(P, m.noise, df, LC.NOISE_DF_ITERS if df is not None else 0)
        np.testing.assert_allclose(m.mult, mult, rtol=1e-9)
        np.testing.assert_allclose(m.weights, u if df is not None else 1.0, rtol=1e-9)
    robust = LC.LayerCostModel(0.01, w).calibrate(F_shot, y_shot)  # the default: NOISE_DF
    gauss = LC.LayerCostModel(0.01, w)
    gauss.noise_df = None
    gauss.calibrate(F_shot, y_shot)
    assert robust.noise_df == LC.NOISE_DF == 4.0
    assert robust.weights[3] < 0.15 and np.all(np.delete(robust.weights, 3) > 0.8)
    y_test = 1.3 * base.predict(F_test)
    assert np.max(np.abs(robust.predict(F_test) / y_test - 1)) < 0.005
    assert np.min(np.abs(gauss.predict(F_test) / y_test - 1)) > 0.025
    back = LC.LayerCostModel.from_dict(robust.to_dict())
    assert back.noise_df == 4.0 and np.array_equal(back.weights, robust.weights)
    assert LC.LayerCostModel.from_dict(gauss.to_dict()).noise_df is None
    for bad in (0.0, -1.0, float("nan")):
        m = LC.LayerCostModel(0.01, w)
        m.noise_df = bad
        with pytest.raises(mel.InputError, match="noise_df must be a number > 0"):
            m.calibrate(F_shot, y_shot)


def test_rescaled_is_refitting_on_slower_measurements():
    """``rescaled(r)``: the model fitted and calibrated again on every measurement times r
    (suite and calibration networks), to rounding: every cost times r, the multipliers as they
    were; predictions exactly r times, the interval's relative width the same; a bad ratio is
    refused; speed_sd round-trips and widens the interval."""
    q = len(LC.QUANTITIES)
    w = np.zeros(len(LC.FEATURE_NAMES))
    w[0::q], w[1::q], w[2::q], w[3::q] = 0.002, 0.01, 0.01, 0.02
    F, y = _synthetic_suite(0.004, w, n=120, seed=5)
    rng = np.random.default_rng(2)
    e = rng.uniform(0, 30, len(y)) * (np.arange(len(y)) % 3 == 0)
    U = np.zeros((len(y), len(LC.ALIGN_FEATURES)))
    U[::7, 2] = F[::7, 2 * q + 1]
    y = y * rng.uniform(0.9, 1.1, len(y)) + 0.05 * e + 0.02 * U[:, 2]
    Fs = np.column_stack([F, U, e])
    Fc = np.column_stack([_nets(rng, 5, q), np.zeros((5, len(LC.ALIGN_FEATURES))), rng.uniform(0, 30, 5)])
    yc = rng.uniform(0.8, 1.3, 5) * LC.LayerCostModel.from_suite(Fs, y, cache_bytes=2e6, align=8).predict(Fc)
    a = LC.LayerCostModel.from_suite(Fs, y, cache_bytes=2e6, align=8).calibrate(Fc, yc)
    b = LC.LayerCostModel.from_suite(Fs, 1.3 * y, cache_bytes=2e6, align=8).calibrate(Fc, 1.3 * yc)
    r = a.rescaled(1.3)
    np.testing.assert_allclose(r.predict(Fs), b.predict(Fs), rtol=1e-6)
    np.testing.assert_allclose(r.predict(Fs), 1.3 * a.predict(Fs), rtol=1e-12)
    np.testing.assert_allclose(r.mult, b.mult, rtol=1e-6)
    np.testing.assert_allclose(r.weights, a.weights)
    lo, hi = r.interval(Fs)
    lo0, hi0 = a.interval(Fs)
    np.testing.assert_allclose(hi / lo, hi0 / lo0, rtol=1e-12)
    r.speed_sd = 0.1
    lo1, hi1 = r.interval(Fs)
    assert np.all(hi1 / lo1 > hi / lo) and r.interval_noise == pytest.approx(np.hypot(r.noise, 0.1))
    assert LC.LayerCostModel.from_dict(r.to_dict()).speed_sd == 0.1
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(mel.InputError, match="ratio must be a finite number > 0"):
            a.rescaled(bad)


def test_calibration_by_class_when_allowed(monkeypatch):
    """With per-class deviations in the prior (CLASS_SD > 0), a device whose convolutions alone
    cost 1.5x moves the conv multiplier most and is predicted within 3%."""
    monkeypatch.setattr(LC, "CLASS_SD", 0.3)
    q = len(LC.QUANTITIES)
    w = np.full(len(LC.FEATURE_NAMES), 0.005)
    base = LC.LayerCostModel(0.01, w)
    rng = np.random.default_rng(1)
    true_mult = np.ones(len(LC.CLASSES) + 1)
    true_mult[1] = 1.5
    F_shot, F_test = _nets(rng, 8, q), _nets(rng, 200, q)
    m = LC.LayerCostModel(0.01, w).calibrate(F_shot, base.parts(F_shot) @ true_mult)
    y_test = base.parts(F_test) @ true_mult
    assert np.median(np.abs(m.predict(F_test) / y_test - 1)) < 0.03
    assert np.argmax(m.mult) == 1


def test_spill_model_fits_calibrates_and_round_trips():
    """A suite whose latencies carry 0.05 ms per MB beyond a 2 MB cache: ``from_suite`` with that
    cache recovers the cost as the spill term; features without the spill column are refused; a
    device 1.2x slower than its layers is calibrated by one scale that the spill part shares
    (CLASS_SD 0: every multiplier equal); the JSON form predicts the same numbers."""
    q = len(LC.QUANTITIES)
    w = np.zeros(len(LC.FEATURE_NAMES))
    w[0::q], w[1::q], w[2::q], w[3::q] = 0.002, 0.01, 0.01, 0.02
    F, y = _synthetic_suite(0.004, w, n=120, seed=5)
    e = np.random.default_rng(6).uniform(0, 30, len(y)) * (np.arange(len(y)) % 3 == 0)
    m = LC.LayerCostModel.from_suite(np.column_stack([F, e]), y + 0.05 * e, cache_bytes=2e6)
    assert m.has_spill and m.cache_bytes == 2e6 and m.n_features == len(LC.FEATURE_NAMES) + 1
    assert m.w_spill == pytest.approx(0.05, rel=1e-6) and m.c0 == pytest.approx(0.004, rel=1e-6)
    assert len(m.mult) == len(LC.CLASSES) + 2 and m.noise == LC.NOISE  # the fit is exact
    with pytest.raises(mel.InputError, match="the spill MB last"):
        m.predict(F)
    with pytest.raises(mel.InputError, match="needs the cache size"):
        LC.LayerCostModel(0.0, w, w_spill=0.1)
    with pytest.raises(mel.InputError, match="finite numbers >= 0"):
        LC.LayerCostModel(0.0, w, cache_bytes=-1)
    # calibration: five networks 1.2x slower than predicted
    rng = np.random.default_rng(2)
    Fn = np.column_stack([_nets(rng, 205, q), rng.uniform(0, 40, 205)])
    shots, test = Fn[:5], Fn[5:]
    c = LC.LayerCostModel(m.c0, m.w, cache_bytes=m.cache_bytes, w_spill=m.w_spill).calibrate(shots, 1.2 * m.predict(shots))
    np.testing.assert_allclose(c.mult, c.mult[0], rtol=1e-9)
    assert c.mult[0] == pytest.approx(1.2, rel=0.01)
    np.testing.assert_allclose(c.predict(test), 1.2 * m.predict(test), rtol=0.01)
    c0, wc = c.coefficients()  # the spill's calibrated ms per MB last
    np.testing.assert_allclose(c0 + test @ wc, c.predict(test), rtol=1e-12)
    # the spill part moves the interval as the other parts do: its own column of the posterior
    parts = c.parts(test)
    assert parts.shape == (200, len(LC.CLASSES) + 2) and np.allclose(parts[:, -1], m.w_spill * test[:, -1])
    back = LC.LayerCostModel.from_dict(c.to_dict())
    assert back.cache_bytes == 2e6 and back.w_spill == c.w_spill and back.shots == 5
    np.testing.assert_array_equal(back.predict(test), c.predict(test))
    np.testing.assert_array_equal(np.array(back.interval(test)), np.array(c.interval(test)))
    # a model without the term round-trips as None; an old (schema 1) dict is refused
    plain = LC.LayerCostModel.from_dict(LC.LayerCostModel(0.1, w).to_dict())
    assert plain.cache_bytes is None and not plain.has_spill and len(plain.mult) == len(LC.CLASSES) + 1
    old = dict(c.to_dict(), schema="maple_edge_lite.layer_model/1", feature_schema=2)
    with pytest.raises(mel.FormatError, match="not a layer cost model of schema"):
        LC.LayerCostModel.from_dict(old)
    with pytest.raises(mel.FormatError, match="out of shape"):  # a spill model's dict with one multiplier too few
        LC.LayerCostModel.from_dict(dict(c.to_dict(), mult=c.mult[:-1].tolist()))


def test_network_features_with_a_cache():
    t = _table([_layer("conv", 1_000_000, 1_500_000, 1_000_000), _layer("pointwise", 0, 3_000_000, 1_000_000)])
    f = LC.network_features(t, 2_000_000)
    assert len(f) == len(LC.FEATURE_NAMES) + 1 and f[-1] == pytest.approx(2.5)
    np.testing.assert_array_equal(f[:-1], LC.network_features(t))
    m = LC.LayerCostModel(0.1, np.zeros(len(LC.FEATURE_NAMES)), cache_bytes=2_000_000, w_spill=0.5)
    np.testing.assert_array_equal(m.features(t), f)
    assert m.predict(m.features(t)[None])[0] == pytest.approx(0.1 + 0.5 * 2.5)


def _conv(kind, cin, cout, macs, groups=1):
    """A layer-table row whose channel counts the table reads from its shapes (no override)."""
    return dict(_layer(kind, macs), inputs=[[1, cin, 8, 8]], output=[1, cout, 8, 8], groups=groups)


def test_unaligned_mmacs_by_hand():
    """At alignment 8: a 3 -> 19 stem (output off 8: counted), a 3 -> 16 stem (3 input channels are
    not counted), a 12 -> 16 conv (input above 4 and off 8), a 38 -> 64 pointwise, a 38-channel
    depthwise, a 40-channel depthwise, a 76 -> 76 grouped conv of 4 groups, an aligned 64 -> 128
    pointwise and a gemm 19 -> 1000 (not conv-like): conv 2 + 1.5, pointwise 0.5, depthwise 0.25,
    grouped 4 MMACs. At 2: only the 19-channel stem. The channel term: the 38-channel depthwise (off
    4; the 40-channel one is not), 0.038 thousand channels."""
    t = _table([_conv("conv", 3, 19, 2_000_000), _conv("conv", 3, 16, 9_000_000), _conv("conv", 12, 16, 1_500_000),
                _conv("pointwise", 38, 64, 500_000), _conv("depthwise", 38, 38, 250_000, 38),
                _conv("depthwise", 40, 40, 330_000, 40), _conv("grouped", 76, 76, 4_000_000, 4),
                _conv("pointwise", 64, 128, 7_000_000), dict(_layer("gemm", 19_000), inputs=[[1, 19]], output=[1, 1000])])
    A = t.array()
    assert A[:, L.ARRAY_COLUMNS.index("cin")].tolist() == [3, 3, 12, 38, 38, 40, 76, 64, 19]  # the table's counts
    np.testing.assert_allclose(LC.unaligned_mmacs(t), [3.5, 0.5, 0.25, 4.0])
    np.testing.assert_allclose(LC.unaligned_mmacs(t, 2), [2.0, 0, 0, 0])
    assert not LC.unaligned_mmacs(_table([])).any()
    f = LC.network_features(t, 2_000_000, 8)
    assert len(f) == len(LC.FEATURE_NAMES) + 5 + 1 and f[-1] == LC.spill_mbytes(t, 2_000_000)
    assert LC.ALIGN_FEATURES[-1] == LC.CHANNEL_FEATURE and LC.DW_CHANNEL_ALIGN == 4
    np.testing.assert_array_equal(f[:len(LC.FEATURE_NAMES)], LC.network_features(t))
    np.testing.assert_allclose(f[len(LC.FEATURE_NAMES):-1], [3.5, 0.5, 0.25, 4.0, 0.038])
    np.testing.assert_array_equal(LC.network_features(t, align=8), f[:-1])
    for bad in (0, 1, 8.0, True, None, 2000):
        with pytest.raises(mel.InputError, match="align must be a whole number"):
            LC.unaligned_mmacs(t, bad)


def test_alignment_model_fits_calibrates_and_round_trips():
    """A suite whose unaligned entries cost 0.004 ms per unaligned conv MMAC and 0.02 per unaligned
    depthwise MMAC more: ``from_suite(align=8)`` recovers both (and 0 for the others) beside the spill
    term; the extra lands in its class's part (the class's multiplier calibrates it); networks
    without unaligned layers predict exactly as with a model without the term; JSON round trip."""
    q = len(LC.QUANTITIES)
    w = np.zeros(len(LC.FEATURE_NAMES))
    w[0::q], w[1::q], w[2::q], w[3::q] = 0.002, 0.01, 0.01, 0.02
    F, y = _synthetic_suite(0.004, w, n=120, seed=5)
    rng = np.random.default_rng(7)
    U = np.zeros((len(y), len(LC.ALIGN_FEATURES)))
    names = [c for c, _ in LC.CLASSES]
    for i in range(len(y)):  # a third of the conv-like entries unaligned: all of their MMACs
        c = i % len(LC.CLASSES)
        if names[c] in LC.ALIGN_CLASSES and (i // len(LC.CLASSES)) % 3 == 0:
            U[i, LC.ALIGN_CLASSES.index(names[c])] = F[i, c * q + 1]
    e = rng.uniform(0, 30, len(y)) * (np.arange(len(y)) % 4 == 0)
    wa = np.array([0.004, 0.0, 0.02, 0.0])
    y = y + U[:, :4] @ wa + 0.05 * e
    m = LC.LayerCostModel.from_suite(np.column_stack([F, U, e]), y, cache_bytes=2e6, align=8)
    assert m.has_align and m.align == 8 and m.n_features == len(LC.FEATURE_NAMES) + 6 and m.w_chan == 0
    np.testing.assert_allclose(m.w_align, wa, atol=1e-9)
    assert m.w_spill == pytest.approx(0.05, rel=1e-6) and np.allclose(m.w, w, rtol=1e-6, atol=1e-9)
    with pytest.raises(mel.InputError, match="5 of the alignment and channel terms"):
        LC.LayerCostModel.from_suite(np.column_stack([F, e]), y, cache_bytes=2e6, align=8)
    with pytest.raises(mel.InputError, match="needs the alignment"):
        LC.LayerCostModel(0.0, w, w_align=[0.1, 0, 0, 0])
    with pytest.raises(mel.InputError, match="w_align must be 4 finite numbers >= 0"):
        LC.LayerCostModel(0.0, w, align=8, w_align=[-0.1, 0, 0, 0])
    # parts: the unaligned MMACs in their class's part
    Fn = np.column_stack([F[:10], U[:10], e[:10]])
    parts = m.parts(Fn)
    for j, c in enumerate(LC.ALIGN_CLASSES):
        k = names.index(c)
        np.testing.assert_allclose(parts[:, 1 + k], F[:10, k * q:(k + 1) * q] @ m.w[k * q:(k + 1) * q] + wa[j] * U[:10, j])
    # calibrated 1.3x slower: one scale, and the coefficients carry the term's calibrated cost
    c = LC.LayerCostModel(m.c0, m.w, cache_bytes=2e6, w_spill=m.w_spill, align=8, w_align=m.w_align)
    c.calibrate(Fn[:5], 1.3 * m.predict(Fn[:5]))
    c0, wc = c.coefficients()
    assert len(wc) == len(LC.FEATURE_NAMES) + 6
    np.testing.assert_allclose(c0 + Fn @ wc, c.predict(Fn), rtol=1e-12)
    # aligned rows: the plain model's prediction, bit for bit
    plain = LC.LayerCostModel(m.c0, m.w, cache_bytes=2e6, w_spill=m.w_spill)
    A = np.column_stack([F, np.zeros((len(y), len(LC.ALIGN_FEATURES))), e])
    np.testing.assert_array_equal(m.predict(A), plain.predict(np.column_stack([F, e])))
    back = LC.LayerCostModel.from_dict(c.to_dict())
    assert back.align == 8 and back.to_dict() == c.to_dict()
    np.testing.assert_array_equal(back.predict(Fn), c.predict(Fn))
    assert LC.LayerCostModel.from_dict(LC.LayerCostModel(0.1, w).to_dict()).align is None
    with pytest.raises(mel.FormatError, match="feature schema 3"):  # a model of the schema before the term
        LC.LayerCostModel.from_dict(dict(c.to_dict(), feature_schema=3))


def _depthwise_probes(seed: int, n_probes: int):
    """A synthetic suite (per class 0.002 ms, 0.01 per MMAC and per MB read, 0.02 per MB written)
    whose first ``n_probes`` depthwise entries are probes: ``(w, F, y, depthwise class index,
    probe mask, U)`` with U the alignment columns, the probes' MMACs in the depthwise one."""
    q = len(LC.QUANTITIES)
    w = np.zeros(len(LC.FEATURE_NAMES))
    w[0::q], w[1::q], w[2::q], w[3::q] = 0.002, 0.01, 0.01, 0.02
    F, y = _synthetic_suite(0.004, w, n=110, seed=seed)
    k = [c for c, _ in LC.CLASSES].index("depthwise")
    rows = np.flatnonzero(np.arange(len(y)) % len(LC.CLASSES) == k)[:n_probes]
    probe = np.zeros(len(y), bool)
    probe[rows] = True
    U = np.zeros((len(y), len(LC.ALIGN_FEATURES)))
    U[rows, 2] = F[rows, k * q + 1]
    return w, F, y, k, probe, U


def test_alignment_term_fitted_after_the_classes():
    """``class_fit``: the per-class costs come from the marked entries alone (exactly the fit
    without the others and without the term), the alignment term from what they leave of every
    entry with unaligned MMACs: 0.006 ms per unaligned depthwise MMAC on probes whose classes cost
    what the rest say; an entry with a few unaligned MMACs inside the class fit (a ShuffleNet unit)
    is predicted with the term on top."""
    w, F, y, k, probe, U = _depthwise_probes(3, 4)
    y = y + 0.006 * U[:, 2]
    m = LC.LayerCostModel.from_suite(np.column_stack([F, U]), y, align=8, class_fit=~probe)
    c0, wp = LC.fit_suite(F[~probe], y[~probe])
    assert m.c0 == c0 and np.array_equal(m.w, wp)  # the classes: the fit without the probes
    np.testing.assert_allclose(m.w_align, [0, 0, 0.006, 0], atol=1e-9)
    np.testing.assert_allclose(m.predict(np.column_stack([F, U])), y, rtol=1e-7)
    with pytest.raises(mel.InputError, match="give align"):
        LC.LayerCostModel.from_suite(F, y, class_fit=~probe)
    with pytest.raises(mel.InputError, match="booleans, one per entry"):
        LC.LayerCostModel.from_suite(np.column_stack([F, U]), y, align=8, class_fit=[True])
    # the suite's probes are the entries it leaves out of the class fit
    suite = LS.default_suite()
    mask = dict(zip((s.name for s in suite), LS.class_fit_mask(suite)))
    assert {n for n, v in mask.items() if not v} == set(LS.UNALIGNED_PROBES) and len(LS.UNALIGNED_PROBES) == 5


def test_channel_term_fitted_beside_the_alignment_term():
    """Probes whose depthwise layers cost 0.006 ms per unaligned MMAC and 0.3 ms per 1000 channels
    off 4 more (as ONNX Runtime's depthwise kernel does): the second stage recovers both, the
    channel term lands in the depthwise part, ``rescaled`` and the JSON round trip carry it, and a
    negative one or one without an alignment is refused."""
    w, F, y, k, probe, U = _depthwise_probes(4, 5)
    U[probe, -1] = np.array([0.019, 0.077, 0.307, 0.614, 0.153])  # thousands of channels off 4
    y = y + 0.006 * U[:, 2] + 0.3 * U[:, -1]
    Fs = np.column_stack([F, U])
    m = LC.LayerCostModel.from_suite(Fs, y, align=8, class_fit=~probe)
    np.testing.assert_allclose(m.w_align, [0, 0, 0.006, 0], atol=1e-9)
    assert m.w_chan == pytest.approx(0.3, rel=1e-7)
    np.testing.assert_allclose(m.predict(Fs), y, rtol=1e-7)
    P0 = LC.LayerCostModel.from_dict(dict(m.to_dict(), w_chan=0.0)).parts(Fs)
    diff = m.parts(Fs) - P0
    np.testing.assert_allclose(diff[:, 1 + k], 0.3 * U[:, -1], atol=1e-12)
    assert not np.delete(diff, 1 + k, axis=1).any()
    assert m.rescaled(1.5).w_chan == pytest.approx(0.45)
    back = LC.LayerCostModel.from_dict(m.to_dict())
    assert back.w_chan == m.w_chan and back.to_dict() == m.to_dict()
    for bad, kw in ((-0.1, {"align": 8}), (float("nan"), {"align": 8}), (0.1, {})):
        with pytest.raises(mel.InputError, match="w_chan"):
            LC.LayerCostModel(0.0, w, w_chan=bad, **kw)


def test_macs_linear():
    a, b = LC.macs_linear([1e6, 2e6, 4e6], [1.5, 2.5, 4.5])
    assert a == pytest.approx(0.5) and b == pytest.approx(1e-6)
    assert LC.macs_linear([2e6], [4.0]) == (0.0, pytest.approx(2e-6))


# --- the suite ------------------------------------------------------------------------------------

#: The layer-table kinds each suite kind must produce (the rows the cost model is fitted to).
EXPECTED = {"identity": {"relu"}, "conv": {"conv"}, "pointwise": {"pointwise"},
            "depthwise_ir": {"pointwise", "depthwise"}, "grouped": {"grouped"}, "conv_s2": {"conv"},
            "depthwise_ir_s2": {"pointwise", "depthwise"},
            "maxpool": {"maxpool"}, "avgpool": {"avgpool"}, "add": {"add", "relu"}, "hardswish": {"hardswish"},
            "swish": {"swish"}, "se": {"pointwise", "globalpool", "mul"}, "shuffle": {"transpose"},
            "concat": {"concat", "relu", "pointwise"}, "classifier": {"globalpool", "gemm"}, "gemm": {"gemm"},
            "split_shuffle": {"pointwise", "depthwise", "concat", "transpose", "copy"},
            # whole blocks (the residual add is fused into the last convolution)
            "invres": {"pointwise", "depthwise"}, "mbconv": {"pointwise", "depthwise", "globalpool", "mul"},
            "invres_hs": {"pointwise", "depthwise", "globalpool", "mul"}, "bottleneck": {"conv", "pointwise"},
            "basic": {"conv"}, "fire": {"conv", "pointwise", "concat"}, "regx": {"pointwise", "grouped"}}


def test_every_suite_entry_builds_the_layers_it_names():
    suite = LS.default_suite()
    assert len({s.name for s in suite}) == len(suite) and {s.kind for s in suite} == set(EXPECTED)
    for spec in suite:
        b = LS.layer_onnx(spec)
        assert b == LS.layer_onnx(spec)  # same spec, same bytes
        t = L.from_onnx(b)
        assert set(t.kind_counts()) == EXPECTED[spec.kind], spec.name
        if spec.kind in ("conv", "pointwise", "depthwise", "grouped"):
            assert t.kind_counts()[spec.kind] == spec.repeat
    conv = next(s for s in suite if s.name == "conv@64x28x28x4")
    assert L.from_onnx(LS.layer_onnx(conv)).totals()["macs"] == 4 * 64 * 64 * 9 * 28 * 28  # by hand
    # ResNet-50's bottleneck at 256 channels, 56x56, two of them: 1x1 256->64, 3x3 64->64, 1x1 64->256
    bneck = L.from_onnx(LS.layer_onnx(next(s for s in suite if s.name == "bottleneck@256x56x56x2")))
    assert bneck.totals()["macs"] == 2 * 56 * 56 * (256 * 64 + 64 * 64 * 9 + 64 * 256)
    assert sum(r.fused_add for r in bneck.rows) == 2
    # MobileNetV2's inverted residual, 24 channels expanded 6x at 56x56: 1x1 24->144, dw 3x3, 1x1 144->24
    ir = L.from_onnx(LS.layer_onnx(next(s for s in suite if s.name == "invrese6@24x56x56x2")))
    assert ir.totals()["macs"] == 2 * 56 * 56 * (24 * 144 + 144 * 9 + 144 * 24)
    # a depthwise 5x5 stride 2 between 1x1 40 -> 240 and 240 -> 40, at 28x28 in (14x14 out)
    dw = L.from_onnx(LS.layer_onnx(next(s for s in suite if s.name == "depthwise_ir_s2k5e240@40x28x28x1")))
    assert [r.kind for r in dw.rows] == ["pointwise", "depthwise", "pointwise"]
    assert dw.totals()["macs"] == 28 * 28 * 40 * 240 + 14 * 14 * 240 * 25 + 14 * 14 * 240 * 40
    # the fit weighs whole blocks BLOCK_WEIGHT, the chains of one kind 1
    wts = dict(zip((s.name for s in suite), LS.fit_weights(suite)))
    assert wts["bottleneck@256x56x56x2"] == LS.BLOCK_WEIGHT and wts["conv@64x28x28x4"] == 1.0
    assert sum(v == LS.BLOCK_WEIGHT for v in wts.values()) == sum(s.kind in LS.BLOCK_KINDS for s in suite) == 14
    # the small end (version 4): layers of 8-48 channels at 6-48 and 128 at 4x4, as the zoo's smallest
    # networks have them, so per-layer costs are not left to entries of 0.1 ms and more
    pw4 = L.from_onnx(LS.layer_onnx(next(s for s in suite if s.name == "pointwise@128x4x4x4")))
    assert pw4.totals()["macs"] == 4 * 128 * 128 * 4 * 4 and pw4.kind_counts() == {"pointwise": 4}
    small = L.from_onnx(LS.layer_onnx(next(s for s in suite if s.name == "depthwise_irk3e48@8x24x24x2")))
    assert small.totals()["macs"] == 2 * 24 * 24 * (8 * 48 + 48 * 9 + 48 * 8)
    assert min(s.hw for s in suite if s.kind != "gemm") == 4 and min(s.channels for s in suite) == 8
    assert set(LS.SMALL_END) <= set(wts) and len(LS.SMALL_END) == 11
    assert max(L.from_onnx(LS.layer_onnx(s)).totals()["macs"] for s in suite if s.name in LS.SMALL_END) < 1e7
    # the unaligned entries: each conv-like class has some, and their layers are unaligned at 8
    un = {s.name: LC.unaligned_mmacs(L.from_onnx(LS.layer_onnx(s))) for s in suite
          if s.name in ("conv@19x56x56x4", "pointwise@154x14x14x4", "depthwise_irk3e77@19x56x56x2",
                        "groupede19@76x28x28x4")}
    assert len(un) == 4 and (np.sum(list(un.values()), axis=0) > 0).all()
    assert un["conv@19x56x56x4"][0] == pytest.approx(4 * 19 * 19 * 9 * 56 * 56 / 1e6)  # by hand
    assert not LC.unaligned_mmacs(L.from_onnx(LS.layer_onnx(conv))).any()
    with pytest.raises(mel.InputError, match="unknown kind"):
        LS.layer_onnx(LS.LayerSpec("x@1", "nope", 8, 8, 1))

"""The few-shot predictor (maple_edge_lite.learn.bayes_linear.BayesLinear) on synthetic devices whose latency
is exactly additive in the structural one-hots, where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

import maple_edge_lite as mel
from _util import write_table
from maple_edge_lite.learn.bayes_linear import BayesLinear, structural_columns


def synthetic(n_archs=600, n_bits=12, n_devices=8, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.random((n_archs, n_bits)) < 0.4).astype(np.float32)
    X = np.column_stack([X, rng.random(n_archs) * 5])  # a continuous column the method must ignore
    base = rng.random(n_bits) + 0.2
    coefs = [base * rng.uniform(0.7, 1.3, n_bits) * rng.uniform(1, 50) for _ in range(n_devices + 1)]
    lat = np.stack([1.0 + X[:, :n_bits] @ c for c in coefs], 1)
    return X, lat[:, :n_devices], lat[:, n_devices]


def test_structural_columns_are_the_binary_ones():
    X, _, _ = synthetic()
    assert list(structural_columns(X)) == list(range(12))


def test_recovers_a_new_additive_device_from_ten_measurements():
    X, train, new = synthetic()
    m = BayesLinear(noise=0.01).fit(X, np.log(train), [f"d{i}" for i in range(train.shape[1])])
    rng = np.random.default_rng(1)
    idx = m.select(10, np.arange(len(X)), rng)
    assert len(set(idx.tolist())) == 10
    m.adapt(idx, np.log(new[idx]))
    pred = np.exp(m.predict(np.arange(len(X))))
    err = np.abs(pred / new - 1)
    assert np.median(err) < 0.03
    cols, w = m.coefficients()
    np.testing.assert_allclose(np.exp(m.predict(np.arange(5))), w[0] + X[:5, cols] @ w[1:], rtol=1e-6)


def test_scale_invariance():
    X, train, new = synthetic(seed=2)
    m = BayesLinear().fit(X, np.log(train), [])
    idx = m.select(10, np.arange(len(X)), np.random.default_rng(0))
    a = m.adapt(idx, np.log(new[idx])).predict(np.arange(len(X)))
    b = m.adapt(idx, np.log(1000 * new[idx])).predict(np.arange(len(X)))
    np.testing.assert_allclose(b - a, np.log(1000), atol=1e-6)


def test_speed_sd_widens_the_interval_in_quadrature_and_nothing_else():
    X, train, new = synthetic(seed=3)
    m = BayesLinear().fit(X, np.log(train), [])
    idx = m.select(10, np.arange(len(X)), np.random.default_rng(0))
    m.adapt(idx, np.log(new[idx]))
    ms, (_, hi) = m.predict_features(X), m.interval(np.arange(len(X)))
    m.add_speed_sd(0.2)
    lo2, hi2 = m.interval(np.arange(len(X)))
    np.testing.assert_array_equal(m.predict_features(X), ms)
    z = 1.6448536269514722  # central 90% of a normal
    np.testing.assert_allclose(np.log(hi2 / ms) ** 2, np.log(hi / ms) ** 2 + (z * 0.2) ** 2, rtol=1e-9)
    np.testing.assert_allclose(np.log(ms / lo2), np.log(hi2 / ms), rtol=1e-9)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(mel.InputError, match="speed sd"):
            m.add_speed_sd(bad)


def test_selection_modes_and_errors():
    X, train, _ = synthetic()
    m = BayesLinear(select="random").fit(X, np.log(train), [])
    pool = np.arange(100, 200)
    idx = m.select(10, pool, np.random.default_rng(0))
    assert set(idx) <= set(pool)
    g = BayesLinear(candidates=None).fit(X, np.log(train), [])
    a = g.select(10, pool, np.random.default_rng(0))
    b = g.select(10, pool, np.random.default_rng(5))
    assert list(a) == list(b)  # the full-pool greedy design does not depend on the seed
    with pytest.raises(mel.InputError, match="select"):
        BayesLinear(select="best")
    with pytest.raises(mel.InputError, match="binary structural features"):
        BayesLinear().fit(np.random.default_rng(0).random((50, 4)), np.log(train[:50]), [])


def test_adapted_model_packs_to_int8_with_small_loss(tmp_path):
    from maple_edge_lite.learn.bayes_linear import pack_adapted

    X, train, new = synthetic(seed=4)
    m = BayesLinear().fit(X, np.log(train), [])
    idx = m.select(10, np.arange(len(X)), np.random.default_rng(0))
    m.adapt(idx, np.log(new[idx]))
    names = [f"x{i}" for i in range(X.shape[1])]
    q = pack_adapted(m, tmp_path / "dev.melw", feature_names=names, absmax=np.abs(X).max(0).clip(1),
                     metadata={"provenance": {"test": 1}})
    model = mel.Model.load(tmp_path / "dev.melw")
    xs = np.ascontiguousarray(X, dtype=np.float32)
    got = model.predict(xs)
    np.testing.assert_array_equal(got, q.predict(xs))  # the core computes what the reference says
    want = np.exp(m.predict(np.arange(len(X))))
    assert np.max(np.abs(got / want - 1)) < 0.03  # int8 stays within 3% of the float model
    assert model.metadata["provenance"] == {"test": 1}


def test_train_adapt_pack_end_to_end(tmp_path):
    import subprocess
    import sys

    from maple_edge_lite.learn.adapt import adapt_base

    archs, new = write_table(tmp_path / "data")
    base = tmp_path / "base.melw"
    r = subprocess.run([sys.executable, "-m", "maple_edge_lite", "train", "--data", str(tmp_path / "data"),
                        "-o", str(base)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    meta = mel.Model.load(base).metadata
    assert meta["model_kind"] == "base" and meta["search_space"] == "nb201"
    assert meta["provenance"]["devices"] == [f"dev{d}" for d in range(6)]
    assert len(meta["provenance"]["tables"][0]["sha256"]) == 64
    idx = np.arange(0, len(archs), len(archs) // 10)[:10]
    m = adapt_base(base, [archs[i] for i in idx], new[idx], out=tmp_path / "dev.melw")
    got = mel.Model.load(tmp_path / "dev.melw").predict_archs(archs)
    from maple_edge_lite import encode as enc

    want = m.predict_features(enc.encode("nb201", archs))
    assert np.max(np.abs(got / want - 1)) < 0.03  # the int8 device model tracks the float one
    assert np.median(np.abs(want / new - 1)) < 0.05  # and both track the unseen device
    with pytest.raises(mel.InputError, match="not a base predictor"):
        adapt_base(tmp_path / "dev.melw", archs[:10], new[:10])
    with pytest.raises(mel.InputError, match="finite and positive"):
        adapt_base(base, archs[:10], -new[:10])


def test_int8_method_matches_the_float_method():
    from maple_edge_lite.learn.bayes_linear import BayesLinearInt8

    X, train, new = synthetic(seed=6)
    f = BayesLinear().fit(X, np.log(train), [])
    q = BayesLinearInt8().fit(X, np.log(train), [])
    idx = f.select(10, np.arange(len(X)), np.random.default_rng(0))
    f.adapt(idx, np.log(new[idx]))
    q.adapt(idx, np.log(new[idx]))
    all_ = np.arange(len(X))
    assert np.max(np.abs(q.predict(all_) - f.predict(all_))) < 0.03


def described_devices(n_devices=30, n_new=20, seed=7):
    """Devices whose per-op costs follow a 3-feature descriptor (think: counters per ms)."""
    rng = np.random.default_rng(seed)
    X = (rng.random((500, 10)) < 0.4).astype(np.float32)
    D = rng.standard_normal((n_devices + n_new, 3))
    M = rng.standard_normal((3, 10)) * 0.6
    coefs = np.exp(D @ M) * rng.uniform(0.95, 1.05, (n_devices + n_new, 10))
    lat = 0.2 + X @ coefs.T
    return X, lat[:, :n_devices], D[:n_devices], lat[:, n_devices:], D[n_devices:]


def test_descriptor_conditions_the_prior_and_masks_work():
    X, train, D, new, d_new = described_devices()
    m = BayesLinear(select="random").fit(X, np.log(train), [], descriptors=D, descriptor_names=["a", "b", "c"])
    idx = np.arange(3)  # very few measurements: the prior has to carry the prediction
    q = np.arange(3, len(X))

    def err(mask):
        out = []
        for j in range(new.shape[1]):
            desc = None if mask is None else np.where(mask, d_new[j], np.nan)
            m.adapt(idx, np.log(new[idx, j]), descriptor=desc)
            out.append(np.median(np.abs(np.exp(m.predict(q)) / new[q, j] - 1)))
        return float(np.mean(out))

    with_desc, without = err(np.ones(3, bool)), err(None)
    assert with_desc < 0.8 * without  # 0.105 vs 0.155 median relative error here
    assert err(np.zeros(3, bool)) == without  # everything masked: the unconditioned prior
    partial = err(np.array([True, False, True]))
    assert with_desc < partial < without  # a masked feature is marginalised, not taken as average
    d_new = d_new[0]
    new = new[:, 0]
    # The prior, descriptor block included, survives serialisation.
    names = [f"x{i}" for i in range(X.shape[1])]
    m2 = BayesLinear.from_prior(m.to_prior(names), names).use_archs(X)
    m.adapt(idx, np.log(new[idx]), descriptor=d_new)
    m2.adapt(idx, np.log(new[idx]), descriptor=d_new)
    np.testing.assert_allclose(m2.predict(q), m.predict(q), rtol=1e-10)
    with pytest.raises(mel.InputError, match="descriptor has 2 features"):
        m.adapt(idx, np.log(new[idx]), descriptor=np.ones(2))


def _posterior_by_hand(A, mu, S, z, noise, u=None):
    """The Gaussian posterior mean of c in ``z = A c + e``, ``c ~ N(mu, S)``, ``e ~ N(0, diag((noise z)^2 / u))``
    (u: per-measurement weights, default 1), in information form (precision-weighted), not the
    covariance form adapt uses."""
    Rinv = np.diag((1.0 if u is None else u) / (noise * z) ** 2)
    P = np.linalg.inv(S) + A.T @ Rinv @ A
    return np.linalg.solve(P, np.linalg.solve(S, mu) + A.T @ Rinv @ z)


def _four_feature_model(level, *, noise, scale_iters):
    """(model, X, mu, Lc): a hand-made bayes_linear prior over four binary features, mean ``level``
    times (1, 0.5, 2, 0.25, 1), indexed by the nine architectures X."""
    names = ["a", "b", "c", "d"]
    X = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0],
                  [0, 1, 1, 0], [1, 0, 1, 1], [1, 1, 1, 1]], dtype=np.float64)
    mu = level * np.array([1.0, 0.5, 2.0, 0.25, 1.0])
    Lc = np.diag([0.3, 0.2, 0.5, 0.1, 0.4]) + np.tril(np.full((5, 5), 0.05), -1)
    prior = {"method": "bayes_linear", "version": 1, "columns": names, "mu": mu.tolist(),
             "prior_factor": Lc.tolist(), "noise": noise, "shrink": 0.3, "design_noise": 0.1, "candidates": None,
             "scale_iters": scale_iters, "descriptor": None}
    return BayesLinear.from_prior(prior, names).use_archs(X), X, mu, Lc


@pytest.mark.parametrize("iters", [0, 1, 2])
@pytest.mark.parametrize("df", [None, 8.0, 2.0])
def test_scale_iters_counts_the_scale_re_estimations(iters, df):
    """scale_iters = 0 is the posterior at the measurements' median ratio to the prior mean (no
    re-estimation of the scale); each further iteration re-estimates the scale from the last
    posterior's fit and recomputes the posterior. With Student-t noise (``noise_df``), each
    iteration also re-weights every measurement by (df + 1) / (df + r^2), r its residual in units
    of the noise (EM), ``noise_df_iters`` times in all. Checked against the rule worked by hand on
    a 4-feature prior."""
    m, X, mu, Lc = _four_feature_model(1.0, noise=0.1, scale_iters=iters)
    m.noise_df = df
    idx = np.array([1, 2, 3, 5, 7, 8])
    y = np.array([4.1, 7.9, 2.2, 9.0, 6.5, 11.8])  # ms: a device about 3x the prior, not additive
    m.adapt(idx, np.log(y))
    A = np.column_stack([np.ones(len(X)), X])[idx]
    s = float(np.median(y / (A @ mu)))
    u = np.ones(len(y))
    rounds = max(iters, 1) if df is None else max(iters, m.noise_df_iters)
    for i in range(rounds):
        c = _posterior_by_hand(A, mu, Lc @ Lc.T, y / s, 0.1, u)
        r = ((y / s) - A @ c) / (0.1 * y / s)
        if df is not None and i + 1 < rounds:
            u = (df + 1) / (df + r * r)
        if i < iters:
            s *= float(np.median((y / s) / (A @ c)))
    np.testing.assert_allclose(m.coef, c * s, rtol=1e-9)
    np.testing.assert_allclose(m.weights, u, rtol=1e-9)
    if df is None:
        assert np.all(m.weights == 1)
    else:
        assert np.ptp(m.weights) > 0.1  # the rule did re-weight
    if iters == 0:
        # The scale stayed the median ratio of y to the prior means 1.5, 3, 1.25, 3.5, 2.75, 4.75:
        # sorted, the ratios are 1.76, 2.36, 2.48 (11.8 / 4.75), 2.57 (9 / 3.5), 2.63, 2.73.
        assert s == pytest.approx((11.8 / 4.75 + 9.0 / 3.5) / 2)
        np.testing.assert_allclose(m.coef[0] / c[0], (11.8 / 4.75 + 9.0 / 3.5) / 2, rtol=1e-9)


def test_student_t_noise_discounts_a_gross_measurement_error():
    """A device exactly additive but for one of its twelve measurements 2.5x too slow (a timing run
    disturbed by something else): under Student-t noise (the default) that measurement's weight
    falls near 0 and the predictions are those without the error; Gaussian noise
    (``noise_df=None``) lets it drag every coefficient."""
    X, train, new = synthetic(seed=4)
    idx = BayesLinear().fit(X, np.log(train), []).select(12, np.arange(len(X)), np.random.default_rng(0))
    y = new[idx].copy()
    y[3] *= 2.5
    err = {}
    for df in (8.0, None):
        m = BayesLinear(noise=0.03, noise_df=df).fit(X, np.log(train), [])
        err[df] = np.mean(np.abs(np.exp(m.adapt(idx, np.log(y)).predict(np.arange(len(X)))) / new - 1))
        if df is not None:
            assert m.weights[3] < 0.1 and np.delete(m.weights, 3).min() > 0.5
        err[df, "clean"] = np.mean(np.abs(np.exp(m.adapt(idx, np.log(new[idx])).predict(np.arange(len(X)))) / new - 1))
    assert err[8.0] == pytest.approx(err[8.0, "clean"], abs=0.003)
    assert err[None] > 1.3 * err[8.0] and err[None] > 1.3 * err[None, "clean"]
    assert err[8.0, "clean"] == pytest.approx(err[None, "clean"], abs=0.003)  # clean shots: the same


@pytest.mark.parametrize("level", [1e-8, 1e-12, 0.0, -1.0])
def test_a_prior_mean_near_zero_still_adapts(level):
    """A prior whose mean is within its own spread of zero at the measured archs (a degenerate
    descriptor regression, say) says nothing of the device's scale: adapt matches magnitudes
    instead of dividing by the mean (which made the posterior singular: LinAlgError), and the
    predictions and intervals are finite and ordered."""
    m, X, _, _ = _four_feature_model(level, noise=0.08, scale_iters=3)
    idx = np.array([1, 2, 3, 5, 7, 8])
    y = np.array([4.1, 7.9, 2.2, 9.0, 6.5, 11.8])
    m.adapt(idx, np.log(y))
    ms = np.exp(m.predict(np.arange(len(X))))
    lo, hi = m.interval(np.arange(len(X)))
    assert np.all(np.isfinite(ms)) and np.all((lo <= ms) & (ms <= hi)) and np.all(np.isfinite(hi))
    assert np.median(np.abs(ms[idx] / y - 1)) < 0.2  # the measured archs are fitted, not lost


@pytest.mark.parametrize("kw", [{"noise_df": 0}, {"noise_df": -2.0}, {"noise_df": float("inf")}, {"noise_df": True},
                                {"noise_df": "8"}, {"noise_df_iters": 0}, {"noise_df_iters": 2.5}])
def test_noise_df_must_be_positive_or_none(kw):
    with pytest.raises(mel.InputError, match=r"noise_df"):
        BayesLinear(**kw)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_scale_iters_must_be_a_count(bad):
    with pytest.raises(mel.InputError, match=r"scale_iters must be an integer >= 0"):
        BayesLinear(scale_iters=bad)


def test_tie_groups_label_one_op_at_every_position():
    from maple_edge_lite.learn.bayes_linear import tie_groups

    g = tie_groups(["1", "edge0:nor_conv_3x3", "edge5:nor_conv_3x3", "live_edge2:nor_conv_3x3", "live_edge4:nor_conv_3x3",
                    "exec_edge1:skip_connect", "cell_connected", "layer3:k5_e6", "layer17:k5_e6", "layer3:k3_e1",
                    "count:nor_conv_3x3"])
    assert g[1] == g[2] != g[3] == g[4]  # same op, same family of one-hots; live one-hots their own family
    assert g[7] == g[8] != g[9]
    assert g[0] == g[6] == g[10] == -1 and len(set(g[[1, 3, 5, 7, 9]].tolist())) == 5


def position_free_devices(n_devices=16, seed=0):
    """Synthetic NAS-Bench-201 devices whose op costs do not depend on the edge the op sits on
    (each device its own price per op, plus 3% noise per position): what the tied target assumes."""
    import itertools

    from maple_edge_lite import encode as enc

    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    archs = [f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|" for o in itertools.product(ops, repeat=6)]
    names = enc.feature_names("nb201")
    X = enc.encode("nb201", archs[::5])  # 3,125 cells
    rng = np.random.default_rng(seed)
    cols = [names.index(f"edge{e}:{o}") for e in range(6) for o in ops]
    lat = []
    for _ in range(n_devices + 1):
        price = rng.lognormal(0.0, 0.8, 5) * np.array([0.0, 0.05, 1.0, 3.0, 0.7])
        c = np.tile(price, 6) * rng.uniform(0.97, 1.03, 30)
        lat.append(0.5 + X[:, cols] @ c)
    lat = np.stack(lat, 1)
    return X, names, lat[:, :n_devices], lat[:, n_devices]


def test_tied_target_learns_a_position_free_device_from_fewer_measurements():
    X, names, train, new = position_free_devices()
    devs = [f"d{i}" for i in range(train.shape[1])]
    acc = {}
    for tie in (0.0, 0.95):
        hits = []
        for seed in range(4):
            m = BayesLinear(shrink_tie=tie).fit(X, np.log(train), devs, names)
            idx = np.random.default_rng(seed).choice(len(X), 10, replace=False)
            m.adapt(idx, np.log(new[idx]))
            hits.append(np.mean(np.abs(np.exp(m.predict(np.arange(len(X)))) / new - 1) <= 0.10))
        acc[tie] = float(np.mean(hits))
    assert acc[0.95] > acc[0.0] + 0.03, acc


@pytest.mark.parametrize("bad", [-0.1, 1.0, "0.5"])
def test_shrink_tie_must_be_a_correlation_below_one(bad):
    with pytest.raises(mel.InputError, match="shrink_tie"):
        BayesLinear(shrink_tie=bad)

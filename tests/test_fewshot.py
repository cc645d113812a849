"""The few-shot predictor (maple_edge_lite.fewshot.BayesLinear) on synthetic devices whose latency
is exactly additive in the structural one-hots, where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.fewshot import BayesLinear, structural_columns


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
    from maple_edge_lite.fewshot import pack_adapted

    X, train, new = synthetic(seed=4)
    m = BayesLinear().fit(X, np.log(train), [])
    idx = m.select(10, np.arange(len(X)), np.random.default_rng(0))
    m.adapt(idx, np.log(new[idx]))
    names = [f"x{i}" for i in range(X.shape[1])]
    q = pack_adapted(m, tmp_path / "dev.melw", feature_names=names, X=X, metadata={"provenance": {"test": 1}})
    model = mel.Model.load(tmp_path / "dev.melw")
    xs = np.ascontiguousarray(X, dtype=np.float32)
    got = model.predict(xs)
    np.testing.assert_array_equal(got, q.predict(xs))  # the core computes what the reference says
    want = np.exp(m.predict(np.arange(len(X))))
    assert np.max(np.abs(got / want - 1)) < 0.03  # int8 stays within 3% of the float model
    assert model.metadata["provenance"] == {"test": 1}

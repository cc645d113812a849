"""The numpy MLP (maple_edge_lite.learn.mlp): training, quantization-aware finishing, adaptation, export."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from _util import write_table

import maple_edge_lite as mel
from maple_edge_lite import encode as enc
from maple_edge_lite.learn.mlp import MLP, MLPInt8, _arr, _unarr

SMALL = dict(hidden=(32, 32), epoch_rows=4096, batch=256, max_epochs=12, patience=3, qat_epochs=2)


def table(tmp_path, n_devices=7, seed=0):
    archs, new = write_table(tmp_path / "data", n_archs=500, n_devices=n_devices, seed=seed)
    from maple_edge_lite.learn.data import load_table

    t = load_table(tmp_path / "data", "nb201")
    return t, archs, new


def fitted(tmp_path, cls=MLP, **kw):
    t, archs, new = table(tmp_path)
    X = enc.encode("nb201", t.archs)
    m = cls(**{**SMALL, **kw}).fit(X, np.log(t.latency_ms), t.devices, enc.feature_names("nb201"))
    return m, t, X, np.asarray(new)


def test_learns_an_unseen_device_from_ten_measurements(tmp_path):
    m, t, X, new = fitted(tmp_path)
    assert m.val_devices and set(m.val_devices) < set(t.devices)  # early stopping on held-out devices
    assert 1 <= m.epochs_run <= SMALL["max_epochs"]
    idx = m.select(10, np.arange(len(X)), np.random.default_rng(0))
    assert sorted(idx) == sorted(m.ref)  # the reference archs are what gets measured
    m.adapt(idx, np.log(new[idx]))
    pred = np.exp(m.predict(np.arange(len(X))))
    err = np.abs(pred / new - 1)
    scale_only = np.abs(np.exp(np.log(new[idx]).mean()) / new - 1)  # one number for the device
    assert np.median(err) < 0.1
    assert np.median(err) < 0.5 * np.median(scale_only)


def test_fixed_seed_reproduces_and_seeds_differ(tmp_path):
    a, *_ = fitted(tmp_path)
    b, *_ = fitted(tmp_path)
    for (wa, ba), (wb, bb) in zip(a.P_qat, b.P_qat):
        assert np.array_equal(wa, wb) and np.array_equal(ba, bb)
    from maple_edge_lite.learn import mlp

    mlp._FIT_CACHE.clear()  # a genuine refit, not the cache
    c, *_ = fitted(tmp_path, seed=1)
    assert not np.array_equal(a.P_float[0][0], c.P_float[0][0])


def test_unmeasured_references_are_imputed(tmp_path):
    m, t, X, new = fitted(tmp_path)
    pool = np.setdiff1d(np.arange(len(X)), m.ref[:5])  # half the references cannot be measured
    idx = m.select(10, pool, np.random.default_rng(1))
    assert len(idx) == 10 and not np.isin(m.ref[:5], idx).any()
    m.adapt(idx, np.log(new[idx]))
    err = np.abs(np.exp(m.predict(np.arange(len(X)))) / new - 1)
    assert np.median(err) < 0.15


def test_int8_through_the_core_tracks_the_float_model(tmp_path):
    f, t, X, new = fitted(tmp_path)
    q, *_ = fitted(tmp_path, cls=MLPInt8)  # same training (cached), scored by the C++ core
    idx = f.select(10, np.arange(len(X)), np.random.default_rng(0))
    f.adapt(idx, np.log(new[idx]))
    q.adapt(idx, np.log(new[idx]))
    all_ = np.arange(len(X))
    pf, pq = np.exp(f.predict(all_)), np.exp(q.predict(all_))
    acc = lambda p: np.mean(np.abs(p / new - 1) <= 0.1)  # noqa: E731
    assert acc(pq) >= acc(pf) - 0.05
    assert np.median(np.abs(pq / pf - 1)) < 0.03


def test_train_cli_pack_adapt_predict(tmp_path):
    from maple_edge_lite.learn.adapt import adapt_base

    archs, new = write_table(tmp_path / "data", n_archs=500, n_devices=7)
    base = tmp_path / "mlp.melw"
    r = subprocess.run([sys.executable, "-m", "maple_edge_lite", "train", "--data", str(tmp_path / "data"),
                        "--method", "mlp", "-o", str(base)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    model = mel.Model.load(base)
    meta = model.metadata
    assert meta["model_kind"] == "base" and meta["fewshot"]["method"] == "mlp"
    assert meta["provenance"]["method"].startswith("mlp (seed 0")
    n_ref = len(meta["fewshot"]["reference_archs"])
    assert model.input_dim == enc.dim("nb201") + n_ref  # arch features + the descriptor
    refs = meta["fewshot"]["reference_archs"]
    pos = {a: i for i, a in enumerate(archs)}
    y = np.asarray(new)[[pos[a] for a in refs]]
    adapt_base(base, refs, y, out=tmp_path / "dev.melw")
    dev = mel.Model.load(tmp_path / "dev.melw")
    assert dev.input_dim == enc.dim("nb201") and dev.metadata["model_kind"] == "device"
    got = dev.predict_archs(archs)
    assert np.median(np.abs(got / np.asarray(new) - 1)) < 0.15
    with pytest.raises(mel.InputError, match="without counter features"):
        adapt_base(base, refs, y, descriptor={"cpu-cycles": 1.0})


def test_corrupt_weights_in_metadata_are_refused():
    a = _arr(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(_unarr(a), np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(mel.InputError, match="does not decode"):
        _unarr({**a, "shape": [4, 3]})
    with pytest.raises(mel.InputError, match="does not decode"):
        _unarr({**a, "f32le_base64": "not base64!"})
    with pytest.raises(mel.InputError, match="non-finite"):
        _unarr(_arr(np.array([1.0, np.nan])))


def test_bad_arguments():
    with pytest.raises(mel.InputError, match="space"):
        MLP(space="cubic")

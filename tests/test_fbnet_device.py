"""FBNet on a device: `measure` builds and times FBNet networks (224x224) and writes the shared
FBNet CSV columns, `predict` (and `validate --space fbnet`) adapt the shipped fbnet base to this
device from its reference networks. The device is simulated: latencies additive in the layer
ops, with per-op costs drawn around a known FBNet table's device, so the answer is known."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite import _cache, encode as enc
from maple_edge_lite.cli import main
from maple_edge_lite.device import measure as M, profile as P, runtimes

NB = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
FB = "k3_e6|k3_e1|skip|k5_e3|k3_e6|k3_e1_g2|skip|k5_e6|k3_e3|k5_e1|skip|k3_e6|k5_e6|k3_e3|skip|k5_e1_g2|k3_e6|k5_e3|k3_e1|skip|k5_e6|k3_e6"


def test_arch_space_names_the_notation():
    assert M.arch_space(NB) == "nb201" and M.arch_space(FB) == "fbnet"
    with pytest.raises(mel.InputError, match="neither a NAS-Bench-201 cell"):
        M.arch_space("k3_e6|k9_e1")
    with pytest.raises(mel.InputError, match="conv_5x5"):
        M.arch_space(NB.replace("nor_conv_3x3", "conv_5x5"))


def test_sample_fbnet_is_deterministic_distinct_and_valid():
    a = M.sample_fbnet(50, seed=4)
    assert a == M.sample_fbnet(50, seed=4) and a[:20] == M.sample_fbnet(20, seed=4)
    assert len(set(a)) == 50 and a != M.sample_fbnet(50, seed=5)
    X = enc.encode("fbnet", a)  # the encoder accepts every one
    assert X.shape[0] == 50 and all(len(s.split("|")) == 22 for s in a)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(mel.InputError, match="sample size"):
            M.sample_fbnet(bad)


@pytest.fixture
def recording_runtime():
    pytest.importorskip("onnx")
    seen = []

    def load(model, threads):
        seen.append(model)
        return lambda: None

    runtimes.register("fake-fb", lambda threads=1, **kw: runtimes.CallableRuntime("fake-fb", "1", load,
                                                                                    threads=threads))
    yield seen
    runtimes.unregister("fake-fb")


def test_measure_builds_fbnet_networks_and_writes_the_fbnet_columns(recording_runtime, tmp_path):
    import onnx

    rows = M.measure([FB], runtime="fake-fb", passes=1, warmup=1, warmup_s=0, min_runs=2, min_time_s=0, budget_s=0.05)
    assert [r.arch_str for r in rows] == [FB] and rows.conditions["network"]["space"] == "fbnet"
    g = onnx.load_from_string(recording_runtime[0]).graph
    dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 224, 224] and rows.conditions["network"]["resolution"] == 224
    out = tmp_path / "fb.csv"
    M.write_csv(rows, out)
    with open(out, newline="") as f:
        got = list(csv.reader(f))
    assert tuple(got[0]) == M.FBNET_CSV_COLUMNS and got[1][1] == FB
    assert M.read_csv(out)[0]["arch_str"] == FB
    from maple_edge_lite.cli.predict import _read_measurements

    archs, ms, _ = _read_measurements(out, "fbnet")  # what `adapt --model fbnet` reads
    assert list(archs) == [FB] and float(ms[0]) == pytest.approx(rows[0].latency_ms, abs=1e-6)
    with pytest.raises(mel.InputError, match="one search space per call"):
        M.measure([FB, NB], runtime="fake-fb")
    # the CLI builds them at 224x224 too, as the fbnet predictor's references are measured
    recording_runtime.clear()
    assert main(["measure", "--arch", FB, "--runtime", "fake-fb", "--passes", "1", "--budget-s", "0.05",
                 "--min-time-s", "0", "-q", "-o", str(tmp_path / "cli.csv")]) == 0
    g = onnx.load_from_string(recording_runtime[0]).graph
    assert [d.dim_value for d in g.input[0].type.tensor_type.shape.dim] == [1, 3, 224, 224]
    assert json.loads((tmp_path / "cli.csv.json").read_text())["network"]["resolution"] == 224


@pytest.fixture
def fbnet_device(tmp_path, monkeypatch):
    """profile/measure replaced: the device's latency is additive in the FBNet one-hots, with
    per-op costs of a device drawn near the shipped base's prior mean (3x its scale), so ten
    measurements should place it."""
    base = mel.load("fbnet")
    names = enc.feature_names("fbnet")
    prior = base.metadata["fewshot"]
    cols = [names.index(c) for c in prior["columns"]]
    rng = np.random.default_rng(7)
    coef = np.asarray(prior["mu"]) * rng.uniform(0.9, 1.1, len(prior["mu"])) * 3.0
    coef[0] = abs(coef[0]) + 1.0
    state = {"measured": [], "profiled": 0}

    def truth(archs):
        X = enc.encode("fbnet", archs).astype(np.float64)
        return np.maximum(coef[0] + X[:, cols] @ coef[1:], 0.5)

    def fake_profile(runtime="onnxruntime", threads=1, progress=None, **kw):
        state["profiled"] += 1
        return {"schema": P.SCHEMA, "feature_schema": P.FEATURE_SCHEMA, "created": "2026-01-01T00:00:00+00:00",
                "device": {"hostname": "board", "cpu_model": "Test CPU", "cores": 4, "kernel": "6.0", "pmus": {}},
                "runtime": {"name": runtime, "version": "1", "threads": threads}, "suite": {}, "timing": {},
                "features": []}

    def fake_measure(archs, runtime="onnxruntime", threads=1, device=None, progress=None, **kw):
        assert all(M.arch_space(a) == "fbnet" for a in archs)
        state["measured"] += list(archs)
        return M.Measurements([M.Row(None, a, "board", float(v), None) for a, v in zip(archs, truth(archs))],
                              conditions={"runtime": {"name": runtime, "version": "1", "threads": threads},
                                          "network": {"space": "fbnet"}})

    from maple_edge_lite.device.builders.fbnet import OPS

    def fake_prior_costs(model, runtime, threads, d, progress):
        # what this device's layer cost model would say: the true per-op costs, 30% too slow
        costs = np.zeros((22, len(OPS)))
        for i in range(22):
            for j, op in enumerate(OPS):
                c = f"layer{i}:{op}"
                costs[i, j] = coef[1 + prior["columns"].index(c)] * 1.3 if c in prior["columns"] else 0.0
        state["prior_costs"] += 1
        return (coef[0] * 1.3, costs), "layer cost model (test)"

    state["prior_costs"] = 0
    runtimes.register("fake-rt", lambda threads=1, **kw: runtimes.CallableRuntime(
        "fake-rt", "1", lambda model, threads: (lambda: None), threads=threads))
    monkeypatch.setattr(_cache, "_prior_costs", fake_prior_costs)
    monkeypatch.setattr(P, "profile", fake_profile)
    monkeypatch.setattr(M, "measure", fake_measure)
    monkeypatch.setenv("MAPLE_EDGE_LITE_CACHE", str(tmp_path / "cache"))
    state["truth"] = truth
    state["base"] = base
    yield state
    runtimes.unregister("fake-rt")


def test_predict_fbnet_adapts_the_fbnet_base_from_its_reference_networks(fbnet_device, capsys):
    query = M.sample_fbnet(40, seed=11)
    assert main(["predict", "--runtime", "fake-rt", "--json", "--arch", query[0]] + sum(
        (["--arch", a] for a in query[1:]), [])) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["search_space"] == "fbnet" and r["cache"]["built"]
    refs = mel.registry.reference_archs(fbnet_device["base"])
    assert fbnet_device["measured"] == refs  # the base's ten reference networks, nothing else
    manifest = _cache.read_manifest(r["cache"]["dir"])
    assert manifest["key"]["base"]["name"] == "fbnet" and manifest["shots"] == 10
    assert manifest["prior_mean"] == "layer cost model (test)" and fbnet_device["prior_costs"] == 1
    pred = np.array([p["latency_ms"] for p in r["predictions"]])
    true = fbnet_device["truth"](query)
    assert np.mean(np.abs(pred / true - 1) <= 0.10) >= 0.9
    # the nb201 predictor of the same device is another entry; the fbnet one is read back, not rebuilt
    assert main(["predict", "--runtime", "fake-rt", "--space", "fbnet", "--arch", FB]) == 0
    assert "ms [" in capsys.readouterr().out and len(fbnet_device["measured"]) == 10
    # one space per call: the second string is named, before anything is measured
    assert main(["predict", "--runtime", "fake-rt", "--arch", FB, "--arch", NB]) == 1
    err = capsys.readouterr().err
    assert "predicting fbnet architectures" in err and len(fbnet_device["measured"]) == 10


def test_shots_extend_an_fbnet_predictor_with_fbnet_networks(fbnet_device, capsys):
    assert main(["predict", "--runtime", "fake-rt", "--shots", "15", "--arch", FB]) == 0
    measured = fbnet_device["measured"]
    assert len(measured) == 15 and all(M.arch_space(a) == "fbnet" for a in measured)
    assert fbnet_device["profiled"] == 1


def test_recheck_an_fbnet_predictor(fbnet_device, capsys, monkeypatch):
    """`predict --recheck --space fbnet`: five of its FBNet references timed again; a 20% slower
    device rescales the fbnet entry (its CSV keeps the FBNet columns, its prior the layer costs)."""
    assert main(["predict", "--runtime", "fake-rt", "--arch", FB]) == 0
    before = float(capsys.readouterr().out.split(" ms")[0])
    fake = M.measure

    def slower(archs, *a, **kw):
        rows = fake(archs, *a, **kw)
        return M.Measurements([M.Row(r.nb201_index, r.arch_str, r.device, r.latency_ms * 1.2, None) for r in rows],
                              conditions=rows.conditions)

    monkeypatch.setattr(M, "measure", slower)
    assert main(["predict", "--runtime", "fake-rt", "--space", "fbnet", "--recheck", "--arch", FB]) == 0
    out, err = capsys.readouterr()
    assert "+20.0% (median)" in err and float(out.split(" ms")[0]) == pytest.approx(1.2 * before, rel=2e-3)
    assert len(fbnet_device["measured"]) == 15 and all(M.arch_space(a) == "fbnet" for a in fbnet_device["measured"])
    entry = _cache._device_model("fake-rt", 1, base="fbnet")[1]
    assert (entry / "measurements.csv").read_text().startswith(",".join(M.FBNET_CSV_COLUMNS))
    assert fbnet_device["profiled"] == 1 and fbnet_device["prior_costs"] == 2


def test_validate_fbnet(fbnet_device, capsys):
    assert main(["validate", "--runtime", "fake-rt", "--space", "fbnet", "--sample", "20", "--seed", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["space"] == "fbnet" and [a["arch"] for a in r["archs"]] == M.sample_fbnet(20, 2)
    assert r["acc10"] >= 0.9 and r["reference_drift"] == pytest.approx(1.0)


def test_layer_costs_add_up_to_the_layer_models_networks(tmp_path):
    """fbnet_layer_costs reads per-position op costs off nine networks; the fixed cost plus the
    costs of a network's 22 ops must be what the core charges that whole network's layer table."""
    pytest.importorskip("onnx")
    from maple_edge_lite.device import builders, layers
    from maple_edge_lite.learn import layer_cost as LC
    from maple_edge_lite.learn.layer_prior import fbnet_layer_costs
    from maple_edge_lite.device.builders.fbnet import OPS

    rng = np.random.default_rng(3)
    lm = LC.LayerCostModel(0.05, rng.uniform(0.0, 0.02, len(LC.FEATURE_NAMES)))
    LC.pack(lm, tmp_path / "lm.melw")
    core = mel.Model.load(tmp_path / "lm.melw")
    fixed, costs = fbnet_layer_costs(core)
    assert costs.shape == (22, 9) and fixed > 0.05 and (costs >= 0).all()
    assert np.all(costs[[0, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20], OPS.index("skip")] == 0)  # identities
    assert np.all(costs[[1, 5, 9, 13, 17, 21], OPS.index("skip")] > 0)  # stage-first skips are 1x1 convs
    for a in M.sample_fbnet(3, seed=5):
        ops = a.split("|")
        whole = core.predict_layers(layers.from_onnx(builders.fbnet_onnx(a)).array(), interval=False)[0]
        assert fixed + sum(costs[i, OPS.index(o)] for i, o in enumerate(ops)) == pytest.approx(whole, rel=1e-4)

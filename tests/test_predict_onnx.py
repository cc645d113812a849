"""``predict --onnx``: the layer cost model's main job, through a fake runtime (the plumbing, the
cache, the errors) and, where ONNX Runtime is installed, once for real on a small network."""

from __future__ import annotations

import json

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite import _cache
from maple_edge_lite.cli import main
from maple_edge_lite.device import measure as M, profile as P, runtimes

onnx = pytest.importorskip("onnx")

from maple_edge_lite.device.builders import zoo  # noqa: E402

FAST = dict(warmup=1, warmup_s=0.0, min_runs=3, min_time_s=0.0, budget_s=0.01)
#: How much slower the fake runtime runs than its nominal 1 GB/s (a device that throttles).
SLOWDOWN = {"factor": 1.0}


@pytest.fixture
def fake_rt(tmp_path, monkeypatch):
    """"fake-layers": every model runs in about its size in bytes / 1 GB/s (so bigger networks
    are slower), cheap timing, the cache in a temporary folder."""
    import time

    loads = []

    def load(model, threads):
        loads.append(len(model))
        dt = len(model) / 1e9 * SLOWDOWN["factor"]

        def run():
            t = time.perf_counter() + dt
            while time.perf_counter() < t:
                pass
        return run

    runtimes.register("fake-layers", lambda threads=1, **kw: runtimes.CallableRuntime(
        "fake-layers", "1.0", load, threads=threads))
    monkeypatch.setattr(M, "MEASURE_TIMING", {**M.MEASURE_TIMING, **FAST})
    monkeypatch.setattr(M, "MEASURE_PASSES", 1)
    monkeypatch.setattr(P, "LAYER_SUITE_TIMING", dict(FAST, passes=1))
    monkeypatch.setenv("MAPLE_EDGE_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(SLOWDOWN, "factor", 1.0)
    yield loads
    runtimes.unregister("fake-layers")


def _zoo_files(folder, *names):
    """The zoo networks ``names`` written as ONNX files into ``folder``: their paths."""
    out = []
    for name in names:
        p = folder / f"{name}.onnx"
        p.write_bytes(zoo.zoo_onnx(name))
        out.append(str(p))
    return out


def test_predict_onnx_builds_once_then_answers_from_the_cache(fake_rt, tmp_path, capsys):
    nets = _zoo_files(tmp_path, "mobilenet_v1_0.25_128", "mnasnet0.5")
    assert main(["predict", "--onnx", *nets, "--runtime", "fake-layers", "--json"]) == 0
    out = capsys.readouterr()
    rep = json.loads(out.out)
    assert rep["built"] and "cached this device's layer cost model" in out.err
    assert rep["interval_level"] == 0.9  # the level the core model carries
    preds = rep["predictions"]
    assert [p["path"] for p in preds] == nets
    for p in preds:
        assert 0 < p["lo_ms"] < p["latency_ms"] < p["hi_ms"] and p["macs"] > 0
    n_loads = len(fake_rt)
    assert n_loads >= len(_cache.LAYER_CALIBRATION) + 60  # the suite and the calibration networks
    # second call: from the cache, nothing measured, the same numbers; plain output with units
    assert main(["predict", "--onnx", nets[0], "--runtime", "fake-layers"]) == 0
    line = capsys.readouterr().out.strip()
    assert len(fake_rt) == n_loads
    assert line.endswith("\t" + nets[0]) and line.startswith(f"{preds[0]['latency_ms']:.4f} ms [")
    manifest = json.loads(next((tmp_path / "cache" / "layers").glob("fake-layers-1t-*/manifest.json")).read_text())
    assert set(manifest["calibration"]) == set(_cache.LAYER_CALIBRATION) and len(manifest["suite"]) >= 60


def test_predict_onnx_bad_input_is_one_line_before_measuring(fake_rt, tmp_path, capsys):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    good = tmp_path / "g.onnx"
    good.write_bytes(zoo.zoo_onnx("mobilenet_v1_0.25_128"))
    for args in (["--onnx", str(junk)], ["--onnx", str(tmp_path / "missing.onnx")],
                 ["--onnx", str(good), "--arch", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]):
        assert main(["predict", *args, "--runtime", "fake-layers"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("maple-edge-lite: error:"), err
    assert fake_rt == []  # nothing was measured


def test_a_corrupt_cached_layer_model_is_rebuilt(fake_rt, tmp_path):
    m, d, built = _cache.layer_model("fake-layers")
    assert built
    from maple_edge_lite.learn.layer_cost import MODEL_SCHEMA

    (d / "layer_model.json").write_text(json.dumps({"schema": MODEL_SCHEMA, "c0_ms": "x"}))
    m2, d2, built2 = _cache.layer_model("fake-layers")
    assert built2 and d2 == d
    with pytest.raises(mel.FormatError, match="feature schema|corrupt"):
        type(m).from_dict({"schema": MODEL_SCHEMA, "feature_schema": 1})
    F = np.zeros((1, m2.n_features))
    assert m2.predict(F)[0] == pytest.approx(m2.c0 * m2.mult[0])


def test_profile_suite_layers(fake_rt, tmp_path, capsys):
    out = tmp_path / "lp.json"
    assert main(["profile", "--suite", "layers", "--runtime", "fake-layers", "-o", str(out), "-q"]) == 0
    doc = json.loads(out.read_text())
    from maple_edge_lite.device.builders import layer_suite

    assert doc["schema"] == "maple_edge_lite.layer_profile/1" and doc["suite_version"] == layer_suite.SUITE_VERSION
    assert [e["name"] for e in doc["entries"]] == [s.name for s in layer_suite.default_suite()]
    assert all(e["latency_ms"] > 0 and e["latency_ms"] == min(e["window_medians_ms"]) for e in doc["entries"])
    text = capsys.readouterr().out
    assert "layer suite entries" in text and "conv@64x28x28x4" in text
    assert main(["profile", "--suite", "layers", "--repeat", "4", "--runtime", "fake-layers"]) == 1
    assert "--repeat" in capsys.readouterr().err


def test_predict_onnx_without_onnx_from_tables(fake_rt, tmp_path, capsys):
    """A board without the onnx package: a layer table made on a host (`layers -o`) predicts, and
    an ONNX file predicted once before is answered from the table cache (no onnx import)."""
    import subprocess
    import sys

    net = tmp_path / "m.onnx"
    net.write_bytes(zoo.zoo_onnx("mobilenet_v1_0.25_128"))
    table = tmp_path / "m.layers.json"
    assert main(["layers", str(net), "-o", str(table)]) == 0
    capsys.readouterr()
    assert main(["predict", "--onnx", str(net), "--runtime", "fake-layers", "--json"]) == 0
    want = json.loads(capsys.readouterr().out)["predictions"][0]["latency_ms"]
    code = ("import sys, json; sys.modules['onnx'] = None\n"
            "from maple_edge_lite.device import runtimes\n"
            "runtimes.register('fake-layers', lambda threads=1, **kw: runtimes.CallableRuntime('fake-layers', '1.0', "
            "lambda m, t: (lambda: None), threads=threads))\n"
            "from maple_edge_lite.cli import main\n"
            f"sys.exit(main(['predict', '--onnx', {str(table)!r}, {str(net)!r}, '--runtime', 'fake-layers', '--json']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = [p["latency_ms"] for p in json.loads(r.stdout)["predictions"]]
    assert got == [want, want]  # the same table either way, the same model from the cache


def test_the_entry_holds_the_core_model_and_predict_uses_it(fake_rt, tmp_path, capsys):
    """layer_model.melw beside layer_model.json: the same model for a scheduler (through the C
    core) as the JSON one (numpy); `predict --onnx` prints the core's numbers; a missing or damaged
    .melw is packed again from the JSON without measuring anything."""
    from maple_edge_lite.device.host import core_cache
    from maple_edge_lite.device.layers import from_onnx

    m, d, built = _cache.layer_model("fake-layers")
    core = mel.Model.load(d / "layer_model.melw")
    assert built and core.kind == "layer_cost"
    assert json.loads((d / "manifest.json").read_text())["files"]["core"] == "layer_model.melw"
    p = tmp_path / "net.onnx"
    p.write_bytes(zoo.zoo_onnx("mnasnet0.5"))
    t = from_onnx(str(p))
    f = m.features(t)[None]
    want = [m.predict(f)[0], *(v[0] for v in m.interval(f))]
    np.testing.assert_allclose(core.predict_layers(t.array()), want, rtol=2e-6)
    # the spill term against this machine's per-core cache, in both (off where sysfs does not tell it)
    cache = core_cache()["bytes"]
    assert m.cache_bytes == cache and core.layer_spill == ((cache, m.w_spill) if cache is not None else (0.0, 0.0))
    assert json.loads((d / "manifest.json").read_text())["core_cache"]["bytes"] == cache
    assert main(["predict", "--onnx", str(p), "--runtime", "fake-layers", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["core_model"] == str(d / "layer_model.melw")
    got = rep["predictions"][0]
    assert [got["latency_ms"], got["lo_ms"], got["hi_ms"]] == [round(float(v), 6) for v in core.predict_layers(t.array())]
    n_loads = len(fake_rt)
    for damage in (lambda q: q.unlink(), lambda q: q.write_bytes(q.read_bytes()[:-1])):
        damage(d / "layer_model.melw")
        m2, d2, built2 = _cache.layer_model("fake-layers")
        assert not built2 and d2 == d and len(fake_rt) == n_loads
        again = mel.Model.load(d / "layer_model.melw")
        assert again.predict_layers(t.array()) == core.predict_layers(t.array())


def test_a_file_seen_before_is_not_read_again(tmp_path, monkeypatch):
    """The layer table of an ONNX file predicted before comes from the cache without reading
    the file when its inode, size and mtime are unchanged; a rewritten file is read again."""
    from maple_edge_lite import format as F
    from maple_edge_lite.cli.predict import _layer_table
    from maple_edge_lite.device.layers import from_onnx

    monkeypatch.setenv("MAPLE_EDGE_LITE_CACHE", str(tmp_path / "cache"))
    p = tmp_path / "net.onnx"
    small, big = zoo.zoo_onnx("mobilenet_v1_0.25_128"), zoo.zoo_onnx("mnasnet0.5")
    p.write_bytes(small)
    want = from_onnx(small).to_dict()
    assert _layer_table(str(p)).to_dict() == want
    reads = []
    real = F.read_bytes
    monkeypatch.setattr(F, "read_bytes", lambda path, what, *a, **kw: (
        reads.append(path) if what == "ONNX model" else None) or real(path, what, *a, **kw))
    assert _layer_table(str(p)).to_dict() == want and reads == []  # answered from what was seen
    p.write_bytes(big)  # another network at the same path: size and mtime change, so it is read
    assert _layer_table(str(p)).to_dict() == from_onnx(big).to_dict() and len(reads) == 1
    for f in (tmp_path / "cache" / "tables" / "seen").iterdir():  # a damaged record: read the file again
        f.write_text("../../not-a-digest\n")
    assert _layer_table(str(p)).to_dict() == from_onnx(big).to_dict() and len(reads) == 2
    assert _layer_table(str(p)).to_dict() == from_onnx(big).to_dict() and len(reads) == 2  # rewritten record


def _conv_then(op, domain="", extra_inputs=()):
    """x [1,8,16,16] -> Conv 3x3 (8 -> 8) -> ``op`` -> y: a network with one op the layer table may
    not know (``extra_inputs``: (name, int8/float array) initializers the op reads after the conv's
    output)."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.ones((8, 8, 3, 3), np.float32), "w")]
    inits += [numpy_helper.from_array(v, n) for n, v in extra_inputs]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node(op, ["c", *(n for n, _ in extra_inputs)], ["y"], name="odd", domain=domain)]
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=opsets).SerializeToString()


def test_predict_onnx_says_which_layers_it_cannot_price(fake_rt, tmp_path, capsys):
    """An op the layer table does not know: the prediction leaves it out and says so on stderr,
    on every call (the table cached or not), and --json lists it (``unpriced_layers``). A
    quantized network (ONNX Runtime's QDQ or QOperator ops) is refused before anything is
    measured: the float32 cost model cannot price its int8 layers."""
    odd = tmp_path / "odd.onnx"
    odd.write_bytes(_conv_then("Frobnicate", domain="com.example"))
    for _ in range(2):
        assert main(["predict", "--onnx", str(odd), "--runtime", "fake-layers", "--json"]) == 0
        out = capsys.readouterr()
        rep = json.loads(out.out)["predictions"][0]
        assert rep["unpriced_layers"] == {"Frobnicate": 1} and rep["latency_ms"] > 0
        warn = [line for line in out.err.splitlines() if "cannot price" in line]
        assert warn == [f"maple-edge-lite: warning: {odd}: 1 of 2 layers are ops the layer cost model cannot price "
                        "(Frobnicate x1): the prediction leaves them out"]
        assert "LayerWarning" not in out.err and "the model bytes" not in out.err
    n_loads = len(fake_rt)
    qdq = tmp_path / "qdq.onnx"
    qdq.write_bytes(_conv_then("QuantizeLinear", extra_inputs=[("s", np.array(0.1, np.float32)),
                                                               ("z", np.array(0, np.int8))]))
    assert main(["predict", "--onnx", str(odd), str(qdq), "--runtime", "fake-layers"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[-1].startswith(f"maple-edge-lite: error: {qdq} is a quantized (int8) network "
                                                "(QuantizeLinear x1)") and "measure --onnx" in err[-1]
    assert len(fake_rt) == n_loads  # refused before measuring anything


def test_predict_onnx_input_shapes_for_dynamic_networks(fake_rt, tmp_path, capsys):
    """A network whose height and width are dynamic (a detector's input): without --input-shape a
    one-line error says which to give; with it, a prediction per shape (each its own table in the
    cache: the larger input predicts slower, and asking again gives the same numbers)."""
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.ones((16, 8, 3, 3), np.float32), "w")])
    dyn = tmp_path / "dyn.onnx"
    dyn.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert main(["predict", "--onnx", str(dyn), "--runtime", "fake-layers"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--input-shape x=?,8,?,?" in err[0]
    ms = {}
    for hw in (32, 64, 32):
        assert main(["predict", "--onnx", str(dyn), "--runtime", "fake-layers", "--json",
                     "--input-shape", f"x=1,8,{hw},{hw}"]) == 0
        p = json.loads(capsys.readouterr().out)["predictions"][0]
        assert p["macs"] == 16 * 8 * 9 * hw * hw
        assert ms.setdefault(hw, p["latency_ms"]) == p["latency_ms"]
    assert ms[64] > ms[32]
    assert len(list((tmp_path / "cache" / "tables").glob("*.layers.json"))) == 2
    table = tmp_path / "t.layers.json"
    from maple_edge_lite.device.layers import from_onnx

    from_onnx(dyn, input_shapes={"x": [1, 8, 16, 16]}).write(table)
    for args in (["--onnx", str(table), "--input-shape", "x=1,8,16,16"], ["--arch", "x", "--input-shape", "x=1,8,4,4"],
                 ["--onnx", str(dyn), "--input-shape", "y=1,8,4,4"]):
        assert main(["predict", *args, "--runtime", "fake-layers"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("maple-edge-lite: error:"), err


def test_predict_onnx_precision_is_its_own_cached_model(fake_rt, tmp_path, capsys, precision_runtime):
    """``--precision`` reaches the runtime adapter (OpenVINO's inference precision): each
    precision builds and caches its own layer cost model (the key holds the option), asking again
    rebuilds nothing; a runtime that takes no precision, or --precision without --onnx, is a
    one-line error before anything is measured."""
    net = tmp_path / "m.onnx"
    net.write_bytes(zoo.zoo_onnx("mobilenet_v1_0.25_128"))
    for prec, built in (("f32", True), ("bf16", True), ("f32", False)):
        assert main(["predict", "--onnx", str(net), "--runtime", "fake-prec", "--precision", prec, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["built"] is built
    entries = sorted((tmp_path / "cache" / "layers").glob("fake-prec-1t-*/manifest.json"))
    assert len(entries) == 2
    assert sorted(json.loads(e.read_text())["key"]["runtime"]["options"]["precision"] for e in entries) == ["bf16", "f32"]
    assert {"f32", "bf16"} <= set(precision_runtime)
    n = len(precision_runtime)
    runtimes.register("fake-plain", lambda threads=1: runtimes.CallableRuntime(
        "fake-plain", "1.0", lambda model, threads: (lambda: None), threads=threads))
    try:
        for args, msg in ((["--onnx", str(net), "--runtime", "fake-plain", "--precision", "f32"], "precision"),
                          (["--arch", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--precision", "f32"],
                           "--precision go with --onnx")):
            assert main(["predict", *args]) == 1
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("maple-edge-lite: error:") and msg in err[0], err
    finally:
        runtimes.unregister("fake-plain")
    assert len(precision_runtime) == n


def test_predict_onnx_recheck_rescales_to_the_speed_now(fake_rt, tmp_path, capsys):
    """``predict --onnx --recheck``: without a cached model nothing is rechecked (the build
    measures); after the device slows to 1.5x, the five calibration networks are timed again, the
    model is rescaled (predictions 1.5x, as refitting on slower measurements would give) and its
    interval widened by the drift; the manifest keeps each recheck; the .melw the core loads is
    the rescaled one; --recheck with --refresh rebuilds instead."""
    net = tmp_path / "m.onnx"
    net.write_bytes(zoo.zoo_onnx("mobilenet_v1_0.25_128"))
    args = ["predict", "--onnx", str(net), "--runtime", "fake-layers", "--json"]
    assert main(args + ["--recheck"]) == 0
    out = capsys.readouterr()
    first = json.loads(out.out)
    assert first["built"] and first["recheck"] is None and "calibration networks run" not in out.err
    p0 = first["predictions"][0]
    n_loads = len(fake_rt)
    SLOWDOWN["factor"] = 1.5
    assert main(args + ["--recheck"]) == 0
    out = capsys.readouterr()
    rep = json.loads(out.out)
    rc = rep["recheck"]
    assert not rep["built"] and rc["networks"] == len(_cache.LAYER_CALIBRATION) and rc["applied"]
    assert rc["ratio"] == pytest.approx(1.5, rel=0.1)
    assert "calibration networks run +" in out.err and "model rescaled to the speed now" in out.err
    assert len(fake_rt) - n_loads >= len(_cache.LAYER_CALIBRATION)  # only they were timed again
    assert len(fake_rt) - n_loads < 60  # not the suite
    p1 = rep["predictions"][0]
    assert p1["latency_ms"] == pytest.approx(rc["ratio"] * p0["latency_ms"], rel=1e-5)
    assert p1["hi_ms"] / p1["lo_ms"] > p0["hi_ms"] / p0["lo_ms"]  # the drift widens the interval
    d = next((tmp_path / "cache" / "layers").glob("fake-layers-1t-*"))
    manifest = json.loads((d / "manifest.json").read_text())
    assert len(manifest["rechecks"]) == 1 and manifest["speed_ratio"] == pytest.approx(rc["ratio"], rel=1e-4)
    m = mel.learn.layer_cost.LayerCostModel.from_dict(json.loads((d / "layer_model.json").read_text()))
    assert m.speed_sd == pytest.approx(abs(np.log(rc["ratio"])), rel=1e-3)
    # the next recheck compares with the rescaled speed: about 1 now
    assert main(args + ["--recheck"]) == 0
    rc2 = json.loads(capsys.readouterr().out)["recheck"]
    assert rc2["ratio"] == pytest.approx(1.0, abs=0.1)
    manifest = json.loads((d / "manifest.json").read_text())
    assert [r["ratio"] for r in manifest["rechecks"]] == [rc["ratio"], rc2["ratio"]]
    # --refresh: rebuilt at the speed now, no recheck
    assert main(args + ["--recheck", "--refresh"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["built"] and rep["recheck"] is None


def test_layer_recheck_without_a_model_measures_nothing_and_ctrl_c_keeps_the_entry(fake_rt, tmp_path, monkeypatch):
    assert _cache.layer_recheck("fake-layers") is None
    assert fake_rt == []
    _, d, _ = _cache.layer_model("fake-layers")
    before = {p.name: p.read_bytes() for p in d.iterdir()}

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(M, "time_models", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _cache.layer_recheck("fake-layers")
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert not [p for p in d.parent.iterdir() if p.name.endswith(".tmp")]  # no staged folder left


def test_validate_onnx_scores_the_layer_model_on_the_files(fake_rt, tmp_path, capsys):
    """``validate --onnx``: the files predicted as ``predict --onnx`` predicts them, measured, scored
    (±10%, MAPE, coverage; Spearman from three networks), the calibration networks timed again for
    the drift (1.5x once the device slows, with the advice to --recheck), the cache left as it was;
    --csv writes measure --onnx's table; bad combinations are one-line errors."""
    nets = _zoo_files(tmp_path, "mobilenet_v1_0.25_128", "mnasnet0.5")
    assert main(["predict", "--onnx", *nets, "--runtime", "fake-layers", "--json"]) == 0
    preds = {p["path"]: p for p in json.loads(capsys.readouterr().out)["predictions"]}
    d = next((tmp_path / "cache" / "layers").glob("fake-layers-1t-*"))
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    csv_path = tmp_path / "v.csv"
    assert main(["validate", "--onnx", *nets, "--runtime", "fake-layers", "--json", "--csv", str(csv_path)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert not rep["built"] and [r["path"] for r in rep["networks"]] == nets
    for r in rep["networks"]:
        assert r["latency_ms"] == pytest.approx(preds[r["path"]]["latency_ms"], rel=1e-6) and r["measured_ms"] > 0
    y = np.array([r["measured_ms"] for r in rep["networks"]])
    p = np.array([r["latency_ms"] for r in rep["networks"]])
    assert rep["acc10"] == pytest.approx(np.mean(np.abs(p / y - 1) <= 0.1))
    assert rep["spearman"] is None and rep["interval_level"] == 0.9 and 0 <= rep["coverage"] <= 1
    assert rep["calibration_drift"] == pytest.approx(1.0, abs=0.15) and rep["drift_networks"] == 5
    assert csv_path.read_text().splitlines()[0] == "path,sha256,device,latency_ms"
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # the cache only read
    SLOWDOWN["factor"] = 1.5
    assert main(["validate", "--onnx", *nets, "--runtime", "fake-layers"]) == 0
    out = capsys.readouterr().out
    assert "calibration networks run +" in out and "predict --onnx FILE --recheck --runtime fake-layers" in out
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    for bad, what in ((["--onnx", nets[0], "--sample", "5"], "--onnx goes without"),
                      (["--onnx", str(tmp_path / "t.json")], "layer table"),
                      (["--precision", "f32"], "--precision go with --onnx")):
        if what == "layer table":
            (tmp_path / "t.json").write_text("{}")
        assert main(["validate", "--runtime", "fake-layers", *bad]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and what in err[0], err

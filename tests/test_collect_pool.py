"""tools/collect_pool.py (resume after an interruption, without any real runtime) and BayesLinear
trained on devices with and without a descriptor."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from maple_edge_lite.device import measure as M
from maple_edge_lite.device import profile as P
from maple_edge_lite import InputError
from maple_edge_lite.learn.bayes_linear import BayesLinear
from maple_edge_lite.device.runtimes import ModelRejectedError

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _load_tool():
    spec = importlib.util.spec_from_file_location("collect_pool", TOOLS / "collect_pool.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Interrupt(Exception):
    pass


def _fake_timing(ms):
    return M.Timing(median_ms=ms, trimmed_mean_ms=ms, p10_ms=ms, p90_ms=ms, mad_ms=0.0, cv=0.0, runs=5,
                    warmup_runs=1, stable=True, wall_s=0.0, window_ms=5 * ms, thread_cpu_ms=5 * ms)


@pytest.fixture
def fake(monkeypatch):
    """Replace measure.measure and profile.profile/save_descriptor; record every call; raise
    KeyboardInterrupt-like _Interrupt on the call numbered ``state['fail_at']``."""
    state = {"calls": [], "profiles": [], "fail_at": None}

    def measure(archs, runtime="onnxruntime", threads=1, resolution=32, *, device=None, index=None, passes=None,
                runtime_options=None, **timing):
        state["calls"].append((device, tuple(archs)))
        state.setdefault("options", []).append(runtime_options)
        if state["fail_at"] is not None and len(state["calls"]) == state["fail_at"]:
            raise _Interrupt("interrupted")
        rows, rejected = M.Measurements(), []
        for a in archs:  # as measure does: a network rejected twice in a row is left out and listed
            tries = 0
            while tries < 2 and state.get("reject", {}).get(a, 0) > 0:
                state["reject"][a] -= 1
                tries += 1
            if tries == 2:
                rejected.append({"arch_str": a, "error": f"{runtime}: converter crashed on {a}"})
                continue
            ms = 1.0 + 0.01 * len(a) * threads
            rows.append(M.Row((index or {}).get(a), a, device, ms, _fake_timing(ms), [ms]))
        if not rows:
            raise ModelRejectedError(f"{runtime} rejected every model; the first: {rejected[0]['error']}")
        rows.conditions = {"runtime": {"name": runtime, "version": "0-fake", "threads": threads},
                           "rejected": rejected}
        return rows

    def profile(runtime, threads=1, runtime_options=None, **kw):
        state["profiles"].append((runtime, threads) + ((runtime_options,) if runtime_options else ()))
        return {"schema": P.SCHEMA, "fake": True, "runtime": runtime, "threads": threads}

    def save_descriptor(desc, path):
        Path(path).write_text(json.dumps(desc))
        return str(path)

    monkeypatch.setattr(M, "measure", measure)
    monkeypatch.setattr(P, "profile", profile)
    monkeypatch.setattr(P, "save_descriptor", save_descriptor)
    return state


def test_resume_measures_only_what_is_missing(tmp_path, fake):
    tool = _load_tool()
    out = tmp_path / "pool"
    pairs = [("rtA", 1), ("rtB", 2)]
    archs = M.sample_archs(12, 0)
    idx_csv = tmp_path / "archs.csv"
    idx_csv.write_text("nb201_index,arch_str\n" + "".join(f"{100 + i},{a}\n" for i, a in enumerate(archs)))
    kw = dict(n=12, seed=0, chunk=5, prefix="vm", archs_csv=idx_csv, log=lambda s: None)

    # Chunk 0 of both pairs, then chunk 1 of rtA is interrupted (the 3rd measure call).
    fake["fail_at"] = 3
    with pytest.raises(_Interrupt):
        tool.collect(out, pairs, **kw)
    assert fake["profiles"] == [("rtA", 1), ("rtB", 2)]
    a_rows = M.read_csv(out / "vm-rtA-1t.csv")
    assert [r["arch_str"] for r in a_rows] == archs[:5]
    assert [r["nb201_index"] for r in a_rows] == list(range(100, 105))
    assert len(M.read_csv(out / "vm-rtB-2t.csv")) == 5
    man = json.loads((out / "manifest.json").read_text())
    assert [c["device"] for c in man["chunks"]] == ["vm-rtA-1t", "vm-rtB-2t"]
    assert all(c["loadavg_before"] is None or len(c["loadavg_before"]) == 3 for c in man["chunks"])

    # Lose the tail of rtB's CSV as well: the rerun must refill exactly that.
    lines = (out / "vm-rtB-2t.csv").read_text().splitlines(keepends=True)
    (out / "vm-rtB-2t.csv").write_text("".join(lines[:4]))  # header + 3 rows

    fake["calls"].clear()
    fake["fail_at"] = None
    man = tool.collect(out, pairs, **kw)
    assert fake["profiles"] == [("rtA", 1), ("rtB", 2)], "descriptors already on disk were profiled again"
    assert fake["calls"] == [
        ("vm-rtB-2t", tuple(archs[3:5])),
        ("vm-rtA-1t", tuple(archs[5:10])), ("vm-rtB-2t", tuple(archs[5:10])),
        ("vm-rtA-1t", tuple(archs[10:])), ("vm-rtB-2t", tuple(archs[10:])),
    ]
    for dev in ("vm-rtA-1t", "vm-rtB-2t"):
        rows = M.read_csv(out / f"{dev}.csv")
        assert sorted(r["arch_str"] for r in rows) == sorted(archs)
        assert {r["device"] for r in rows} == {dev}
    assert man["counts"] == {"vm-rtA-1t": 12, "vm-rtB-2t": 12}
    assert len(man["runs"]) == 2 and all(r["started"] for r in man["runs"])
    assert man["runs"][0]["finished"] is None and man["runs"][1]["finished"]

    # A third run has nothing left to do.
    fake["calls"].clear()
    tool.collect(out, pairs, **kw)
    assert fake["calls"] == []


def test_pair_spec_parsing():
    tool = _load_tool()
    assert tool.parse_pair("openvino:2") == ("openvino", 2, {})
    assert tool.parse_pair("openvino:1:precision=f32") == ("openvino", 1, {"precision": "f32"})
    assert tool.parse_pair("torch:1:mode=jit,channels_last=true") == (
        "torch", 1, {"mode": "jit", "channels_last": True})
    for bad in ("openvino", "openvino:0", ":1", "ort:x", "ort:1:precision", "ort:1:=f32", "ort:1:a b=1"):
        with pytest.raises(SystemExit):
            tool.parse_pair(bad)
    assert tool.device_name("vm", "openvino", 1, {"precision": "f32"}) == "vm-openvino-f32-1t"
    assert tool.device_name("vm", "torch", 2, {"mode": "jit", "channels_last": True}) == \
        "vm-torch-channels_last-jit-2t"
    assert tool.device_name("vm", "ncnn", 1, {"fp16": False}) == "vm-ncnn-nofp16-1t"


def test_runtime_options_reach_profile_and_measure(tmp_path, fake):
    """A configured pair is its own device, profiled and measured with its options, and the
    manifest keeps its runtime (so leave-one-runtime-out holds out every configuration of it)."""
    tool = _load_tool()
    out = tmp_path / "pool"
    pairs = [tool.parse_pair("rtA:1"), tool.parse_pair("rtA:1:precision=f32")]
    man = tool.collect(out, pairs, n=4, seed=0, chunk=4, prefix="vm", archs_csv=None, log=lambda s: None)
    assert fake["profiles"] == [("rtA", 1), ("rtA", 1, {"precision": "f32"})]
    assert fake["options"] == [None, {"precision": "f32"}]
    assert man["counts"] == {"vm-rtA-1t": 4, "vm-rtA-f32-1t": 4}
    assert man["pairs"]["vm-rtA-f32-1t"]["runtime"] == "rtA"
    assert man["pairs"]["vm-rtA-f32-1t"]["options"] == {"precision": "f32"}
    assert "options" not in man["pairs"]["vm-rtA-1t"]
    with pytest.raises(ValueError, match="twice"):
        tool.collect(out, pairs + [("rtA", 1, {})], n=4, seed=0, chunk=4, archs_csv=None, log=lambda s: None)


def test_a_network_the_runtime_rejects_does_not_stop_the_pool(tmp_path, fake):
    """A rejected network (a converter crash; measure retries it once) is recorded in the manifest
    and skipped; the rest of its chunk is measured and a rerun does not try it again."""
    tool = _load_tool()
    out = tmp_path / "pool"
    archs = M.sample_archs(6, 0)
    fake["reject"] = {archs[1]: 1, archs[4]: 99}  # archs[1]: an intermittent crash, archs[4]: always
    kw = dict(n=6, seed=0, chunk=3, prefix="vm", archs_csv=None, log=lambda s: None)
    man = tool.collect(out, [("rtA", 1)], **kw)
    got = [r["arch_str"] for r in M.read_csv(out / "vm-rtA-1t.csv")]
    assert sorted(got) == sorted(a for a in archs if a != archs[4])
    assert list(man["pairs"]["vm-rtA-1t"]["rejected"]) == [archs[4]]
    assert "converter crashed" in man["pairs"]["vm-rtA-1t"]["rejected"][archs[4]]
    fake["calls"].clear()
    tool.collect(out, [("rtA", 1)], **kw)
    assert fake["calls"] == []


def test_recheck_measures_again_with_the_recorded_settings(tmp_path, fake):
    tool = _load_tool()
    out = tmp_path / "pool"
    pairs = [tool.parse_pair("rtA:1"), tool.parse_pair("rtA:2:precision=f32")]
    tool.collect(out, pairs, n=6, seed=0, chunk=6, prefix="vm", archs_csv=None, log=lambda s: None)
    fake["calls"].clear()
    fake["options"].clear()
    got = tool.recheck(out, 4, ["vm-rtA-f32-2t"], log=lambda s: None)
    assert list(got) == ["vm-rtA-f32-2t"] and got["vm-rtA-f32-2t"]["n"] == 4
    assert fake["options"] == [{"precision": "f32"}]
    assert fake["calls"] == [("vm-rtA-f32-2t", tuple(M.sample_archs(6, 0)[:4]))]
    assert got["vm-rtA-f32-2t"]["within_10pct"] == 1.0 and got["vm-rtA-f32-2t"]["median_abs_rel"] == 0.0
    man = json.loads((out / "manifest.json").read_text())
    assert man["recheck"]["vm-rtA-f32-2t"]["within_5pct"] == 1.0
    # A pool measured on a busier day disagrees with itself: the recheck says by how much.
    rows = (out / "vm-rtA-1t.csv").read_text().splitlines()
    head, body = rows[0], [r.rsplit(",", 1) for r in rows[1:]]
    (out / "vm-rtA-1t.csv").write_text("\n".join([head] + [f"{a},{float(b) * 1.2}" for a, b in body]) + "\n")
    got = tool.recheck(out, 6, log=lambda s: None)
    assert got["vm-rtA-1t"]["within_10pct"] == 0.0 and got["vm-rtA-1t"]["median_rel"] == pytest.approx(-1 / 6, abs=1e-3)


def _synthetic(seed=0, m=24, n=400):
    """Devices whose coefficients are a linear function of a 2-feature descriptor plus small noise."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, 6))
    X[np.arange(n), rng.integers(0, 3, n)] = 1
    X[np.arange(n), 3 + rng.integers(0, 3, n)] = 1
    A = np.column_stack([np.ones(n), X])
    base = np.array([1.0, 0.2, 0.5, 1.0, 0.1, 0.4, 0.9])
    dirs = np.array([[0, 0.6, -0.3, 0, 0, 0.5, -0.4], [0, -0.2, 0, 0.7, 0.3, 0, 0]])

    def device(phi):
        c = base + phi @ dirs + 0.01 * rng.standard_normal(7)
        return A @ c

    phis = rng.uniform(-0.5, 0.5, size=(m, 2))
    Y = np.log(np.column_stack([device(p) for p in phis]))
    return X, A, phis, Y, device


def test_bayes_linear_with_masked_and_unmasked_descriptors():
    X, A, phis, Y, device = _synthetic()
    m = Y.shape[1]
    D = phis.copy()
    D[m // 2:] = np.nan  # half the training devices carry no descriptor (public tables, no PMU)
    D[3, 1] = np.nan  # and one is partly masked
    names = [f"x{i}" for i in range(X.shape[1])]
    model = BayesLinear(select="random").fit(X, Y, [f"d{i}" for i in range(m)], names, descriptors=D,
                                             descriptor_names=["f0", "f1"])
    plain = BayesLinear(select="random").fit(X, Y, [f"d{i}" for i in range(m)], names)
    rng = np.random.default_rng(1)
    gains = []
    for _ in range(8):
        phi = rng.uniform(-0.5, 0.5, 2)
        truth = device(phi)
        idx = rng.choice(len(X), 2, replace=False)  # too few shots to learn 7 coefficients
        y = np.log(truth[idx])
        err_desc = np.abs(np.exp(model.adapt(idx, y, descriptor=phi).predict(np.arange(len(X)))) / truth - 1).mean()
        err_none = np.abs(np.exp(model.adapt(idx, y).predict(np.arange(len(X)))) / truth - 1).mean()
        # A device whose descriptor is entirely masked gets exactly the unconditioned prior.
        c_none = model.adapt(idx, y).coef.copy()
        c_nan = model.adapt(idx, y, descriptor=np.array([np.nan, np.nan])).coef
        np.testing.assert_allclose(c_nan, c_none, rtol=0, atol=0)
        # ... which is the prior of the model trained without descriptors.
        np.testing.assert_allclose(plain.adapt(idx, y).coef, c_none, rtol=1e-10)
        # A partly masked descriptor still yields a usable, finite model.
        assert np.isfinite(model.adapt(idx, y, descriptor=np.array([phi[0], np.nan])).coef).all()
        gains.append(err_none - err_desc)
    assert np.mean(gains) > 0.01, gains  # the descriptor carries the device's coefficients
    assert sum(g > 0 for g in gains) >= 6


def test_descriptor_regression_strength_is_cross_validated():
    """The ridge is chosen by leave-one-device-out over the training devices: an informative
    descriptor gets a finite ridge; a descriptor of pure noise gets no weight (B = 0), so the
    model's prior is the unconditioned one and adapting with or without it agrees."""
    X, A, phis, Y, device = _synthetic(m=12)
    m = Y.shape[1]
    names = [f"x{i}" for i in range(X.shape[1])]
    devs = [f"d{i}" for i in range(m)]
    good = BayesLinear(select="random").fit(X, Y, devs, names, descriptors=phis, descriptor_names=["f0", "f1"])
    assert good.desc["ridge"] is not None and np.abs(good.desc["B"]).max() > 0
    cv = good.desc["cv"]["loo_mse"]
    assert min(v for k, v in cv.items() if k != "none") < 0.5 * cv["none"], cv
    # Pure noise: weight in at most 2 of 12 draws (the rule's false positives on 12 devices: ~5%).
    weighted = []
    for seed in range(12):
        noise = np.random.default_rng(seed).standard_normal((m, 20))
        bad = BayesLinear(select="random").fit(X, Y, devs, names, descriptors=noise,
                                               descriptor_names=[f"n{j}" for j in range(20)])
        weighted.append(bad.desc["ridge"] is not None)
        assert bad.desc["B"].any() == weighted[-1]
    assert sum(weighted) <= 2, weighted
    seed = weighted.index(False)
    noise = np.random.default_rng(seed).standard_normal((m, 20))
    bad = BayesLinear(select="random").fit(X, Y, devs, names, descriptors=noise,
                                           descriptor_names=[f"n{j}" for j in range(20)])
    plain = BayesLinear(select="random").fit(X, Y, devs, names)
    idx = np.arange(5)
    np.testing.assert_allclose(bad.adapt(idx, Y[idx, 0], descriptor=noise[0]).coef,
                               plain.adapt(idx, Y[idx, 0]).coef, rtol=1e-6)
    # A fixed strength is still available (and used as given).
    fixed = BayesLinear(select="random", descriptor_ridge=1.0).fit(X, Y, devs, names, descriptors=noise)
    assert fixed.desc["ridge"] == 1.0 and fixed.desc["cv"] is None and fixed.desc["B"].any()
    with pytest.raises(ValueError, match="descriptor_ridge"):
        BayesLinear(descriptor_ridge=0)


def test_bayes_linear_descriptor_shape_is_checked():
    X, A, phis, Y, _ = _synthetic(m=10)
    model = BayesLinear().fit(X, Y, [f"d{i}" for i in range(10)], descriptors=phis, descriptor_names=["a", "b"])
    # InputError with the shapes, not whatever numpy broadcasting would raise further in.
    with pytest.raises(InputError, match=r"descriptor has 3 features, the model was trained with 2 \(a, b"):
        model.adapt(np.arange(3), Y[:3, 0], descriptor=np.zeros(3))
    with pytest.raises(InputError, match=r"descriptors must be \[10 training devices, q features\] \(got \[5, 2\]\)"):
        BayesLinear().fit(X, Y, [f"d{i}" for i in range(10)], descriptors=phis[:5])

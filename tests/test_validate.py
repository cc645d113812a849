"""`maple-edge-lite validate`: the scores it prints are those of the measurements against the
device model, the plot and its failure modes are checked before anything is measured, and an
interrupted run leaves nothing behind. The device is simulated: a real device model (the shipped
base adapted to synthetic measurements) and a `measure` whose latencies are that model's own
predictions times known factors, so the expected scores are known exactly."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite import _cache
from maple_edge_lite.cli import main
from maple_edge_lite.device import measure as M
from maple_edge_lite.learn.adapt import adapt_base

# measured / predicted for the sample, cycled: 4 within 5%, 2 within 10%, 2 within 15%, 2 beyond
FACTORS = np.array([1.0, 1.02, 0.97, 0.96, 1.08, 0.92, 1.13, 0.88, 1.3, 0.6])


@pytest.fixture
def device(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    refs = M.sample_connected(10, seed=99)
    adapt_base(mel.load(), refs, np.exp(rng.normal(0, 0.4, 10)), out=tmp_path / "device.melw")
    model = mel.Model.load(tmp_path / "device.melw")
    state = {"measured": 0}

    def fake_measure(archs, runtime="onnxruntime", threads=1, device=None, progress=None, **kw):
        state["measured"] += 1
        if state.get("interrupt"):
            raise KeyboardInterrupt
        pred = model.predict_archs(archs).astype(np.float64)
        ms = pred * np.resize(FACTORS, len(archs))
        return M.Measurements([M.Row(None, a, "dev", float(v), None) for a, v in zip(archs, ms)],
                              conditions={"runtime": {"name": runtime, "version": "1", "threads": threads}})

    monkeypatch.setattr(_cache, "_device_model", lambda runtime, threads, **kw: (model, tmp_path, False))
    monkeypatch.setattr(M, "measure", fake_measure)
    state["model"] = model
    return state


def test_scores_are_those_of_the_measurements(device, capsys):
    assert main(["validate", "--sample", "20", "--seed", "3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["acc5"], r["acc10"], r["acc15"]) == (0.4, 0.6, 0.8)
    assert r["sample"] == 20 and len(r["archs"]) == 20 and r["interval_level"] == 0.9
    archs = [a["arch"] for a in r["archs"]]
    assert archs == M.sample_connected(20, 3) and all(M.is_connected(a) for a in archs)
    _, lo, hi = device["model"].predict_archs_interval(archs)
    y = np.array([a["measured_ms"] for a in r["archs"]])
    assert r["coverage"] == pytest.approx(np.mean((y >= lo - 1e-6) & (y <= hi + 1e-6)), abs=0.051)
    # Spearman of y against predictions: the same ranking test a user would run by hand
    p = np.array([a["latency_ms"] for a in r["archs"]])
    # average ranks (ties share the mean of their positions; float32 predictions can tie)
    ranks = lambda v: np.array([np.sum(v < x) + (np.sum(v == x) + 1) / 2 for x in v])  # noqa: E731
    assert r["spearman"] == pytest.approx(np.corrcoef(ranks(y), ranks(p))[0, 1], abs=1e-9)
    assert main(["validate", "--sample", "20", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "±10% 0.60" in out and "interval covers" in out


def test_plot_without_matplotlib_fails_before_measuring(device, capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["validate", "--sample", "5", "--plot", str(tmp_path / "v.png")]) == 3
    err = capsys.readouterr().err
    assert "pip install 'maple-edge-lite[plot]'" in err and device["measured"] == 0


def test_plot_into_a_missing_folder_fails_before_measuring(device, capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="the [plot] extra is not installed")
    rc = main(["validate", "--sample", "5", "--plot", str(tmp_path / "nope" / "v.png")])
    assert rc == 1 and "nope" in capsys.readouterr().err and device["measured"] == 0


def test_plot_is_a_png(device, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the [plot] extra is not installed")
    assert main(["validate", "--sample", "12", "--plot", str(tmp_path / "v.png")]) == 0
    data = (tmp_path / "v.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not list(tmp_path.glob("*.tmp.png")) and not list(tmp_path.glob(".v.png.*.tmp"))  # no temporary file left


@pytest.mark.parametrize("args, fragment", [(["--sample", "0"], "--sample must be at least 1"),
                                            (["--sample", "20000"], "sample size must be an integer in 1..15284")])
def test_bad_sample(device, capsys, args, fragment):
    assert main(["validate", *args]) == 1 and fragment in capsys.readouterr().err


def test_interrupted_validate_writes_nothing(device, tmp_path, capsys):
    device["interrupt"] = True
    rc = main(["validate", "--sample", "5", "--csv", str(tmp_path / "v.csv")])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "v.csv").exists()


def test_a_change_of_speed_is_measured_on_the_reference_cells(device, tmp_path, capsys, monkeypatch):
    """The device runs 8% slower than when its predictor was built: every sample cell and every
    re-measured reference cell comes out 8% slower; validate reports the drift, the accuracy
    with it removed, and says how to rescale the predictor."""
    refs = M.sample_connected(10, seed=99)
    then = np.exp(np.random.default_rng(1).normal(0, 0.4, 10))
    (tmp_path / "measurements.csv").write_text("nb201_index,arch_str,device,latency_ms\n" + "".join(
        f",{a},dev,{float(v)!r}\n" for a, v in zip(refs, then)))
    model = device["model"]
    seen = {}

    def slow_measure(archs, runtime="onnxruntime", threads=1, device=None, progress=None, **kw):
        seen["archs"] = list(archs)
        ref = dict(zip(refs, then))
        pred = model.predict_archs(archs).astype(np.float64)
        ms = [1.08 * (ref[a] if a in ref else p) for a, p in zip(archs, pred)]
        return M.Measurements([M.Row(None, a, "dev", float(v), None) for a, v in zip(archs, ms)],
                              conditions={"runtime": {"name": runtime, "version": "1", "threads": threads}})

    monkeypatch.setattr(M, "measure", slow_measure)
    assert main(["validate", "--sample", "20", "--seed", "3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    # the five `predict --recheck` would time: spread over the references' latencies
    spread = [refs[i] for i in np.argsort(then)[[0, 2, 4, 7, 9]]]  # round(linspace(0, 9, 5)) = 0, 2, 4, 7, 9
    assert not set(refs) & set(seen["archs"][:20])
    assert len(seen["archs"]) == 25 and seen["archs"][20:] == spread
    assert len(r["archs"]) == 20 and r["drift_refs"] == 5  # the references are not scored as sample cells
    assert r["reference_drift"] == pytest.approx(1.08) and r["acc10"] == 1.0 and r["acc5"] == 0.0
    assert r["acc10_drift_corrected"] == 1.0
    assert main(["validate", "--sample", "20", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "+8.0% (median)" in out and "`maple-edge-lite predict --recheck` rescales" in out

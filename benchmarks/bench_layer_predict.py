"""One network's latency from its layer table, through the C core against numpy (issue 15,
deliverable 4; target: the core's prediction from a 60-layer table <= 5 us). From the checkout:

    pytest benchmarks/bench_layer_predict.py --benchmark-enable --benchmark-only

The network: the first 60 rows of MobileNetV3-Small's layer table (convolutions, depthwise,
squeeze-excite, hardswish passes, pools, a classifier), a device model packed by
``learn.layer_cost.pack`` from a calibrated ``LayerCostModel`` with the spill term (a 2 MiB cache, as
the shipped models on this VM) and the alignment term (8 channels; format 5: every row's channel
counts are checked, though none of these 60 is off 8). Group ``layers-60``:

* ``C API``: ``mel_model_predict_layers`` in C (``benchmarks/layer_predict/bench_predict_layers.c``,
  built with the system C compiler against the installed package: 2001 rounds of 64 calls, each
  round timed in C; the median round's ns per call), without and with the interval.
* ``Model.predict_layers``: the Python binding (pybind11) on the float32 rows, with the interval;
  and on ``LayerTable.array()``'s float64 (converted per call, what a caller holding a table pays).
* ``numpy: predict(F)``: ``LayerCostModel.predict`` (+ ``interval``) on precomputed features:
  the numpy model's evaluation alone.
* ``numpy: network_features + predict``: from the table, the numpy way (features, then
  ``predict`` and ``interval``).

The asserts check that every contender computes the same milliseconds; nothing asserts a speed.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")

import maple_edge_lite as mel  # noqa: E402
from maple_edge_lite.device import layers as L  # noqa: E402
from maple_edge_lite.device.builders import zoo  # noqa: E402
from maple_edge_lite.learn import layer_cost as LC  # noqa: E402

GROUP = "layers-60"


class _Rows:
    def __init__(self, a):
        self._a = a

    def array(self):
        return self._a


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("layer_predict")
    full = L.from_onnx(zoo.zoo_onnx("mobilenet_v3_small"))
    table = L.LayerTable(full.rows[:60], full.source)
    rng = np.random.default_rng(0)
    m = LC.LayerCostModel(0.2, rng.uniform(0.0, 0.1, len(LC.FEATURE_NAMES)), cache_bytes=2 * 2**20, w_spill=0.04,
                          align=LC.ALIGN, w_align=[0.01, 0.001, 0.16, 0.02])
    F0 = rng.uniform(0, 20, (6, m.n_features))
    m.calibrate(F0, m.predict(F0) * rng.uniform(0.8, 1.25, len(F0)))
    LC.pack(m, d / "layers.melw")
    table.write_rows(d / "rows.bin")
    A = table.array()
    assert (d / "layers.melw").read_bytes()[12] == 5
    f = m.features(table)[None]
    want = float(m.predict(f)[0])
    return {"dir": d, "table": table, "model": m, "core": mel.Model.load(d / "layers.melw"), "A": A,
            "A32": np.ascontiguousarray(A, np.float32), "F": f, "want": want}


@pytest.fixture(scope="module")
def c_bench(setup):
    cc = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if cc is None:
        pytest.skip("no C compiler on PATH")
    d = setup["dir"]
    flags = subprocess.run([sys.executable, "-m", "maple_edge_lite", "--cflags", "--libs"], capture_output=True,
                           text=True, cwd=d, check=True).stdout
    src = __import__("pathlib").Path(__file__).resolve().parent / "layer_predict" / "bench_predict_layers.c"
    exe = d / "bench_predict_layers"
    subprocess.run([cc, "-std=c99", "-O2", str(src), "-o", str(exe)] + shlex.split(flags) + ["-lm"], check=True)
    r = subprocess.run([str(exe), str(d / "layers.melw"), str(d / "rows.bin")], capture_output=True, text=True,
                       check=True)
    lines = dict((line.split(" ", 1)[0], line.split()[1:]) for line in r.stdout.splitlines())
    return lines


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("interval", [False, True], ids=["predict", "predict+interval"])
def test_c_api(benchmark, note, setup, c_bench, interval):
    ms = float(c_bench["ms"][0])
    assert ms == pytest.approx(setup["want"], rel=2e-6)
    med, p10, p90 = map(float, c_bench["predict+interval" if interval else "predict"])
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # the numbers are the C loop's own
    note(benchmark, impl="C API", interval=interval, median_ns=med, p10_ns=p10, p90_ns=p90, layers=60,
         kernel="per-layer, double accumulation")


@pytest.mark.benchmark(group=GROUP)
def test_binding_float32(benchmark, note, setup):
    core, A32 = setup["core"], setup["A32"]
    ms, lo, hi = benchmark(core.predict_layers, A32)
    assert ms == pytest.approx(setup["want"], rel=2e-6) and lo < ms < hi
    note(benchmark, impl="Model.predict_layers(float32 rows)", median_ns=benchmark.stats.stats.median * 1e9)


@pytest.mark.benchmark(group=GROUP)
def test_binding_table_array(benchmark, note, setup):
    core, A = setup["core"], setup["A"]
    ms, lo, hi = benchmark(core.predict_layers, A)
    assert ms == pytest.approx(setup["want"], rel=2e-6)
    note(benchmark, impl="Model.predict_layers(float64 LayerTable.array())", median_ns=benchmark.stats.stats.median * 1e9)


@pytest.mark.benchmark(group=GROUP)
def test_numpy_on_features(benchmark, note, setup):
    m, F = setup["model"], setup["F"]

    def run():
        return m.predict(F)[0], m.interval(F)

    ms, _ = benchmark(run)
    assert ms == pytest.approx(setup["want"], rel=1e-12)
    note(benchmark, impl="numpy: predict + interval on precomputed features",
         median_ns=benchmark.stats.stats.median * 1e9)


@pytest.mark.benchmark(group=GROUP)
def test_numpy_from_table(benchmark, note, setup):
    m, A = setup["model"], setup["A"]

    def run():
        f = m.features(_Rows(A))[None]
        return m.predict(f)[0], m.interval(f)

    ms, _ = benchmark(run)
    assert ms == pytest.approx(setup["want"], rel=1e-12)
    note(benchmark, impl="numpy: features (network_features + unaligned_mmacs + spill_mbytes) + predict + interval",
         median_ns=benchmark.stats.stats.median * 1e9)

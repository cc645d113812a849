"""ONNX network -> layer table (``maple_edge_lite.device.layers.from_onnx``) on ResNet-50
(benchmarks/_resnet50.py, 224x224, 102 MB of float32 weights), side by side with what a user
would otherwise run to get the same shapes and counts (issue 15). From the checkout:

    pytest benchmarks/bench_layers.py --benchmark-enable --benchmark-only

Group ``resnet50``:

* ``from_onnx(ModelProto)``: the table from a model already in memory (target: <= 50 ms).
* ``from_onnx(path)``: from the file: read, parse, SHA-256 of the 102 MB (recorded in the
  table's source, hashed while protobuf parses), then the table.
* ``onnx.load(path)``: reading the model alone, what any tool has to do first.
* ``infer_shapes(ModelProto)``: ``onnx.shape_inference.infer_shapes`` on the full model, the
  usual first step to count MACs by hand (it copies every weight into C++ and back).
* ``builders.count_macs(bytes)``: the package's earlier MAC counter (parse + infer_shapes).

The asserts check that every contender sees the same network; nothing asserts a speed.
"""

from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx")

from _resnet50 import resnet50_onnx  # noqa: E402  (benchmarks/ is on sys.path: conftest.py)

from maple_edge_lite.device.layers import from_onnx  # noqa: E402

MACS = 4_089_184_256       # fvcore / torchvision: 4.09 G
PARAMS = 25_557_032        # torchvision's resnet50


@pytest.fixture(scope="module")
def r50(tmp_path_factory):
    data = resnet50_onnx(batch=1)
    path = tmp_path_factory.mktemp("layers") / "resnet50.onnx"
    path.write_bytes(data)
    return data, path, onnx.load_model_from_string(data)


def _check(t):
    tot = t.totals()
    assert tot["macs"] == MACS and tot["params"] == PARAMS and tot["layers"] == 56


@pytest.mark.benchmark(group="resnet50")
def test_from_onnx_proto(benchmark, note, r50):
    t = benchmark.pedantic(from_onnx, args=(r50[2],), rounds=40, iterations=1, warmup_rounds=3)
    _check(t)
    note(benchmark, what="from_onnx(ModelProto)", layers=len(t), macs=t.totals()["macs"])


@pytest.mark.benchmark(group="resnet50")
def test_from_onnx_path(benchmark, note, r50):
    t = benchmark.pedantic(from_onnx, args=(r50[1],), rounds=8, iterations=1, warmup_rounds=1)
    _check(t)
    note(benchmark, what="from_onnx(path)", file_mb=r50[1].stat().st_size / 1e6)


@pytest.mark.benchmark(group="resnet50")
def test_onnx_load(benchmark, note, r50):
    m = benchmark.pedantic(onnx.load, args=(str(r50[1]),), rounds=8, iterations=1, warmup_rounds=1)
    assert len(m.graph.node) == len(r50[2].graph.node)
    note(benchmark, what="onnx.load(path)")


@pytest.mark.benchmark(group="resnet50")
def test_infer_shapes(benchmark, note, r50):
    inferred = benchmark.pedantic(onnx.shape_inference.infer_shapes, args=(r50[2],),
                                  kwargs=dict(strict_mode=True), rounds=5, iterations=1, warmup_rounds=1)
    assert len(inferred.graph.value_info) >= len(r50[2].graph.node) - 1
    note(benchmark, what="onnx.shape_inference.infer_shapes(ModelProto)")


@pytest.mark.benchmark(group="resnet50")
def test_count_macs(benchmark, note, r50):
    from maple_edge_lite.device.builders import count_macs

    macs = benchmark.pedantic(count_macs, args=(r50[0],), rounds=5, iterations=1, warmup_rounds=1)
    assert macs == MACS + 1000  # it counts the fc bias, as NAS-Bench-201 does
    note(benchmark, what="builders.count_macs(bytes)")

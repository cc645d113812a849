"""The YOLOv8 builder (``builders.yolov8_onnx``): Ultralytics' own parameter counts, its graph's
structure, values a timing can trust, its layer table, and errors.

Published figures: the model summaries in Ultralytics' ``yolov8.yaml`` (n: 3,157,200 parameters,
3,157,184 with gradients, 8.9 GFLOPs; s: 11,166,560 / 11,166,544, 28.8; m: 25,902,640 /
25,902,624, 79.3). The 16 without gradients are the DFL's fixed weights, part of the box decoding
the builder leaves out, so its count is the second figure exactly. Ultralytics' GFLOPs are twice
the MACs of a 640x640 image, counted by its profiler with a little more than convolutions: within
2%."""

from __future__ import annotations

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.device import builders

from _util import count_params

PUBLISHED = {"n": (3_157_184, 8.9), "s": (11_166_544, 28.8), "m": (25_902_624, 79.3)}
TINY = np.float32(1.1754944e-38)


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx")


@pytest.mark.parametrize("scale", sorted(PUBLISHED))
def test_params_and_flops_agree_with_ultralytics(onnx, scale):
    b = builders.yolov8_onnx(scale)
    params, gflops = PUBLISHED[scale]
    assert count_params(onnx, onnx.load_from_string(b), "trainable") == params
    mine = 2 * builders.count_macs(b) / 1e9
    assert abs(mine / gflops - 1) <= 0.02, f"yolov8{scale}: {mine:.2f} GFLOPs vs Ultralytics' {gflops}"


def test_yolov8n_has_the_nodes_of_yolov8_yaml(onnx):
    # Convs: 5 stride-2 + C2f (cv1, 2 per bottleneck, cv2) with 1, 2, 2, 1 bottlenecks in the
    # backbone and 1 in each of the neck's four, SPPF's 2, the neck's 2 stride-2, 3 heads x 6.
    # SiLU (Sigmoid + Mul) after every Conv but the heads' six last; Split/Concat per C2f, plus
    # SPPF's, the neck's 4, a Concat per head and the final one.
    assert builders.count_ops(builders.yolov8_onnx("n")) == {
        "Conv": 63, "BatchNormalization": 57, "Sigmoid": 57, "Mul": 57, "Add": 6, "Split": 8, "Concat": 17,
        "MaxPool": 3, "Resize": 2, "Reshape": 3}


def test_runs_to_the_head_shape_with_no_denormal_or_runaway_value(onnx):
    ort = pytest.importorskip("onnxruntime")
    m = onnx.load_from_string(builders.yolov8_onnx("n", resolution=320))
    onnx.checker.check_model(m, full_check=True)
    names = [o for n in m.graph.node for o in n.output if o != "output"]
    for o in names:
        m.graph.output.append(onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).standard_normal((1, 3, 320, 320)).astype(np.float32)
    values = dict(zip(["output"] + names, s.run(["output"] + names, {"input": x})))
    assert values["output"].shape == (1, 144, 40 * 40 + 20 * 20 + 10 * 10)
    for k, v in values.items():
        if v.dtype != np.float32:
            continue
        assert np.isfinite(v).all(), k
        assert int(np.count_nonzero((np.abs(v) < TINY) & (v != 0))) == 0, f"{k}: denormals"
        rms = float(np.sqrt(np.mean(np.square(v, dtype=np.float64))))
        assert 1e-2 <= rms <= 1e2, f"{k}: RMS {rms:.3g}"


def test_layer_table_knows_every_node(onnx):
    from maple_edge_lite.device.layers import from_onnx

    b = builders.yolov8_onnx("n", resolution=320)
    t = from_onnx(b)
    kinds = {r.kind for r in t}
    assert {"conv", "pointwise", "concat", "maxpool", "resize", "add"} <= kinds and "other" not in kinds
    assert t.totals()["params"] == count_params(onnx, onnx.load_from_string(b), "trainable")
    assert t.totals()["macs"] == builders.count_macs(b)  # no Gemm: the same count


def test_same_arguments_same_bytes_and_the_config_in_metadata(onnx):
    a = builders.yolov8_onnx("n", resolution=256, num_classes=3, batch=2, seed=4)
    assert a == builders.yolov8_onnx("n", resolution=256, num_classes=3, batch=2, seed=4)
    assert a != builders.yolov8_onnx("n", resolution=256, num_classes=3, batch=2, seed=5)
    m = onnx.load_from_string(a)
    props = {p.key: p.value for p in m.metadata_props}
    assert props["maple_edge_lite.builder"] == "yolov8_onnx"
    assert props["maple_edge_lite.config"] == "scale=n,resolution=256,num_classes=3,batch=2"
    dims = [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [2, 67, 32 * 32 + 16 * 16 + 8 * 8]


@pytest.mark.parametrize("kw, match", [({"scale": "x"}, "unknown YOLOv8 scale 'x'; known: n, s, m"),
                                       ({"resolution": 330}, "multiple of 32"),
                                       ({"resolution": 0}, "resolution must be >= 32"),
                                       ({"num_classes": 2.5}, "integer"), ({"seed": -1}, "non-negative")])
def test_bad_arguments_are_input_errors(kw, match):
    with pytest.raises(mel.InputError, match=match):
        builders.yolov8_onnx(**kw)

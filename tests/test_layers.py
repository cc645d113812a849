"""The ONNX layer table (maple_edge_lite.device.layers, docs/layers.md) against oracles it did not
produce: NAS-Bench-201's published FLOPs and parameters (the C++ encoder's flops_32 / params),
torchvision's ResNet-50 figures, and small hand-built graphs with hand-computed MACs and bytes.
Then the errors, the file (round trip and a corruption matrix), a seeded fuzz of the ONNX reader
in a subprocess with a timeout, and the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite import encode as enc
from maple_edge_lite.device.layers import (ACTIVATIONS, ARRAY_COLUMNS, KINDS, SCHEMA, LayerTable, LayerWarning,
                                           from_onnx, supported_opsets)

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


class Net:
    """A graph under construction: ``n(op, inputs, **attrs)`` appends a node whose one output is
    named like the node; ``w(name, shape)`` an initializer (zeros)."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def w(self, name, shape, value=0.0, dtype=np.float32):
        self.inits.append(numpy_helper.from_array(np.full(shape, value, dtype), name))
        return name

    def n(self, op, inputs, name=None, **attrs):
        self.count += 1
        name = name or f"{op.lower()}{self.count}"
        self.nodes.append(helper.make_node(op, list(inputs), [name], name=name, **attrs))
        return name

    def conv(self, x, cin, cout, k, name, stride=1, groups=1, bias=False, pad=None):
        p = k // 2 if pad is None else pad
        ins = [x, self.w(f"{name}.w", (cout, cin // groups, k, k))] + ([self.w(f"{name}.b", (cout,))] if bias else [])
        return self.n("Conv", ins, name, kernel_shape=[k, k], strides=[stride, stride], pads=[p] * 4, group=groups)

    def bn(self, x, c, name):
        ins = [x] + [self.w(f"{name}.{s}", (c,), 1.0) for s in ("scale", "bias", "mean", "var")]
        return self.n("BatchNormalization", ins, name)

    def model(self, inputs, outputs, opset=17, ir=8):
        g = helper.make_graph(self.nodes, "t", [helper.make_tensor_value_info(k, TensorProto.FLOAT, s)
                                                for k, s in inputs.items()],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                              initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = ir
        return m.SerializeToString()


def table(model, **kw) -> LayerTable:
    return from_onnx(model, **kw)


def feature(arch, name):
    return enc.encode("nb201", [arch])[0][enc.feature_names("nb201").index(name)]


# --- NAS-Bench-201 against the encoder's published counts -----------------------------------------

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ONLY_SKIP = "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
MIXED = "|nor_conv_1x1~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def _live_archs(n, seed):
    """n random cells whose non-none edges are all live (encoder: ops_live == ops_nonzero)."""
    from _util import nb201_string

    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        a = nb201_string(rng.integers(0, 5, 6))
        if feature(a, "ops_live") == feature(a, "ops_nonzero") and feature(a, "ops_nonzero") > 0:
            out.append(a)
    return out


@pytest.mark.parametrize("arch", [ALL_CONV3, ONLY_SKIP, MIXED] + _live_archs(5, seed=11))
def test_nb201_macs_and_params_equal_the_encoders(arch):
    from maple_edge_lite.device.builders import nb201_onnx

    t = table(nb201_onnx(arch)).totals()
    # flops_32 counts the linear head's bias (10 classes: +10) as NAS-Bench-201 does; the table
    # counts a gemm as M x K x N, as torchvision/fvcore do. Both are float32 MFLOPs in the encoder.
    flops = feature(arch, "flops_32")
    assert np.float32((t["macs"] + 10) / 1e6) == flops
    assert abs(t["macs"] + 10 - float(flops) * 1e6) <= float(np.spacing(flops)) * 1e6
    assert np.float32(t["params"] / 1e6) == feature(arch, "params")


@pytest.mark.parametrize("arch,convs,pointwise", [
    # stem + 15 cells x 6 convs + 2 reductions x (2 conv3x3 + a 1x1 after the pool)
    (ALL_CONV3, 1 + 15 * 6 + 2 * 2, 2),
    (ONLY_SKIP, 1 + 2 * 2, 2),
    # cells: three 1x1 convs (edges 0, 1, 5) and one 3x3 (edge 4)
    (MIXED, 1 + 15 * 1 + 2 * 2, 15 * 3 + 2),
])
def test_nb201_conv_rows_as_the_arch_implies(arch, convs, pointwise):
    from maple_edge_lite.device.builders import nb201_onnx

    t = table(nb201_onnx(arch))
    kinds = t.kind_counts()
    assert kinds.get("conv", 0) == convs and kinds.get("pointwise", 0) == pointwise
    stem = t.rows[0]
    assert stem.kind == "conv" and stem.op_types == ("Conv", "BatchNormalization")
    assert stem.name == "stem.conv+stem.bn" and stem.output == (1, 16, 32, 32)
    assert stem.macs == 16 * 32 * 32 * 3 * 9 and stem.params == 3 * 16 * 9 + 2 * 16
    assert t.rows[-1].kind == "gemm" and t.rows[-1].macs == 64 * 10
    assert "BatchNormalization" not in {r.op_types[0] for r in t if r.kind in ("conv", "pointwise")}


def test_nb201_batch_scales_activations_not_params():
    from maple_edge_lite.device.builders import nb201_onnx

    one, four = table(nb201_onnx(MIXED)).totals(), table(nb201_onnx(MIXED, batch=4))
    assert four.source["batch"] == 4
    assert four.totals()["macs"] == 4 * one["macs"] and four.totals()["params"] == one["params"]


# --- ResNet-50 against torchvision's figures ------------------------------------------------------


def _resnet50():
    spec = importlib.util.spec_from_file_location("_resnet50", REPO / "benchmarks" / "_resnet50.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.resnet50_onnx


def test_resnet50_matches_torchvision():
    if not (REPO / "benchmarks" / "_resnet50.py").is_file():
        pytest.skip("not running from a source checkout (benchmarks/ is absent)")
    t = table(_resnet50()())
    tot = t.totals()
    assert tot["params"] == 25_557_032                   # torchvision's resnet50 num_params
    assert round(tot["macs"] / 1e9, 2) == 4.09           # torchvision's 4.09 GFLOPS (MACs, fvcore)
    kinds = t.kind_counts()
    assert kinds == {"conv": 20, "pointwise": 33, "maxpool": 1, "globalpool": 1, "gemm": 1}
    assert sum(r.fused_add for r in t) == 16              # one residual per bottleneck
    assert all(r.activation == "relu" for r in t if r.fused_add)
    b8 = table(_resnet50()(), batch=8)
    assert b8.source["batch"] == 8 and b8.totals()["macs"] == 8 * tot["macs"]


# --- fusion rules, hand-computed -------------------------------------------------------------------


def _act(net, x, act):
    if act == "relu":
        return net.n("Relu", [x])
    if act == "clip":
        return net.n("Clip", [x, net.w("lo", (), 0.0), net.w("hi", (), 6.0)])
    if act == "hardswish":
        return net.n("HardSwish", [x])
    if act == "hardsigmoid":
        return net.n("HardSigmoid", [x])
    if act == "sigmoid":
        return net.n("Sigmoid", [x])
    if act == "leakyrelu":
        return net.n("LeakyRelu", [x], alpha=0.1)
    if act == "swish":
        return net.n("Mul", [x, net.n("Sigmoid", [x])])
    if act == "hardswish_mul":
        return net.n("Mul", [net.n("HardSigmoid", [x]), x])
    raise AssertionError(act)


@pytest.mark.parametrize("act", ["relu", "clip", "hardswish", "hardsigmoid", "sigmoid", "leakyrelu", "swish",
                                 "hardswish_mul"])
def test_conv_bn_activation_is_one_row(act):
    net = Net()
    y = net.bn(net.conv("x", 3, 4, 3, "c", bias=True), 4, "bn")
    out = _act(net, y, act)
    t = table(net.model({"x": [1, 3, 8, 8]}, [out]))
    assert len(t) == 1
    r = t[0]
    assert r.kind == "conv" and r.activation == ("hardswish" if act == "hardswish_mul" else act)
    assert r.op_types[:2] == ("Conv", "BatchNormalization") and len(r.op_types) == (4 if "swish" in act and act != "hardswish" else 3)
    assert r.kernel == (3, 3) and r.stride == (1, 1) and r.padding == (1, 1, 1, 1) and r.groups == 1
    assert r.inputs == ((1, 3, 8, 8),) and r.output == (1, 4, 8, 8)
    assert r.macs == 4 * 8 * 8 * 3 * 3 * 3                       # 6912
    assert r.params == 4 * 27 + 4 + 2 * 4                         # weight, bias, BN scale and shift
    assert r.bytes_read == 4 * (3 * 64 + 4 * 27 + 4)              # input, folded weight and bias
    assert r.bytes_written == 4 * 4 * 64


def test_activation_not_fused_when_the_conv_output_is_read_twice():
    net = Net()
    y = net.conv("x", 3, 4, 3, "c")
    a = net.n("Relu", [y])
    out = net.n("Add", [a, y])
    t = table(net.model({"x": [1, 3, 8, 8]}, [out]))
    assert [r.kind for r in t] == ["conv", "relu", "add"]
    assert t[0].activation == "" and not t[0].fused_add


def test_residual_conv_add_relu_is_one_row():
    net = Net()
    y = net.bn(net.conv("x", 4, 4, 1, "c"), 4, "bn")
    out = net.n("Relu", [net.n("Add", [y, "x"])])
    t = table(net.model({"x": [1, 4, 8, 8]}, [out]))
    assert len(t) == 1
    r = t[0]
    assert r.kind == "pointwise" and r.fused_add and r.activation == "relu"
    assert r.op_types == ("Conv", "BatchNormalization", "Add", "Relu")
    assert r.inputs == ((1, 4, 8, 8), (1, 4, 8, 8))
    assert r.macs == 4 * 64 * 4 and r.params == 16 + 8
    assert r.bytes_read == 4 * (256 + 256 + 16 + 4) and r.bytes_written == 4 * 256


def test_two_convs_into_one_add_the_later_takes_it():
    net = Net()
    a = net.conv("x", 4, 4, 3, "a")
    b = net.conv("x", 4, 4, 1, "b")
    out = net.n("Add", [a, b])
    t = table(net.model({"x": [1, 4, 8, 8]}, [out]))
    assert [(r.name, r.fused_add) for r in t] == [("a", False), ("b+" + out, True)]


def test_add_of_a_broadcast_or_a_constant_is_not_a_residual():
    net = Net()
    y = net.conv("x", 4, 4, 1, "c")
    out = net.n("Add", [y, net.w("bias", (1, 4, 1, 1))])
    t = table(net.model({"x": [1, 4, 8, 8]}, [out]))
    assert [r.kind for r in t] == ["pointwise", "add"] and not t[0].fused_add
    assert t[1].bytes_read == 4 * (256 + 4)      # the activation and the constant it adds


def test_depthwise_separable_block():
    net = Net()
    y = net.n("Clip", [net.bn(net.conv("x", 8, 8, 3, "dw", stride=2, groups=8), 8, "bn1"),
                       net.w("lo", (), 0.0), net.w("hi", (), 6.0)])
    out = net.bn(net.conv(y, 8, 16, 1, "pw"), 16, "bn2")
    t = table(net.model({"x": [1, 8, 16, 16]}, [out]))
    assert [(r.kind, r.activation) for r in t] == [("depthwise", "clip"), ("pointwise", "")]
    dw, pw = t
    assert dw.groups == 8 and dw.stride == (2, 2) and dw.output == (1, 8, 8, 8)
    assert dw.macs == 8 * 8 * 8 * 9 and dw.params == 8 * 9 + 2 * 8
    assert dw.bytes_read == 4 * (8 * 256 + 8 * 9 + 8) and dw.bytes_written == 4 * 512
    assert pw.macs == 16 * 64 * 8 and pw.params == 16 * 8 + 2 * 16


@pytest.mark.parametrize("cin,cout,groups,k,stride,kind", [
    (8, 8, 8, 3, 1, "depthwise"),
    (8, 16, 8, 3, 1, "depthwise"),   # channel multiplier 2
    (8, 8, 2, 3, 1, "grouped"),
    (8, 8, 4, 1, 1, "grouped"),
    (8, 8, 1, 1, 1, "pointwise"),
    (8, 8, 1, 1, 2, "conv"),         # a strided 1x1 is not pointwise
    (8, 8, 1, 5, 1, "conv"),
])
def test_conv_kinds(cin, cout, groups, k, stride, kind):
    net = Net()
    out = net.conv("x", cin, cout, k, "c", stride=stride, groups=groups)
    (r,) = table(net.model({"x": [2, cin, 12, 12]}, [out]))
    side = -(-12 // stride)
    assert r.kind == kind and r.groups == groups
    assert r.macs == 2 * cout * side * side * (cin // groups) * k * k


def test_squeeze_excite_block_is_flagged():
    net = Net()
    x = net.n("Relu", ["x"], "pre")
    g = net.n("GlobalAveragePool", [x], "se.pool")
    g = net.n("Relu", [net.conv(g, 8, 2, 1, "se.fc1", bias=True)], "se.relu")
    g = net.n("HardSigmoid", [net.conv(g, 2, 8, 1, "se.fc2", bias=True)], "se.gate")
    out = net.n("Mul", [x, g], "se.mul")
    t = table(net.model({"x": [1, 8, 4, 4]}, [out]))
    assert [(r.kind, r.se, r.activation) for r in t] == [
        ("relu", False, ""), ("globalpool", True, ""), ("pointwise", True, "relu"),
        ("pointwise", True, "hardsigmoid"), ("mul", True, "")]
    assert t[2].macs == 2 * 8 and t[3].macs == 8 * 2 and t[2].params == 16 + 2
    assert t[4].inputs == ((1, 8, 4, 4), (1, 8, 1, 1))
    assert t[4].bytes_read == 4 * (128 + 8) and t[4].bytes_written == 4 * 128


def test_squeeze_excite_with_reducemean_and_linear_layers():
    net = Net()
    g = net.n("ReduceMean", ["x", net.w("axes", (2,), 0, np.int64)], "pool", keepdims=1)
    net.inits[-1] = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    g = net.n("Flatten", [g], "flat")
    g = net.n("Relu", [net.n("Gemm", [g, net.w("w1", (2, 8)), net.w("b1", (2,))], "fc1", transB=1)])
    g = net.n("Sigmoid", [net.n("Gemm", [g, net.w("w2", (8, 2)), net.w("b2", (8,))], "fc2", transB=1)])
    g = net.n("Reshape", [g, net.w("shape", (4,), 0, np.int64)], "view")
    net.inits[-1] = numpy_helper.from_array(np.array([1, 8, 1, 1], np.int64), "shape")
    out = net.n("Mul", ["x", g], "mul")
    t = table(net.model({"x": [1, 8, 4, 4]}, [out], opset=18))
    assert [(r.kind, r.se, r.activation) for r in t] == [
        ("globalpool", True, ""), ("gemm", True, "relu"), ("gemm", True, "sigmoid"), ("mul", True, "")]
    assert t[1].macs == 8 * 2 and t[1].params == 16 + 2


def test_plain_mul_of_two_full_tensors_is_not_squeeze_excite():
    net = Net()
    out = net.n("Mul", ["x", net.n("Relu", ["x"])])
    t = table(net.model({"x": [1, 8, 4, 4]}, [out]))
    assert [(r.kind, r.se) for r in t] == [("relu", False), ("mul", False)]


def test_standalone_swish_is_one_row():
    net = Net()
    x = net.n("Add", ["x", "y"])
    out = net.n("Mul", [x, net.n("Sigmoid", [x])])
    t = table(net.model({"x": [1, 4, 4, 4], "y": [1, 4, 4, 4]}, [out]))
    assert [(r.kind, r.op_types) for r in t] == [("add", ("Add",)), ("swish", ("Sigmoid", "Mul"))]
    assert t[1].bytes_read == 4 * 64 and t[1].bytes_written == 4 * 64


def test_shape_subgraph_is_folded_and_views_are_free():
    net = Net()
    s = net.n("Shape", ["x"])
    b = net.n("Gather", [s, net.w("zero", (), 0, np.int64)], axis=0)
    b = net.n("Unsqueeze", [b, net.w("ax", (1,), 0, np.int64)])
    shape = net.n("Concat", [b, net.w("m1", (1,), -1, np.int64)], axis=0)
    y = net.n("Reshape", ["x", shape])
    wt = net.n("Transpose", [net.n("Mul", [net.w("W", (5, 48), 1.0), net.w("two", (), 2.0)])], perm=[1, 0])
    out = net.n("MatMul", [y, wt])
    t = table(net.model({"x": ["N", 3, 4, 4]}, [out]), batch=2)
    assert len(t) == 1
    r = t[0]
    assert r.kind == "gemm" and r.inputs == ((2, 48),) and r.output == (2, 5)
    assert r.macs == 2 * 48 * 5 and r.params == 48 * 5


def test_identity_dropout_and_views_cost_nothing():
    net = Net()
    y = net.n("Dropout", [net.n("Identity", ["x"])])
    y = net.n("Relu", [y])
    y = net.n("Unsqueeze", [net.n("Flatten", [y], axis=1), net.w("ax", (1,), 0, np.int64)])
    out = net.n("Squeeze", [y, net.w("ax2", (1,), 0, np.int64)])
    t = table(net.model({"x": [1, 3, 4, 4]}, [out]))
    assert [r.kind for r in t] == ["relu"] and t.totals()["bytes_read"] == 4 * 48


def test_dead_nodes_have_no_row():
    net = Net()
    net.n("Sigmoid", ["x"], "unused")
    out = net.n("Relu", ["x"])
    assert [r.kind for r in table(net.model({"x": [1, 3, 4, 4]}, [out]))] == ["relu"]


def _single(op, inputs, shapes, consts=(), opset=17, **attrs):
    net = Net()
    for name, arr in consts:
        net.inits.append(numpy_helper.from_array(np.asarray(arr), name))
    out = net.n(op, inputs, "op", **attrs)
    return table(net.model(dict(zip([i for i in inputs if i.startswith("x")], shapes)), [out], opset=opset))


@pytest.mark.parametrize("op,inputs,shapes,consts,attrs,kind,macs,out", [
    ("MaxPool", ["x"], [[1, 4, 8, 8]], [], dict(kernel_shape=[2, 2], strides=[2, 2]), "maxpool", 0, (1, 4, 4, 4)),
    ("AveragePool", ["x"], [[1, 4, 8, 8]], [], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), "avgpool", 0, (1, 4, 8, 8)),
    ("GlobalAveragePool", ["x"], [[1, 4, 8, 8]], [], {}, "globalpool", 0, (1, 4, 1, 1)),
    ("GlobalMaxPool", ["x"], [[1, 4, 8, 8]], [], {}, "globalpool", 0, (1, 4, 1, 1)),
    ("ReduceMean", ["x"], [[1, 4, 8, 8]], [], dict(axes=[1], keepdims=1), "reduce", 0, (1, 1, 8, 8)),
    ("BatchNormalization", ["x", "s", "b", "m", "v"], [[1, 4, 8, 8]],
     [(k, np.ones(4, np.float32)) for k in "sbmv"], {}, "batchnorm", 0, (1, 4, 8, 8)),
    ("LayerNormalization", ["x", "s", "b"], [[2, 5, 6]], [("s", np.ones(6, np.float32)), ("b", np.ones(6, np.float32))],
     dict(axis=-1), "norm", 0, (2, 5, 6)),
    ("Add", ["x1", "x2"], [[1, 4, 8, 8], [1, 4, 8, 8]], [], {}, "add", 0, (1, 4, 8, 8)),
    ("Mul", ["x1", "x2"], [[1, 4, 8, 8], [1, 4, 1, 1]], [], {}, "mul", 0, (1, 4, 8, 8)),
    ("Div", ["x1", "x2"], [[1, 4, 8, 8], [1, 4, 8, 8]], [], {}, "elementwise", 0, (1, 4, 8, 8)),
    ("Concat", ["x1", "x2"], [[1, 4, 8, 8], [1, 2, 8, 8]], [], dict(axis=1), "concat", 0, (1, 6, 8, 8)),
    ("Relu", ["x"], [[1, 4, 8, 8]], [], {}, "relu", 0, (1, 4, 8, 8)),
    ("Clip", ["x"], [[1, 4, 8, 8]], [], {}, "clip", 0, (1, 4, 8, 8)),
    ("HardSwish", ["x"], [[1, 4, 8, 8]], [], {}, "hardswish", 0, (1, 4, 8, 8)),
    ("HardSigmoid", ["x"], [[1, 4, 8, 8]], [], {}, "hardsigmoid", 0, (1, 4, 8, 8)),
    ("Sigmoid", ["x"], [[1, 4, 8, 8]], [], {}, "sigmoid", 0, (1, 4, 8, 8)),
    ("Tanh", ["x"], [[1, 4, 8, 8]], [], {}, "other_activation", 0, (1, 4, 8, 8)),
    ("Resize", ["x", "", "sc"], [[1, 4, 8, 8]], [("sc", np.array([1, 1, 2, 2], np.float32))], dict(mode="nearest"),
     "resize", 0, (1, 4, 16, 16)),
    ("Softmax", ["x"], [[2, 10]], [], dict(axis=-1), "softmax", 0, (2, 10)),
    ("Transpose", ["x"], [[1, 4, 8, 2]], [], dict(perm=[0, 3, 1, 2]), "transpose", 0, (1, 2, 4, 8)),
    ("Pad", ["x", "p"], [[1, 4, 8, 8]], [("p", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], {}, "pad", 0,
     (1, 4, 10, 10)),
    ("Slice", ["x", "st", "en", "ax"], [[1, 4, 8, 8]], [("st", np.array([2], np.int64)), ("en", np.array([4], np.int64)),
                                                        ("ax", np.array([1], np.int64))], {}, "copy", 0, (1, 2, 8, 8)),
    ("MatMul", ["x1", "x2"], [[2, 3, 5], [2, 5, 4]], [], {}, "matmul", 2 * 3 * 5 * 4, (2, 3, 4)),
    ("MatMul", ["x", "W"], [[3, 10]], [("W", np.ones((10, 4), np.float32))], {}, "gemm", 3 * 10 * 4, (3, 4)),
    ("Gemm", ["x", "W", "B"], [[3, 10]], [("W", np.ones((4, 10), np.float32)), ("B", np.ones(4, np.float32))],
     dict(transB=1), "gemm", 3 * 10 * 4, (3, 4)),
    ("ConvTranspose", ["x", "W"], [[1, 4, 5, 5]], [("W", np.ones((4, 2, 3, 3), np.float32))], dict(strides=[2, 2]),
     "deconv", 4 * 25 * 2 * 9, (1, 2, 11, 11)),
])
def test_each_kind(op, inputs, shapes, consts, attrs, kind, macs, out):
    t = _single(op, inputs, shapes, consts, **attrs)
    assert [r.kind for r in t] == [kind]
    assert t[0].macs == macs and t[0].output == out
    acts = [s for s in shapes]
    assert t[0].bytes_written == 4 * int(np.prod(out))
    if kind not in ("batchnorm", "norm", "gemm", "deconv", "resize", "pad", "copy"):
        assert t[0].bytes_read == 4 * sum(int(np.prod(s)) for s in acts)


def test_pool_window_and_same_padding():
    net = Net()
    out = net.n("MaxPool", ["x"], "p", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    (r,) = table(net.model({"x": [1, 2, 8, 8]}, [out]))
    # out 4: (4 - 1) * 2 + 3 - 8 = 1 pixel of padding per axis, the odd one at the end
    assert r.kernel == (3, 3) and r.stride == (2, 2) and r.padding == (0, 0, 1, 1) and r.output == (1, 2, 4, 4)


def test_linear_with_bias_add_and_relu_is_one_gemm_row():
    net = Net()
    y = net.n("Add", [net.n("MatMul", ["x", net.w("W", (10, 4))]), net.w("b", (4,))])
    out = net.n("Relu", [y])
    (r,) = table(net.model({"x": [3, 10]}, [out]))
    assert r.kind == "gemm" and r.activation == "relu" and r.op_types == ("MatMul", "Add", "Relu")
    assert r.macs == 120 and r.params == 44 and r.bytes_read == 4 * (30 + 44) and r.bytes_written == 4 * 12


def test_unknown_op_becomes_other_with_a_warning():
    net = Net()
    y = net.n("Relu", ["x"])
    net.nodes.append(helper.make_node("FrobOp", [y], ["out"], name="frob", domain="example.ops"))
    g = helper.make_graph(net.nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.ops", 1)])
    with pytest.warns(LayerWarning) as rec:
        t = table(m)
    assert any("example.ops.FrobOp" in str(w.message) and "'other'" in str(w.message) for w in rec)
    assert [r.kind for r in t] == ["relu", "other"] and t[1].name == "frob" and t[1].macs == 0
    assert t[1].output is None                           # shape inference cannot say


# --- errors ---------------------------------------------------------------------------------------


def _small_cnn(opset=17, batch="N"):
    net = Net()
    y = net.n("Relu", [net.bn(net.conv("x", 3, 8, 3, "c1", stride=2), 8, "bn1")])
    y = net.n("Clip", [net.bn(net.conv(y, 8, 8, 3, "dw", groups=8), 8, "bn2"), net.w("lo", (), 0.0), net.w("hi", (), 6.0)])
    z = net.bn(net.conv(y, 8, 8, 1, "pw"), 8, "bn3")
    z = net.n("Relu", [net.n("Add", [z, y])])
    g = net.n("GlobalAveragePool", [z])
    g = net.n("Sigmoid", [net.conv(net.n("Relu", [net.conv(g, 8, 4, 1, "se1", bias=True)]), 4, 8, 1, "se2", bias=True)])
    z = net.n("Mul", [z, g])
    z = net.n("Flatten", [net.n("GlobalAveragePool", [z])], axis=1)
    out = net.n("Gemm", [z, net.w("fc.w", (10, 8)), net.w("fc.b", (10,))], "fc", transB=1)
    return net.model({"x": [batch, 3, 16, 16]}, [out], opset=opset)


def test_small_cnn_reference():
    t = table(_small_cnn())
    assert [r.kind for r in t] == ["conv", "depthwise", "pointwise", "globalpool", "pointwise", "pointwise", "mul",
                                   "globalpool", "gemm"]
    assert t[2].fused_add and t[2].activation == "relu" and [r.se for r in t].count(True) == 4


def test_random_bytes_and_text_are_not_onnx(tmp_path):
    rng = np.random.default_rng(0)
    for n in (1, 7, 100, 5000):
        with pytest.raises(mel.InputError, match="not an ONNX model"):
            from_onnx(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    p = tmp_path / "notes.onnx"
    p.write_text("this is a text file, not a network\n" * 20)
    with pytest.raises(mel.InputError, match="notes.onnx"):
        from_onnx(p)
    with pytest.raises(mel.InputError, match="empty"):
        from_onnx(b"")
    with pytest.raises(mel.InputError, match="path, the bytes"):
        from_onnx(12)


def test_truncated_model_is_an_input_error():
    data = _small_cnn()
    with pytest.raises(mel.InputError, match="truncated"):
        from_onnx(data[: len(data) // 2])
    for cut in range(1, len(data), max(1, len(data) // 97)):
        try:
            from_onnx(data[:cut])
        except mel.InputError:
            continue  # a cut at a field boundary may leave a smaller valid model: then a table
        except mel.VersionError:
            continue


def test_missing_and_unreadable_paths(tmp_path):
    with pytest.raises(mel.ModelNotFoundError):
        from_onnx(tmp_path / "nope.onnx")
    with pytest.raises(mel.MapleEdgeIOError, match="directory"):
        from_onnx(tmp_path)


@pytest.mark.parametrize("opset", [1, 6, 99])
def test_unsupported_opset(opset):
    net = Net()
    out = net.n("Relu", ["x"])
    lo, hi = supported_opsets()
    assert lo == 7 and hi >= 17
    with pytest.raises(mel.VersionError, match=f"opset {opset}; this reader supports opsets 7 to {hi}"):
        from_onnx(net.model({"x": [1, 2]}, [out], opset=opset))


def test_dynamic_dimension_needs_input_shapes():
    net = Net()
    out = net.conv("img", 3, 4, 3, "c")
    data = net.model({"img": ["N", 3, "H", 32]}, [out])
    with pytest.raises(mel.InputError, match=r"input 'img' dimension 2 \('H'\) is dynamic.*input_shapes"):
        from_onnx(data)
    t = from_onnx(data, input_shapes={"img": [2, 3, 16, 32]})
    assert t[0].output == (2, 4, 16, 32) and t.source["batch"] == 2
    with pytest.raises(mel.InputError, match="fixes it at 3"):
        from_onnx(data, input_shapes={"img": [1, 4, 16, 32]})
    with pytest.raises(mel.InputError, match="not an input"):
        from_onnx(data, input_shapes={"image": [1, 3, 16, 32]})


def test_batch_on_a_static_model_is_refused():
    with pytest.raises(mel.InputError, match="no input .* has a dynamic batch"):
        from_onnx(_small_cnn(batch=1), batch=4)
    with pytest.raises(mel.InputError, match="batch must be >= 1"):
        from_onnx(_small_cnn(), batch=0)


def test_graph_with_no_inputs():
    net = Net()
    out = net.n("Relu", [net.w("w", (2, 2))])
    with pytest.raises(mel.InputError, match="no inputs"):
        from_onnx(net.model({}, [out]))


def test_cycle_and_dangling_tensor():
    net = Net()
    a = net.n("Relu", ["x"])
    net.n("Sigmoid", [a], "b")
    m = onnx.load_model_from_string(net.model({"x": [1, 2]}, ["b"]))
    m.graph.node[0].input[0] = "b"
    with pytest.raises(mel.InputError, match="cycle"):
        from_onnx(m)
    m.graph.node[0].input[0] = "ghost"
    with pytest.raises(mel.InputError, match="'ghost', which no node"):
        from_onnx(m)


def test_malformed_nodes_found_by_fuzzing():
    """Cases the fuzz test below once caught as stray exceptions: each is an InputError now."""
    m = onnx.load_model_from_string(_small_cnn())
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    del conv.input[1:]                                   # a Conv without its weight
    with pytest.raises(mel.InputError, match="Conv node 'c1' has 1 input"):
        from_onnx(m)
    m = onnx.load_model_from_string(_small_cnn())
    group = next(a for n in m.graph.node if n.name == "dw" for a in n.attribute if a.name == "group")
    group.type = onnx.AttributeProto.STRING              # group of the wrong type
    with pytest.raises(mel.InputError, match="attribute 'group' must be an integer"):
        from_onnx(m)
    data = _small_cnn()
    i = data.index(b"\x04Conv")                          # a node's op type with a byte that is not UTF-8
    with pytest.raises(mel.InputError, match="not valid UTF-8"):
        from_onnx(data[:i + 1] + b"\xf4" + data[i + 2:])


def test_import_does_not_need_onnx_and_from_onnx_names_the_extra():
    code = (
        "import sys\n"
        "import maple_edge_lite.device.layers as L\n"
        "assert 'onnx' not in sys.modules, 'importing layers imported onnx'\n"
        "sys.modules['onnx'] = None\n"
        "import maple_edge_lite as mel\n"
        "try:\n"
        "    L.from_onnx(b'xx')\n"
        "except mel.UnsupportedError as e:\n"
        "    assert \"pip install 'maple-edge-lite[onnx]'\" in str(e), e\n"
        "    print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# --- the file -------------------------------------------------------------------------------------


def test_file_round_trip_and_array(tmp_path):
    t = table(_small_cnn())
    p = t.write(tmp_path / "cnn.layers.json")
    d = json.loads(p.read_text())
    assert d["schema"] == SCHEMA == "maple_edge_lite.layers/1" and d["kinds"] == list(KINDS)
    assert set(d["source"]) == {"path", "sha256", "batch"}
    back = LayerTable.read(p)
    assert back == t and back.totals() == t.totals()
    assert LayerTable.from_dict(t.to_dict()) == t
    a = back.array()
    assert a.shape == (len(t), len(ARRAY_COLUMNS)) and a.dtype == np.float64
    col = {c: i for i, c in enumerate(ARRAY_COLUMNS)}
    first = t[0]  # conv 3->8, 3x3, stride 2, 16x16 -> 8x8, BN + ReLU
    assert a[0, col["kind"]] == KINDS.index("conv") and a[0, col["macs"]] == first.macs == 8 * 64 * 27
    assert tuple(a[0, [col[c] for c in ("kernel_h", "kernel_w", "stride_h", "stride_w", "groups")]]) == (3, 3, 2, 2, 1)
    assert tuple(a[0, [col[c] for c in ("cin", "cout", "in_h", "in_w", "out_h", "out_w")]]) == (3, 8, 16, 16, 8, 8)
    assert a[0, col["activation"]] == ACTIVATIONS.index("relu")
    assert a[2, col["fused_add"]] == 1 and a[2, col["n_inputs"]] == 2
    assert a[:, col["macs"]].sum() == t.totals()["macs"]


def test_source_records_the_file(tmp_path):
    import hashlib

    data = _small_cnn()
    p = tmp_path / "m.onnx"
    p.write_bytes(data)
    t = from_onnx(p, batch=3)
    assert t.source == {"path": str(p), "sha256": hashlib.sha256(data).hexdigest(), "batch": 3}
    assert from_onnx(onnx.load_model_from_string(data)).source == {"path": None, "sha256": None, "batch": 1}


def _mutations():
    """(description, mutate(dict) -> object, expected class, message fragment)."""

    def row(i, **kw):
        def f(d):
            d["layers"][i].update(kw)
            return d
        return f

    def drop_row_field(i, k):
        def f(d):
            del d["layers"][i][k]
            return d
        return f

    def top(k, v):
        def f(d):
            d[k] = v
            return d
        return f

    def drop(k):
        def f(d):
            del d[k]
            return d
        return f

    def src(k, v):
        def f(d):
            d["source"][k] = v
            return d
        return f

    F, V = mel.FormatError, mel.VersionError
    return [
        ("schema of another file", top("schema", "maple_edge_lite.descriptor/1"), F, "not a layer table"),
        ("schema missing", drop("schema"), F, "not a layer table"),
        ("newer schema", top("schema", "maple_edge_lite.layers/2"), V, "layers/2"),
        ("layers missing", drop("layers"), F, "missing field 'layers'"),
        ("source missing", drop("source"), F, "missing field 'source'"),
        ("layers not a list", top("layers", {}), F, "layers: must be a list"),
        ("kinds reordered", top("kinds", list(reversed(KINDS))), F, "kinds"),
        ("kinds missing one", top("kinds", list(KINDS[:-1])), F, "kinds"),
        ("source not an object", top("source", [1]), F, "source: must be an object"),
        ("source.batch 0", src("batch", 0), F, "source.batch"),
        ("source.batch text", src("batch", "1"), F, "source.batch"),
        ("source.sha256 short", src("sha256", "abc"), F, "source.sha256"),
        ("source.path number", src("path", 3), F, "source.path"),
        ("source.sha256 missing", lambda d: (d["source"].pop("sha256"), d)[1], F, "missing field 'sha256'"),
        ("row not an object", lambda d: (d["layers"].__setitem__(1, [1, 2]), d)[1], F, "layers[1]: must be an object"),
        ("row missing macs", drop_row_field(1, "macs"), F, "layers[1]: missing field 'macs'"),
        ("row missing kind", drop_row_field(0, "kind"), F, "layers[0]: missing field 'kind'"),
        ("unknown kind", row(2, kind="attention"), F, "layers[2].kind: unknown kind 'attention'"),
        ("negative macs", row(3, macs=-5), F, "layers[3].macs"),
        ("negative params", row(0, params=-1), F, "layers[0].params"),
        ("negative bytes_read", row(0, bytes_read=-8), F, "layers[0].bytes_read"),
        ("float bytes_written", row(1, bytes_written=1.5), F, "layers[1].bytes_written"),
        ("bool macs", row(1, macs=True), F, "layers[1].macs"),
        ("macs as text", row(1, macs="12"), F, "layers[1].macs"),
        ("groups 0", row(0, groups=0), F, "layers[0].groups"),
        ("negative output dim", row(0, output=[1, -8, 8, 8]), F, "layers[0].output[1]"),
        ("input shape not a list", row(0, inputs=[5]), F, "layers[0].inputs[0]"),
        ("inputs not a list", row(0, inputs="x"), F, "layers[0].inputs"),
        ("op_types empty", row(0, op_types=[]), F, "layers[0].op_types"),
        ("name not text", row(0, name=3), F, "layers[0].name"),
        ("unknown activation", row(0, activation="gelu"), F, "layers[0].activation"),
        ("fused_add not bool", row(2, fused_add=1), F, "layers[2].fused_add"),
        ("se not bool", row(2, se="yes"), F, "layers[2].se"),
        ("padding for another rank", row(0, padding=[1, 1]), F, "layers[0]: kernel"),
        ("kernel negative", row(0, kernel=[3, -3]), F, "layers[0].kernel[1]"),
        ("top level a list", lambda d: [d], F, "JSON object"),
    ]


@pytest.mark.parametrize("desc,mutate,cls,fragment", _mutations(), ids=[m[0] for m in _mutations()])
def test_corrupt_layer_files(tmp_path, desc, mutate, cls, fragment):
    good = table(_small_cnn()).to_dict()
    bad = mutate(json.loads(json.dumps(good)))
    p = tmp_path / "bad.layers.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(cls) as ei:
        LayerTable.read(p)
    assert type(ei.value) is cls and fragment in str(ei.value), str(ei.value)
    assert str(p) in str(ei.value)
    with pytest.raises(cls, match=None):
        LayerTable.from_dict(bad)


def test_layer_file_not_json_truncated_missing(tmp_path):
    p = tmp_path / "t.layers.json"
    text = json.dumps(table(_small_cnn()).to_dict())
    p.write_text(text[: len(text) // 2])
    with pytest.raises(mel.FormatError, match="not a JSON layer table"):
        LayerTable.read(p)
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(mel.FormatError, match="not a JSON layer table"):
        LayerTable.read(p)
    with pytest.raises(mel.ModelNotFoundError):
        LayerTable.read(tmp_path / "absent.json")
    with pytest.raises(mel.MapleEdgeIOError):
        LayerTable.read(tmp_path)


def test_reading_a_table_does_not_import_onnx(tmp_path):
    p = table(_small_cnn()).write(tmp_path / "t.layers.json")
    code = (
        "import sys\n"
        "sys.modules['onnx'] = None\n"
        "from maple_edge_lite.device.layers import LayerTable\n"
        f"t = LayerTable.read({str(p)!r})\n"
        "print(len(t), t.array().shape[0])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0 and r.stdout.split() == ["9", "9"], r.stderr


# --- fuzzing the ONNX reader ----------------------------------------------------------------------


def test_fuzzed_models_give_a_table_or_a_package_error(tmp_path):
    """~200 seeded mutations of a serialized small CNN (byte flips, truncations, insertions,
    proto-level damage: wrong dims, dangling inputs, cycles, bad attributes...) in a subprocess
    with a timeout: each gives a table or raises a MapleEdgeError, never another exception, a
    crash or a hang."""
    model = tmp_path / "cnn.onnx"
    model.write_bytes(_small_cnn())
    seed = int(os.environ.get("MEL_LAYERS_FUZZ_SEED", "20240611"))
    try:
        r = subprocess.run([sys.executable, str(HERE / "_layers_fuzz.py"), str(model), str(seed), "200"],
                           capture_output=True, text=True, timeout=240, cwd=str(tmp_path))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the ONNX reader hung on a fuzzed model (seed {seed}): {(e.stdout or '')[-2000:]}")
    assert r.returncode == 0, f"crash or failure (exit {r.returncode}, seed {seed}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["bad"] == [], report["bad"][:5]
    assert report["cases"] >= 200
    # the mutations reach both outcomes: damage that is caught, and damage a table survives
    assert report["errors"] >= 40 and report["tables"] >= 20, report


# --- CLI ------------------------------------------------------------------------------------------


def _cli(args, capsys):
    from maple_edge_lite.cli import main

    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_text_json_and_output(tmp_path, capsys):
    p = tmp_path / "m.onnx"
    p.write_bytes(_small_cnn())
    code, out, err = _cli(["layers", str(p)], capsys)
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["#", "kind", "output"] and len(lines) == 1 + 9 + 1
    assert lines[1].split()[:3] == ["0", "conv", "1x8x8x8"] and "relu" in lines[1] and "c1+bn1" in lines[1]
    assert "relu+add" in lines[3] and "se" in lines[7].split()
    t = from_onnx(p)
    assert lines[-1].startswith(f"9 layers: {t.totals()['macs']:,} MACs")
    code, out, _ = _cli(["layers", str(p), "--json", "--batch", "2"], capsys)
    assert code == 0 and LayerTable.from_dict(json.loads(out)) == from_onnx(p, batch=2)
    dest = tmp_path / "m.layers.json"
    code, out, _ = _cli(["layers", str(p), "-o", str(dest)], capsys)
    assert code == 0 and f"wrote {dest}" in out and LayerTable.read(dest) == t


def test_cli_errors_exit_codes(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01not onnx at all")
    code, out, err = _cli(["layers", str(bad)], capsys)
    assert code == 1 and out == "" and err.startswith("maple-edge-lite: error:") and len(err.strip().splitlines()) == 1
    code, _, err = _cli(["layers", str(tmp_path / "missing.onnx")], capsys)
    assert code == 1 and "not found" in err
    net = Net()
    dyn = tmp_path / "dyn.onnx"
    dyn.write_bytes(net.model({"x": ["N", 3, "H", "W"]}, [net.n("Relu", ["x"])]))
    code, _, err = _cli(["layers", str(dyn)], capsys)
    assert code == 1 and "--input-shape x=?,3,?,?" in err
    code, out, _ = _cli(["layers", str(dyn), "--input-shape", "x=1,3,4,4"], capsys)
    assert code == 0 and "1x3x4x4" in out
    with pytest.raises(SystemExit) as ei:
        _cli(["layers", str(dyn), "--input-shape", "x=1,a"], capsys)
    assert ei.value.code == 2
    code, _, err = _cli(["layers", str(dyn), "--input-shape", "x=1,3,4,4", "-o", str(tmp_path / "no" / "t.json")], capsys)
    assert code == 1 and "does not exist" in err


def test_cli_prints_warnings_as_lines(tmp_path, capsys):
    net = Net()
    net.nodes.append(helper.make_node("FrobOp", ["x"], ["out"], name="frob", domain="example.ops"))
    g = helper.make_graph(net.nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.ops", 1)])
    p = tmp_path / "frob.onnx"
    p.write_bytes(m.SerializeToString())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, out, err = _cli(["layers", str(p)], capsys)
    assert code == 0 and err.startswith("maple-edge-lite: warning:") and "example.ops.FrobOp" in err
    assert " other " in out


# --- external data ----------------------------------------------------------------------------------


def test_external_data_small_tensors_are_read_weights_never(tmp_path, monkeypatch):
    """A model whose every initializer is in an external data file (as exporters write large models,
    here with the threshold at 0): its Reshape targets are read from the file beside it (path), or
    from ``external_data_dir`` (bytes), and the table is the in-memory model's; without the file a
    clear error names it and says what to do. With only the weights outside (onnx's default 1 kB
    threshold) the table needs no data file at all; ``predict --onnx`` reads such a file too."""
    import onnx

    from maple_edge_lite.cli.predict import _layer_table
    from maple_edge_lite.device.builders import zoo

    name = "shufflenet_v2_x0.5"  # channel shuffles: Reshape to computed shapes
    want = from_onnx(zoo.zoo_onnx(name)).rows
    d = tmp_path / "m"
    d.mkdir()
    onnx.save_model(onnx.load_from_string(zoo.zoo_onnx(name)), str(d / "net.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="net.data", size_threshold=0)
    assert from_onnx(d / "net.onnx").rows == want
    data = (d / "net.onnx").read_bytes()
    assert from_onnx(data, external_data_dir=d).rows == want
    with pytest.raises(mel.InputError, match=r"external data file 'net.data'.*external_data_dir"):
        from_onnx(data)
    monkeypatch.setenv("MAPLE_EDGE_LITE_CACHE", str(tmp_path / "cache"))
    assert _layer_table(str(d / "net.onnx")).rows == want
    (d / "net.data").rename(tmp_path / "elsewhere.data")
    with pytest.raises(mel.InputError, match=r"keeps \d+ small tensor.*'net.data'.*beside the .onnx file"):
        from_onnx(d / "net.onnx")
    # weights outside only (1 kB threshold), the file gone: nothing of it is needed
    e = tmp_path / "e"
    e.mkdir()
    onnx.save_model(onnx.load_from_string(zoo.zoo_onnx("resnet18")), str(e / "r.onnx"), save_as_external_data=True,
                    location="r.data")
    (e / "r.data").unlink()
    assert from_onnx(e / "r.onnx").totals() == from_onnx(zoo.zoo_onnx("resnet18")).totals()

"""Small seeded ONNX models for checking adapters and timing their per-call overhead (needs the
``onnx`` package). Every model has one input ``input`` [1, 3, H, W] float32 and one output
``output``, like the project's builders."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np


class _Graph:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.n = 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, array, prefix="w") -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: List[str], out: str = None, **attrs) -> str:
        from onnx import helper

        out = out or self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x, cin, cout, k, stride=1, group=1, bias=True):
        w = self.rng.standard_normal((cout, cin // group, k, k)).astype(np.float32)
        w *= np.float32(np.sqrt(2.0 / (cin // group * k * k)))
        ins = [x, self.const(w)]
        if bias:
            ins.append(self.const((self.rng.standard_normal(cout) * 0.1).astype(np.float32), "b"))
        p = k // 2
        return self.node("Conv", ins, kernel_shape=[k, k], pads=[p, p, p, p], strides=[stride, stride], group=group)

    def bn(self, x, c):
        r = self.rng
        scale = (1 + 0.1 * r.standard_normal(c)).astype(np.float32)
        bias = (0.1 * r.standard_normal(c)).astype(np.float32)
        mean = (0.1 * r.standard_normal(c)).astype(np.float32)
        var = (1 + 0.1 * r.random(c)).astype(np.float32)
        return self.node(
            "BatchNormalization", [x, self.const(scale), self.const(bias), self.const(mean), self.const(var)], epsilon=1e-5
        )

    def gemm(self, x, cin, cout, out="output"):
        w = (self.rng.standard_normal((cout, cin)) / np.sqrt(cin)).astype(np.float32)
        b = (0.1 * self.rng.standard_normal(cout)).astype(np.float32)
        return self.node("Gemm", [x, self.const(w), self.const(b)], out, transB=1)

    def model(self, name: str, shape: Tuple[int, ...], out_shape, opset: int = 13) -> bytes:
        import onnx
        from onnx import TensorProto, helper

        g = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
            self.inits,
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="maple_edge_lite")
        m.ir_version = 8  # readable by every runtime we adapt (onnx >= 1.10, ORT >= 1.10)
        onnx.checker.check_model(m)
        return m.SerializeToString()


def tiny(seed: int = 0) -> bytes:
    """One 1x1 convolution on a [1, 3, 8, 8] input: almost no compute, so a session's time is
    the runtime's per-call overhead."""
    g = _Graph(seed)
    g.conv("input", 3, 4, 1, bias=True)
    g.nodes[-1].output[0] = "output"
    return g.model("tiny", (1, 3, 8, 8), [1, 4, 8, 8])


def conv_net(seed: int = 0, size: int = 32, width: int = 16) -> bytes:
    """A NAS-Bench-201-like small conv net on [1, 3, size, size]: a conv-BN stem, two ReLU-conv-BN
    cells with residual adds, a 3x3 average pool (count_include_pad=0), a stride-2 reduction,
    global average pooling and a linear classifier (10 classes)."""
    g = _Graph(seed)
    x = g.bn(g.conv("input", 3, width, 3, bias=False), width)
    for _ in range(2):
        y = g.bn(g.conv(g.node("Relu", [x]), width, width, 3, bias=False), width)
        x = g.node("Add", [x, y])
    x = g.node("AveragePool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], count_include_pad=0)
    x = g.bn(g.conv(g.node("Relu", [x]), width, 2 * width, 3, stride=2, bias=False), 2 * width)
    x = g.node("Relu", [x])
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)
    g.gemm(x, 2 * width, 10)
    return g.model("conv_net", (1, 3, size, size), [1, 10])


def op_zoo(seed: int = 0) -> bytes:
    """Every op the torch interpreter knows that conv_net lacks, on a [1, 3, 16, 16] input:
    depthwise and grouped convs, Sum, Mul, Concat, Sigmoid, Clip, HardSigmoid, MaxPool, padded
    AveragePool counting pads, ReduceMean, Reshape, MatMul, Constant, Identity."""
    from onnx import helper, numpy_helper

    g = _Graph(seed)
    a = g.node("Relu", [g.conv("input", 3, 8, 3)])
    b = g.conv(a, 8, 8, 3, group=8)  # depthwise
    c = g.conv(a, 8, 8, 1, group=2)
    s = g.node("Sum", [a, b, c])
    s = g.node("Clip", [s, g.const(np.float32(0.0), "lo"), g.const(np.float32(6.0), "hi")])
    gate = g.node("Sigmoid", [g.node("ReduceMean", [s], axes=[2, 3], keepdims=1)])
    s = g.node("Mul", [s, gate])
    p = g.node("AveragePool", [s], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2], count_include_pad=1)
    m = g.node("MaxPool", [s], kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Concat", [p, m], axis=1)  # [1, 16, 8, 8]
    x = g.node("HardSigmoid", [x], alpha=0.2, beta=0.5)
    x = g.node("Identity", [g.node("GlobalAveragePool", [x])])
    shape = g.name("shape")
    g.nodes.append(
        helper.make_node(
            "Constant", [], [shape], value=numpy_helper.from_array(np.array([1, 16], np.int64))
        )
    )
    x = g.node("Reshape", [x, shape])
    w = (g.rng.standard_normal((16, 10)) / 4).astype(np.float32)
    x = g.node("MatMul", [x, g.const(w)])
    g.node("Add", [x, g.const((0.1 * g.rng.standard_normal(10)).astype(np.float32))], "output")
    return g.model("op_zoo", (1, 3, 16, 16), [1, 10])

"""What every builder shares: the lazy ``onnx`` import, argument checks, a small graph writer
with seeded weights, and the inspection helpers (``count_ops``, ``count_macs``) the tests and
the profiler use.

Nothing here imports ``onnx`` at module import: ``import maple_edge_lite.device.builders`` works (and
costs nothing) on a board without it; the first build raises ``UnsupportedError`` instead."""

from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np

from ..._errors import InputError, UnsupportedError

#: Opset of every model the builders write. 17 is the newest opset the runtimes this package
#: targets all read (onnxruntime >= 1.13, TFLite/TVM/OpenVINO importers of 2023 and later);
#: nothing the builders emit needs a newer one.
OPSET = 17
#: IR version matching opset 17 (onnx 1.12); newer onnx packages would otherwise stamp their own
#: (higher) IR version, which older runtimes on boards refuse to load.
IR_VERSION = 8
#: Version of the graphs the builders write: bumped whenever a builder emits a different graph
#: (nodes, attributes, weight initialisation) for the same arguments, so measurements keyed by
#: it never mix two graphs. Written into every model's metadata.
BUILDER_VERSION = 1

#: Weight gain (std = sqrt(gain / fan_in)) that keeps the second moment of activations from one
#: layer to the next when the layer's output goes through this activation: 1 / E[f(z)^2] for
#: z ~ N(0, 1). 2 for ReLU (He); 0.355 and 0.331 are E[f(z)^2] of SiLU and hardswish (ReLU6
#: clips nothing at these scales); 1 with no activation (linear bottlenecks, logits).
ACT_GAIN = {"relu": 2.0, "relu6": 2.0, "silu": 2.8, "hardswish": 3.0, None: 1.0}

_INSTALL_HINT = "pip install 'maple-edge-lite[onnx]'"


def require_onnx():
    """The ``onnx`` module, or ``UnsupportedError`` naming the extra that installs it."""
    try:
        import onnx
        from onnx import helper, numpy_helper  # noqa: F401  (submodules used through onnx.*)
    except ImportError as e:
        raise UnsupportedError(
            f"building ONNX models needs the onnx package, which is not installed ({e}): {_INSTALL_HINT}"
        ) from e
    return onnx


def positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, else ``InputError`` (bools are not ints here)."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise InputError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if v < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {v}")
    return v


def resolution_int(value, stride: int, why: str) -> int:
    """A square input's side ``value`` as an int, a multiple of ``stride`` (at least one: the
    network's largest stride, ``why`` says where it comes from), else ``InputError``."""
    r = positive_int("resolution", value, stride)
    if r % stride:
        raise InputError(f"resolution must be a multiple of {stride} ({why}), got {r}")
    return r


def seed_int(value) -> int:
    if isinstance(value, bool):
        raise InputError(f"seed must be a non-negative integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise InputError(f"seed must be a non-negative integer, got {type(value).__name__} {value!r}") from None
    if v < 0:
        raise InputError(f"seed must be a non-negative integer, got {v}")
    return v


class Graph:
    """An ONNX graph under construction, in execution order, with weights drawn from one seeded
    numpy generator in the order the layers are added (so a seed fixes every byte of the model).

    Weights: convolutions and the linear layer He-initialised (normal, std sqrt(2 / fan_in));
    batch norms in inference form with scale 1 + 0.1·N(0,1), shift 0.1·N(0,1), running mean 0,
    running variance 1, epsilon 1e-5 (PyTorch's). The zoo asks for identity batch norms
    (``bn(identity=True)``) and gains matched to each conv's activation (:data:`ACT_GAIN`).
    Values never matter for latency, but they keep activations O(1): no overflow to inf and no
    denormals (which slow x86 and some ARM cores by orders of magnitude and would poison a
    measurement)."""

    def __init__(self, seed: int):
        self.onnx = require_onnx()
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.initializers: list = []
        self._used: set = set()
        self._shared: Dict[str, str] = {}

    # --- plumbing --------------------------------------------------------------------------

    def _unique(self, name: str) -> str:
        if name in self._used:
            i = 1
            while f"{name}_{i}" in self._used:
                i += 1
            name = f"{name}_{i}"
        self._used.add(name)
        return name

    def const(self, name: str, array: np.ndarray) -> str:
        name = self._unique(name)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type: str, inputs: Sequence[str], name: str, **attrs) -> str:
        """Append one node; its single output tensor is named like the node."""
        name = self._unique(name)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [name], name=name, **attrs))
        return name

    # --- layers ----------------------------------------------------------------------------

    def conv(self, x: str, cin: int, cout: int, k: int, name: str, stride: int = 1, groups: int = 1, *,
             pad=None, dilation: int = 1, bias: bool = False, gain: float = 2.0) -> str:
        """Conv, weights normal with std sqrt(gain / fan_in), fan_in = cin / groups * k * k (He for
        the default gain 2). ``pad``: an int for all sides, four ints (top, left, bottom, right, the
        ONNX order), or None for ``dilation * (k // 2)`` (output side = ceil(input side / stride),
        PyTorch's ``padding=(k - 1) // 2 * dilation``). ``bias`` adds a zero bias input."""
        fan_in = (cin // groups) * k * k
        w = (self.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(gain / fan_in)).astype(np.float32)
        wname = self.const(f"{name}.weight", w)
        ins = [x, wname]
        if bias:
            ins.append(self.const(f"{name}.bias", np.zeros(cout, np.float32)))
        if pad is None:
            pad = dilation * (k // 2)
        pads = [pad] * 4 if isinstance(pad, int) else list(pad)
        return self.node("Conv", ins, name, kernel_shape=[k, k], strides=[stride, stride],
                         pads=pads, dilations=[dilation, dilation], group=groups)

    def bn(self, x: str, c: int, name: str, *, identity: bool = False, eps: float = 1e-5) -> str:
        """BatchNormalization in inference form, running mean 0 and variance 1. ``identity``:
        scale 1 and shift 0 (no random draw), so the layer passes its input through (up to
        1/sqrt(1 + eps)); otherwise scale 1 + 0.1·N(0,1), shift 0.1·N(0,1)."""
        if identity:
            scale, shift = np.ones(c, np.float32), np.zeros(c, np.float32)
        else:
            scale = (1.0 + 0.1 * self.rng.standard_normal(c)).astype(np.float32)
            shift = (0.1 * self.rng.standard_normal(c)).astype(np.float32)
        ins = [x, self.const(f"{name}.weight", scale), self.const(f"{name}.bias", shift),
               self.const(f"{name}.running_mean", np.zeros(c, np.float32)),
               self.const(f"{name}.running_var", np.ones(c, np.float32))]
        return self.node("BatchNormalization", ins, name, epsilon=eps)

    def relu(self, x: str, name: str) -> str:
        return self.node("Relu", [x], name)

    def add(self, a: str, b: str, name: str) -> str:
        return self.node("Add", [a, b], name)

    def sum(self, terms: Sequence[str], name: str) -> str:
        """Left-to-right chain of binary Adds (what ``sum()`` in PyTorch exports to)."""
        out = terms[0]
        for i, t in enumerate(terms[1:]):
            out = self.add(out, t, f"{name}.add{i}")
        return out

    def avg_pool(self, x: str, k: int, stride: int, pad: int, name: str, count_include_pad: bool = False) -> str:
        return self.node("AveragePool", [x], name, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad, pad, pad, pad], count_include_pad=int(count_include_pad))

    def mul_zero(self, x: str, name: str) -> str:
        """``x * 0``: NAS-Bench-201's Zero op (``x.mul(0.0)``) as PyTorch exports it. A runtime
        cannot fold it to a constant (IEEE: inf * 0 is nan), so what follows stays computed."""
        zero = self.const(f"{name}.zero", np.zeros((), np.float32))
        return self.node("Mul", [x, zero], name)

    def identity(self, x: str, name: str) -> str:
        return self.node("Identity", [x], name)

    def head(self, x: str, c: int, num_classes: int, name: str, out: str = "output") -> str:
        """Global average pool, flatten, linear layer (Gemm with bias) writing ``out``."""
        x = self.node("GlobalAveragePool", [x], f"{name}.gap")
        x = self.node("Flatten", [x], f"{name}.flatten", axis=1)
        w = (self.rng.standard_normal((num_classes, c)) * np.sqrt(2.0 / c)).astype(np.float32)
        b = (0.01 * self.rng.standard_normal(num_classes)).astype(np.float32)
        ins = [x, self.const(f"{name}.fc.weight", w), self.const(f"{name}.fc.bias", b)]
        self._used.add(out)
        self.nodes.append(self.onnx.helper.make_node("Gemm", ins, [out], name=f"{name}.fc", transB=1))
        return out

    def rename_output(self, tensor: str, out: str = "output") -> str:
        """Make the last node write the graph output ``out`` (input-only graphs get an Identity)."""
        if not self.nodes or self.nodes[-1].output[0] != tensor:
            name = self._unique("output.identity")
            self.nodes.append(self.onnx.helper.make_node("Identity", [tensor], [out], name=name))
        else:
            self.nodes[-1].output[0] = out
        self._used.add(out)
        return out

    # --- layers of the zoo (PyTorch's exports of its modules and functions) --------------------

    def shared(self, key: str, array: np.ndarray) -> str:
        """One initializer per ``key`` for the whole graph (the Clip bounds every ReLU6 reads)."""
        if key not in self._shared:
            # not through const(): np.ascontiguousarray turns a 0-d array into shape [1], and
            # Clip wants scalar bounds
            name = self._unique(key)
            self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
            self._shared[key] = name
        return self._shared[key]

    def clip(self, x: str, lo: float, hi: float, name: str) -> str:
        """``Clip(x, lo, hi)`` with the bounds as scalar inputs (opset 11+), as ``nn.ReLU6`` and
        ``hardtanh`` export."""
        lo_name = self.shared(f"clip.{lo:g}", np.array(lo, np.float32))
        hi_name = self.shared(f"clip.{hi:g}", np.array(hi, np.float32))
        return self.node("Clip", [x, lo_name, hi_name], name)

    def relu6(self, x: str, name: str) -> str:
        return self.clip(x, 0.0, 6.0, name)

    def hardswish(self, x: str, name: str) -> str:
        return self.node("HardSwish", [x], name)

    def hardsigmoid(self, x: str, name: str) -> str:
        """``nn.Hardsigmoid``: relu6(x + 3) / 6, exported as HardSigmoid with alpha 1/6 (beta 0.5)."""
        return self.node("HardSigmoid", [x], name, alpha=1.0 / 6.0)

    def sigmoid(self, x: str, name: str) -> str:
        return self.node("Sigmoid", [x], name)

    def mul(self, a: str, b: str, name: str) -> str:
        return self.node("Mul", [a, b], name)

    def silu(self, x: str, name: str) -> str:
        """``nn.SiLU`` as PyTorch exports it: ``Mul(x, Sigmoid(x))``."""
        return self.mul(x, self.sigmoid(x, f"{name}.sigmoid"), name)

    def act(self, x: str, kind, name: str) -> str:
        """The activation ``kind`` (one of :data:`ACT_GAIN`'s keys; None: no node)."""
        if kind is None:
            return x
        return {"relu": self.relu, "relu6": self.relu6, "hardswish": self.hardswish,
                "silu": self.silu}[kind](x, name)

    def max_pool(self, x: str, k: int, stride: int, pad: int, name: str, ceil_mode: bool = False) -> str:
        return self.node("MaxPool", [x], name, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad, pad, pad, pad], ceil_mode=int(ceil_mode))

    def upsample(self, x: str, name: str, scale: int = 2) -> str:
        """``nn.Upsample(scale_factor=scale, mode="nearest")``: Resize with scales [1, 1, s, s]
        (no ROI, opset 11+)."""
        scales = self.const(f"{name}.scales", np.array([1.0, 1.0, float(scale), float(scale)], np.float32))
        return self.node("Resize", [x, "", scales], name, mode="nearest")

    def concat(self, xs: Sequence[str], name: str, axis: int = 1) -> str:
        return self.node("Concat", list(xs), name, axis=axis)

    def split(self, x: str, sizes: Sequence[int], name: str, axis: int = 1) -> List[str]:
        """``Split`` with the sizes as an int64 input (opset 13+), what ``Tensor.chunk`` exports
        to; one output tensor per size, named ``{name}.{i}``."""
        sname = self.const(f"{name}.split", np.array(list(sizes), np.int64))
        node = self._unique(name)
        outs = [self._unique(f"{node}.{i}") for i in range(len(sizes))]
        self.nodes.append(self.onnx.helper.make_node("Split", [x, sname], outs, name=node, axis=axis))
        return outs

    def channel_shuffle(self, x: str, c: int, groups: int, side: int, name: str) -> str:
        """``view`` [N, groups, c / groups, H, W] -> ``transpose(1, 2)`` -> ``view`` [N, c, H, W]
        as Reshape-Transpose-Reshape; 0 copies the batch dimension, so the graph does not
        depend on the batch size."""
        s1 = self.const(f"{name}.shape1", np.array([0, groups, c // groups, side, side], np.int64))
        s2 = self.const(f"{name}.shape2", np.array([0, c, side, side], np.int64))
        y = self.node("Reshape", [x, s1], f"{name}.reshape1")
        y = self.node("Transpose", [y], f"{name}.transpose", perm=[0, 2, 1, 3, 4])
        return self.node("Reshape", [y, s2], f"{name}.reshape2")

    def global_avg_pool(self, x: str, name: str) -> str:
        """``nn.AdaptiveAvgPool2d(1)`` / ``adaptive_avg_pool2d(x, (1, 1))``: [N, C, 1, 1]."""
        return self.node("GlobalAveragePool", [x], name)

    def reduce_mean(self, x: str, axes: Sequence[int], name: str, keepdims: bool = False) -> str:
        """``x.mean(axes)`` (axes an attribute up to opset 17)."""
        return self.node("ReduceMean", [x], name, axes=list(axes), keepdims=int(keepdims))

    def flatten(self, x: str, name: str) -> str:
        return self.node("Flatten", [x], name, axis=1)

    def linear(self, x: str, cin: int, cout: int, name: str, gain: float = 1.0) -> str:
        """``nn.Linear`` as Gemm (transB=1), weights normal with std sqrt(gain / cin), bias 0."""
        w = (self.rng.standard_normal((cout, cin)) * np.sqrt(gain / cin)).astype(np.float32)
        ins = [x, self.const(f"{name}.weight", w), self.const(f"{name}.bias", np.zeros(cout, np.float32))]
        return self.node("Gemm", ins, name, transB=1)

    # --- the model -------------------------------------------------------------------------

    def serialize(self, graph_name: str, in_shape: Sequence[int], out_shape: Sequence[int], doc: str,
                  metadata: Dict[str, str]) -> bytes:
        h = self.onnx.helper
        TF = self.onnx.TensorProto.FLOAT
        graph = h.make_graph(self.nodes, graph_name,
                             [h.make_tensor_value_info("input", TF, list(in_shape))],
                             [h.make_tensor_value_info("output", TF, list(out_shape))],
                             initializer=self.initializers, doc_string=doc)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)],
                             producer_name="maple_edge_lite", producer_version=str(BUILDER_VERSION),
                             doc_string=doc)
        model.ir_version = IR_VERSION
        meta = {"maple_edge_lite.builder_version": str(BUILDER_VERSION), **metadata}
        h.set_model_props(model, meta)
        return model.SerializeToString(deterministic=True)


# --- inspection ------------------------------------------------------------------------------


def _load(model_bytes: bytes):
    onnx = require_onnx()
    if not isinstance(model_bytes, (bytes, bytearray, memoryview)):
        raise InputError(f"model must be the bytes of an ONNX model, got {type(model_bytes).__name__}")
    try:
        return onnx.load_model_from_string(bytes(model_bytes))
    except Exception as e:  # protobuf's DecodeError is not importable in a stable way
        raise InputError(f"not an ONNX model ({len(model_bytes)} bytes): {e}") from e


def count_ops(model_bytes: bytes) -> Dict[str, int]:
    """Number of nodes of each ``op_type`` in a serialized ONNX model, e.g. ``{"Conv": 46, ...}``
    (keys sorted)."""
    counts: Dict[str, int] = {}
    for n in _load(model_bytes).graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return dict(sorted(counts.items()))


def count_macs(model_bytes: bytes) -> int:
    """Multiply-accumulates of one sample (batch item) through the model, counted as
    NAS-Bench-201 counts FLOPs: convolutions (k·k·C_in/groups per output element) and Gemm
    (plus one per output for its bias); nothing for pooling, BN, ReLU, additions. Shapes come
    from ONNX shape inference, so this works for any model whose shapes are static.
    Divide by 1e6 to compare with the encoders' ``flops_*`` features (MFLOPs)."""
    onnx = require_onnx()
    model = onnx.shape_inference.infer_shapes(_load(model_bytes), strict_mode=True)
    g = model.graph
    shapes: Dict[str, List[int]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for t in g.initializer:
        shapes[t.name] = list(t.dims)
    total = 0
    for n in g.node:
        if n.op_type == "Conv":
            out = shapes[n.output[0]]
            w = shapes[n.input[1]]  # [C_out, C_in / groups, kh, kw]
            total += int(np.prod(out[1:])) * w[1] * w[2] * w[3]
        elif n.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            w = shapes[n.input[1]]
            k_in, k_out = (w[1], w[0]) if attrs.get("transB", 0) else (w[0], w[1])
            total += k_in * k_out + (k_out if len(n.input) > 2 and n.input[2] else 0)
        elif n.op_type in ("MatMul", "ConvTranspose", "Einsum"):
            raise InputError(f"count_macs does not count {n.op_type} nodes (node {n.name!r})")
    return total


def save(model: bytes, path: Union[str, "os.PathLike[str]"]) -> Path:
    """Write a built model (the bytes a builder returned) to ``path`` atomically: a reader sees
    the old file or the new one, never half of one. Raises ``MapleEdgePermissionError`` for an
    unwritable directory and ``MapleEdgeError`` for a missing one or another OS error; returns
    the path written."""
    from ..._errors import MapleEdgeError
    from ...format import write_atomic

    if not isinstance(model, (bytes, bytearray, memoryview)):
        raise InputError(f"save(model, path): model must be the bytes a builder returned, got {type(model).__name__}")
    try:
        return write_atomic(path, bytes(model))
    except MapleEdgeError:
        raise
    except OSError as e:  # e.g. a parent that is a file (ENOTDIR), which write_atomic passes on raw
        raise MapleEdgeError(f"cannot write {path}: {e.strerror or e}") from e


__all__ = ["OPSET", "IR_VERSION", "BUILDER_VERSION", "ACT_GAIN", "count_ops", "count_macs", "save"]

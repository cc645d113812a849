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
    running variance 1, epsilon 1e-5 (PyTorch's). Values never matter for latency, but they keep
    activations O(1): no overflow to inf and no denormals (which slow x86 and some ARM cores by
    orders of magnitude and would poison a measurement)."""

    def __init__(self, seed: int):
        self.onnx = require_onnx()
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.initializers: list = []
        self._used: set = set()

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

    def conv(self, x: str, cin: int, cout: int, k: int, name: str, stride: int = 1, groups: int = 1) -> str:
        """Conv without bias, padding k // 2 (output side = ceil(input side / stride))."""
        fan_in = (cin // groups) * k * k
        w = (self.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        wname = self.const(f"{name}.weight", w)
        p = k // 2
        return self.node("Conv", [x, wname], name, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[p, p, p, p], dilations=[1, 1], group=groups)

    def bn(self, x: str, c: int, name: str) -> str:
        scale = (1.0 + 0.1 * self.rng.standard_normal(c)).astype(np.float32)
        shift = (0.1 * self.rng.standard_normal(c)).astype(np.float32)
        ins = [x, self.const(f"{name}.weight", scale), self.const(f"{name}.bias", shift),
               self.const(f"{name}.running_mean", np.zeros(c, np.float32)),
               self.const(f"{name}.running_var", np.ones(c, np.float32))]
        return self.node("BatchNormalization", ins, name, epsilon=1e-5)

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


__all__ = ["OPSET", "IR_VERSION", "BUILDER_VERSION", "count_ops", "count_macs", "save"]

"""The operator suite of MAPLE-Edge (Nair et al., 2022) as small ONNX models: what a device is
profiled with to build its descriptor.

The suite covers every op the 32x32 NAS-Bench-201 network executes, at the shapes it executes
them (see :func:`default_suite`): the five cell ops at the three stage shapes (16x32x32,
32x16x16, 64x8x8), the two reduction blocks, the stem and the head. Each op is built exactly as
:func:`maple_edge_lite.device.builders.nb201_onnx` builds it, with the same nodes and attributes.

**Chains.** A cell op keeps its input shape, so its model is a chain of ``repeat`` copies of it
(default :data:`DEFAULT_REPEAT` = 8): one 16-channel 1x1 conv at 8x8 is a few microseconds, well
under a runtime's fixed cost per inference call (input binding, thread-pool wake-up, output
allocation: tens of microseconds on a phone CPU). Eight copies make the op's own cost the larger
part for every op but the cheapest, while the largest chain (3x3 conv at 16x32x32, 19 MMACs)
still runs in milliseconds on a small board. Latency per op = (chain latency - fixed cost) /
repeat, with the fixed cost read off the ``skip_connect`` chain (below). The stem, reduction
blocks and head change the shape and are built once (``repeat`` must be 1); their latency
includes the fixed cost.

**skip_connect** is a chain of ``Identity`` nodes. Runtimes remove them when they optimise the
graph, so its measured latency is the runtime's fixed per-call cost with nothing to compute:
the baseline to subtract, and itself a device feature (dispatch overhead differs a lot between
runtimes and boards).

**none** is a chain of ``Mul(x, 0)``, the way a runtime sees it in a network: a ``none`` edge
next to other inputs of a node is no node at all (the fixed-cost model covers that), and a
node with only ``none`` inputs is ``Mul(x, 0)`` (NAS-Bench-201's ``x.mul(0.0)``, which
``nb201_onnx`` emits). That element-wise pass over the feature map is the only cost ``none``
ever has, so it is what this model measures. Runtimes do not fold ``x * 0`` to a constant
(``inf * 0`` is ``nan``); one built with fast-math folding would measure the fixed cost here,
which is then also what ``none`` costs it in a network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from ..._errors import InputError
from ._graph import Graph, positive_int, seed_int
from .nb201 import OPS as CELL_OPS
from .nb201 import _reduction, _relu_conv_bn

#: Shape-changing blocks of the NAS-Bench-201 skeleton (built once, repeat 1).
BLOCK_OPS = ("stem", "reduction", "head")
ALL_OPS = CELL_OPS + BLOCK_OPS
#: Copies of a cell op chained in one model (see the module docstring).
DEFAULT_REPEAT = 8
#: Classes of the head block (NAS-Bench-201's CIFAR-10 network).
HEAD_CLASSES = 10


@dataclass(frozen=True)
class OpSpec:
    """One model of the suite.

    ``name``: a stable identifier, ``"{op}@{channels}x{hw}x{hw}"`` (e.g.
    ``"nor_conv_3x3@64x8x8"``), what descriptors and measurement files key on.
    ``op``: one of :data:`ALL_OPS`. ``channels``, ``hw``: the feature map the op works on
    (``hw`` = height = width): input and output of a cell op, the *input* of ``reduction``
    (output 2·channels x hw/2 x hw/2) and ``head`` (output 10 logits), the *output* of ``stem``
    (whose input is always 3 x hw x hw). ``repeat``: copies chained (1 for the blocks).
    Build the canonical name with :meth:`of`."""

    name: str
    op: str
    channels: int
    hw: int
    repeat: int

    @classmethod
    def of(cls, op: str, channels: int, hw: int, repeat: Optional[int] = None) -> "OpSpec":
        """The spec with the canonical name; ``repeat`` defaults to :data:`DEFAULT_REPEAT` for a
        cell op and 1 for a block."""
        if repeat is None:
            repeat = DEFAULT_REPEAT if op in CELL_OPS else 1
        spec = cls(f"{op}@{channels}x{hw}x{hw}", op, channels, hw, repeat)
        _check(spec)
        return spec


def _check(spec) -> OpSpec:
    if not isinstance(spec, OpSpec):
        raise InputError(f"expected an OpSpec, got {type(spec).__name__}")
    if spec.op not in ALL_OPS:
        raise InputError(f"OpSpec {spec.name!r}: unknown op {spec.op!r}; expected one of {', '.join(ALL_OPS)}")
    positive_int(f"OpSpec {spec.name!r}: channels", spec.channels)
    positive_int(f"OpSpec {spec.name!r}: hw", spec.hw)
    positive_int(f"OpSpec {spec.name!r}: repeat", spec.repeat)
    if spec.op in BLOCK_OPS and spec.repeat != 1:
        raise InputError(f"OpSpec {spec.name!r}: {spec.op} changes the tensor's shape and cannot be chained; "
                         f"repeat must be 1, got {spec.repeat}")
    if spec.op == "reduction" and spec.hw % 2:
        raise InputError(f"OpSpec {spec.name!r}: a reduction block halves hw, which must be even, got {spec.hw}")
    return spec


def default_suite(*, repeat: int = DEFAULT_REPEAT) -> List[OpSpec]:
    """The suite in execution order of the 32x32 NAS-Bench-201 network (19 specs): stem, the five
    cell ops at 16x32x32, reduction 16 -> 32, the cell ops at 32x16x16, reduction 32 -> 64, the
    cell ops at 64x8x8, head. Cell ops in NAS-Bench-201's op order (none, skip_connect,
    nor_conv_1x1, nor_conv_3x3, avg_pool_3x3). Same list on every call."""
    repeat = positive_int("repeat", repeat)
    suite = [OpSpec.of("stem", 16, 32)]
    for stage, (c, hw) in enumerate(((16, 32), (32, 16), (64, 8))):
        if stage:
            suite.append(OpSpec.of("reduction", c // 2, hw * 2))
        suite += [OpSpec.of(op, c, hw, repeat) for op in CELL_OPS]
    suite.append(OpSpec.of("head", 64, 8))
    return suite


def op_onnx(spec: OpSpec, *, batch: int = 1, seed: int = 0) -> bytes:
    """The serialized ONNX model (opset 17) of one suite entry: input ``"input"`` float32
    ``[batch, C_in, H, W]``, output ``"output"`` (shapes per :class:`OpSpec`). Same spec and seed,
    same bytes. Returns a new ``bytes`` object owned by the caller; ``InputError`` for an invalid
    spec, ``UnsupportedError`` without the ``onnx`` package."""
    spec = _check(spec)
    batch = positive_int("batch", batch)
    seed = seed_int(seed)
    op, C, hw, R = spec.op, spec.channels, spec.hw, spec.repeat

    g = Graph(seed)
    x = "input"
    in_shape = [batch, C, hw, hw]
    out_shape = in_shape
    if op == "stem":
        in_shape = [batch, 3, hw, hw]
        x = g.bn(g.conv(x, 3, C, 3, "stem.conv"), C, "stem.bn")
    elif op == "reduction":
        x = _reduction(g, x, C, 2 * C, "reduce")
        out_shape = [batch, 2 * C, hw // 2, hw // 2]
    elif op == "head":
        x = g.relu(g.bn(x, C, "lastact.bn"), "lastact.relu")
        x = g.head(x, C, HEAD_CLASSES, "classifier")
        out_shape = [batch, HEAD_CLASSES]
    else:
        for i in range(R):
            name = f"op{i}"
            if op == "none":
                x = g.mul_zero(x, f"{name}.zero")
            elif op == "skip_connect":
                x = g.identity(x, f"{name}.identity")
            elif op == "avg_pool_3x3":
                x = g.avg_pool(x, 3, 1, 1, f"{name}.pool", count_include_pad=False)
            else:
                x = _relu_conv_bn(g, x, C, C, 1 if op == "nor_conv_1x1" else 3, 1, name)
    if x != "output":
        g.rename_output(x)
    doc = f"MAPLE-Edge op model {spec.name} (repeat {R}, seed {seed}), built by maple_edge_lite.device.builders.op_onnx"
    meta = {"maple_edge_lite.op": spec.op, "maple_edge_lite.op_name": spec.name,
            "maple_edge_lite.repeat": str(R), "maple_edge_lite.seed": str(seed)}
    return g.serialize(f"op_{op}", in_shape, out_shape, doc, meta)


__all__ = ["OpSpec", "default_suite", "op_onnx", "CELL_OPS", "BLOCK_OPS", "ALL_OPS", "DEFAULT_REPEAT"]

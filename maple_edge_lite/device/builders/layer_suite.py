"""The layer suite: small ONNX networks whose latencies, measured under a device's runtime, fit
that device's layer cost model (``maple_edge_lite.learn.layer_cost``).

Each entry is a short chain of one kind of layer at one shape, as real CNNs use it (Conv + BN +
activation, depthwise separable parts, squeeze-excite, channel shuffle, the classifier), so
that its layer table (``maple_edge_lite.device.layers.from_onnx``) holds ``repeat`` rows of that
kind and little else. The grid spans what the zoo's families use: channels 16-1024, spatial
sizes 7-112, kernels 1/3/5, strides 1 and 2, groups 1, 16-wide and depthwise, expansion 4-6.
Weights as in the zoo (He-scaled, batch norm at identity), so no denormal reaches a timing.

The suite is a designed grid, not a sample: it is fixed by :data:`SUITE_VERSION` and every
entry's name says its shape (``pointwise@64x28x28x4``: kind, channels, height, width, repeat)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

from ..._errors import InputError
from ._graph import Graph
from ._zoo_common import conv_bn, squeeze_excitation

#: Bumped whenever an entry is added, removed or built differently.
SUITE_VERSION = 1
#: Chained copies of the layer in an entry (shape-preserving kinds).
REPEAT = 4


@dataclass(frozen=True)
class LayerSpec:
    """One suite entry: ``kind`` at ``channels`` x ``hw`` x ``hw`` input, ``repeat`` copies."""

    name: str
    kind: str
    channels: int
    hw: int
    repeat: int
    k: int = 3
    extra: int = 0  # kind-specific: expansion (pointwise_expand), group width (grouped), out features (gemm)


def _spec(kind: str, c: int, hw: int, repeat: int = REPEAT, k: int = 3, extra: int = 0) -> LayerSpec:
    tag = f"k{k}" if kind in ("depthwise", "conv_s2", "depthwise_s2") else ""
    tag += f"e{extra}" if extra else ""
    return LayerSpec(f"{kind}{tag}@{c}x{hw}x{hw}x{repeat}", kind, c, hw, repeat, k, extra)


def default_suite() -> List[LayerSpec]:
    """The suite, in measuring order (same list on every call)."""
    s: List[LayerSpec] = [_spec("identity", 16, 8, 1)]
    for c, hw in ((16, 56), (32, 56), (64, 28), (128, 14), (256, 7)):
        s.append(_spec("conv", c, hw))
    for c, hw in ((16, 56), (32, 56), (64, 28), (128, 28), (256, 14), (512, 7)):
        s.append(_spec("pointwise", c, hw))
    for c, hw, e in ((16, 56, 6), (24, 28, 6), (40, 14, 6), (80, 14, 4), (160, 7, 6)):
        s.append(_spec("pointwise_expand", c, hw, extra=e))
    for c, hw in ((32, 112), (96, 56), (144, 28), (240, 14), (480, 14), (960, 7)):
        s.append(_spec("depthwise", c, hw, k=3))
    for c, hw in ((72, 56), (240, 28), (672, 14)):
        s.append(_spec("depthwise", c, hw, k=5))
    for c, hw, gw in ((32, 56, 16), (64, 56, 16), (64, 28, 16), (160, 28, 16), (160, 14, 16), (288, 14, 16),
                      (400, 7, 16), (384, 14, 24), (672, 7, 16)):
        s.append(_spec("grouped", c, hw, extra=gw))
    for c, hw, k in ((16, 112, 3), (64, 56, 3), (128, 28, 3)):
        s.append(_spec("conv_s2", c, hw, repeat=2, k=k))
    for c, hw, k in ((32, 112, 3), (144, 56, 3), (240, 28, 5)):
        s.append(_spec("depthwise_s2", c, hw, repeat=1, k=k))
    for c, hw in ((64, 56), (256, 14)):
        s.append(_spec("maxpool", c, hw))
    for c, hw in ((64, 28),):
        s.append(_spec("avgpool", c, hw))
    for c, hw in ((64, 56), (96, 28), (256, 14), (512, 7)):
        s.append(_spec("add", c, hw))
    for c, hw in ((32, 56), (96, 28), (480, 14)):
        s.append(_spec("hardswish", c, hw))
    for c, hw in ((32, 56), (240, 14)):
        s.append(_spec("swish", c, hw))
    for c, hw in ((96, 28), (576, 7)):
        s.append(_spec("se", c, hw))
    for c, hw in ((58, 28), (232, 7)):
        s.append(_spec("shuffle", c, hw))
    for c, hw in ((64, 28), (256, 7)):
        s.append(_spec("concat", c, hw))
    for c, hw in ((116, 28), (232, 14)):
        s.append(_spec("split_shuffle", c, hw))
    for c, hw, out in ((512, 7, 1000), (1280, 7, 1000), (2048, 7, 1000)):
        s.append(_spec("classifier", c, hw, repeat=1, extra=out))
    for c in (1024,):
        s.append(_spec("gemm", c, 1, extra=c))
    return s


def _check(spec: LayerSpec) -> LayerSpec:
    if not isinstance(spec, LayerSpec):
        raise InputError(f"expected a LayerSpec, got {type(spec).__name__}")
    if spec.kind not in _BUILD:
        raise InputError(f"layer suite entry {spec.name!r}: unknown kind {spec.kind!r}; known: {', '.join(_BUILD)}")
    return spec


def _chain(body):
    def build(g: Graph, x: str, sp: LayerSpec) -> Tuple[str, List[int]]:
        for i in range(sp.repeat):
            x = body(g, x, sp, f"l{i}")
        return x, [1, sp.channels, sp.hw, sp.hw]
    return build


def _conv_s2(g, x, sp):
    c, hw = sp.channels, sp.hw
    for i in range(sp.repeat):
        x = conv_bn(g, x, c, 2 * c, sp.k, f"l{i}", stride=2, act="relu")
        c, hw = 2 * c, (hw + 1) // 2
    return x, [1, c, hw, hw]


def _depthwise_s2(g, x, sp):
    c, hw = sp.channels, sp.hw
    for i in range(sp.repeat):
        x = conv_bn(g, x, c, c, sp.k, f"l{i}", stride=2, groups=c, act="relu6")
        hw = (hw + 1) // 2
    return x, [1, c, hw, hw]


def _concat(g, x, sp, name):  # concat with a copy of itself, then back to C channels (pointwise)
    y = g.concat([x, g.relu(x, f"{name}.r")], f"{name}.cat")
    return conv_bn(g, y, 2 * sp.channels, sp.channels, 1, f"{name}.pw", act="relu")


def _split_shuffle(g, x, sp, name):  # ShuffleNetV2's stride-1 unit: split, branch, concat, shuffle
    c = sp.channels
    a, b = g.split(x, [c // 2, c // 2], f"{name}.split")
    b = conv_bn(g, b, c // 2, c // 2, 1, f"{name}.pw1", act="relu")
    b = conv_bn(g, b, c // 2, c // 2, 3, f"{name}.dw", groups=c // 2)
    b = conv_bn(g, b, c // 2, c // 2, 1, f"{name}.pw2", act="relu")
    return g.channel_shuffle(g.concat([a, b], f"{name}.cat"), c, 2, sp.hw, f"{name}.shuffle")


def _classifier(g, x, sp):
    y = g.flatten(g.global_avg_pool(x, "gap"), "flatten")
    return g.linear(y, sp.channels, sp.extra, "fc"), [1, sp.extra]


def _gemm(g, x, sp):
    y = g.flatten(x, "flatten")
    for i in range(sp.repeat):
        y = g.linear(y, sp.channels, sp.channels, f"fc{i}")
    return y, [1, sp.channels]


_BUILD = {
    "identity": _chain(lambda g, x, sp, n: g.relu(x, n)),
    "conv": _chain(lambda g, x, sp, n: conv_bn(g, x, sp.channels, sp.channels, 3, n, act="relu")),
    "pointwise": _chain(lambda g, x, sp, n: conv_bn(g, x, sp.channels, sp.channels, 1, n, act="relu")),
    "pointwise_expand": _chain(lambda g, x, sp, n: conv_bn(
        g, conv_bn(g, x, sp.channels, sp.channels * sp.extra, 1, f"{n}.exp", act="relu6"), sp.channels * sp.extra,
        sp.channels, 1, f"{n}.proj", act=None)),
    "depthwise": _chain(lambda g, x, sp, n: conv_bn(g, x, sp.channels, sp.channels, sp.k, n, groups=sp.channels,
                                                    act="relu6")),
    "grouped": _chain(lambda g, x, sp, n: conv_bn(g, x, sp.channels, sp.channels, 3, n,
                                                  groups=sp.channels // sp.extra, act="relu")),
    "conv_s2": _conv_s2,
    "depthwise_s2": _depthwise_s2,
    "maxpool": _chain(lambda g, x, sp, n: g.max_pool(x, 3, 1, 1, n)),
    "avgpool": _chain(lambda g, x, sp, n: g.avg_pool(x, 3, 1, 1, n)),
    "add": _chain(lambda g, x, sp, n: g.add(x, g.relu(x, f"{n}.r"), n)),
    "hardswish": _chain(lambda g, x, sp, n: g.hardswish(x, n)),
    "swish": _chain(lambda g, x, sp, n: g.silu(x, n)),
    "se": _chain(lambda g, x, sp, n: squeeze_excitation(g, x, sp.channels, max(8, sp.channels // 4), n)),
    "shuffle": _chain(lambda g, x, sp, n: g.channel_shuffle(x, sp.channels, 2, sp.hw, n)),
    "concat": _chain(_concat),
    "split_shuffle": _chain(_split_shuffle),
    "classifier": _classifier,
    "gemm": _gemm,
}


def layer_onnx(spec: LayerSpec, *, seed: int = 0) -> bytes:
    """The serialized ONNX model (opset 17) of one suite entry: input ``"input"`` float32
    ``[1, C, hw, hw]`` (``[1, C]`` for ``gemm``). Same spec and seed, same bytes."""
    spec = _check(spec)
    g = Graph(seed)
    in_shape = [1, spec.channels] if spec.kind == "gemm" else [1, spec.channels, spec.hw, spec.hw]
    x, out_shape = _BUILD[spec.kind](g, "input", spec)
    g.rename_output(x)
    doc = f"maple_edge_lite layer suite v{SUITE_VERSION} entry {spec.name} (seed {seed})"
    meta = {"maple_edge_lite.layer_suite": str(SUITE_VERSION), "maple_edge_lite.layer": spec.name,
            "maple_edge_lite.seed": str(seed)}
    return g.serialize(f"layer_{spec.kind}", in_shape, out_shape, doc, meta)


__all__ = ["LayerSpec", "SUITE_VERSION", "REPEAT", "default_suite", "layer_onnx"]

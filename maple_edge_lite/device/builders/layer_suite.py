"""The layer suite: small ONNX networks whose latencies, measured under a device's runtime, fit
that device's layer cost model (``maple_edge_lite.learn.layer_cost``).

Most entries are a short chain of one kind of layer at one shape, as real CNNs use it (Conv + BN +
activation, squeeze-excite, channel shuffle, the classifier), so that its layer table
(``maple_edge_lite.device.layers.from_onnx``) holds ``repeat`` rows of that kind and little else.
Depthwise convolutions are measured where networks have them, between a 1x1 expansion and a 1x1
projection (``depthwise_ir``): a runtime may fuse them into the 1x1 before (OpenVINO does), so
alone they cost what no network pays. :data:`BLOCK_KINDS` entries are two chained whole blocks of
the zoo's families, weighted :data:`BLOCK_WEIGHT` in the fit. The grid spans what the zoo's
families use: channels 8-2048 (and a few counts off a multiple of 8, as width-scaled or pruned
networks have), spatial sizes 4-112, kernels 1/3/5, strides 1 and 2, groups 1, 16-wide and
depthwise, expansion 2-6. Weights as in the zoo (He-scaled, batch norm at identity),
so no denormal reaches a timing.

The suite is a designed grid, not a sample: it is fixed by :data:`SUITE_VERSION` and every
entry's name says its shape (``pointwise@64x28x28x4``: kind, channels, height, width, repeat)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

from ..._errors import InputError
from ._graph import Graph
from ._zoo_common import conv_bn, squeeze_excitation

#: Bumped whenever an entry is added, removed or built differently (2: depthwise between 1x1s
#: instead of chained alone, whole blocks added; the 1x1 expand/project pairs of 1 dropped, as
#: every depthwise entry has them now; 3: the unaligned entries, channel counts off a multiple of 8;
#: 4: eleven entries at the small end, 4-48 spatial and 8-192 channels; the entries of 3 unchanged).
SUITE_VERSION = 4
#: Chained copies of the layer in an entry (shape-preserving kinds).
REPEAT = 4
#: Entries that are whole blocks of the zoo's families (two chained), not chains of one kind.
BLOCK_KINDS = ("invres", "mbconv", "invres_hs", "bottleneck", "basic", "fire", "regx")
#: Weight of a block entry in the suite's fit (``learn.layer_cost.fit_suite``), the others 1:
#: a runtime runs a block as it runs it inside a network (fused across layers), so the fit
#: should follow blocks where they and the one-kind chains disagree.
BLOCK_WEIGHT = 10.0
#: Entries built to measure what convolutions cost at channel counts off a multiple of 8 (a
#: runtime's blocked layout), fitted as the layer cost model's alignment term after the per-class
#: costs and not with them (:func:`class_fit_mask`).
UNALIGNED_PROBES = ("conv@19x56x56x4", "pointwise@154x14x14x4", "depthwise_irk3e77@19x56x56x2",
                    "depthwise_irk3e307@77x14x14x2", "groupede19@76x28x28x4")


@dataclass(frozen=True)
class LayerSpec:
    """One suite entry: ``kind`` at ``channels`` x ``hw`` x ``hw`` input, ``repeat`` copies."""

    name: str
    kind: str
    channels: int
    hw: int
    repeat: int
    k: int = 3
    extra: int = 0  # kind-specific: expansion (blocks), group width (grouped, regx), out
    # features (gemm, classifier), depthwise channels (depthwise_ir)


def _spec(kind: str, c: int, hw: int, repeat: int = REPEAT, k: int = 3, extra: int = 0) -> LayerSpec:
    tag = f"k{k}" if kind in ("conv_s2", "depthwise_ir", "depthwise_ir_s2", "mbconv") else ""
    tag += f"e{extra}" if extra else ""
    return LayerSpec(f"{kind}{tag}@{c}x{hw}x{hw}x{repeat}", kind, c, hw, repeat, k, extra)


def default_suite() -> List[LayerSpec]:
    """The suite, in measuring order (same list on every call)."""
    s: List[LayerSpec] = [_spec("identity", 16, 8, 1)]
    for c, hw in ((16, 56), (64, 28), (128, 14), (256, 7)):
        s.append(_spec("conv", c, hw))
    for c, hw in ((16, 56), (32, 56), (128, 28), (256, 14), (512, 7)):
        s.append(_spec("pointwise", c, hw))
    # Depthwise convolutions as networks run them, between a 1x1 expansion and a 1x1 projection
    # (what they have around them in every zoo family): OpenVINO fuses a depthwise convolution
    # into the 1x1 before it, so a chain of depthwise layers alone costs it ~4x what the same
    # layers cost inside networks. (cin, depthwise channels, size).
    for cin, c, hw in ((16, 32, 112), (16, 96, 56), (24, 144, 28), (40, 240, 14), (160, 960, 7)):
        s.append(_spec("depthwise_ir", cin, hw, repeat=2, k=3, extra=c))
    for cin, c, hw in ((24, 72, 56), (40, 240, 28), (112, 672, 14)):
        s.append(_spec("depthwise_ir", cin, hw, repeat=2, k=5, extra=c))
    for c, hw, gw in ((32, 56, 16), (64, 56, 16), (64, 28, 16), (160, 28, 16), (288, 14, 16),
                      (400, 7, 16), (384, 14, 24), (672, 7, 16)):
        s.append(_spec("grouped", c, hw, extra=gw))
    for c, hw, k in ((16, 112, 3), (64, 56, 3), (128, 28, 3)):
        s.append(_spec("conv_s2", c, hw, repeat=2, k=k))
    for cin, c, hw, k in ((16, 96, 112, 3), (24, 144, 56, 3), (40, 240, 28, 5)):
        s.append(_spec("depthwise_ir_s2", cin, hw, repeat=1, k=k, extra=c))
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
    # Unaligned convolutions: channel counts off a multiple of 8 (a pruned or width-scaled network's
    # 19, 38, 77, ...), which ONNX Runtime's blocked (NCHWc) layout does not take: they run on its
    # generic path at up to ~2x the cost per MAC (learn.layer_cost's alignment term fits it).
    # Five entries keep `profile --suite layers` near a minute (the 1x1s of the depthwise entries
    # are unaligned too).
    s.append(_spec("conv", 19, 56))
    s.append(_spec("pointwise", 154, 14))
    for cin, c, hw in ((19, 77, 56), (77, 307, 14)):
        s.append(_spec("depthwise_ir", cin, hw, repeat=2, k=3, extra=c))
    s.append(_spec("grouped", 76, 28, extra=19))
    s += _small_end()
    # Whole blocks of the zoo's families, two chained: what a runtime fuses across layers
    # (depthwise into pointwise, a residual add into its convolution) shows in these and not in
    # the chains of one kind above.
    for c, hw in ((24, 56), (64, 14), (160, 7)):
        s.append(_spec("invres", c, hw, repeat=2, extra=6))
    for c, hw, k in ((40, 28, 5), (112, 14, 3)):
        s.append(_spec("mbconv", c, hw, repeat=2, k=k, extra=6))
    s.append(_spec("invres_hs", 80, 14, repeat=2, extra=6))
    for c, hw in ((256, 56), (1024, 14)):
        s.append(_spec("bottleneck", c, hw, repeat=2))
    s.append(_spec("basic", 64, 56, repeat=2))
    for c, hw in ((128, 56), (384, 14)):
        s.append(_spec("fire", c, hw, repeat=2))
    s.append(_spec("regx", 160, 14, repeat=2, extra=16))
    return s


def _small_end() -> List[LayerSpec]:
    """The entries version 4 added (:data:`SMALL_END`): the layers of the zoo's smallest networks
    (MobileNetV1 0.25 at 128, MobileNetV2 0.35 at 96, ShuffleNetV2 x0.5, MobileNetV3-Small: 8-48
    channels at 6-48, 16-128 at 4-8), which cost a runtime per layer more than per MAC or byte.
    Without them the per-layer costs came from entries of 0.1-3 ms alone, and ONNX Runtime on an
    AMD EPYC (Zen 3) priced those networks 26-34% over (docs/layers.md)."""
    s = [_spec("depthwise_ir", cin, hw, repeat=2, k=3, extra=c) for cin, c, hw in ((8, 48, 24), (16, 96, 12),
                                                                                   (32, 192, 6))]
    s.append(_spec("depthwise_ir_s2", 8, 48, repeat=1, k=3, extra=48))
    s += [_spec("pointwise", c, hw) for c, hw in ((32, 8), (128, 4))]
    s.append(_spec("conv", 16, 14))
    s.append(_spec("invres", 16, 12, repeat=2, extra=6))
    s.append(_spec("invres_hs", 24, 28, repeat=2, extra=4))  # MobileNetV3-Small's: SE, hardswish
    s += [_spec("split_shuffle", c, hw) for c, hw in ((48, 28), (96, 14))]
    return s


#: The names of the entries version 4 added at the small end (:func:`_small_end`); the rest are
#: version 3's, built as they were (``benchmarks/zoo.py score --without-small-end`` fits the model
#: without these: version 3's on a version-4 file).
SMALL_END: Tuple[str, ...] = tuple(sp.name for sp in _small_end())


def fit_weights(specs) -> List[float]:
    """The fit weight of each entry (:data:`BLOCK_WEIGHT` for a block, else 1)."""
    return [BLOCK_WEIGHT if _check(s).kind in BLOCK_KINDS else 1.0 for s in specs]


def class_fit_mask(specs) -> List[bool]:
    """Per entry, whether the layer cost model's per-class costs are fitted on it (every entry but
    :data:`UNALIGNED_PROBES`, which fit the alignment term alone: ``LayerCostModel.from_suite(...,
    class_fit=)``)."""
    return [_check(s).name not in UNALIGNED_PROBES for s in specs]


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


def _depthwise_ir(g, x, sp, name, stride=1):
    """1x1 ``channels`` -> ``extra`` (ReLU6), depthwise ``k`` x ``k`` (``stride``, ReLU6), 1x1 back
    to ``channels``: an inverted residual without its addition."""
    c, h = sp.channels, sp.extra
    y = conv_bn(g, x, c, h, 1, f"{name}.exp", act="relu6")
    y = conv_bn(g, y, h, h, sp.k, f"{name}.dw", stride=stride, groups=h, act="relu6")
    return conv_bn(g, y, h, c, 1, f"{name}.proj")


def _depthwise_ir_s2(g, x, sp):
    for i in range(sp.repeat):
        x = _depthwise_ir(g, x, sp, f"l{i}", stride=2)
    hw = sp.hw
    for _ in range(sp.repeat):
        hw = (hw + 1) // 2
    return x, [1, sp.channels, hw, hw]


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


def _invres(g, x, sp, name, act="relu6", se=None):
    """MobileNetV2's inverted residual (stride 1, residual): expand 1x1, depthwise, SE (``se``:
    the gate's activation and kind, as EfficientNet and MobileNetV3 have it), project 1x1, add."""
    c, h = sp.channels, sp.channels * sp.extra
    y = conv_bn(g, x, c, h, 1, f"{name}.exp", act=act)
    y = conv_bn(g, y, h, h, sp.k, f"{name}.dw", groups=h, act=act)
    if se is not None:
        y = squeeze_excitation(g, y, h, max(8, c // 4), f"{name}.se", act=se[0], gate=se[1])
    y = conv_bn(g, y, h, c, 1, f"{name}.proj", gain_scale=0.5)
    return g.add(y, x, f"{name}.add")


def _bottleneck(g, x, sp, name):  # ResNet-50's bottleneck, stride 1: 1x1 down 4x, 3x3, 1x1 up, add, ReLU
    c, m = sp.channels, sp.channels // 4
    y = conv_bn(g, x, c, m, 1, f"{name}.c1", act="relu")
    y = conv_bn(g, y, m, m, 3, f"{name}.c2", act="relu")
    y = conv_bn(g, y, m, c, 1, f"{name}.c3", gain_scale=0.5)
    return g.relu(g.add(y, x, f"{name}.add"), f"{name}.relu")


def _basic(g, x, sp, name):  # ResNet-18's basic block: 3x3, 3x3, add, ReLU
    c = sp.channels
    y = conv_bn(g, x, c, c, 3, f"{name}.c1", act="relu")
    y = conv_bn(g, y, c, c, 3, f"{name}.c2", gain_scale=0.5)
    return g.relu(g.add(y, x, f"{name}.add"), f"{name}.relu")


def _fire(g, x, sp, name):  # SqueezeNet's fire module: squeeze 1x1 to C/8, expand 1x1 and 3x3 to C/2 each, concat
    c, s, e = sp.channels, sp.channels // 8, sp.channels // 2
    sq = conv_bn(g, x, c, s, 1, f"{name}.sq", act="relu")
    e1 = conv_bn(g, sq, s, e, 1, f"{name}.e1", act="relu")
    e3 = conv_bn(g, sq, s, e, 3, f"{name}.e3", act="relu")
    return g.concat([e1, e3], f"{name}.cat")


def _regx(g, x, sp, name):  # RegNetX's block, stride 1: 1x1, grouped 3x3 (groups of ``extra``), 1x1, add, ReLU
    c = sp.channels
    y = conv_bn(g, x, c, c, 1, f"{name}.a", act="relu")
    y = conv_bn(g, y, c, c, 3, f"{name}.b", groups=c // sp.extra, act="relu")
    y = conv_bn(g, y, c, c, 1, f"{name}.c", gain_scale=0.5)
    return g.relu(g.add(y, x, f"{name}.add"), f"{name}.relu")


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
    "grouped": _chain(lambda g, x, sp, n: conv_bn(g, x, sp.channels, sp.channels, 3, n,
                                                  groups=sp.channels // sp.extra, act="relu")),
    "conv_s2": _conv_s2,
    "depthwise_ir": _chain(_depthwise_ir),
    "depthwise_ir_s2": _depthwise_ir_s2,
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
    "invres": _chain(_invres),
    "mbconv": _chain(lambda g, x, sp, n: _invres(g, x, sp, n, act="silu", se=("silu", "sigmoid"))),
    "invres_hs": _chain(lambda g, x, sp, n: _invres(g, x, sp, n, act="hardswish", se=("relu", "hardsigmoid"))),
    "bottleneck": _chain(_bottleneck),
    "basic": _chain(_basic),
    "fire": _chain(_fire),
    "regx": _chain(_regx),
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


__all__ = ["LayerSpec", "SUITE_VERSION", "REPEAT", "BLOCK_KINDS", "BLOCK_WEIGHT", "UNALIGNED_PROBES", "SMALL_END",
           "default_suite", "fit_weights", "class_fit_mask", "layer_onnx"]

"""FBNet networks as ONNX models, built with ``onnx.helper`` (no PyTorch).

Macro-architecture of FBNet (Wu et al., CVPR 2019, Table 1; ImageNet, 224x224) as
HW-NAS-Bench's ``FBNet_Infer`` builds it, which is also what the ``fbnet`` encoder counts
(``docs/format.md``), so a model's graph and its encoder features describe the same network:

- stem: Conv 3x3 stride 2 (3 -> 16, no bias) + BN + ReLU;
- 22 searchable layers in 7 stages of (layers, channels, stride of the first layer)
  (1, 16, 1), (4, 24, 2), (4, 32, 2), (4, 64, 2), (4, 112, 1), (4, 184, 2), (1, 352, 1). The
  first stage's single layer is searchable too: FBNet has no fixed layer between the stem and
  the 22 searchable ones;
- header: Conv 1x1 (352 -> 1984) + BN + ReLU; GlobalAveragePool; Flatten; Gemm to
  ``num_classes`` (with bias).

A layer ``kK_eE[_g2]`` from C_in to C_out with stride s: Conv 1x1 to E·C_in (groups g) + BN +
ReLU; for g = 2 a channel shuffle (Reshape [N, g, C/g, H, W] -> Transpose (0, 2, 1, 3, 4) ->
Reshape, as PyTorch exports ``view``/``permute``/``view``); depthwise Conv KxK stride s
(padding K // 2) + BN + ReLU; Conv 1x1 to C_out (groups g) + BN; plus the input when s = 1 and
C_in = C_out. ``skip`` is no node at all when s = 1 and C_in = C_out, else (the first layer of
stages 1-6) Conv 1x1 stride s + BN + ReLU, HW-NAS-Bench's ``Skip``. Batch norms stay
``BatchNormalization`` nodes (runtimes fold them themselves)."""

from __future__ import annotations

from typing import Tuple

from ..._errors import InputError
from ._graph import Graph, positive_int, resolution_int, seed_int

OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
STAGE_LAYERS = (1, 4, 4, 4, 4, 4, 1)
STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
STEM_CHANNELS = 16
HEADER_CHANNELS = 1984


def parse(arch: str) -> Tuple[str, ...]:
    """The 22 layer ops of an FBNet architecture string (``op|op|...``), checked by the C++
    encoder first; ``InputError`` names what is wrong."""
    from ... import encode as enc

    if not isinstance(arch, str):
        raise InputError(f"arch must be an FBNet architecture string, got {type(arch).__name__}")
    try:
        enc.encode("fbnet", [arch])
    except InputError as e:
        msg = str(e)
        prefix = "archs[0]: "
        raise InputError(msg[len(prefix):] if msg.startswith(prefix) else msg) from e
    ops = tuple(arch.split("|"))
    if len(ops) != sum(STAGE_LAYERS) or any(op not in OPS for op in ops):  # the encoder accepted it
        raise AssertionError(f"fbnet parser disagrees with the encoder on {arch!r}")
    return ops


def _shuffle(g: Graph, x: str, c: int, groups: int, side: int, name: str) -> str:
    return g.channel_shuffle(x, c, groups, side, name)


def _layer(g: Graph, x: str, op: str, cin: int, cout: int, stride: int, side: int, name: str) -> str:
    if op == "skip":
        if stride == 1 and cin == cout:
            return x
        y = g.conv(x, cin, cout, 1, f"{name}.conv", stride=stride)
        return g.relu(g.bn(y, cout, f"{name}.bn"), f"{name}.relu")
    parts = op.split("_")
    k, e = int(parts[0][1:]), int(parts[1][1:])
    groups = 2 if op.endswith("_g2") else 1
    mid = cin * e
    y = g.conv(x, cin, mid, 1, f"{name}.conv1", groups=groups)
    y = g.relu(g.bn(y, mid, f"{name}.bn1"), f"{name}.relu1")
    if groups > 1:
        y = _shuffle(g, y, mid, groups, side, f"{name}.shuffle")
    y = g.conv(y, mid, mid, k, f"{name}.conv2", stride=stride, groups=mid)
    y = g.relu(g.bn(y, mid, f"{name}.bn2"), f"{name}.relu2")
    y = g.conv(y, mid, cout, 1, f"{name}.conv3", groups=groups)
    y = g.bn(y, cout, f"{name}.bn3")
    if stride == 1 and cin == cout:
        y = g.add(y, x, f"{name}.add")
    return y


def fbnet_onnx(arch: str, *, resolution: int = 224, num_classes: int = 1000, batch: int = 1, seed: int = 0) -> bytes:
    """The serialized ONNX model (opset 17) of FBNet architecture ``arch``: 22 ops from
    ``k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip`` joined by ``|``.

    Input ``"input"``: float32 ``[batch, 3, resolution, resolution]`` (``resolution`` a multiple
    of 32, default 224); output ``"output"``: float32 ``[batch, num_classes]``. Weights from
    ``numpy.random.default_rng(seed)`` (He init): same arguments, same bytes. The largest
    architectures hold about 6 M parameters (a 25 MB model). Returns a new ``bytes`` object
    owned by the caller; ``InputError`` for an invalid string or argument, ``UnsupportedError``
    without the ``onnx`` package."""
    ops = parse(arch)
    resolution = resolution_int(resolution, 32, "five stride-2 steps")
    num_classes = positive_int("num_classes", num_classes)
    batch = positive_int("batch", batch)
    seed = seed_int(seed)

    g = Graph(seed)
    x = g.conv("input", 3, STEM_CHANNELS, 3, "stem.conv", stride=2)
    x = g.relu(g.bn(x, STEM_CHANNELS, "stem.bn"), "stem.relu")
    side, cin, i = resolution // 2, STEM_CHANNELS, 0
    for s, (n, cout, stride0) in enumerate(zip(STAGE_LAYERS, STAGE_CHANNELS, STAGE_STRIDES)):
        for j in range(n):
            stride = stride0 if j == 0 else 1
            x = _layer(g, x, ops[i], cin, cout, stride, side, f"stage{s}.layer{i}")
            side //= stride
            cin = cout
            i += 1
    x = g.conv(x, cin, HEADER_CHANNELS, 1, "header.conv")
    x = g.relu(g.bn(x, HEADER_CHANNELS, "header.bn"), "header.relu")
    g.head(x, HEADER_CHANNELS, num_classes, "classifier")
    doc = (f"FBNet {arch} ({resolution}x{resolution}, {num_classes} classes, seed {seed}), "
           "built by maple_edge_lite.device.builders.fbnet_onnx")
    meta = {"maple_edge_lite.space": "fbnet", "maple_edge_lite.arch": arch, "maple_edge_lite.seed": str(seed),
            "maple_edge_lite.config": f"resolution={resolution},num_classes={num_classes},batch={batch}"}
    return g.serialize("fbnet", [batch, 3, resolution, resolution], [batch, num_classes], doc, meta)


__all__ = ["OPS", "STAGE_LAYERS", "STAGE_CHANNELS", "STAGE_STRIDES", "parse", "fbnet_onnx"]

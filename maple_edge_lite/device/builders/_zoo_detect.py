"""A detector for the layer path's checks beyond classification: Ultralytics YOLOv8 (``yolov8.yaml``,
scales n/s/m) node for node as ``torch.onnx.export`` writes its eval-mode model with batch norms not
folded, up to the three detection heads' raw outputs (box distributions and class logits per
anchor point, ``[1, 4 * 16 + classes, anchors]``). The box decoding after them (DFL softmax,
distance to box, class sigmoid: elementwise post-processing over the anchors that many deployments
run outside the network) is left out, and with it the DFL's 16 fixed weights.

Backbone: Conv (Conv2d without bias + BN + SiLU) stride-2 stages with C2f blocks (a 1x1 whose output
is split in two, bottlenecks of two 3x3 Convs chained on the last half, all halves concatenated,
a 1x1) and SPPF (a 1x1, three chained MaxPool 5x5/1, concatenated, a 1x1); neck: nearest 2x
Resize and concatenation upward, stride-2 Convs and concatenation downward (FPN + PAN); heads per
level: two 3x3 Convs then a 1x1 Conv2d (bias) for the boxes (64 channels) and for the classes."""

from __future__ import annotations

import math

import numpy as np

from ._graph import Graph
from ._zoo_common import conv_bn

#: (depth multiple, width multiple, max channels) of ``yolov8.yaml``'s scales.
YOLOV8_SCALES = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024), "m": (0.67, 0.75, 768)}
#: DFL bins per box side (``Detect.reg_max``).
YOLOV8_REG_MAX = 16


#: Gain factor of every Conv before a SiLU. The zoo's SiLU gain (``_graph.ACT_GAIN``) keeps the mean
#: square only near 1: SiLU is about x / 2 for small inputs and x for large ones, so no gain holds it
#: exactly, and over YOLOv8's 57 SiLU Convs in a row the zoo's gain let tensors' RMS reach 115 (n)
#: and 336 (m) at 320. With 0.9 and the residual scaling of :func:`_c2f`, every tensor's RMS stays
#: within 0.2-31 for n, s and m (0.9 without the scaling: up to 3.9e4 for m; ``tests/test_yolov8.py``).
SILU_GAIN_SCALE = 0.9


def _conv(g: Graph, x: str, cin: int, cout: int, k: int, name: str, stride: int = 1, gain: float = 1.0) -> str:
    return conv_bn(g, x, cin, cout, k, name, stride=stride, act="silu", gain_scale=SILU_GAIN_SCALE * gain)


def _c2f(g: Graph, x: str, cin: int, cout: int, n: int, shortcut: bool, name: str, residuals: int = 1) -> str:
    """``C2f``; a shortcut bottleneck's last Conv has its gain divided by ``residuals``, the
    network's residual branches (the zoo's residual scaling, ``_zoo_common``)."""
    c = cout // 2
    y = _conv(g, x, cin, 2 * c, 1, f"{name}.cv1")
    parts = list(g.split(y, [c, c], f"{name}.split"))
    for i in range(n):
        z = _conv(g, parts[-1], c, c, 3, f"{name}.m.{i}.cv1")
        z = _conv(g, z, c, c, 3, f"{name}.m.{i}.cv2", gain=1.0 / residuals if shortcut else 1.0)
        parts.append(g.add(parts[-1], z, f"{name}.m.{i}.add") if shortcut else z)
    return _conv(g, g.concat(parts, f"{name}.cat"), (2 + n) * c, cout, 1, f"{name}.cv2")


def _sppf(g: Graph, x: str, cin: int, cout: int, name: str) -> str:
    c = cin // 2
    y = [_conv(g, x, cin, c, 1, f"{name}.cv1")]
    for i in range(3):
        y.append(g.max_pool(y[-1], 5, 1, 2, f"{name}.m.{i}"))
    return _conv(g, g.concat(y, f"{name}.cat"), 4 * c, cout, 1, f"{name}.cv2")


def yolov8(g: Graph, scale: str, num_classes: int = 80) -> str:
    """``ultralytics YOLO("yolov8{scale}.yaml")`` at ``num_classes``: the raw head outputs
    ``[1, 64 + num_classes, anchors]`` (:func:`yolov8_anchors`; the input's side a multiple of
    32), see the module doc."""
    depth, width, max_ch = YOLOV8_SCALES[scale]

    def ch(c: int) -> int:  # make_divisible(min(c, max_channels) * width, 8)
        return int(math.ceil(min(c, max_ch) * width / 8) * 8)

    def rep(n: int) -> int:
        return max(round(n * depth), 1)

    x = _conv(g, "input", 3, ch(64), 3, "model.0", 2)
    x = _conv(g, x, ch(64), ch(128), 3, "model.1", 2)
    L = 2 * rep(3) + 2 * rep(6)  # the backbone's shortcut bottlenecks
    x = _c2f(g, x, ch(128), ch(128), rep(3), True, "model.2", L)
    x = _conv(g, x, ch(128), ch(256), 3, "model.3", 2)
    p3 = _c2f(g, x, ch(256), ch(256), rep(6), True, "model.4", L)
    x = _conv(g, p3, ch(256), ch(512), 3, "model.5", 2)
    p4 = _c2f(g, x, ch(512), ch(512), rep(6), True, "model.6", L)
    x = _conv(g, p4, ch(512), ch(1024), 3, "model.7", 2)
    x = _c2f(g, x, ch(1024), ch(1024), rep(3), True, "model.8", L)
    p5 = _sppf(g, x, ch(1024), ch(1024), "model.9")
    x = g.concat([g.upsample(p5, "model.10"), p4], "model.11")
    h12 = _c2f(g, x, ch(1024) + ch(512), ch(512), rep(3), False, "model.12")
    x = g.concat([g.upsample(h12, "model.13"), p3], "model.14")
    h15 = _c2f(g, x, ch(512) + ch(256), ch(256), rep(3), False, "model.15")
    x = g.concat([_conv(g, h15, ch(256), ch(256), 3, "model.16", 2), h12], "model.17")
    h18 = _c2f(g, x, ch(256) + ch(512), ch(512), rep(3), False, "model.18")
    x = g.concat([_conv(g, h18, ch(512), ch(512), 3, "model.19", 2), p5], "model.20")
    h21 = _c2f(g, x, ch(512) + ch(1024), ch(1024), rep(3), False, "model.21")
    levels = ((h15, ch(256)), (h18, ch(512)), (h21, ch(1024)))
    c2 = max(16, ch(256) // 4, 4 * YOLOV8_REG_MAX)
    c3 = max(ch(256), min(num_classes, 100))
    no = 4 * YOLOV8_REG_MAX + num_classes
    outs = []
    for i, (t, c) in enumerate(levels):
        a = _conv(g, t, c, c2, 3, f"model.22.cv2.{i}.0")
        a = _conv(g, a, c2, c2, 3, f"model.22.cv2.{i}.1")
        a = g.conv(a, c2, 4 * YOLOV8_REG_MAX, 1, f"model.22.cv2.{i}.2", bias=True, gain=1.0)
        b = _conv(g, t, c, c3, 3, f"model.22.cv3.{i}.0")
        b = _conv(g, b, c3, c3, 3, f"model.22.cv3.{i}.1")
        b = g.conv(b, c3, num_classes, 1, f"model.22.cv3.{i}.2", bias=True, gain=1.0)
        shape = g.shared(f"flat{no}", np.array([0, no, -1], np.int64))
        outs.append(g.node("Reshape", [g.concat([a, b], f"model.22.cat.{i}"), shape], f"model.22.view.{i}"))
    return g.concat(outs, "model.22.cat", axis=2)


def yolov8_anchors(resolution: int) -> int:
    """Anchor points of :func:`yolov8` at a square ``resolution``: the cells of strides 8, 16, 32."""
    return sum((resolution // s) ** 2 for s in (8, 16, 32))

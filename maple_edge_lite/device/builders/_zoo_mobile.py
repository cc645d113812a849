"""Depthwise-separable networks of the zoo: MobileNetV1 (TF-slim), torchvision's MobileNetV2,
MobileNetV3, MnasNet and EfficientNet, node for node as ``torch.onnx.export`` writes them with batch
norms not folded (see ``_zoo_common`` for the weights)."""

from __future__ import annotations

import math

from ._graph import Graph
from ._zoo_common import SE_GAIN, classifier, conv_bn, make_divisible, squeeze_excitation

# --- MobileNetV1 ------------------------------------------------------------------------------

#: (output channels, stride) of the 13 depthwise-separable layers (Howard et al. 2017, Table 1).
V1_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
             (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1(g: Graph, alpha: float, num_classes: int) -> str:
    """MobileNetV1 as TF-slim's ``mobilenet_v1`` defines it (there is no torchvision one): Conv
    3x3/2 (32·alpha) + BN + ReLU6, 13 x (depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN + ReLU6),
    channels max(int(c·alpha), 8), BN epsilon 1e-3; GlobalAveragePool, Flatten, Gemm (TF-slim's
    1x1 logits conv over the pooled map is the same product)."""
    def depth(c):
        return max(int(c * alpha), 8)

    cin = depth(32)
    x = conv_bn(g, "input", 3, cin, 3, "Conv2d_0", stride=2, act="relu6", eps=1e-3)
    for i, (c, s) in enumerate(V1_LAYERS):
        cout = depth(c)
        x = conv_bn(g, x, cin, cin, 3, f"Conv2d_{i + 1}_depthwise", stride=s, groups=cin, act="relu6", eps=1e-3)
        x = conv_bn(g, x, cin, cout, 1, f"Conv2d_{i + 1}_pointwise", act="relu6", eps=1e-3)
        cin = cout
    return classifier(g, x, cin, num_classes)


# --- MobileNetV2 ------------------------------------------------------------------------------

#: (expansion t, channels c, repeats n, stride s) of torchvision's ``MobileNetV2`` (the paper's Table 2).
V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1))


def mobilenet_v2(g: Graph, width: float, num_classes: int) -> str:
    """``torchvision.models.MobileNetV2(width_mult=width)``: channels rounded with
    ``_make_divisible(c·width, 8)``, the last conv 1280·max(1, width); InvertedResidual = [Conv 1x1
    + BN + ReLU6 when t != 1], depthwise 3x3 + BN + ReLU6, Conv 1x1 + BN (linear), plus the input
    when stride 1 and C_in = C_out; GlobalAveragePool, Flatten, Gemm."""
    cin = make_divisible(32 * width)
    last = make_divisible(1280 * max(1.0, width))
    blocks = []
    for t, c, n, s in V2_SETTINGS:
        cout = make_divisible(c * width)
        for i in range(n):
            blocks.append((t, cout, s if i == 0 else 1))
    L = _residuals(cin, blocks)
    x = conv_bn(g, "input", 3, cin, 3, "features.0", stride=2, act="relu6")
    for b, (t, cout, stride) in enumerate(blocks):
        name = f"features.{b + 1}"
        hidden = int(round(cin * t))
        res = stride == 1 and cin == cout
        y = x
        if t != 1:
            y = conv_bn(g, y, cin, hidden, 1, f"{name}.expand", act="relu6")
        y = conv_bn(g, y, hidden, hidden, 3, f"{name}.dw", stride=stride, groups=hidden, act="relu6")
        y = conv_bn(g, y, hidden, cout, 1, f"{name}.project", gain_scale=1.0 / L if res else 1.0)
        x = g.add(x, y, f"{name}.add") if res else y
        cin = cout
    x = conv_bn(g, x, cin, last, 1, f"features.{len(blocks) + 1}", act="relu6")
    return classifier(g, x, last, num_classes)


def _residuals(cin: int, blocks) -> int:
    """Number of blocks with a residual addition: stride 1 and unchanged channels (the
    ``gain / L`` rule of ``_zoo_common``). ``blocks``: (..., C_out, stride) tuples in order."""
    n = 0
    for b in blocks:
        cout, stride = b[-2], b[-1]
        n += stride == 1 and cin == cout
        cin = cout
    return max(n, 1)


# --- MobileNetV3 ------------------------------------------------------------------------------

#: (C_in, kernel, expanded, C_out, SE, activation, stride) of torchvision's ``_mobilenet_v3_conf``.
V3_LARGE = ((16, 3, 16, 16, False, "relu", 1), (16, 3, 64, 24, False, "relu", 2),
            (24, 3, 72, 24, False, "relu", 1), (24, 5, 72, 40, True, "relu", 2),
            (40, 5, 120, 40, True, "relu", 1), (40, 5, 120, 40, True, "relu", 1),
            (40, 3, 240, 80, False, "hardswish", 2), (80, 3, 200, 80, False, "hardswish", 1),
            (80, 3, 184, 80, False, "hardswish", 1), (80, 3, 184, 80, False, "hardswish", 1),
            (80, 3, 480, 112, True, "hardswish", 1), (112, 3, 672, 112, True, "hardswish", 1),
            (112, 5, 672, 160, True, "hardswish", 2), (160, 5, 960, 160, True, "hardswish", 1),
            (160, 5, 960, 160, True, "hardswish", 1))
V3_SMALL = ((16, 3, 16, 16, True, "relu", 2), (16, 3, 72, 24, False, "relu", 2),
            (24, 3, 88, 24, False, "relu", 1), (24, 5, 96, 40, True, "hardswish", 2),
            (40, 5, 240, 40, True, "hardswish", 1), (40, 5, 240, 40, True, "hardswish", 1),
            (40, 5, 120, 48, True, "hardswish", 1), (48, 5, 144, 48, True, "hardswish", 1),
            (48, 5, 288, 96, True, "hardswish", 2), (96, 5, 576, 96, True, "hardswish", 1),
            (96, 5, 576, 96, True, "hardswish", 1))
#: Width of the classifier's hidden layer (``last_channel``).
V3_LAST = {"large": 1280, "small": 1024}


def mobilenet_v3(g: Graph, size: str, num_classes: int) -> str:
    """``torchvision.models.mobilenet_v3_{size}`` (width 1): Conv 3x3/2 (16) + BN + hardswish;
    InvertedResidual = [Conv 1x1 + BN + act when expanded], depthwise KxK + BN + act, [SE: ReLU,
    HardSigmoid gate, squeeze _make_divisible(expanded / 4, 8)], Conv 1x1 + BN, plus the input when
    stride 1 and C_in = C_out; Conv 1x1 to 6·C + BN + hardswish; GlobalAveragePool, Flatten,
    Gemm + hardswish + Gemm. BN epsilon 1e-3."""
    conf = V3_LARGE if size == "large" else V3_SMALL
    eps = 1e-3
    L = _residuals(conf[0][0], [(c[3], c[6]) for c in conf])
    x = conv_bn(g, "input", 3, conf[0][0], 3, "features.0", stride=2, act="hardswish", eps=eps)
    for b, (cin, k, exp, cout, se, act, stride) in enumerate(conf):
        name = f"features.{b + 1}"
        res = stride == 1 and cin == cout
        y = x
        if exp != cin:
            y = conv_bn(g, y, cin, exp, 1, f"{name}.expand", act=act, eps=eps)
        y = conv_bn(g, y, exp, exp, k, f"{name}.dw", stride=stride, groups=exp, act=act, eps=eps)
        if se:
            y = squeeze_excitation(g, y, exp, make_divisible(exp // 4, 8), f"{name}.se", act="relu",
                                   gate="hardsigmoid")
        y = conv_bn(g, y, exp, cout, 1, f"{name}.project", eps=eps,
                    gain_scale=(SE_GAIN if se else 1.0) / (L if res else 1))
        x = g.add(y, x, f"{name}.add") if res else y
    cin = conf[-1][3]
    x = conv_bn(g, x, cin, 6 * cin, 1, f"features.{len(conf) + 1}", act="hardswish", eps=eps)
    x = g.flatten(g.global_avg_pool(x, "avgpool"), "flatten")
    x = g.hardswish(g.linear(x, 6 * cin, V3_LAST[size], "classifier.0", gain=3.0), "classifier.1")
    return g.linear(x, V3_LAST[size], num_classes, "classifier.3")


# --- MnasNet ----------------------------------------------------------------------------------

#: (C_out index into the depths, kernel, stride, expansion, repeats) of torchvision's ``MNASNet`` stacks.
MNAS_STACKS = ((2, 3, 2, 3, 3), (3, 5, 2, 3, 3), (4, 5, 2, 6, 3), (5, 3, 1, 6, 2), (6, 5, 2, 6, 4), (7, 3, 1, 6, 1))
MNAS_DEPTHS = (32, 16, 24, 40, 80, 96, 192, 320)


def mnasnet(g: Graph, alpha: float, num_classes: int) -> str:
    """``torchvision.models.MNASNet(alpha)`` (MnasNet-B1): depths rounded to multiples of 8 (0.9
    round-up bias); Conv 3x3/2 + BN + ReLU, depthwise 3x3 + BN + ReLU, Conv 1x1 + BN, six stacks of
    inverted residuals (Conv 1x1 to C_in·t + BN + ReLU, depthwise KxK + BN + ReLU, Conv 1x1 + BN,
    plus the input when stride 1 and C_in = C_out), Conv 1x1 to 1280 + BN + ReLU; ReduceMean over
    H, W (``x.mean([2, 3])``), Gemm."""
    d = [make_divisible(c * alpha, 8) for c in MNAS_DEPTHS]
    blocks = []
    for j, k, s, t, n in MNAS_STACKS:
        for i in range(n):
            blocks.append((k, t, d[j], s if i == 0 else 1))
    L = _residuals(d[1], blocks)
    x = conv_bn(g, "input", 3, d[0], 3, "layers.0", stride=2, act="relu")
    x = conv_bn(g, x, d[0], d[0], 3, "layers.3", groups=d[0], act="relu")
    x = conv_bn(g, x, d[0], d[1], 1, "layers.6")
    cin = d[1]
    for b, (k, t, cout, stride) in enumerate(blocks):
        name = f"layers.block{b}"
        mid = cin * t
        res = stride == 1 and cin == cout
        y = conv_bn(g, x, cin, mid, 1, f"{name}.expand", act="relu")
        y = conv_bn(g, y, mid, mid, k, f"{name}.dw", stride=stride, groups=mid, act="relu")
        y = conv_bn(g, y, mid, cout, 1, f"{name}.project", gain_scale=1.0 / L if res else 1.0)
        x = g.add(y, x, f"{name}.add") if res else y
        cin = cout
    x = conv_bn(g, x, cin, 1280, 1, "layers.14", act="relu")
    return classifier(g, x, 1280, num_classes, pool="mean")


# --- EfficientNet -----------------------------------------------------------------------------

#: (expansion, kernel, stride, C_in, C_out, layers) of torchvision's ``_efficientnet_conf`` (B0).
EFFNET_STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                 (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
#: variant -> (width multiplier, depth multiplier).
EFFNETS = {"b0": (1.0, 1.0), "b1": (1.0, 1.1)}


def efficientnet(g: Graph, variant: str, num_classes: int) -> str:
    """``torchvision.models.efficientnet_{variant}``: Conv 3x3/2 + BN + SiLU; MBConv = [Conv 1x1 +
    BN + SiLU when expanded], depthwise KxK + BN + SiLU, SE (squeeze max(1, C_in / 4), SiLU, Sigmoid
    gate), Conv 1x1 + BN, plus the input when stride 1 and C_in = C_out (stochastic depth is the
    identity in inference); layers per stage ceil(n · depth multiplier); Conv 1x1 to 4·320 + BN +
    SiLU; GlobalAveragePool, Flatten, Gemm. SiLU is exported as Mul(x, Sigmoid(x))."""
    wm, dm = EFFNETS[variant]
    blocks = []
    for t, k, s, cin, cout, n in EFFNET_STAGES:
        cin, cout = make_divisible(cin * wm), make_divisible(cout * wm)
        for i in range(int(math.ceil(n * dm))):
            blocks.append((t, k, cin if i == 0 else cout, cout, s if i == 0 else 1))
    L = _residuals(blocks[0][2], [(b[3], b[4]) for b in blocks])
    stem = make_divisible(32 * wm)
    x = conv_bn(g, "input", 3, stem, 3, "features.0", stride=2, act="silu")
    for b, (t, k, cin, cout, stride) in enumerate(blocks):
        name = f"features.block{b}"
        exp = make_divisible(cin * t)
        res = stride == 1 and cin == cout
        y = x
        if exp != cin:
            y = conv_bn(g, y, cin, exp, 1, f"{name}.expand", act="silu")
        y = conv_bn(g, y, exp, exp, k, f"{name}.dw", stride=stride, groups=exp, act="silu")
        y = squeeze_excitation(g, y, exp, max(1, cin // 4), f"{name}.se", act="silu", gate="sigmoid")
        y = conv_bn(g, y, exp, cout, 1, f"{name}.project", gain_scale=SE_GAIN / (L if res else 1))
        x = g.add(y, x, f"{name}.add") if res else y
    cin = blocks[-1][3]
    x = conv_bn(g, x, cin, 4 * cin, 1, "features.last", act="silu")
    return classifier(g, x, 4 * cin, num_classes)


__all__ = ["V1_LAYERS", "V2_SETTINGS", "V3_LARGE", "V3_SMALL", "MNAS_STACKS", "MNAS_DEPTHS", "EFFNET_STAGES",
           "EFFNETS", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3", "mnasnet", "efficientnet"]

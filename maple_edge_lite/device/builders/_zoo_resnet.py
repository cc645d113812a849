"""Residual networks of the zoo: torchvision's ResNet (v1.5) and RegNetX, node for node as
``torch.onnx.export`` writes them with batch norms not folded (see ``_zoo_common`` for the weights)."""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np

from ._graph import Graph
from ._zoo_common import classifier, conv_bn, make_divisible

#: depth -> (block, blocks per stage) of torchvision's ``resnet18/34/50``.
RESNETS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


def resnet(g: Graph, depth: int, num_classes: int) -> str:
    """``torchvision.models.resnet{depth}``: Conv 7x7/2 + BN + ReLU + MaxPool 3x3/2, four stages of
    BasicBlock (3x3, 3x3) or Bottleneck (1x1, 3x3 with the stride, 1x1 to 4x: v1.5), a 1x1 conv +
    BN shortcut where the shape changes, ReLU after each addition; GlobalAveragePool, Flatten, Gemm."""
    block, layers = RESNETS[depth]
    expansion = 1 if block == "basic" else 4
    L = sum(layers)
    x = conv_bn(g, "input", 3, 64, 7, "stem", stride=2, act="relu")
    x = g.max_pool(x, 3, 2, 1, "maxpool")
    inplanes = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            name = f"layer{i + 1}.{j}"
            if block == "basic":
                y = conv_bn(g, x, inplanes, planes, 3, f"{name}.conv1", stride=stride, act="relu")
                y = conv_bn(g, y, planes, planes, 3, f"{name}.conv2", gain_scale=2.0 / L)
            else:
                y = conv_bn(g, x, inplanes, planes, 1, f"{name}.conv1", act="relu")
                y = conv_bn(g, y, planes, planes, 3, f"{name}.conv2", stride=stride, act="relu")
                y = conv_bn(g, y, planes, planes * 4, 1, f"{name}.conv3", gain_scale=2.0 / L)
            identity = x
            if stride != 1 or inplanes != planes * expansion:
                # gain 2: the ReLU after the addition halves the sum's mean square
                identity = conv_bn(g, x, inplanes, planes * expansion, 1, f"{name}.downsample",
                                   stride=stride, gain_scale=2.0)
            x = g.relu(g.add(y, identity, f"{name}.add"), f"{name}.relu")
            inplanes = planes * expansion
    return classifier(g, x, inplanes, num_classes)


#: name -> (depth, w_0, w_a, w_m, group width) of torchvision's ``regnet_x_*`` (bottleneck ratio 1, no SE).
REGNETX = {"400mf": (22, 24, 24.48, 2.54, 16), "800mf": (16, 56, 35.73, 2.28, 16)}


def regnet_stages(depth: int, w_0: float, w_a: float, w_m: float, group_width: int) -> List[Tuple[int, int, int]]:
    """(width, depth, group width) of each stage, torchvision's ``BlockParams.from_init_params``
    with bottleneck multiplier 1: linear widths w_0 + w_a·j quantised to w_0·w_m^k (multiples of 8),
    runs of equal widths become stages, then each width is made divisible by its group width.
    E.g. RegNetX-400MF: widths 32, 64, 160, 400 and depths 1, 2, 7, 12."""
    widths_cont = np.arange(depth, dtype=np.float32) * np.float32(w_a) + np.float32(w_0)
    capacity = np.round(np.log(widths_cont / np.float32(w_0)) / np.float32(math.log(w_m)))
    block_widths = (np.round(w_0 * np.power(np.float32(w_m), capacity) / 8) * 8).astype(int).tolist()
    stages: List[List[int]] = []
    for w in block_widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    out = []
    for w, d in stages:
        g = min(group_width, w)
        out.append((make_divisible(w, g), d, g))
    return out


def regnet_x(g: Graph, variant: str, num_classes: int) -> str:
    """``torchvision.models.regnet_x_{variant}``: stem Conv 3x3/2 (32) + BN + ReLU; stages of
    ResBottleneckBlock (1x1, grouped 3x3 with the stride, 1x1; a 1x1 conv + BN projection where the
    shape changes, computed first; ReLU after the addition); GlobalAveragePool, Flatten, Gemm."""
    stages = regnet_stages(*REGNETX[variant])
    L = sum(d for _, d, _ in stages)
    x = conv_bn(g, "input", 3, 32, 3, "stem", stride=2, act="relu")
    w_in = 32
    for s, (w_out, d, gw) in enumerate(stages):
        for i in range(d):
            stride = 2 if i == 0 else 1
            name = f"trunk_output.block{s + 1}.block{s + 1}-{i}"
            proj = None
            if w_in != w_out or stride != 1:
                proj = conv_bn(g, x, w_in, w_out, 1, f"{name}.proj", stride=stride, gain_scale=2.0)
            y = conv_bn(g, x, w_in, w_out, 1, f"{name}.f.a", act="relu")
            y = conv_bn(g, y, w_out, w_out, 3, f"{name}.f.b", stride=stride, groups=w_out // gw, act="relu")
            y = conv_bn(g, y, w_out, w_out, 1, f"{name}.f.c", gain_scale=2.0 / L)
            x = g.relu(g.add(proj if proj is not None else x, y, f"{name}.add"), f"{name}.activation")
            w_in = w_out
    return classifier(g, x, w_in, num_classes)


__all__ = ["RESNETS", "REGNETX", "resnet", "regnet_stages", "regnet_x"]

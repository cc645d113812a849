"""Networks of the zoo built from concatenations: torchvision's SqueezeNet 1.1 (Fire modules) and
ShuffleNetV2 (channel split and shuffle), node for node as ``torch.onnx.export`` writes them with
batch norms not folded (see ``_zoo_common`` for the weights)."""

from __future__ import annotations

from ._graph import Graph
from ._zoo_common import classifier, conv_bn

#: (squeeze, expand 1x1 = expand 3x3) of SqueezeNet 1.1's eight Fire modules; "M": MaxPool 3x3/2 (ceil).
SQUEEZENET_1_1 = ("M", (16, 64), (16, 64), "M", (32, 128), (32, 128), "M", (48, 192), (48, 192), (64, 256),
                  (64, 256))


def squeezenet1_1(g: Graph, num_classes: int) -> str:
    """``torchvision.models.squeezenet1_1``: Conv 3x3/2 (64, no padding, bias) + ReLU, Fire modules
    (squeeze Conv 1x1 + ReLU, then expand Conv 1x1 + ReLU and Conv 3x3 + ReLU, concatenated) and
    MaxPool 3x3/2 with ``ceil_mode``; classifier Conv 1x1 to the classes (bias) + ReLU,
    GlobalAveragePool, Flatten. No batch norms; all convs have a (zero) bias."""
    x = g.relu(g.conv("input", 3, 64, 3, "features.0", stride=2, pad=0, bias=True), "features.1")
    c = 64
    for i, layer in enumerate(SQUEEZENET_1_1):
        name = f"features.{i + 2}"
        if layer == "M":
            x = g.max_pool(x, 3, 2, 0, name, ceil_mode=True)
            continue
        s, e = layer
        sq = g.relu(g.conv(x, c, s, 1, f"{name}.squeeze", bias=True), f"{name}.squeeze_activation")
        e1 = g.relu(g.conv(sq, s, e, 1, f"{name}.expand1x1", bias=True), f"{name}.expand1x1_activation")
        e3 = g.relu(g.conv(sq, s, e, 3, f"{name}.expand3x3", bias=True), f"{name}.expand3x3_activation")
        x = g.concat([e1, e3], f"{name}.cat")
        c = 2 * e
    x = g.relu(g.conv(x, c, num_classes, 1, "classifier.1", bias=True), "classifier.2")
    return g.flatten(g.global_avg_pool(x, "classifier.3"), "flatten")


#: Output channels of conv1, stages 2-4 and conv5 of torchvision's ``shufflenet_v2_x*``.
SHUFFLENET_V2 = {"0.5": (24, 48, 96, 192, 1024), "1.0": (24, 116, 232, 464, 1024),
                 "1.5": (24, 176, 352, 704, 1024), "2.0": (24, 244, 488, 976, 2048)}
SHUFFLENET_REPEATS = (4, 8, 4)


def shufflenet_v2(g: Graph, width: str, num_classes: int, resolution: int) -> str:
    """``torchvision.models.shufflenet_v2_x{width}``: Conv 3x3/2 + BN + ReLU, MaxPool 3x3/2; three
    stages of InvertedResidual (stride 2: both branches read the input; stride 1: Split in two
    halves, the first passes, the second goes through the branch), Concat, channel shuffle (groups 2,
    Reshape-Transpose-Reshape); Conv 1x1 + BN + ReLU; ReduceMean over H, W; Gemm.
    Branch 1: depthwise 3x3/2 + BN, Conv 1x1 + BN + ReLU; branch 2: Conv 1x1 + BN + ReLU,
    depthwise 3x3 (stride) + BN, Conv 1x1 + BN + ReLU."""
    chans = SHUFFLENET_V2[width]
    x = conv_bn(g, "input", 3, chans[0], 3, "conv1", stride=2, act="relu")
    x = g.max_pool(x, 3, 2, 1, "maxpool")
    side = -(-(-(-resolution // 2)) // 2)  # ceil twice: conv 3x3/2 pad 1, then maxpool 3x3/2 pad 1
    cin = chans[0]
    for s, (n, cout) in enumerate(zip(SHUFFLENET_REPEATS, chans[1:4])):
        bf = cout // 2
        for i in range(n):
            name = f"stage{s + 2}.{i}"
            if i == 0:
                side = -(-side // 2)
                b1 = conv_bn(g, x, cin, cin, 3, f"{name}.branch1.0", stride=2, groups=cin)
                b1 = conv_bn(g, b1, cin, bf, 1, f"{name}.branch1.2", act="relu")
                b2 = _branch2(g, x, cin, bf, 2, f"{name}.branch2")
                y = g.concat([b1, b2], f"{name}.cat")
            else:
                x1, x2 = g.split(x, [bf, bf], f"{name}.chunk")
                y = g.concat([x1, _branch2(g, x2, bf, bf, 1, f"{name}.branch2")], f"{name}.cat")
            x = g.channel_shuffle(y, cout, 2, side, f"{name}.shuffle")
            cin = cout
    x = conv_bn(g, x, cin, chans[4], 1, "conv5", act="relu")
    return classifier(g, x, chans[4], num_classes, pool="mean")


def _branch2(g: Graph, x: str, cin: int, bf: int, stride: int, name: str) -> str:
    y = conv_bn(g, x, cin, bf, 1, f"{name}.0", act="relu")
    y = conv_bn(g, y, bf, bf, 3, f"{name}.3", stride=stride, groups=bf)
    return conv_bn(g, y, bf, bf, 1, f"{name}.5", act="relu")


__all__ = ["SQUEEZENET_1_1", "SHUFFLENET_V2", "SHUFFLENET_REPEATS", "squeezenet1_1", "shufflenet_v2"]

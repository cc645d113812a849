"""PyTorch models as users export them: MobileNetV2 (widths 1.0 and 0.75, one with SE, SiLU and 5x5
depthwise convolutions) and ResNet-18 (224 and 160) written in plain torch, each exported by both
of torch's exporters (TorchScript, opset 17; dynamo, opset 18, weights in an external data file),
to check the layer table and ``predict --onnx`` on what exporters write, not on this package's
builders.

    python -m venv --system-site-packages tv && tv/bin/pip install torch==2.13.0 onnxscript
    tv/bin/python benchmarks/torch_exports.py OUT
    maple-edge-lite predict --onnx OUT/*.onnx
    maple-edge-lite measure --onnx OUT/*.onnx -o OUT/m.csv

Weights are torch's default initialisation (eval mode); the networks are not torchvision's
exactly (no pretrained weights are needed, nor torchvision)."""

import sys
from pathlib import Path

import torch
import torch.nn as nn


def cbr(i, o, k=3, s=1, g=1, act=nn.ReLU6):
    """Conv (no bias) + BatchNorm + activation (``act`` None: none), as torchvision's."""
    return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o),
                         act(inplace=True) if act else nn.Identity())


class SE(nn.Module):
    def __init__(self, c, s):
        super().__init__()
        self.f1 = nn.Conv2d(c, s, 1)
        self.f2 = nn.Conv2d(s, c, 1)

    def forward(self, x):
        w = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.f2(nn.functional.silu(self.f1(w))))


class InvertedResidual(nn.Module):
    def __init__(self, i, o, s, e, se=False, act=nn.ReLU6, k=3):
        super().__init__()
        h = i * e
        self.res = s == 1 and i == o
        layers = ([cbr(i, h, 1, act=act)] if e != 1 else []) + [cbr(h, h, k, s, h, act=act)]
        if se:
            layers.append(SE(h, max(8, i // 4)))
        layers.append(cbr(h, o, 1, act=None))
        self.b = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.b(x) if self.res else self.b(x)


class MobileNetV2(nn.Module):
    CFG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, width=1.0, se=False, act=nn.ReLU6, k=3):
        super().__init__()

        def ch(v):
            return max(8, int(v * width + 4) // 8 * 8)

        i = ch(32)
        layers = [cbr(3, i, 3, 2, act=act)]
        for e, o, n, s in self.CFG:
            for r in range(n):
                layers.append(InvertedResidual(i, ch(o), s if r == 0 else 1, e, se=se, act=act, k=k))
                i = ch(o)
        layers.append(cbr(i, 1280, 1, act=act))
        self.f = nn.Sequential(*layers)
        self.fc = nn.Linear(1280, 1000)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.f(x), 1), 1))


class BasicBlock(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.c1 = cbr(i, o, 3, s, act=nn.ReLU)
        self.c2 = cbr(o, o, 3, act=None)
        self.sc = (nn.Sequential() if s == 1 and i == o
                   else nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o)))

    def forward(self, x):
        return torch.relu(self.c2(self.c1(x)) + self.sc(x))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, i = [], 64
        for o, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(i, o, s), BasicBlock(o, o, 1)]
            i = o
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


NETS = {"mbv2_1.0_224": (lambda: MobileNetV2(1.0), 224), "mbv2_0.75_160": (lambda: MobileNetV2(0.75), 160),
        "mbv2se_silu_k5_1.0_224": (lambda: MobileNetV2(1.0, se=True, act=nn.SiLU, k=5), 224),
        "r18_224": (ResNet18, 224), "r18_160": (ResNet18, 160)}


def main(argv) -> int:
    if len(argv) != 1:
        print("usage: torch_exports.py OUT", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    failed = 0
    for name, (make, r) in NETS.items():
        m = make().eval()
        x = torch.randn(1, 3, r, r)
        for dynamo in (False, True):
            p = out / f"{name}_{'dynamo' if dynamo else 'ts'}.onnx"
            try:
                torch.onnx.export(m, (x,), str(p), dynamo=dynamo, opset_version=18 if dynamo else 17,
                                  input_names=["input"], output_names=["logits"])
                print("wrote", p)
            except Exception as e:  # an exporter's failure is a finding, the others still run
                failed += 1
                print(f"FAILED {p}: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

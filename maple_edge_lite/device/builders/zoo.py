"""A zoo of real CNN architectures as ONNX models, built with ``onnx.helper`` (no PyTorch), for
runtimes to measure and predictors to be tested on networks users deploy.

33 variants of 9 families, each following its reference definition (torchvision's where it has
one) node for node as ``torch.onnx.export`` (opset 17) writes it from an eval-mode model, batch
norms not folded, dropout and stochastic depth absent:

- ResNet-18/34/50 (torchvision, v1.5: the stride on the 3x3 of the bottleneck);
- MobileNetV1 (TF-slim; 6 width/resolution pairs): the network of TFLite's and MLPerf's mobile
  benchmarks and of the visual-wake-words (0.25) models on microcontroller-class boards, and the
  plainest depthwise-separable stack, a baseline every runtime has tuned;
- MobileNetV2 (torchvision; 12 width/resolution pairs of the TF-slim checkpoint table);
- MobileNetV3-Large/-Small, EfficientNet-B0/B1 (224/240), MnasNet 0.5/1.0 (torchvision);
- SqueezeNet 1.1, ShuffleNetV2 x0.5/x1.0/x1.5, RegNetX-400MF/800MF (torchvision).

:func:`zoo_info` gives each variant's published MACs and parameters (torchvision's weights
metadata, the TF-slim tables) and their source; ``tests/test_zoo.py`` counts both on the built
graphs. Weights: identity batch norms and activation-matched conv gains (``_zoo_common``).

Write the models to files with ``python -m maple_edge_lite.device.builders.zoo --out DIR
[--names resnet18,mobilenet_v3_small]``.

Beside the zoo, not one of its variants (the zoo holds classifiers, scored family by family by
``benchmarks/zoo.py``): :func:`yolov8_onnx`, the Ultralytics YOLOv8 detector (scales n/s/m,
``_zoo_detect``), whose parameters ``tests/test_zoo.py`` checks against Ultralytics' own counts."""

from __future__ import annotations

import argparse
import difflib
import sys
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional

from ..._errors import InputError
from ._graph import Graph, positive_int, resolution_int, seed_int
from ._zoo_detect import YOLOV8_REG_MAX, YOLOV8_SCALES, yolov8, yolov8_anchors
from ._zoo_misc import shufflenet_v2, squeezenet1_1
from ._zoo_mobile import efficientnet, mnasnet, mobilenet_v1, mobilenet_v2, mobilenet_v3
from ._zoo_resnet import regnet_x, resnet

_TV = ("torchvision weights metadata ({weights}: _ops {gmacs} GFLOPS, which torchvision counts as "
       "multiply-accumulates, and num_params {params}), 1000 classes")
_TF_V2 = ("TF-slim MobileNetV2 checkpoint table (tensorflow/models research/slim/nets/mobilenet/README.md; "
          "Sandler et al. 2018): {macs} M MACs, {params} M parameters, 1001 classes")
_PAPER_V1 = ("Howard et al. 2017 (MobileNets), Table 6: {macs} M mult-adds, {params} M parameters, 1001 classes "
             "as in TF-slim")
_TF_V1 = ("TF-slim MobileNetV1 checkpoint table (tensorflow/models research/slim/nets/mobilenet_v1.md; "
          "Howard et al. 2017): {macs} M MACs, {params} M parameters, 1001 classes")


class _Entry(NamedTuple):
    family: str
    build: Callable  # (graph, num_classes) -> the logits tensor
    resolution: int
    reference: str
    macs: int  # published figure, multiply-accumulates of one image
    params: int  # published figure
    macs_unit: int  # the published figures' last digit, in MACs and in parameters
    params_unit: int
    num_classes: int  # classes the published figures count
    params_convention: str  # "trainable" or "no_batchnorm"
    macs_rounding: str  # "nearest" or "floor"
    source: str


def _tv(family, build, resolution, fn, weights, gmacs, params) -> _Entry:
    return _Entry(family, build, resolution, f"torchvision.models.{fn}", round(gmacs * 1e9), params, 10 ** 6, 1,
                  1000, "trainable", "nearest", _TV.format(weights=weights, gmacs=gmacs, params=params))


def _tf(family, build, resolution, ref, template, macs_m, params_m, params_unit=10 ** 4) -> _Entry:
    # TF-slim's MobileNetV2 table leaves batch norms out of its parameters and truncates its MACs
    # (each of its 21 figures is the floor of the count); the MobileNetV1 table and paper count
    # the batch norms' scale and shift and round to nearest.
    v2 = family == "mobilenet_v2"
    return _Entry(family, build, resolution, ref, macs_m * 10 ** 6, round(params_m * 1e6), 10 ** 6, params_unit,
                  1001, "no_batchnorm" if v2 else "trainable", "floor" if v2 else "nearest",
                  template.format(macs=macs_m, params=params_m))


def _registry() -> Dict[str, _Entry]:
    z: Dict[str, _Entry] = {}
    for depth, w, gm, p in ((18, "ResNet18_Weights.IMAGENET1K_V1", 1.814, 11689512),
                            (34, "ResNet34_Weights.IMAGENET1K_V1", 3.664, 21797672),
                            (50, "ResNet50_Weights.IMAGENET1K_V1", 4.089, 25557032)):
        z[f"resnet{depth}"] = _tv("resnet", partial(resnet, depth=depth), 224, f"resnet{depth}", w, gm, p)
    for alpha, res, macs, params in (("1.0", 224, 569, 4.24), ("1.0", 128, 186, 4.24), ("0.75", 224, 325, 2.6),
                                     ("0.5", 160, 77, 1.34), ("0.25", 224, 41, 0.47), ("0.25", 128, 14, 0.47)):
        # 0.75: the paper's Table 6 (325 M, 2.6 M); the TF-slim table's 317 M for 0.75_224 is
        # 2.6% below the count of its own definition, whose other widths it matches.
        template = _PAPER_V1 if alpha == "0.75" else _TF_V1
        z[f"mobilenet_v1_{alpha}_{res}"] = _tf("mobilenet_v1", partial(mobilenet_v1, alpha=float(alpha)), res,
                                               "TF-slim nets/mobilenet_v1.py", template, macs, params,
                                               params_unit=10 ** 5 if alpha == "0.75" else 10 ** 4)
    for width, res, macs, params in (("1.4", 224, 582, 6.06), ("1.0", 224, None, None), ("1.0", 192, 221, 3.47),
                                     ("1.0", 160, 154, 3.47), ("1.0", 128, 99, 3.47), ("1.0", 96, 56, 3.47),
                                     ("0.75", 224, 209, 2.61), ("0.75", 160, 107, 2.61), ("0.5", 224, 97, 1.95),
                                     ("0.5", 128, 32, 1.95), ("0.35", 224, 59, 1.66), ("0.35", 96, 11, 1.66)):
        build = partial(mobilenet_v2, width=float(width))
        if macs is None:  # the width/resolution torchvision ships: its figures, 1000 classes
            z[f"mobilenet_v2_{width}_{res}"] = _tv("mobilenet_v2", build, res, "mobilenet_v2",
                                                   "MobileNet_V2_Weights.IMAGENET1K_V1", 0.301, 3504872)
        else:
            z[f"mobilenet_v2_{width}_{res}"] = _tf("mobilenet_v2", build, res,
                                                   f"torchvision.models.MobileNetV2(width_mult={width})", _TF_V2,
                                                   macs, params)
    z["mobilenet_v3_large"] = _tv("mobilenet_v3", partial(mobilenet_v3, size="large"), 224, "mobilenet_v3_large",
                                  "MobileNet_V3_Large_Weights.IMAGENET1K_V1", 0.217, 5483032)
    z["mobilenet_v3_small"] = _tv("mobilenet_v3", partial(mobilenet_v3, size="small"), 224, "mobilenet_v3_small",
                                  "MobileNet_V3_Small_Weights.IMAGENET1K_V1", 0.057, 2542856)
    z["efficientnet_b0"] = _tv("efficientnet", partial(efficientnet, variant="b0"), 224, "efficientnet_b0",
                               "EfficientNet_B0_Weights.IMAGENET1K_V1", 0.386, 5288548)
    z["efficientnet_b1"] = _tv("efficientnet", partial(efficientnet, variant="b1"), 240, "efficientnet_b1",
                               "EfficientNet_B1_Weights.IMAGENET1K_V1", 0.687, 7794184)
    z["squeezenet1_1"] = _tv("squeezenet", squeezenet1_1, 224, "squeezenet1_1",
                             "SqueezeNet1_1_Weights.IMAGENET1K_V1", 0.349, 1235496)
    for width, fn, gm, p in (("0.5", "x0_5", 0.04, 1366792), ("1.0", "x1_0", 0.145, 2278604),
                             ("1.5", "x1_5", 0.296, 3503624)):
        z[f"shufflenet_v2_x{width}"] = _tv("shufflenet_v2", partial(shufflenet_v2, width=width, resolution=224), 224,
                                           f"shufflenet_v2_{fn}", f"ShuffleNet_V2_{fn.upper()}_Weights.IMAGENET1K_V1",
                                           gm, p)
    for alpha, fn, gm, p in (("0.5", "0_5", 0.104, 2218512), ("1.0", "1_0", 0.314, 4383312)):
        z[f"mnasnet{alpha}"] = _tv("mnasnet", partial(mnasnet, alpha=float(alpha)), 224, f"mnasnet{fn}",
                                   f"MNASNet{fn}_Weights.IMAGENET1K_V1", gm, p)
    for v, gm, p in (("400mf", 0.414, 5495976), ("800mf", 0.8, 7259656)):
        z[f"regnet_x_{v}"] = _tv("regnet", partial(regnet_x, variant=v), 224, f"regnet_x_{v}",
                                 f"RegNet_X_{v.upper()}_Weights.IMAGENET1K_V1", gm, p)
    return z


_ZOO = _registry()


def zoo_names() -> List[str]:
    """Names of every zoo variant, in a stable order (family by family), e.g. ``"resnet18"``,
    ``"mobilenet_v2_1.0_224"`` (width, input side), ``"shufflenet_v2_x0.5"``."""
    return list(_ZOO)


def _entry(name) -> _Entry:
    if not isinstance(name, str):
        raise InputError(f"zoo name must be a string, got {type(name).__name__} {name!r}")
    if name not in _ZOO:
        close = difflib.get_close_matches(name, list(_ZOO), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(f"unknown zoo network {name!r}: {hint}known: {', '.join(_ZOO)}")
    return _ZOO[name]


def zoo_family(name: str) -> str:
    """The family of variant ``name``: ``resnet``, ``mobilenet_v1``, ``mobilenet_v2``,
    ``mobilenet_v3``, ``efficientnet``, ``squeezenet``, ``shufflenet_v2``, ``mnasnet`` or ``regnet``.
    ``InputError`` for an unknown name."""
    return _entry(name).family


def zoo_info(name: str) -> dict:
    """What variant ``name`` is and its published figures, a new dict:

    ``name``, ``family``, ``reference`` (the definition it follows), ``resolution`` (input side, px),
    ``macs`` and ``params`` (published multiply-accumulates of one image and parameter count),
    ``macs_unit`` and ``params_unit`` (the last published digit: a figure is known to ± half of it),
    ``num_classes`` (classes the published figures count: 1000 for torchvision, 1001 for the
    TF-slim tables), ``params_convention`` (``"trainable"``: every trainable tensor, batch norms'
    scale and shift included, as PyTorch's ``sum(p.numel() for p in model.parameters())``;
    ``"no_batchnorm"``: conv and linear weights and biases only), ``macs_rounding``
    (``"nearest"``, or ``"floor"`` for a table that truncates) and ``source`` (where the figures
    come from). MACs count convolutions (k·k·C_in/groups per output element, squeeze-and-excitation
    included) and linear layers, nothing else (``count_macs``'s convention)."""
    e = _entry(name)
    return {"name": name, "family": e.family, "reference": e.reference, "resolution": e.resolution,
            "macs": e.macs, "params": e.params, "macs_unit": e.macs_unit, "params_unit": e.params_unit,
            "num_classes": e.num_classes, "params_convention": e.params_convention,
            "macs_rounding": e.macs_rounding, "source": e.source}


def zoo_onnx(name: str, *, batch: int = 1, num_classes: int = 1000, seed: int = 0) -> bytes:
    """The serialized ONNX model (opset 17) of zoo variant ``name`` (see :func:`zoo_names`).

    Input ``"input"``: float32 ``[batch, 3, R, R]`` with R the variant's resolution
    (``zoo_info(name)["resolution"]``); output ``"output"``: float32 ``[batch, num_classes]``
    (logits). Weights from ``numpy.random.default_rng(seed)``: the same arguments give the same
    bytes. Returns a new ``bytes`` object owned by the caller; write it with :func:`save`.
    ``InputError`` for an unknown name (naming the known ones) or a bad argument,
    ``UnsupportedError`` without the ``onnx`` package."""
    e = _entry(name)
    batch = positive_int("batch", batch)
    num_classes = positive_int("num_classes", num_classes)
    seed = seed_int(seed)
    g = Graph(seed)
    g.rename_output(e.build(g, num_classes=num_classes))
    r = e.resolution
    doc = (f"{name} ({e.reference}; {r}x{r}, {num_classes} classes, seed {seed}), "
           "built by maple_edge_lite.device.builders.zoo_onnx")
    meta = {"maple_edge_lite.builder": "zoo_onnx", "maple_edge_lite.zoo.name": name,
            "maple_edge_lite.zoo.family": e.family, "maple_edge_lite.seed": str(seed),
            "maple_edge_lite.config": f"resolution={r},num_classes={num_classes},batch={batch}"}
    return g.serialize(name, [batch, 3, r, r], [batch, num_classes], doc, meta)


def yolov8_onnx(scale: str = "n", *, resolution: int = 640, num_classes: int = 80, batch: int = 1,
                seed: int = 0) -> bytes:
    """The serialized ONNX model (opset 17) of Ultralytics YOLOv8 at ``scale`` ("n", "s" or "m";
    ``yolov8{scale}.yaml``), not a zoo variant: input ``"input"`` float32 ``[batch, 3, R, R]``
    (R = ``resolution``, a multiple of 32), output ``"output"`` float32 ``[batch, 64 +
    num_classes, anchors]``, the three heads' raw outputs before the box decoding (``_zoo_detect``).
    Same arguments, same bytes. ``InputError`` for an unknown scale or a bad argument."""
    if scale not in YOLOV8_SCALES:
        raise InputError(f"unknown YOLOv8 scale {scale!r}; known: {', '.join(YOLOV8_SCALES)}")
    r = resolution_int(resolution, 32, "YOLOv8's largest stride")
    batch = positive_int("batch", batch)
    num_classes = positive_int("num_classes", num_classes)
    seed = seed_int(seed)
    g = Graph(seed)
    g.rename_output(yolov8(g, scale, num_classes))
    name = f"yolov8{scale}_{r}"
    doc = (f"{name} (ultralytics yolov8{scale}.yaml, raw head outputs; {r}x{r}, {num_classes} classes, seed {seed}), "
           "built by maple_edge_lite.device.builders.yolov8_onnx")
    meta = {"maple_edge_lite.builder": "yolov8_onnx", "maple_edge_lite.seed": str(seed),
            "maple_edge_lite.config": f"scale={scale},resolution={r},num_classes={num_classes},batch={batch}"}
    return g.serialize(name, [batch, 3, r, r], [batch, 4 * YOLOV8_REG_MAX + num_classes, yolov8_anchors(r)], doc, meta)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m maple_edge_lite.device.builders.zoo --out DIR [--names a,b]``: write
    ``DIR/NAME.onnx`` for every (or each named) variant; prints each path written."""
    from ..._errors import MapleEdgeError
    from ._graph import save

    p = argparse.ArgumentParser(prog="python -m maple_edge_lite.device.builders.zoo",
                                description="Write the zoo's ONNX models (one NAME.onnx per variant).")
    p.add_argument("--out", required=True, help="directory to write into (created if missing)")
    p.add_argument("--names", help="comma-separated variants (default: all): " + ", ".join(_ZOO))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    names = [n.strip() for n in args.names.split(",") if n.strip()] if args.names else zoo_names()
    try:
        for n in names:
            _entry(n)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for n in names:
            path = save(zoo_onnx(n, batch=args.batch, num_classes=args.num_classes, seed=args.seed), out / f"{n}.onnx")
            print(path)
    except (MapleEdgeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


__all__ = ["zoo_names", "zoo_family", "zoo_info", "zoo_onnx", "main"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

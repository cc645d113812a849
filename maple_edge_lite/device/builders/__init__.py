"""Network builders: ONNX models of NAS-Bench-201 and FBNet architectures, of the MAPLE-Edge
operator suite and of a zoo of published CNNs, written with the ``onnx`` package alone (no
PyTorch), for runtimes to measure.

- :func:`nb201_onnx` (``nb201``): a NAS-Bench-201 network from its architecture string.
- :func:`fbnet_onnx` (``fbnet``): an FBNet network from its 22 layer ops.
- :func:`zoo_onnx`, :func:`zoo_names`, :func:`zoo_family`, :func:`zoo_info` (``zoo``): ResNet,
  MobileNetV1/V2/V3, EfficientNet, SqueezeNet, ShuffleNetV2, MnasNet and RegNetX variants as
  torchvision (or TF-slim) defines them, with their published MACs and parameters;
  :func:`yolov8_onnx`: the Ultralytics YOLOv8 detector (n/s/m), beside the zoo.
- :class:`OpSpec`, :func:`default_suite`, :func:`op_onnx` (``ops``): the single-op models a
  device is profiled with.
- :func:`save`: write a built model atomically; :func:`count_ops`, :func:`count_macs`: inspect one.

Every builder returns the serialized model as ``bytes`` (opset 17, input ``"input"``, output
``"output"``, seeded weights: same arguments, same bytes). ``onnx`` is an optional extra
(``pip install 'maple-edge-lite[onnx]'``), imported on the first build, never at import: a missing
``onnx`` raises ``UnsupportedError`` then."""

from __future__ import annotations

_LAZY = {
    "nb201_onnx": "nb201",
    "fbnet_onnx": "fbnet",
    "zoo_onnx": "zoo",
    "zoo_names": "zoo",
    "zoo_family": "zoo",
    "zoo_info": "zoo",
    "yolov8_onnx": "zoo",
    "OpSpec": "ops",
    "default_suite": "ops",
    "op_onnx": "ops",
    "save": "_graph",
    "count_ops": "_graph",
    "count_macs": "_graph",
    "OPSET": "_graph",
    "BUILDER_VERSION": "_graph",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'maple_edge_lite.device.builders' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = list(_LAZY)

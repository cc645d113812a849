"""maple_edge_lite: runtime latency predictor for neural networks on edge devices.

The core (int8 MLP inference, the weights-file reader) is C++ behind a C API; this package is
its Python client plus the host-side tooling (quantizing and packing models)."""

try:
    from . import _core, _cycore  # noqa: F401  (_cycore: the per-inference calls, docs/bindings.md)
except ImportError as _e:  # pragma: no cover - depends on how the package was reached
    import os as _os

    raise ImportError(
        f"maple_edge_lite's compiled core (_core, _cycore) is missing in {_os.path.dirname(__file__)}: this is "
        "probably the source folder shadowing the installed package. Install with `pip install .` "
        f"and run from outside the source tree ({_e})"
    ) from None
from ._errors import (
    ChecksumError,
    FormatError,
    InputError,
    LimitError,
    MapleEdgeError,
    MapleEdgeIOError,
    MapleEdgePermissionError,
    ModelNotFoundError,
    NumericError,
    ResourceError,
    UnsupportedError,
    VersionError,
)
from ._model import Model

__version__ = _core.version()

# Host-side tooling (packing, quantizing) is imported on first use: `import maple_edge_lite`
# on a board costs numpy and the core, nothing else. (The quantizer itself is
# maple_edge_lite.quantize.quantize: a top-level function of that name would be shadowed by
# the submodule as soon as it is imported.) ``load`` (the shipped predictors, or a file) and
# ``device_model`` (this device's adapted predictor, cached) also load on first use.
_LAZY = {"pack": "format", "QuantizedMLP": "quantize", "load": "registry", "device_model": "_cache"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'maple_edge_lite' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))

__all__ = [
    "Model",
    "load",
    "device_model",
    "pack",
    "QuantizedMLP",
    "MapleEdgeError",
    "FormatError",
    "VersionError",
    "ChecksumError",
    "LimitError",
    "InputError",
    "NumericError",
    "ModelNotFoundError",
    "MapleEdgePermissionError",
    "MapleEdgeIOError",
    "UnsupportedError",
    "ResourceError",
    "__version__",
]

"""maple_edge_lite: runtime latency predictor for neural networks on edge devices.

The core (int8 MLP inference, the weights-file reader) is C++ behind a C API; this package is
its Python client plus the host-side tooling (quantizing and packing models)."""

try:
    from . import _core
except ImportError as _e:  # pragma: no cover - depends on how the package was reached
    import os as _os

    raise ImportError(
        f"maple_edge_lite's compiled core (_core) is missing in {_os.path.dirname(__file__)}: this is "
        "probably the source folder shadowing the installed package. Install with `pip install .` "
        f"and run from outside the source tree ({_e})"
    ) from None
from ._errors import (
    ChecksumError,
    FormatError,
    InputError,
    LimitError,
    MapleEdgeError,
    MapleEdgePermissionError,
    ModelNotFoundError,
    NumericError,
    UnsupportedError,
    VersionError,
)
from ._model import Model
from .format import pack
from .quantize import QuantizedMLP, quantize

__version__ = _core.version()

__all__ = [
    "Model",
    "pack",
    "quantize",
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
    "UnsupportedError",
    "__version__",
]

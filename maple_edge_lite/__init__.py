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
# ``device_model`` (this device's adapted predictor, cached) and ``recheck`` (its speed timed
# again) also load on first use.
_LAZY = {"pack": "format", "QuantizedMLP": "quantize", "load": "registry", "device_model": "_cache",
         "recheck": "_cache"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'maple_edge_lite' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


# Import paths of 0.1, before the device side and the host side got folders of their own
# (docs/design.md): they keep working, with a FutureWarning naming the new path. A 1:1 move is
# the same module object under both names; ``fewshot`` and ``evaluate`` were split, so their
# old names are views over the modules that now hold their parts.
_MOVED = {
    "counters": ("device.counters",),
    "measure": ("device.measure",),
    "profile": ("device.profile",),
    "runtimes": ("device.runtimes",),
    "builders": ("device.builders",),
    "data": ("learn.data",),
    "mlp": ("learn.mlp",),
    "fewshot": ("learn.bayes_linear", "learn.adapt", "learn.operator_sum"),
    "evaluate": ("learn.evaluate", "learn.methods", "learn.baselines", "learn._numerics"),
}


class _MovedPaths:
    """A meta-path finder and loader for the old import paths (``maple_edge_lite.counters``,
    ``maple_edge_lite.runtimes._torch``, ...)."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        parts = fullname.split(".")
        if len(parts) < 2 or parts[0] != __name__ or parts[1] not in _MOVED:
            return None
        if len(parts) > 2 and len(_MOVED[parts[1]]) > 1:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(fullname, cls)

    @staticmethod
    def create_module(spec):
        import importlib
        import types
        import warnings

        parts = spec.name.split(".")
        targets = [f"{__name__}.{t}" for t in _MOVED[parts[1]]]
        if len(parts) > 2:
            targets = [targets[0] + "." + ".".join(parts[2:])]
        warnings.warn(f"{spec.name} moved to {' and '.join(targets)} in maple_edge_lite 0.2; import it from there",
                      FutureWarning, stacklevel=2)
        mods = [importlib.import_module(t) for t in targets]
        if len(mods) == 1:
            return mods[0]
        view = types.ModuleType(spec.name, f"Old import path: names from {', '.join(targets)}.")

        def __getattr__(name):
            for m in mods:
                if hasattr(m, name):
                    return getattr(m, name)
            raise AttributeError(f"module {spec.name!r} has no attribute {name!r}")

        view.__getattr__ = __getattr__
        return view

    @staticmethod
    def exec_module(module):
        pass


import sys as _sys  # noqa: E402

_sys.meta_path.insert(0, _MovedPaths)

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

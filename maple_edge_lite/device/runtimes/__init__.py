"""Runtime adapters: run an ONNX model under the inference runtime a deployment uses, so its
latency (and the counters around it) is measured where it will be paid.

    from maple_edge_lite.device import runtimes
    runtimes.available()                  # {"onnxruntime": "1.22.0", "mnn": "not installed: ...", ...}
    rt = runtimes.get("onnxruntime", threads=1)
    with rt.load(onnx_bytes_or_path) as s:    # a Session: model loaded, fixed input bound
        s.run()                           # one inference, blocking; time this
    rt.info()                             # name, version, threads, settings: for JSON sidecars

The interface is two classes. A ``Runtime`` is one runtime at one thread count (``name``,
``version``, ``threads``, ``load(model) -> Session``, ``info() -> dict``). A ``Session`` is one
loaded model: ``run()`` does one inference on a fixed float32 input (the model's input shape,
seeded with ``INPUT_SEED``; it is ``session.input``) and returns when the result is computed;
``close()`` (or ``with``) frees it. ``session.infer(x)`` returns an output, for checking results
across runtimes; it copies, so it is not what to time.

Built-in adapters, each in its own module and imported only by ``get``: ``onnxruntime``,
``openvino``, ``mnn``, ``torch`` (with a small ONNX -> torch interpreter), ``ncnn`` (via pnnx)
and ``litert`` (``.tflite`` models only). Importing this package imports none of them.
docs/runtimes.md gives each adapter's settings, why, and its measured per-call overhead.

Your own runtime (TensorRT on a Jetson, a vendor NPU SDK) plugs in as callables::

    def load(model, threads):                 # model: ONNX bytes or path
        engine = build_engine(model)          # yours
        return lambda: engine.execute()       # runs one inference, blocking
    runtimes.register("tensorrt", lambda threads=1, **kw: runtimes.CallableRuntime(
        "tensorrt", trt.__version__, load, threads=threads))
    runtimes.get("tensorrt")

Errors: an unknown name raises ``InputError`` listing the known ones; a runtime that is not
installed raises ``RuntimeNotInstalledError`` (an ``UnsupportedError`` and an ``ImportError``)
naming the ``pip install`` that brings it; a model the runtime refuses raises
``ModelRejectedError`` (an ``InputError``) with the runtime's name and words (only the runtime's
own errors: a bug in adapter code propagates as the ``TypeError`` etc. it is); ``threads < 1``
raises ``InputError``.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, Tuple

from ..._errors import InputError, UnsupportedError
from ._base import (
    INPUT_SEED,
    CallableRuntime,
    ModelRejectedError,
    Runtime,
    RuntimeNotInstalledError,
    Session,
    check_threads,
    fixed_input,
)

# name -> (module, class, distributions that must be installed, the install hint)
_BUILTIN: Dict[str, Tuple[str, str, Tuple[str, ...], str]] = {
    "onnxruntime": ("._onnxruntime", "OnnxRuntime", ("onnxruntime",), "pip install 'maple-edge-lite[onnxruntime]'"),
    "openvino": ("._openvino", "OpenVinoRuntime", ("openvino", "onnx"), "pip install 'maple-edge-lite[openvino]'"),
    "mnn": ("._mnn", "MnnRuntime", ("mnn", "onnx"), "pip install 'maple-edge-lite[mnn]'"),
    "torch": ("._torch", "TorchRuntime", ("torch", "onnx"), "pip install 'maple-edge-lite[torch]'"),
    "ncnn": ("._ncnn", "NcnnRuntime", ("ncnn", "pnnx", "onnx"), "pip install ncnn onnx && pip install --no-deps pnnx"),
    "litert": ("._litert", "LiteRtRuntime", ("ai-edge-litert",), "pip install ai-edge-litert"),
}
_USER: Dict[str, Callable[..., Runtime]] = {}


def names() -> Tuple[str, ...]:
    """Every runtime name ``get`` knows: the built-in ones, then registered ones."""
    return tuple(_BUILTIN) + tuple(n for n in _USER if n not in _BUILTIN)


def get(name: str, threads: int = 1, **options) -> Runtime:
    """The runtime ``name`` at ``threads`` threads. ``options`` are the adapter's own settings
    (e.g. ``spinning=True`` for onnxruntime, ``precision="f32"`` for openvino); an option the
    adapter does not take raises ``InputError``."""
    return check_options(name, threads, **options)(threads=threads, **options)


def check_options(name: str, threads: int = 1, **options) -> Callable[..., Runtime]:
    """The factory of the runtime ``name``, after checking that it takes ``options`` (``InputError``
    naming the option otherwise) without constructing it: the adapter's module is imported, not the
    runtime's library (a cache key can say which options it was made with, for free)."""
    check_threads(threads)
    if name in _USER:
        factory = _USER[name]
    elif name in _BUILTIN:
        module, cls, _, _ = _BUILTIN[name]
        factory = getattr(importlib.import_module(module, __name__), cls)
    else:
        raise InputError(f"unknown runtime {name!r}; known runtimes: {', '.join(names())}")
    import inspect

    try:
        inspect.signature(factory).bind(threads=threads, **options)
    except TypeError as e:
        raise InputError(f"runtime {name!r}: bad option: {e}") from None
    except ValueError:  # no signature to inspect (a builtin): let the call decide
        pass
    return factory


def register(name: str, factory: Callable[..., Runtime], replace: bool = False) -> None:
    """Make ``get(name, threads, **options)`` return ``factory(threads=threads, **options)``, a
    ``Runtime`` (often a ``CallableRuntime``). Registering over an existing name, a built-in
    one included, needs ``replace=True``."""
    if not isinstance(name, str) or not name:
        raise InputError(f"runtime name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise InputError(f"factory for {name!r} must be callable, got {type(factory).__name__}")
    if (name in _USER or name in _BUILTIN) and not replace:
        raise InputError(f"runtime {name!r} already exists; pass replace=True to override it")
    _USER[name] = factory


def unregister(name: str) -> None:
    """Remove a registered runtime (a replaced built-in comes back)."""
    if _USER.pop(name, None) is None:
        raise InputError(f"runtime {name!r} was not registered")


def available() -> Dict[str, str]:
    """name -> version for each runtime that is installed, else ``"not installed: <pip
    install ...>"``. Built-in runtimes are looked up in the installed packages' metadata (no
    runtime is imported); registered ones are built once at one thread to read their version,
    and a failure becomes the string ``"unavailable: <reason>"``."""
    from importlib import metadata

    out: Dict[str, str] = {}
    for name, (_, _, dists, hint) in _BUILTIN.items():
        if name in _USER:
            continue
        versions = []
        for dist in dists:
            try:
                versions.append(metadata.version(dist))
            except metadata.PackageNotFoundError:
                versions = None
                break
        out[name] = versions[0] if versions else f"not installed: {hint}"
    for name, factory in _USER.items():
        try:
            out[name] = str(factory(threads=1).version)
        except Exception as e:  # a user's factory: report, do not raise
            out[name] = f"unavailable: {type(e).__name__}: {e}"
    return out


__all__ = [
    "Runtime",
    "Session",
    "CallableRuntime",
    "get",
    "check_options",
    "available",
    "register",
    "unregister",
    "names",
    "fixed_input",
    "INPUT_SEED",
    "RuntimeNotInstalledError",
    "ModelRejectedError",
    "UnsupportedError",
]

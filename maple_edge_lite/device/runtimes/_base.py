"""The runtime interface, its errors and the helpers every adapter shares.

Nothing here imports a runtime: adapters import theirs inside ``_import`` when ``get`` builds
them."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..._errors import InputError, UnsupportedError

ModelLike = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]

#: The seed of every session's input: the same model sees the same numbers on every runtime.
INPUT_SEED = 0


class RuntimeNotInstalledError(UnsupportedError, ImportError):
    """The runtime's Python package is not installed (or fails to import); the message says
    which ``pip install`` brings it."""


class ModelRejectedError(InputError):
    """The runtime refused the model (an op it lacks, a malformed file); the message names the
    runtime and carries the runtime's own words."""


#: Errors that mean a bug in maple_edge_lite or in an adapter, never a model the runtime refused:
#: :func:`runtime_rejected` does not take them for a rejection (unless the runtime's own module
#: defines the type), so they reach the caller as they are instead of turning an adapter bug into
#: an "unsupported" operator in a descriptor.
PROGRAMMING_ERRORS = (TypeError, AttributeError, NameError, LookupError, AssertionError, ImportError,
                      NotImplementedError, RecursionError, SyntaxError)


def _defined_in(cls: type, modules: Sequence[str]) -> bool:
    mod = getattr(cls, "__module__", "") or ""
    return any(mod == m or mod.startswith(m + ".") for m in modules)


def runtime_rejected(exc: BaseException, modules: Sequence[str], also: Tuple[type, ...] = ()) -> bool:
    """Whether ``exc``, raised while a runtime loaded a model, is the runtime refusing the model
    (to become ``ModelRejectedError``) rather than a bug to let through. Yes when the exception's
    type (or a base of it) is defined in one of ``modules``, the runtime's packages (e.g.
    ``onnxruntime``'s ``InvalidGraph``); yes when it is one of ``also``, the builtin types an
    adapter documents its runtime raising for a model it cannot take (OpenVINO's ``RuntimeError``),
    unless it is a :data:`PROGRAMMING_ERRORS` type or one of maple_edge_lite's own errors (those
    already say what they mean)."""
    if any(_defined_in(t, modules) for t in type(exc).__mro__ if t.__module__ != "builtins"):
        return True
    if isinstance(exc, PROGRAMMING_ERRORS) or _defined_in(type(exc), ("maple_edge_lite",)):
        return False
    return isinstance(exc, tuple(also))


def not_installed(name: str, install: str, cause: Optional[BaseException] = None) -> RuntimeNotInstalledError:
    why = f" ({type(cause).__name__}: {cause})" if cause is not None and str(cause) else ""
    return RuntimeNotInstalledError(f"runtime {name!r} is not installed: {install}{why}")


def check_threads(threads: Any) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise InputError(f"threads must be an integer >= 1, got {threads!r}")
    return int(threads)


def fixed_input(shape: Sequence[int], seed: int = INPUT_SEED) -> np.ndarray:
    """The input every session runs on: standard normal float32 of ``shape`` from ``seed``, C
    contiguous, owned by the caller."""
    return np.random.default_rng(seed).standard_normal(tuple(shape), dtype=np.float32)


def static_shape(name: str, dims: Sequence[Any]) -> Tuple[int, ...]:
    """An input shape with a symbolic (or unknown) leading batch dimension set to 1. Any other
    symbolic dimension is an error: a latency needs one concrete shape."""
    out = []
    for i, d in enumerate(dims):
        if isinstance(d, (int, np.integer)) and d > 0:
            out.append(int(d))
        elif i == 0:
            out.append(1)
        else:
            raise InputError(
                f"{name}: input dimension {i} is {d!r}, not a fixed size; export the model with a "
                "static input shape (only the batch dimension may be symbolic; it is run as 1)"
            )
    return tuple(out)


class Workdir:
    """A private temporary folder (for converted models) removed by ``cleanup``."""

    def __init__(self, prefix: str):
        self.path = tempfile.mkdtemp(prefix=f"maple_edge_lite-{prefix}-")

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def cleanup(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None


def model_source(model: ModelLike) -> Tuple[Optional[bytes], Optional[str]]:
    """``(bytes, None)`` for in-memory models, ``(None, path)`` for files. A missing file raises
    ``ModelNotFoundError``; anything else raises ``InputError``."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        if not data:
            raise InputError("model is empty (0 bytes)")
        return data, None
    if isinstance(model, (str, os.PathLike)):
        from ..._errors import ModelNotFoundError

        path = os.fspath(model)
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"model file not found: {path}")
        return None, path
    raise InputError(f"model must be bytes or a path to an ONNX file, got {type(model).__name__}")


def model_path(model: ModelLike, work: Workdir, name: str = "model.onnx") -> str:
    """A path to the model on disk, writing in-memory bytes into ``work``."""
    data, path = model_source(model)
    if path is not None:
        return path
    path = work.file(name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def model_bytes(model: ModelLike) -> bytes:
    data, path = model_source(model)
    if data is None:
        with open(path, "rb") as f:
            data = f.read()
    return data


def load_onnx(model: ModelLike, runtime: str):
    """Parse an ONNX model with the ``onnx`` package (an optional dependency of every adapter
    that needs it)."""
    try:
        import onnx
    except ImportError as e:
        raise not_installed(runtime, "pip install onnx", e) from None
    data = model_bytes(model)  # a missing file is ModelNotFoundError, not an invalid model
    try:
        return onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError and onnx's own errors
        if not runtime_rejected(e, ("onnx", "google.protobuf")):
            raise
        raise ModelRejectedError(f"{runtime}: not a valid ONNX model: {e}") from None


def onnx_input(proto, runtime: str) -> Tuple[str, Tuple[int, ...]]:
    """The name and static shape of the single graph input (initializers excluded)."""
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelRejectedError(
            f"{runtime}: the model has {len(inputs)} inputs {[i.name for i in inputs]}; "
            "maple_edge_lite runs models with exactly one float32 input"
        )
    inp = inputs[0]
    tt = inp.type.tensor_type
    if tt.elem_type != 1:  # onnx.TensorProto.FLOAT
        raise ModelRejectedError(f"{runtime}: input {inp.name!r} is not float32 (ONNX type {tt.elem_type})")
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
    return inp.name, static_shape(f"{runtime}: input {inp.name!r}", dims)


def _flush_c_stdio() -> None:
    """Flush C stdio buffers: text a native library printf'd while fd 1 was redirected must land
    in the redirect, not on the restored stdout later."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:  # no libc to reach (not Linux): Python's own streams were flushed anyway
        pass


@contextlib.contextmanager
def captured_fds():
    """Send the process's stdout and stderr (file descriptors 1 and 2, where native libraries
    print) to a temporary file for the block; yields a callable returning what was written so
    far. Library code does not print: converters that chat on stdout are silenced this way and
    what they said goes into the error message if they fail."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    log = tempfile.TemporaryFile(mode="w+b")
    saved = [os.dup(1), os.dup(2)]

    def said() -> str:
        _flush_c_stdio()
        return os.pread(log.fileno(), 1 << 20, 0).decode("utf-8", "replace")

    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        yield said
    finally:
        _flush_c_stdio()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        log.close()


def tail(text: str, lines: int = 8) -> str:
    kept = [l for l in text.strip().splitlines() if l.strip()][-lines:]
    return " | ".join(kept)


class Session:
    """One loaded model, ready to run. Not thread-safe: one session per thread.

    ``input`` is the fixed input (float32, the model's input shape, seeded with ``INPUT_SEED``)
    that ``run`` feeds; ``input_shape`` is its shape."""

    runtime: str = "?"
    input_shape: Tuple[int, ...] = ()
    input: np.ndarray

    def __init__(self):
        self._closed = False

    def run(self) -> None:
        """One inference on ``input``, returning when the output is computed (no async or lazy
        result). The thing to time: it does no allocation a deployment would not do."""
        raise NotImplementedError

    def infer(self, x: Optional[np.ndarray] = None) -> np.ndarray:
        """The output for ``x`` (default ``input``) as a new float32 array. For checking results
        across runtimes, not for timing: it copies."""
        raise UnsupportedError(f"{self.runtime}: this session does not return outputs")

    def close(self) -> None:
        """Free the runtime's resources and temporary files; idempotent."""
        if not self._closed:
            self._closed = True
            # run() stays free of checks; a closed session gets one that raises.
            self.run = self._check_open
            self._close()

    def _close(self) -> None:
        pass

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"{self.runtime}: session is closed")

    def _as_input(self, x: Optional[np.ndarray]) -> np.ndarray:
        if x is None:
            return self.input
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != self.input_shape:
            raise InputError(f"{self.runtime}: input shape {x.shape} != model input shape {self.input_shape}")
        return x

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()


class Runtime:
    """One runtime at one thread count. ``load`` turns an ONNX model (bytes or a path) into a
    ``Session``; ``info`` describes the configuration for JSON sidecars."""

    name: str = "?"
    version: str = "?"
    threads: int = 1

    def load(self, model: ModelLike) -> Session:
        raise NotImplementedError

    def info(self) -> Dict[str, Any]:
        """JSON-serialisable: name, version, threads and the adapter's settings."""
        return {"name": self.name, "version": self.version, "threads": self.threads}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.version} threads={self.threads}>"


class _CallableSession(Session):
    def __init__(self, runtime: str, fn: Callable[[], Any], input_shape):
        super().__init__()
        self.runtime = runtime
        self._fn = fn
        if input_shape is not None:
            self.input_shape = tuple(input_shape)
            self.input = fixed_input(self.input_shape)

    def run(self) -> None:
        self._fn()

    def infer(self, x=None):
        infer = getattr(self._fn, "infer", None)
        if infer is None:
            return super().infer(x)
        self._check_open()
        return np.asarray(infer(self._as_input(x)), dtype=np.float32).copy()

    def _close(self) -> None:
        close = getattr(self._fn, "close", None)
        self._fn = None
        if close is not None:
            close()


class CallableRuntime(Runtime):
    """A runtime made of your own callables, e.g. TensorRT on a Jetson::

        rt = CallableRuntime("tensorrt", trt.__version__, load=build_engine, threads=1)

    ``load(model, threads)`` gets the model as passed to ``Runtime.load`` (bytes or a path) and
    returns a zero-argument callable that runs one inference and blocks until it is done. If that
    callable has a ``close()`` method it is called when the session closes; if it has an
    ``infer(x) -> array`` method, ``Session.infer`` uses it. ``details`` goes into ``info()``.
    ``input_shape`` (optional) sets the session's ``input``/``input_shape``."""

    def __init__(
        self,
        name: str,
        version: str,
        load: Callable[[ModelLike, int], Callable[[], Any]],
        threads: int = 1,
        details: Optional[Dict[str, Any]] = None,
        input_shape: Optional[Sequence[int]] = None,
    ):
        if not isinstance(name, str) or not name:
            raise InputError(f"runtime name must be a non-empty string, got {name!r}")
        if not callable(load):
            raise InputError(f"{name}: load must be callable, got {type(load).__name__}")
        self.name = name
        self.version = str(version)
        self.threads = check_threads(threads)
        self._load = load
        self._details = dict(details or {})
        self._input_shape = input_shape

    def load(self, model: ModelLike) -> Session:
        fn = self._load(model, self.threads)
        if not callable(fn):
            raise InputError(f"{self.name}: load() must return a callable that runs one inference, got {type(fn).__name__}")
        return _CallableSession(self.name, fn, self._input_shape)

    def info(self) -> Dict[str, Any]:
        return {**super().info(), **self._details}

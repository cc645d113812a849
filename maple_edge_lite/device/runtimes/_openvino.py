"""OpenVINO adapter: reads the ONNX model directly, compiles for CPU with a latency hint and
``threads`` inference threads, and reuses one synchronous infer request."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from ..._errors import InputError
from ._base import (
    ModelRejectedError,
    Runtime,
    Session,
    Workdir,
    check_threads,
    fixed_input,
    model_path,
    not_installed,
    runtime_rejected,
    static_shape,
)

INSTALL = "pip install 'maple-edge-lite[openvino]'"
_PRECISIONS = {"f32": "f32", "bf16": "bf16", "f16": "f16"}


def _import():
    try:
        import openvino
    except ImportError as e:
        raise not_installed("openvino", INSTALL, e) from None
    return openvino


class OpenVinoRuntime(Runtime):
    """``precision``: ``None`` keeps OpenVINO's default for the CPU (bf16 on x86 CPUs with
    AVX512-BF16 or AMX, f16 on ARM with fp16 arithmetic, else f32) because that is what a
    deployment gets; ``"f32"`` forces full precision. ``info()`` reports the precision the
    compiled model actually uses."""

    name = "openvino"

    def __init__(self, threads: int = 1, precision: Optional[str] = None):
        self.threads = check_threads(threads)
        if precision is not None and precision not in _PRECISIONS:
            raise InputError(f"openvino: precision must be None or one of {sorted(_PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self._ov = _import()
        self.version = self._ov.get_version()
        self._core = self._ov.Core()
        self._compiled_props: Dict[str, Any] = {}

    def config(self) -> Dict[str, Any]:
        cfg = {"INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if self.precision is not None:
            cfg["INFERENCE_PRECISION_HINT"] = _PRECISIONS[self.precision]
        return cfg

    def load(self, model) -> "OpenVinoSession":
        return OpenVinoSession(self, model)

    def info(self) -> Dict[str, Any]:
        return {
            **super().info(),
            "device": "CPU",
            "performance_hint": "LATENCY",
            "num_streams": 1,
            "precision": self.precision or "default",
            # What the last compiled model reported: the effective precision and pinning.
            **self._compiled_props,
        }


class OpenVinoSession(Session):
    runtime = "openvino"

    def __init__(self, rt: OpenVinoRuntime, model):
        super().__init__()
        ov = rt._ov
        self._work = Workdir("openvino")
        try:
            # read_model takes a path: bytes go through the session's temporary folder.
            path = model_path(model, self._work)
            try:
                m = rt._core.read_model(path)
                if len(m.inputs) != 1:
                    raise ModelRejectedError(f"openvino: the model has {len(m.inputs)} inputs; exactly one is supported")
                pshape = m.inputs[0].get_partial_shape()
                dims = [d.get_length() if d.is_static else None for d in pshape]
                self.input_shape = static_shape("openvino: model input", dims)
                if not pshape.is_static:
                    m.reshape({0: ov.PartialShape(list(self.input_shape))})
                self.compiled = rt._core.compile_model(m, "CPU", rt.config())
            except ModelRejectedError:
                raise
            except Exception as e:  # OpenVINO raises RuntimeError/GeneralFailure with its log
                if not runtime_rejected(e, ("openvino",), (RuntimeError,)):
                    raise
                raise ModelRejectedError(f"openvino rejected the model: {e}") from None
            rt._compiled_props = _props(self.compiled)
            self.input = fixed_input(self.input_shape)
            self.request = self.compiled.create_infer_request()
            # The tensor wraps self.input (no copy); infer() with no arguments then skips the
            # per-call conversion of a numpy feed (~20 us, docs/runtimes.md).
            self.request.set_input_tensor(ov.Tensor(self.input, shared_memory=True))
            self.request.infer()
        except BaseException:
            self._work.cleanup()
            raise

    def run(self) -> None:
        self.request.infer()

    def infer(self, x=None) -> np.ndarray:
        self._check_open()
        res = self.compiled.create_infer_request().infer({0: self._as_input(x)})
        return np.array(res[self.compiled.outputs[0]], dtype=np.float32)

    def _close(self) -> None:
        self.request = None
        self.compiled = None
        self._work.cleanup()


def _props(compiled) -> Dict[str, Any]:
    out = {}
    for key, name in (
        ("INFERENCE_PRECISION_HINT", "effective_precision"),
        ("INFERENCE_NUM_THREADS", "effective_threads"),
        ("NUM_STREAMS", "effective_streams"),
        ("ENABLE_CPU_PINNING", "cpu_pinning"),
    ):
        try:
            v = compiled.get_property(key)
        except Exception:  # a property this OpenVINO version does not have
            continue
        name_attr = getattr(v, "get_type_name", None)
        out[name] = name_attr() if name_attr else (v if isinstance(v, (bool, int)) else str(v))
    return out

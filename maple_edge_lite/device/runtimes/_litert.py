"""LiteRT (formerly TensorFlow Lite) adapter: runs ``.tflite`` models with the classic
``Interpreter`` (XNNPACK CPU delegate applied by default) at ``num_threads=threads``.

There is no ONNX -> TFLite converter without TensorFlow (``onnx2tf`` and ``litert-torch`` both
pull it in), so ``load`` takes ``.tflite`` models (a path or the bytes) and refuses ONNX with
``UnsupportedError``: convert on the host, copy the ``.tflite`` to the board."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..._errors import UnsupportedError
from ._base import (
    ModelRejectedError,
    Runtime,
    Session,
    captured_fds,
    check_threads,
    fixed_input,
    model_source,
    not_installed,
    runtime_rejected,
    static_shape,
    tail,
)

INSTALL = "pip install ai-edge-litert"


def _import():
    try:
        from ai_edge_litert import interpreter
        import ai_edge_litert
    except ImportError as e:
        raise not_installed("litert", INSTALL, e) from None
    return ai_edge_litert, interpreter


def is_tflite(data: bytes) -> bool:
    """A TFLite flatbuffer carries the file identifier ``TFL3`` at bytes 4..8."""
    return len(data) >= 8 and data[4:8] == b"TFL3"


class LiteRtRuntime(Runtime):
    name = "litert"

    def __init__(self, threads: int = 1):
        self.threads = check_threads(threads)
        self._pkg, self._interp = _import()
        self.version = self._pkg.__version__

    def load(self, model) -> "LiteRtSession":
        return LiteRtSession(self, model)

    def info(self) -> Dict[str, Any]:
        return {**super().info(), "api": "Interpreter", "delegate": "XNNPACK (default CPU)", "precision": "as in the .tflite model"}


class LiteRtSession(Session):
    runtime = "litert"

    def __init__(self, rt: LiteRtRuntime, model):
        super().__init__()
        data, path = model_source(model)
        if data is None:
            with open(path, "rb") as f:
                head = f.read(8)
        else:
            head = data[:8]
        if not is_tflite(head):
            raise UnsupportedError(
                "litert needs a .tflite model (load() accepts .tflite files or bytes); this is not one "
                "(ONNX -> TFLite conversion needs TensorFlow, e.g. onnx2tf: convert on the host)"
            )
        with captured_fds() as said:  # LiteRT logs "INFO: Created ... XNNPACK delegate" to stderr
            try:
                self.interpreter = rt._interp.Interpreter(model_path=path, model_content=data, num_threads=rt.threads)
                self.interpreter.allocate_tensors()
            except Exception as e:  # the interpreter raises ValueError / RuntimeError with its log
                if not runtime_rejected(e, ("ai_edge_litert", "tflite_runtime", "tensorflow"), (ValueError, RuntimeError)):
                    raise
                raise ModelRejectedError(f"litert rejected the model: {e} {tail(said())}".rstrip()) from None
        ins, outs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(ins) != 1 or ins[0]["dtype"] != np.float32:
            raise ModelRejectedError(f"litert: the model needs exactly one float32 input, it has {[(i['name'], i['dtype'].__name__) for i in ins]}")
        self._in, self._out = ins[0]["index"], outs[0]["index"]
        self.input_shape = static_shape("litert: input", list(ins[0]["shape"]))
        self.input = fixed_input(self.input_shape)
        self.interpreter.set_tensor(self._in, self.input)
        self.interpreter.invoke()

    def run(self) -> None:
        # The input tensor was set once at load and persists across invokes.
        self.interpreter.invoke()

    def infer(self, x=None) -> np.ndarray:
        self._check_open()
        self.interpreter.set_tensor(self._in, self._as_input(x))
        try:
            self.interpreter.invoke()
            return np.array(self.interpreter.get_tensor(self._out), dtype=np.float32)
        finally:
            self.interpreter.set_tensor(self._in, self.input)

    def _close(self) -> None:
        self.interpreter = None

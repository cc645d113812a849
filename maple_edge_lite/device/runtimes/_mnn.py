"""MNN adapter: converts the ONNX model to ``.mnn`` with the converter compiled into the ``mnn``
wheel, then runs it with the Interpreter/Session API on the CPU backend.

The converter is called as ``_tools.mnnconvert(argv)`` (the extension behind the ``mnnconvert``
console script), never through ``MNN.tools.mnnconvert``: that Python wrapper imports
``MNN.tools.utils.log``, which runs ``pip install aliyun-log-python-sdk`` when it is missing and
uploads usage logs to a remote service."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..._errors import InputError
from ._base import (
    ModelRejectedError,
    Runtime,
    Session,
    Workdir,
    captured_fds,
    check_threads,
    fixed_input,
    load_onnx,
    model_path,
    not_installed,
    onnx_input,
    runtime_rejected,
    tail,
)

INSTALL = "pip install 'maple-edge-lite[mnn]'"
_PRECISIONS = ("normal", "high", "low")


def _import():
    try:
        with captured_fds():  # both extensions print the CPU's features to stdout on import
            import _tools
            import MNN
    except ImportError as e:
        raise not_installed("mnn", INSTALL, e) from None
    return MNN, _tools


class MnnRuntime(Runtime):
    """``precision``: MNN's ``normal`` (its default: fp32 on x86; on ARMv8.2 CPUs MNN may use
    fp16 for some kernels), ``high`` (always fp32) or ``low`` (fp16/bf16 where the CPU has it)."""

    name = "mnn"

    def __init__(self, threads: int = 1, precision: str = "normal"):
        self.threads = check_threads(threads)
        if precision not in _PRECISIONS:
            raise InputError(f"mnn: precision must be one of {list(_PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self._mnn, self._tools = _import()
        self.version = str(self._mnn.version())

    def load(self, model) -> "MnnSession":
        return MnnSession(self, model)

    def info(self) -> Dict[str, Any]:
        return {**super().info(), "backend": "CPU", "api": "Interpreter/Session", "precision": self.precision}


def convert(tools, onnx_path: str, mnn_path: str) -> None:
    """ONNX -> MNN with the wheel's converter; its chatter goes into the error if it fails."""
    with captured_fds() as said:
        ok = tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path, "--MNNModel", mnn_path, "--bizCode", "maple_edge_lite"])
        log = said()
    import os

    # mnnconvert returns True even when it fails: the output file is the only honest signal.
    if not ok or not os.path.isfile(mnn_path) or os.path.getsize(mnn_path) == 0:
        raise ModelRejectedError(f"mnn: the converter rejected the model: {tail(log) or 'no output'}")


class MnnSession(Session):
    runtime = "mnn"

    def __init__(self, rt: MnnRuntime, model):
        super().__init__()
        MNN = rt._mnn
        self._work = Workdir("mnn")
        try:
            _, self.input_shape = onnx_input(load_onnx(model, "mnn"), "mnn")
            path = self._work.file("model.mnn")
            convert(rt._tools, model_path(model, self._work), path)
            with captured_fds() as said:  # MNN prints its precision choice on session creation
                try:
                    self.interpreter = MNN.Interpreter(path)
                    self.session = self.interpreter.createSession(
                        {"backend": "CPU", "numThread": rt.threads, "precision": rt.precision}
                    )
                    self._in = self.interpreter.getSessionInput(self.session)
                    if tuple(self._in.getShape()) != self.input_shape:
                        self.interpreter.resizeTensor(self._in, self.input_shape)
                        self.interpreter.resizeSession(self.session)
                except Exception as e:  # MNN's bindings raise RuntimeError / ValueError
                    if not runtime_rejected(e, ("MNN", "_mnncengine", "_tools"), (RuntimeError, ValueError)):
                        raise
                    raise ModelRejectedError(f"mnn rejected the model: {e} {tail(said())}") from None
            self.input = fixed_input(self.input_shape)
            self._set(self.input)
            self.interpreter.runSession(self.session)
        except BaseException:
            self._work.cleanup()
            raise

    def _set(self, x: np.ndarray) -> None:
        MNN = self._mnn_mod()
        host = MNN.Tensor(self.input_shape, MNN.Halide_Type_Float, x, MNN.Tensor_DimensionType_Caffe)
        self._in.copyFrom(host)

    @staticmethod
    def _mnn_mod():
        import MNN

        return MNN

    def run(self) -> None:
        # The Session API: 0.6 us per call on the tiny model against 1.4 us for the Module
        # API's forward() (docs/runtimes.md). runSession is synchronous on the CPU backend.
        self.interpreter.runSession(self.session)

    def infer(self, x=None) -> np.ndarray:
        self._check_open()
        MNN = self._mnn_mod()
        self._set(self._as_input(x))
        try:
            self.interpreter.runSession(self.session)
            out = self.interpreter.getSessionOutput(self.session)
            shape = tuple(out.getShape())
            host = MNN.Tensor(shape, MNN.Halide_Type_Float, np.zeros(shape, np.float32), MNN.Tensor_DimensionType_Caffe)
            out.copyToHostTensor(host)
            return np.array(host.getNumpyData(), dtype=np.float32).reshape(shape)
        finally:
            self._set(self.input)

    def _close(self) -> None:
        # MNN's Python Interpreter frees its sessions when it is garbage collected.
        self.interpreter = self.session = self._in = None
        self._work.cleanup()

"""ONNX Runtime adapter: CPUExecutionProvider, sequential, all graph optimisations, IO binding."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ._base import (ModelRejectedError, Runtime, Session, check_threads, fixed_input, model_source, not_installed,
                    runtime_rejected, static_shape)

INSTALL = "pip install 'maple-edge-lite[onnxruntime]'"


def _import():
    try:
        import onnxruntime
    except ImportError as e:
        raise not_installed("onnxruntime", INSTALL, e) from None
    return onnxruntime


class OnnxRuntime(Runtime):
    """``spinning``: let the intra-op worker threads busy-wait between ops (ORT's own default).
    Off by default here: with ``threads > 1`` spinning workers burn a core each (doubling CPU
    time per call in docs/runtimes.md) and that busy-waiting lands in inherited performance
    counters. It changes nothing at ``threads=1`` (no worker threads)."""

    name = "onnxruntime"

    def __init__(self, threads: int = 1, spinning: bool = False, optimization: str = "all"):
        self.threads = check_threads(threads)
        self._ort = _import()
        self.version = self._ort.__version__
        self.spinning = bool(spinning)
        levels = {
            "all": self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": self._ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": self._ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "none": self._ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }
        if optimization not in levels:
            from ..._errors import InputError

            raise InputError(f"onnxruntime: optimization must be one of {sorted(levels)}, got {optimization!r}")
        self.optimization = optimization
        self._level = levels[optimization]

    def session_options(self):
        ort = self._ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = self._level
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        so.log_severity_level = 3  # errors only: library code does not print warnings
        return so

    def load(self, model) -> "OrtSession":
        return OrtSession(self, model)

    def info(self) -> Dict[str, Any]:
        return {
            **super().info(),
            "provider": "CPUExecutionProvider",
            "execution_mode": "sequential",
            "inter_op_threads": 1,
            "graph_optimization": self.optimization,
            "allow_spinning": self.spinning,
            "precision": "fp32",
            "binding": "io_binding",
        }


class OrtSession(Session):
    runtime = "onnxruntime"

    def __init__(self, rt: OnnxRuntime, model):
        super().__init__()
        ort = rt._ort
        data, path = model_source(model)
        try:
            self.session = ort.InferenceSession(
                data if data is not None else path, rt.session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # ORT raises its own Fail/InvalidGraph/NotImplemented types
            if not runtime_rejected(e, ("onnxruntime",)):
                raise  # a bug in this adapter (TypeError, AttributeError, ...): not the model's fault
            raise ModelRejectedError(f"onnxruntime rejected the model: {e}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelRejectedError(f"onnxruntime: the model has {len(inputs)} inputs; exactly one is supported")
        if inputs[0].type != "tensor(float)":
            raise ModelRejectedError(f"onnxruntime: input {inputs[0].name!r} is {inputs[0].type}, not float32")
        self.input_name = inputs[0].name
        self.output_names = [o.name for o in outputs]
        self.input_shape = static_shape(f"onnxruntime: input {self.input_name!r}", inputs[0].shape)
        self.input = fixed_input(self.input_shape)
        # IO binding with the input bound once and outputs bound to ORT-allocated buffers:
        # ~3 us less per call than run(None, feeds), which converts the feed dict and
        # allocates fresh numpy outputs every call (docs/runtimes.md).
        self._binding = self.session.io_binding()
        self._binding.bind_cpu_input(self.input_name, self.input)
        for name in self.output_names:
            self._binding.bind_output(name)
        self.session.run_with_iobinding(self._binding)  # allocates outputs once; fails early

    def run(self) -> None:
        self.session.run_with_iobinding(self._binding)

    def infer(self, x=None) -> np.ndarray:
        self._check_open()
        out = self.session.run([self.output_names[0]], {self.input_name: self._as_input(x)})[0]
        return np.array(out, dtype=np.float32)

    def _close(self) -> None:
        self._binding = None
        self.session = None

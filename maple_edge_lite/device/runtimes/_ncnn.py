"""ncnn adapter: converts the ONNX model with pnnx (the standalone ``pnnx`` executable shipped in
the ``pnnx`` wheel: no PyTorch is imported or needed to run it) and runs the ``.param``/``.bin``
pair with ncnn's Python binding on the CPU (Vulkan off).

``pip install pnnx`` declares PyTorch as a dependency for its Python export helpers, which this
adapter does not use: ``pip install --no-deps pnnx`` is enough here."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from typing import Any, Dict, List, Tuple

import numpy as np

from ._base import (
    ModelRejectedError,
    Runtime,
    Session,
    Workdir,
    check_threads,
    fixed_input,
    load_onnx,
    model_path,
    not_installed,
    onnx_input,
    tail,
)

INSTALL = "pip install ncnn && pip install --no-deps pnnx"
#: Seconds pnnx may take to convert one model (it takes ~1-2 s for a small net).
CONVERT_TIMEOUT = 300


def _import():
    try:
        import ncnn
    except ImportError as e:
        raise not_installed("ncnn", INSTALL, e) from None
    return ncnn


def pnnx_executable() -> str:
    """The pnnx binary inside the installed ``pnnx`` package, found without importing it
    (its ``__init__`` imports torch)."""
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        raise not_installed("ncnn", INSTALL + " (pnnx converts ONNX to ncnn)")
    for folder in spec.submodule_search_locations:
        exe = os.path.join(folder, "pnnx.exe" if os.name == "nt" else "pnnx")
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    raise not_installed("ncnn", INSTALL + " (the pnnx package has no pnnx executable)")


class NcnnRuntime(Runtime):
    """``spinning``: sets ncnn's ``openmp_blocktime`` (20 ms, ncnn's default, when on; 0 when
    off, the default here, like the onnxruntime adapter). It acts on ncnn builds with LLVM
    OpenMP (Android NDK builds, the usual deployment); the PyPI Linux wheel bundles GNU libgomp,
    which ignores it and spins by its own rule (``OMP_WAIT_POLICY``/``GOMP_SPINCOUNT``, read when
    the library loads). Irrelevant at ``threads=1``. ``fp16``: ncnn's default on CPUs with fp16
    arithmetic is fp16 storage and arithmetic (and fp16 storage on x86 CPUs with F16C);
    ``fp16=False`` forces fp32. Weights are
    converted as fp32 either way."""

    name = "ncnn"

    def __init__(self, threads: int = 1, spinning: bool = False, fp16: bool = True):
        self.threads = check_threads(threads)
        self.spinning = bool(spinning)
        self.fp16 = bool(fp16)
        self._ncnn = _import()
        self._pnnx = pnnx_executable()
        self.version = self._ncnn.__version__

    def options(self, net) -> None:
        opt = net.opt
        opt.num_threads = self.threads
        opt.use_vulkan_compute = False
        opt.openmp_blocktime = 20 if self.spinning else 0
        if not self.fp16:
            opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
            opt.use_bf16_storage = False

    def load(self, model) -> "NcnnSession":
        return NcnnSession(self, model)

    def info(self) -> Dict[str, Any]:
        return {
            **super().info(),
            "device": "cpu",
            "converter": "pnnx",
            "openmp_blocktime_ms": 20 if self.spinning else 0,
            "fp16_allowed": self.fp16,
            # ncnn picks per layer and CPU: fp16 storage on x86 with F16C, fp16 arithmetic on
            # ARMv8.2; results then differ from fp32 by ~1e-3 relative.
            "precision": "ncnn default (fp16 where the CPU has it)" if self.fp16 else "fp32",
        }


def parse_param(path: str) -> Tuple[List[str], List[str]]:
    """Input blob names (tops of Input layers) and output blob names (never consumed)."""
    with open(path) as f:
        lines = f.read().split("\n")
    produced, consumed, inputs = [], set(), []
    for line in lines[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        kind, n_in, n_out = parts[0], int(parts[2]), int(parts[3])
        bottoms = parts[4 : 4 + n_in]
        tops = parts[4 + n_in : 4 + n_in + n_out]
        consumed.update(bottoms)
        produced.extend(tops)
        if kind == "Input":
            inputs.extend(tops)
    return inputs, [b for b in produced if b not in consumed]


class NcnnSession(Session):
    runtime = "ncnn"

    def __init__(self, rt: NcnnRuntime, model):
        super().__init__()
        ncnn = rt._ncnn
        self._work = Workdir("ncnn")
        try:
            proto = load_onnx(model, "ncnn")
            _, self.input_shape = onnx_input(proto, "ncnn")
            dims = proto.graph.output[0].type.tensor_type.shape.dim
            self._out_shape = tuple(d.dim_value for d in dims) if all(d.HasField("dim_value") for d in dims) else None
            src = os.path.abspath(model_path(model, self._work))  # pnnx runs in the work dir
            param, binf = self._convert(rt._pnnx, src)
            self.net = ncnn.Net()
            rt.options(self.net)
            if self.net.load_param(param) != 0 or self.net.load_model(binf) != 0:
                raise ModelRejectedError("ncnn could not load the converted model (pnnx output)")
            ins, outs = parse_param(param)
            if len(ins) != 1 or not outs:
                raise ModelRejectedError(f"ncnn: the converted model has inputs {ins} and outputs {outs}")
            self._in_name, self._out_name = ins[0], outs[0]
            self.input = fixed_input(self.input_shape)
            self._mat = self._to_mat(self.input)
            self.infer()
        except BaseException:
            self._work.cleanup()
            raise

    def _convert(self, exe: str, src: str) -> Tuple[str, str]:
        w = self._work
        shape = ",".join(str(d) for d in self.input_shape)
        args = [exe, src, f"inputshape=[{shape}]", "fp16=0", "device=cpu"]
        outs = {
            "pnnxparam": "m.pnnx.param", "pnnxbin": "m.pnnx.bin", "pnnxpy": "m_pnnx.py", "pnnxonnx": "m.pnnx.onnx",
            "ncnnparam": "m.ncnn.param", "ncnnbin": "m.ncnn.bin", "ncnnpy": "m_ncnn.py",
        }  # fmt: skip
        args += [f"{k}={w.file(v)}" for k, v in outs.items()]
        try:
            p = subprocess.run(args, cwd=w.path, capture_output=True, text=True, timeout=CONVERT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ModelRejectedError(f"ncnn: pnnx did not finish converting the model in {CONVERT_TIMEOUT} s") from None
        param, binf = w.file(outs["ncnnparam"]), w.file(outs["ncnnbin"])
        if p.returncode != 0 or not os.path.isfile(param):
            said = tail(p.stderr + "\n" + p.stdout, 4)
            how = f"crashed (signal {-p.returncode})" if p.returncode < 0 else f"failed (exit {p.returncode})"
            raise ModelRejectedError(f"ncnn: pnnx {how} converting the model: {said}")
        return param, binf

    def _to_mat(self, x: np.ndarray):
        import ncnn

        if x.shape[0] != 1:
            raise ModelRejectedError(f"ncnn runs batch 1 only; the input shape is {x.shape}")
        # ncnn.Mat(array) wraps the numpy memory without a reference count, and a layer that
        # works in place on the input blob then crashes (seen: a chain of Mul by 0). clone()
        # gives ncnn a counted copy it duplicates before writing. ncnn has no batch axis.
        return ncnn.Mat(np.ascontiguousarray(x[0])).clone()

    def run(self) -> None:
        # An extractor caches the blobs it computed: a fresh one per call is ncnn's own idiom
        # and the only way to recompute. extract() is synchronous.
        ex = self.net.create_extractor()
        ex.input(self._in_name, self._mat)
        ex.extract(self._out_name)

    def infer(self, x=None) -> np.ndarray:
        self._check_open()
        mat = self._mat if x is None else self._to_mat(self._as_input(x))
        ex = self.net.create_extractor()
        ex.input(self._in_name, mat)
        ret, out = ex.extract(self._out_name)
        if ret != 0:
            raise ModelRejectedError(f"ncnn: extract({self._out_name!r}) failed with {ret}")
        y = np.array(out, dtype=np.float32)
        if self._out_shape is not None and y.size == int(np.prod(self._out_shape)):
            y = y.reshape(self._out_shape)
        return y

    def _close(self) -> None:
        net = getattr(self, "net", None)
        if net is not None:
            net.clear()
        self.net = self._mat = None
        self._work.cleanup()

"""PyTorch adapter. PyTorch has no ONNX importer, so this module carries a small one: a
table-driven interpreter that turns the ONNX graph into an ``nn.Module`` (Conv2d, BatchNorm2d
and Linear modules for the layers with weights, tensor functions for the rest), run under
``torch.inference_mode()`` at ``torch.set_num_threads(threads)``.

An op the table lacks raises ``UnsupportedError`` naming the op; ``OPS`` lists the ones it has."""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ..._errors import InputError, UnsupportedError
from ._base import (
    ModelRejectedError,
    Runtime,
    Session,
    check_threads,
    fixed_input,
    load_onnx,
    not_installed,
    onnx_input,
    runtime_rejected,
)

INSTALL = "pip install 'maple-edge-lite[torch]'"
_MODES = ("eager", "jit")


def _import():
    try:
        import torch
    except ImportError as e:
        raise not_installed("torch", INSTALL, e) from None
    return torch


class TorchRuntime(Runtime):
    """``mode``: ``"eager"`` (default) runs the interpreted module; ``"jit"`` traces and freezes
    it with ``torch.jit`` (folds BatchNorm into convolutions). ``torch.jit`` is deprecated since
    PyTorch 2.9, so it is opt-in although it was faster on the conv net (docs/runtimes.md).
    ``channels_last``: run in NHWC memory format (module and input), which PyTorch's CPU
    convolutions and pools prefer; off by default because a plain PyTorch deployment runs NCHW.

    ``torch.set_num_threads`` is process-wide: ``run`` re-applies this runtime's count when
    another session changed it."""

    name = "torch"

    def __init__(self, threads: int = 1, mode: str = "eager", channels_last: bool = False):
        self.threads = check_threads(threads)
        self.channels_last = bool(channels_last)
        if mode not in _MODES:
            raise InputError(f"torch: mode must be one of {list(_MODES)}, got {mode!r}")
        self.mode = mode
        self._torch = _import()
        self.version = self._torch.__version__

    def load(self, model) -> "TorchSession":
        return TorchSession(self, model)

    def info(self) -> Dict[str, Any]:
        torch = self._torch
        return {
            **super().info(),
            "device": "cpu",
            "mode": self.mode,
            "memory_format": "channels_last" if self.channels_last else "contiguous (NCHW)",
            "inference_mode": True,
            "precision": "fp32",
            "interop_threads": torch.get_num_interop_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
        }


class TorchSession(Session):
    runtime = "torch"

    def __init__(self, rt: TorchRuntime, model):
        super().__init__()
        torch = rt._torch
        proto = load_onnx(model, "torch")
        self.input_name, self.input_shape = onnx_input(proto, "torch")
        self._torch = torch
        self.threads = rt.threads
        self._fmt = torch.channels_last if rt.channels_last and len(self.input_shape) == 4 else None
        torch.set_num_threads(rt.threads)
        self.module = build_module(proto, torch).eval()
        self.input = fixed_input(self.input_shape)
        # from_numpy shares memory: editing session.input changes what run() feeds (except in
        # channels_last, where the input is a reordered copy).
        self._x = self._tensor(self.input)
        if self._fmt is not None:
            self.module = self.module.to(memory_format=self._fmt)
        try:
            with torch.inference_mode():
                if rt.mode == "jit":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit, on purpose
                        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes are static
                        traced = torch.jit.trace(self.module, (self._x,), check_trace=False)
                        self.module = torch.jit.freeze(traced.eval())
                self.module(self._x)
        except UnsupportedError:
            raise
        except Exception as e:  # torch's op errors are RuntimeError (or torch's own types)
            if not runtime_rejected(e, ("torch",), (RuntimeError,)):
                raise
            raise ModelRejectedError(f"torch could not run the model: {type(e).__name__}: {e}") from None

    def run(self) -> None:
        torch = self._torch
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            # Eager CPU ops return computed tensors: nothing is deferred past this call.
            self.module(self._x)

    def infer(self, x=None) -> np.ndarray:
        self._check_open()
        torch = self._torch
        with torch.inference_mode():
            y = self.module(self._tensor(self._as_input(x)))
        return y.numpy().astype(np.float32, copy=True)

    def _tensor(self, x: np.ndarray):
        t = self._torch.from_numpy(x)
        return t if self._fmt is None else t.contiguous(memory_format=self._fmt)

    def _close(self) -> None:
        self.module = None
        self._x = None


# ---------------------------------------------------------------------------------------------
# The ONNX -> torch interpreter


class _Ctx:
    """What an op builder sees: the node's attributes and constant inputs."""

    def __init__(self, node, consts: Dict[str, np.ndarray], torch):
        from onnx import helper

        self.node = node
        self.op = node.op_type
        self.attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        self.consts = consts
        self.torch = torch

    def attr(self, name, default=None):
        v = self.attrs.get(name, default)
        if isinstance(v, bytes):
            v = v.decode()
        return v

    def const(self, i: int, what: str, required: bool = True) -> Optional[np.ndarray]:
        ins = self.node.input
        if i >= len(ins) or not ins[i]:
            if required:
                raise ModelRejectedError(f"torch: {self.op} node {self.node.name!r} lacks its {what} input")
            return None
        if ins[i] not in self.consts:
            raise UnsupportedError(
                f"torch: {self.op} node {self.node.name!r}: its {what} ({ins[i]!r}) is computed at run time; "
                "the interpreter needs it constant (an initializer or a Constant node)"
            )
        return self.consts[ins[i]]

    def fail(self, why: str):
        raise UnsupportedError(f"torch: ONNX op {self.op} (node {self.node.name!r}) {why}")


def _pads_2d(ctx: _Ctx, kernel, strides, dilations, in_hw=None):
    """(top, left, bottom, right) from ``pads`` or ``auto_pad``."""
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", "VALID"):
        p = list(ctx.attr("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
        if len(p) != 4:
            ctx.fail(f"with {len(p)} pads is not 2-D")
        return p[0], p[1], p[2], p[3]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if in_hw is None:
            ctx.fail("with auto_pad SAME needs a known input size")
        out = []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return out[0][0], out[1][0], out[0][1], out[1][1]
    ctx.fail(f"with auto_pad={auto!r} is not supported")


def _conv(ctx: _Ctx):
    torch = ctx.torch
    w = ctx.const(1, "weight")
    if w.ndim != 4:
        ctx.fail(f"is {w.ndim - 2}-D; only 2-D convolutions are supported")
    b = ctx.const(2, "bias", required=False)
    group = int(ctx.attr("group", 1))
    k = list(ctx.attr("kernel_shape", w.shape[2:]))
    s = list(ctx.attr("strides", [1, 1]))
    d = list(ctx.attr("dilations", [1, 1]))
    t, l, bo, r = _pads_2d(ctx, k, s, d, ctx.in_hw)
    conv = torch.nn.Conv2d(
        w.shape[1] * group, w.shape[0], tuple(k), stride=tuple(s), dilation=tuple(d), groups=group, bias=b is not None,
        padding=(t, l) if (t, l) == (bo, r) else 0,
    )
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.array(w, np.float32)))
        if b is not None:
            conv.bias.copy_(torch.from_numpy(np.array(b, np.float32)))
    if (t, l) == (bo, r):
        return conv, [0]
    return torch.nn.Sequential(_Pad((l, r, t, bo), 0.0), conv), [0]


def _Pad(pads, value, mode="constant"):
    """A padding module: ``pads`` in F.pad order (left, right, top, bottom)."""
    return _module_types()["Pad"](pads, value, mode)


_TYPES: Dict[str, Any] = {}


def _module_types():
    if _TYPES:
        return _TYPES
    import torch
    import torch.nn.functional as F

    class Pad(torch.nn.Module):
        def __init__(self, pads, value, mode="constant"):
            super().__init__()
            self.pads, self.value, self.mode = tuple(int(p) for p in pads), float(value), mode

        def forward(self, x):
            if self.mode == "constant":
                return F.pad(x, self.pads, value=self.value)
            return F.pad(x, self.pads, mode=self.mode)

    class Fn(torch.nn.Module):
        """A tensor function with fixed keyword arguments (kept out of the graph's inputs)."""

        def __init__(self, fn, name, **kw):
            super().__init__()
            self.fn, self.name, self.kw = fn, name, kw

        def forward(self, *xs):
            return self.fn(*xs, **self.kw)

        def extra_repr(self):
            return f"{self.name} {self.kw}" if self.kw else self.name

    class Graph(torch.nn.Module):
        def __init__(self, input_name, output_name, consts, steps):
            super().__init__()
            self.input_name, self.output_name = input_name, output_name
            self.layers = torch.nn.ModuleList([m for m, _, _ in steps])
            self.wiring = [(ins, out) for _, ins, out in steps]
            self.const_names = {}
            for i, (name, value) in enumerate(consts.items()):
                self.register_buffer(f"c{i}", value)
                self.const_names[name] = f"c{i}"

        def forward(self, x):
            env = {self.input_name: x}
            for name, buf in self.const_names.items():
                env[name] = getattr(self, buf)
            for layer, (ins, out) in zip(self.layers, self.wiring):
                env[out] = layer(*[env[i] for i in ins])
            return env[self.output_name]

    _TYPES.update(Pad=Pad, Fn=Fn, Graph=Graph)
    return _TYPES


def _fn(fn, name, **kw):
    return _module_types()["Fn"](fn, name, **kw)


def _bn(ctx: _Ctx):
    torch = ctx.torch
    scale, bias, mean, var = (ctx.const(i, n) for i, n in enumerate(("scale", "bias", "mean", "var"), 1))
    if ctx.attr("training_mode", 0):
        ctx.fail("with training_mode=1 is not an inference graph")
    c = scale.shape[0]
    bn = torch.nn.BatchNorm2d(c, eps=float(ctx.attr("epsilon", 1e-5)))
    with torch.no_grad():
        for p, v in ((bn.weight, scale), (bn.bias, bias), (bn.running_mean, mean), (bn.running_var, var)):
            p.copy_(torch.from_numpy(np.array(v, np.float32)))
    return bn.eval(), [0]


def _pool(ctx: _Ctx, kind: str):
    import torch.nn.functional as F

    k = list(ctx.attr("kernel_shape"))
    if len(k) != 2:
        ctx.fail(f"is {len(k)}-D; only 2-D pooling is supported")
    s = list(ctx.attr("strides", [1, 1]))
    d = list(ctx.attr("dilations", [1, 1]))
    t, l, b, r = _pads_2d(ctx, k, s, d, ctx.in_hw)
    ceil = bool(ctx.attr("ceil_mode", 0))
    sym = (t, l) == (b, r) and t <= k[0] // 2 and l <= k[1] // 2
    if kind == "avg":
        if d != [1, 1]:
            ctx.fail("with dilations is not supported")
        include = bool(ctx.attr("count_include_pad", 0))
        if sym:
            return _fn(F.avg_pool2d, "AveragePool", kernel_size=k, stride=s, padding=(t, l), ceil_mode=ceil, count_include_pad=include), [0]
        if not include:
            ctx.fail("with asymmetric pads and count_include_pad=0 is not supported")
        pool = _fn(F.avg_pool2d, "AveragePool", kernel_size=k, stride=s, ceil_mode=ceil)
        return ctx.torch.nn.Sequential(_Pad((l, r, t, b), 0.0), pool), [0]
    if sym:
        return _fn(F.max_pool2d, "MaxPool", kernel_size=k, stride=s, padding=(t, l), dilation=d, ceil_mode=ceil), [0]
    pool = _fn(F.max_pool2d, "MaxPool", kernel_size=k, stride=s, dilation=d, ceil_mode=ceil)
    return ctx.torch.nn.Sequential(_Pad((l, r, t, b), float("-inf")), pool), [0]


def _gemm(ctx: _Ctx):
    torch = ctx.torch
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    ta, tb = int(ctx.attr("transA", 0)), int(ctx.attr("transB", 0))
    b = ctx.consts.get(ctx.node.input[1])
    c = ctx.const(2, "C", required=False)
    if b is not None and not ta and (c is None or c.ndim <= 1):
        w = b if tb else b.T
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=c is not None)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.array(w * alpha, np.float32)))
            if c is not None:
                lin.bias.copy_(torch.from_numpy(np.array(np.broadcast_to(c * beta, (w.shape[0],)), np.float32)))
        return lin, [0]

    def gemm(a, bm, cm=None):
        a = a.t() if ta else a
        bm = bm.t() if tb else bm
        y = alpha * (a @ bm)
        return y if cm is None else y + beta * cm

    return _fn(gemm, "Gemm"), [i for i, n in enumerate(ctx.node.input) if n]


def _clip(ctx: _Ctx):
    torch = ctx.torch
    if ctx.node.input[1:] and any(ctx.node.input[1:]):
        lo, hi = ctx.const(1, "min", required=False), ctx.const(2, "max", required=False)
        lo = None if lo is None else float(lo)
        hi = None if hi is None else float(hi)
    else:  # opset < 11: attributes
        lo, hi = ctx.attr("min"), ctx.attr("max")
    if lo == 0.0 and hi == 6.0:
        return _fn(torch.nn.functional.relu6, "Clip"), [0]
    return _fn(torch.clamp, "Clip", min=lo, max=hi), [0]


def _reshape(ctx: _Ctx):
    shape = [int(v) for v in ctx.const(1, "shape")]

    def reshape(x):
        target = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return x.reshape(target)

    return _fn(reshape, "Reshape"), [0]


def _flatten(ctx: _Ctx):
    axis = int(ctx.attr("axis", 1))

    def flatten(x):
        a = axis if axis >= 0 else x.dim() + axis
        if a == 0:
            return x.reshape(1, -1)
        y = x.flatten(a) if a < x.dim() else x.unsqueeze(-1)
        return y.flatten(0, a - 1)

    return _fn(flatten, "Flatten"), [0]


def _axes(ctx: _Ctx, idx: int):
    axes = ctx.attr("axes")
    if axes is None and len(ctx.node.input) > idx and ctx.node.input[idx]:
        axes = ctx.const(idx, "axes")
    return None if axes is None else [int(a) for a in axes]


def _reduce(ctx: _Ctx, fn_name: str):
    torch = ctx.torch
    axes, keep = _axes(ctx, 1), bool(ctx.attr("keepdims", 1))
    if axes is None and ctx.attr("noop_with_empty_axes", 0):
        return _fn(lambda x: x, "Identity"), [0]
    if fn_name == "mean":
        return _fn(lambda x: torch.mean(x, dim=axes if axes is not None else list(range(x.dim())), keepdim=keep), "ReduceMean"), [0]
    return _fn(lambda x: torch.amax(x, dim=axes if axes is not None else list(range(x.dim())), keepdim=keep), "ReduceMax"), [0]


def _softmax(ctx: _Ctx):
    if ctx.opset < 13:
        ctx.fail("before opset 13 (flattening semantics) is not supported; export with opset >= 13")
    return _fn(ctx.torch.softmax, "Softmax", dim=int(ctx.attr("axis", -1))), [0]


def _pad(ctx: _Ctx):
    mode = ctx.attr("mode", "constant")
    pads = ctx.attr("pads")
    if pads is None:
        pads = ctx.const(1, "pads")
    value = ctx.attrs.get("value", 0.0)
    if len(ctx.node.input) > 2 and ctx.node.input[2]:
        value = float(ctx.const(2, "constant_value"))
    pads = [int(p) for p in pads]
    n = len(pads) // 2
    if n != 4 or any(pads[i] or pads[i + n] for i in range(2)):
        ctx.fail("is supported only on the two spatial axes of an NCHW tensor")
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(mode)
    if torch_mode is None:
        ctx.fail(f"with mode={mode!r} is not supported")
    return _Pad((pads[3], pads[7], pads[2], pads[6]), value, torch_mode), [0]


def _squeeze(ctx: _Ctx, un: bool):
    axes = _axes(ctx, 1)
    if un:
        def unsqueeze(x):
            for a in sorted(a if a >= 0 else a + x.dim() + len(axes) for a in axes):
                x = x.unsqueeze(a)
            return x

        return _fn(unsqueeze, "Unsqueeze"), [0]
    if axes is None:
        return _fn(lambda x: x.squeeze(), "Squeeze"), [0]
    return _fn(lambda x: x.squeeze(tuple(axes)), "Squeeze"), [0]


def _variadic(fn, name):
    def build(ctx: _Ctx):
        return _fn(fn, name), [i for i, n in enumerate(ctx.node.input) if n]

    return build


def _unary(name, get):
    def build(ctx: _Ctx):
        return _fn(get(ctx), name), [0]

    return build


def _sum(*xs):
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    return y


def _table() -> Dict[str, Callable[[_Ctx], Any]]:
    import torch
    import torch.nn.functional as F

    def hardsigmoid(ctx):
        a, b = float(ctx.attr("alpha", 0.2)), float(ctx.attr("beta", 0.5))
        if abs(a - 1 / 6) < 1e-7 and b == 0.5:
            return F.hardsigmoid
        return lambda x: torch.clamp(x * a + b, 0.0, 1.0)

    return {
        "Conv": _conv,
        "BatchNormalization": _bn,
        "Gemm": _gemm,
        "AveragePool": lambda c: _pool(c, "avg"),
        "MaxPool": lambda c: _pool(c, "max"),
        "GlobalAveragePool": _unary("GlobalAveragePool", lambda c: lambda x: F.adaptive_avg_pool2d(x, 1)),
        "GlobalMaxPool": _unary("GlobalMaxPool", lambda c: lambda x: F.adaptive_max_pool2d(x, 1)),
        "ReduceMean": lambda c: _reduce(c, "mean"),
        "ReduceMax": lambda c: _reduce(c, "max"),
        "Relu": _unary("Relu", lambda c: F.relu),
        "LeakyRelu": _unary("LeakyRelu", lambda c: lambda x, a=float(c.attr("alpha", 0.01)): F.leaky_relu(x, a)),
        "Sigmoid": _unary("Sigmoid", lambda c: torch.sigmoid),
        "Tanh": _unary("Tanh", lambda c: torch.tanh),
        "HardSigmoid": _unary("HardSigmoid", hardsigmoid),
        "HardSwish": _unary("HardSwish", lambda c: F.hardswish),
        "Clip": _clip,
        "Softmax": _softmax,
        "Add": _variadic(torch.add, "Add"),
        "Sub": _variadic(torch.sub, "Sub"),
        "Mul": _variadic(torch.mul, "Mul"),
        "Div": _variadic(torch.div, "Div"),
        "Sum": _variadic(_sum, "Sum"),
        "MatMul": _variadic(torch.matmul, "MatMul"),
        "Concat": lambda c: (_fn(lambda *xs, d=int(c.attr("axis")): torch.cat(xs, d), "Concat"), list(range(len(c.node.input)))),
        "Flatten": _flatten,
        "Reshape": _reshape,
        "Transpose": _unary("Transpose", lambda c: lambda x, p=c.attr("perm"): x.permute(*p) if p else x.permute(*reversed(range(x.dim())))),
        "Squeeze": lambda c: _squeeze(c, False),
        "Unsqueeze": lambda c: _squeeze(c, True),
        "Pad": _pad,
        "Identity": _unary("Identity", lambda c: lambda x: x),
        "Dropout": _unary("Dropout", lambda c: lambda x: x),  # inference: the identity
    }


#: The ONNX ops the interpreter knows (plus Constant, folded at build time).
OPS = (
    "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "Conv", "Div", "Dropout", "Flatten",
    "Gemm", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "MatMul",
    "MaxPool", "Mul", "Pad", "ReduceMax", "ReduceMean", "Relu", "Reshape", "Sigmoid", "Softmax", "Squeeze", "Sub",
    "Sum", "Tanh", "Transpose", "Unsqueeze",
)  # fmt: skip


def build_module(proto, torch):
    """An ``nn.Module`` computing the ONNX graph's first output from its single input. Needs
    static shapes only where ``auto_pad=SAME`` asks for them (taken from shape inference)."""
    from onnx import numpy_helper

    table = _table()
    graph = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 13)
    consts: Dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    input_name, _ = onnx_input(proto, "torch")
    unknown = sorted({n.op_type for n in graph.node if n.op_type not in table and n.op_type != "Constant"})
    if unknown:
        raise UnsupportedError(
            f"torch: the ONNX -> torch interpreter has no {', '.join(unknown)} "
            f"(it knows {', '.join(OPS)}); use another runtime for this model"
        )
    shapes = _inferred_hw(proto)
    steps: List = []
    used_consts: Dict[str, Any] = {}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedError(f"torch: op {node.domain}.{node.op_type} is not a standard ONNX op")
        if node.op_type == "Constant":
            from onnx import helper

            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if "value" in attrs:
                consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
            else:
                key, val = next(iter(attrs.items()))
                consts[node.output[0]] = np.array(val, dtype=np.int64 if "int" in key else np.float32)
            continue
        ctx = _Ctx(node, consts, torch)
        ctx.opset = opset
        ctx.in_hw = shapes.get(node.input[0]) if node.input else None
        mod, arg_idx = table[node.op_type](ctx)
        ins = [node.input[i] for i in arg_idx]
        for name in ins:
            if name in consts and name not in used_consts:
                used_consts[name] = torch.from_numpy(np.array(consts[name], copy=True))
        if len(node.output) > 1 and any(node.output[1:]) and node.op_type != "Dropout":
            raise UnsupportedError(f"torch: {node.op_type} node {node.name!r} has several outputs")
        steps.append((mod, ins, node.output[0]))
    out = graph.output[0].name
    return _module_types()["Graph"](input_name, out, used_consts, steps)


def _inferred_hw(proto) -> Dict[str, tuple]:
    """Spatial sizes of 4-D tensors from ONNX shape inference (for auto_pad SAME)."""
    try:
        from onnx import shape_inference

        inferred = shape_inference.infer_shapes(proto)
    except Exception:  # shape inference is a convenience here, not a requirement
        return {}
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input):
        dims = vi.type.tensor_type.shape.dim
        if len(dims) == 4 and all(d.HasField("dim_value") for d in dims[2:]):
            out[vi.name] = (dims[2].dim_value, dims[3].dim_value)
    return out

"""From a checked ONNX graph to the rows of the layer table: which nodes run as one layer after
the fusions runtimes apply, what kind of layer each is, and what it costs (MACs, parameters,
bytes). The rules are in docs/layers.md; the order of the checks here follows it."""

from __future__ import annotations

import os
import warnings
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ..._errors import InputError
from ._onnx import Attrs, Graph, load, read_graph, require_onnx
from ._table import Layer, LayerTable, LayerWarning

#: View-only ops: the runtime changes the tensor's description, not its data. No row.
FREE = frozenset(("Identity", "Reshape", "Flatten", "Dropout", "Squeeze", "Unsqueeze", "Shape", "Size"))

#: Default-domain op -> kind, for the ops that are not convolutions, gemms or pools (those have
#: their own builders below).
_OP_KIND: Dict[str, str] = {}
for _kind, _ops in {
    "batchnorm": "BatchNormalization",
    "norm": "InstanceNormalization LayerNormalization GroupNormalization LRN MeanVarianceNormalization "
            "RMSNormalization",
    "add": "Add Sum",
    "mul": "Mul",
    "elementwise": "Sub Div Pow Sqrt Exp Log Neg Abs Reciprocal Max Min Mean Floor Ceil Round Sign Equal Less "
                   "LessOrEqual Greater GreaterOrEqual Not And Or Xor Where Mod BitShift IsNaN IsInf Sin Cos Tan "
                   "Asin Acos Atan Sinh Cosh Asinh Acosh Atanh Erf BitwiseAnd BitwiseOr BitwiseXor BitwiseNot",
    "concat": "Concat",
    "relu": "Relu",
    "clip": "Clip",
    "hardswish": "HardSwish",
    "hardsigmoid": "HardSigmoid",
    "sigmoid": "Sigmoid",
    "other_activation": "Tanh Elu Selu Celu LeakyRelu PRelu Softplus Softsign Gelu Mish ThresholdedRelu Shrink",
    "resize": "Resize Upsample",
    "softmax": "Softmax LogSoftmax Hardmax",
    "transpose": "Transpose",
    "pad": "Pad",
    "reduce": "ReduceMean ReduceMax ReduceMin ReduceSum ReduceProd ReduceL1 ReduceL2 ReduceLogSum "
              "ReduceLogSumExp ReduceSumSquare ArgMax ArgMin TopK CumSum",
    "copy": "Slice Split Gather GatherElements GatherND Expand Tile Cast CastLike DepthToSpace SpaceToDepth "
            "ScatterND ScatterElements Scatter ConstantOfShape Range OneHot Compress ReverseSequence Trilu EyeLike",
    "globalpool": "GlobalAveragePool GlobalMaxPool GlobalLpPool",
}.items():
    for _op in _ops.split():
        _OP_KIND[_op] = _kind

#: Kinds whose constant operands are read as data (weights, a bias, a scale): they count in
#: ``bytes_read``. Elsewhere a constant input is an argument (pads, scales, axes) and does not.
_WEIGHTED = frozenset(("add", "mul", "elementwise", "concat", "norm", "other_activation", "other"))
#: Activations fused into a preceding conv or gemm (op -> the row's ``activation``).
_FUSED_ACT = {"Relu": "relu", "Clip": "clip", "HardSwish": "hardswish", "HardSigmoid": "hardsigmoid",
              "Sigmoid": "sigmoid", "LeakyRelu": "leakyrelu"}
_SE_WALK = 24  # nodes at most between an SE block's pool and its Mul


def _numel(s) -> int:
    n = 1
    for d in s:
        n *= d
    return n


def _default(n) -> bool:
    return n.domain in ("", "ai.onnx")


class _Builder:
    def __init__(self, G: Graph, what: str):
        self.G = G
        self.what = what
        self.taken = [False] * len(G.nodes)
        self.unknown_ops: Dict[str, List[str]] = {}
        self.unknown_shapes: List[str] = []
        self.keys: List[int] = []  # per row, the position of its last node
        self.se = self._se_nodes()

    # --- helpers ---------------------------------------------------------------------------

    def op(self, i: int) -> Optional[str]:
        n = self.G.nodes[i]
        return n.op_type if _default(n) else None

    def free_consumer(self, t: str, ops: Sequence[str]) -> Optional[int]:
        j = self.G.only_consumer(t)
        return j if j is not None and not self.taken[j] and self.op(j) in ops else None

    def shape_of(self, t: str, node: int) -> Tuple[int, ...]:
        s = self.G.shape(t)
        if s is None:
            n = self.G.nodes[node]
            raise InputError(f"{self.what}: the shape of tensor {t!r} (read or written by {n.op_type} node "
                             f"{self.G.name(node)!r}) could not be inferred, and its MACs depend on it: "
                             + (self.G.unread_hint(self.what) or "pass input_shapes for every dynamic input dimension"))
        return s

    def attrs(self, i: int) -> Attrs:
        n = self.G.nodes[i]
        return Attrs(n, f"{self.what}: {n.op_type} node {self.G.name(i)!r}")

    def window(self, a, k, i: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        """``(strides, dilations)`` of a windowed node, checked (shape inference lets some bad
        values through, e.g. when the output shape is given)."""
        stride = a.ints("strides") or (1,) * len(k)
        dil = a.ints("dilations") or (1,) * len(k)
        if len(stride) != len(k) or len(dil) != len(k) or min(k + stride + dil, default=1) < 1:
            raise InputError(f"{self.what}: {self.G.nodes[i].op_type} node {self.G.name(i)!r} has kernel {list(k)}, "
                             f"strides {list(stride)}, dilations {list(dil)}: not a valid window")
        return stride, dil

    def _global_pool(self, i: int, x: Optional[str] = None) -> bool:
        """A pool over the whole spatial extent: GlobalAveragePool/GlobalMaxPool, a ReduceMean or
        ReduceMax over every axis after the channels, or (for SE detection) a pool to 1x1."""
        n, op = self.G.nodes[i], self.op(i)
        if op in ("GlobalAveragePool", "GlobalMaxPool"):
            return True
        s = self.G.shape(n.input[0]) if n.input else None
        if op in ("ReduceMean", "ReduceMax") and s is not None and len(s) >= 3:
            axes = self.attrs(i).ints("axes")
            if axes is None and len(n.input) > 1 and n.input[1]:
                tp = self.G.values.get(n.input[1])
                if tp is None:
                    return False
                axes = [int(v) for v in require_onnx().numpy_helper.to_array(tp).reshape(-1)]
            if axes is None:
                return False
            return sorted(int(v) % len(s) for v in axes) == list(range(2, len(s)))
        if x is not None and op in ("AveragePool", "MaxPool"):
            o = self.G.shape(n.output[0])
            return o is not None and len(o) >= 3 and all(d == 1 for d in o[2:])
        return False

    def _se_nodes(self) -> Set[int]:
        """Nodes of squeeze-and-excitation blocks: a Mul of x [N, C, H, W] by a gate [N, C, 1, 1]
        computed from a global pool of that same x (through at most ``_SE_WALK`` nodes)."""
        G, se = self.G, set()
        for i, n in enumerate(G.nodes):
            if self.op(i) != "Mul" or len(n.input) != 2 or any(t in G.const for t in n.input):
                continue
            a, b = n.input
            sa, sb = G.shape(a), G.shape(b)
            if sa is None or sb is None or len(sa) != 4 or len(sb) != 4:
                continue
            for x, gate, sx, sg in ((a, b, sa, sb), (b, a, sb, sa)):
                if sg[2:] == (1, 1) and sx[2] * sx[3] > 1 and sg[1] == sx[1]:
                    path = self._gate_path(gate, x)
                    if path:
                        se |= path | {i}
                        break
        return se

    def _gate_path(self, gate: str, x: str) -> Optional[Set[int]]:
        G, seen, found = self.G, set(), False
        stack = [G.producer.get(gate)]
        while stack:
            p = stack.pop()
            if p is None:
                return None  # the gate depends on a graph input other than through the pool
            if p in seen:
                continue
            seen.add(p)
            if len(seen) > _SE_WALK:
                return None
            n = G.nodes[p]
            if n.input and n.input[0] == x and self._global_pool(p, x):
                found = True
                continue
            for t in n.input:
                if not t or t in G.const:
                    continue
                if t == x:
                    return None
                stack.append(G.producer.get(t))
        return seen if found else None

    # --- fusions ---------------------------------------------------------------------------

    def activation(self, t: str) -> Tuple[str, List[int], str]:
        """The activation applied to ``t`` alone, if a runtime fuses it into ``t``'s producer:
        ``(name, its nodes, its output)``; ``("", [], t)`` otherwise."""
        G = self.G
        j = self.free_consumer(t, tuple(_FUSED_ACT))
        if j is not None and G.nodes[j].input[0] == t:
            n = G.nodes[j]
            if n.op_type == "Clip" and not all(s in G.const for s in n.input[1:] if s):
                return "", [], t
            return _FUSED_ACT[n.op_type], [j], n.output[0]
        got = self.swish_at(t)
        if got:
            return got
        return "", [], t

    def swish_at(self, t: str) -> Optional[Tuple[str, List[int], str]]:
        """``Mul(t, Sigmoid(t))`` (SiLU/Swish) or ``Mul(t, HardSigmoid(t))`` (hard swish)."""
        G = self.G
        c = G.consumers.get(t, ())
        if len(c) != 2 or t in G.outputs or t in G.const:
            return None
        for s, m in ((c[0], c[1]), (c[1], c[0])):
            if (self.op(s) in ("Sigmoid", "HardSigmoid") and self.op(m) == "Mul" and not self.taken[s]
                    and not self.taken[m] and G.only_consumer(G.nodes[s].output[0]) == m
                    and sorted(G.nodes[m].input) == sorted((t, G.nodes[s].output[0]))):
                name = "swish" if self.op(s) == "Sigmoid" else "hardswish"
                return name, [s, m], G.nodes[m].output[0]
        return None

    def _conv_chain_end(self, t: str) -> Optional[int]:
        """The conv whose output reaches ``t`` through at most a BatchNormalization, each step
        its producer's only consumer (what :meth:`conv` would fuse), or None."""
        G = self.G
        p = G.producer.get(t)
        if p is not None and self.op(p) == "BatchNormalization":
            src = G.nodes[p].input[0]
            q = G.producer.get(src)
            if q is None or G.only_consumer(src) != p:
                return None
            p = q
        return p if p is not None and self.op(p) == "Conv" else None

    # --- rows ------------------------------------------------------------------------------

    def conv_io(self, i: int):
        """A Conv/ConvTranspose node's (node, attributes, input, weight, bias or None, and the
        input, weight and output shapes)."""
        n = self.G.nodes[i]
        x, w = n.input[0], n.input[1]
        b = n.input[2] if len(n.input) > 2 and n.input[2] else None
        return n, self.attrs(i), x, w, b, self.shape_of(x, i), self.shape_of(w, i), self.shape_of(n.output[0], i)

    def conv(self, i: int) -> Layer:
        G = self.G
        n, a, x, w, b, xs, ws, ys = self.conv_io(i)
        if len(ws) < 3 or len(xs) != len(ws) or len(ys) != len(ws):
            raise InputError(f"{self.what}: Conv node {G.name(i)!r} has input {list(xs)}, weight {list(ws)}, "
                             f"output {list(ys)}: not a convolution this table can describe")
        members, out = [i], n.output[0]
        bn = self.free_consumer(out, ("BatchNormalization",))
        if bn is not None and G.nodes[bn].input[0] == out and all(t in G.const for t in G.nodes[bn].input[1:]):
            members.append(bn)
            out = G.nodes[bn].output[0]
        residual = None
        j = self.free_consumer(out, ("Add", "Sum"))
        if j is not None and len(G.nodes[j].input) == 2 and G.shape(out) is not None:
            other = [t for t in G.nodes[j].input if t != out]
            if len(other) == 1 and other[0] not in G.const and G.shape(other[0]) == G.shape(out):
                # Two convs into one Add: the later one takes it (the other's output is then
                # its residual, computed first).
                later = self._conv_chain_end(other[0])
                if later is None or later < i or G.only_consumer(other[0]) != j:
                    members.append(j)
                    out, residual = G.nodes[j].output[0], other[0]
        act, extra, out = self.activation(out)
        members += extra
        groups = a.int("group", 1)
        cin, cout, k = xs[1], ws[0], tuple(ws[2:])
        stride, dil = self.window(a, k, i)
        pads = _pads(a.ints("pads"), a.str("auto_pad", "NOTSET"), xs[2:], k, stride, dil, a.where)
        if groups == 1:
            kind = "pointwise" if all(v == 1 for v in k) and all(v == 1 for v in stride) else "conv"
        elif groups == cin and cout % cin == 0:  # (groups >= 2 here, so cin > 0)
            kind = "depthwise"
        else:
            kind = "grouped"
        weights = _numel(ws)
        has_bn = len(members) > 1 and self.op(members[1]) == "BatchNormalization"
        params = (weights if w in G.const else 0) + (cout if b and b in G.const else 0) + (2 * cout if has_bn else 0)
        read = weights + (cout if (b or has_bn) else 0)
        inputs = [xs] + ([G.shape(residual)] if residual else []) + ([ws] if w not in G.const else [])
        read += _numel(xs) + (_numel(G.shape(residual)) if residual else 0)
        return self.row(kind, members, inputs, ys, kernel=k, stride=stride, dilation=dil, padding=pads,
                        groups=groups, activation=act, fused_add=residual is not None,
                        macs=_numel(ys) * ws[1] * _numel(k), params=params, bytes_read=4 * read)

    def deconv(self, i: int) -> Layer:
        G = self.G
        n, a, x, w, b, xs, ws, ys = self.conv_io(i)
        if len(ws) < 3:
            raise InputError(f"{self.what}: ConvTranspose node {G.name(i)!r} has a weight of shape {list(ws)}")
        k = tuple(ws[2:])
        groups = a.int("group", 1)
        cout = ws[1] * groups
        stride, dil = self.window(a, k, i)
        act, extra, out = self.activation(n.output[0])
        pads = _pads(a.ints("pads"), "NOTSET", xs[2:], k, stride, dil, a.where)
        params = (_numel(ws) if w in G.const else 0) + (cout if b and b in G.const else 0)
        read = _numel(xs) + _numel(ws) + (cout if b else 0)
        return self.row("deconv", [i] + extra, [xs], ys, kernel=k, stride=stride, dilation=dil, padding=pads,
                        groups=groups, activation=act, macs=_numel(xs) * ws[1] * _numel(k), params=params,
                        bytes_read=4 * read)

    def gemm(self, i: int) -> Layer:
        """Gemm, or MatMul: kind ``gemm`` when one operand is a constant (a fully connected
        layer; a following constant bias Add is fused), ``matmul`` when both are computed."""
        G = self.G
        n = G.nodes[i]
        A, B = n.input[0], n.input[1]
        As, Bs, ys = self.shape_of(A, i), self.shape_of(B, i), self.shape_of(n.output[0], i)
        members, out = [i], n.output[0]
        consts = [t for t in n.input[:3] if t and t in G.const]
        if self.op(i) == "Gemm":
            a = self.attrs(i)
            if len(As) != 2 or len(Bs) != 2:
                raise InputError(f"{self.what}: Gemm node {G.name(i)!r} has operands {list(As)} and {list(Bs)}")
            M, K = (As[1], As[0]) if a.int("transA", 0) else As
            N = Bs[0] if a.int("transB", 0) else Bs[1]
            macs, kind = M * K * N, "gemm"
        else:
            if not As or not Bs:
                raise InputError(f"{self.what}: MatMul node {G.name(i)!r} has a scalar operand")
            macs = _numel(ys) * As[-1]
            kind = "gemm" if consts else "matmul"
            if consts:
                j = self.free_consumer(out, ("Add",))
                if j is not None:
                    other = [t for t in G.nodes[j].input if t != out]
                    if len(other) == 1 and other[0] in G.const and G.shape(other[0]) is not None \
                            and _numel(G.shape(other[0])) == ys[-1]:
                        members.append(j)
                        consts.append(other[0])
                        out = G.nodes[j].output[0]
        act, extra, out = (self.activation(out) if kind == "gemm" else ("", [], out))
        members += extra
        params = sum(_numel(G.shape(t)) for t in consts)
        ins = [s for t, s in ((A, As), (B, Bs)) if t not in G.const]
        if len(n.input) > 2 and n.input[2] and n.input[2] not in G.const:
            ins.append(self.shape_of(n.input[2], i))
        read = sum(_numel(s) for s in ins) + params
        return self.row(kind, members, ins, ys, activation=act, macs=macs, params=params, bytes_read=4 * read)

    def pool(self, i: int) -> Layer:
        G = self.G
        n = G.nodes[i]
        a = self.attrs(i)
        xs, ys = self.shape_of(n.input[0], i), self.shape_of(n.output[0], i)
        k = a.ints("kernel_shape", ())
        stride, dil = self.window(a, k, i)
        pads = _pads(a.ints("pads"), a.str("auto_pad", "NOTSET"), xs[2:], k, stride, dil, a.where)
        kind = "maxpool" if self.op(i) == "MaxPool" else "avgpool"
        return self.row(kind, [i], [xs], ys, kernel=k, stride=stride, dilation=dil, padding=pads,
                        bytes_read=4 * _numel(xs))

    def generic(self, i: int, kind: str) -> Layer:
        members = [i]
        if kind in ("sigmoid", "hardsigmoid"):
            got = self.swish_at(self.G.nodes[i].input[0])
            if got and got[1][0] == i:
                kind, members = got[0], got[1]
        return self.from_members(kind, members)

    def from_members(self, kind: str, members: List[int]) -> Layer:
        G = self.G
        produced = {t for m in members for t in G.nodes[m].output}
        ext: List[str] = []
        for m in members:
            for t in G.nodes[m].input:
                if t and t not in produced and t not in ext:
                    ext.append(t)
        acts = [t for t in ext if t not in G.const]
        shapes = [self.soft_shape(t) for t in acts]
        read = sum(_numel(s) for s in shapes if s is not None)
        params = 0
        n0 = G.nodes[members[0]]
        if kind == "batchnorm":
            c = self.soft_shape(n0.input[1]) if len(n0.input) > 1 else None
            params = 2 * _numel(c) if c is not None else 0
            read += params
        elif kind in _WEIGHTED:
            consts = [self.soft_shape(t) for t in ext if t in G.const]
            read += sum(_numel(s) for s in consts if s is not None)
            if kind == "norm" or (kind == "other_activation" and n0.op_type == "PRelu"):
                params = sum(_numel(s) for s in consts if s is not None)
        outs = [t for t in G.nodes[members[-1]].output if t]
        out_shapes = [self.soft_shape(t) for t in outs]
        written = sum(_numel(s) for s in out_shapes if s is not None)
        return self.row(kind, members, shapes, out_shapes[0] if out_shapes else None, params=params,
                        bytes_read=4 * read, bytes_written=4 * written)

    def soft_shape(self, t: str):
        s = self.G.shape(t)
        if s is None:
            self.unknown_shapes.append(t)
        return s

    def row(self, kind: str, members: List[int], inputs, output, *, bytes_written: Optional[int] = None,
            **kw) -> Layer:
        G = self.G
        for m in members:
            self.taken[m] = True
        self.keys.append(max(members))
        if bytes_written is None:
            bytes_written = 4 * _numel(output)
        return Layer(kind=kind, name="+".join(G.name(m) for m in members),
                     op_types=tuple(G.nodes[m].op_type for m in members),
                     inputs=tuple(None if s is None else tuple(int(d) for d in s) for s in inputs),
                     output=None if output is None else tuple(int(d) for d in output),
                     se=any(m in self.se for m in members), bytes_written=bytes_written,
                     **{k: (tuple(int(x) for x in v) if isinstance(v, tuple) else v) for k, v in kw.items()})

    def build(self) -> List[Layer]:
        G = self.G
        live = _live(G)
        rows: List[Layer] = []
        for i, n in enumerate(G.nodes):
            if self.taken[i] or not live[i] or all(t in G.const for t in n.output if t):
                continue
            op = self.op(i)
            if op in FREE:
                continue
            if op == "Conv":
                rows.append(self.conv(i))
            elif op == "ConvTranspose":
                rows.append(self.deconv(i))
            elif op in ("Gemm", "MatMul"):
                rows.append(self.gemm(i))
            elif op in ("MaxPool", "AveragePool"):
                rows.append(self.pool(i))
            elif op in ("ReduceMean", "ReduceMax") and self._global_pool(i):
                rows.append(self.from_members("globalpool", [i]))
            elif op in _OP_KIND:
                rows.append(self.generic(i, _OP_KIND[op]))
            else:
                label = n.op_type if _default(n) else f"{n.domain}.{n.op_type}"
                self.unknown_ops.setdefault(label, []).append(G.name(i))
                rows.append(self.from_members("other", [i]))
        for label, names in self.unknown_ops.items():
            warnings.warn(f"{self.what}: ONNX op {label!r} is not known to the layer table: its {len(names)} node(s) "
                          f"(first: {names[0]!r}) became rows of kind 'other' (no MACs counted)",
                          LayerWarning, stacklevel=4)
        if self.unknown_shapes:
            warnings.warn(f"{self.what}: ONNX shape inference left the shape of {len(self.unknown_shapes)} tensor(s) "
                          f"unknown (first: {self.unknown_shapes[0]!r}); they count 0 bytes",
                          LayerWarning, stacklevel=4)
        # In the order of each row's last node: a valid execution order (a fused residual Add
        # may come after the node that produces its other input, which a runtime computes first).
        order = sorted(range(len(rows)), key=self.keys.__getitem__)
        return [rows[k] for k in order]


def _live(G: Graph) -> List[bool]:
    """Nodes whose outputs reach a graph output (the rest is dead code a runtime removes)."""
    live = [False] * len(G.nodes)
    needed = set(G.outputs)
    for i in range(len(G.nodes) - 1, -1, -1):
        n = G.nodes[i]
        if any(t in needed for t in n.output if t):
            live[i] = True
            needed.update(t for t in n.input if t)
    return live


def _pads(pads, auto: str, spatial, k, stride, dil, where: str) -> Tuple[int, ...]:
    """ONNX pads (begins, then ends) from ``pads`` or ``auto_pad``."""
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for n, kk, s, d in zip(spatial, k, stride, dil):
            out = -(-n // s)
            total = max(0, (out - 1) * s + (kk - 1) * d + 1 - n)
            small = total // 2
            begin.append(small if auto == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
        return tuple(begin + end)
    if auto == "VALID":
        return (0,) * (2 * len(k))
    p = pads or (0,) * (2 * len(k))
    if len(p) != 2 * len(k) or min(p, default=0) < 0:
        raise InputError(f"{where}: pads {list(p)} do not fit a {len(k)}-D window (2 non-negative values per axis)")
    return p


def from_onnx(model, *, batch: int = 1, input_shapes: Optional[Dict[str, Sequence[int]]] = None,
              external_data_dir=None, name: Optional[str] = None) -> LayerTable:
    """The layer table of an ONNX network.

    ``model``: a path, the bytes of a model, or an ``onnx.ModelProto``. ``batch``: the value of
    every symbolic (or unset) first input dimension. ``input_shapes``: ``{input name: full
    shape}`` for inputs with other dynamic dimensions (static dimensions must match).
    ``external_data_dir``: the folder of the model's external data files (default: the folder of
    ``model`` when it is a path). Only small tensors are read from them (a Reshape's target shape,
    as an exporter that moves every initializer out leaves it); a network's weights never are, so
    a table can be made without them. ``name``: what warnings and errors call the model (default:
    its path; "the model bytes" for bytes), e.g. the path bytes were read from.

    One row per layer the runtime executes after its fusions (docs/layers.md): Conv (+BN)
    (+residual Add) (+activation) is one row, constant subgraphs are folded away, view-only ops
    (Reshape, Flatten, ...) have no row, dead nodes none either. An op the table does not know
    becomes a row of kind ``"other"`` with a :class:`LayerWarning`.

    Raises ``UnsupportedError`` without the onnx package (``pip install 'maple-edge-lite[onnx]'``),
    ``InputError`` for a file that is not a usable ONNX model (not ONNX, truncated, no inputs,
    a cycle, an unresolved dynamic dimension: pass ``input_shapes``), ``VersionError`` for an
    opset outside 7..the installed onnx's newest, ``ModelNotFoundError`` / ``MapleEdgeIOError``
    for a path that cannot be read."""
    from ..builders._graph import positive_int

    batch = positive_int("batch", batch)
    if input_shapes is not None and not isinstance(input_shapes, dict):
        raise InputError(f"input_shapes must be a dict {{input name: shape}}, got {type(input_shapes).__name__}")
    proto, source = load(model, name)
    what = source.pop("_what", "the model")
    base = external_data_dir if external_data_dir is not None else (
        os.path.dirname(os.path.abspath(source["path"])) if source["path"] else None)
    try:
        G = read_graph(proto, batch=batch, input_shapes=input_shapes, what=what,
                       base_dir=None if base is None else os.fspath(base))
        rows = _Builder(G, what).build()
    except UnicodeDecodeError as e:  # a string field protobuf cannot decode, read where not expected
        raise InputError(f"{what}: a string in the model is not valid UTF-8 ({e.object[:40]!r}): a damaged model") from None
    first = G.shapes[G.inputs[0]]
    source["batch"] = int(first[0]) if first else batch  # the batch the table is for (a static one wins)
    return LayerTable(rows, source)


__all__ = ["from_onnx", "FREE"]

"""Reading an ONNX model for the layer table: parse, check, fix the dynamic dimensions, run ONNX
shape inference, and hand the rows builder a :class:`Graph` (nodes in execution order, shapes,
producers and consumers, which tensors are constant).

``onnx`` is imported on the first call, never at import. Every failure is a ``MapleEdgeError``:
``InputError`` for a file that is not a usable ONNX model, ``VersionError`` for an opset this
reader does not know, the file errors for a path that cannot be read. The work is linear in the
number of nodes and tensors (one topological sort, one shape inference on a copy of the graph
without its large weights)."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..._errors import InputError, UnsupportedError, VersionError

#: The oldest default-domain opset read (the newest is the installed onnx package's).
MIN_OPSET = 7
_INSTALL_HINT = "pip install 'maple-edge-lite[onnx]'"
#: Initializers up to this many elements (and every integer one) stay in the copy given to shape
#: inference, which needs their values (Reshape targets, Slice bounds); larger ones become typed
#: inputs there, so inference never copies a network's weights.
_SMALL = 4096
_INT_TYPES = {2, 3, 4, 5, 6, 7, 9, 12, 13}  # uint8 int8 uint16 int16 int32 int64 bool uint32 uint64
#: Ops that are never folded even with constant inputs (their result is not a function of them).
_NOT_FOLDED = ("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli")


def require_onnx():
    """The ``onnx`` module, or ``UnsupportedError`` naming the extra that installs it."""
    try:
        import onnx
        from onnx import helper, numpy_helper, shape_inference  # noqa: F401
    except ImportError as e:
        raise UnsupportedError(f"reading ONNX models needs the onnx package, which is not installed ({e}): "
                               f"{_INSTALL_HINT}") from e
    return onnx


def supported_opsets() -> Tuple[int, int]:
    """``(oldest, newest)`` default-domain opset this reader takes: 7 to the installed onnx's."""
    onnx = require_onnx()
    return MIN_OPSET, int(onnx.defs.onnx_opset_version())


def load(model, name: Optional[str] = None) -> Tuple[Any, Dict[str, Any]]:
    """``(ModelProto, source)`` from a path, the bytes of a model or a ``ModelProto``; ``name``:
    what messages call it (default: the path, or "the model bytes")."""
    from ...format import read_bytes

    onnx = require_onnx()
    if isinstance(model, onnx.ModelProto):
        return model, {"path": None, "sha256": None, **({"_what": str(name)} if name is not None else {})}
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, what, path = bytes(model), "the model bytes" if name is None else str(name), None
    elif isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        what = path if name is None else str(name)
        data = read_bytes(path, "ONNX model")
    else:
        raise InputError(f"model must be a path, the bytes of an ONNX model or an onnx.ModelProto, "
                         f"got {type(model).__name__}")
    if not data:
        raise InputError(f"{what} is empty, not an ONNX model")
    # hashlib releases the GIL on large buffers: hash a large model while protobuf parses it.
    digest = hashlib.sha256()
    hasher = threading.Thread(target=digest.update, args=(data,)) if len(data) > (1 << 20) else None
    if hasher is not None:
        hasher.start()
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError has no stable import path
        raise InputError(f"{what} is not an ONNX model, or a truncated one: protobuf cannot parse its "
                         f"{len(data)} bytes ({e})") from None
    finally:
        if hasher is not None:
            hasher.join()
    if hasher is None:
        digest.update(data)
    return proto, {"path": path, "sha256": digest.hexdigest(), "_what": what}


def check_opset(model, what: str) -> int:
    """The default-domain opset, checked against :func:`supported_opsets`."""
    lo, hi = supported_opsets()
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise InputError(f"{what} is not a complete ONNX model: it imports no opset of the default ONNX domain "
                         "(a truncated file, or not ONNX)")
    v = versions[0]
    if not lo <= v <= hi:
        raise VersionError(f"{what} uses ONNX opset {v}; this reader supports opsets {lo} to {hi} (the newest the "
                           f"installed onnx {require_onnx().__version__} knows): re-export the model with an opset "
                           "in that range" + (", or upgrade onnx" if v > hi else ""))
    return v


def _check_strings(model, what: str) -> None:
    """Every name the reader uses is text: protobuf hands back invalid UTF-8 in ONNX's (proto2)
    string fields as ``bytes``, or raises when it is read."""
    g = model.graph
    try:
        texts = [g.name] + [o.domain for o in model.opset_import]
        for n in g.node:
            texts += [n.name, n.op_type, n.domain, *n.input, *n.output]
        for coll in (g.input, g.output, g.initializer, g.value_info):
            texts += [x.name for x in coll]
        bad = next((t for t in texts if not isinstance(t, str)), None)
    except UnicodeDecodeError as e:
        bad = e.object[:40]
    if bad is not None:
        raise InputError(f"{what}: a name in the graph is not valid UTF-8 ({bad[:40]!r}): a damaged model")


def _check_arity(nodes, opset: int, what: str) -> None:
    """Every default-domain node has as many inputs and outputs as its op's schema allows (ONNX
    shape inference does not check this); an op unknown to onnx passes (it becomes ``other``)."""
    defs = require_onnx().defs
    schemas: Dict[str, Any] = {}
    for n in nodes:
        if n.domain not in ("", "ai.onnx"):
            continue
        if n.op_type not in schemas:
            try:
                schemas[n.op_type] = defs.get_schema(n.op_type, opset, "")
            except Exception:  # SchemaError: not an op of this opset
                schemas[n.op_type] = None
        sc = schemas[n.op_type]
        if sc is None:
            continue
        ins = len(n.input)
        while ins and not n.input[ins - 1]:
            ins -= 1
        outs = len([t for t in n.output])
        if not sc.min_input <= ins <= sc.max_input or not sc.min_output <= outs <= sc.max_output:
            raise InputError(f"{what}: {n.op_type} node {n.name or n.op_type!r} has {ins} input(s) and {outs} "
                             f"output(s); opset {opset}'s {n.op_type} takes {sc.min_input} to {sc.max_input} "
                             f"inputs and {sc.min_output} to {sc.max_output} outputs")


class Graph:
    """The checked graph: ``nodes`` in execution (topological) order, ``index[i]`` the node's
    position in the file, ``producer[t]`` (position in ``nodes``) and ``consumers[t]`` of each
    tensor, ``shapes[t]`` (tuple of ints, ``None`` if unknown), ``const`` (tensors known before
    the network runs), ``init_dims`` (shapes of initializers), ``values`` (small constant
    arrays, for Clip bounds), ``outputs`` (the graph's output names)."""

    def __init__(self):
        self.nodes: List[Any] = []
        self.index: List[int] = []
        self.producer: Dict[str, int] = {}
        self.consumers: Dict[str, List[int]] = {}
        self.shapes: Dict[str, Optional[Tuple[int, ...]]] = {}
        self.const: set = set()
        self.init_dims: Dict[str, Tuple[int, ...]] = {}
        self.values: Dict[str, Any] = {}
        self.outputs: set = set()
        self.inputs: List[str] = []
        #: (name, file, why) of the small initializers kept in external data that could not be read
        self.unread: List[Tuple[str, str, str]] = []

    def unread_hint(self, what: str) -> str:
        """What to do when a shape depends on an external tensor that could not be read ("" if none)."""
        if not self.unread:
            return ""
        name, loc, why = self.unread[0]
        return (f"{what} keeps {len(self.unread)} small tensor(s), e.g. {name!r}, in the external data file {loc!r}, "
                f"which could not be read ({why}): keep that file beside the .onnx file and give the file's path")

    def shape(self, t: str) -> Optional[Tuple[int, ...]]:
        return self.shapes.get(t)

    def only_consumer(self, t: str) -> Optional[int]:
        """The one node reading ``t``, if exactly one does and ``t`` is not a graph output."""
        c = self.consumers.get(t, ())
        return c[0] if len(c) == 1 and t not in self.outputs else None

    def name(self, i: int) -> str:
        n = self.nodes[i]
        return n.name or f"{n.op_type}_{self.index[i]}"


def _dims_of(vi) -> Optional[list]:
    """The dims of a ValueInfoProto as a list (ints, or the dim_param string / None when not
    fixed), or None when it has no tensor shape."""
    t = vi.type
    if t.WhichOneof("value") != "tensor_type" or not t.tensor_type.HasField("shape"):
        return None
    out = []
    for d in t.tensor_type.shape.dim:
        w = d.WhichOneof("value")
        out.append(d.dim_value if w == "dim_value" and d.dim_value >= 0 else (d.dim_param or None))
    return out


def _fixed_input_shape(name: str, dims: Optional[list], batch: int, given) -> List[int]:
    """The concrete shape of graph input ``name``: the model's static dims; a dynamic first dim
    set to ``batch``; other dynamic dims from ``given`` (``input_shapes[name]``)."""
    if given is not None:
        try:
            given = [int(x) for x in given]
        except (TypeError, ValueError):
            raise InputError(f"input_shapes[{name!r}] must be a list of integers, got {given!r}") from None
        if any(x < 1 for x in given):
            raise InputError(f"input_shapes[{name!r}] must have positive dimensions, got {given}")
        if dims is not None and len(dims) != len(given):
            raise InputError(f"input_shapes[{name!r}] has {len(given)} dimensions; the model's input {name!r} has "
                             f"{len(dims)} ({dims})")
        if dims is not None:
            for i, (d, g) in enumerate(zip(dims, given)):
                if isinstance(d, int) and d != g:
                    raise InputError(f"input_shapes[{name!r}] sets dimension {i} to {g}, but the model fixes it at {d}")
        return given
    if dims is None:
        raise InputError(f"input {name!r} has no shape in the model: pass input_shapes={{{name!r}: [...]}} "
                         "(CLI: --input-shape NAME=D0,D1,...)")
    out = []
    for i, d in enumerate(dims):
        if d == 0:
            raise InputError(f"input {name!r} has a zero dimension ({dims}): the network would run on no data")
        if isinstance(d, int):
            out.append(d)
        elif i == 0:
            out.append(batch)
        else:
            label = f" ({d!r})" if d else ""
            raise InputError(f"input {name!r} dimension {i}{label} is dynamic and cannot be resolved: pass "
                             f"input_shapes={{{name!r}: [...]}} with every dimension (CLI: --input-shape "
                             f"{name}={','.join(str(x) if isinstance(x, int) else '?' for x in dims)})")
    return out


def _toposort(g, what: str, known: set) -> Tuple[List[Any], List[int]]:
    """Nodes in an order where every tensor is produced before it is read (Kahn's algorithm,
    stable: the file's order where it already is one). ``InputError`` for a tensor read but
    never produced, one produced twice, or a cycle."""
    nodes = list(g.node)
    producer: Dict[str, int] = {}
    for i, n in enumerate(nodes):
        for t in n.output:
            if not t:
                continue
            if t in producer or t in known:
                raise InputError(f"{what}: tensor {t!r} is produced twice (by node {n.name or n.op_type!r} and "
                                 "another node or an input/initializer): not a valid ONNX graph")
            producer[t] = i
    waiting = [0] * len(nodes)
    readers: Dict[int, List[int]] = {}
    for i, n in enumerate(nodes):
        deps = set()
        for t in n.input:
            if not t or t in known:
                continue
            p = producer.get(t)
            if p is None:
                raise InputError(f"{what}: node {n.name or n.op_type!r} reads tensor {t!r}, which no node, input "
                                 "or initializer produces (a damaged or truncated model)")
            deps.add(p)
        if i in deps:
            raise InputError(f"{what}: node {n.name or n.op_type!r} reads its own output: the graph has a cycle")
        waiting[i] = len(deps)
        for p in deps:
            readers.setdefault(p, []).append(i)
    import heapq

    ready = [i for i in range(len(nodes)) if waiting[i] == 0]
    heapq.heapify(ready)
    order: List[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for r in readers.get(i, ()):
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(ready, r)
    if len(order) != len(nodes):
        stuck = next(nodes[i] for i in range(len(nodes)) if waiting[i])
        raise InputError(f"{what}: the graph has a cycle (node {stuck.name or stuck.op_type!r} waits on itself "
                         "through other nodes): not a valid ONNX graph")
    return [nodes[i] for i in order], order


def _external_value(onnx, t, base_dir: Optional[str]):
    """``(tensor with its data, None)`` for an initializer kept in an external data file, read
    from ``base_dir`` (the model's folder), or ``(None, why not)``."""
    if base_dir is None:
        return None, "the model was given as bytes: pass external_data_dir, the folder that file is in"
    from onnx import external_data_helper

    c = onnx.TensorProto()
    c.CopyFrom(t)
    try:
        external_data_helper.load_external_data_for_tensor(c, base_dir)
    except Exception as e:  # missing file, a location outside the folder, short data
        return None, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}".rstrip(": ")
    c.data_location = onnx.TensorProto.DEFAULT
    del c.external_data[:]
    return c, None


def read_graph(model, *, batch: int, input_shapes: Optional[Dict[str, Sequence[int]]], what: str,
               base_dir: Optional[str] = None) -> Graph:
    """Check ``model`` and infer its shapes with the dynamic dimensions fixed: a :class:`Graph`.
    ``base_dir``: the folder of the model's external data files (small initializers kept there,
    e.g. a Reshape's target, are read from it; large ones never are)."""
    onnx = require_onnx()
    h = onnx.helper
    if not model.HasField("graph") or model.ir_version <= 0:
        raise InputError(f"{what} is not an ONNX model (no graph or no IR version)")
    opset = check_opset(model, what)
    _check_strings(model, what)
    g = model.graph
    init_names = {t.name for t in g.initializer} | {s.values.name for s in g.sparse_initializer}
    real_inputs = [vi for vi in g.input if vi.name not in init_names]
    if not real_inputs:
        raise InputError(f"{what}: the graph has no inputs (only weights): nothing to run a network on")
    if not g.output:
        raise InputError(f"{what}: the graph has no outputs (a truncated model?)")
    input_shapes = dict(input_shapes or {})
    unknown = [k for k in input_shapes if k not in {vi.name for vi in real_inputs}]
    if unknown:
        raise InputError(f"input_shapes names {unknown[0]!r}, which is not an input of the model (inputs: "
                         f"{', '.join(repr(vi.name) for vi in real_inputs)})")

    G = Graph()
    fixed = {}
    for vi in real_inputs:
        if vi.type.WhichOneof("value") != "tensor_type":
            raise InputError(f"{what}: input {vi.name!r} is not a tensor ({vi.type.WhichOneof('value')}); "
                             "the layer table reads tensor inputs only")
        fixed[vi.name] = _fixed_input_shape(vi.name, _dims_of(vi), batch, input_shapes.get(vi.name))
    def dynamic_batch(vi):
        dims = _dims_of(vi)
        return vi.name not in input_shapes and bool(dims) and not isinstance(dims[0], int)

    if batch != 1 and not any(dynamic_batch(vi) for vi in real_inputs):
        shapes = ", ".join(f"{k} {v}" for k, v in fixed.items())
        raise InputError(f"batch={batch} was asked for, but no input of {what} has a dynamic batch dimension "
                         f"({shapes}): re-export the model with a dynamic batch, or leave batch at 1")
    known = set(fixed) | init_names
    nodes, order = _toposort(g, what, known)
    G.nodes, G.index = nodes, order

    # The copy shape inference runs on: nodes in order, fixed inputs, small initializers; the
    # large ones as typed inputs (their dims are all inference needs).
    light = onnx.ModelProto()
    light.ir_version = max(int(model.ir_version), 4)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    lg = light.graph
    lg.name = g.name or "graph"
    for vi in real_inputs:
        elem = vi.type.tensor_type.elem_type
        lg.input.append(h.make_tensor_value_info(vi.name, elem, fixed[vi.name]))
        G.shapes[vi.name] = tuple(fixed[vi.name])
        G.inputs.append(vi.name)
    unread = G.unread  # small external initializers whose data could not be read
    for t in g.initializer:
        dims = tuple(int(d) for d in t.dims)
        if any(d < 0 for d in dims):
            raise InputError(f"{what}: initializer {t.name!r} has a negative dimension {list(dims)}")
        G.init_dims[t.name] = dims
        G.shapes[t.name] = dims
        n = 1
        for d in dims:
            n *= d
        if (n <= _SMALL or t.data_type in _INT_TYPES) and t.data_location == onnx.TensorProto.EXTERNAL:
            loaded, why = _external_value(onnx, t, base_dir)
            if loaded is None:  # its value stays unknown: inference may not need it
                miss = (t.name, next((e.value for e in t.external_data if e.key == "location"), "?"), why)
                # integer tensors first: shapes (a Reshape's target) are what inference needs
                unread.insert(0 if t.data_type in _INT_TYPES else len(unread), miss)
                lg.input.append(h.make_tensor_value_info(t.name, t.data_type, list(dims)))
                continue
            t = loaded
        if n <= _SMALL or t.data_type in _INT_TYPES:
            lg.initializer.append(t)
            if n <= 16 and t.data_location != onnx.TensorProto.EXTERNAL:
                G.values[t.name] = t
        else:
            lg.input.append(h.make_tensor_value_info(t.name, t.data_type, list(dims)))
    for s in g.sparse_initializer:
        dims = tuple(int(d) for d in s.dims)
        G.init_dims[s.values.name] = G.shapes[s.values.name] = dims
        lg.sparse_initializer.append(s)
    lg.node.extend(nodes)
    for o in g.output:
        lg.output.append(h.make_empty_tensor_value_info(o.name))
    try:
        inferred = onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=True, data_prop=True)
    except Exception as e:  # InferenceError, ValidationError, RuntimeError: all mean a bad model here
        msg = str(e).strip().splitlines()
        hint = G.unread_hint(what)
        raise InputError(f"{what}: ONNX shape inference failed: {msg[0] if msg else type(e).__name__}"
                         + (f" {msg[1]}" if len(msg) > 1 else "") + (f" ({hint})" if hint else "")) from None
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.name in G.shapes:
            continue
        dims = _dims_of(vi)
        G.shapes[vi.name] = tuple(dims) if dims is not None and all(isinstance(d, int) for d in dims) else None

    _check_arity(nodes, opset, what)
    G.outputs = {o.name for o in g.output}
    G.const = set(init_names)
    for i, n in enumerate(nodes):
        for t in n.output:
            if t:
                G.producer[t] = i
        for t in n.input:
            if t:
                G.consumers.setdefault(t, []).append(i)
        if n.domain not in ("", "ai.onnx") or n.op_type in _NOT_FOLDED:
            continue
        ins = [t for t in n.input if t]
        if n.op_type == "Constant" or (ins and all(t in G.const for t in ins)) or (
                n.op_type in ("Shape", "Size") and G.shapes.get(n.input[0]) is not None):
            G.const.update(t for t in n.output if t)
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value" and a.t is not None:
                        G.values[n.output[0]] = a.t
    for o in G.outputs:
        if o not in known and o not in G.producer:
            raise InputError(f"{what}: graph output {o!r} is produced by no node (a damaged model)")
    return G


class Attrs:
    """A node's attributes, read with their type checked: a wrong type is an ``InputError``
    naming the node and the attribute (ONNX shape inference lets some through)."""

    _INT, _STRING, _INTS = 2, 3, 7  # AttributeProto.INT, STRING, INTS

    def __init__(self, node, where: str):
        self.where = where
        self.attrs = {a.name: a for a in node.attribute}

    def _get(self, key: str, want: int, field: str):
        a = self.attrs.get(key)
        if a is None:
            return None
        if a.type != want and not (a.type == 0 and (a.HasField(field) if field != "ints" else len(a.ints))):
            kind = {self._INT: "an integer", self._INTS: "a list of integers", self._STRING: "a string"}[want]
            raise InputError(f"{self.where}: attribute {key!r} must be {kind} (ONNX attribute type {a.type})")
        return a

    def int(self, key: str, default: int) -> int:
        a = self._get(key, self._INT, "i")
        return default if a is None else int(a.i)

    def ints(self, key: str, default=None):
        a = self._get(key, self._INTS, "ints")
        return default if a is None else tuple(int(v) for v in a.ints)

    def str(self, key: str, default: str) -> str:
        a = self._get(key, self._STRING, "s")
        return default if a is None else a.s.decode("utf-8", "replace")

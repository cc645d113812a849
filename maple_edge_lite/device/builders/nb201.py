"""NAS-Bench-201 networks as ONNX models, built with ``onnx.helper`` (no PyTorch).

The graph is NAS-Bench-201's ``TinyNetwork`` node for node (Dong & Yang, ICLR 2020;
``xautodl/models/cell_infers/tiny_network.py``, ``cells.py``, ``cell_operations.py``):

- stem: Conv 3x3 (3 -> C, no bias) + BN, at the input resolution;
- three stages of ``cells`` cells at C, 2C, 4C channels, joined by ``ResNetBasicblock``
  (stride 2): ReLU-Conv3x3(s2)-BN, ReLU-Conv3x3-BN, shortcut AvgPool 2x2 (s2) + Conv 1x1 (no
  BN), the two added (no activation after the addition);
- cell (``InferCell``): node 0 is the cell input, node j = sum over i < j of op_{j,i}(node i),
  the output is node 3. ``skip_connect`` = identity; ``nor_conv_KxK`` = ReLU -> Conv KxK
  (no bias, padding K // 2) -> BN; ``avg_pool_3x3`` = AveragePool 3x3, stride 1, padding 1,
  ``count_include_pad=0`` (NAS-Bench-201's ``POOLING``);
- head: BN -> ReLU -> GlobalAveragePool -> Flatten -> Gemm (with bias) to ``num_classes``.

Batch norms are real ``BatchNormalization`` nodes in inference form, not folded into the
convolutions: every runtime folds them itself when it compiles the graph, and the model should
be the one a user exports from PyTorch, so the measured latency includes whatever a runtime
does (or fails to do) with them.

``none`` edges. NAS-Bench-201 computes ``none`` as ``x.mul(0.0)`` and adds it in; adding a zero
changes nothing, so a ``none`` edge is omitted. When *every* input of a node is ``none`` the node
is the zero tensor; it is emitted as ``Mul(cell input, 0)``, NAS-Bench-201's own ``Zero`` op as
PyTorch exports it. That keeps the values exact (ops fed by the node compute on zeros exactly
as in NAS-Bench-201, e.g. ReLU-Conv-BN of zeros is BN's shift, not zero) and, unlike a constant
zero tensor, cannot be constant-folded by a runtime (``inf * 0`` is ``nan``), so the ops after
it are executed and measured as NAS-Bench-201 executes them. A cell whose node 3 has only
``none`` inputs (a disconnected cell) thus outputs zeros and the rest of the network still runs
on them. Ops whose result cannot reach node 3 (their output node feeds only ``none`` edges) are
dead code once the ``none`` edges are gone and are left out, as an exporter's dead-code
elimination would; the output is unchanged.

So the graph executes every non-``none`` edge that lies on a path of non-``none`` edges to
node 3, including edges fed by a zero node (:func:`edges_built`). That is between the encoder's
``ops_nonzero`` (all non-``none`` edges) and ``ops_live`` (edges on a non-``none`` path from
node 0 to node 3), and equal to both, with MACs equal to the encoder's ``flops_32`` (NAS-Bench-201's
published figure), whenever every non-``none`` edge is live."""

from __future__ import annotations

from typing import List, Tuple

from ..._errors import InputError
from ._graph import Graph, positive_int, seed_int

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (to, from) of edges 0..5, in the order the architecture string lists them.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def parse(arch: str) -> Tuple[str, ...]:
    """The six edge ops of a NAS-Bench-201 architecture string, in edge order. The string is
    checked by the C++ encoder first (the one the predictor uses), so an accepted string is
    exactly one the predictor accepts; ``InputError`` names what is wrong otherwise."""
    from ... import encode as enc

    if not isinstance(arch, str):
        raise InputError(f"arch must be a NAS-Bench-201 architecture string, got {type(arch).__name__}")
    try:
        enc.encode("nb201", [arch])
    except InputError as e:
        msg = str(e)
        prefix = "archs[0]: "
        raise InputError(msg[len(prefix):] if msg.startswith(prefix) else msg) from e
    ops: List[str] = []
    for node in arch.split("+"):
        for token in node.strip("|").split("|"):
            ops.append(token.split("~")[0])
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):  # the encoder accepted it
        raise AssertionError(f"nb201 parser disagrees with the encoder on {arch!r}")
    return tuple(ops)


def edges_built(ops) -> List[int]:
    """Indices of the edges the graph computes: non-``none`` edges whose output node reaches
    node 3 along non-``none`` edges (everything else is ``none`` or dead code)."""
    useful = {3}
    for j in (2, 1):
        if any(ops[e] != "none" and frm == j and to in useful for e, (to, frm) in enumerate(EDGES)):
            useful.add(j)
    return [e for e, (to, _) in enumerate(EDGES) if ops[e] != "none" and to in useful]


def _cell(g: Graph, x: str, ops, C: int, name: str) -> str:
    kept = set(edges_built(ops))
    needed = {3} | {EDGES[e][1] for e in kept}  # nodes some kept edge reads (and the output)
    nodes = {0: x}
    for j in (1, 2, 3):
        if j not in needed:
            continue
        terms = []
        for e, (to, frm) in enumerate(EDGES):
            if to != j or e not in kept:
                continue
            op, src, ename = ops[e], nodes[frm], f"{name}.edge{e}"
            if op == "skip_connect":
                terms.append(src)
            elif op in ("nor_conv_1x1", "nor_conv_3x3"):
                k = 1 if op == "nor_conv_1x1" else 3
                y = g.relu(src, f"{ename}.relu")
                y = g.conv(y, C, C, k, f"{ename}.conv")
                terms.append(g.bn(y, C, f"{ename}.bn"))
            elif op == "avg_pool_3x3":
                terms.append(g.avg_pool(src, 3, 1, 1, f"{ename}.pool", count_include_pad=False))
            else:  # pragma: no cover - parse() admits nothing else
                raise AssertionError(op)
        if not terms:  # only `none` inputs: the zero tensor, as NAS-Bench-201 computes it
            nodes[j] = g.mul_zero(x, f"{name}.node{j}.zero")
        else:  # a lone skip_connect adds no node: the tensor itself passes on
            nodes[j] = g.sum(terms, f"{name}.node{j}")
    return nodes[3]


def _relu_conv_bn(g: Graph, x: str, cin: int, cout: int, k: int, stride: int, name: str) -> str:
    y = g.relu(x, f"{name}.relu")
    y = g.conv(y, cin, cout, k, f"{name}.conv", stride=stride)
    return g.bn(y, cout, f"{name}.bn")


def _reduction(g: Graph, x: str, cin: int, cout: int, name: str) -> str:
    """NAS-Bench-201's ``ResNetBasicblock(cin, cout, stride=2)``."""
    a = _relu_conv_bn(g, x, cin, cout, 3, 2, f"{name}.conv_a")
    b = _relu_conv_bn(g, a, cout, cout, 3, 1, f"{name}.conv_b")
    r = g.avg_pool(x, 2, 2, 0, f"{name}.downsample.pool")
    r = g.conv(r, cin, cout, 1, f"{name}.downsample.conv")
    return g.add(r, b, f"{name}.add")


def _stem(g: Graph, x: str, C: int) -> str:
    return g.bn(g.conv(x, 3, C, 3, "stem.conv"), C, "stem.bn")


def _head(g: Graph, x: str, C: int, num_classes: int) -> str:
    y = g.relu(g.bn(x, C, "lastact.bn"), "lastact.relu")
    return g.head(y, C, num_classes, "classifier")


def nb201_onnx(arch: str, *, resolution: int = 32, channels: int = 16, cells: int = 5, num_classes: int = 10,
               batch: int = 1, seed: int = 0) -> bytes:
    """The serialized ONNX model (opset 17) of NAS-Bench-201 architecture ``arch``, e.g.
    ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``.

    Input ``"input"``: float32 ``[batch, 3, resolution, resolution]``; output ``"output"``:
    float32 ``[batch, num_classes]`` (logits). Defaults are NAS-Bench-201's CIFAR-10 network
    (C=16, N=5, 32x32, 10 classes); ``resolution`` may be any multiple of 4 (the two reduction
    blocks halve it twice), e.g. 224, with the stem at full resolution as in NAS-Bench-201.
    Weights come from ``numpy.random.default_rng(seed)``: the same arguments give the same bytes.
    Returns a new ``bytes`` object owned by the caller; write it with :func:`save`.

    Raises ``InputError`` (a ``ValueError``) for an invalid string or argument, naming what is
    wrong, and ``UnsupportedError`` when the ``onnx`` package is missing. See the module
    docstring for how ``none`` edges, zero nodes and dead ops are built."""
    ops = parse(arch)
    resolution = positive_int("resolution", resolution, 4)
    if resolution % 4:
        raise InputError(f"resolution must be a multiple of 4 (two stride-2 reductions), got {resolution}")
    C = positive_int("channels", channels)
    N = positive_int("cells", cells)
    num_classes = positive_int("num_classes", num_classes)
    batch = positive_int("batch", batch)
    seed = seed_int(seed)

    g = Graph(seed)
    x = _stem(g, "input", C)
    c = C
    for stage in range(3):
        if stage:
            x = _reduction(g, x, c, 2 * c, f"reduce{stage}")
            c *= 2
        for i in range(N):
            x = _cell(g, x, ops, c, f"stage{stage}.cell{i}")
    _head(g, x, c, num_classes)
    doc = (f"NAS-Bench-201 {arch} (C={C}, N={N}, {resolution}x{resolution}, {num_classes} classes, "
           f"seed {seed}), built by maple_edge_lite.device.builders.nb201_onnx")
    meta = {"maple_edge_lite.space": "nb201", "maple_edge_lite.arch": arch, "maple_edge_lite.seed": str(seed),
            "maple_edge_lite.config": f"C={C},N={N},resolution={resolution},num_classes={num_classes},batch={batch}"}
    return g.serialize("nb201", [batch, 3, resolution, resolution], [batch, num_classes], doc, meta)


__all__ = ["OPS", "EDGES", "parse", "edges_built", "nb201_onnx"]

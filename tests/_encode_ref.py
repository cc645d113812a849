"""Pure-Python mirror of the architecture encoders, used ONLY as a test oracle.

It is written differently from the C++ on purpose: it builds each network module by module (as
NAS-Bench-201's TinyNetwork and HW-NAS-Bench's FBNet_Infer construct them) and sums what every
module costs, and it finds live edges by enumerating the input->output paths of the cell instead
of the C++'s reachability passes. Agreement of the two on every architecture is the test."""

from __future__ import annotations

import functools
import itertools
from typing import Dict, List, NamedTuple

import numpy as np

# --- shared -----------------------------------------------------------------------------------


class Mod(NamedTuple):
    """What one module of a network costs: multiply-accumulates (as NAS-Bench-201's counter
    counts them: convolutions and linear layers only), parameters, feature-map elements written."""

    kind: str
    macs: int = 0
    params: int = 0
    act: int = 0
    dw_macs: int = 0


def conv(cin, cout, k, side_out, stride=1, groups=1, bias=False) -> Mod:
    macs = k * k * (cin // groups) * cout * side_out * side_out
    params = k * k * (cin // groups) * cout + (cout if bias else 0)
    dw = macs if groups == cin == cout and groups > 1 else 0
    return Mod("conv", macs, params, cout * side_out * side_out, dw)


def bn(c) -> Mod:
    return Mod("bn", 0, 2 * c, 0)


def pool(c, side_out) -> Mod:
    return Mod("pool", 0, 0, c * side_out * side_out)


def add(c, side) -> Mod:
    return Mod("add", 0, 0, c * side * side)


def linear(cin, cout) -> Mod:
    return Mod("linear", cin * cout + cout, cin * cout + cout, cout)


def total(mods: List[Mod], field: str) -> int:
    return sum(getattr(m, field) for m in mods)


def mega(v: int) -> np.float32:
    return np.float32(v / 1e6)


# --- NAS-Bench-201 --------------------------------------------------------------------------------

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), in string order
NB201_VERSION = 4
NB201_VERSION_DIMS = (75, 99, 101, 102)  # features of schema versions 1 to 4 (each a prefix of the next)


def nb201_feature_names() -> List[str]:
    names = [f"edge{e}:{op}" for e in range(6) for op in NB201_OPS]
    names += [f"count:{op}" for op in NB201_OPS]
    names += ["cell_connected", "ops_nonzero", "ops_reachable", "ops_live"]
    names += [f"live:{op}" for op in NB201_OPS[1:]]
    names += ["longest_path_convs", "longest_path_ops", "adds"]
    names += ["flops_32", "flops_live_32", "flops_224", "params", "act_32"]
    names += [f"live_edge{e}:{op}" for e in range(6) for op in NB201_OPS[1:]]
    names += [f"exec_edge{e}:{op}" for e in range(6) for op in NB201_OPS[1:]]
    names += ["shared_avg_pools", "exec_adds", "tensor_shared_avg_pools"]
    return names


def nb201_parse(s: str) -> List[str]:
    nodes = s.split("+")
    if len(nodes) != 3:
        raise ValueError(s)
    ops = []
    for j, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise ValueError(s)
        toks = node[1:-1].split("|")
        if len(toks) != j:
            raise ValueError(s)
        for k, t in enumerate(toks):
            op, _, idx = t.partition("~")
            if op not in NB201_OPS or idx != str(k):
                raise ValueError(s)
            ops.append(op)
    return ops


def _paths(to: int, frm: int = 0):
    """Every path frm -> to in the cell's complete DAG, as lists of edge indices."""
    inner = [n for n in range(frm + 1, to)]
    for r in range(len(inner) + 1):
        for mids in itertools.combinations(inner, r):
            nodes = (frm,) + mids + (to,)
            yield [NB201_EDGES.index((b, a)) for a, b in zip(nodes, nodes[1:])]


PATHS = {j: list(_paths(j)) for j in (1, 2, 3)}


def nb201_cell_mods(ops, C, side, only=None) -> List[Mod]:
    """The modules of one cell (edges in `only`, or all non-none edges), plus node additions."""
    mods = []
    incoming = {1: 0, 2: 0, 3: 0}
    for e, op in enumerate(ops):
        if op == "none" or (only is not None and e not in only):
            continue
        incoming[NB201_EDGES[e][0]] += 1
        if op == "nor_conv_3x3":
            mods += [conv(C, C, 3, side), bn(C)]
        elif op == "nor_conv_1x1":
            mods += [conv(C, C, 1, side), bn(C)]
        elif op == "avg_pool_3x3":
            mods += [pool(C, side)]
    for node, k in incoming.items():
        mods += [add(C, side)] * max(0, k - 1)
    return mods


def nb201_network(ops, res: int, only=None) -> List[tuple]:
    """(multiplicity, module) pairs of TinyNetwork; each stage repeats one cell five times."""
    mods = [(1, conv(3, 16, 3, res)), (1, bn(16))]
    side = res
    for stage, C in enumerate((16, 32, 64)):
        mods += [(5, m) for m in nb201_cell_mods(ops, C, side, only)]
        if stage < 2:  # ResNet basic block, stride 2
            cout, side = 2 * C, side // 2
            block = [conv(C, cout, 3, side, 2), bn(cout), conv(cout, cout, 3, side), bn(cout)]
            block += [pool(C, side), conv(C, cout, 1, side), add(cout, side)]
            mods += [(1, m) for m in block]
    mods += [(1, bn(64)), (1, pool(64, 1)), (1, linear(64, 10))]
    return mods


def wtotal(mods: List[tuple], field: str) -> int:
    return sum(k * getattr(m, field) for k, m in mods)


def _paths_between(a: int, b: int) -> List[List[int]]:
    """Every path of edges (indices into NB201_EDGES) from node a to node b."""
    if a == b:
        return [[]]
    return [[e] + rest for e, (to, frm) in enumerate(NB201_EDGES) if frm == a and to <= b
            for rest in _paths_between(to, b)]


def nb201_encode(s: str) -> np.ndarray:
    ops = nb201_parse(s)
    f: Dict[str, float] = {}
    for e, op in enumerate(ops):
        for o in NB201_OPS:
            f[f"edge{e}:{o}"] = float(op == o)
    for o in NB201_OPS:
        f[f"count:{o}"] = ops.count(o)
    nonzero = lambda path: all(ops[e] != "none" for e in path)  # noqa: E731
    good_paths = [p for p in PATHS[3] if nonzero(p)]
    live = {e for p in good_paths for e in p}
    reachable_nodes = {0} | {j for j in (1, 2, 3) if any(nonzero(p) for p in PATHS[j])}
    f["cell_connected"] = float(bool(good_paths))
    f["ops_nonzero"] = sum(op != "none" for op in ops)
    f["ops_reachable"] = sum(op != "none" and NB201_EDGES[e][1] in reachable_nodes for e, op in enumerate(ops))
    f["ops_live"] = len(live)
    for o in NB201_OPS[1:]:
        f[f"live:{o}"] = sum(ops[e] == o for e in live)
    is_conv = lambda e: ops[e] in ("nor_conv_1x1", "nor_conv_3x3")  # noqa: E731
    is_compute = lambda e: is_conv(e) or ops[e] == "avg_pool_3x3"  # noqa: E731
    f["longest_path_convs"] = max((sum(map(is_conv, p)) for p in good_paths), default=0)
    f["longest_path_ops"] = max((sum(map(is_compute, p)) for p in good_paths), default=0)
    cell = nb201_cell_mods(ops, 1, 1)
    f["adds"] = sum(m.kind == "add" for m in cell)
    net32 = nb201_network(ops, 32)
    f["flops_32"] = mega(wtotal(net32, "macs"))
    f["flops_live_32"] = mega(wtotal(nb201_network(ops, 32, only=live), "macs"))
    f["flops_224"] = mega(wtotal(nb201_network(ops, 224), "macs"))
    f["params"] = mega(wtotal(net32, "params"))
    f["act_32"] = mega(wtotal(net32, "act"))
    for e, op in enumerate(ops):
        for o in NB201_OPS[1:]:
            f[f"live_edge{e}:{o}"] = float(e in live and op == o)
    # executed: a non-none edge whose destination node reaches node 3 along non-none edges
    coreach = {3} | {j for j in (1, 2) if any(nonzero(p) for p in _paths_between(j, 3))}
    for e, op in enumerate(ops):
        for o in NB201_OPS[1:]:
            f[f"exec_edge{e}:{o}"] = float(op == o and NB201_EDGES[e][0] in coreach)
    # pools computed twice on one tensor: executed avg_pool_3x3 edges grouped by their source node
    pools = [NB201_EDGES[e][1] for e, op in enumerate(ops) if op == "avg_pool_3x3" and NB201_EDGES[e][0] in coreach]
    f["shared_avg_pools"] = float(len(pools) - len(set(pools)))
    # additions: an executed node input beyond the first is one binary addition
    into = [NB201_EDGES[e][0] for e, op in enumerate(ops) if op != "none" and NB201_EDGES[e][0] in coreach]
    f["exec_adds"] = float(sum(into.count(j) - 1 for j in set(into)))
    # the same pools grouped by tensor: a node whose executed inputs are one skip_connect passes
    # its source's tensor on (resolved recursively)
    def tensor(j):
        ins = [e for e, op in enumerate(ops) if NB201_EDGES[e][0] == j and op != "none"]
        if j in (1, 2) and j in coreach and len(ins) == 1 and ops[ins[0]] == "skip_connect":
            return tensor(NB201_EDGES[ins[0]][1])
        return j
    on = [tensor(j) for j in pools]
    f["tensor_shared_avg_pools"] = float(len(on) - len(set(on)))
    return np.array([f[n] for n in nb201_feature_names()], dtype=np.float32)


# --- FBNet ----------------------------------------------------------------------------------------

FBNET_OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
FBNET_VERSION = 1
# HW-NAS-Bench FBNet_Infer, ImageNet setting
FBNET_LAYERS = (1, 4, 4, 4, 4, 4, 1)
FBNET_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
FBNET_STRIDES = (1, 2, 2, 2, 1, 2, 1)


def fbnet_feature_names() -> List[str]:
    names = [f"layer{i}:{op}" for i in range(22) for op in FBNET_OPS]
    names += [f"count:{op}" for op in FBNET_OPS]
    names += ["flops_224", "flops_dw_224", "params", "act_224", "expansion_sum", "kernel5_count",
              "group2_count", "residual_count", "skips_projecting", "depth"]
    names += [f"stage{s}:{w}" for w in ("flops_224", "skips", "expansion") for s in range(7)]
    return names


def fbnet_parse(s: str) -> List[str]:
    ops = s.split("|")
    if len(ops) != 22 or any(op not in FBNET_OPS for op in ops):
        raise ValueError(s)
    return ops


@functools.lru_cache(maxsize=None)
def fbnet_block(op: str, cin: int, cout: int, stride: int, side: int) -> tuple:
    side_out = side // stride
    if op == "skip":  # HW-NAS-Bench Skip: identity, or conv1x1(stride) + BN + ReLU
        if stride == 1 and cin == cout:
            return (Mod("identity"),)
        return (conv(cin, cout, 1, side_out, stride), bn(cout))
    k, e = int(op[1]), int(op.split("_")[1][1:])
    g = 2 if op.endswith("_g2") else 1
    mid = cin * e
    mods = [conv(cin, mid, 1, side, 1, g), bn(mid)]
    if g > 1:
        mods.append(Mod("shuffle", act=mid * side * side))
    mods += [conv(mid, mid, k, side_out, stride, groups=mid), bn(mid), conv(mid, cout, 1, side_out, 1, g), bn(cout)]
    if stride == 1 and cin == cout:
        mods.append(add(cout, side_out))
    return tuple(mods)


def fbnet_encode(s: str) -> np.ndarray:
    ops = fbnet_parse(s)
    f: Dict[str, float] = {}
    for i, op in enumerate(ops):
        for o in FBNET_OPS:
            f[f"layer{i}:{o}"] = float(op == o)
    for o in FBNET_OPS:
        f[f"count:{o}"] = ops.count(o)
    side = 112
    net = [conv(3, 16, 3, side, 2), bn(16)]
    cin, i = 16, 0
    stage_macs, stage_skips, stage_exp = [0] * 7, [0] * 7, [0] * 7
    residual = projecting = depth = 0
    for s, (n, cout, stride0) in enumerate(zip(FBNET_LAYERS, FBNET_CHANNELS, FBNET_STRIDES)):
        for j in range(n):
            stride = stride0 if j == 0 else 1
            op = ops[i]
            block = fbnet_block(op, cin, cout, stride, side)
            net += list(block)
            stage_macs[s] += total(block, "macs")
            if op == "skip":
                stage_skips[s] += 1
                projecting += block[0].kind == "conv"
            else:
                stage_exp[s] += int(op.split("_")[1][1:])
            residual += any(m.kind == "add" for m in block)
            depth += block[0].kind != "identity"
            side //= stride
            cin = cout
            i += 1
    net += [conv(352, 1984, 1, side), bn(1984), pool(1984, 1), linear(1984, 1000)]
    f["flops_224"] = mega(total(net, "macs"))
    f["flops_dw_224"] = mega(total(net, "dw_macs"))
    f["params"] = mega(total(net, "params"))
    f["act_224"] = mega(total(net, "act"))
    f["expansion_sum"] = sum(stage_exp)
    f["kernel5_count"] = sum(op.startswith("k5") for op in ops)
    f["group2_count"] = sum(op.endswith("_g2") for op in ops)
    f["residual_count"] = residual
    f["skips_projecting"] = projecting
    f["depth"] = depth
    for s in range(7):
        f[f"stage{s}:flops_224"] = mega(stage_macs[s])
        f[f"stage{s}:skips"] = stage_skips[s]
        f[f"stage{s}:expansion"] = stage_exp[s]
    return np.array([f[n] for n in fbnet_feature_names()], dtype=np.float32)


ENCODERS = {"nb201": (nb201_feature_names, nb201_encode, NB201_VERSION),
            "fbnet": (fbnet_feature_names, fbnet_encode, FBNET_VERSION)}


def encode(space: str, archs) -> np.ndarray:
    fn = ENCODERS[space][1]
    return np.stack([fn(a) for a in archs]) if len(archs) else np.zeros((0, len(ENCODERS[space][0]())), np.float32)

"""A small numpy architecture encoder, used by the evaluation harness when the C++-backed
``maple_edge_lite.encode`` is not available. Same interface: ``encode(space, archs)`` ->
float32 [n, d] and ``feature_names(space)`` -> list of d names.

NAS-Bench-201 (36 features): one-hot of the 6 cell edges x 5 ops, the count of each op in the
cell, and ``flops_32``: the network's multiply-accumulates in millions at 32x32 input (CIFAR
macro skeleton: stem, 3 stages of 5 cells at 16/32/64 channels, two residual reduction blocks,
classifier), convolutions and the classifier only - the NAS-Bench-201 "flops" convention (7.78 M
for a cell without convolutions, 220.11 M for six 3x3 convolutions). Every edge is counted whether
or not it reaches the cell output, as the network computes it.

FBNet (207 features): one-hot of the 22 layers x 9 block types, and the count of each type.
No FLOPs estimate (the harness's FLOPs baseline then uses its count-based proxy).
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

from .._errors import InputError

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# Edge order of the official arch string |a~0|+|b~0|c~1|+|d~0|e~1|f~2|: (to, from).
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
FBNET_OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
FBNET_LAYERS = 22

# MACs of one cell op, per stage (H*W*C*C is 2**18 in all three stages: 32x32x16, 16x16x32, 8x8x64).
_HWCC = 32 * 32 * 16 * 16
_NB201_OP_MACS = {
    "none": 0.0,
    "skip_connect": 0.0,
    "nor_conv_1x1": float(_HWCC),
    "nor_conv_3x3": 9.0 * _HWCC,
    "avg_pool_3x3": 0.0,  # no multiply-accumulates (NAS-Bench-201 counts none for pooling)
}
_NB201_FIXED_MACS = (
    32 * 32 * 3 * 16 * 9  # stem 3x3 conv
    + (16 * 16 * 16 * 32 * 9 + 16 * 16 * 32 * 32 * 9 + 16 * 16 * 16 * 32)  # reduction 1: conv_a, conv_b, 1x1 shortcut
    + (8 * 8 * 32 * 64 * 9 + 8 * 8 * 64 * 64 * 9 + 8 * 8 * 32 * 64)  # reduction 2
    + 64 * 10  # classifier
)


def feature_names(space: str) -> List[str]:
    if space == "nb201":
        names = [f"edge{t}<-{f}:{op}" for (t, f) in NB201_EDGES for op in NB201_OPS]
        return names + [f"count:{op}" for op in NB201_OPS] + ["flops_32"]
    if space == "fbnet":
        names = [f"layer{i}:{op}" for i in range(FBNET_LAYERS) for op in FBNET_OPS]
        return names + [f"count:{op}" for op in FBNET_OPS]
    raise InputError(f"unknown search space {space!r}; known: nb201, fbnet")


def _nb201_ops(arch: str) -> List[str]:
    nodes = arch.strip().split("+")
    ops = []
    for t, node in enumerate(nodes, start=1):
        parts = [p for p in node.strip().strip("|").split("|") if p]
        if len(parts) != t:
            raise InputError(f"not a NAS-Bench-201 arch string: {arch!r} (node {t} has {len(parts)} inputs)")
        for f, p in enumerate(parts):
            op, _, src = p.partition("~")
            if op not in NB201_OPS or src != str(f):
                raise InputError(f"not a NAS-Bench-201 arch string: {arch!r} (bad edge {p!r})")
            ops.append(op)
    if len(nodes) != 3:
        raise InputError(f"not a NAS-Bench-201 arch string: {arch!r} (expected 3 nodes)")
    return ops


def nb201_flops(ops: Sequence[str]) -> float:
    """Millions of multiply-accumulates of the NAS-Bench-201 CIFAR network with these 6 edge ops."""
    macs = float(_NB201_FIXED_MACS)
    for op in ops:
        macs += 15 * _NB201_OP_MACS[op]
    return macs / 1e6


def encode(space: str, archs: Sequence[str]) -> np.ndarray:
    """float32 [len(archs), d] features; column order as ``feature_names(space)``."""
    archs = list(archs)
    if space == "nb201":
        n_ops = len(NB201_OPS)
        col = {op: i for i, op in enumerate(NB201_OPS)}
        out = np.zeros((len(archs), 6 * n_ops + n_ops + 1), dtype=np.float32)
        cache = {}
        for r, a in enumerate(archs):
            row = cache.get(a)
            if row is None:
                ops = _nb201_ops(a)
                row = np.zeros(out.shape[1], dtype=np.float32)
                for e, op in enumerate(ops):
                    row[e * n_ops + col[op]] = 1.0
                    row[6 * n_ops + col[op]] += 1.0
                row[-1] = nb201_flops(ops)
                cache[a] = row
            out[r] = row
        return out
    if space == "fbnet":
        n_ops = len(FBNET_OPS)
        col = {op: i for i, op in enumerate(FBNET_OPS)}
        out = np.zeros((len(archs), FBNET_LAYERS * n_ops + n_ops), dtype=np.float32)
        for r, a in enumerate(archs):
            ops = a.strip().split("|")
            if len(ops) != FBNET_LAYERS or any(op not in col for op in ops):
                raise InputError(f"not an FBNet arch ({FBNET_LAYERS} block names joined by '|'): {a!r}")
            for i, op in enumerate(ops):
                out[r, i * n_ops + col[op]] = 1.0
                out[r, FBNET_LAYERS * n_ops + col[op]] += 1.0
        return out
    raise InputError(f"unknown search space {space!r}; known: nb201, fbnet")

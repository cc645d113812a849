"""Helpers shared by the tests (import with `from _util import ...`)."""

from __future__ import annotations

import os

import numpy as np

import maple_edge_lite as mel


def random_layers(dims, seed=0, bias_scale=0.1):
    """He-initialised float MLP with the given widths, e.g. [64, 256, 256, 1]."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((o, i)) * np.sqrt(2.0 / i), rng.standard_normal(o) * bias_scale)
        for i, o in zip(dims[:-1], dims[1:])
    ]


def feature_names(d):
    return [f"f{i}" for i in range(d)]


def kernels_here():
    """Every int8 kernel this build has and this CPU runs."""
    return [k for k in ("scalar", "avx2", "avx512vnni", "neon") if mel._core.kernel_available(k)]


OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def nb201_string(ops):
    e = [f"{OPS[o]}~{j}" for o, j in zip(ops, (0, 0, 1, 0, 1, 2))]
    return f"|{e[0]}|+|{e[1]}|{e[2]}|+|{e[3]}|{e[4]}|{e[5]}|"


def write_table(folder, n_archs=400, n_devices=6, seed=0):
    """A small table in the shared format: devices whose latency is additive in the edge ops."""
    import gzip

    from maple_edge_lite import encode as enc

    rng = np.random.default_rng(seed)
    archs = sorted({nb201_string(rng.integers(0, 5, 6)) for _ in range(n_archs)})
    X = enc.encode("nb201", archs)
    names = enc.feature_names("nb201")
    cols = [i for i, n in enumerate(names) if n.startswith(("edge", "live_edge"))]
    base = rng.random(len(cols)) + 0.1
    lat = {}
    for d in range(n_devices + 1):
        c = base * rng.uniform(0.8, 1.2, len(cols)) * rng.uniform(1, 20)
        lat[f"dev{d}"] = 0.5 + X[:, cols] @ c
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "nb201_latency.csv.gz", "wt") as f:
        f.write("nb201_index,arch_str,device,latency_ms\n")
        for d in range(n_devices):
            for i, a in enumerate(archs):
                f.write(f"{i},{a},dev{d},{lat[f'dev{d}'][i]:.6f}\n")
    return archs, lat[f"dev{n_devices}"]


def counter_fds():
    """The open file descriptors the counters code could leak, by target: perf_event fds and files
    under /proc and /sys (perf_event_paranoid, the PMUs' sysfs), after a garbage collection. Not
    every fd of the process: on CI the total moved by 4 in either direction during a CLI case (pipes
    or files of earlier tests, opened or closed meanwhile by no code under test)."""
    import gc

    gc.collect()
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own fd, closed by now
            continue
        if target.startswith(("/proc", "/sys")) or "perf_event" in target:
            out.append(target)
    return sorted(out)


def count_params(onnx_mod, model, convention):
    """Parameters of a loaded ONNX model: float tensors feeding Conv, Gemm and (scale, shift only)
    BatchNormalization nodes; ``no_batchnorm`` leaves the batch norms out (test_zoo, test_yolov8)."""
    inits = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer
             if t.data_type == onnx_mod.TensorProto.FLOAT}
    total = 0
    for n in model.graph.node:
        if n.op_type in ("Conv", "Gemm"):
            total += sum(inits[i] for i in n.input[1:] if i)
        elif n.op_type == "BatchNormalization" and convention == "trainable":
            total += inits[n.input[1]] + inits[n.input[2]]
    return total

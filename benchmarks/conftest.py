"""Shared set-up of the speed benchmarks (see benchmarks/README.md).

Everything runs on one core: the BLAS/OpenMP thread counts are forced to 1 here, before numpy is
imported, and the process pins itself to one CPU (the last it may run on, or $MEL_BENCH_CPU).

The model and its float twin come from here too, so benchmarks/run.py (which packs the model for
the C++ harness) and the pytest suite use the same one."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import THREAD_VARS as _THREAD_VARS  # noqa: E402  (stdlib only: numpy is not imported yet)
# Remember whether numpy was imported before this file could set the thread counts (then
# OpenBLAS may already have started its threads; benchmarks/run.py sets them in the
# environment, so this only happens when pytest is run by hand with a plugin that imports numpy).
NUMPY_PREIMPORTED = "numpy" in sys.modules
for _v in _THREAD_VARS:
    os.environ[_v] = "1"

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

DIMS = (64, 256, 256, 1)
SEED = 0
MACS_PER_ROW = sum(i * o for i, o in zip(DIMS[:-1], DIMS[1:]))  # 64*256 + 256*256 + 256 = 82,176
BATCH_ROWS = 15_625  # the size of the NAS-Bench-201 search space
KERNELS = ("scalar", "avx2", "avx512vnni", "neon")
ONNX_OPSET = 13
ONNX_IR_VERSION = 7  # old enough for every onnxruntime >= 1.16


# --- the model ------------------------------------------------------------------------------
def float_layers(dims=DIMS, seed=SEED, bias_scale=0.1):
    """He-initialised float MLP, (W[out, in], b[out]) float64 pairs; the same generator as
    tests/conftest.py:random_layers."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((o, i)) * np.sqrt(2.0 / i), rng.standard_normal(o) * bias_scale)
        for i, o in zip(dims[:-1], dims[1:])
    ]


def feature_names(d=DIMS[0]):
    return [f"f{i}" for i in range(d)]


def pack_model(path, layers=None):
    """Write the benchmark model as a .melw file; returns the QuantizedMLP (numpy reference)."""
    import maple_edge_lite as mel

    layers = float_layers() if layers is None else layers
    return mel.pack(
        layers,
        path,
        feature_names=feature_names(layers[0][0].shape[1]),
        output="exp",
        metadata={"search_space": "nb201", "provenance": {"benchmark": "random He-init MLP", "seed": SEED}},
    )


def inputs(n, d=DIMS[0], seed=1):
    """Raw features, N(0, 1) (the model's normalisation is the identity), float32 C-contiguous."""
    return np.ascontiguousarray(np.random.default_rng(seed).standard_normal((n, d)), dtype=np.float32)


class NumpyMLP:
    """The numpy float reference: x @ W.T + b, ReLU between layers, exp at the end, float32.
    W.T is stored contiguous so each layer is one plain sgemm/sgemv."""

    def __init__(self, layers):
        self.wt = [np.ascontiguousarray(w.T, dtype=np.float32) for w, _ in layers]
        self.b = [np.asarray(b, dtype=np.float32) for _, b in layers]

    def __call__(self, x):
        h = x
        last = len(self.wt) - 1
        for i, (wt, b) in enumerate(zip(self.wt, self.b)):
            h = h @ wt
            h += b
            if i < last:
                np.maximum(h, 0, out=h)
        return np.exp(h[:, 0])


def export_onnx(path, layers=None):
    """The same float MLP as an ONNX graph (MatMul/Add/Relu/Exp, float32, input x [n, 64],
    output y [n, 1]). Needs the `onnx` package."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = float_layers() if layers is None else layers
    nodes, inits = [], []
    cur = "x"
    for i, (w, b) in enumerate(layers):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T, dtype=np.float32), f"W{i}"))
        inits.append(numpy_helper.from_array(np.asarray(b, dtype=np.float32), f"b{i}"))
        nodes.append(helper.make_node("MatMul", [cur, f"W{i}"], [f"mm{i}"]))
        nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}"]))
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [f"z{i}"], [f"h{i}"]))
            cur = f"h{i}"
        else:
            nodes.append(helper.make_node("Exp", [f"z{i}"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", layers[0][0].shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", layers[-1][0].shape[0]])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="maple_edge_lite benchmarks"
    )
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, os.fspath(path))
    return path


def ort_session(path):
    """onnxruntime session as a user would set it up for one core: CPU provider, one intra-op
    and one inter-op thread, sequential execution, all graph optimisations."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(os.fspath(path), sess_options=so, providers=["CPUExecutionProvider"])


# --- pinning --------------------------------------------------------------------------------
def bench_cpu():
    """The CPU to pin to: $MEL_BENCH_CPU, else the last CPU this process may run on."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    env = os.environ.get("MEL_BENCH_CPU")
    if env not in (None, ""):
        return None if int(env) < 0 else int(env)
    return max(os.sched_getaffinity(0))


def pin():
    cpu = bench_cpu()
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return None
    return cpu


# --- pytest hooks and fixtures --------------------------------------------------------------
_NOTES = pytest.StashKey[list]()


def pytest_configure(config):
    import maple_edge_lite as mel

    pkg = Path(mel.__file__).resolve().parent
    if pkg == REPO / "maple_edge_lite":
        raise pytest.UsageError(
            "the benchmarks imported the source folder, not the installed package: "
            "run `pip install '.[bench]'` and run pytest from another directory, or use benchmarks/run.py"
        )
    config.stash[_NOTES] = []
    config._mel_bench_cpu = pin()


@pytest.fixture(scope="session")
def bench_env(pytestconfig):
    """What every benchmark records: CPU pinned to, thread settings, versions."""
    import maple_edge_lite as mel

    return {
        "cpu": getattr(pytestconfig, "_mel_bench_cpu", None),
        "numpy_preimported": NUMPY_PREIMPORTED,
        "numpy": np.__version__,
        "maple_edge_lite": mel.__version__,
        "default_kernel": mel._core.kernel_name(),
    }


@pytest.fixture
def note(pytestconfig, bench_env):
    """note(benchmark, **extra): record extra_info on the benchmark and echo it in the terminal
    summary (pytest-benchmark's own table does not show extra_info)."""

    def add(benchmark, **extra):
        benchmark.extra_info.update(bench_env)
        benchmark.extra_info.update(extra)
        pytestconfig.stash[_NOTES].append((benchmark.name, dict(extra)))

    return add


def pytest_terminal_summary(terminalreporter, config):
    table = getattr(config, "_mel_bindings_table", None)  # benchmarks/bench_bindings.py
    if table:
        terminalreporter.section("bindings: median ns per call (benchmarks/bench_bindings.py)")
        terminalreporter.write_line(table)
    notes = config.stash.get(_NOTES, [])
    if not notes:
        return
    tr = terminalreporter
    tr.section("maple_edge_lite benchmark notes (also in extra_info)")
    for name, extra in notes:
        tr.write_line(f"{name}:")
        for k, v in extra.items():
            if isinstance(v, float):
                v = f"{v:.4g}"
            tr.write_line(f"    {k}: {v}")



def pytest_collection_modifyitems(config, items):
    """pyproject.toml disables pytest-benchmark for the test suite; a disabled benchmark has no
    timings to report, so say how to run the benchmarks instead of failing on missing stats."""
    if config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False):
        skip = pytest.mark.skip(reason="benchmarks are disabled: run `python benchmarks/run.py` or pytest with --benchmark-enable")
        for item in items:
            item.add_marker(skip)

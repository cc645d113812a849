"""Speed of the predictor core next to what a user would pick instead (benchmarks/README.md).

Groups (pytest-benchmark compares the members of a group side by side):

* ``single``: one row, [1, 64] float32;
* ``batch``:  15,625 rows (the NAS-Bench-201 space) in one call;
* ``load``:   loading the weights file / creating the ONNX Runtime session (file sizes in
  extra_info);
* ``import``: a fresh interpreter importing maple_edge_lite / numpy / onnxruntime (and nothing).

Members of ``single`` and ``batch``: ``Model.predict`` (default kernel); ``kernel=<name>``: the
same model with each int8 kernel this build has and this CPU runs forced; ``numpy-float32``:
the float MLP the int8 model was quantized from, in numpy; ``onnxruntime``: that float MLP as an
ONNX graph in ONNX Runtime (CPU provider, one thread, all graph optimisations).

Run with benchmarks/run.py, or by hand from outside the checkout:
``pytest /path/to/benchmarks --benchmark-enable --benchmark-only``. Nothing here asserts a speed:
the targets are reported by run.py. The asserts only check that every contender computes the
same model (a fast wrong answer is not a result)."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest

import maple_edge_lite as mel

# benchmarks/conftest.py, imported by pytest before this module (importlib mode: not importable
# by name, so fetch it from sys.modules).
_HERE = os.path.dirname(os.path.abspath(__file__))
_conftest = next(
    m
    for m in list(sys.modules.values())
    if os.path.abspath(getattr(m, "__file__", None) or "") == os.path.join(_HERE, "conftest.py")
)
DIMS = _conftest.DIMS
MACS_PER_ROW = _conftest.MACS_PER_ROW
BATCH_ROWS = _conftest.BATCH_ROWS
KERNELS = _conftest.KERNELS

HAVE_ONNX = importlib.util.find_spec("onnx") is not None
HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None
ORT_SKIP = (
    None
    if HAVE_ONNX and HAVE_ORT
    else "onnx and onnxruntime are needed for this comparison: pip install '.[bench]'"
)
# Seconds of timing per batch benchmark (rounds = budget / time of one call, within 5..30).
BATCH_BUDGET_S = float(os.environ.get("MEL_BENCH_BATCH_BUDGET", "1.5"))
IMPORT_ROUNDS = int(os.environ.get("MEL_BENCH_IMPORT_ROUNDS", "9"))

IMPLS = ["Model.predict"] + [f"kernel={k}" for k in KERNELS] + ["numpy-float32", "onnxruntime"]


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench_model")
    melw = d / "mlp_64_256_256_1.melw"
    q = _conftest.pack_model(melw)
    onnx_path = None
    if HAVE_ONNX:
        onnx_path = _conftest.export_onnx(d / "mlp_64_256_256_1.onnx")
    return {"melw": melw, "onnx": onnx_path, "qref": q}


@pytest.fixture(scope="module")
def model(files):
    return mel.Model.load(files["melw"])


@pytest.fixture(scope="module")
def ort_sess(files):
    if ORT_SKIP:
        pytest.skip(ORT_SKIP)
    return _conftest.ort_session(files["onnx"])


@pytest.fixture(scope="module")
def data():
    return {"single": _conftest.inputs(1), "batch": _conftest.inputs(BATCH_ROWS)}


def _predictor(impl, request, files):
    """(callable taking x, extra_info) for one contender; skips if it is not available here."""
    if impl == "Model.predict":
        m = request.getfixturevalue("model")
        return m.predict, {"kernel": mel._core.kernel_name(), "precision": "int8"}
    if impl.startswith("kernel="):
        k = impl.split("=", 1)[1]
        if not mel._core.kernel_available(k):
            pytest.skip(f"kernel {k!r} is not in this build or not supported by this CPU")
        core = request.getfixturevalue("model")._m
        return (lambda x: core.predict(x, kernel=k)), {"kernel": k, "precision": "int8"}
    if impl == "numpy-float32":
        return _conftest.NumpyMLP(_conftest.float_layers()), {"kernel": "numpy matmul", "precision": "float32"}
    if impl == "onnxruntime":
        import onnxruntime as ort

        sess = request.getfixturevalue("ort_sess")

        def run(x):
            return sess.run(["y"], {"x": x})[0]

        return run, {"kernel": "onnxruntime " + ort.__version__, "precision": "float32"}
    raise AssertionError(impl)


def _check_same_model(impl, fn, x, files):
    """int8 contenders must give the numpy reference bit for bit; float ones the float MLP.
    Returns the largest relative deviation from the float MLP (the quantisation error)."""
    y = np.asarray(fn(x), dtype=np.float32).reshape(-1)
    ref_float = _conftest.NumpyMLP(_conftest.float_layers())(x).astype(np.float64)
    if impl in ("numpy-float32", "onnxruntime"):
        np.testing.assert_allclose(y, ref_float, rtol=1e-4, err_msg=f"{impl} does not compute the float MLP")
    else:
        np.testing.assert_array_equal(y, files["qref"].predict(x), err_msg=f"{impl} differs from the int8 reference")
    return float(np.max(np.abs(y - ref_float) / np.abs(ref_float)))


# --- single row and batch ---------------------------------------------------------------------
@pytest.mark.benchmark(group="single")
@pytest.mark.parametrize("impl", IMPLS)
def test_single(benchmark, impl, request, files, data, note):
    fn, info = _predictor(impl, request, files)
    x = data["single"]
    rel = _check_same_model(impl, fn, data["batch"][:256], files)
    benchmark(fn, x)
    med = benchmark.stats.stats.median
    note(
        benchmark,
        impl=impl,
        rows=1,
        macs_per_row=MACS_PER_ROW,
        median_us=med * 1e6,
        max_rel_err_vs_float=rel,
        **info,
    )


@pytest.mark.benchmark(group="batch")
@pytest.mark.parametrize("impl", IMPLS)
def test_batch(benchmark, impl, request, files, data, note):
    fn, info = _predictor(impl, request, files)
    x = data["batch"]
    _check_same_model(impl, fn, x[:1024], files)
    t0 = time.perf_counter()
    fn(x)
    one = time.perf_counter() - t0
    rounds = int(min(30, max(5, BATCH_BUDGET_S / max(one, 1e-6))))
    benchmark.pedantic(fn, args=(x,), rounds=rounds, iterations=1, warmup_rounds=1)
    med = benchmark.stats.stats.median
    note(
        benchmark,
        impl=impl,
        rows=BATCH_ROWS,
        macs_per_row=MACS_PER_ROW,
        median_ms=med * 1e3,
        rows_per_s=BATCH_ROWS / med,
        gmacs=BATCH_ROWS * MACS_PER_ROW / med / 1e9,
        **info,
    )


# --- load time and file size ------------------------------------------------------------------
@pytest.mark.benchmark(group="load")
@pytest.mark.parametrize("impl", ["Model.load", "onnxruntime"])
def test_load(benchmark, impl, files, note):
    if impl == "Model.load":
        path = files["melw"]
        benchmark(mel.Model.load, path)
        fmt = "melw int8"
    else:
        if ORT_SKIP:
            pytest.skip(ORT_SKIP)
        path = files["onnx"]
        benchmark(_conftest.ort_session, path)
        fmt = "onnx float32"
    size = os.path.getsize(path)
    note(
        benchmark,
        impl=impl,
        format=fmt,
        file_bytes=size,
        file_kib=size / 1024,
        median_ms=benchmark.stats.stats.median * 1e3,
    )


# --- import time ------------------------------------------------------------------------------
IMPORTS = {
    "python": "pass",
    "numpy": "import numpy",
    "maple_edge_lite": "import maple_edge_lite",
    "onnxruntime": "import onnxruntime",
}

_PROBE = r"""
import json, os, sys, sysconfig
before = set(sys.modules)
import numpy
with_numpy = set(sys.modules)
import maple_edge_lite
after = set(sys.modules)
stdlib_names = getattr(sys, "stdlib_module_names", None)
stdlib_dirs = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}

def is_stdlib(name):
    top = name.split(".")[0]
    if stdlib_names is not None:
        return top in stdlib_names
    mod = sys.modules.get(name)
    f = getattr(mod, "__file__", None)
    if f is None:
        return True  # built-in
    f = os.path.realpath(f)
    return any(f.startswith(d + os.sep) for d in stdlib_dirs) and "site-packages" not in f

def outside(name):
    top = name.split(".")[0]
    if name == "cython_runtime" or name.startswith("_cython_"):
        return False  # made in memory by maple_edge_lite._cycore (Cython's shared types)
    return top not in ("maple_edge_lite", "numpy") and not is_stdlib(name)

print(json.dumps({
    "numpy_loaded_by_mel": "numpy" in after,
    "beyond_numpy_and_stdlib": sorted(n for n in after - before if outside(n)),
    "stdlib_beyond_numpy": sorted({n.split(".")[0] for n in after - with_numpy if is_stdlib(n)}),
    "mel_modules": sorted(n for n in after if n.split(".")[0] == "maple_edge_lite"),
}))
"""


def _clean_env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _importtime_ms(cwd, runs=7):
    """``-X importtime`` cumulative times over `runs` fresh interpreters: lists of ms for
    maple_edge_lite (including numpy) and numpy."""
    mel_t, np_t = [], []
    for _ in range(runs):
        r = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import maple_edge_lite"],
            cwd=cwd,
            env=_clean_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        cum = {}
        for line in r.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            parts = line[len("import time:") :].split("|")
            try:
                cum.setdefault(parts[2].strip(), int(parts[1]))
            except ValueError:
                continue  # the header line
        mel_t.append(cum.get("maple_edge_lite", 0) / 1e3)
        np_t.append(cum.get("numpy", 0) / 1e3)
    return mel_t, np_t


@pytest.mark.benchmark(group="import")
@pytest.mark.parametrize("what", list(IMPORTS))
def test_import(benchmark, what, tmp_path, note):
    if what == "onnxruntime" and not HAVE_ORT:
        pytest.skip("onnxruntime is not installed: pip install '.[bench]'")
    cmd = [sys.executable, "-c", IMPORTS[what]]
    # Run from an empty directory: `python -c` puts the working directory first on sys.path,
    # and the checkout's maple_edge_lite/ folder must not shadow the installed package.
    kw = dict(cwd=tmp_path, env=_clean_env(), check=True, stdout=subprocess.DEVNULL)
    benchmark.pedantic(subprocess.run, args=(cmd,), kwargs=kw, rounds=IMPORT_ROUNDS, iterations=1, warmup_rounds=1)
    extra = {"impl": what, "command": " ".join(["python", "-c", repr(IMPORTS[what])])}
    extra["median_ms"] = benchmark.stats.stats.median * 1e3
    if what == "maple_edge_lite":
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, check=True
        )
        extra.update(json.loads(probe.stdout))
        mel_t, np_t = _importtime_ms(tmp_path)
        extra["importtime_cumulative_ms"] = statistics.median(mel_t)
        extra["importtime_cumulative_min_ms"] = min(mel_t)
        extra["importtime_numpy_ms"] = statistics.median(np_t)
        extra["importtime_excluding_numpy_ms"] = statistics.median(m - n for m, n in zip(mel_t, np_t))
    note(benchmark, **extra)

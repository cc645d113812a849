"""pybind11 against Cython on the two calls a scheduler makes per inference, with the C API
beside them (issue 13, item 6; measurements and decision in docs/bindings.md). From the checkout:

    pytest benchmarks/bench_bindings.py --benchmark-enable --benchmark-only --benchmark-disable-gc

Groups (pytest-benchmark prints each side by side; a table of median ns per call with the ratio
to the C API ends the run):

* ``counters-window``: ``with c: pass`` on a reusable ``Counters`` of 4 events (hardware ones
  where the machine has a PMU, else 4 software ones): start + stop + read, what the C API's
  ``mel_counters_start/stop/read`` do. ``counters-window+results``: the same plus ``c.results``
  (the ``CounterResult`` objects built).
* ``predict-1row``: ``Model.predict(row)`` for one ``[1, 64]`` float32 row of the benchmark model
  (benchmarks/conftest.py), and ``Model.predict(row, out)`` into a preallocated output.

Contenders, all under the same Python layer (``Counters``, ``Model``) as shipped:

* ``C API``: short loops over the C API (``benchmarks/bindings/_cybench.pyx``), ``C_LOOP`` calls
  timed in C per round, the median over ``C_ROUNDS`` rounds; same process, CPU and pinning as
  the others. This file builds it with CMake (-DMEL_BUILD_CYBENCH=ON) in ``$MEL_BENCH_WORK``
  (default: benchmarks/run.py's work directory).
* ``pybind11``: the window over ``_core._Counters``, predict over ``_core._Model.predict``.
* ``Cython``: ``maple_edge_lite._cycore``, which the package uses.

Nothing here asserts a speed; the asserts check that every contender computes the same thing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.device import counters as C

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import run as runner  # noqa: E402  (work directory and logging of the other benchmarks)

_conftest = next(
    m for m in list(sys.modules.values()) if os.path.abspath(getattr(m, "__file__", None) or "") == str(HERE / "conftest.py")
)

# The package without _cycore (a version before it, e.g. to measure "before"): its pybind11 paths
# as shipped, and no Cython contender.
HAVE_CYCORE = importlib.util.find_spec("maple_edge_lite._cycore") is not None
# The C loops: C_LOOP calls per round (tens of us, like pytest-benchmark's rounds of the Python
# contenders, so a preemption spoils a round, not the median), C_ROUNDS rounds.
C_LOOP = 32
C_ROUNDS = 3000
SOFTWARE_FOUR = ["task-clock", "page-faults", "context-switches", "cpu-migrations"]
HARDWARE_FOUR = ["cpu-cycles", "instructions", "cache-references", "cache-misses"]
IMPLS = ["C API", "pybind11", "Cython"]
_TABLE = []  # (group, impl, ns per call)


def build_cybench(work: Path) -> Path:
    """Configure and build benchmarks/bindings/_cybench.pyx with CMake; returns the build folder."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not on PATH (pip install cmake)")
    try:
        import Cython  # noqa: F401
    except ImportError:
        pytest.skip("Cython is needed to build the Cython side: pip install 'cython>=3'")
    bdir = work / "cybench"
    log = work / "cybench-build.log"
    with open(log, "w") as f:
        for cmd in (
            [cmake, "-S", REPO, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release", "-DMEL_BUILD_PYTHON=OFF",
             "-DMEL_BUILD_CYBENCH=ON", f"-DPython_EXECUTABLE={sys.executable}"],
            [cmake, "--build", bdir, "--target", "_cybench", "-j", str(os.cpu_count() or 1)],
        ):
            r = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT)
            if r.returncode:
                raise RuntimeError(f"building _cybench failed: see {log}")
    return bdir


@pytest.fixture(scope="session")
def cy():
    work = Path(os.environ.get("MEL_BENCH_WORK") or runner.default_workdir())
    work.mkdir(parents=True, exist_ok=True)
    bdir = build_cybench(work)
    sys.path.insert(0, str(bdir))
    try:
        return importlib.import_module("_cybench")
    finally:
        sys.path.remove(str(bdir))


@pytest.fixture(scope="session")
def four():
    """4 events in one group: hardware ones where they count, else software ones."""
    probe = C.Counters(["cpu-cycles"])
    with probe:
        pass
    hw = probe.results["cpu-cycles"].state in ("counted", "scaled")
    probe.close()
    return HARDWARE_FOUR if hw else SOFTWARE_FOUR


def _counters(impl, names):
    c = C.Counters(names)  # the package's: Cython (pybind11 before _cycore)
    if impl == "pybind11" and HAVE_CYCORE:
        c._c.close()
        c._c = mel._core._Counters(list(names), 0)
    return c


def _c_loop(benchmark, fn, *args):
    """Runs C_ROUNDS rounds of a C loop under pytest-benchmark; returns the median of the loops'
    own seconds per C call (each loop times itself in C; pytest-benchmark's stats of this
    contender include a Python call per round)."""
    per = []
    benchmark.pedantic(lambda: per.append(fn(*args)), rounds=C_ROUNDS, iterations=1, warmup_rounds=200)
    per = per[200:]  # the warm-up rounds'
    return sorted(per)[len(per) // 2]


def _record(benchmark, note, group, impl, per_call_s, **extra):
    _TABLE.append((group, impl, per_call_s * 1e9))
    note(benchmark, impl=impl, median_ns=per_call_s * 1e9, **extra)


def _bench_window(benchmark, note, group, impl, cy, names, results):
    if impl == "C API":
        per = _c_loop(benchmark, cy.CCounters(names).windows, C_LOOP)
        _record(benchmark, note, group, impl, per, events=names, calls_per_round=C_LOOP)
        return
    if impl == "Cython" and not HAVE_CYCORE:
        pytest.skip("this maple_edge_lite has no _cycore")
    c = _counters(impl, names)
    with c:
        pass
    assert set(c.results) == set(names) and all(r.state == "counted" for r in c.results.values())

    if results:
        def window():
            with c:
                pass
            return c.results
    else:
        def window():
            with c:
                pass

    benchmark(window)
    c.close()
    _record(benchmark, note, group, impl, benchmark.stats.stats.median, events=names)


@pytest.mark.benchmark(group="counters-window")
@pytest.mark.parametrize("impl", IMPLS)
def test_counters_window(benchmark, note, impl, cy, four):
    _bench_window(benchmark, note, "counters-window", impl, cy, four, results=False)


@pytest.mark.benchmark(group="counters-window+results")
@pytest.mark.parametrize("impl", IMPLS)
def test_counters_window_results(benchmark, note, impl, cy, four):
    _bench_window(benchmark, note, "counters-window+results", impl, cy, four, results=True)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("bindings") / "mlp_64_256_256_1.melw"
    _conftest.pack_model(p)
    return p


@pytest.mark.benchmark(group="predict-1row")
@pytest.mark.parametrize("impl", IMPLS + ["pybind11 out=", "Cython out="])
def test_predict_one_row(benchmark, note, impl, cy, model_path):
    rows = _conftest.inputs(1024)  # the C loop cycles through them, as csrc/tools/bench_predict does
    x = rows[:1].copy()
    kernel = mel._core.kernel_name()
    if impl == "C API":
        cm, start = cy.CModel(str(model_path)), [0]

        def loop():  # each round goes on with the next rows
            start[0] += C_LOOP
            return cm.predict_loop(rows, C_LOOP, start[0])

        per = _c_loop(benchmark, loop)
        _record(benchmark, note, "predict-1row", impl, per, calls_per_round=C_LOOP, kernel=kernel)
        return
    if not HAVE_CYCORE and impl != "pybind11":
        pytest.skip("this maple_edge_lite has no _cycore (nor out=)")
    m = mel.Model.load(model_path)  # the package's: Cython (pybind11 before _cycore)
    ref = m.predict(rows)
    if impl.startswith("pybind11") and HAVE_CYCORE:
        m._predict = m._m.predict
    np.testing.assert_array_equal(m.predict(rows), ref)
    if impl.endswith("out="):
        out = np.empty(1, np.float32)
        assert m.predict(x, out) is out and out[0] == ref[0]
        benchmark(m.predict, x, out)
    else:
        benchmark(m.predict, x)
    _record(benchmark, note, "predict-1row", impl, benchmark.stats.stats.median, kernel=kernel)


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    """After the groups above: the ns-per-call table, printed at the end of the run by
    benchmarks/conftest.py (pytest_terminal_summary)."""
    busy_before = runner.cpu_busy(0.5)
    yield
    if not _TABLE:
        return
    lines = ["| group | contender | median ns per call | vs C API |", "|---|---|---:|---:|"]
    capi = {g: ns for g, i, ns in _TABLE if i == "C API"}
    for g, i, ns in _TABLE:
        base = capi.get(g) or capi.get(g.replace("+results", ""))
        lines.append(f"| {g} | {i} | {ns:,.0f} | {ns / base:.2f}× |" if base else f"| {g} | {i} | {ns:,.0f} | — |")
    busy = runner.cpu_busy(0.5)
    lines.append("")
    lines.append(f"maple_edge_lite {mel.__version__} from {Path(mel.__file__).parent}"
                 + ("" if HAVE_CYCORE else " (no _cycore: its pybind11 paths as shipped)"))
    def load(b):
        return ", ".join(f"cpu{c} {v:.0%}" for c, v in sorted(b.items())) or "unknown"

    lines.append(
        f"pinned to CPU {_conftest.bench_cpu()}; other processes' load (0.5 s of /proc/stat): "
        f"before the run {load(busy_before)}, after it {load(busy)}"
    )
    request.config._mel_bindings_table = "\n".join(lines)

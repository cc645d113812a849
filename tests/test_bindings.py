"""The per-inference calls through maple_edge_lite._cycore (docs/bindings.md): a counters window
whose results are built lazily from a buffer the core fills at stop(), and Model.predict with an
optional output buffer. Oracles: known work (freshly touched pages), the pybind11 binding _core
over the same library, and the numpy reference QuantizedMLP."""

from __future__ import annotations

import gc
import mmap

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite import _core, _cycore

from maple_edge_lite.device import counters as C

needs_counters = pytest.mark.skipif(not hasattr(_core, "_Counters"), reason="counters need Linux perf_event")


def touch(pages):
    """Touch `pages` fresh pages; returns the mapping (close it after the window)."""
    buf = mmap.mmap(-1, pages * mmap.PAGESIZE)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        buf.madvise(mmap.MADV_NOHUGEPAGE)
    for off in range(0, pages * mmap.PAGESIZE, mmap.PAGESIZE):
        buf[off] = 1
    return buf


def page_faults_count():
    r = C.probe(["page-faults"])["page-faults"]
    if r.state != "counted":
        pytest.skip(f"software events do not count here: {r.reason}")


# --- counters: lazy results ------------------------------------------------------------------


@needs_counters
def test_results_are_those_of_the_last_window_and_do_not_change_after():
    page_faults_count()
    c = C.Counters(["page-faults", "task-clock"], inherit=False)
    held = []
    for pages in (2048, 0, 1024, 0):
        with c:
            buf = touch(pages) if pages else None
        if buf is not None:
            buf.close()
        held.append((pages, c.results, c.results["page-faults"].value))
    # Several windows without looking, then the results: the last window's (no pages).
    with c:
        buf = touch(1536)
    buf.close()
    with c:
        pass
    for _ in range(3):
        with c:
            pass
    last = c.results["page-faults"].value
    c.close()
    assert last < 100
    for pages, results, value in held:
        # What a window returned is its own: later windows neither leak into it nor change it.
        assert results["page-faults"].value == value
        if pages:
            assert pages * 0.9 <= value <= pages + 200
        else:
            assert value < 100
    assert len({id(r) for _, r, _ in held}) == len(held)


@needs_counters
def test_results_are_one_object_per_window():
    c = C.Counters(["task-clock"])
    with c:
        pass
    r1 = c.results
    assert c.results is r1  # built once per window
    with c:
        pass
    r2 = c.results
    assert r2 is not r1 and r2["task-clock"] is not r1["task-clock"]
    c.start()
    assert c.stop() is c.results  # stop() still returns the (now built) results
    c.close()


@needs_counters
def test_results_before_during_and_after_a_window():
    c = C.Counters(["task-clock"])
    with pytest.raises(mel.InputError, match="no finished counting window"):
        c.results
    c.start()
    with pytest.raises(mel.InputError, match="no finished counting window") as ei:
        c.results  # the window is still open: nothing to report yet
    assert ei.value.status == "MEL_ERR_INVALID_ARGUMENT"
    c.stop()
    assert set(c.results) == {"task-clock"}
    with pytest.raises(mel.InputError, match="without a matching"):
        c.stop()
    assert set(c.results) == {"task-clock"}  # a failed stop() leaves the last window's results
    c.close()


@needs_counters
def test_results_after_close():
    c = C.Counters(["task-clock"])
    with c:
        pass
    r = c.results
    c.close()
    assert c.results is r  # already built: still there
    c = C.Counters(["task-clock"])
    with c:
        pass
    c.close()
    with pytest.raises(mel.InputError):
        c.results  # never built: the counters are gone, as before the lazy results
    with pytest.raises(mel.InputError):
        c.start()


@needs_counters
@pytest.mark.parametrize("spec", ["", "running=half", "errno:cpu-cycles=ENOENT", "read_errno=EIO", "kernel=EACCES"])
def test_cython_and_pybind11_windows_read_the_same(spec):
    """Both bindings over one library (the fake syscall layer installed through _core reaches
    _cycore too): the same tuples, states, reasons and flags."""
    events = ["cpu-cycles", "instructions", "task-clock"]
    with C._fake_syscalls(spec):
        cy = _cycore._Counters(events, 0)
        pb = _core._Counters(events, 0)
        for c in (cy, pb):
            c.start()
            c.stop()
        assert cy.read() == pb.read()
        cy.close()
        pb.close()
    assert _core._counters_fake_open_fds() == 0


@needs_counters
def test_an_event_registered_through_core_opens_through_cycore():
    C.register_event("bindings-task-clock", 1, 1)  # PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK
    c = C.Counters(["bindings-task-clock"])
    with c:
        pass
    assert set(c.results) == {"bindings-task-clock"}
    c.close()


# --- predict ---------------------------------------------------------------------------------


@pytest.fixture
def model(pack_random):
    path, q = pack_random([5, 8, 1], seed=4)
    return mel.Model.load(path), q


def test_predict_out_is_written_and_returned(model):
    m, q = model
    x = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    out = np.full(7, -1, np.float32)
    assert m.predict(x, out) is out
    np.testing.assert_array_equal(out, q.predict(x))
    np.testing.assert_array_equal(m.predict(x), q.predict(x))
    one = np.empty(1, np.float32)
    for i in range(7):  # a scheduler's loop: one buffer, row after row
        assert m.predict(x[i], out=one) is one
        assert one[0] == q.predict(x[i : i + 1])[0]
    np.testing.assert_array_equal(m._m.predict(x, out=np.empty(7, np.float32)), q.predict(x))  # pybind11's too


@pytest.mark.parametrize(
    "make_out, fragment",
    [
        (lambda: np.empty(3, np.float64), "float32 array of shape [3]"),
        (lambda: np.empty(4, np.float32), "float32 array of shape [3]"),
        (lambda: np.empty((3, 1), np.float32), "float32 array of shape [3]"),
        (lambda: np.empty(3, ">f4"), "float32 array of shape [3]"),
        (lambda: np.empty(6, np.float32)[::2], "C-contiguous"),
        (lambda: np.frombuffer(bytes(12), np.float32), "writeable"),
        (lambda: [0.0, 0.0, 0.0], "numpy float32 array of shape [3] (got list)"),
    ],
    ids=["float64", "wrong-length", "2d", "big-endian", "strided", "read-only", "list"],
)
@pytest.mark.parametrize("binding", ["cython", "pybind11"])
def test_bad_out_is_a_clear_error(model, make_out, fragment, binding):
    m, _ = model
    x = np.zeros((3, 5), np.float32)
    out = make_out()
    predict = m.predict if binding == "cython" else m._m.predict
    with pytest.raises(mel.InputError, match=fragment.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")) as ei:
        predict(x, out)
    assert ei.value.status == "MEL_ERR_INVALID_ARGUMENT"


def test_predict_of_a_non_array_is_a_type_error(model):
    m, _ = model
    with pytest.raises(TypeError, match="numpy.ndarray"):
        m.predict([[0.0] * 5])
    with pytest.raises(TypeError):
        m._m.predict([[0.0] * 5])  # pybind11's argument check: the same kind of error


def test_cython_and_pybind11_predict_agree(model):
    m, q = model
    x = np.random.default_rng(1).standard_normal((300, 5)).astype(np.float32)  # > 64 rows: GIL released
    np.testing.assert_array_equal(m.predict(x), m._m.predict(x))
    np.testing.assert_array_equal(m.predict(x), q.predict(x))
    np.testing.assert_array_equal(m.predict(x[0]), q.predict(x[:1]))
    assert m.predict(np.zeros((0, 5), np.float32)).shape == (0,)


def test_predictor_keeps_the_model_alive(pack_random):
    path, q = pack_random([5, 8, 1], seed=5)
    p = _cycore.Predictor(_core._Model.load_file(str(path)))
    gc.collect()  # the _core._Model is referenced by the Predictor alone
    x = np.ones((2, 5), np.float32)
    np.testing.assert_array_equal(p.predict(x), q.predict(x))
    with pytest.raises(TypeError):
        _cycore.Predictor(object())  # no model handle to borrow

"""Threads: one loaded model shared by many predicting threads gives the single-threaded results
bit for bit; failed loads on different threads each report their own error (mel_last_error is
thread-local)."""

from __future__ import annotations

import ctypes
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

import maple_edge_lite as mel

N_THREADS = 8


def _kernels():
    return [k for k in ("scalar", "avx2", "avx512vnni", "neon") if mel._core.kernel_available(k)]


def _run_threads(target, n=N_THREADS):
    """Start n threads on target(i, barrier) together; re-raise the first failure."""
    barrier = threading.Barrier(n)
    errors = []

    def wrap(i):
        try:
            target(i, barrier)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((i, e))
            barrier.abort()

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    real = [(i, e) for i, e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if real or errors:
        i, e = (real or errors)[0]
        raise AssertionError(f"thread {i}: {type(e).__name__}: {e}") from e


def test_shared_model_concurrent_predict(pack_random):
    path, _ = pack_random([48, 128, 64, 1], seed=21)
    model = mel.Model.load(path)
    kernels = _kernels()
    # per thread: its own inputs, in batches that release the GIL (> 64 rows) and ones that do not
    inputs = []
    for i in range(N_THREADS):
        rng = np.random.default_rng(100 + i)
        inputs.append([(rng.standard_normal((n, 48)) * (1 + i)).astype(np.float32) for n in (1, 5, 65, 300)])
    want = [[(model.predict(x), model.predict_raw(x)) for x in xs] for xs in inputs]

    def work(i, barrier):
        barrier.wait()
        for it in range(60):
            for j, x in enumerate(inputs[i]):
                ms, raw = want[i][j]
                k = kernels[(i + it + j) % len(kernels)]
                got = model.predict(x) if it % 2 == 0 else model._m.predict(x, kernel=k)
                assert np.array_equal(got.view(np.uint32), ms.view(np.uint32)), (it, j)
                got_raw = model.predict_raw(x) if it % 2 == 0 else model._m.predict_raw(x, kernel=k)
                assert np.array_equal(got_raw.view(np.uint64), raw.view(np.uint64)), (it, j)

    _run_threads(work)


def _corrupt_variants(data: bytes):
    """(bytes, message fragment, exception class) for N_THREADS different problems."""

    def fixed(b):
        b = bytearray(b)
        struct.pack_into("<I", b, 40, zlib.crc32(bytes(b[64:])))
        struct.pack_into("<I", b, 60, zlib.crc32(bytes(b[:60])))
        return bytes(b)

    out = []
    for v in (7, 8, 9):  # future format versions
        b = bytearray(data)
        struct.pack_into("<H", b, 12, v)
        out.append((fixed(b), f"format version {v} is not supported", mel.VersionError))
    b = bytearray(data)
    struct.pack_into("<H", b, 14, 7)
    out.append((fixed(b), "quantization scheme 7 is not supported", mel.VersionError))
    b = bytearray(data)
    b[-1] ^= 1
    out.append((bytes(b), "payload CRC-32 mismatch", mel.ChecksumError))
    out.append((data + b"\0" * 8, "(trailing bytes)", mel.FormatError))
    out.append((data[:100], "(truncated: re-copy the file)", mel.FormatError))
    b = bytearray(data)
    struct.pack_into("<I", b, 20, 85)
    out.append((fixed(b), "section count 85 is out of range", mel.FormatError))
    assert len(out) == N_THREADS
    return out


def test_concurrent_failed_loads_report_their_own_error(model_bytes, tmp_path):
    """Each thread loads its own corrupt file (Model.load releases the GIL during the C call) and
    must see its own file's problem and path, never another thread's."""
    data, _ = model_bytes
    variants = _corrupt_variants(data)
    paths = []
    for i, (b, _, _) in enumerate(variants):
        p = tmp_path / f"bad{i}.melw"
        p.write_bytes(b)
        paths.append(p)
    good = tmp_path / "model.melw"
    x = np.zeros((3, 16), np.float32)
    want = mel.Model.load(good).predict(x)

    def work(i, barrier):
        _, fragment, cls = variants[i]
        barrier.wait()
        for it in range(300):
            with pytest.raises(cls) as ei:
                mel.Model.load(paths[i])
            msg = str(ei.value)
            assert type(ei.value) is cls and fragment in msg and msg.startswith(f"{paths[i]}: "), (it, msg)
            if it % 10 == 0:  # interleave successful loads
                assert np.array_equal(mel.Model.load(good).predict(x), want)

    _run_threads(work)


def _c_library():
    lib = Path(mel.__file__).resolve().parent / "lib" / "libmaple_edge_lite.so"
    if not lib.exists():
        pytest.skip(f"no shared library at {lib}")
    c = ctypes.CDLL(str(lib))
    c.mel_model_load_buffer.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)]
    c.mel_model_load_buffer.restype = ctypes.c_int
    c.mel_last_error.argtypes = []
    c.mel_last_error.restype = ctypes.c_char_p
    c.mel_model_free.argtypes = [ctypes.c_void_p]
    c.mel_model_free.restype = None
    return c


def test_last_error_is_thread_local_deterministic(model_bytes):
    """Through the C ABI directly: thread A fails, then thread B fails differently while A waits,
    then A reads mel_last_error(): it must still be A's message."""
    c = _c_library()
    variants = _corrupt_variants(model_bytes[0])
    seen = {}
    steps = [threading.Event() for _ in range(3)]

    def load(b):
        out = ctypes.c_void_p(1)
        st = c.mel_model_load_buffer(b, len(b), ctypes.byref(out))
        assert out.value is None
        return st

    def a():
        seen["a_status"] = load(variants[0][0])
        steps[0].set()
        steps[1].wait(30)
        seen["a"] = c.mel_last_error().decode()
        steps[2].set()

    def b():
        steps[0].wait(30)
        seen["b_status"] = load(variants[4][0])
        seen["b"] = c.mel_last_error().decode()
        steps[1].set()

    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start()
    tb.start()
    ta.join(60)
    tb.join(60)
    assert steps[2].is_set(), seen
    assert seen["a_status"] == -6 and seen["b_status"] == -7  # MEL_ERR_VERSION, MEL_ERR_CHECKSUM
    assert variants[0][1] in seen["a"], seen
    assert variants[4][1] in seen["b"], seen
    # a third thread that has not failed yet has no error at all
    fresh = {}
    t = threading.Thread(target=lambda: fresh.setdefault("e", c.mel_last_error().decode()))
    t.start()
    t.join(30)
    assert fresh["e"] == ""

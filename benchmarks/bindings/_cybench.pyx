# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The C API's own cost for benchmarks/bench_bindings.py: loops over the C API in C, one Python
call per `iters` C calls, so the interpreter's share is amortised to nothing; they run in the
same process, on the same CPU, with the same pinning as the Python bindings they are compared
with (csrc/tools/bench_counters.cpp and bench_predict.cpp time the same loops in a C++ program).

Built by CMake with -DMEL_BUILD_CYBENCH=ON (bench_bindings.py does it in its work directory);
not part of the package."""

import time

from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

cdef extern from "maple_edge_lite/maple_edge_lite.h" nogil:
    ctypedef struct mel_model:
        pass
    ctypedef struct mel_counters:
        pass
    ctypedef struct mel_counter_value:
        uint32_t size
        int32_t state
    const char* mel_status_name(int status)
    const char* mel_last_error()
    int mel_model_load_file(const char* path, mel_model** out)
    void mel_model_free(mel_model* model)
    size_t mel_model_input_dim(const mel_model* model)
    int mel_model_predict(const mel_model* model, const float* x, size_t n_rows, float* out_ms)
    int mel_counters_open(const char* const* names, size_t n, unsigned flags, mel_counters** out)
    int mel_counters_start(mel_counters* c)
    int mel_counters_stop(mel_counters* c)
    int mel_counters_read(const mel_counters* c, mel_counter_value* out, size_t n)
    void mel_counters_free(mel_counters* c)


cdef int fail(int st) except -1:
    raise RuntimeError(f"{mel_status_name(st).decode()}: {mel_last_error().decode()}")


def c_counters_windows(names, size_t iters):
    """`iters` windows of mel_counters_start + stop + read on one open set (as
    csrc/tools/bench_counters.cpp, after the same 1,000 warm-up windows); seconds per window."""
    cdef list enc = [s.encode() for s in names]
    cdef size_t n = len(enc), i
    cdef const char* p[64]
    cdef mel_counters* c = NULL
    cdef mel_counter_value* v
    cdef int st = 0
    if n == 0 or n > 64:
        raise ValueError("1 to 64 event names")
    for i in range(n):
        p[i] = <bytes>enc[i]
    st = mel_counters_open(p, n, 0, &c)
    if st:
        fail(st)
    v = <mel_counter_value*>malloc(n * sizeof(mel_counter_value))
    for i in range(n):
        v[i].size = sizeof(mel_counter_value)
    try:
        with nogil:
            for i in range(1000):
                st |= mel_counters_start(c) | mel_counters_stop(c) | mel_counters_read(c, v, n)
        t0 = time.perf_counter()
        with nogil:
            for i in range(iters):
                st |= mel_counters_start(c)
                st |= mel_counters_stop(c)
                st |= mel_counters_read(c, v, n)
        t = time.perf_counter() - t0
        if st:
            fail(st)
    finally:
        free(v)
        mel_counters_free(c)
    return t / iters


cdef class CModel:
    cdef mel_model* m

    def __cinit__(self, path):
        cdef int st = mel_model_load_file(str(path).encode(), &self.m)
        if st:
            fail(st)

    def __dealloc__(self):
        mel_model_free(self.m)

    def predict_loop(self, const float[:, ::1] x, size_t iters):
        """`iters` one-row mel_model_predict calls cycling through the rows of x (float32
        [rows, input_dim], as bench_predict cycles through 1,024 rows); seconds per call."""
        cdef size_t rows = x.shape[0], d = x.shape[1], i, j = 0
        cdef const float* px = &x[0, 0]
        cdef float o = 0
        cdef int st = 0
        if d != mel_model_input_dim(self.m) or rows == 0:
            raise ValueError("x must be [rows, input_dim]")
        t0 = time.perf_counter()
        with nogil:
            for i in range(iters):
                st |= mel_model_predict(self.m, px + j * d, 1, &o)
                j += 1
                if j == rows:
                    j = 0
        t = time.perf_counter() - t0
        if st:
            fail(st)
        return t / iters

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The C API's own cost for benchmarks/bench_bindings.py: short loops over the C API, timed in C
(clock_gettime around the loop, so no interpreter time is counted), in the same process, on the
same CPU, with the same pinning as the Python bindings they are compared with
(csrc/tools/bench_counters.cpp and bench_predict.cpp time the same loops in a C++ program).

Built by CMake with -DMEL_BUILD_CYBENCH=ON (bench_bindings.py does it in its work directory);
not part of the package."""

from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
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


cdef inline double now_s() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return t.tv_sec + t.tv_nsec * 1e-9


cdef class CCounters:
    """One open counter set (flags 0, as Counters' defaults)."""

    cdef mel_counters* c
    cdef mel_counter_value* v
    cdef size_t n

    def __cinit__(self, names):
        cdef list enc = [s.encode() for s in names]
        cdef size_t i
        cdef const char* p[64]
        self.n = len(enc)
        if self.n == 0 or self.n > 64:
            raise ValueError("1 to 64 event names")
        for i in range(self.n):
            p[i] = <bytes>enc[i]
        cdef int st = mel_counters_open(p, self.n, 0, &self.c)
        if st:
            fail(st)
        self.v = <mel_counter_value*>malloc(self.n * sizeof(mel_counter_value))
        for i in range(self.n):
            self.v[i].size = sizeof(mel_counter_value)

    def __dealloc__(self):
        mel_counters_free(self.c)
        free(self.v)

    def windows(self, size_t iters):
        """`iters` windows of mel_counters_start + stop + read, timed in C (clock_gettime);
        seconds per window."""
        cdef size_t i
        cdef int st = 0
        cdef double t0, t1
        with nogil:
            t0 = now_s()
            for i in range(iters):
                st |= mel_counters_start(self.c)
                st |= mel_counters_stop(self.c)
                st |= mel_counters_read(self.c, self.v, self.n)
            t1 = now_s()
        if st:
            fail(st)
        return (t1 - t0) / iters


cdef class CModel:
    cdef mel_model* m

    def __cinit__(self, path):
        cdef int st = mel_model_load_file(str(path).encode(), &self.m)
        if st:
            fail(st)

    def __dealloc__(self):
        mel_model_free(self.m)

    def predict_loop(self, const float[:, ::1] x, size_t iters, size_t start=0):
        """`iters` one-row mel_model_predict calls through the rows of x (float32
        [rows, input_dim]) from row `start` on, cycling (as bench_predict cycles through 1,024
        rows), timed in C (clock_gettime); seconds per call."""
        cdef size_t rows = x.shape[0], d = x.shape[1], i, j
        cdef const float* px = &x[0, 0]
        cdef float o = 0
        cdef int st = 0
        cdef double t0, t1
        if d != mel_model_input_dim(self.m) or rows == 0:
            raise ValueError("x must be [rows, input_dim]")
        j = start % rows
        with nogil:
            t0 = now_s()
            for i in range(iters):
                st |= mel_model_predict(self.m, px + j * d, 1, &o)
                j += 1
                if j == rows:
                    j = 0
            t1 = now_s()
        if st:
            fail(st)
        return (t1 - t0) / iters

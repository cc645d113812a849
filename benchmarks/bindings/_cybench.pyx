# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The Cython side of the bindings experiment (benchmarks/bench_bindings.py, docs/bindings.md).

The two calls a scheduler makes per inference -- a counters window and a one-row predict --
bound with Cython over the same public C header the pybind11 module `_core` uses, with the
same argument checks, the same errors and the same design (stop() reads the window into a
preallocated buffer; results are built only when asked for). Also two C loops over the C API
(`c_counters_windows`, `c_predict_loop`): the C API's own cost, timed in the same process and
run as the Python bindings, with the interpreter's cost amortised over `iters` calls.

Built by CMake with -DMEL_BUILD_CYBENCH=ON (benchmarks/bench_bindings.py does it in its work
directory); it is not part of the package."""

from libc.stdlib cimport malloc, free
from libc.stdint cimport uint32_t, int32_t, uint64_t

cimport numpy as cnp

cnp.import_array()

cdef extern from "maple_edge_lite/maple_edge_lite.h" nogil:
    ctypedef struct mel_model:
        pass
    ctypedef struct mel_counters:
        pass
    ctypedef struct mel_counter_value:
        uint32_t size
        int32_t state
        uint64_t value
        uint64_t raw
        uint64_t enabled_ns
        uint64_t running_ns
        int32_t error
        uint32_t flags
    enum:
        MEL_OK
        MEL_ERR_INVALID_ARGUMENT
        MEL_ERR_NOT_FOUND
        MEL_ERR_IO
        MEL_ERR_PERMISSION
        MEL_ERR_FORMAT
        MEL_ERR_VERSION
        MEL_ERR_CHECKSUM
        MEL_ERR_LIMIT
        MEL_ERR_NUMERIC
        MEL_ERR_NO_MEMORY
        MEL_ERR_UNSUPPORTED
        MEL_ERR_RESOURCE
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
    size_t mel_counters_count(const mel_counters* c)
    const char* mel_counters_name(const mel_counters* c, size_t i)
    const char* mel_counters_reason(const mel_counters* c, size_t i)
    const char* mel_counter_state_name(int state)

from maple_edge_lite import _errors

_CLASSES = {
    MEL_ERR_INVALID_ARGUMENT: "InputError",
    MEL_ERR_NOT_FOUND: "ModelNotFoundError",
    MEL_ERR_IO: "MapleEdgeIOError",
    MEL_ERR_PERMISSION: "MapleEdgePermissionError",
    MEL_ERR_FORMAT: "FormatError",
    MEL_ERR_VERSION: "VersionError",
    MEL_ERR_CHECKSUM: "ChecksumError",
    MEL_ERR_LIMIT: "LimitError",
    MEL_ERR_NUMERIC: "NumericError",
    MEL_ERR_UNSUPPORTED: "UnsupportedError",
    MEL_ERR_RESOURCE: "ResourceError",
}


cdef int raise_status(int status) except -1:
    msg = mel_last_error().decode("utf-8", "replace")
    if status == MEL_ERR_NO_MEMORY:
        raise MemoryError(msg)
    exc = getattr(_errors, _CLASSES.get(status, "MapleEdgeError"))(msg)
    exc.status = mel_status_name(status).decode()
    raise exc


cdef int raise_input(str msg) except -1:
    exc = _errors.InputError(msg)
    exc.status = "MEL_ERR_INVALID_ARGUMENT"
    raise exc


# --- counters ---------------------------------------------------------------------------------
cdef class _Counters:
    cdef mel_counters* c
    cdef mel_counter_value* vals
    cdef size_t n
    cdef bint have_window   # vals holds the last finished window
    cdef tuple names        # str, built once

    def __cinit__(self, names, unsigned flags=0):
        cdef list enc = [s.encode("utf-8") for s in names]
        cdef size_t n = len(enc), i
        cdef const char** p = <const char**>malloc(max(n, 1) * sizeof(char*))
        if p == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                p[i] = <bytes>enc[i]
            st = mel_counters_open(p, n, flags, &self.c)
        finally:
            free(p)
        if st != MEL_OK:
            raise_status(st)
        self.n = mel_counters_count(self.c)
        self.vals = <mel_counter_value*>malloc(max(self.n, 1) * sizeof(mel_counter_value))
        if self.vals == NULL:
            raise MemoryError()
        for i in range(self.n):
            self.vals[i].size = sizeof(mel_counter_value)
        self.names = tuple(mel_counters_name(self.c, i).decode() for i in range(self.n))

    def __dealloc__(self):
        mel_counters_free(self.c)
        free(self.vals)

    def start(self):
        cdef int st = mel_counters_start(self.c)
        if st != MEL_OK:
            raise_status(st)
        self.have_window = False

    def stop(self):
        """Ends the window and reads it into the preallocated buffer (no Python object made)."""
        cdef int st = mel_counters_stop(self.c)
        if st != MEL_OK:
            raise_status(st)
        st = mel_counters_read(self.c, self.vals, self.n)
        if st != MEL_OK:
            raise_status(st)
        self.have_window = True

    def close(self):
        mel_counters_free(self.c)
        self.c = NULL

    def read(self):
        """[(name, state, value, raw, enabled_ns, running_ns, errno, flags, reason)] of the last window."""
        cdef int st
        cdef size_t i
        cdef mel_counter_value* v
        if not self.have_window or self.c == NULL:
            st = mel_counters_read(self.c, self.vals, self.n)  # the C API's own error
            if st != MEL_OK:
                raise_status(st)
        out = []
        for i in range(self.n):
            v = &self.vals[i]
            out.append((self.names[i], mel_counter_state_name(v.state).decode(), v.value, v.raw, v.enabled_ns,
                        v.running_ns, v.error, v.flags, mel_counters_reason(self.c, i).decode("utf-8", "replace")))
        return out


def c_counters_windows(names, size_t iters):
    """The C API alone: `iters` windows of start + stop + read in one C loop; seconds per window."""
    cdef _Counters c = _Counters(names)
    cdef size_t i
    cdef int st = 0
    import time
    t0 = time.perf_counter()
    with nogil:
        for i in range(iters):
            st |= mel_counters_start(c.c)
            st |= mel_counters_stop(c.c)
            st |= mel_counters_read(c.c, c.vals, c.n)
    t = time.perf_counter() - t0
    if st != MEL_OK:
        raise_status(st)
    return t / iters


# --- predict ----------------------------------------------------------------------------------
cdef class _Model:
    cdef mel_model* m
    cdef size_t d

    @staticmethod
    def load_file(path):
        cdef _Model self = _Model.__new__(_Model)
        b = str(path).encode()
        cdef int st = mel_model_load_file(b, &self.m)
        if st != MEL_OK:
            raise_status(st)
        self.d = mel_model_input_dim(self.m)
        return self

    def __dealloc__(self):
        mel_model_free(self.m)

    @property
    def input_dim(self):
        return self.d

    cdef size_t rows_of(self, object x) except? 0:
        if not cnp.PyArray_Check(x):  # as pybind11's argument check
            raise TypeError(f"x must be a numpy.ndarray (got {type(x).__name__})")
        cdef cnp.ndarray a = <cnp.ndarray>x
        if cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISNOTSWAPPED(a):
            raise_input(f"x must be a float32 array (got dtype {(<object>a).dtype}); convert with "
                        "np.ascontiguousarray(x, dtype=np.float32)")
        if (cnp.PyArray_FLAGS(a) & (cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED)) != \
                (cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED):
            raise_input("x must be C-contiguous and aligned (it is read in place, without a copy); "
                        "use np.ascontiguousarray(x, dtype=np.float32)")
        cdef int nd = cnp.PyArray_NDIM(a)
        cdef cnp.npy_intp* shape = cnp.PyArray_DIMS(a)
        if nd == 1 and <size_t>shape[0] == self.d:
            return 1
        if nd != 2 or <size_t>shape[1] != self.d:
            raise_input(f"x must have shape [n, {self.d}] for this model (got {list((<object>a).shape)})")
        return <size_t>shape[0]

    def predict(self, x, out=None):
        cdef size_t n = self.rows_of(x)
        cdef cnp.npy_intp dim = <cnp.npy_intp>n
        cdef cnp.ndarray o
        if out is None:
            o = cnp.PyArray_EMPTY(1, &dim, cnp.NPY_FLOAT32, 0)
        else:
            o = check_out(out, n)
        cdef const float* px = <const float*>cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef float* po = <float*>cnp.PyArray_DATA(o)
        cdef int st
        if n <= 64:
            st = mel_model_predict(self.m, px, n, po)
        else:
            with nogil:
                st = mel_model_predict(self.m, px, n, po)
        if st != MEL_OK:
            raise_status(st)
        return o


cdef cnp.ndarray check_out(object out, size_t n):
    if not cnp.PyArray_Check(out):
        raise_input(f"out must be a float32 numpy array (got {type(out).__name__})")
    cdef cnp.ndarray o = <cnp.ndarray>out
    if cnp.PyArray_TYPE(o) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISNOTSWAPPED(o) or cnp.PyArray_NDIM(o) != 1 or <size_t>cnp.PyArray_DIMS(o)[0] != n:
        raise_input(f"out must be a float32 array of shape [{n}]")
    if (cnp.PyArray_FLAGS(o) & (cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED | cnp.NPY_ARRAY_WRITEABLE)) != \
            (cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED | cnp.NPY_ARRAY_WRITEABLE):
        raise_input("out must be C-contiguous, aligned and writeable")
    return o


def c_predict_loop(_Model model, cnp.ndarray x, size_t iters):
    """The C API alone: `iters` one-row mel_model_predict calls in one C loop, over the rows of
    x (float32 [rows, d], C-contiguous) in turn; seconds per call."""
    model.rows_of(x)
    cdef size_t rows = <size_t>cnp.PyArray_DIMS(x)[0], d = model.d, i, j = 0
    cdef const float* px = <const float*>cnp.PyArray_DATA(x)
    cdef float o = 0
    cdef int st = 0
    import time
    t0 = time.perf_counter()
    with nogil:
        for i in range(iters):
            st |= mel_model_predict(model.m, px + j * d, 1, &o)
            j += 1
            if j == rows:
                j = 0
    t = time.perf_counter() - t0
    if st != MEL_OK:
        raise_status(st)
    return t / iters

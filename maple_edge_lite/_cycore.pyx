# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""maple_edge_lite._cycore: the two calls a scheduler makes per inference, in Cython over the
public C header (internal; use maple_edge_lite.counters.Counters and maple_edge_lite.Model).

A counters window and a one-row predict cost less through Cython than through the pybind11
module _core (about 0.1 us per call into the module: docs/bindings.md, measured by
benchmarks/bench_bindings.py); everything else stays in _core. Errors are the same exceptions
with the same messages and ``status`` as _core's."""

from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

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
        MEL_COUNTER_DENIED

# The C API's functions come from _core's copy of the library (csrc/python/mel_py_api.h says why):
# this module links no library of its own.
cdef extern from "mel_py_api.h" nogil:
    const char* MEL_PY_API_CAPSULE
    ctypedef struct mel_py_api:
        size_t size
        const char* (*status_name)(int status) noexcept nogil
        const char* (*last_error)() noexcept nogil
        size_t (*model_input_dim)(const mel_model* model) noexcept nogil
        int (*model_predict)(const mel_model* model, const float* x, size_t n_rows, float* out_ms) noexcept nogil
        const char* (*counter_state_name)(int state) noexcept nogil
        int (*counters_open)(const char* const* names, size_t n, unsigned flags, mel_counters** out) noexcept nogil
        int (*counters_start)(mel_counters* c) noexcept nogil
        int (*counters_stop)(mel_counters* c) noexcept nogil
        int (*counters_read)(const mel_counters* c, mel_counter_value* out, size_t n) noexcept nogil
        void (*counters_free)(mel_counters* c) noexcept nogil
        size_t (*counters_count)(const mel_counters* c) noexcept nogil
        const char* (*counters_name)(const mel_counters* c, size_t i) noexcept nogil
        const char* (*counters_reason)(const mel_counters* c, size_t i) noexcept nogil

from . import _core, _errors

cdef const mel_py_api* api = <const mel_py_api*>PyCapsule_GetPointer(_core._c_api, MEL_PY_API_CAPSULE)
if api.size < sizeof(mel_py_api):
    raise ImportError("maple_edge_lite._core is older than maple_edge_lite._cycore: reinstall the package")

# Status -> exception class, as _core's raise_status (csrc/python/module.cpp).
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
    msg = api.last_error().decode("utf-8", "replace")
    if status == MEL_ERR_NO_MEMORY:
        raise MemoryError(msg)
    exc = getattr(_errors, _CLASSES.get(status, "MapleEdgeError"))(msg)
    exc.status = api.status_name(status).decode()
    raise exc


cdef int raise_input(str msg) except -1:
    exc = _errors.InputError(msg)
    exc.status = "MEL_ERR_INVALID_ARGUMENT"
    raise exc


# --- counters ---------------------------------------------------------------------------------
cdef tuple _STATES = tuple([api.counter_state_name(s).decode() for s in range(MEL_COUNTER_DENIED + 1)])


cdef class _Counters:
    """One open counter set. A window is start() and stop(); stop() also reads the counts into a
    buffer allocated at open, so a window makes no Python object. read() builds the tuples of
    the last window from that buffer."""

    cdef mel_counters* c
    cdef mel_counter_value* vals   # owned; one per event
    cdef size_t n
    cdef bint have_window          # vals holds the last finished window
    cdef tuple names               # event names as str, made once

    def __cinit__(self, names, unsigned flags=0):
        cdef list enc = [s.encode("utf-8") for s in names]
        cdef size_t n = len(enc), i
        cdef int st
        cdef const char** p
        if api.counters_open == NULL:
            exc = _errors.UnsupportedError("performance counters need Linux perf_event; this build has none")
            exc.status = "MEL_ERR_UNSUPPORTED"
            raise exc
        p = <const char**>malloc((n if n else 1) * sizeof(char*))
        if p == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                p[i] = <bytes>enc[i]
            st = api.counters_open(p, n, flags, &self.c)
        finally:
            free(p)
        if st != MEL_OK:
            raise_status(st)
        self.n = api.counters_count(self.c)
        self.vals = <mel_counter_value*>malloc((self.n if self.n else 1) * sizeof(mel_counter_value))
        if self.vals == NULL:
            raise MemoryError()
        for i in range(self.n):
            self.vals[i].size = sizeof(mel_counter_value)
        self.names = tuple(api.counters_name(self.c, i).decode("utf-8") for i in range(self.n))

    def __dealloc__(self):
        if self.c != NULL:
            api.counters_free(self.c)
        free(self.vals)

    def start(self):
        cdef int st = api.counters_start(self.c)
        if st != MEL_OK:
            raise_status(st)
        self.have_window = False

    def stop(self):
        cdef int st = api.counters_stop(self.c)
        if st != MEL_OK:
            raise_status(st)
        st = api.counters_read(self.c, self.vals, self.n)
        if st != MEL_OK:
            raise_status(st)
        self.have_window = True

    def close(self):
        if self.c != NULL:
            api.counters_free(self.c)
        self.c = NULL

    def read(self):
        """[(name, state, value, raw, enabled_ns, running_ns, errno, flags, reason)] of the last window."""
        cdef int st
        cdef size_t i
        cdef mel_counter_value* v
        cdef const char* reason
        if not self.have_window or self.c == NULL:
            # No window in the buffer (none yet, one in progress, or closed): the C API's own error.
            st = api.counters_read(self.c, self.vals, self.n)
            if st != MEL_OK:
                raise_status(st)
        out = []
        for i in range(self.n):
            v = &self.vals[i]
            state = _STATES[v.state] if 0 <= v.state <= MEL_COUNTER_DENIED else api.counter_state_name(v.state).decode()
            reason = api.counters_reason(self.c, i)
            out.append((self.names[i], state, v.value, v.raw, v.enabled_ns, v.running_ns, v.error, v.flags,
                        reason.decode("utf-8", "replace") if reason[0] else ""))
        return out


# --- predict ----------------------------------------------------------------------------------
cdef class Predictor:
    """Model.predict over the model that a _core._Model owns (borrowed through a capsule; the
    Predictor keeps the _core._Model alive)."""

    cdef object owner
    cdef const mel_model* m
    cdef size_t d

    def __cinit__(self, core_model):
        capsule = getattr(core_model, "_capsule", None)
        if capsule is None:
            raise TypeError(f"Predictor needs a maple_edge_lite._core._Model (got {type(core_model).__name__})")
        self.m = <const mel_model*>PyCapsule_GetPointer(capsule(), b"maple_edge_lite.mel_model")
        self.owner = core_model
        self.d = api.model_input_dim(self.m)

    cdef size_t rows_of(self, object x) except? 0:
        # x is read in place, never copied: float32, native byte order, C-contiguous, aligned,
        # [n, input_dim] or [input_dim]. Messages as _core's rows_of.
        if not cnp.PyArray_Check(x):  # what pybind11's argument check did
            raise TypeError(f"x must be a numpy.ndarray of float32 (got {type(x).__name__}); "
                            "use np.ascontiguousarray(x, dtype=np.float32)")
        cdef cnp.ndarray a = <cnp.ndarray>x
        if cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISNOTSWAPPED(a):
            raise_input(f"x must be a float32 array (got dtype {x.dtype}); convert with "
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
            raise_input(f"x must have shape [n, {self.d}] for this model (got [{', '.join(map(str, x.shape))}])")
        return <size_t>shape[0]

    def predict(self, x, out=None):
        """Latency in ms, float32 [n]: a new array, or `out` (float32 [n], writeable,
        C-contiguous) written in place and returned."""
        cdef size_t n = self.rows_of(x)
        cdef cnp.npy_intp dim = <cnp.npy_intp>n
        cdef cnp.ndarray o
        if out is None:
            o = cnp.PyArray_EMPTY(1, &dim, cnp.NPY_FLOAT32, 0)
        else:
            o = checked_out(out, n)
        cdef const float* px = <const float*>cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef float* po = <float*>cnp.PyArray_DATA(o)
        cdef int st
        if n <= 64:  # releasing the GIL costs about as much as a few rows (as _core)
            st = api.model_predict(self.m, px, n, po)
        else:
            with nogil:
                st = api.model_predict(self.m, px, n, po)
        if st != MEL_OK:
            raise_status(st)
        return o


cdef cnp.ndarray checked_out(object out, size_t n):
    if not cnp.PyArray_Check(out):
        raise_input(f"out must be a numpy float32 array of shape [{n}] (got {type(out).__name__})")
    cdef cnp.ndarray o = <cnp.ndarray>out
    if cnp.PyArray_TYPE(o) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISNOTSWAPPED(o) or cnp.PyArray_NDIM(o) != 1 \
            or <size_t>cnp.PyArray_DIMS(o)[0] != n:
        raise_input(f"out must be a float32 array of shape [{n}] (got dtype {out.dtype}, shape "
                    f"[{', '.join(map(str, out.shape))}])")
    if (cnp.PyArray_FLAGS(o) & (cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED | cnp.NPY_ARRAY_WRITEABLE)) != \
            (cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED | cnp.NPY_ARRAY_WRITEABLE):
        raise_input("out must be writeable, aligned and C-contiguous")
    return o

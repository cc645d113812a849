// maple_edge_lite._core: a thin pybind11 layer over the C API (so every Python test exercises
// the C path). Errors become the Python exception family defined in maple_edge_lite._errors.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "maple_edge_lite/maple_edge_lite.h"
#include "internal.h"
#include "mel_py_api.h"

namespace py = pybind11;

namespace {

py::object g_errors;  // the maple_edge_lite._errors module

[[noreturn]] void raise_status(int status) {
    const std::string msg = mel_last_error();
    const char* cls = "MapleEdgeError";
    switch (status) {
        case MEL_ERR_INVALID_ARGUMENT: cls = "InputError"; break;
        case MEL_ERR_NOT_FOUND: cls = "ModelNotFoundError"; break;
        case MEL_ERR_IO: cls = "MapleEdgeIOError"; break;
        case MEL_ERR_PERMISSION: cls = "MapleEdgePermissionError"; break;
        case MEL_ERR_FORMAT: cls = "FormatError"; break;
        case MEL_ERR_VERSION: cls = "VersionError"; break;
        case MEL_ERR_CHECKSUM: cls = "ChecksumError"; break;
        case MEL_ERR_LIMIT: cls = "LimitError"; break;
        case MEL_ERR_NUMERIC: cls = "NumericError"; break;
        case MEL_ERR_NO_MEMORY: throw std::bad_alloc();
        case MEL_ERR_UNSUPPORTED: cls = "UnsupportedError"; break;
        case MEL_ERR_RESOURCE: cls = "ResourceError"; break;
        default: break;
    }
    py::object exc = g_errors.attr(cls)(msg);
    exc.attr("status") = py::str(mel_status_name(status));
    PyErr_SetObject(py::type::handle_of(exc).ptr(), exc.ptr());
    throw py::error_already_set();
}

inline void check(int status) {
    if (status != MEL_OK) raise_status(status);
}

// Runs a C call over n rows, releasing the GIL only when the batch is large enough for that to
// pay off (releasing and re-taking it costs about as much as predicting a few rows).
template <class F>
int run_batch(size_t n, F&& call) {
    if (n <= 64) return call();
    py::gil_scoped_release nogil;
    return call();
}

class PyModel {
public:
    explicit PyModel(mel_model* m) : m_(m) {}
    ~PyModel() { mel_model_free(m_); }
    PyModel(const PyModel&) = delete;
    PyModel& operator=(const PyModel&) = delete;

    static std::unique_ptr<PyModel> load_file(const std::string& path) {
        mel_model* m = nullptr;
        int st;
        {
            py::gil_scoped_release nogil;
            st = mel_model_load_file(path.c_str(), &m);
        }
        check(st);
        return std::make_unique<PyModel>(m);
    }

    static std::unique_ptr<PyModel> load_buffer(const py::buffer& data) {
        py::buffer_info info = data.request();
        if (info.ndim != 1 && info.size != 0)
            throw py::value_error("load_buffer expects a bytes-like object");
        mel_model* m = nullptr;
        int st;
        {
            // The buffer stays alive and unchanged: `data` holds a reference and the buffer
            // protocol export pins bytearrays against resizing.
            py::gil_scoped_release nogil;
            st = mel_model_load_buffer(info.ptr, size_t(info.size) * size_t(info.itemsize), &m);
        }
        check(st);
        return std::make_unique<PyModel>(m);
    }

    size_t input_dim() const { return mel_model_input_dim(m_); }
    const mel_model* handle() const { return m_; }

    std::vector<size_t> layer_dims() const {
        std::vector<size_t> v;
        for (size_t i = 0; i < mel_model_num_layers(m_); ++i) v.push_back(mel_model_layer_dim(m_, i));
        return v;
    }

    std::vector<std::string> feature_names() const {
        std::vector<std::string> v;
        for (size_t i = 0; i < input_dim(); ++i) {
            const char* s = nullptr;
            check(mel_model_feature_name(m_, i, &s));
            v.emplace_back(s);
        }
        return v;
    }

    std::string metadata_json() const {
        const char* s = nullptr;
        size_t n = 0;
        check(mel_model_metadata(m_, &s, &n));
        return std::string(s, n);
    }

    // x must already be float32, C-contiguous, [n, input_dim] (or [input_dim] for one row):
    // it is read in place, never copied.
    size_t rows_of(const py::array& x) const {
        // The hot path of a one-row predict: plain field reads of the array (numpy's own struct,
        // through pybind11's proxy), no dtype object made or compared. Anything it does not
        // accept goes through the checks below, which name the problem.
        const auto* a = py::detail::array_proxy(x.ptr());
        const auto* descr = py::detail::array_descriptor_proxy(a->descr);
        constexpr int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
        if (descr->type_num == py::detail::npy_api::NPY_FLOAT_ && (descr->byteorder == '=' || descr->byteorder == kNative) &&
            (a->flags & need) == need) {
            const size_t d = input_dim();
            if (a->nd == 1 && size_t(a->dimensions[0]) == d) return 1;
            if (a->nd == 2 && size_t(a->dimensions[1]) == d) return size_t(a->dimensions[0]);
        }
        if (!x.dtype().equal(py::dtype::of<float>()))
            throw_input("x must be a float32 array (got dtype " + std::string(py::str(x.dtype())) +
                        "); convert with np.ascontiguousarray(x, dtype=np.float32)");
        if (!(x.flags() & py::array::c_style) || !(x.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
            throw_input("x must be C-contiguous and aligned (it is read in place, without a copy); "
                        "use np.ascontiguousarray(x, dtype=np.float32)");
        const size_t d = input_dim();
        if (x.ndim() == 1 && size_t(x.shape(0)) == d) return 1;
        if (x.ndim() != 2 || size_t(x.shape(1)) != d)
            throw_input("x must have shape [n, " + std::to_string(d) + "] for this model (got " + shape_str(x) + ")");
        return size_t(x.shape(0));
    }

    // out=None: a new float32 [n]; else `out` itself, which must be a writeable, aligned,
    // C-contiguous float32 array of shape [n] (a scheduler reuses one and allocates nothing).
    py::object predict(const py::array& x, const py::object& out, const py::object& kernel) const {
        const size_t n = rows_of(x);
        py::object res = out.is_none() ? new_float32(n) : checked_out(out, n);
        const float* px = static_cast<const float*>(x.data());
        float* po = reinterpret_cast<float*>(py::detail::array_proxy(res.ptr())->data);
        int st;
        if (kernel.is_none()) {
            st = run_batch(n, [&] { return mel_model_predict(m_, px, n, po); });
        } else {
            const std::string k = py::cast<std::string>(kernel);
            py::gil_scoped_release nogil;
            st = mel_internal_predict_with_kernel(m_, k.c_str(), px, n, po, nullptr);
        }
        check(st);
        return res;
    }

    py::array_t<double> predict_raw(const py::array& x, const py::object& kernel) const {
        const size_t n = rows_of(x);
        py::array_t<double> out(static_cast<py::ssize_t>(n));
        const float* px = static_cast<const float*>(x.data());
        double* po = out.mutable_data();
        int st;
        {
            const std::string k = kernel.is_none() ? std::string() : py::cast<std::string>(kernel);
            py::gil_scoped_release nogil;
            st = k.empty() ? mel_model_predict_raw(m_, px, n, po)
                           : mel_internal_predict_with_kernel(m_, k.c_str(), px, n, nullptr, po);
        }
        check(st);
        return out;
    }

private:
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    static constexpr char kNative = '>';
#else
    static constexpr char kNative = '<';
#endif

    // A new 1-d float32 array straight from numpy's C API (py::array_t's constructor builds
    // shape and stride vectors and a dtype object first: a third of a one-row predict).
    static py::object new_float32(size_t n) {
        auto& api = py::detail::npy_api::get();
        static PyObject* const f32 = api.PyArray_DescrFromType_(py::detail::npy_api::NPY_FLOAT_);  // immortal
        Py_INCREF(f32);  // PyArray_NewFromDescr steals a reference
        Py_intptr_t dim = static_cast<Py_intptr_t>(n);
        PyObject* o = api.PyArray_NewFromDescr_(api.PyArray_Type_, f32, 1, &dim, nullptr, nullptr, 0, nullptr);
        if (!o) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(o);
    }

    static py::object checked_out(const py::object& out, size_t n) {
        auto& api = py::detail::npy_api::get();
        if (!api.PyArray_Check_(out.ptr()))
            throw_input("out must be a numpy float32 array of shape [" + std::to_string(n) + "] (got " +
                        std::string(py::str(py::type::handle_of(out).attr("__name__"))) + ")");
        const py::array a = py::reinterpret_borrow<py::array>(out);
        if (!a.dtype().equal(py::dtype::of<float>()) || a.ndim() != 1 || size_t(a.shape(0)) != n)
            throw_input("out must be a float32 array of shape [" + std::to_string(n) + "] (got dtype " +
                        std::string(py::str(a.dtype())) + ", shape " + shape_str(a) + ")");
        constexpr int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                             py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
        if ((a.flags() & need) != need) throw_input("out must be writeable, aligned and C-contiguous");
        return out;
    }

    [[noreturn]] static void throw_input(const std::string& msg) {
        py::object exc = g_errors.attr("InputError")(msg);
        exc.attr("status") = py::str("MEL_ERR_INVALID_ARGUMENT");
        PyErr_SetObject(py::type::handle_of(exc).ptr(), exc.ptr());
        throw py::error_already_set();
    }
    static std::string shape_str(const py::array& x) {
        std::string s = "[";
        for (py::ssize_t i = 0; i < x.ndim(); ++i) s += (i ? ", " : "") + std::to_string(x.shape(i));
        return s + "]";
    }
    mel_model* m_;
};

#if defined(__linux__)
// The pybind11 binding of a counters window. maple_edge_lite.counters uses the Cython one
// (maple_edge_lite/_cycore.pyx: about 0.1 us less per call, docs/bindings.md); this one stays as
// benchmarks/bench_bindings.py's pybind11 contender, and its presence marks a build with counters.
class PyCounters {
public:
    PyCounters(const std::vector<std::string>& names, unsigned flags) {
        std::vector<const char*> p;
        for (const auto& n : names) p.push_back(n.c_str());
        check(mel_counters_open(p.data(), p.size(), flags, &c_));
        values_.resize(mel_counters_count(c_));
        for (auto& v : values_) v.size = sizeof(mel_counter_value);
        names_ = py::tuple(values_.size());
        for (size_t i = 0; i < values_.size(); ++i) names_[i] = py::str(mel_counters_name(c_, i));
        for (int s = 0; s < kStates; ++s) states_[s] = py::str(mel_counter_state_name(s));
    }
    ~PyCounters() { mel_counters_free(c_); }
    PyCounters(const PyCounters&) = delete;
    PyCounters& operator=(const PyCounters&) = delete;

    void start() {
        check(mel_counters_start(c_));
        have_window_ = false;
    }
    // Ends the window and reads it into the buffer allocated at open: a window makes no Python
    // object; read() builds them only when the results are asked for.
    void stop() {
        check(mel_counters_stop(c_));
        check(mel_counters_read(c_, values_.data(), values_.size()));
        have_window_ = true;
    }
    void close() {
        mel_counters_free(c_);
        c_ = nullptr;
    }

    // [(name, state, value, raw, enabled_ns, running_ns, errno, flags, reason)] of the last window
    py::list read() {
        // No window in the buffer (none yet, one in progress, or closed): the C API's own error.
        if (!have_window_ || !c_) check(mel_counters_read(c_, values_.data(), values_.size()));
        py::list out(values_.size());
        for (size_t i = 0; i < values_.size(); ++i) {
            const mel_counter_value& v = values_[i];
            py::object state = v.state >= 0 && v.state < kStates ? states_[v.state] : py::str(mel_counter_state_name(v.state));
            const char* reason = mel_counters_reason(c_, i);
            out[i] = py::make_tuple(names_[i], std::move(state), v.value, v.raw, v.enabled_ns, v.running_ns, v.error, v.flags,
                                    *reason ? py::str(reason) : empty_);
        }
        return out;
    }

    // State and reason of each event right after open (before any window).
    py::list open_states() const {
        py::list out;
        for (size_t i = 0; i < mel_counters_count(c_); ++i) out.append(py::make_tuple(mel_counters_name(c_, i), mel_counters_reason(c_, i)));
        return out;
    }

private:
    static constexpr int kStates = MEL_COUNTER_DENIED + 1;
    mel_counters* c_ = nullptr;
    std::vector<mel_counter_value> values_;
    bool have_window_ = false;
    py::tuple names_;               // event names as str, made once
    py::object states_[kStates];    // state names as str, made once
    py::str empty_;
};
#endif


// --- architecture encoders ----------------------------------------------------------------------
// archs: any sequence of str. Each string's UTF-8 form is read in place (CPython caches it in the
// str object); a tuple of the strings keeps them alive while the GIL is released.

[[noreturn]] void raise_input(const std::string& msg) {
    py::object exc = g_errors.attr("InputError")(msg);
    exc.attr("status") = py::str("MEL_ERR_INVALID_ARGUMENT");
    PyErr_SetObject(py::type::handle_of(exc).ptr(), exc.ptr());
    throw py::error_already_set();
}

struct ArchStrings {
    py::tuple keep;
    std::vector<const char*> ptrs;
};

ArchStrings arch_strings(const py::handle& archs) {
    if (PyUnicode_Check(archs.ptr()) || PyBytes_Check(archs.ptr()))
        raise_input("archs must be a sequence of str (for one architecture, pass [arch])");
    PyObject* t = PySequence_Tuple(archs.ptr());
    if (!t) {
        PyErr_Clear();
        raise_input("archs must be a sequence of str (got " + std::string(py::str(py::type::handle_of(archs).attr("__name__"))) + ")");
    }
    ArchStrings a{py::reinterpret_steal<py::tuple>(t), {}};
    const Py_ssize_t n = PyTuple_GET_SIZE(t);
    a.ptrs.resize(size_t(n));
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* o = PyTuple_GET_ITEM(t, i);
        auto where = [i] { return "archs[" + std::to_string(i) + "]"; };
        if (!PyUnicode_Check(o))
            raise_input(where() + " must be a str (got " + std::string(py::str(py::type::handle_of(o).attr("__name__"))) + ")");
        Py_ssize_t size = 0;
        const char* u = PyUnicode_AsUTF8AndSize(o, &size);
        if (!u) {
            PyErr_Clear();
            raise_input(where() + " cannot be encoded as UTF-8 (lone surrogate?)");
        }
        if (std::memchr(u, 0, size_t(size))) raise_input(where() + " contains a NUL character");
        a.ptrs[size_t(i)] = u;
    }
    return a;
}

std::vector<std::string> encoder_feature_names(const std::string& space) {
    size_t d = 0;
    check(mel_encoder_dim(space.c_str(), &d));
    std::vector<std::string> v;
    for (size_t i = 0; i < d; ++i) {
        const char* s = nullptr;
        check(mel_encoder_feature_name(space.c_str(), i, &s));
        v.emplace_back(s);
    }
    return v;
}

py::array_t<float> encode_archs(const std::string& space, const py::handle& archs) {
    size_t d = 0;
    check(mel_encoder_dim(space.c_str(), &d));
    const ArchStrings a = arch_strings(archs);
    const size_t n = a.ptrs.size();
    py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(d)});
    float* po = out.mutable_data();
    check(run_batch(n, [&] { return mel_encode(space.c_str(), a.ptrs.data(), n, po); }));
    return out;
}

py::array_t<float> predict_arch(const PyModel& m, const py::handle& archs) {
    const ArchStrings a = arch_strings(archs);
    const size_t n = a.ptrs.size();
    py::array_t<float> out(static_cast<py::ssize_t>(n));
    float* po = out.mutable_data();
    check(run_batch(n, [&] { return mel_model_predict_arch(m.handle(), a.ptrs.data(), n, po); }));
    return out;
}

py::tuple predict_arch_interval(const PyModel& m, const py::handle& archs) {
    const ArchStrings a = arch_strings(archs);
    const size_t n = a.ptrs.size();
    py::array_t<float> ms(static_cast<py::ssize_t>(n)), lo(static_cast<py::ssize_t>(n)), hi(static_cast<py::ssize_t>(n));
    float *pm = ms.mutable_data(), *pl = lo.mutable_data(), *ph = hi.mutable_data();
    check(run_batch(n, [&] { return mel_model_predict_arch_interval(m.handle(), a.ptrs.data(), n, pm, pl, ph); }));
    return py::make_tuple(ms, lo, hi);
}

py::tuple predict_interval(const PyModel& m, const py::array& x) {
    const size_t n = m.rows_of(x);
    py::array_t<float> ms(static_cast<py::ssize_t>(n)), lo(static_cast<py::ssize_t>(n)), hi(static_cast<py::ssize_t>(n));
    const float* px = static_cast<const float*>(x.data());
    float *pm = ms.mutable_data(), *pl = lo.mutable_data(), *ph = hi.mutable_data();
    check(run_batch(n, [&] { return mel_model_predict_interval(m.handle(), px, n, pm, pl, ph); }));
    return py::make_tuple(ms, lo, hi);
}

py::object interval_level(const PyModel& m) {
    double level = 0.0;
    if (mel_model_interval_level(m.handle(), &level) != MEL_OK) return py::none();
    return py::float_(level);
}

// --- layer cost models --------------------------------------------------------------------------

// rows: float32, C-contiguous, [n_layers, n_columns] (the Python Model converts a LayerTable's array).
py::tuple predict_layers(const PyModel& m, const py::array& rows, uint32_t table_schema, bool with_interval) {
    if (!rows.dtype().equal(py::dtype::of<float>()) || !(rows.flags() & py::array::c_style) || rows.ndim() != 2)
        raise_input("rows must be a C-contiguous float32 array [n_layers, n_columns]");
    const size_t n = size_t(rows.shape(0)), c = size_t(rows.shape(1));
    const float* p = static_cast<const float*>(rows.data());
    float ms = 0.0f, lo = 0.0f, hi = 0.0f;
    int st;
    {
        py::gil_scoped_release nogil;
        st = mel_model_predict_layers(m.handle(), p, n, c, table_schema, &ms, with_interval ? &lo : nullptr,
                                      with_interval ? &hi : nullptr);
    }
    check(st);
    if (!with_interval) return py::make_tuple(ms);
    return py::make_tuple(ms, lo, hi);
}

std::vector<std::string> layer_names(const PyModel& m, int which) {
    size_t n = 0;
    check(mel_model_layer_names(m.handle(), which, nullptr, 0, &n));
    std::vector<const char*> v(n);
    check(mel_model_layer_names(m.handle(), which, v.data(), v.size(), &n));
    return std::vector<std::string>(v.begin(), v.end());
}

// (table_schema, float32 [n_layers, n_columns] copy) of a layer rows file's bytes.
py::tuple parse_layer_rows(const py::bytes& data) {
    std::string buf = data;  // a copy: std::string's storage is suitably aligned for float
    uint32_t schema = 0;
    size_t n = 0, c = 0;
    const float* rows = nullptr;
    check(mel_layer_rows_parse(buf.data(), buf.size(), &schema, &n, &c, &rows));
    py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(c)});
    if (n * c) std::memcpy(out.mutable_data(), rows, n * c * sizeof(float));
    return py::make_tuple(schema, out);
}

void def_encoders(py::module_& mod) {
    mod.def("encoder_dim", [](const std::string& space) {
        size_t d = 0;
        check(mel_encoder_dim(space.c_str(), &d));
        return d;
    });
    mod.def("encoder_feature_names", &encoder_feature_names, py::arg("space"));
    mod.def("encoder_schema_version", [](const std::string& space) {
        int v = 0;
        check(mel_encoder_schema_version(space.c_str(), &v));
        return v;
    });
    mod.def("encoder_schema_dims", [](const std::string& space) {
        int v = 0;
        check(mel_encoder_schema_version(space.c_str(), &v));
        std::vector<size_t> dims;
        for (int k = 1; k <= v; ++k) {
            size_t d = 0;
            check(mel_encoder_schema_dim(space.c_str(), k, &d));
            dims.push_back(d);
        }
        return dims;
    });
    mod.def("encode", &encode_archs, py::arg("space"), py::arg("archs"),
            "float32 [n, dim] features of n architecture strings (the GIL is released for n > 64).");
    mod.attr("SPACE_NB201") = MEL_SPACE_NB201;
    mod.attr("SPACE_FBNET") = MEL_SPACE_FBNET;
}

const mel_py_api kPyApi = {
    sizeof(mel_py_api), mel_status_name, mel_last_error, mel_model_input_dim, mel_model_predict, mel_counter_state_name,
#if defined(__linux__)
    mel_counters_open, mel_counters_start, mel_counters_stop, mel_counters_read, mel_counters_free, mel_counters_count,
    mel_counters_name, mel_counters_reason,
#else
    nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
#endif
};

}  // namespace

PYBIND11_MODULE(_core, mod) {
    mod.doc() = "maple_edge_lite C core (internal; use the maple_edge_lite package)";
    g_errors = py::module_::import("maple_edge_lite._errors");
    // Keep the errors module alive for the interpreter's lifetime without a static destructor.
    g_errors.inc_ref();

    mod.def("version", &mel_version, "Package version of the loaded C library.");
    mod.def("abi_version", &mel_abi_version);
    mod.def("kernel_name", &mel_kernel_name, "int8 kernel chosen for this CPU.");
    mod.def("kernel_available", [](const std::string& k) { return mel_internal_kernel_available(k.c_str()) == 1; });
    mod.attr("FORMAT_VERSION") = MEL_FORMAT_VERSION;
    mod.attr("QUANT_SCHEME_VERSION") = MEL_QUANT_SCHEME_VERSION;
    mod.attr("ABI_VERSION") = MEL_ABI_VERSION;
    mod.attr("MAX_DIM") = MEL_MAX_DIM;
    mod.attr("MAX_LAYERS") = MEL_MAX_LAYERS;
    // This module's copy of the C library for maple_edge_lite._cycore (mel_py_api.h).
    mod.attr("_c_api") = py::capsule(static_cast<const void*>(&kPyApi), MEL_PY_API_CAPSULE);

#if defined(__linux__)
    py::class_<PyCounters>(mod, "_Counters")
        .def(py::init<const std::vector<std::string>&, unsigned>(), py::arg("names"), py::arg("flags") = 0)
        .def("start", &PyCounters::start)
        .def("stop", &PyCounters::stop)
        .def("read", &PyCounters::read)
        .def("close", &PyCounters::close)
        .def("open_states", &PyCounters::open_states);
    mod.attr("COUNTERS_NO_INHERIT") = MEL_COUNTERS_NO_INHERIT;
    mod.attr("COUNTERS_EXCLUDE_KERNEL") = MEL_COUNTERS_EXCLUDE_KERNEL;
    mod.attr("COUNTERS_NO_GROUP") = MEL_COUNTERS_NO_GROUP;
    mod.attr("COUNTER_FLAG_KERNEL_EXCLUDED") = MEL_COUNTER_FLAG_KERNEL_EXCLUDED;
    mod.attr("COUNTER_FLAG_NO_INHERIT") = MEL_COUNTER_FLAG_NO_INHERIT;
    mod.def("counters_known_events", [] {
        std::vector<const char*> v(mel_counters_known_events(nullptr, 0));
        v.resize(mel_counters_known_events(v.data(), v.size()));
        return std::vector<std::string>(v.begin(), v.end());
    });
    mod.def("counters_register_event", [](const std::string& name, uint32_t type, uint64_t config) {
        check(mel_counters_register_event(name.c_str(), type, config));
    });
    mod.def("perf_event_paranoid", [] {
        const int p = mel_perf_event_paranoid();
        return p == INT_MIN ? py::object(py::none()) : py::object(py::int_(p));
    });
    mod.def("_counters_fake", [](const py::object& spec) {
        if (spec.is_none()) check(mel_internal_counters_fake(nullptr));
        else check(mel_internal_counters_fake(py::cast<std::string>(spec).c_str()));
    });
    mod.def("_counters_fake_open_fds", &mel_internal_counters_fake_open_fds);
    mod.def("_counters_fake_bad_closes", &mel_internal_counters_fake_bad_closes);
#endif

    py::class_<PyModel>(mod, "_Model")
        .def_static("load_file", &PyModel::load_file, py::arg("path"))
        .def_static("load_buffer", &PyModel::load_buffer, py::arg("data"))
        .def_property_readonly("input_dim", &PyModel::input_dim)
        .def_property_readonly("layer_dims", &PyModel::layer_dims)
        .def_property_readonly("feature_names", &PyModel::feature_names)
        .def_property_readonly("metadata_json", &PyModel::metadata_json)
        .def("predict", &PyModel::predict, py::arg("x"), py::arg("out") = py::none(), py::arg("kernel") = py::none())
        // The model handle for maple_edge_lite._cycore.Predictor, which keeps this object alive.
        .def("_capsule", [](const PyModel& m) {
            return py::capsule(const_cast<mel_model*>(m.handle()), "maple_edge_lite.mel_model");
        })
        .def("predict_raw", &PyModel::predict_raw, py::arg("x"), py::arg("kernel") = py::none())
        .def("predict_arch", &predict_arch, py::arg("archs"))
        .def("predict_arch_interval", &predict_arch_interval, py::arg("archs"))
        .def("predict_interval", &predict_interval, py::arg("x"))
        .def_property_readonly("interval_level", &interval_level)
        .def_property_readonly("kind", [](const PyModel& m) {
            return mel_model_kind(m.handle()) == MEL_MODEL_LAYER_COST ? "layer_cost" : "mlp";
        })
        .def("predict_layers", &predict_layers, py::arg("rows"), py::arg("table_schema"), py::arg("interval") = true)
        .def("layer_names", &layer_names, py::arg("which"))
        .def_property_readonly("layer_align", [](const PyModel& m) {
            uint32_t align = 0, min_cin = 0;
            check(mel_model_layer_align(m.handle(), &align, &min_cin));
            size_t n = 0;
            check(mel_model_layer_align_cost(m.handle(), nullptr, 0, &n));
            std::vector<double> w(n);
            check(mel_model_layer_align_cost(m.handle(), w.data(), w.size(), &n));
            return py::make_tuple(align, min_cin, py::tuple(py::cast(w)));
        })
        .def_property_readonly("layer_spill", [](const PyModel& m) {
            double threshold = 0.0, w = 0.0;
            check(mel_model_layer_spill(m.handle(), &threshold, &w));
            return py::make_tuple(threshold, w);
        })
        .def_property_readonly("layer_table_schema", [](const PyModel& m) {
            uint32_t v = 0;
            check(mel_model_layer_table_schema(m.handle(), &v));
            return v;
        });
    mod.def("parse_layer_rows", &parse_layer_rows, py::arg("data"));
    mod.attr("LAYER_TABLE_SCHEMA") = MEL_LAYER_TABLE_SCHEMA;
    mod.attr("LAYER_COLUMNS") = MEL_LAYER_COLUMNS;
    def_encoders(mod);
}

// The C ABI. Every entry point runs inside guard(): a mel::Error becomes its status, any other
// exception MEL_ERR_NO_MEMORY or MEL_ERR_INTERNAL, and the message goes to the thread-local
// last error. Nothing throws across the ABI.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "error.hpp"
#include "guard.hpp"
#include "maple_edge_lite/maple_edge_lite.h"
#include "model/format.hpp"
#include "model/kernels.hpp"
#include "model/predict.hpp"
#include "version.h"
#include "model/handle.hpp"

namespace mel {

namespace {
thread_local std::string t_last_error;
}

void set_last_error(const std::string& message) noexcept {
    try {
        t_last_error = message;
    } catch (...) {
        t_last_error.clear();
    }
}
void clear_last_error() noexcept { t_last_error.clear(); }

namespace {

// The largest file a v1 reader can accept (16 layers of 4096 x 4096, names, 16 MiB of metadata)
// is under 300 MiB: anything longer is refused before it is read into memory.
constexpr size_t kMaxFileBytes = size_t(320) << 20;

std::vector<unsigned char> read_file(const char* path) {
    const std::string p(path);
    std::FILE* f = std::fopen(path, "rb");
    if (!f) {
        const int err = errno;
        if (err == ENOENT || err == ENOTDIR) fail(MEL_ERR_NOT_FOUND, "weights file not found: " + p);
        if (err == EACCES || err == EPERM)
            fail(MEL_ERR_PERMISSION, "permission denied reading " + p + ": check the file's mode and owner");
        if (err == EISDIR) fail(MEL_ERR_IO, p + " is a directory, not a weights file");
        fail(MEL_ERR_IO, "cannot open " + p + ": " + std::strerror(err) + " (errno " + std::to_string(err) + ")");
    }
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, std::fclose);
    struct stat st;
    std::vector<unsigned char> data;
    if (fstat(fileno(f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) fail(MEL_ERR_IO, p + " is a directory, not a weights file");
        if (S_ISREG(st.st_mode)) {
            if (uint64_t(st.st_size) > kMaxFileBytes)
                fail(MEL_ERR_LIMIT, p + " is " + std::to_string(st.st_size) +
                                        " bytes, larger than any maple_edge_lite weights file (320 MiB)");
            data.reserve(size_t(st.st_size));
        }
    }
    unsigned char chunk[65536];
    size_t got;
    while ((got = std::fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (data.size() + got > kMaxFileBytes)  // a device or pipe that does not end: stop early
            fail(MEL_ERR_LIMIT, p + " yields more than 320 MiB: not a maple_edge_lite weights file");
        data.insert(data.end(), chunk, chunk + got);
    }
    if (std::ferror(f)) {
        const int err = errno;
        if (err == EISDIR) fail(MEL_ERR_IO, p + " is a directory, not a weights file");
        fail(MEL_ERR_IO, "error reading " + p + ": " + std::strerror(err) + " (errno " + std::to_string(err) + ")");
    }
    return data;
}

int load(const unsigned char* data, size_t size, mel_model** out, const char* path) {
    return guard([&] {
        try {
            auto h = std::make_unique<mel_model>();
            h->m = parse_model(data, size);
            *out = h.release();
        } catch (const Error& e) {
            if (path) throw Error(e.status(), std::string(path) + ": " + e.what());
            throw;
        }
    });
}

}  // namespace
}  // namespace mel

using mel::fail;
using mel::guard;
using mel::need;

extern "C" {

const char* mel_status_name(int status) {
    switch (status) {
        case MEL_OK: return "MEL_OK";
        case MEL_ERR_INVALID_ARGUMENT: return "MEL_ERR_INVALID_ARGUMENT";
        case MEL_ERR_NOT_FOUND: return "MEL_ERR_NOT_FOUND";
        case MEL_ERR_IO: return "MEL_ERR_IO";
        case MEL_ERR_PERMISSION: return "MEL_ERR_PERMISSION";
        case MEL_ERR_FORMAT: return "MEL_ERR_FORMAT";
        case MEL_ERR_VERSION: return "MEL_ERR_VERSION";
        case MEL_ERR_CHECKSUM: return "MEL_ERR_CHECKSUM";
        case MEL_ERR_LIMIT: return "MEL_ERR_LIMIT";
        case MEL_ERR_NUMERIC: return "MEL_ERR_NUMERIC";
        case MEL_ERR_NO_MEMORY: return "MEL_ERR_NO_MEMORY";
        case MEL_ERR_UNSUPPORTED: return "MEL_ERR_UNSUPPORTED";
        case MEL_ERR_RESOURCE: return "MEL_ERR_RESOURCE";
        case MEL_ERR_INTERNAL: return "MEL_ERR_INTERNAL";
        default: return "MEL_UNKNOWN_STATUS";
    }
}

const char* mel_last_error(void) { return mel::t_last_error.c_str(); }
const char* mel_version(void) { return MEL_VERSION_STRING; }
int mel_abi_version(void) { return MEL_ABI_VERSION; }
const char* mel_kernel_name(void) { return mel::active_kernel().name; }

int mel_model_load_file(const char* path, mel_model** out) {
    if (!out) return guard([] { fail(MEL_ERR_INVALID_ARGUMENT, "out is NULL"); });
    *out = nullptr;
    if (!path) return guard([] { fail(MEL_ERR_INVALID_ARGUMENT, "path is NULL"); });
    std::vector<unsigned char> data;
    const int st = guard([&] { data = mel::read_file(path); });
    if (st != MEL_OK) return st;
    return mel::load(data.data(), data.size(), out, path);
}

int mel_model_load_buffer(const void* data, size_t size, mel_model** out) {
    if (!out) return guard([] { fail(MEL_ERR_INVALID_ARGUMENT, "out is NULL"); });
    *out = nullptr;
    if (!data && size) return guard([] { fail(MEL_ERR_INVALID_ARGUMENT, "data is NULL"); });
    static const unsigned char empty = 0;
    return mel::load(data ? static_cast<const unsigned char*>(data) : &empty, size, out, nullptr);
}

void mel_model_free(mel_model* model) { delete model; }

size_t mel_model_input_dim(const mel_model* model) { return model ? model->m->input_dim : 0; }
size_t mel_model_num_layers(const mel_model* model) { return model ? model->m->layers.size() : 0; }
size_t mel_model_layer_dim(const mel_model* model, size_t layer) {
    if (!model || layer >= model->m->layers.size()) return 0;
    return model->m->layers[layer].out;
}

int mel_model_feature_name(const mel_model* model, size_t i, const char** out) {
    return guard([&] {
        need(model, "model");
        need(out, "out");
        if (i >= model->m->feature_names.size())
            fail(MEL_ERR_INVALID_ARGUMENT, "feature index " + std::to_string(i) + " out of range (input_dim " +
                                               std::to_string(model->m->feature_names.size()) + ")");
        *out = model->m->feature_names[i].c_str();
    });
}

int mel_model_metadata(const mel_model* model, const char** json, size_t* len) {
    return guard([&] {
        need(model, "model");
        need(json, "json");
        *json = model->m->metadata.c_str();
        if (len) *len = model->m->metadata.size();
    });
}

int mel_model_predict(const mel_model* model, const float* x, size_t n_rows, float* out_ms) {
    return guard([&] {
        need(model, "model");
        mel::need_mlp(model);
        if (n_rows == 0) return;
        need(x, "x");
        need(out_ms, "out_ms");
        mel::forward(*model->m, mel::active_kernel(), x, n_rows, out_ms, nullptr);
    });
}

int mel_model_interval_level(const mel_model* model, double* level) {
    return guard([&] {
        need(model, "model");
        need(level, "level");
        if (!model->m->has_interval)
            fail(MEL_ERR_UNSUPPORTED, "this model carries no interval (only device models written by adapt do)");
        *level = model->m->iv_level;
    });
}

int mel_model_predict_interval(const mel_model* model, const float* x, size_t n_rows, float* out_ms, float* out_lo,
                               float* out_hi) {
    return guard([&] {
        need(model, "model");
        mel::need_mlp(model);
        if (!model->m->has_interval)
            fail(MEL_ERR_UNSUPPORTED, "this model carries no interval (only device models written by adapt do)");
        if (n_rows == 0) return;
        need(x, "x");
        need(out_ms, "out_ms");
        need(out_lo, "out_lo");
        need(out_hi, "out_hi");
        mel::forward(*model->m, mel::active_kernel(), x, n_rows, out_ms, nullptr);
        mel::interval(*model->m, x, n_rows, out_ms, out_lo, out_hi);
    });
}

int mel_model_predict_raw(const mel_model* model, const float* x, size_t n_rows, double* out) {
    return guard([&] {
        need(model, "model");
        mel::need_mlp(model);
        if (n_rows == 0) return;
        need(x, "x");
        need(out, "out");
        mel::forward(*model->m, mel::active_kernel(), x, n_rows, nullptr, out);
    });
}

}  // extern "C"

// Internal entry for tests and benchmarks (not in the public header): predict with a named kernel.
extern "C" MEL_API int mel_internal_predict_with_kernel(const mel_model* model, const char* kernel, const float* x,
                                                        size_t n_rows, float* out_ms, double* out_raw) {
    return guard([&] {
        need(model, "model");
        mel::need_mlp(model);
        const mel::Kernel* k = mel::find_kernel(kernel);
        if (!k) fail(MEL_ERR_UNSUPPORTED, std::string("kernel '") + (kernel ? kernel : "(null)") + "' is not available on this CPU or build");
        if (n_rows == 0) return;
        need(x, "x");
        if (!out_ms && !out_raw) fail(MEL_ERR_INVALID_ARGUMENT, "out_ms and out_raw are both NULL");
        mel::forward(*model->m, *k, x, n_rows, out_ms, out_ms ? nullptr : out_raw);
    });
}

extern "C" MEL_API int mel_internal_kernel_available(const char* kernel) { return mel::find_kernel(kernel) ? 1 : 0; }

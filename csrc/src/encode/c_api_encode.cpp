// C API of the architecture encoders (the "Architecture encoders" block of the public header),
// the encoder registry, and mel_model_predict_arch: encode a chunk of strings into a small
// stack buffer, run the model's forward pass on it, repeat.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "../error.hpp"
#include "../guard.hpp"
#include "../model/kernels.hpp"
#include "../model/predict.hpp"
#include "encode.hpp"
#include "maple_edge_lite/maple_edge_lite.h"
#include "../model/handle.hpp"

// The handle behind mel_model. This definition must stay token-for-token identical to the one in
// c_api.cpp (one definition rule); it is repeated here because this file needs the Model.
namespace mel::enc {

const Encoder* find_encoder(const char* name) {
    if (!name) return nullptr;
    for (const Encoder* e : {&nb201_encoder(), &fbnet_encoder()})
        if (std::strcmp(e->name, name) == 0) return e;
    return nullptr;
}

const Encoder* encoder_by_id(uint32_t space_id) {
    for (const Encoder* e : {&nb201_encoder(), &fbnet_encoder()})
        if (e->space_id == space_id) return e;
    return nullptr;
}

std::string known_spaces() { return std::string(nb201_encoder().name) + ", " + fbnet_encoder().name; }

const Encoder& require_encoder(const char* name) {
    need(name, "space");
    const Encoder* e = find_encoder(name);
    if (!e)
        fail(MEL_ERR_INVALID_ARGUMENT, "unknown search space " + quoted(name, std::strlen(name)) + "; known: " + known_spaces());
    return *e;
}

std::string quoted(const char* s, size_t len) {
    constexpr size_t kShow = 160;
    std::string q = "'";
    for (size_t i = 0; i < len && i < kShow; ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F && c != '\\' && c != '\'') {
            q += char(c);
        } else if (c == '\\' || c == '\'') {
            q += '\\';
            q += char(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            q += buf;
        }
    }
    q += "'";
    if (len > kShow) q += " (" + std::to_string(len) + " bytes, shortened)";
    return q;
}

void encode_batch(const Encoder& e, const char* const* archs, size_t n, float* out, size_t first_index) {
    const size_t dim = e.dim();
    for (size_t i = 0; i < n; ++i) {
        const char* s = archs[i];
        if (!s) fail(MEL_ERR_INVALID_ARGUMENT, "archs[" + std::to_string(first_index + i) + "] is NULL");
        size_t len = 0;  // strnlen, without relying on POSIX
        while (len <= kMaxArchBytes && s[len]) ++len;
        if (len > kMaxArchBytes)
            fail(MEL_ERR_INVALID_ARGUMENT, "archs[" + std::to_string(first_index + i) + "]: invalid " + e.name +
                                               " architecture " + quoted(s, 40) + "...: longer than " +
                                               std::to_string(kMaxArchBytes) + " bytes; no " + e.name +
                                               " architecture is that long");
        try {
            e.encode(s, len, out + i * dim);
        } catch (const Error& err) {
            throw Error(err.status(), "archs[" + std::to_string(first_index + i) + "]: invalid " + e.name + " architecture " +
                                          quoted(s, len) + ": " + err.what());
        }
    }
}

}  // namespace mel::enc

using mel::fail;
using mel::guard;
using mel::need;

extern "C" {

int mel_encoder_dim(const char* space, size_t* dim) {
    return guard([&] {
        need(dim, "dim");
        *dim = mel::enc::require_encoder(space).dim();
    });
}

int mel_encoder_feature_name(const char* space, size_t i, const char** name) {
    return guard([&] {
        need(name, "name");
        const auto& names = mel::enc::require_encoder(space).feature_names();
        if (i >= names.size())
            fail(MEL_ERR_INVALID_ARGUMENT, "feature index " + std::to_string(i) + " out of range (the " + space +
                                               " encoder has " + std::to_string(names.size()) + " features)");
        *name = names[i].c_str();
    });
}

int mel_encoder_schema_version(const char* space, int* version) {
    return guard([&] {
        need(version, "version");
        *version = mel::enc::require_encoder(space).schema_version;
    });
}

int mel_encoder_schema_dim(const char* space, int version, size_t* dim) {
    return guard([&] {
        need(dim, "dim");
        const mel::enc::Encoder& e = mel::enc::require_encoder(space);
        const size_t d = version >= 1 ? e.dim_of(uint32_t(version)) : 0;
        if (d == 0)
            fail(MEL_ERR_INVALID_ARGUMENT, "the " + std::string(e.name) + " feature schema has versions 1 to " +
                                               std::to_string(e.schema_version) + ", not " + std::to_string(version));
        *dim = d;
    });
}

int mel_encode(const char* space, const char* const* archs, size_t n, float* out) {
    return guard([&] {
        const mel::enc::Encoder& e = mel::enc::require_encoder(space);
        if (n == 0) return;
        need(archs, "archs");
        need(out, "out");
        mel::enc::encode_batch(e, archs, n, out);
    });
}

static int predict_arch(const mel_model* model, const char* const* archs, size_t n, float* out_ms, bool with_interval,
                        float* out_lo, float* out_hi) {
    return guard([&] {
        need(model, "model");
        mel::need_mlp(model);
        const mel::Model& m = *model->m;
        const mel::enc::Encoder* e = mel::enc::encoder_by_id(m.encoder_space);
        if (!e)
            fail(MEL_ERR_UNSUPPORTED,
                 "this model has no architecture encoder; pass feature vectors to mel_model_predict");
        // The model's schema version may be older than the encoder's: its features are then the
        // first dim of each encoded row (encode_batch writes full rows; they are packed below).
        const size_t full = e->dim(), dim = e->dim_of(m.encoder_version);
        if (m.input_dim != dim)
            fail(MEL_ERR_INVALID_ARGUMENT,
                 "this model takes " + std::to_string(m.input_dim) + " features: the " + std::to_string(dim) + " " +
                     e->name + " architecture features and " + std::to_string(m.input_dim - dim) + " more (from '" +
                     m.feature_names[dim] + "'), so it needs a device descriptor; adapt it to a device first "
                     "(`maple-edge-lite adapt`) or pass full feature vectors to mel_model_predict");
        if (with_interval && !m.has_interval)
            fail(MEL_ERR_UNSUPPORTED, "this model carries no interval (only device models written by adapt do)");
        if (n == 0) return;
        need(archs, "archs");
        need(out_ms, "out_ms");
        if (with_interval) {
            need(out_lo, "out_lo");
            need(out_hi, "out_hi");
        }
        // Encode a chunk into this buffer, predict it, go on: no heap allocation, 8 KiB of stack
        // on top of what the forward pass takes.
        constexpr size_t kBufFloats = 2048;
        float buf[kBufFloats];
        if (full > kBufFloats) fail(MEL_ERR_INTERNAL, std::string(e->name) + " features do not fit predict_arch's buffer");
        const size_t rows = kBufFloats / full;  // 20 nb201 rows, 8 fbnet rows
        const mel::Kernel& k = mel::active_kernel();
        for (size_t r0 = 0; r0 < n; r0 += rows) {
            const size_t cnt = std::min(rows, n - r0);
            mel::enc::encode_batch(*e, archs + r0, cnt, buf, r0);
            if (dim != full)  // row i moves from i * full to i * dim <= i * full: forward order is safe
                for (size_t i = 1; i < cnt; ++i) std::memmove(buf + i * dim, buf + i * full, dim * sizeof(float));
            try {
                mel::forward(m, k, buf, cnt, out_ms + r0, nullptr);
                if (with_interval) mel::interval(m, buf, cnt, out_ms + r0, out_lo + r0, out_hi + r0);
            } catch (const mel::Error& err) {
                throw mel::Error(err.status(), "predicting archs[" + std::to_string(r0) + ".." +
                                                   std::to_string(r0 + cnt - 1) + "]: " + err.what());
            }
        }
    });
}

int mel_model_predict_arch(const mel_model* model, const char* const* archs, size_t n, float* out_ms) {
    return predict_arch(model, archs, n, out_ms, false, nullptr, nullptr);
}

int mel_model_predict_arch_interval(const mel_model* model, const char* const* archs, size_t n, float* out_ms,
                                    float* out_lo, float* out_hi) {
    return predict_arch(model, archs, n, out_ms, true, out_lo, out_hi);
}

}  // extern "C"

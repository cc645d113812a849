// The layer cost model's evaluation (docs/format.md, LAYER_COST) and the layer rows file
// (docs/layers.md): mel_model_predict_layers, mel_model_layer_names, mel_layer_rows_parse.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "../error.hpp"
#include "../guard.hpp"
#include "crc32.hpp"
#include "handle.hpp"
#include "maple_edge_lite/maple_edge_lite.h"

namespace mel {
namespace {

[[noreturn]] void bad_value(const Model& m, size_t row, size_t col, float v, const char* why) {
    fail(MEL_ERR_INVALID_ARGUMENT, "layer " + std::to_string(row) + ", column " + std::to_string(col) + " ('" +
                                       m.feature_names[col] + "') is " + std::to_string(v) + ": " + why);
}

// An index column: a whole number in [0, n).
uint32_t index_of(const Model& m, const float* r, size_t row, uint32_t col, size_t n, const char* what) {
    const float v = r[col];
    if (!(v < float(n)) || v != std::floor(v))
        bad_value(m, row, col, v, (std::string("not the index of one of the model's ") + std::to_string(n) + " " +
                                   what + " (a table of another layer-table schema?)").c_str());
    return uint32_t(v);
}

// Sums each part's cost over the rows, in double, in row order (the numpy reference sums the same
// terms per class; the two agree to float32 rounding of the inputs and coefficients).
void predict(const Model& m, const float* rows, size_t n_layers, size_t n_columns, float* out_ms, float* out_lo,
             float* out_hi) {
    const LayerCost& lc = m.lc;
    double part[kLayerCostMaxParts] = {0.0};
    part[0] = lc.c0;
    for (size_t i = 0; i < n_layers; ++i) {
        const float* r = rows + i * n_columns;
        for (size_t c = 0; c < n_columns; ++c)  // every count, size and index is finite and >= 0
            if (!(r[c] >= 0.0f && r[c] <= 3.4028235e38f)) bad_value(m, i, c, r[c], "every column must be a finite number >= 0");
        const uint32_t k = index_of(m, r, i, lc.col_kind, lc.kinds.size(), "layer kinds");
        const uint32_t a = index_of(m, r, i, lc.col_act, lc.activations.size(), "activations");
        const double macs = double(r[lc.col_macs]) / 1e6, rd = double(r[lc.col_read]) / 1e6,
                     wr = double(r[lc.col_written]) / 1e6;
        const double* w = lc.kind_w.data() + 4 * size_t(k);
        part[lc.kind_part[k]] += w[0] + w[1] * macs + w[2] * rd + w[3] * wr;
        if (lc.align) {  // scheme 3: channel counts off the runtime's blocked layout
            const double cin = r[lc.col_cin], cout = r[lc.col_cout];
            if (std::fmod(cout, double(lc.align)) != 0.0 ||
                (cin > double(lc.align_min_cin) && std::fmod(cin, double(lc.align)) != 0.0))
                part[lc.kind_part[k]] += lc.align_w[k] * macs;
        }
        if (lc.chan_align) {  // scheme 4: a per-channel cost off the runtime's kernel width (depthwise)
            const double cout = r[lc.col_cout];
            if (std::fmod(cout, double(lc.chan_align)) != 0.0) part[lc.kind_part[k]] += lc.chan_w[k] * (cout / 1000.0);
        }
        if (lc.act_part[a]) {  // a fused activation the runtime runs as a pass over the output
            const double* v = lc.act_w.data() + 4 * size_t(a);
            part[lc.act_part[a]] += v[0] + v[2] * wr + v[3] * wr;
        }
        if (lc.spill_part) {  // scheme 2: the bytes this layer moves beyond the core's cache
            const double beyond = double(r[lc.col_read]) + double(r[lc.col_written]) - lc.spill_threshold;
            if (beyond > 0.0) part[lc.spill_part] += lc.spill_w * (beyond / 1e6);
        }
    }
    double ms = 0.0;
    for (uint32_t p = 0; p < lc.n_parts; ++p) ms = ms + lc.mult[p] * part[p];
    if (!(std::isfinite(ms) && ms > 0.0) || !(float(ms) > 0.0f) || !std::isfinite(float(ms)))
        fail(MEL_ERR_NUMERIC, "the layer cost model predicts " + std::to_string(ms) +
                                  " ms, not a finite positive latency (a corrupt table or model?)");
    *out_ms = float(ms);
    if (!out_lo) return;
    // The interval: sd^2 = |part^T post|^2 / ms^2 + noise^2, as LayerCostModel.interval.
    double v = 0.0;
    for (uint32_t j = 0; j < lc.rank; ++j) {
        double u = 0.0;
        for (uint32_t p = 0; p < lc.n_parts; ++p) u = u + part[p] * lc.post[size_t(p) * lc.rank + j];
        v = v + u * u;
    }
    const double sd = std::sqrt(v / (ms * ms) + lc.noise * lc.noise);
    const double w = std::min(lc.z * sd, 40.0);  // the cap of docs/format.md, INTERVAL
    *out_lo = float(ms * std::exp(-w));
    *out_hi = float(ms * std::exp(w));
    if (!(*out_lo > 0.0f) || !std::isfinite(*out_hi))
        fail(MEL_ERR_NUMERIC, "the interval is not finite and positive (sd " + std::to_string(sd) + ")");
}

const Model& layer_model(const mel_model* model) {
    need(model, "model");
    if (!model->m->is_layer_cost)
        fail(MEL_ERR_UNSUPPORTED, "this model is an MLP over a feature vector, not a layer cost model; use "
                                  "mel_model_predict (a layer cost model is a .melw packed by LayerCostModel.pack)");
    return *model->m;
}

uint32_t rd_u32(const unsigned char* p) {
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

constexpr unsigned char kRowsMagic[8] = {0x89, 'M', 'E', 'L', 'R', '\r', '\n', 0x1A};
constexpr uint32_t kRowsHeader = 32;
constexpr uint32_t kRowsVersion = 1;

}  // namespace
}  // namespace mel

using mel::fail;
using mel::guard;
using mel::need;

extern "C" {

int mel_model_kind(const mel_model* model) {
    if (!model) return 0;
    return model->m->is_layer_cost ? MEL_MODEL_LAYER_COST : MEL_MODEL_MLP;
}

int mel_model_predict_layers(const mel_model* model, const float* rows, size_t n_layers, size_t n_columns,
                             uint32_t table_schema, float* out_ms, float* out_lo, float* out_hi) {
    return guard([&] {
        const mel::Model& m = mel::layer_model(model);
        need(out_ms, "out_ms");
        if (!out_lo != !out_hi) fail(MEL_ERR_INVALID_ARGUMENT, "out_lo and out_hi must both be NULL or both be set");
        if (table_schema != m.lc.table_schema)
            fail(MEL_ERR_VERSION, "the rows are in layer-table schema " + std::to_string(table_schema) +
                                      " but the model was packed for schema " + std::to_string(m.lc.table_schema) +
                                      ": make the table and pack the model with the same maple_edge_lite version");
        if (n_columns != m.lc.n_columns)
            fail(MEL_ERR_INVALID_ARGUMENT, "the rows have " + std::to_string(n_columns) + " columns but the model's "
                                           "layer-table schema has " + std::to_string(m.lc.n_columns));
        if (n_layers) need(rows, "rows");
        if (n_layers > (size_t(1) << 40)) fail(MEL_ERR_INVALID_ARGUMENT, "n_layers is implausibly large");
        mel::predict(m, rows, n_layers, n_columns, out_ms, out_lo, out_hi);
    });
}

int mel_model_layer_names(const mel_model* model, int which, const char** names, size_t cap, size_t* n) {
    return guard([&] {
        const mel::Model& m = mel::layer_model(model);
        need(n, "n");
        if (which != 0 && which != 1) fail(MEL_ERR_INVALID_ARGUMENT, "which must be 0 (kinds) or 1 (activations)");
        const auto& v = which == 0 ? m.lc.kinds : m.lc.activations;
        *n = v.size();
        if (names)
            for (size_t i = 0; i < v.size() && i < cap; ++i) names[i] = v[i].c_str();
    });
}

int mel_model_layer_spill(const mel_model* model, double* threshold_bytes, double* ms_per_mb) {
    return guard([&] {
        const mel::Model& m = mel::layer_model(model);
        need(threshold_bytes, "threshold_bytes");
        need(ms_per_mb, "ms_per_mb");
        *threshold_bytes = m.lc.spill_part ? m.lc.spill_threshold : 0.0;
        *ms_per_mb = m.lc.spill_part ? m.lc.spill_w : 0.0;
    });
}

int mel_model_layer_align(const mel_model* model, uint32_t* align, uint32_t* min_cin) {
    return guard([&] {
        const mel::Model& m = mel::layer_model(model);
        need(align, "align");
        need(min_cin, "min_cin");
        *align = m.lc.align;
        *min_cin = m.lc.align ? m.lc.align_min_cin : 0;
    });
}

int mel_model_layer_align_cost(const mel_model* model, double* ms_per_mmac, size_t cap, size_t* n) {
    return guard([&] {
        const mel::Model& m = mel::layer_model(model);
        need(n, "n");
        const size_t k = m.lc.kinds.size();
        *n = k;
        if (ms_per_mmac)
            for (size_t i = 0; i < k && i < cap; ++i) ms_per_mmac[i] = m.lc.align ? m.lc.align_w[i] : 0.0;
    });
}

int mel_model_layer_table_schema(const mel_model* model, uint32_t* table_schema) {
    return guard([&] {
        const mel::Model& m = mel::layer_model(model);
        need(table_schema, "table_schema");
        *table_schema = m.lc.table_schema;
    });
}

int mel_layer_rows_parse(const void* data, size_t size, uint32_t* table_schema, size_t* n_layers, size_t* n_columns,
                         const float** rows) {
    return guard([&] {
        need(data, "data");
        need(table_schema, "table_schema");
        need(n_layers, "n_layers");
        need(n_columns, "n_columns");
        need(rows, "rows");
        const auto* d = static_cast<const unsigned char*>(data);
        const std::string pre = "invalid layer rows file: ";
        if (size < mel::kRowsHeader)
            fail(MEL_ERR_FORMAT, pre + std::to_string(size) + " bytes, shorter than the 32-byte header (truncated?)");
        if (std::memcmp(d, mel::kRowsMagic, 8) != 0)
            fail(MEL_ERR_FORMAT, pre + "bad magic: not a maple_edge_lite layer rows file (LayerTable.write_rows)");
        const uint32_t bom = mel::rd_u32(d + 8);
        if (bom == 0x04030201u) fail(MEL_ERR_FORMAT, pre + "byte-order mark says big-endian; rows files are little-endian");
        if (bom != 0x01020304u) fail(MEL_ERR_FORMAT, pre + "corrupt byte-order mark");
        const uint32_t version = uint32_t(d[12]) | (uint32_t(d[13]) << 8);
        if (version != mel::kRowsVersion)
            fail(MEL_ERR_VERSION, "layer rows file version " + std::to_string(version) +
                                      " is not supported by this library (reads version 1); upgrade maple_edge_lite");
        if (mel::crc32(d, 28) != mel::rd_u32(d + 28))
            fail(MEL_ERR_CHECKSUM, "layer rows file header CRC-32 mismatch: the file is damaged; re-copy or re-write it");
        const uint32_t schema = uint32_t(d[14]) | (uint32_t(d[15]) << 8);
        const uint32_t cols = mel::rd_u32(d + 16), n = mel::rd_u32(d + 20);
        if (schema == 0) fail(MEL_ERR_FORMAT, pre + "layer-table schema 0");
        if (cols == 0 || cols > MEL_MAX_DIM)
            fail(MEL_ERR_FORMAT, pre + std::to_string(cols) + " columns (must be 1.." + std::to_string(MEL_MAX_DIM) + ")");
        const uint64_t expect = mel::kRowsHeader + 4ull * cols * n;  // < 2^46: no overflow
        if (uint64_t(size) != expect)
            fail(MEL_ERR_FORMAT, pre + "header says " + std::to_string(n) + " layers of " + std::to_string(cols) +
                                     " columns (" + std::to_string(expect) + " bytes) but the data is " + std::to_string(size) +
                                     " bytes" + (uint64_t(size) < expect ? " (truncated: re-copy the file)" : " (trailing bytes)"));
        if (mel::crc32(d + mel::kRowsHeader, size - mel::kRowsHeader) != mel::rd_u32(d + 24))
            fail(MEL_ERR_CHECKSUM, "layer rows file CRC-32 mismatch: the rows are damaged; re-copy or re-write the file");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        fail(MEL_ERR_UNSUPPORTED, "layer rows files are little-endian and are read in place; this host is big-endian");
#endif
        if (reinterpret_cast<uintptr_t>(d + mel::kRowsHeader) % alignof(float) != 0)
            fail(MEL_ERR_INVALID_ARGUMENT, "data must be 4-byte aligned (the rows are read in place); read the file into "
                                           "malloc'd memory");
        *table_schema = schema;
        *n_layers = n;
        *n_columns = cols;
        *rows = reinterpret_cast<const float*>(d + mel::kRowsHeader);
    });
}

}  // extern "C"

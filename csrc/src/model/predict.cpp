#include "predict.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "../error.hpp"

namespace mel {

namespace {

// Reports the first non-finite feature of a row.
[[noreturn]] void fail_non_finite(const Model& m, const float* xr, size_t row) {
    size_t i = 0;
    while (i + 1 < m.input_dim && std::isfinite(xr[i])) ++i;
    fail(MEL_ERR_INVALID_ARGUMENT, "input row " + std::to_string(row) + ", feature " + std::to_string(i) + " ('" +
                                       m.feature_names[i] + "') is not a finite number");
}

}  // namespace

void forward(const Model& m, const Kernel& k, const float* x, size_t n, float* out_ms, double* out_raw) {
    alignas(64) unsigned char stack[kTileStackBytes];
    uint32_t max_in = round_up(m.input_dim, kIB), max_out = 0;
    for (const Layer& L : m.layers) {
        max_in = std::max(max_in, L.in_pad);
        max_out = std::max(max_out, L.out_pad);
    }
    const uint32_t R = m.tile_rows;
    int8_t* buf_a = reinterpret_cast<int8_t*>(stack);
    int8_t* buf_b = buf_a + size_t(R) * max_in;
    // int32 accumulators after the two int8 buffers, 4-byte aligned (max_in is a multiple of 4).
    int32_t* acc = reinterpret_cast<int32_t*>(stack + 2 * size_t(R) * max_in);
    const size_t d = m.input_dim;
    const size_t d_pad = round_up(m.input_dim, kIB);  // the first layer reads d_pad columns

    for (size_t r0 = 0; r0 < n; r0 += R) {
        const uint32_t rows = static_cast<uint32_t>(std::min<size_t>(R, n - r0));
        // The input rows of the next tile: a tile's matmuls take long enough for them to arrive.
#if defined(__GNUC__)
        if (r0 + R < n) {
            const char* p = reinterpret_cast<const char*>(x + (r0 + R) * d);
            const size_t bytes = std::min<size_t>(R, n - r0 - R) * d * sizeof(float);
            for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 3);
        }
#endif
        // Quantize the input rows; zero the padding columns the first layer reads.
        for (uint32_t r = 0; r < rows; ++r) {
            int8_t* q = buf_a + size_t(r) * max_in;
            const float* xr = x + (r0 + r) * d;
            if (!k.quantize_row(xr, m.in_mean.data(), m.in_mul.data(), d, q)) fail_non_finite(m, xr, r0 + r);
            std::memset(q + d, 0, d_pad - d);
        }
        int8_t* cur = buf_a;
        int8_t* nxt = buf_b;
        for (const Layer& L : m.layers) {
            k.matmul(L, cur, max_in, rows, acc, max_out);
            if (!L.is_output) {
                k.requantize(L, acc, max_out, rows, nxt, max_in);
                std::swap(cur, nxt);
            } else {
                for (uint32_t r = 0; r < rows; ++r) {
                    // Double arithmetic, no fused multiply-add (built with -ffp-contract=off), so the
                    // numpy reference computes the same value.
                    const double y = double(acc[size_t(r) * max_out]) * double(L.deq[0]);
                    const double t = y * m.out_scale + m.out_shift;
                    const size_t row = r0 + r;
                    if (!std::isfinite(t))
                        fail(MEL_ERR_NUMERIC, "raw output for row " + std::to_string(row) + " is not finite; the "
                                              "model's output scale overflows double precision");
                    if (out_raw) {
                        out_raw[row] = t;
                    } else {
                        // Transform 2 floors in double, before the one rounding to float: the
                        // floor is itself a float, so the result is >= it and > 0.
                        const float v = static_cast<float>(
                            m.transform == 1 ? std::exp(t) : m.transform == 2 ? std::max(t, double(m.out_floor)) : t);
                        if (!std::isfinite(v))
                            fail(MEL_ERR_NUMERIC, "prediction for row " + std::to_string(row) + " is not finite (raw output " +
                                                      std::to_string(t) + "); the model's output transform overflows");
                        if (m.transform == 1 && !(v > 0.0f))
                            fail(MEL_ERR_NUMERIC, "prediction for row " + std::to_string(row) + " underflows to 0 (raw output " +
                                                      std::to_string(t) + "); the model's output is far outside its range");
                        out_ms[row] = v;
                    }
                }
            }
        }
    }
}

void interval(const Model& m, const float* x, size_t n, const float* ms, float* lo, float* hi) {
    constexpr uint32_t kMaxRank = 256;
    if (m.iv_rank > kMaxRank) fail(MEL_ERR_LIMIT, "interval rank above " + std::to_string(kMaxRank));
    double u[kMaxRank];
    const size_t d = m.input_dim;
    for (size_t row = 0; row < n; ++row) {
        const float* xr = x + row * d;
        const double* F = m.iv_factor.data();
        for (uint32_t j = 0; j < m.iv_rank; ++j) u[j] = F[j];  // the intercept's term: a_0 = 1
        for (uint32_t t = 1; t < m.iv_terms; ++t) {
            const double a = double(xr[m.iv_index[t - 1]]);
            const double* Ft = F + size_t(t) * m.iv_rank;
            for (uint32_t j = 0; j < m.iv_rank; ++j) u[j] = u[j] + a * Ft[j];
        }
        double v = 0.0;
        for (uint32_t j = 0; j < m.iv_rank; ++j) v = v + u[j] * u[j];
        const double y = double(ms[row]);
        const double e = m.iv_noise * y;
        const double sd = std::sqrt(v + e * e) / y;
        // Capped: a prediction at the floor can carry an sd of thousands; e^40 keeps lo > 0 and hi
        // finite for any latency below 1e21 ms (docs/format.md).
        const double w = std::min(m.iv_z * sd, 40.0);
        lo[row] = static_cast<float>(y * std::exp(-w));
        hi[row] = static_cast<float>(y * std::exp(w));
        if (!(lo[row] > 0.0f) || !std::isfinite(hi[row]))  // only for latencies beyond 1e21 ms
            fail(MEL_ERR_NUMERIC, "interval for row " + std::to_string(row) + " is not finite and positive (sd " +
                                      std::to_string(sd) + ")");
    }
}

}  // namespace mel

#include "predict.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "../error.hpp"

namespace mel {

namespace {

// The one rounding rule of the format (docs/format.md): round half toward +infinity.
// For the input, v is already clamped to [-127, 127], so v - floor(v) is exact.
inline int8_t quantize_input(float x, float mean, float mul) {
    float v = (x - mean) * mul;
    v = std::min(127.0f, std::max(-127.0f, v));
    const float f = std::floor(v);
    return static_cast<int8_t>(static_cast<int>(f) + ((v - f) >= 0.5f ? 1 : 0));
}

// Requantize an int32 accumulator: (acc * mult + 2^(shift-1)) >> shift, clamped to [0, 127]
// (the clamp at 0 is the ReLU). acc * mult < 2^62 in magnitude, so int64 cannot overflow.
inline int8_t requantize(int32_t acc, int32_t mult, int32_t shift) {
    const int64_t v = (int64_t(acc) * mult + (int64_t(1) << (shift - 1))) >> shift;
    return static_cast<int8_t>(std::min<int64_t>(127, std::max<int64_t>(0, v)));
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

    for (size_t r0 = 0; r0 < n; r0 += R) {
        const uint32_t rows = static_cast<uint32_t>(std::min<size_t>(R, n - r0));
        // Quantize the input rows; padding columns stay zero.
        for (uint32_t r = 0; r < rows; ++r) {
            const float* xr = x + (r0 + r) * d;
            int8_t* q = buf_a + size_t(r) * max_in;
            for (size_t i = 0; i < d; ++i) {
                if (!std::isfinite(xr[i]))
                    fail(MEL_ERR_INVALID_ARGUMENT, "input row " + std::to_string(r0 + r) + ", feature " + std::to_string(i) +
                                                       " ('" + m.feature_names[i] + "') is not a finite number");
                q[i] = quantize_input(xr[i], m.in_mean[i], m.in_mul[i]);
            }
            std::memset(q + d, 0, max_in - d);
        }
        int8_t* cur = buf_a;
        int8_t* nxt = buf_b;
        for (const Layer& L : m.layers) {
            k.matmul(L, cur, max_in, rows, acc, max_out);
            if (!L.is_output) {
                const uint32_t next_pad = round_up(L.out, kIB);
                for (uint32_t r = 0; r < rows; ++r) {
                    const int32_t* ar = acc + size_t(r) * max_out;
                    int8_t* q = nxt + size_t(r) * max_in;
                    for (uint32_t o = 0; o < L.out; ++o) q[o] = requantize(ar[o], L.mult[o], L.shift[o]);
                    std::memset(q + L.out, 0, next_pad - L.out);
                }
                std::swap(cur, nxt);
            } else {
                for (uint32_t r = 0; r < rows; ++r) {
                    // Double arithmetic, no fused multiply-add (built with -ffp-contract=off), so the
                    // numpy reference computes the same value.
                    const double y = double(acc[size_t(r) * max_out]) * double(L.deq[0]);
                    const double t = y * m.out_scale + m.out_shift;
                    const size_t row = r0 + r;
                    if (out_raw) {
                        out_raw[row] = t;
                    } else {
                        const float v = static_cast<float>(m.transform == 1 ? std::exp(t) : t);
                        if (!std::isfinite(v))
                            fail(MEL_ERR_NUMERIC, "prediction for row " + std::to_string(row) + " is not finite (raw output " +
                                                      std::to_string(t) + "); the model's output transform overflows");
                        out_ms[row] = v;
                    }
                }
            }
        }
    }
}

}  // namespace mel

#include "kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mel {

void matmul_scalar(const Layer& L, const int8_t* x, size_t x_stride, uint32_t rows, int32_t* acc, size_t acc_stride) {
    const uint32_t nib = L.in_pad / kIB;
    for (uint32_t r = 0; r < rows; ++r) {
        const int8_t* xr = x + r * x_stride;
        int32_t* ar = acc + r * acc_stride;
        for (uint32_t ob = 0; ob < L.out_pad / kOB; ++ob) {
            int32_t s[kOB];
            for (uint32_t o = 0; o < kOB; ++o) s[o] = L.bias[ob * kOB + o];
            const int8_t* wb = L.w + size_t(ob) * nib * kOB * kIB;
            for (uint32_t ib = 0; ib < nib; ++ib) {
                const int8_t* w = wb + size_t(ib) * kOB * kIB;
                const int8_t* xi = xr + ib * kIB;
                for (uint32_t o = 0; o < kOB; ++o)
                    for (uint32_t i = 0; i < kIB; ++i) s[o] += int32_t(w[o * kIB + i]) * int32_t(xi[i]);
            }
            for (uint32_t o = 0; o < kOB; ++o) ar[ob * kOB + o] = s[o];
        }
    }
}

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

void requantize_scalar(const Layer& L, const int32_t* acc, size_t acc_stride, uint32_t rows, int8_t* q,
                       size_t q_stride) {
    const uint32_t next_pad = round_up(L.out, kIB);
    for (uint32_t r = 0; r < rows; ++r) {
        const int32_t* ar = acc + size_t(r) * acc_stride;
        int8_t* qr = q + size_t(r) * q_stride;
        for (uint32_t o = 0; o < L.out; ++o) qr[o] = requantize(ar[o], L.mult[o], L.shift[o]);
        std::memset(qr + L.out, 0, next_pad - L.out);
    }
}

bool quantize_row_scalar(const float* x, const float* mean, const float* mul, size_t d, int8_t* q) {
    size_t i = 0;
#if defined(__SSE2__)
    // Four features at a time, same float32 operations as quantize_input() (SSE2 is part of
    // x86-64). floor() is built from truncation: v is in [-127, 127], so the int conversion is
    // exact, and truncation exceeds v exactly when v is negative and not an integer.
    const __m128 lo = _mm_set1_ps(-127.0f), hi = _mm_set1_ps(127.0f), half = _mm_set1_ps(0.5f);
    const __m128i exp_mask = _mm_set1_epi32(0x7F800000);
    __m128i bad = _mm_setzero_si128();
    for (; i + 4 <= d; i += 4) {
        const __m128 xv = _mm_loadu_ps(x + i);
        // All exponent bits set: inf or NaN.
        bad = _mm_or_si128(bad, _mm_cmpeq_epi32(_mm_and_si128(_mm_castps_si128(xv), exp_mask), exp_mask));
        __m128 v = _mm_mul_ps(_mm_sub_ps(xv, _mm_loadu_ps(mean + i)), _mm_loadu_ps(mul + i));
        v = _mm_min_ps(hi, _mm_max_ps(lo, v));
        __m128i t = _mm_cvttps_epi32(v);
        t = _mm_add_epi32(t, _mm_castps_si128(_mm_cmpgt_ps(_mm_cvtepi32_ps(t), v)));  // floor: -1 where trunc > v
        const __m128 f = _mm_cvtepi32_ps(t);
        t = _mm_sub_epi32(t, _mm_castps_si128(_mm_cmpge_ps(_mm_sub_ps(v, f), half)));  // +1 where v - f >= 0.5
        const __m128i b = _mm_packs_epi16(_mm_packs_epi32(t, t), _mm_setzero_si128());
        const int32_t four = _mm_cvtsi128_si32(b);
        std::memcpy(q + i, &four, 4);
    }
    if (_mm_movemask_epi8(bad) != 0) return false;
#endif
    for (; i < d; ++i) {
        if (!std::isfinite(x[i])) return false;
        q[i] = quantize_input(x[i], mean[i], mul[i]);
    }
    return true;
}

}  // namespace mel

// x86-64 SIMD int8 kernels: AVX2 (vpmaddubsw + vpmaddwd) and AVX-512 VNNI (vpdpbusd), plus the
// input quantization and requantization in the same instruction sets; kernels_dispatch.cpp
// groups each matmul with the quantizers of its instruction set.
//
// Every function here is compiled with a per-function target attribute and never runs unless the
// dispatcher (kernels_dispatch.cpp) has checked the CPU: the translation unit itself is built for
// baseline x86-64, so a wheel runs anywhere. All results are bit-identical to matmul_scalar and
// to the scalar arithmetic of kernels_scalar.cpp (tests/test_kernels.py compares them bit for bit).
//
// Weight layout (model.hpp): for output block ob and input step ib, 64 contiguous bytes hold
// W[ob*16 + o][ib*4 + i] at o*4 + i. One zmm (or two ymm: outputs 0-7 and 8-15) of weights is
// multiplied against the 4 input bytes x[r][ib*4 .. ib*4+3] broadcast to every 32-bit lane, so
// each 32-bit lane accumulates its own output: no horizontal sums. Each weight register is
// reused across the R rows of a tile and each broadcast across K weight registers.
#include <immintrin.h>

#include <cstring>

#include "kernels.hpp"

// GCC 12's AVX-512 headers initialise the "undefined" operand of many intrinsics from itself
// (_mm512_undefined_epi32 and friends), which -Wall reports once the intrinsics are inlined into
// a function with a target attribute. The warnings are about the header, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define MEL_TARGET_AVX2 __attribute__((target("avx2")))
#define MEL_TARGET_AVX512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))
#define MEL_INLINE inline __attribute__((always_inline))

namespace mel {

namespace {

MEL_INLINE int32_t load_i32(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

constexpr int min_c(int a, int b) { return a < b ? a : b; }

// Hides a value from the optimiser: keeps GCC from folding "vpmovdb to a register, then a
// masked store" into vpmovdb with a memory operand, which is microcoded and slow on Zen 4.
MEL_INLINE __m128i in_register(__m128i v) {
    __asm__("" : "+v"(v));
    return v;
}

// ============================================================================================
// AVX-512 VNNI
// ============================================================================================
//
// vpdpbusd multiplies unsigned bytes (first operand) by signed bytes (second) and adds groups
// of four products to int32 lanes, without intermediate saturation. Weights are the signed
// operand. Hidden-layer inputs are in [0, 127] and serve as unsigned bytes directly. The first
// layer's inputs are in [-127, 127]: they are offset by +128 (x ^ 0x80 on the byte) to [1, 255],
// and 128 * sum_i W[o][i] (layer.wsum) is subtracted from the initial accumulator. Intermediate
// sums may wrap in int32 in that case, but the arithmetic is modulo 2^32 and the final value is
// the exact accumulator, which the reader has proved fits in int32.
//
// Register tile: R rows x K output blocks (one zmm each), times U independent partial sums over
// the input steps when R*K is too small to hide the instruction's latency (single rows, the
// one-output last layer).

constexpr int vnni_kmax(int R) { return R == 1 ? 4 : R == 2 ? 8 : R == 3 ? 6 : R == 4 ? 5 : 3; }
constexpr int vnni_u(int R, int K) { return R * K >= 8 ? 1 : min_c(8, (8 + R * K - 1) / (R * K)); }

template <int R, int K, bool S>
MEL_TARGET_AVX512 MEL_INLINE void vnni_step(__m512i (&a)[R][K], const int8_t* w, size_t wob, const int8_t* x,
                                            size_t xs, uint32_t ib) {
    __m512i wv[K];
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) wv[k] = _mm512_loadu_si512(w + k * wob + size_t(ib) * 64);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        __m512i xb = _mm512_set1_epi32(load_i32(x + r * xs + size_t(ib) * 4));
        if constexpr (S) xb = _mm512_xor_si512(xb, _mm512_set1_epi32(int32_t(0x80808080u)));
#pragma GCC unroll 8
        for (int k = 0; k < K; ++k) a[r][k] = _mm512_dpbusd_epi32(a[r][k], xb, wv[k]);
    }
}

// Output blocks [ob, ob + K) of rows [0, R): w points at block ob, bias/wsum at output ob*16,
// acc at output ob*16 of row 0.
template <int R, int K, bool S>
MEL_TARGET_AVX512 void vnni_tile(const int8_t* w, size_t wob, uint32_t nib, const int32_t* bias, const int32_t* wsum,
                                 const int8_t* x, size_t xs, int32_t* acc, size_t as) {
    constexpr int U = vnni_u(R, K);
    __m512i a[U][R][K];
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) {
        __m512i b = _mm512_loadu_si512(bias + 16 * k);
        if constexpr (S) b = _mm512_sub_epi32(b, _mm512_slli_epi32(_mm512_loadu_si512(wsum + 16 * k), 7));
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            a[0][r][k] = b;
#pragma GCC unroll 8
            for (int u = 1; u < U; ++u) a[u][r][k] = _mm512_setzero_si512();
        }
    }
    uint32_t ib = 0;
    if constexpr (U > 1) {
        for (; ib + U <= nib; ib += U) {
#pragma GCC unroll 8
            for (int u = 0; u < U; ++u) vnni_step<R, K, S>(a[u], w, wob, x, xs, ib + u);
        }
    }
    for (; ib < nib; ++ib) vnni_step<R, K, S>(a[0], w, wob, x, xs, ib);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int k = 0; k < K; ++k) {
            __m512i s = a[0][r][k];
#pragma GCC unroll 8
            for (int u = 1; u < U; ++u) s = _mm512_add_epi32(s, a[u][r][k]);
            _mm512_storeu_si512(acc + r * as + 16 * k, s);
        }
    }
}

// The last (nob mod KMAX) output blocks.
template <int R, int K, bool S>
MEL_TARGET_AVX512 MEL_INLINE void vnni_tail(uint32_t rem, const int8_t* w, size_t wob, uint32_t nib,
                                            const int32_t* bias, const int32_t* wsum, const int8_t* x, size_t xs,
                                            int32_t* acc, size_t as) {
    if constexpr (K >= 1) {
        if (rem == K) return vnni_tile<R, K, S>(w, wob, nib, bias, wsum, x, xs, acc, as);
        vnni_tail<R, K - 1, S>(rem, w, wob, nib, bias, wsum, x, xs, acc, as);
    }
}

template <int R, bool S>
MEL_TARGET_AVX512 void vnni_rows(const Layer& L, const int8_t* x, size_t xs, int32_t* acc, size_t as) {
    constexpr int KM = vnni_kmax(R);
    const uint32_t nob = L.out_pad / kOB, nib = L.in_pad / kIB;
    const size_t wob = size_t(nib) * kOB * kIB;
    uint32_t ob = 0;
    for (; ob + KM <= nob; ob += KM)
        vnni_tile<R, KM, S>(L.w + ob * wob, wob, nib, L.bias + ob * kOB, L.wsum + ob * kOB, x, xs, acc + ob * kOB, as);
    if (ob < nob)
        vnni_tail<R, KM - 1, S>(nob - ob, L.w + ob * wob, wob, nib, L.bias + ob * kOB, L.wsum + ob * kOB, x, xs,
                                acc + ob * kOB, as);
}

// Layers with very few outputs (the one-output last layer): with the broadcast scheme 15 of 16
// lanes would multiply zero padding. Instead, per output o, gather W[o][ib*4 .. ib*4+3] of 16
// consecutive input steps (a strided dword gather from the blocked layout) and take dot products
// of whole 64-byte stretches of the rows, then sum the 16 lanes. Outputs out..out_pad have zero
// weights: their accumulator is the bias.
template <int R, bool S>
MEL_TARGET_AVX512 void vnni_dot_rows(const Layer& L, const int8_t* x, size_t xs, int32_t* acc, size_t as) {
    const uint32_t nib = L.in_pad / kIB;
    const __m512i idx = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240);
    const __m512i flip = _mm512_set1_epi32(int32_t(0x80808080u));
    for (uint32_t o = 0; o < L.out; ++o) {
        __m512i s[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) s[r] = _mm512_setzero_si512();
        for (uint32_t c = 0; c < nib; c += 16) {
            const uint32_t n = nib - c < 16 ? nib - c : 16;
            const __mmask16 kw = __mmask16((1u << n) - 1u);
            const __mmask64 kx = n == 16 ? ~__mmask64(0) : (__mmask64(1) << (4 * n)) - 1u;
            const __m512i wv = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), kw, idx,
                                                           L.w + size_t(c) * kOB * kIB + o * kIB, 4);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                __m512i xv = _mm512_maskz_loadu_epi8(kx, x + r * xs + size_t(c) * kIB);
                if constexpr (S) xv = _mm512_xor_si512(xv, flip);  // padding lanes: 128 * 0
                s[r] = _mm512_dpbusd_epi32(s[r], xv, wv);
            }
        }
        // Modulo 2^32, as in the vector code; the final value is exact.
        const uint32_t init = uint32_t(L.bias[o]) - (S ? uint32_t(L.wsum[o]) << 7 : 0u);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
            acc[r * as + o] = int32_t(init + uint32_t(_mm512_reduce_add_epi32(s[r])));
    }
    for (uint32_t o = L.out; o < L.out_pad; ++o)
        for (int r = 0; r < R; ++r) acc[r * as + o] = L.bias[o];
}

template <bool S>
MEL_TARGET_AVX512 void vnni_dot(const Layer& L, const int8_t* x, size_t xs, uint32_t rows, int32_t* acc, size_t as) {
    uint32_t r = 0;
    for (; r + 8 <= rows; r += 8) vnni_dot_rows<8, S>(L, x + r * xs, xs, acc + r * as, as);
    switch (rows - r) {
        case 7: vnni_dot_rows<7, S>(L, x + r * xs, xs, acc + r * as, as); break;
        case 6: vnni_dot_rows<6, S>(L, x + r * xs, xs, acc + r * as, as); break;
        case 5: vnni_dot_rows<5, S>(L, x + r * xs, xs, acc + r * as, as); break;
        case 4: vnni_dot_rows<4, S>(L, x + r * xs, xs, acc + r * as, as); break;
        case 3: vnni_dot_rows<3, S>(L, x + r * xs, xs, acc + r * as, as); break;
        case 2: vnni_dot_rows<2, S>(L, x + r * xs, xs, acc + r * as, as); break;
        case 1: vnni_dot_rows<1, S>(L, x + r * xs, xs, acc + r * as, as); break;
        default: break;
    }
}

// Dot products beat broadcasts when the few outputs cost fewer instructions than one pass of
// 16-output blocks: out * (gathers + lane sum) < input steps.
inline bool vnni_use_dot(const Layer& L) {
    const uint32_t nib = L.in_pad / kIB;
    return L.out_pad == kOB && L.out * ((nib + 15) / 16 + 6) < nib;
}

template <bool S>
MEL_TARGET_AVX512 void vnni_matmul(const Layer& L, const int8_t* x, size_t xs, uint32_t rows, int32_t* acc,
                                   size_t as) {
    if (vnni_use_dot(L)) return vnni_dot<S>(L, x, xs, rows, acc, as);
    uint32_t r = 0;
    for (; r + 8 <= rows; r += 8) vnni_rows<8, S>(L, x + r * xs, xs, acc + r * as, as);
    if (rows - r >= 4) {
        vnni_rows<4, S>(L, x + r * xs, xs, acc + r * as, as);
        r += 4;
    }
    switch (rows - r) {
        case 3: vnni_rows<3, S>(L, x + r * xs, xs, acc + r * as, as); break;
        case 2: vnni_rows<2, S>(L, x + r * xs, xs, acc + r * as, as); break;
        case 1: vnni_rows<1, S>(L, x + r * xs, xs, acc + r * as, as); break;
        default: break;
    }
}

// ============================================================================================
// AVX2
// ============================================================================================
//
// vpmaddubsw multiplies unsigned by signed bytes and adds adjacent pairs to int16 with
// saturation; vpmaddwd against ones then adds the pairs to int32. With inputs in [0, 127] and
// weights in [-127, 127] a pair is at most 2 * 127 * 127 = 32258 < 32767: no saturation. The
// signed first layer uses |x| as the unsigned operand and sign(x) * w (vpsignb; w is never -128)
// as the signed one, which keeps the same bound.
//
// The unit is a "half block": 8 outputs x 4 inputs = one ymm. Register tile: R rows x K halves.

constexpr int avx2_kmax(int R) { return R <= 2 ? 4 : 2; }

template <int R, int K, bool S>
MEL_TARGET_AVX2 void avx2_tile(const int8_t* const (&wp)[K], uint32_t nib, const int32_t* bias, const int8_t* x,
                               size_t xs, int32_t* acc, size_t as) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i a[R][K];
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) {
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias + 8 * k));
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) a[r][k] = b;
    }
    for (uint32_t ib = 0; ib < nib; ++ib) {
        __m256i wv[K];
#pragma GCC unroll 8
        for (int k = 0; k < K; ++k) wv[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp[k] + size_t(ib) * 64));
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m256i xb = _mm256_set1_epi32(load_i32(x + r * xs + size_t(ib) * 4));
            if constexpr (S) {
                const __m256i xa = _mm256_abs_epi8(xb);
#pragma GCC unroll 8
                for (int k = 0; k < K; ++k) {
                    const __m256i p = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(wv[k], xb));
                    a[r][k] = _mm256_add_epi32(a[r][k], _mm256_madd_epi16(p, ones));
                }
            } else {
#pragma GCC unroll 8
                for (int k = 0; k < K; ++k) {
                    const __m256i p = _mm256_maddubs_epi16(xb, wv[k]);
                    a[r][k] = _mm256_add_epi32(a[r][k], _mm256_madd_epi16(p, ones));
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int k = 0; k < K; ++k) _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * as + 8 * k), a[r][k]);
    }
}

// Halves [h, h + K): half h is outputs h*8 .. h*8+7, stored at byte (h & 1) * 32 of each block
// of output block h / 2.
template <int R, int K, bool S>
MEL_TARGET_AVX2 MEL_INLINE void avx2_group(const Layer& L, size_t wob, uint32_t nib, uint32_t h, const int8_t* x,
                                           size_t xs, int32_t* acc, size_t as) {
    const int8_t* wp[K];
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) wp[k] = L.w + ((h + k) >> 1) * wob + ((h + k) & 1) * 32;
    avx2_tile<R, K, S>(wp, nib, L.bias + h * 8, x, xs, acc + h * 8, as);
}

template <int R, int K, bool S>
MEL_TARGET_AVX2 MEL_INLINE void avx2_tail(uint32_t rem, const Layer& L, size_t wob, uint32_t nib, uint32_t h,
                                          const int8_t* x, size_t xs, int32_t* acc, size_t as) {
    if constexpr (K >= 1) {
        if (rem == K) return avx2_group<R, K, S>(L, wob, nib, h, x, xs, acc, as);
        avx2_tail<R, K - 1, S>(rem, L, wob, nib, h, x, xs, acc, as);
    }
}

template <int R, bool S>
MEL_TARGET_AVX2 void avx2_rows(const Layer& L, const int8_t* x, size_t xs, int32_t* acc, size_t as) {
    constexpr int KM = avx2_kmax(R);
    // Halves past the last output have zero weights: their accumulators are the bias.
    const uint32_t nh = (L.out + 7) / 8, nib = L.in_pad / kIB;
    const size_t wob = size_t(nib) * kOB * kIB;
    uint32_t h = 0;
    for (; h + KM <= nh; h += KM) avx2_group<R, KM, S>(L, wob, nib, h, x, xs, acc, as);
    if (h < nh) avx2_tail<R, KM - 1, S>(nh - h, L, wob, nib, h, x, xs, acc, as);
    if (nh * 8 < L.out_pad) {
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(L.bias + nh * 8));
        for (int r = 0; r < R; ++r) _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * as + nh * 8), b);
    }
}

template <bool S>
MEL_TARGET_AVX2 void avx2_matmul(const Layer& L, const int8_t* x, size_t xs, uint32_t rows, int32_t* acc, size_t as) {
    uint32_t r = 0;
    for (; r + 4 <= rows; r += 4) avx2_rows<4, S>(L, x + r * xs, xs, acc + r * as, as);
    switch (rows - r) {
        case 3: avx2_rows<3, S>(L, x + r * xs, xs, acc + r * as, as); break;
        case 2: avx2_rows<2, S>(L, x + r * xs, xs, acc + r * as, as); break;
        case 1: avx2_rows<1, S>(L, x + r * xs, xs, acc + r * as, as); break;
        default: break;
    }
}

}  // namespace

MEL_TARGET_AVX2 void matmul_avx2(const Layer& L, const int8_t* x, size_t x_stride, uint32_t rows, int32_t* acc,
                                 size_t acc_stride) {
    if (L.signed_input) avx2_matmul<true>(L, x, x_stride, rows, acc, acc_stride);
    else avx2_matmul<false>(L, x, x_stride, rows, acc, acc_stride);
}

MEL_TARGET_AVX512 void matmul_avx512vnni(const Layer& L, const int8_t* x, size_t x_stride, uint32_t rows,
                                         int32_t* acc, size_t acc_stride) {
    if (L.signed_input) vnni_matmul<true>(L, x, x_stride, rows, acc, acc_stride);
    else vnni_matmul<false>(L, x, x_stride, rows, acc, acc_stride);
}

// ============================================================================================
// Requantization: q[r][o] = clamp((acc * mult + 2^(shift-1)) >> shift, 0, 127) for o < out, and
// zero for out <= o < round_up(out, kIB) (the next layer's input padding). mult >= 0 and
// shift in [1, 62] (validated by the reader); |acc * mult| < 2^62.
//
// General path (any shift), in int64 lanes: mult >= 0, so acc <= 0 gives
// acc * mult + 2^(shift-1) < 2^shift, i.e. 0 after the shift, and the accumulator can be
// clamped at 0 first. Then the 32x32->64 unsigned multiply (vpmuludq, even and odd lanes
// separately) and logical shifts are exact, and the int64 sum stays below 2^62 + 2^61.
//
// Fast path when every shift of a group of outputs is >= 33 (the usual case: multipliers below
// 1/4), in int32 lanes. With P = acc * mult = H * 2^32 + Lo, H = floor(P / 2^32) (the high half
// of the int64 product) and 0 <= Lo < 2^32:
//   floor((P + 2^(s-1)) / 2^s) = floor((H + 2^(s-33) + Lo / 2^32) / 2^(s-32))
//                              = (H + 2^(s-33)) >> (s-32)   (arithmetic shift),
// because H + 2^(s-33) is an integer and Lo / 2^32 < 1 cannot carry it past a multiple of
// 2^(s-32). |H| <= 2^30 and 2^(s-33) <= 2^29, so H + 2^(s-33) fits int32.
// ============================================================================================

namespace {

// One group of 16 outputs, fast path (every live shift >= 33): sh = shift - 32, rnd = 2^(shift-33).
// Signed products (vpmuldq), so a negative accumulator gives a negative result; the clamp to
// [0, 127] is left to pack64.
MEL_TARGET_AVX512 MEL_INLINE __m512i rq16_fast(__m512i a, __m512i m, __m512i mo, __m512i rnd, __m512i sh) {
    const __m512i pe = _mm512_mul_epi32(a, m);
    const __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(a, 32), mo);
    const __m512i h = _mm512_mask_blend_epi32(__mmask16(0xAAAA), _mm512_srli_epi64(pe, 32), po);
    return _mm512_srav_epi32(_mm512_add_epi32(h, rnd), sh);
}

// One group of 16 outputs, general path: se/so = even/odd shifts, re/ro = 2^(shift-1) (int64).
MEL_TARGET_AVX512 MEL_INLINE __m512i rq16_wide(__m512i a, __m512i m, __m512i mo, __m512i se, __m512i so, __m512i re,
                                               __m512i ro) {
    const __m512i c127 = _mm512_set1_epi64(127);
    a = _mm512_max_epi32(a, _mm512_setzero_si512());
    __m512i ve = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epu32(a, m), re), se);
    __m512i vo = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epu32(_mm512_srli_epi64(a, 32), mo), ro), so);
    ve = _mm512_min_epu64(ve, c127);
    vo = _mm512_min_epu64(vo, c127);
    return _mm512_or_si512(ve, _mm512_slli_epi64(vo, 32));
}

// Four groups of int32 -> 64 bytes clamp(v, 0, 127) in output order: the saturating packs
// (signed to int16, then unsigned to uint8) clamp at 0 and keep larger values above 127; they
// work per 128-bit lane, hence the permutation.
MEL_TARGET_AVX512 MEL_INLINE __m512i pack64(__m512i v0, __m512i v1, __m512i v2, __m512i v3) {
    const __m512i b = _mm512_packus_epi16(_mm512_packs_epi32(v0, v1), _mm512_packs_epi32(v2, v3));
    const __m512i p = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), b);
    return _mm512_min_epu8(p, _mm512_set1_epi8(127));
}

}  // namespace

MEL_TARGET_AVX512 void requantize_avx512(const Layer& L, const int32_t* acc, size_t acc_stride, uint32_t rows,
                                         int8_t* q, size_t q_stride) {
    const uint32_t out = L.out, next_pad = round_up(L.out, kIB);
    const __m512i one32 = _mm512_set1_epi32(1), c32 = _mm512_set1_epi32(32), c33 = _mm512_set1_epi32(33);
    const __m512i one64 = _mm512_set1_epi64(1), lo32 = _mm512_set1_epi64(0xFFFFFFFFll);
    // 64 outputs at a time. Lanes >= out load 0 and give 0 (acc 0 -> 0 whatever the shift): the
    // zero padding up to next_pad; the store stops there.
    for (uint32_t o = 0; o < next_pad; o += 64) {
        const uint32_t nst = next_pad - o < 64 ? next_pad - o : 64;
        const __mmask64 kst = nst == 64 ? ~__mmask64(0) : (__mmask64(1) << nst) - 1u;
        __mmask16 kv[4];
        __m512i m[4], s[4], mo[4];
        bool fast = true;
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            const uint32_t base = o + 16 * j;
            const uint32_t nv = base >= out ? 0 : (out - base < 16 ? out - base : 16);
            kv[j] = __mmask16((1u << nv) - 1u);
            m[j] = _mm512_maskz_loadu_epi32(kv[j], L.mult + base);
            s[j] = _mm512_maskz_loadu_epi32(kv[j], L.shift + base);
            mo[j] = _mm512_srli_epi64(m[j], 32);
            fast = fast && _mm512_mask_cmplt_epi32_mask(kv[j], s[j], c33) == 0;
        }
        if (fast) {
            // Dead lanes: shift 0 and acc 0, so the counts below are negative, i.e. >= 32 unsigned: 0.
            __m512i sh[4], rnd[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                sh[j] = _mm512_sub_epi32(s[j], c32);
                rnd[j] = _mm512_sllv_epi32(one32, _mm512_sub_epi32(s[j], c33));
            }
            for (uint32_t r = 0; r < rows; ++r) {
                const int32_t* ar = acc + r * acc_stride + o;
                __m512i v[4];
#pragma GCC unroll 4
                for (int j = 0; j < 4; ++j)
                    v[j] = rq16_fast(_mm512_maskz_loadu_epi32(kv[j], ar + 16 * j), m[j], mo[j], rnd[j], sh[j]);
                _mm512_mask_storeu_epi8(q + r * q_stride + o, kst, pack64(v[0], v[1], v[2], v[3]));
            }
        } else {
            __m512i se[4], so[4], re[4], ro[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                se[j] = _mm512_and_si512(s[j], lo32);
                so[j] = _mm512_srli_epi64(s[j], 32);
                re[j] = _mm512_sllv_epi64(one64, _mm512_sub_epi64(se[j], one64));  // shift 0 -> count 2^64-1 -> 0
                ro[j] = _mm512_sllv_epi64(one64, _mm512_sub_epi64(so[j], one64));
            }
            for (uint32_t r = 0; r < rows; ++r) {
                const int32_t* ar = acc + r * acc_stride + o;
                __m512i v[4];
#pragma GCC unroll 4
                for (int j = 0; j < 4; ++j)
                    v[j] = rq16_wide(_mm512_maskz_loadu_epi32(kv[j], ar + 16 * j), m[j], mo[j], se[j], so[j], re[j], ro[j]);
                _mm512_mask_storeu_epi8(q + r * q_stride + o, kst, pack64(v[0], v[1], v[2], v[3]));
            }
        }
    }
}

MEL_TARGET_AVX2 void requantize_avx2(const Layer& L, const int32_t* acc, size_t acc_stride, uint32_t rows,
                                     int8_t* q, size_t q_stride) {
    const uint32_t out = L.out, next_pad = round_up(L.out, kIB);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i one64 = _mm256_set1_epi64x(1), c127_64 = _mm256_set1_epi64x(127);
    const __m256i one32 = _mm256_set1_epi32(1), c127_32 = _mm256_set1_epi32(127);
    const __m256i c32 = _mm256_set1_epi32(32);
    const __m256i lo32 = _mm256_set1_epi64x(0xFFFFFFFFll);
    // Byte 0 of each int32 lane to bytes 0..3 of each 128-bit half, then the two halves together.
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i join = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
    const uint32_t nvec = out / 8 * 8;
    for (uint32_t o = 0; o < nvec; o += 8) {
        const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(L.mult + o));
        const __m256i s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(L.shift + o));
        const __m256i mo = _mm256_srli_epi64(m, 32);
        if (_mm256_movemask_epi8(_mm256_cmpgt_epi32(s, c32)) == -1) {
            // Fast path (every shift >= 33), on the accumulator clamped at 0: H < 2^30.
            const __m256i sh = _mm256_sub_epi32(s, c32);
            const __m256i rnd = _mm256_sllv_epi32(one32, _mm256_sub_epi32(sh, one32));
            for (uint32_t r = 0; r < rows; ++r) {
                const __m256i a =
                    _mm256_max_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + r * acc_stride + o)), zero);
                const __m256i pe = _mm256_mul_epu32(a, m);
                const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), mo);
                const __m256i h = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
                __m256i v = _mm256_min_epi32(_mm256_srlv_epi32(_mm256_add_epi32(h, rnd), sh), c127_32);
                v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, pick), join);
                _mm_storel_epi64(reinterpret_cast<__m128i*>(q + r * q_stride + o), _mm256_castsi256_si128(v));
            }
            continue;
        }
        const __m256i se = _mm256_and_si256(s, lo32), so = _mm256_srli_epi64(s, 32);
        const __m256i re = _mm256_sllv_epi64(one64, _mm256_sub_epi64(se, one64));
        const __m256i ro = _mm256_sllv_epi64(one64, _mm256_sub_epi64(so, one64));
        for (uint32_t r = 0; r < rows; ++r) {
            const __m256i a =
                _mm256_max_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + r * acc_stride + o)), zero);
            __m256i ve = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epu32(a, m), re), se);
            __m256i vo = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), mo), ro), so);
            // Both are below 2^63, so the signed compare orders them correctly.
            ve = _mm256_blendv_epi8(ve, c127_64, _mm256_cmpgt_epi64(ve, c127_64));
            vo = _mm256_blendv_epi8(vo, c127_64, _mm256_cmpgt_epi64(vo, c127_64));
            __m256i v = _mm256_or_si256(ve, _mm256_slli_epi64(vo, 32));
            v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, pick), join);
            _mm_storel_epi64(reinterpret_cast<__m128i*>(q + r * q_stride + o), _mm256_castsi256_si128(v));
        }
    }
    for (uint32_t r = 0; r < rows; ++r) {
        const int32_t* ar = acc + r * acc_stride;
        int8_t* qr = q + r * q_stride;
        for (uint32_t o = nvec; o < out; ++o) {
            const int64_t v = (int64_t(ar[o]) * L.mult[o] + (int64_t(1) << (L.shift[o] - 1))) >> L.shift[o];
            qr[o] = static_cast<int8_t>(v < 0 ? 0 : v > 127 ? 127 : v);
        }
        for (uint32_t o = out; o < next_pad; ++o) qr[o] = 0;
    }
}

// ============================================================================================
// Input quantization, as kernels_scalar.cpp's quantize_input() (the same float32 operations, no FMA):
// q = round_half_up(clamp((x - mean) * mul, -127, 127)). Returns false, leaving q partly
// written, if a feature is not finite (the caller then reports it).
// ============================================================================================

MEL_TARGET_AVX512 bool quantize_row_avx512(const float* x, const float* mean, const float* mul, size_t d, int8_t* q) {
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f), half = _mm512_set1_ps(0.5f);
    const __m512i exp_mask = _mm512_set1_epi32(0x7F800000), one = _mm512_set1_epi32(1);
    __mmask16 bad = 0;
    for (size_t i = 0; i < d; i += 16) {
        const size_t n = d - i < 16 ? d - i : 16;
        const __mmask16 k = __mmask16((1u << n) - 1u);
        const __m512 xv = _mm512_maskz_loadu_ps(k, x + i);
        bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(xv), exp_mask), exp_mask);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(xv, _mm512_maskz_loadu_ps(k, mean + i)), _mm512_maskz_loadu_ps(k, mul + i));
        v = _mm512_min_ps(hi, _mm512_max_ps(lo, v));
        const __m512 f = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        const __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(v, f), half, _CMP_GE_OQ);
        const __m512i t = _mm512_mask_add_epi32(_mm512_cvttps_epi32(f), up, _mm512_cvttps_epi32(f), one);
        _mm_mask_storeu_epi8(q + i, k, in_register(_mm512_cvtsepi32_epi8(t)));
    }
    return bad == 0;
}

MEL_TARGET_AVX2 bool quantize_row_avx2(const float* x, const float* mean, const float* mul, size_t d, int8_t* q) {
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f), half = _mm256_set1_ps(0.5f);
    const __m256i exp_mask = _mm256_set1_epi32(0x7F800000);
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i join = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i);
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(xv), exp_mask), exp_mask));
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(xv, _mm256_loadu_ps(mean + i)), _mm256_loadu_ps(mul + i));
        v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
        const __m256 f = _mm256_floor_ps(v);
        const __m256i up = _mm256_castps_si256(_mm256_cmp_ps(_mm256_sub_ps(v, f), half, _CMP_GE_OQ));
        __m256i t = _mm256_sub_epi32(_mm256_cvttps_epi32(f), up);  // up is -1 where rounding up
        t = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(t, pick), join);  // low byte of each lane
        _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), _mm256_castsi256_si128(t));
    }
    if (!_mm256_testz_si256(bad, bad)) return false;
    // The remaining d % width features: the scalar rule, which every kernel matches bit for bit.
    return quantize_row_scalar(x + i, mean + i, mul + i, d - i, q + i);
}

}  // namespace mel

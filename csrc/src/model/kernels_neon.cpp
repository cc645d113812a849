// AArch64 NEON int8 kernels: the matmul with SDOT (vdotq_s32, Armv8.2 dot product) where the CPU
// has it, else with widening multiplies (vmull_s8 / vmlal_s8 + vpadalq_s16), plus the input
// quantization and the requantization; kernels_dispatch.cpp groups them as the kernel "neon" and
// picks the matmul from the CPU's HWCAP_ASIMDDP bit (getauxval), never from compiler flags.
//
// AArch64 always has Advanced SIMD, so this translation unit is built for baseline armv8-a; only
// the SDOT functions carry a target attribute, and they run only after the run-time check. Every
// result is bit-identical to kernels_scalar.cpp (tests/test_kernels.py and
// tools/aarch64/neon_check.cpp compare them bit for bit).
//
// Weight layout (model.hpp): for output block ob and input step ib, 64 contiguous bytes hold
// W[ob*16 + o][ib*4 + i] at o*4 + i. One 16-byte register therefore holds 4 outputs x 4 inputs,
// which is exactly SDOT's shape: each 32-bit lane accumulates the dot product of its 4 weight bytes
// with the 4 input bytes x[r][ib*4 .. ib*4+3] broadcast to every lane. No horizontal sums.
//
// Signed x signed products need no offset trick (unlike vpdpbusd / vpmaddubsw on x86): the first
// layer's inputs in [-127, 127] and the hidden layers' in [0, 127] go through the same code.
#include <arm_neon.h>

#include <cstring>

#include "kernels.hpp"

#if defined(__clang__)
#define MEL_TARGET_DOTPROD __attribute__((target("dotprod")))
#else
// GCC 12 declares vdotq_s32 under "arch=armv8.2-a+dotprod"; an always_inline intrinsic only
// inlines into a function whose ISA flags include all of those. Every CPU with SDOT is Armv8.2+.
#define MEL_TARGET_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
#define MEL_INLINE inline __attribute__((always_inline))

namespace mel {

namespace {

MEL_INLINE int8x16_t dup_x4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, sizeof v);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

// ============================================================================================
// SDOT
// ============================================================================================
//
// Register tile: R rows x K output blocks of 16 (4 int32x4 accumulators each). R * K * 4
// accumulators + 4 * K weight registers + one broadcast must fit the 32 vector registers.

template <int R, int K>
MEL_TARGET_DOTPROD void dot_tile(const int8_t* w, size_t wob, uint32_t nib, const int32_t* bias, const int8_t* x,
                                 size_t xs, int32_t* acc, size_t as) {
    int32x4_t a[R][K][4];
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k)
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            const int32x4_t b = vld1q_s32(bias + 16 * k + 4 * j);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) a[r][k][j] = b;
        }
    for (uint32_t ib = 0; ib < nib; ++ib) {
        int8x16_t wv[K][4];
#pragma GCC unroll 8
        for (int k = 0; k < K; ++k)
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) wv[k][j] = vld1q_s8(w + k * wob + size_t(ib) * 64 + 16 * j);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const int8x16_t xb = dup_x4(x + r * xs + size_t(ib) * 4);
#pragma GCC unroll 8
            for (int k = 0; k < K; ++k)
#pragma GCC unroll 4
                for (int j = 0; j < 4; ++j) a[r][k][j] = vdotq_s32(a[r][k][j], wv[k][j], xb);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int k = 0; k < K; ++k)
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) vst1q_s32(acc + r * as + 16 * k + 4 * j, a[r][k][j]);
}

// Rows [0, R) of the layer: output blocks two at a time (R <= 2) or one at a time.
template <int R>
MEL_TARGET_DOTPROD void dot_rows(const Layer& L, const int8_t* x, size_t xs, int32_t* acc, size_t as) {
    constexpr int KM = R <= 2 ? 2 : 1;
    const uint32_t nob = L.out_pad / kOB, nib = L.in_pad / kIB;
    const size_t wob = size_t(nib) * kOB * kIB;
    uint32_t ob = 0;
    for (; ob + KM <= nob; ob += KM) dot_tile<R, KM>(L.w + ob * wob, wob, nib, L.bias + ob * kOB, x, xs, acc + ob * kOB, as);
    for (; ob < nob; ++ob) dot_tile<R, 1>(L.w + ob * wob, wob, nib, L.bias + ob * kOB, x, xs, acc + ob * kOB, as);
}

// Layers with few outputs (the one-output last layer): the broadcast scheme would spend 15 of 16
// lanes on zero padding. Instead, per output o, take dot products of 16 inputs at a time: the
// weights of output o for 4 consecutive input steps are 4-byte pieces 64 bytes apart in the
// blocked layout, gathered into one register. Outputs out..out_pad have zero weights: their
// accumulator is the bias.
template <int R>
MEL_TARGET_DOTPROD void dot_few_rows(const Layer& L, const int8_t* x, size_t xs, int32_t* acc, size_t as) {
    const uint32_t nib = L.in_pad / kIB;
    for (uint32_t o = 0; o < L.out; ++o) {
        int32x4_t s[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) s[r] = vdupq_n_s32(0);
        const int8_t* wo = L.w + o * kIB;  // ob = 0: out_pad == kOB
        uint32_t ib = 0;
        for (; ib + 4 <= nib; ib += 4) {
            int32x4_t g = vdupq_n_s32(0);
            int32_t t;
            std::memcpy(&t, wo + size_t(ib) * 64, 4);
            g = vsetq_lane_s32(t, g, 0);
            std::memcpy(&t, wo + size_t(ib + 1) * 64, 4);
            g = vsetq_lane_s32(t, g, 1);
            std::memcpy(&t, wo + size_t(ib + 2) * 64, 4);
            g = vsetq_lane_s32(t, g, 2);
            std::memcpy(&t, wo + size_t(ib + 3) * 64, 4);
            g = vsetq_lane_s32(t, g, 3);
            const int8x16_t wv = vreinterpretq_s8_s32(g);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) s[r] = vdotq_s32(s[r], wv, vld1q_s8(x + r * xs + size_t(ib) * 4));
        }
        int32_t tail[R] = {};
        for (; ib < nib; ++ib)
            for (int r = 0; r < R; ++r)
                for (uint32_t i = 0; i < kIB; ++i)
                    tail[r] += int32_t(wo[size_t(ib) * 64 + i]) * int32_t(x[r * xs + size_t(ib) * 4 + i]);
        // int32 wrap-around is modular, and the final value is exact (the reader proved it fits).
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
            acc[r * as + o] = int32_t(uint32_t(L.bias[o]) + uint32_t(vaddvq_s32(s[r])) + uint32_t(tail[r]));
    }
    for (uint32_t o = L.out; o < L.out_pad; ++o)
        for (int r = 0; r < R; ++r) acc[r * as + o] = L.bias[o];
}

// The few-output path wins when the outputs' dot products cost fewer steps than one pass over a
// 16-output block: out * (gather + lane sum) < input steps.
inline bool use_few(const Layer& L) {
    const uint32_t nib = L.in_pad / kIB;
    return L.out_pad == kOB && L.out * 3 < nib;
}

// ============================================================================================
// Widening multiplies (any AArch64 CPU)
// ============================================================================================
//
// vmull_s8 multiplies 8 weight bytes (2 outputs x 4 inputs) by the broadcast input bytes into
// int16 lanes; vmlal_s8 adds the products of the next input step to the same lanes: each int16
// lane then holds w0*x0 + w1*x1 with |.| <= 2 * 127 * 127 = 32258 < 32767 (weights are never
// -128, the reader refuses it), so nothing saturates or wraps. vpadalq_s16 adds adjacent int16
// pairs into int32 lanes: lane 2p holds inputs 0-1, lane 2p+1 inputs 2-3 of output p of the
// pair. A final pairwise add (vpaddq_s32) of two such registers gives 4 outputs in order.
//
// Register tile: R rows x one 16-output block = R * 8 int32x4 accumulators.

template <int R>
MEL_INLINE void widen_steps(int32x4_t (&a)[R][8], const int8_t* w0, const int8_t* w1, const int8_t* x, size_t xs,
                            uint32_t ib, bool two) {
    int8x16_t wa[4], wb[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
        wa[j] = vld1q_s8(w0 + 16 * j);
        wb[j] = two ? vld1q_s8(w1 + 16 * j) : vdupq_n_s8(0);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        const int8x16_t xa = dup_x4(x + r * xs + size_t(ib) * 4);
        const int8x16_t xb = two ? dup_x4(x + r * xs + size_t(ib + 1) * 4) : vdupq_n_s8(0);
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            const int16x8_t lo = vmlal_s8(vmull_s8(vget_low_s8(wa[j]), vget_low_s8(xa)), vget_low_s8(wb[j]), vget_low_s8(xb));
            const int16x8_t hi = vmlal_high_s8(vmull_high_s8(wa[j], xa), wb[j], xb);
            a[r][2 * j] = vpadalq_s16(a[r][2 * j], lo);
            a[r][2 * j + 1] = vpadalq_s16(a[r][2 * j + 1], hi);
        }
    }
}

template <int R>
void widen_rows(const Layer& L, const int8_t* x, size_t xs, int32_t* acc, size_t as) {
    const uint32_t nob = L.out_pad / kOB, nib = L.in_pad / kIB;
    const size_t wob = size_t(nib) * kOB * kIB;
    for (uint32_t ob = 0; ob < nob; ++ob) {
        const int8_t* w = L.w + ob * wob;
        int32x4_t a[R][8];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) a[r][j] = vdupq_n_s32(0);
        uint32_t ib = 0;
        for (; ib + 2 <= nib; ib += 2) widen_steps<R>(a, w + size_t(ib) * 64, w + size_t(ib + 1) * 64, x, xs, ib, true);
        if (ib < nib) widen_steps<R>(a, w + size_t(ib) * 64, nullptr, x, xs, ib, false);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                const int32x4_t s = vpaddq_s32(a[r][2 * j], a[r][2 * j + 1]);
                vst1q_s32(acc + r * as + ob * kOB + 4 * j, vaddq_s32(s, vld1q_s32(L.bias + ob * kOB + 4 * j)));
            }
    }
}

}  // namespace

MEL_TARGET_DOTPROD void matmul_neon_dot(const Layer& L, const int8_t* x, size_t xs, uint32_t rows, int32_t* acc,
                                        size_t as) {
    if (use_few(L)) {
        uint32_t r = 0;
        for (; r + 4 <= rows; r += 4) dot_few_rows<4>(L, x + r * xs, xs, acc + r * as, as);
        if (rows - r >= 2) {
            dot_few_rows<2>(L, x + r * xs, xs, acc + r * as, as);
            r += 2;
        }
        if (r < rows) dot_few_rows<1>(L, x + r * xs, xs, acc + r * as, as);
        return;
    }
    uint32_t r = 0;
    for (; r + 4 <= rows; r += 4) dot_rows<4>(L, x + r * xs, xs, acc + r * as, as);
    if (rows - r >= 2) {
        dot_rows<2>(L, x + r * xs, xs, acc + r * as, as);
        r += 2;
    }
    if (r < rows) dot_rows<1>(L, x + r * xs, xs, acc + r * as, as);
}

void matmul_neon(const Layer& L, const int8_t* x, size_t xs, uint32_t rows, int32_t* acc, size_t as) {
    // Two rows share each weight load (16 accumulators + 8 weight registers + 4 broadcasts).
    uint32_t r = 0;
    for (; r + 2 <= rows; r += 2) widen_rows<2>(L, x + r * xs, xs, acc + r * as, as);
    if (r < rows) widen_rows<1>(L, x + r * xs, xs, acc + r * as, as);
}

// ============================================================================================
// Requantization: q[r][o] = clamp((acc * mult + 2^(shift-1)) >> shift, 0, 127) for o < out, and
// zero for out <= o < round_up(out, kIB). mult >= 0, shift in [1, 62] (validated by the reader),
// |acc * mult| < 2^62. The product is exact in int64 lanes (vmull_s32), and SRSHL by -shift (a
// rounding arithmetic right shift) computes (p + 2^(shift-1)) >> shift exactly: the architecture
// adds the rounding constant before shifting, without overflow (and |p| + 2^61 < 2^63 anyway).
// The saturating narrows clamp: int64 -> int32 -> int16 signed, then int16 -> uint8 unsigned
// (clamps at 0), then min 127.
// ============================================================================================

void requantize_neon(const Layer& L, const int32_t* acc, size_t acc_stride, uint32_t rows, int8_t* q,
                     size_t q_stride) {
    const uint32_t out = L.out, next_pad = round_up(L.out, kIB);
    const uint32_t nvec = out / 8 * 8;
    const uint8x8_t c127 = vdup_n_u8(127);
    for (uint32_t o = 0; o < nvec; o += 8) {
        const int32x4_t m0 = vld1q_s32(L.mult + o), m1 = vld1q_s32(L.mult + o + 4);
        const int32x4_t s0 = vnegq_s32(vld1q_s32(L.shift + o)), s1 = vnegq_s32(vld1q_s32(L.shift + o + 4));
        const int64x2_t n0 = vmovl_s32(vget_low_s32(s0)), n1 = vmovl_high_s32(s0);
        const int64x2_t n2 = vmovl_s32(vget_low_s32(s1)), n3 = vmovl_high_s32(s1);
        for (uint32_t r = 0; r < rows; ++r) {
            const int32_t* ar = acc + size_t(r) * acc_stride + o;
            const int32x4_t a0 = vld1q_s32(ar), a1 = vld1q_s32(ar + 4);
            const int64x2_t p0 = vrshlq_s64(vmull_s32(vget_low_s32(a0), vget_low_s32(m0)), n0);
            const int64x2_t p1 = vrshlq_s64(vmull_high_s32(a0, m0), n1);
            const int64x2_t p2 = vrshlq_s64(vmull_s32(vget_low_s32(a1), vget_low_s32(m1)), n2);
            const int64x2_t p3 = vrshlq_s64(vmull_high_s32(a1, m1), n3);
            const int32x4_t v0 = vqmovn_high_s64(vqmovn_s64(p0), p1);
            const int32x4_t v1 = vqmovn_high_s64(vqmovn_s64(p2), p3);
            const int16x8_t h = vqmovn_high_s32(vqmovn_s32(v0), v1);
            vst1_s8(q + size_t(r) * q_stride + o, vreinterpret_s8_u8(vmin_u8(vqmovun_s16(h), c127)));
        }
    }
    for (uint32_t r = 0; r < rows; ++r) {
        const int32_t* ar = acc + size_t(r) * acc_stride;
        int8_t* qr = q + size_t(r) * q_stride;
        for (uint32_t o = nvec; o < out; ++o) {
            const int64_t v = (int64_t(ar[o]) * L.mult[o] + (int64_t(1) << (L.shift[o] - 1))) >> L.shift[o];
            qr[o] = static_cast<int8_t>(v < 0 ? 0 : v > 127 ? 127 : v);
        }
        for (uint32_t o = out; o < next_pad; ++o) qr[o] = 0;
    }
}

// ============================================================================================
// Input quantization, as kernels_scalar.cpp's quantize_input(): the same float32 operations (no
// fused multiply-add: separate vsub and vmul), q = round_half_up(clamp((x - mean) * mul, -127,
// 127)). FMAXNM/FMINNM treat a NaN operand like std::max/std::min with the bound first (the
// bound wins), although v cannot be NaN for finite x (mean is finite, mul finite and > 0).
// FRINTM is floor, exact; v - floor(v) is exact for |v| <= 127. Returns false, leaving q partly
// written, if a feature is not finite (the caller then reports the first one).
// ============================================================================================

namespace {

MEL_INLINE int32x4_t quantize4(float32x4_t xv, float32x4_t mv, float32x4_t uv, uint32x4_t& bad) {
    const uint32x4_t exp_mask = vdupq_n_u32(0x7F800000u);
    bad = vorrq_u32(bad, vceqq_u32(vandq_u32(vreinterpretq_u32_f32(xv), exp_mask), exp_mask));
    float32x4_t v = vmulq_f32(vsubq_f32(xv, mv), uv);
    v = vminnmq_f32(vdupq_n_f32(127.0f), vmaxnmq_f32(vdupq_n_f32(-127.0f), v));
    const float32x4_t f = vrndmq_f32(v);
    const uint32x4_t up = vcgeq_f32(vsubq_f32(v, f), vdupq_n_f32(0.5f));
    return vsubq_s32(vcvtq_s32_f32(f), vreinterpretq_s32_u32(up));  // up is -1 where rounding up
}

}  // namespace

bool quantize_row_neon(const float* x, const float* mean, const float* mul, size_t d, int8_t* q) {
    uint32x4_t bad = vdupq_n_u32(0);
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        const int32x4_t t0 = quantize4(vld1q_f32(x + i), vld1q_f32(mean + i), vld1q_f32(mul + i), bad);
        const int32x4_t t1 = quantize4(vld1q_f32(x + i + 4), vld1q_f32(mean + i + 4), vld1q_f32(mul + i + 4), bad);
        vst1_s8(q + i, vmovn_s16(vcombine_s16(vmovn_s32(t0), vmovn_s32(t1))));
    }
    if (i + 4 <= d) {
        const int32x4_t t = quantize4(vld1q_f32(x + i), vld1q_f32(mean + i), vld1q_f32(mul + i), bad);
        const int8x8_t b = vmovn_s16(vcombine_s16(vmovn_s32(t), vdup_n_s16(0)));
        const int32_t four = vget_lane_s32(vreinterpret_s32_s8(b), 0);
        std::memcpy(q + i, &four, 4);
        i += 4;
    }
    if (vmaxvq_u32(bad) != 0) return false;
    // The remaining d % width features: the scalar rule, which every kernel matches bit for bit.
    return quantize_row_scalar(x + i, mean + i, mul + i, d - i, q + i);
}

}  // namespace mel

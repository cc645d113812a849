// The NEON kernels against the scalar reference, bit for bit, without Python: the fast inner
// loop for kernels_neon.cpp on an x86_64 host (tools/aarch64/neon_check.sh cross-compiles this
// and runs it under qemu-aarch64-static, once as a CPU with SDOT and once as a Cortex-A72
// without). Random layers of many shapes (weights and inputs at +-127 included, biases at the
// int32 bound), random and extreme requantization multipliers and shifts, inputs on .5 ties,
// beyond the clamp and non-finite. Exit status 0 when everything matches.
#include <sys/auxv.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "model/kernels.hpp"

namespace mel {
void matmul_neon(const Layer&, const int8_t*, size_t, uint32_t, int32_t*, size_t);
void matmul_neon_dot(const Layer&, const int8_t*, size_t, uint32_t, int32_t*, size_t);
void requantize_neon(const Layer&, const int32_t*, size_t, uint32_t, int8_t*, size_t);
bool quantize_row_neon(const float*, const float*, const float*, size_t, int8_t*);
}  // namespace mel

using namespace mel;

namespace {

std::mt19937_64 rng(12345);
long failures = 0, checks = 0;

int rand_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

struct OwnedLayer {
    Layer L;
    std::vector<int8_t> w;
    std::vector<int32_t> bias, wsum, mult, shift;
};

// A layer of `out` x `in` weights in the blocked layout of model.hpp.
OwnedLayer make_layer(uint32_t in, uint32_t out, bool signed_input, int style) {
    OwnedLayer o;
    Layer& L = o.L;
    L.in = in;
    L.out = out;
    L.in_pad = round_up(in, kIB);
    L.out_pad = round_up(out, kOB);
    L.signed_input = signed_input;
    const uint32_t nib = L.in_pad / kIB;
    o.w.assign(size_t(L.out_pad) * L.in_pad, 0);
    o.bias.assign(L.out_pad, 0);
    o.wsum.assign(L.out_pad, 0);
    o.mult.assign(L.out_pad, 0);
    o.shift.assign(L.out_pad, 1);
    for (uint32_t r = 0; r < out; ++r) {
        int64_t abs_sum = 0, sum = 0;
        for (uint32_t c = 0; c < in; ++c) {
            int v = style == 0 ? rand_int(-127, 127) : (rand_int(0, 1) ? 127 : -127);
            if (style == 2 && r == 0) v = 127;
            if (style == 2 && r == 1) v = -127;
            const uint32_t ob = r / kOB, ib = c / kIB;
            o.w[(size_t(ob) * nib + ib) * kOB * kIB + (r % kOB) * kIB + c % kIB] = int8_t(v);
            abs_sum += std::abs(v);
            sum += v;
        }
        // |bias| + 127 * sum|W| <= 2^31 - 1: the reader's bound; sometimes exactly at it.
        const int64_t room = int64_t(std::numeric_limits<int32_t>::max()) - 127 * abs_sum;
        const int pick = rand_int(0, 3);
        o.bias[r] = int32_t(pick == 0 ? room : pick == 1 ? -room : std::uniform_int_distribution<int64_t>(-room, room)(rng));
        o.wsum[r] = int32_t(sum);
        o.mult[r] = rand_int(0, 9) == 0 ? 0 : rand_int(0, 3) == 0 ? std::numeric_limits<int32_t>::max() : rand_int(0, std::numeric_limits<int32_t>::max());
        o.shift[r] = rand_int(0, 4) == 0 ? rand_int(1, 62) : rand_int(28, 40);
    }
    L.w = o.w.data();
    L.bias = o.bias.data();
    L.wsum = o.wsum.data();
    L.mult = o.mult.data();
    L.shift = o.shift.data();
    return o;
}

std::vector<int8_t> make_inputs(uint32_t rows, size_t stride, uint32_t in, bool signed_input) {
    std::vector<int8_t> x(rows * stride, 0);
    for (uint32_t r = 0; r < rows; ++r)
        for (uint32_t c = 0; c < in; ++c) {
            const int k = rand_int(0, 4);
            int v = k == 0 ? 127 : k == 1 ? (signed_input ? -127 : 0) : rand_int(signed_input ? -127 : 0, 127);
            x[r * stride + c] = int8_t(v);
        }
    return x;
}

void report(const char* what, uint32_t in, uint32_t out, uint32_t rows, size_t idx, long long want, long long got) {
    if (++failures <= 20)
        std::printf("MISMATCH %s in=%u out=%u rows=%u at %zu: scalar %lld, neon %lld\n", what, in, out, rows, idx, want, got);
}

void check_matmul(MatmulFn fn, const char* name, uint32_t in, uint32_t out, uint32_t rows, bool signed_input, int style) {
    OwnedLayer o = make_layer(in, out, signed_input, style);
    const size_t xs = o.L.in_pad + 4 * rand_int(0, 2), as = o.L.out_pad + 16 * rand_int(0, 1);
    std::vector<int8_t> x = make_inputs(rows, xs, in, signed_input);
    std::vector<int32_t> want(rows * as, 0x5A5A5A5A), got(rows * as, 0x5A5A5A5A);
    matmul_scalar(o.L, x.data(), xs, rows, want.data(), as);
    fn(o.L, x.data(), xs, rows, got.data(), as);
    ++checks;
    for (uint32_t r = 0; r < rows; ++r)
        for (uint32_t c = 0; c < o.L.out_pad; ++c)
            if (want[r * as + c] != got[r * as + c]) {
                report(name, in, out, rows, r * as + c, want[r * as + c], got[r * as + c]);
                return;
            }
}

void check_requantize(uint32_t out, uint32_t rows) {
    OwnedLayer o = make_layer(4, out, false, 0);
    const size_t as = o.L.out_pad, qs = round_up(out, kIB) + 4;
    std::vector<int32_t> acc(rows * as);
    for (auto& a : acc) {
        const int k = rand_int(0, 5);
        a = k == 0 ? std::numeric_limits<int32_t>::max() : k == 1 ? std::numeric_limits<int32_t>::min() + 1
          : k == 2 ? rand_int(-1000, 1000) : int32_t(rng());
    }
    std::vector<int8_t> want(rows * qs, 0x55), got(rows * qs, 0x55);
    requantize_scalar(o.L, acc.data(), as, rows, want.data(), qs);
    requantize_neon(o.L, acc.data(), as, rows, got.data(), qs);
    ++checks;
    for (size_t i = 0; i < want.size(); ++i)
        if (want[i] != got[i]) {
            report("requantize", 0, out, rows, i, want[i], got[i]);
            return;
        }
}

void check_quantize_row(size_t d) {
    std::vector<float> x(d), mean(d), mul(d);
    static const float special[] = {127.f, -127.f, 126.5f, -126.5f, 127.5f, -127.5f, 0.5f, -0.5f, 1.5f, -1.5f, 0.f, -0.f,
                                    200.f, -200.f, 1e30f, -1e30f, 3.4e38f, -3.4e38f, 1e-40f, -1e-40f, 0.49999997f,
                                    -0.49999997f, 63.5f, -63.5f};
    for (size_t i = 0; i < d; ++i) {
        const bool unit = rand_int(0, 1);
        mean[i] = unit ? 0.f : float(std::normal_distribution<double>(0, 1)(rng));
        mul[i] = unit ? 1.f : std::ldexp(1.f, rand_int(-3, 3));
        const float k = rand_int(0, 1) ? special[rand_int(0, sizeof special / sizeof *special - 1)]
                                       : float(rand_int(-140, 140)) + 0.5f * float(rand_int(-1, 1));
        x[i] = mean[i] + k / mul[i];
    }
    std::vector<int8_t> want(d + 8, 0x55), got(d + 8, 0x55);
    const bool ok_w = quantize_row_scalar(x.data(), mean.data(), mul.data(), d, want.data());
    const bool ok_g = quantize_row_neon(x.data(), mean.data(), mul.data(), d, got.data());
    ++checks;
    if (ok_w != ok_g) return report("quantize_row ok", uint32_t(d), 0, 1, 0, ok_w, ok_g);
    if (!ok_w) return;  // a raw value overflowed to inf: both refused the row, q is partly written
    for (size_t i = 0; i < d; ++i)
        if (want[i] != got[i]) return report("quantize_row", uint32_t(d), 0, 1, i, want[i], got[i]);
    // One non-finite feature anywhere: both refuse the row.
    if (d > 0) {
        const size_t at = size_t(rand_int(0, int(d) - 1));
        const float bad[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                             -std::numeric_limits<float>::infinity()};
        x[at] = bad[rand_int(0, 2)];
        ++checks;
        if (quantize_row_scalar(x.data(), mean.data(), mul.data(), d, want.data()) ||
            quantize_row_neon(x.data(), mean.data(), mul.data(), d, got.data()))
            report("quantize_row non-finite", uint32_t(d), 0, 1, at, 0, 1);
    }
}

}  // namespace

int main() {
    const bool dot = (getauxval(AT_HWCAP) & (1ul << 20)) != 0;  // HWCAP_ASIMDDP
    std::printf("HWCAP_ASIMDDP: %s\n", dot ? "yes (checking the SDOT and the widening matmul)" : "no (widening matmul only)");
    const uint32_t dims[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 33, 48, 64, 65, 100, 127, 129, 256, 300, 1024};
    const uint32_t row_counts[] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (uint32_t in : dims)
        for (uint32_t out : dims) {
            if (size_t(in) * out > 300000) continue;
            for (uint32_t rows : row_counts) {
                if (rows > 3 && (in > 300 || out > 300) && rows != 8) continue;
                for (int style = 0; style < 3; ++style)
                    for (bool s : {true, false}) {
                        check_matmul(matmul_neon, "matmul_neon", in, out, rows, s, style);
                        if (dot) check_matmul(matmul_neon_dot, "matmul_neon_dot", in, out, rows, s, style);
                    }
            }
        }
    for (uint32_t out : dims)
        for (uint32_t rows : row_counts)
            for (int rep = 0; rep < 4; ++rep) check_requantize(out, rows);
    for (size_t d = 0; d <= 70; ++d)
        for (int rep = 0; rep < 20; ++rep) check_quantize_row(d);
    std::printf("%ld checks, %ld mismatches\n", checks, failures);
    return failures == 0 ? 0 : 1;
}

#include "kernels.hpp"

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

}  // namespace mel

// int8 matrix kernels. Each computes, for r < rows and o < layer.out_pad,
//   acc[r * acc_stride + o] = bias[o] + sum_{i < in_pad} W[o][i] * x[r * x_stride + i]
// exactly in int32 (the reader has proved no overflow). x holds int8 values in [-127, 127]
// (layer.signed_input) or [0, 127]; columns in..in_pad of x are zero. Every kernel gives the
// same integers as matmul_scalar: tests compare them bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>

#include "model.hpp"

namespace mel {

using MatmulFn = void (*)(const Layer& layer, const int8_t* x, size_t x_stride, uint32_t rows, int32_t* acc,
                          size_t acc_stride);

// Hidden-layer requantization of `rows` accumulator rows into the next layer's input rows:
// q[o] = clamp((acc[o] * mult[o] + 2^(shift[o]-1)) >> shift[o], 0, 127) for o < out, and 0 for
// out <= o < round_up(out, kIB).
using RequantFn = void (*)(const Layer& layer, const int32_t* acc, size_t acc_stride, uint32_t rows, int8_t* q,
                           size_t q_stride);

// Quantizes one input row into q[0, d): round_half_up(clamp((x - mean) * mul, -127, 127)) in
// float32. Returns false if a feature is not finite (q is then partly written).
using QuantRowFn = bool (*)(const float* x, const float* mean, const float* mul, size_t d, int8_t* q);

// A kernel is the three integer steps in one instruction set, chosen together because the CPU
// has that instruction set. All kernels give identical results.
struct Kernel {
    const char* name;
    MatmulFn matmul;
    RequantFn requantize;
    QuantRowFn quantize_row;
};

void matmul_scalar(const Layer&, const int8_t*, size_t, uint32_t, int32_t*, size_t);
void requantize_scalar(const Layer&, const int32_t*, size_t, uint32_t, int8_t*, size_t);
bool quantize_row_scalar(const float*, const float*, const float*, size_t, int8_t*);

// The kernel chosen for this CPU (or by MEL_KERNEL); set once, thread-safe.
const Kernel& active_kernel();
// Kernels this build has and this CPU runs, for tests and benchmarks. Returns nullptr if the
// name is unknown or unsupported here.
const Kernel* find_kernel(const char* name);

}  // namespace mel

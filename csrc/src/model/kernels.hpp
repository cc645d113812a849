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

struct Kernel {
    const char* name;
    MatmulFn matmul;
};

void matmul_scalar(const Layer&, const int8_t*, size_t, uint32_t, int32_t*, size_t);

// The kernel chosen for this CPU (or by MEL_KERNEL); set once, thread-safe.
const Kernel& active_kernel();
// Kernels this build has and this CPU runs, for tests and benchmarks. Returns nullptr if the
// name is unknown or unsupported here.
const Kernel* find_kernel(const char* name);

}  // namespace mel

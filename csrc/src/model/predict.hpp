#pragma once
#include <cstddef>

#include "kernels.hpp"
#include "model.hpp"

namespace mel {
// Forward pass over n rows with the given kernel. Exactly one of out_ms / out_raw is non-null.
// Throws mel::Error on non-finite input or output. No heap allocation.
void forward(const Model& m, const Kernel& k, const float* x, size_t n, float* out_ms, double* out_raw);
// The model's interval around predictions ms (from forward) for the n rows of x: lo, hi in ms.
// Requires m.has_interval. Double arithmetic in a fixed order (the numpy reference's). No allocation.
void interval(const Model& m, const float* x, size_t n, const float* ms, float* lo, float* hi);
}

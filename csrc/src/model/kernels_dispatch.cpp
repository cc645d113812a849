#include <cstdlib>
#include <cstring>

#if defined(MEL_HAVE_NEON_KERNELS) && defined(__aarch64__)
#define MEL_NEON 1
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1ul << 20)  // asm/hwcap.h on AArch64 kernels >= 4.15
#endif
#endif

#include "kernels.hpp"

namespace mel {

#if defined(MEL_HAVE_X86_KERNELS)
// kernels_x86.cpp
void matmul_avx2(const Layer&, const int8_t*, size_t, uint32_t, int32_t*, size_t);
void matmul_avx512vnni(const Layer&, const int8_t*, size_t, uint32_t, int32_t*, size_t);
void requantize_avx2(const Layer&, const int32_t*, size_t, uint32_t, int8_t*, size_t);
void requantize_avx512(const Layer&, const int32_t*, size_t, uint32_t, int8_t*, size_t);
bool quantize_row_avx2(const float*, const float*, const float*, size_t, int8_t*);
bool quantize_row_avx512(const float*, const float*, const float*, size_t, int8_t*);
#endif
#if defined(MEL_NEON)
// kernels_neon.cpp
void matmul_neon(const Layer&, const int8_t*, size_t, uint32_t, int32_t*, size_t);
void matmul_neon_dot(const Layer&, const int8_t*, size_t, uint32_t, int32_t*, size_t);
void requantize_neon(const Layer&, const int32_t*, size_t, uint32_t, int8_t*, size_t);
bool quantize_row_neon(const float*, const float*, const float*, size_t, int8_t*);
#endif

namespace {

const Kernel kScalar{"scalar", matmul_scalar, requantize_scalar, quantize_row_scalar};
#if defined(MEL_HAVE_X86_KERNELS)
const Kernel kAvx2{"avx2", matmul_avx2, requantize_avx2, quantize_row_avx2};
const Kernel kAvx512Vnni{"avx512vnni", matmul_avx512vnni, requantize_avx512, quantize_row_avx512};
#endif
#if defined(MEL_NEON)
// One kernel name, two matmuls: SDOT where the CPU has the Armv8.2 dot product (HWCAP_ASIMDDP:
// Cortex-A55/A75 and later), widening multiplies on every other AArch64 CPU (Cortex-A53/A57/A72,
// e.g. the Raspberry Pi 4). Advanced SIMD itself is part of AArch64: no check.
const Kernel kNeonDot{"neon", matmul_neon_dot, requantize_neon, quantize_row_neon};
const Kernel kNeon{"neon", matmul_neon, requantize_neon, quantize_row_neon};
#endif

bool supported(const Kernel& k) {
    if (&k == &kScalar) return true;
#if defined(MEL_HAVE_X86_KERNELS)
    __builtin_cpu_init();
    if (&k == &kAvx2) return __builtin_cpu_supports("avx2");
    if (&k == &kAvx512Vnni)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni");
#endif
#if defined(MEL_NEON)
    if (&k == &kNeonDot) return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
    if (&k == &kNeon) return true;
#endif
    return false;
}

// Best first.
const Kernel* const kAll[] = {
#if defined(MEL_HAVE_X86_KERNELS)
    &kAvx512Vnni, &kAvx2,
#endif
#if defined(MEL_NEON)
    &kNeonDot, &kNeon,
#endif
    &kScalar,
};

const Kernel& choose() {
    // MEL_KERNEL forces a kernel; an unknown or unsupported name falls back to the automatic
    // choice (a library must not abort over an environment variable).
    if (const char* forced = std::getenv("MEL_KERNEL"))
        if (const Kernel* k = find_kernel(forced)) return *k;
    for (const Kernel* k : kAll)
        if (supported(*k)) return *k;
    return kScalar;
}

}  // namespace

const Kernel* find_kernel(const char* name) {
    if (!name) return nullptr;
    // The first supported kernel of that name (variants of one name are listed best first).
    for (const Kernel* k : kAll)
        if (std::strcmp(k->name, name) == 0 && supported(*k)) return k;
    return nullptr;
}

const Kernel& active_kernel() {
    static const Kernel& k = choose();  // thread-safe static initialisation
    return k;
}

}  // namespace mel

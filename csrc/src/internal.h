/* Entry points for the package's own tests and benchmarks; not part of the public API. */
#ifndef MEL_INTERNAL_H
#define MEL_INTERNAL_H
#include "maple_edge_lite/maple_edge_lite.h"
#ifdef __cplusplus
extern "C" {
#endif
/* As mel_model_predict (out_ms non-NULL) or mel_model_predict_raw (out_ms NULL), with a named
 * kernel; MEL_ERR_UNSUPPORTED if this build or CPU lacks it. */
MEL_API int mel_internal_predict_with_kernel(const mel_model* model, const char* kernel, const float* x,
                                             size_t n_rows, float* out_ms, double* out_raw);
/* 1 if the named kernel exists in this build and runs on this CPU, else 0. */
MEL_API int mel_internal_kernel_available(const char* kernel);
/* Counters: install the scripted fake syscall layer (spec: see counters/sys.hpp), or the real
 * one again with NULL. Sets opened before keep the layer they were opened with. */
MEL_API int mel_internal_counters_fake(const char* spec);
/* Fds the fake handed out that are still open, and closes of fds it never handed out. */
MEL_API long mel_internal_counters_fake_open_fds(void);
MEL_API long mel_internal_counters_fake_bad_closes(void);
#ifdef __cplusplus
}
#endif
#endif

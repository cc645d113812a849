/*
 * maple_edge_lite: runtime latency predictor for neural networks on edge devices.
 *
 * The C API. This is the only public header; the Python package is a client of it.
 *
 * Conventions
 *  - Every function that can fail returns an int status: MEL_OK (0) or a negative
 *    mel_status. The detail (path, field, errno, what to do) is in mel_last_error(),
 *    which is thread-local and valid until the next failing call on the same thread.
 *  - Objects are opaque handles. A loaded mel_model is immutable: any number of threads
 *    may call the predict functions on one model at once. mel_model_free must not race
 *    with them.
 *  - No function prints, exits or aborts on bad input; no C++ exception crosses this ABI.
 *  - Units: latencies in milliseconds.
 */
#ifndef MAPLE_EDGE_LITE_H
#define MAPLE_EDGE_LITE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(MEL_BUILDING_LIBRARY)
#    define MEL_API __declspec(dllexport)
#  else
#    define MEL_API
#  endif
#elif defined(__GNUC__)
#  define MEL_API __attribute__((visibility("default")))
#else
#  define MEL_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Compile-time version numbers. mel_abi_version() and mel_version() give the run-time ones:
 * a program may check that the library it loaded has the ABI it was compiled against. */
#define MEL_ABI_VERSION 1            /* bumped on any incompatible change of this header */
#define MEL_FORMAT_VERSION 1         /* .melw container version this library writes/reads */
#define MEL_QUANT_SCHEME_VERSION 1   /* int8 quantization scheme inside the container */

/* Reader limits (a file beyond them is rejected with MEL_ERR_LIMIT). */
#define MEL_MAX_LAYERS 16
#define MEL_MAX_DIM 4096

typedef enum mel_status {
    MEL_OK = 0,
    MEL_ERR_INVALID_ARGUMENT = -1, /* a NULL pointer, a bad size, non-finite input features */
    MEL_ERR_NOT_FOUND = -2,        /* the file does not exist */
    MEL_ERR_IO = -3,               /* the file exists but could not be read */
    MEL_ERR_PERMISSION = -4,       /* permission denied */
    MEL_ERR_FORMAT = -5,           /* not a valid .melw file (corrupt, truncated, inconsistent) */
    MEL_ERR_VERSION = -6,          /* a format or quantization version this library does not know */
    MEL_ERR_CHECKSUM = -7,         /* CRC-32 mismatch: the file is damaged */
    MEL_ERR_LIMIT = -8,            /* valid but beyond this reader's limits (MEL_MAX_DIM, ...) */
    MEL_ERR_NUMERIC = -9,          /* a prediction is not a finite number */
    MEL_ERR_NO_MEMORY = -10,       /* allocation failed */
    MEL_ERR_UNSUPPORTED = -11,     /* not supported on this machine or build */
    MEL_ERR_INTERNAL = -99         /* a bug: please report it with mel_last_error() */
} mel_status;

typedef struct mel_model mel_model;

/* "MEL_ERR_FORMAT" for a status, "MEL_UNKNOWN_STATUS" for a number that is none. Static string. */
MEL_API const char* mel_status_name(int status);

/* Detail of the last failure on this thread ("" if none). Owned by the library; copy it. */
MEL_API const char* mel_last_error(void);

/* Package version, e.g. "0.1.0" (static string), and the ABI version of the loaded library. */
MEL_API const char* mel_version(void);
MEL_API int mel_abi_version(void);

/* Name of the int8 kernel the predict functions use on this CPU: "scalar", "avx2",
 * "avx512vnni" or "neon". Chosen once at run time from the CPU's features; the environment
 * variable MEL_KERNEL (one of those names) forces a kernel, for tests and benchmarks. */
MEL_API const char* mel_kernel_name(void);

/* Load a .melw weights file. On success *out owns a model to release with mel_model_free;
 * on failure *out is set to NULL. The buffer variant copies what it needs: the caller may free
 * `data` as soon as the call returns. */
MEL_API int mel_model_load_file(const char* path, mel_model** out);
MEL_API int mel_model_load_buffer(const void* data, size_t size, mel_model** out);
MEL_API void mel_model_free(mel_model* model); /* NULL is a no-op */

/* Number of input features (columns of x). 0 for NULL. */
MEL_API size_t mel_model_input_dim(const mel_model* model);

/* Number of layers and the output width of layer i (0 if out of range). */
MEL_API size_t mel_model_num_layers(const mel_model* model);
MEL_API size_t mel_model_layer_dim(const mel_model* model, size_t layer);

/* Name of input feature i (UTF-8, owned by the model, valid until mel_model_free). */
MEL_API int mel_model_feature_name(const mel_model* model, size_t i, const char** out);

/* The metadata JSON (UTF-8, not NUL-terminated inside the file but NUL-terminated here;
 * owned by the model). Holds the search space and the provenance. */
MEL_API int mel_model_metadata(const mel_model* model, const char** json, size_t* len);

/* Predict latency in milliseconds for n_rows architectures.
 * x: n_rows * input_dim floats, row-major (row i at x + i * input_dim), raw features: the model
 *    applies its own normalisation. out_ms: n_rows floats, written by the call.
 * Non-finite features give MEL_ERR_INVALID_ARGUMENT, a non-finite prediction MEL_ERR_NUMERIC;
 * out_ms is then undefined. No heap allocation; uses at most about 40 KB of stack. */
MEL_API int mel_model_predict(const mel_model* model, const float* x, size_t n_rows, float* out_ms);

/* As mel_model_predict, but writes the model's raw output before the output transform
 * (log-latency for an "exp" model) as double. */
MEL_API int mel_model_predict_raw(const mel_model* model, const float* x, size_t n_rows, double* out);

#ifdef __cplusplus
}
#endif

#endif /* MAPLE_EDGE_LITE_H */

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
#define MEL_FORMAT_VERSION 6         /* newest .melw container version this library reads (it reads 1 to 5 too) */
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
    MEL_ERR_RESOURCE = -12,        /* out of a system resource (file descriptors: raise `ulimit -n`) */
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

/* The model's central interval (*level, e.g. 0.90) around its predictions: MEL_OK and the level
 * for a model that carries one (a device model that `adapt` wrote), MEL_ERR_UNSUPPORTED for one
 * that does not. */
MEL_API int mel_model_interval_level(const mel_model* model, double* level);

/* As mel_model_predict, and the interval: out_lo[i] <= out_ms[i] <= out_hi[i], all > 0 ms
 * (docs/format.md, INTERVAL). MEL_ERR_UNSUPPORTED for a model without an interval. */
MEL_API int mel_model_predict_interval(const mel_model* model, const float* x, size_t n_rows, float* out_ms,
                                       float* out_lo, float* out_hi);

/* ------------------------------------------------------------------------------------------
 * Layer cost models: any CNN's latency from its layer table (docs/layers.md, docs/format.md
 * LAYER_COST). A .melw file holds either an int8 MLP over a feature vector (the functions above)
 * or a layer cost model (format 3; format 4 adds the spill term, see mel_model_layer_spill; format 5
 * the alignment term, see mel_model_layer_align; format 6 the channel term, a cost per channel of
 * depthwise layers off a multiple of 4, docs/format.md), which predicts one network from the rows
 * of its layer table.
 * On a layer cost model, mel_model_predict, _predict_raw, _predict_interval and _predict_arch*
 * return MEL_ERR_UNSUPPORTED; mel_model_input_dim and mel_model_feature_name give the row width
 * and the column names, mel_model_num_layers 0, mel_model_interval_level the interval's level.
 * ---------------------------------------------------------------------------------------- */

/* mel_model_kind */
#define MEL_MODEL_MLP 1         /* an int8 MLP: mel_model_predict, mel_model_predict_arch, ... */
#define MEL_MODEL_LAYER_COST 2  /* a layer cost model: mel_model_predict_layers */

/* The layer-table row layout this library was built for: schema 1 is maple_edge_lite.layers/1,
 * 22 float columns per layer, in this order (LayerTable.array() in Python):
 *   0 kind (index into the model's kinds: 0 conv, 1 pointwise, 2 depthwise, ..., 29 other),
 *   1 macs, 2 params, 3 bytes_read, 4 bytes_written, 5 kernel_h, 6 kernel_w, 7 stride_h,
 *   8 stride_w, 9 dilation_h, 10 dilation_w, 11 groups, 12 cin, 13 cout, 14 in_h, 15 in_w,
 *   16 out_h, 17 out_w, 18 activation (index: 0 none, 1 relu, 2 clip, 3 hardswish,
 *   4 hardsigmoid, 5 sigmoid, 6 swish, 7 leakyrelu), 19 fused_add, 20 se, 21 n_inputs.
 * The schema number changes whenever the kinds, the activations, the columns or the counting
 * rules change; a model records the schema it was packed for, and rows of another schema are
 * refused with MEL_ERR_VERSION. */
#define MEL_LAYER_TABLE_SCHEMA 1
#define MEL_LAYER_COLUMNS 22

/* MEL_MODEL_MLP or MEL_MODEL_LAYER_COST; 0 for NULL. */
MEL_API int mel_model_kind(const mel_model* model);

/* Predict one network's latency in milliseconds from its layer table: n_layers rows of n_columns
 * floats, row-major (row i at rows + i * n_columns), in the layout of table_schema (pass the
 * schema the rows were made in: MEL_LAYER_TABLE_SCHEMA for rows laid out as above, or the number
 * a rows file names, see mel_layer_rows_parse). *out_ms gets the prediction; out_lo and out_hi
 * both NULL skip the interval, both non-NULL get the model's central interval (level: see
 * mel_model_interval_level), *out_lo <= *out_ms <= *out_hi, all > 0 ms. n_layers may be 0 (the
 * per-inference cost alone).
 * Errors: MEL_ERR_UNSUPPORTED for an MLP model; MEL_ERR_VERSION when table_schema is not the
 * model's; MEL_ERR_INVALID_ARGUMENT for NULL pointers, n_columns other than the model's, and a
 * value that is negative or not finite, or a kind or activation index that is not a whole number
 * of the model's range (the message names the row and the column); MEL_ERR_NUMERIC for a
 * prediction that is not a finite positive number. The outputs are then undefined.
 * Thread-safe on a shared model; no heap allocation; under 2 KB of stack. */
MEL_API int mel_model_predict_layers(const mel_model* model, const float* rows, size_t n_layers, size_t n_columns,
                                     uint32_t table_schema, float* out_ms, float* out_lo, float* out_hi);

/* The layer kinds (which == 0) or fused activations (which == 1) of a layer cost model, in the
 * index order its rows use: *n is set to their number and, when names is not NULL, up to cap
 * static-for-the-model's-lifetime UTF-8 names are written ("" is the activation "none").
 * MEL_ERR_UNSUPPORTED for an MLP model. */
MEL_API int mel_model_layer_names(const mel_model* model, int which, const char** names, size_t cap, size_t* n);

/* A layer cost model's spill term (format 4, LAYER_COST scheme 2): each layer adds *ms_per_mb
 * times the MB (10^6 bytes) by which its bytes read plus written exceed *threshold_bytes (the
 * device's per-core cache size the model was fitted with), to its own calibrated part. A model
 * without the term (format 3) gives 0 and 0. MEL_ERR_UNSUPPORTED for an MLP. */
MEL_API int mel_model_layer_spill(const mel_model* model, double* threshold_bytes, double* ms_per_mb);

/* A layer cost model's alignment term (format 5, LAYER_COST scheme 3): a layer whose cout, or whose
 * cin when above *min_cin, is not a multiple of *align (channels) adds its kind's cost per MMAC
 * (mel_model_layer_align_cost) to its kind's part. A model without the term (formats 3 and 4)
 * gives 0 and 0. MEL_ERR_UNSUPPORTED for an MLP. */
MEL_API int mel_model_layer_align(const mel_model* model, uint32_t* align, uint32_t* min_cin);

/* The alignment term's ms per MMAC of an unaligned layer, one per kind in the order of
 * mel_model_layer_names(model, 0, ...): *n is set to the number of kinds and the first min(cap, *n)
 * are written (ms_per_mmac may be NULL to ask *n only). All 0 for a model without the term.
 * MEL_ERR_UNSUPPORTED for an MLP. */
MEL_API int mel_model_layer_align_cost(const mel_model* model, double* ms_per_mmac, size_t cap, size_t* n);

/* The layer-table schema a layer cost model was packed for (MEL_ERR_UNSUPPORTED for an MLP). */
MEL_API int mel_model_layer_table_schema(const mel_model* model, uint32_t* table_schema);

/* Check a layer rows file (docs/layers.md, "The rows file": a 32-byte header, then float32
 * rows, little-endian, CRC-32 checked) that the caller has read into memory, and point *rows
 * into it: no copy, no allocation. The caller owns `data` and keeps it alive while it uses
 * *rows; data must be 4-byte aligned (any malloc'd buffer is). Errors: MEL_ERR_FORMAT (not a
 * rows file, truncated, trailing bytes), MEL_ERR_CHECKSUM (damaged), MEL_ERR_VERSION (a rows
 * container version this library does not read), MEL_ERR_INVALID_ARGUMENT (NULL, misaligned).
 * The rows' values are checked by mel_model_predict_layers. */
MEL_API int mel_layer_rows_parse(const void* data, size_t size, uint32_t* table_schema, size_t* n_layers,
                                 size_t* n_columns, const float** rows);

/* ------------------------------------------------------------------------------------------
 * Performance counters (Linux perf_event), counting exactly the code between start and stop.
 *
 * A missing counter is a state, not an error: mel_counters_open succeeds when some (or all)
 * events are unsupported or denied on this machine and reports each event's state; it fails
 * only for bad arguments, unknown event names and exhausted resources (MEL_ERR_RESOURCE).
 * ---------------------------------------------------------------------------------------- */

typedef struct mel_counters mel_counters;

typedef enum mel_counter_state {
    MEL_COUNTER_COUNTED = 0,     /* counted for the whole window: value is exact */
    MEL_COUNTER_SCALED = 1,      /* multiplexed: value = raw * enabled / running, an estimate */
    MEL_COUNTER_NOT_COUNTED = 2, /* opened, but not counted in this window (running time 0, read error) */
    MEL_COUNTER_UNSUPPORTED = 3, /* this kernel/CPU/VM cannot count it (ENOENT, EOPNOTSUPP, ENODEV, ...) */
    MEL_COUNTER_DENIED = 4       /* permission denied (perf_event_paranoid, CAP_PERFMON, seccomp) */
} mel_counter_state;

/* mel_counters_open flags */
#define MEL_COUNTERS_NO_INHERIT 1u      /* count the calling thread only, not threads it creates */
#define MEL_COUNTERS_EXCLUDE_KERNEL 2u  /* count user space only */
#define MEL_COUNTERS_NO_GROUP 4u        /* one event per group: no co-scheduling */

/* mel_counter_value.flags */
#define MEL_COUNTER_FLAG_KERNEL_EXCLUDED 1u /* user space only (asked for, or forced by the paranoid level) */
#define MEL_COUNTER_FLAG_NO_INHERIT 2u      /* the kernel refused inherit: the calling thread only */
/* Heterogeneous CPUs (big.LITTLE, hybrid: several core PMUs in /sys/bus/event_source/devices): */
#define MEL_COUNTER_FLAG_PER_PMU 4u    /* a generic event opened on every core PMU; value is their sum */
#define MEL_COUNTER_FLAG_CORE_TYPE 8u  /* "<pmu>/<event>/": counts only while the task runs on that
                                          PMU's CPUs; value is not scaled for the time spent elsewhere */

typedef struct mel_counter_value {
    uint32_t size;       /* in: the caller sets sizeof(mel_counter_value), so the struct can grow */
    int32_t state;       /* mel_counter_state */
    uint64_t value;      /* count in the window: exact (COUNTED) or scaled (SCALED); 0 otherwise */
    uint64_t raw;        /* count while the event was on a counter */
    uint64_t enabled_ns; /* time the event was enabled during the window */
    uint64_t running_ns; /* time it was on a counter during the window */
    int32_t error;       /* errno behind UNSUPPORTED / DENIED / NOT_COUNTED, else 0 */
    uint32_t flags;      /* MEL_COUNTER_FLAG_* */
} mel_counter_value;

/* Open counters for the calling process (and, unless MEL_COUNTERS_NO_INHERIT, the threads it
 * creates afterwards) on any CPU. names: event names (see mel_counters_known_events), aliases
 * like "cycles", raw PMU codes "rXXXX", or names added with mel_counters_register_event. */
MEL_API int mel_counters_open(const char* const* names, size_t n, unsigned flags, mel_counters** out);
/* Begin and end a counting window: the counts cover exactly the code in between. The window
 * costs two reads per counter group (the groups are enabled once, at the first start). */
MEL_API int mel_counters_start(mel_counters* c);
MEL_API int mel_counters_stop(mel_counters* c);
/* Results of the last window; n must equal the number of events opened. */
MEL_API int mel_counters_read(const mel_counters* c, mel_counter_value* out, size_t n);
MEL_API void mel_counters_free(mel_counters* c); /* closes every fd; NULL is a no-op */

MEL_API size_t mel_counters_count(const mel_counters* c);
MEL_API const char* mel_counters_name(const mel_counters* c, size_t i);
/* Why event i is not COUNTED in the last window (or at open): the errno and the remedy; "" when counted. */
MEL_API const char* mel_counters_reason(const mel_counters* c, size_t i);
/* "counted", "scaled", "not_counted", "unsupported", "denied"; "unknown" otherwise. */
MEL_API const char* mel_counter_state_name(int state);

/* The known event names, built-in first. Writes up to cap pointers (static strings, or strings
 * owned by the registry for registered events); returns the total number. */
MEL_API size_t mel_counters_known_events(const char** names, size_t cap);
/* Add or replace a named event: type and config as in perf_event_attr (e.g. a PMU type from
 * /sys/bus/event_source/devices/<pmu>/type). Built-in names cannot be redefined. */
MEL_API int mel_counters_register_event(const char* name, uint32_t type, uint64_t config);
/* kernel.perf_event_paranoid, or INT_MIN if it cannot be read. */
MEL_API int mel_perf_event_paranoid(void);

/* ------------------------------------------------------------------------------------------
 * Architecture encoders: architecture string -> feature vector, the same code on the host
 * (through the Python package) and on the board.
 *
 * space: "nb201" (NAS-Bench-201 cells, e.g. "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+
 * |skip_connect~0|nor_conv_3x3~1|skip_connect~2|") or "fbnet" (22 ops joined by '|', e.g.
 * "k3_e1|k3_e6|...|skip"). Each space has a fixed, ordered, named feature schema with a
 * version number (docs/format.md, ENCODER). Strings must be in the official notation exactly:
 * anything else (spaces, other separators, wrong node indices, unknown ops, trailing
 * characters) is MEL_ERR_INVALID_ARGUMENT naming the string's index and what is wrong. An unknown
 * space is MEL_ERR_INVALID_ARGUMENT. Encoders are pure functions: any thread, any time; they do
 * not allocate on success.
 * ---------------------------------------------------------------------------------------- */

/* Space ids in the ENCODER section of a .melw file. */
#define MEL_SPACE_NB201 1
#define MEL_SPACE_FBNET 2

/* Number of features the space's encoder computes. */
MEL_API int mel_encoder_dim(const char* space, size_t* dim);
/* Name of feature i, e.g. "edge4:nor_conv_3x3", "flops_32" (static string). */
MEL_API int mel_encoder_feature_name(const char* space, size_t i, const char** name);
/* Version of the space's feature schema (bumped whenever a feature is added; features are only
 * ever added at the end, see mel_encoder_schema_dim). */
MEL_API int mel_encoder_schema_version(const char* space, int* version);
/* Number of features of the space's schema version `version` (1 to the current one): a schema
 * only grows at its end, so these are the first *dim features of mel_encode's rows, and a model
 * made on that version still loads and predicts. Another version is MEL_ERR_INVALID_ARGUMENT. */
MEL_API int mel_encoder_schema_dim(const char* space, int version, size_t* dim);

/* Encode n architectures (NUL-terminated strings) into out: n * dim floats, row-major (row i at
 * out + i * dim). On failure the rows before the bad one are written, the rest is undefined. */
MEL_API int mel_encode(const char* space, const char* const* archs, size_t n, float* out);

/* Predict latency in milliseconds straight from architecture strings, for a model packed with an
 * ENCODER section whose input is exactly the encoder's features (a device-specialised model).
 * out_ms: n floats. MEL_ERR_UNSUPPORTED for a model without an encoder; MEL_ERR_INVALID_ARGUMENT
 * for a model that also takes descriptor features (adapt it to a device first) and for invalid
 * strings. No heap allocation; uses 8 KB of stack on top of mel_model_predict's. */
MEL_API int mel_model_predict_arch(const mel_model* model, const char* const* archs, size_t n, float* out_ms);

/* As mel_model_predict_arch, with the interval (see mel_model_predict_interval). */
MEL_API int mel_model_predict_arch_interval(const mel_model* model, const char* const* archs, size_t n,
                                            float* out_ms, float* out_lo, float* out_hi);

/* ---------------------------------------------------------------------------------------- */

#ifdef __cplusplus
}
#endif

#endif /* MAPLE_EDGE_LITE_H */

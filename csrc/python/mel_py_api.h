/* The C API functions maple_edge_lite._cycore calls, handed to it by _core in a capsule
 * (_core._c_api). Both extension modules would otherwise link their own copy of the static
 * library, and a process would hold two event registries, two fake syscall layers and two
 * thread-local last errors: counters.register_event through _core would be unknown to a
 * Counters opened through _cycore. Through this table there is one library, _core's.
 * Internal to the package; `size` lets the table grow. */
#ifndef MEL_PY_API_H
#define MEL_PY_API_H
#include "maple_edge_lite/maple_edge_lite.h"

#define MEL_PY_API_CAPSULE "maple_edge_lite._core._c_api"

typedef struct mel_py_api {
    size_t size; /* sizeof(mel_py_api) of the _core that made it */
    const char* (*status_name)(int status);
    const char* (*last_error)(void);
    size_t (*model_input_dim)(const mel_model* model);
    int (*model_predict)(const mel_model* model, const float* x, size_t n_rows, float* out_ms);
    const char* (*counter_state_name)(int state);
    /* NULL where the library has no counters (not Linux) */
    int (*counters_open)(const char* const* names, size_t n, unsigned flags, mel_counters** out);
    int (*counters_start)(mel_counters* c);
    int (*counters_stop)(mel_counters* c);
    int (*counters_read)(const mel_counters* c, mel_counter_value* out, size_t n);
    void (*counters_free)(mel_counters* c);
    size_t (*counters_count)(const mel_counters* c);
    const char* (*counters_name)(const mel_counters* c, size_t i);
    const char* (*counters_reason)(const mel_counters* c, size_t i);
} mel_py_api;

#endif

/*
 * A small client of the C API: a scheduler that picks the fastest of several candidate
 * architectures on the device the model was trained for.
 *
 *   scheduler MODEL.melw CANDIDATES.txt
 *       CANDIDATES.txt: one candidate per line, input_dim whitespace-separated floats (the raw
 *       features); blank lines and lines starting with '#' are skipped. Predicts every candidate
 *       in one batch call and prints
 *           candidate <i> <ms>        (one line each, %.9g: a float32 round-trips exactly)
 *           fastest <i> <ms>
 *   scheduler --check-api MODEL.melw
 *       Checks the API's argument handling (NULL pointers, n_rows = 0, bad indices) and prints
 *       "ok <n> checks" or the failed checks.
 *
 * Exit status: 0 on success, 1 on a library error (the line "error: <MEL_STATUS_NAME>: <detail>"
 * goes to stderr), 2 on bad usage or candidates file, 3 on a failed --check-api.
 * Built by tests/test_c_api.py with `python -m maple_edge_lite --cflags --libs`.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <maple_edge_lite/maple_edge_lite.h>

static int fail_status(int st, const char* what) {
    fprintf(stderr, "error: %s: %s (%s)\n", mel_status_name(st), mel_last_error(), what);
    return 1;
}

/* Reads rows of exactly d floats. Returns the number of rows (and *out, to free), or -1. */
static long read_candidates(const char* path, size_t d, float** out) {
    static char line[1 << 20];
    FILE* f = fopen(path, "r");
    float* rows = NULL;
    size_t n = 0, cap = 0, lineno = 0;
    if (!f) {
        fprintf(stderr, "scheduler: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char* p = line;
        char* end;
        size_t k = 0;
        ++lineno;
        while (*p == ' ' || *p == '\t') ++p;
        if (*p == '\n' || *p == '\r' || *p == '\0' || *p == '#') continue;
        if (n == cap) {
            float* grown;
            cap = cap ? 2 * cap : 16;
            grown = (float*)realloc(rows, cap * d * sizeof(float));
            if (!grown) {
                fprintf(stderr, "scheduler: out of memory\n");
                free(rows);
                fclose(f);
                return -1;
            }
            rows = grown;
        }
        for (;;) {
            float v;
            errno = 0;
            v = strtof(p, &end);
            if (end == p) break;
            if (k == d) {
                k = d + 1;
                break;
            }
            rows[n * d + k++] = v;
            p = end;
        }
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') ++p;
        if (k != d || *p != '\0') {
            fprintf(stderr, "scheduler: %s line %lu: expected %lu numbers\n", path, (unsigned long)lineno,
                    (unsigned long)d);
            free(rows);
            fclose(f);
            return -1;
        }
        ++n;
    }
    fclose(f);
    *out = rows;
    return (long)n;
}

static int schedule(const char* model_path, const char* candidates_path) {
    mel_model* m = NULL;
    float* x = NULL;
    float* ms = NULL;
    long n;
    size_t i, best = 0;
    int st = mel_model_load_file(model_path, &m);
    if (st != MEL_OK) return fail_status(st, "loading the model");
    printf("model %s: input_dim %lu, %lu layers, kernel %s\n", model_path, (unsigned long)mel_model_input_dim(m),
           (unsigned long)mel_model_num_layers(m), mel_kernel_name());
    n = read_candidates(candidates_path, mel_model_input_dim(m), &x);
    if (n < 0) {
        mel_model_free(m);
        return 2;
    }
    if (n == 0) {
        fprintf(stderr, "scheduler: %s lists no candidates\n", candidates_path);
        mel_model_free(m);
        return 2;
    }
    ms = (float*)malloc((size_t)n * sizeof(float));
    if (!ms) {
        free(x);
        mel_model_free(m);
        return 2;
    }
    st = mel_model_predict(m, x, (size_t)n, ms); /* one batch call for every candidate */
    if (st != MEL_OK) {
        free(ms);
        free(x);
        mel_model_free(m);
        return fail_status(st, "predicting");
    }
    for (i = 0; i < (size_t)n; ++i) {
        printf("candidate %lu %.9g\n", (unsigned long)i, ms[i]);
        if (ms[i] < ms[best]) best = i; /* the first of equals wins */
    }
    printf("fastest %lu %.9g\n", (unsigned long)best, ms[best]);
    free(ms);
    free(x);
    mel_model_free(m);
    return 0;
}

/* ---- --check-api ---------------------------------------------------------------------------- */

static int n_checks = 0, n_failed = 0;

static void check(int cond, const char* what, int line) {
    ++n_checks;
    if (!cond) {
        ++n_failed;
        printf("FAILED line %d: %s (last error: %s)\n", line, what, mel_last_error());
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)
#define CHECK_ERR(call, status, fragment) \
    do { \
        int st_ = (call); \
        CHECK(st_ == (status)); \
        CHECK(strstr(mel_last_error(), (fragment)) != NULL); \
    } while (0)

static unsigned char* read_all(const char* path, size_t* size) {
    FILE* f = fopen(path, "rb");
    unsigned char* buf = NULL;
    long len;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = (unsigned char*)malloc((size_t)len);
        if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        }
        *size = (size_t)len;
    }
    fclose(f);
    return buf;
}

static int check_api(const char* model_path) {
    mel_model* m = NULL;
    mel_model* m2 = NULL;
    mel_model* sentinel = (mel_model*)&n_checks; /* any non-NULL pointer: must be reset to NULL */
    const char* s = NULL;
    const char* json = NULL;
    size_t len = 0, d, size = 0, i;
    float* x;
    float ms[2], ms2[2];
    double raw[2];
    unsigned char* bytes;
    int st;

    /* versions and names */
    CHECK(mel_abi_version() == MEL_ABI_VERSION);
    CHECK(mel_version() != NULL && mel_version()[0] != '\0');
    CHECK(mel_kernel_name() != NULL && mel_kernel_name()[0] != '\0');
    CHECK(strcmp(mel_status_name(MEL_OK), "MEL_OK") == 0);
    CHECK(strcmp(mel_status_name(MEL_ERR_FORMAT), "MEL_ERR_FORMAT") == 0);
    CHECK(strcmp(mel_status_name(MEL_ERR_INTERNAL), "MEL_ERR_INTERNAL") == 0);
    CHECK(strcmp(mel_status_name(12345), "MEL_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(mel_status_name(1), "MEL_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(mel_status_name(-1000), "MEL_UNKNOWN_STATUS") == 0);

    /* loading: NULL arguments */
    CHECK_ERR(mel_model_load_file(model_path, NULL), MEL_ERR_INVALID_ARGUMENT, "out is NULL");
    m = sentinel;
    CHECK_ERR(mel_model_load_file(NULL, &m), MEL_ERR_INVALID_ARGUMENT, "path is NULL");
    CHECK(m == NULL);
    m = sentinel;
    CHECK_ERR(mel_model_load_buffer(NULL, 10, &m), MEL_ERR_INVALID_ARGUMENT, "data is NULL");
    CHECK(m == NULL);
    m = sentinel;
    CHECK_ERR(mel_model_load_buffer(NULL, 0, &m), MEL_ERR_FORMAT, "shorter than the 64-byte header");
    CHECK(m == NULL);
    CHECK_ERR(mel_model_load_buffer("x", 1, NULL), MEL_ERR_INVALID_ARGUMENT, "out is NULL");
    m = sentinel;
    CHECK_ERR(mel_model_load_file("/nonexistent/dir/model.melw", &m), MEL_ERR_NOT_FOUND, "/nonexistent/dir/model.melw");
    CHECK(m == NULL);
    mel_model_free(NULL); /* a no-op */

    /* NULL model: accessors return 0, functions MEL_ERR_INVALID_ARGUMENT */
    CHECK(mel_model_input_dim(NULL) == 0);
    CHECK(mel_model_num_layers(NULL) == 0);
    CHECK(mel_model_layer_dim(NULL, 0) == 0);
    CHECK_ERR(mel_model_feature_name(NULL, 0, &s), MEL_ERR_INVALID_ARGUMENT, "model is NULL");
    CHECK_ERR(mel_model_metadata(NULL, &json, &len), MEL_ERR_INVALID_ARGUMENT, "model is NULL");
    CHECK_ERR(mel_model_predict(NULL, ms, 1, ms2), MEL_ERR_INVALID_ARGUMENT, "model is NULL");
    CHECK_ERR(mel_model_predict(NULL, NULL, 0, NULL), MEL_ERR_INVALID_ARGUMENT, "model is NULL");
    CHECK_ERR(mel_model_predict_raw(NULL, ms, 1, raw), MEL_ERR_INVALID_ARGUMENT, "model is NULL");

    /* a real model */
    st = mel_model_load_file(model_path, &m);
    CHECK(st == MEL_OK && m != NULL);
    if (st != MEL_OK || !m) {
        printf("cannot load %s: %s: %s\n", model_path, mel_status_name(st), mel_last_error());
        return 3;
    }
    d = mel_model_input_dim(m);
    CHECK(d > 0);
    CHECK(mel_model_num_layers(m) > 0);
    CHECK(mel_model_layer_dim(m, mel_model_num_layers(m) - 1) == 1);
    CHECK(mel_model_layer_dim(m, mel_model_num_layers(m)) == 0);
    CHECK(mel_model_layer_dim(m, (size_t)-1) == 0);

    CHECK_ERR(mel_model_feature_name(m, 0, NULL), MEL_ERR_INVALID_ARGUMENT, "out is NULL");
    CHECK_ERR(mel_model_feature_name(m, d, &s), MEL_ERR_INVALID_ARGUMENT, "out of range");
    CHECK_ERR(mel_model_feature_name(m, (size_t)-1, &s), MEL_ERR_INVALID_ARGUMENT, "out of range");
    for (i = 0; i < d; ++i) {
        s = NULL;
        CHECK(mel_model_feature_name(m, i, &s) == MEL_OK && s != NULL && s[0] != '\0');
    }
    CHECK_ERR(mel_model_metadata(m, NULL, &len), MEL_ERR_INVALID_ARGUMENT, "json is NULL");
    CHECK(mel_model_metadata(m, &json, NULL) == MEL_OK && json != NULL); /* len is optional */
    CHECK(mel_model_metadata(m, &json, &len) == MEL_OK && strlen(json) == len && json[0] == '{');

    /* predict: NULL buffers and n_rows = 0 */
    x = (float*)calloc(2 * d, sizeof(float));
    if (!x) return 3;
    CHECK_ERR(mel_model_predict(m, NULL, 1, ms), MEL_ERR_INVALID_ARGUMENT, "x is NULL");
    CHECK_ERR(mel_model_predict(m, x, 1, NULL), MEL_ERR_INVALID_ARGUMENT, "out_ms is NULL");
    CHECK_ERR(mel_model_predict_raw(m, NULL, 1, raw), MEL_ERR_INVALID_ARGUMENT, "x is NULL");
    CHECK_ERR(mel_model_predict_raw(m, x, 1, NULL), MEL_ERR_INVALID_ARGUMENT, "out is NULL");
    ms[0] = ms[1] = -42.0f;
    CHECK(mel_model_predict(m, NULL, 0, NULL) == MEL_OK);
    CHECK(mel_model_predict(m, x, 0, ms) == MEL_OK);
    CHECK(ms[0] == -42.0f); /* nothing written */
    CHECK(mel_model_predict_raw(m, NULL, 0, NULL) == MEL_OK);

    /* predict: a non-finite feature is an argument error naming the row and the feature */
    x[d + d - 1] = NAN;
    CHECK_ERR(mel_model_predict(m, x, 2, ms), MEL_ERR_INVALID_ARGUMENT, "input row 1");
    CHECK(strstr(mel_last_error(), "not a finite number") != NULL);
    x[d + d - 1] = INFINITY;
    CHECK_ERR(mel_model_predict_raw(m, x, 2, raw), MEL_ERR_INVALID_ARGUMENT, "not a finite number");
    x[d + d - 1] = 0.0f;
    CHECK(mel_model_predict(m, x, 2, ms) == MEL_OK && isfinite(ms[0]) && ms[0] == ms[1]);
    CHECK(mel_model_predict_raw(m, x, 2, raw) == MEL_OK && raw[0] == raw[1]);
    CHECK((float)exp(raw[0]) == ms[0] || (float)raw[0] == ms[0]); /* "exp" or "identity" model */

    /* load_buffer copies: the caller may scribble over and free its bytes at once */
    bytes = read_all(model_path, &size);
    CHECK(bytes != NULL);
    if (bytes) {
        CHECK(mel_model_load_buffer(bytes, size, &m2) == MEL_OK && m2 != NULL);
        memset(bytes, 0xAB, size);
        free(bytes);
        CHECK(mel_model_predict(m2, x, 2, ms2) == MEL_OK && memcmp(ms, ms2, sizeof ms) == 0);
        mel_model_free(m2);
    }
    /* the model is still usable after failed calls */
    CHECK(mel_model_predict(m, x, 2, ms2) == MEL_OK && memcmp(ms, ms2, sizeof ms) == 0);
    CHECK_ERR(mel_model_predict(m, NULL, 1, ms), MEL_ERR_INVALID_ARGUMENT, "x is NULL");

    free(x);
    mel_model_free(m);
    if (n_failed) {
        printf("%d of %d checks failed\n", n_failed, n_checks);
        return 3;
    }
    printf("ok %d checks\n", n_checks);
    return 0;
}

int main(int argc, char** argv) {
    if (mel_abi_version() != MEL_ABI_VERSION) {
        fprintf(stderr, "scheduler: compiled against ABI %d but the library has ABI %d\n", MEL_ABI_VERSION,
                mel_abi_version());
        return 1;
    }
    if (argc == 3 && strcmp(argv[1], "--check-api") == 0) return check_api(argv[2]);
    if (argc == 3) return schedule(argv[1], argv[2]);
    fprintf(stderr, "usage: %s MODEL.melw CANDIDATES.txt | --check-api MODEL.melw\n", argv[0]);
    return 2;
}

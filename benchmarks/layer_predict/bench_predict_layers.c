/* Times mel_model_predict_layers in C: ROUNDS rounds of LOOP calls on one network's rows (a
 * rows file from LayerTable.write_rows), each round timed with CLOCK_MONOTONIC; prints the
 * median, 10th and 90th percentile in ns per call, without and with the interval:
 *     ms <ms> lo <lo> hi <hi>
 *     predict <median> <p10> <p90>
 *     predict+interval <median> <p10> <p90>
 * Built and run by benchmarks/bench_layer_predict.py against the installed package. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <maple_edge_lite/maple_edge_lite.h>

enum { ROUNDS = 2001, LOOP = 64 };

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void* a, const void* b) {
    const double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

static int run(const mel_model* m, const float* rows, size_t n, size_t c, uint32_t schema, int interval,
               const char* label) {
    static double per[ROUNDS];
    float ms = 0, lo = 0, hi = 0;
    for (int r = 0; r < ROUNDS; ++r) {
        const double t0 = now_ns();
        for (int i = 0; i < LOOP; ++i) {
            int st = mel_model_predict_layers(m, rows, n, c, schema, &ms, interval ? &lo : NULL, interval ? &hi : NULL);
            if (st != MEL_OK) {
                fprintf(stderr, "predict: %s: %s\n", mel_status_name(st), mel_last_error());
                return 1;
            }
        }
        per[r] = (now_ns() - t0) / LOOP;
    }
    qsort(per, ROUNDS, sizeof per[0], cmp);
    printf("%s %.1f %.1f %.1f\n", label, per[ROUNDS / 2], per[ROUNDS / 10], per[ROUNDS * 9 / 10]);
    return 0;
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LAYERS.melw ROWS.bin\n", argv[0]);
        return 2;
    }
    mel_model* m = NULL;
    int st = mel_model_load_file(argv[1], &m);
    if (st != MEL_OK) {
        fprintf(stderr, "load: %s: %s\n", mel_status_name(st), mel_last_error());
        return 1;
    }
    FILE* f = fopen(argv[2], "rb");
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void* data = malloc((size_t)size);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) return 1;
    fclose(f);
    uint32_t schema = 0;
    size_t n = 0, c = 0;
    const float* rows = NULL;
    st = mel_layer_rows_parse(data, (size_t)size, &schema, &n, &c, &rows);
    if (st != MEL_OK) {
        fprintf(stderr, "rows: %s: %s\n", mel_status_name(st), mel_last_error());
        return 1;
    }
    float ms = 0, lo = 0, hi = 0;
    st = mel_model_predict_layers(m, rows, n, c, schema, &ms, &lo, &hi);
    if (st != MEL_OK) return 1;
    printf("ms %.9g lo %.9g hi %.9g\n", ms, lo, hi);
    int rc = run(m, rows, n, c, schema, 0, "predict") || run(m, rows, n, c, schema, 1, "predict+interval");
    free(data);
    mel_model_free(m);
    return rc;
}

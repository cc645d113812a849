/* A scheduler's use of a device model's interval: predict architecture strings given on the
 * command line and print "<ms> <lo> <hi> <arch>" (%.9g: float32 round-trips), then the level.
 * Built against the installed package by tests/test_c_api.py. Exit 1 with the status name and
 * mel_last_error() on failure. */
#include <stdio.h>
#include <stdlib.h>

#include <maple_edge_lite/maple_edge_lite.h>

static int fail(const char* what, int st) {
    fprintf(stderr, "%s: %s: %s\n", what, mel_status_name(st), mel_last_error());
    return 1;
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DEVICE.melw ARCH [ARCH ...]\n", argv[0]);
        return 2;
    }
    mel_model* m = NULL;
    int st = mel_model_load_file(argv[1], &m);
    if (st != MEL_OK) return fail("load", st);
    double level = 0.0;
    st = mel_model_interval_level(m, &level);
    if (st != MEL_OK) {
        mel_model_free(m);
        return fail("level", st);
    }
    const size_t n = (size_t)(argc - 2);
    float* buf = malloc(3 * n * sizeof(float));
    if (!buf) return 1;
    st = mel_model_predict_arch_interval(m, (const char* const*)(argv + 2), n, buf, buf + n, buf + 2 * n);
    if (st != MEL_OK) {
        free(buf);
        mel_model_free(m);
        return fail("predict", st);
    }
    for (size_t i = 0; i < n; ++i) printf("%.9g %.9g %.9g %s\n", buf[i], buf[n + i], buf[2 * n + i], argv[2 + i]);
    printf("level %.9g\n", level);
    free(buf);
    mel_model_free(m);
    return 0;
}

/* A board's use of a layer cost model: load a device's layer model, then for each layer rows
 * file a host made (LayerTable.write_rows) print "<ms> <lo> <hi> <layers> <path>" (%.9g: float32
 * round-trips). First line, for a layer cost model: "kinds K activations A schema S level L".
 * No JSON parser, no onnx: the rows file is checked and read in place by mel_layer_rows_parse.
 * Built against the installed package by tests/test_layer_melw.py. Exit 1 with the step, the
 * status name and mel_last_error() on failure; 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>

#include <maple_edge_lite/maple_edge_lite.h>

static int fail(const char* what, int st) {
    fprintf(stderr, "%s: %s: %s\n", what, mel_status_name(st), mel_last_error());
    return 1;
}

/* The whole file in a malloc'd buffer (suitably aligned for the rows); NULL on failure. */
static void* read_all(const char* path, size_t* size) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    unsigned char* buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char* bigger = realloc(buf, cap *= 2);
            if (!bigger) free(buf);
            buf = bigger;
        }
    }
    if (ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = n;
    return buf;
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DEVICE_LAYERS.melw ROWS.bin [ROWS.bin ...]\n", argv[0]);
        return 2;
    }
    mel_model* m = NULL;
    int st = mel_model_load_file(argv[1], &m);
    if (st != MEL_OK) return fail("load", st);
    if (mel_model_kind(m) == MEL_MODEL_LAYER_COST) {
        size_t kinds = 0, acts = 0;
        uint32_t schema = 0;
        double level = 0.0;
        if ((st = mel_model_layer_names(m, 0, NULL, 0, &kinds)) != MEL_OK ||
            (st = mel_model_layer_names(m, 1, NULL, 0, &acts)) != MEL_OK ||
            (st = mel_model_layer_table_schema(m, &schema)) != MEL_OK ||
            (st = mel_model_interval_level(m, &level)) != MEL_OK) {
            mel_model_free(m);
            return fail("names", st);
        }
        printf("kinds %zu activations %zu schema %u level %.9g\n", kinds, acts, (unsigned)schema, level);
    }
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; ++i) {
        size_t size = 0, n_layers = 0, n_columns = 0;
        void* data = read_all(argv[i], &size);
        if (!data) {
            fprintf(stderr, "cannot read %s\n", argv[i]);
            rc = 1;
            break;
        }
        uint32_t schema = 0;
        const float* rows = NULL;
        float ms = 0.0f, lo = 0.0f, hi = 0.0f;
        st = mel_layer_rows_parse(data, size, &schema, &n_layers, &n_columns, &rows);
        if (st != MEL_OK) {
            rc = fail("rows", st);
        } else if ((st = mel_model_predict_layers(m, rows, n_layers, n_columns, schema, &ms, &lo, &hi)) != MEL_OK) {
            rc = fail("predict", st);
        } else {
            printf("%.9g %.9g %.9g %zu %s\n", ms, lo, hi, n_layers, argv[i]);
        }
        free(data);
    }
    mel_model_free(m);
    return rc;
}

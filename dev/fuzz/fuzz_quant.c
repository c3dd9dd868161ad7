/*
libFuzzer target for llmc/quant.h's quantized checkpoint reader (quant_model_read), in the style
of dev/fuzz/fuzz_reader.c: each input is written to an in-memory file and read by path. The
reader must return 0, or -1 with a message naming the file and with the model left empty (all
zeros: nothing allocated), never crash, hang, leak or read out of bounds (AddressSanitizer,
UndefinedBehaviorSanitizer). A model it accepts must be usable: every matrix is dequantized
(the values must be finite: the reader checked the scales and the values) and multiplied by a
vector with quant_matmul_forward and with the reference, and quant_model_dequantize fills a
parameter array. Build (clang):
  clang -g -O1 -march=native -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I. -std=gnu11 -o build/fuzz_quant dev/fuzz/fuzz_quant.c -lm
-march=native fuzzes the AVX-512 kernels on a machine that has them; without it the portable ones.
Seed: any small quantized file, e.g. dev/infer/quantize on the awkward reference model.
*/
#define _GNU_SOURCE
#include <sys/mman.h>
#include "llmc/utils.h"
#include "llmc/quant.h"

static void fuzz_matrix(const QuantMatrix* m) {
    // the last row dequantized, and the first row through both matmuls (the kernels' tails and
    // edge tiles, not the throughput), compared with llmc/quant.h's bound
    static float x[4 * 65536], row[4 * 65536], out[1], ref[1];
    int C = m->cols;
    if (C > 4 * 65536) { abort(); }  // the reader's shape limits (C <= 65536, cols <= 4C)
    for (int c = 0; c < C; c++) { x[c] = (float)((c % 7) - 3) * 0.25f; }
    quant_matrix_dequantize_row(m, m->rows - 1, row);
    for (int c = 0; c < C; c++) {
        if (!isfinite(row[c])) { fprintf(stderr, "fuzz: an accepted matrix dequantizes to %g\n", row[c]); abort(); }
    }
    QuantMatrix one = *m;  // its first row alone: a 1 x C matrix over the same memory
    one.rows = 1;
    quant_matrix_dequantize_row(&one, 0, row);
    double S = 0.0;
    for (int c = 0; c < C; c++) { S += fabs((double)x[c] * row[c]); }
    quant_matmul_forward(out, x, &one, NULL, 1, C, 1);
    quant_matmul_forward_ref(ref, x, &one, NULL, 1, C, 1);
    double u = ldexp(1.0, -24), n = C + 10.0, gamma = n * u / (1.0 - n * u);
    if (S < 1e30 && !(fabs((double)out[0] - ref[0]) <= gamma * S)) {  // (past 1e30 fp32 partial sums may overflow)
        fprintf(stderr, "fuzz: fast %g vs reference %g, beyond gamma(C + 10) * %g\n", out[0], ref[0], S);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    int fd = memfd_create("fuzz_input", 0);
    if (fd < 0) { die("memfd_create failed"); }
    if (size > 0 && write(fd, data, size) != (ssize_t)size) { die("write to memfd failed"); }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    char err[LLMC_ERRLEN];
    err[0] = '\0';
    QuantModel m;
    if (quant_model_read(path, &m, err) == 0) {
        fuzz_matrix(&m.wte);
        for (int l = 0; l < m.config.num_layers; l++) {
            fuzz_matrix(&m.qkvw[l]);
            fuzz_matrix(&m.attprojw[l]);
            fuzz_matrix(&m.fcw[l]);
            fuzz_matrix(&m.fcprojw[l]);
        }
        float* params = float_alloc_check(gpt2_num_parameters(&m.config), "parameters");
        quant_model_dequantize(&m, params);
        free(params);
        quant_model_free(&m);
    } else {
        QuantModel zero;
        memset(&zero, 0, sizeof(zero));
        if (err[0] == '\0' || strstr(err, path) == NULL) { fprintf(stderr, "fuzz: -1 without a message naming the file\n"); abort(); }
        if (memcmp(&m, &zero, sizeof(m)) != 0) { fprintf(stderr, "fuzz: a refused model is not left empty\n"); abort(); }
    }
    close(fd);
    return 0;
}

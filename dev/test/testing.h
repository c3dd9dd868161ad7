// Shared by the test programs (test_gpt.c, test_gpt.cu, dev/test/test_llmc.c): the PASS/FAIL
// line protocol of dev/test/run_tests.sh, the tensor comparison, and the reader of the PyTorch
// reference's debug state (dev/reference/gpt2_reference.py documents its layout).
#ifndef DEV_TEST_TESTING_H
#define DEV_TEST_TESTING_H

#include <math.h>
#include <stdarg.h>
#include "llmc/utils.h"
#include "llmc/checkpoint.h"

static int test_failures = 0;  // a test program's tally; main returns test_failures == 0 ? 0 : 1

static void check(int ok, const char* name, const char* fmt, ...) {
    char detail[LLMC_ERRLEN + 128];
    va_list args;
    va_start(args, fmt);
    vsnprintf(detail, sizeof(detail), fmt, args);
    va_end(args);
    if (ok) { printf("PASS: %s (%s)\n", name, detail); }
    else { printf("FAIL: %s: %s\n", name, detail); test_failures++; }
}

// max |a-b| / max |b| over n values: relative to the tensor's scale, because elementwise
// relative error means nothing for entries near zero. A NaN anywhere makes it NaN.
static double scaled_max_error(const float* a, const float* b, size_t n) {
    double maxdiff = 0.0, maxref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) { return NAN; }
        if (d > maxdiff) { maxdiff = d; }
        if (fabs((double)b[i]) > maxref) { maxref = fabs((double)b[i]); }
    }
    return maxref > 0.0 ? maxdiff / maxref : maxdiff;
}

typedef struct {
    int B, T, V, Vp, nsteps;
    float lr, beta1, beta2, eps, weight_decay, grad_clip;
    int* x;                // (B, T) inputs
    int* y;                // (B, T) targets
    float* logits;         // (B, T, V)
    float loss;
    float* grads;          // num_parameters, checkpoint order
    float* step_losses;    // nsteps
    float* params_after;   // num_parameters, after the nsteps AdamW steps
} DebugState;

static void read_or_die(void* p, size_t size, size_t n, FILE* f, const char* path) {
    char err[LLMC_ERRLEN];
    if (fread_exact(p, size, n, f, path, err) != 0) { die("%s", err); }
}

// reads PREFIX_debug_state.bin, checking it belongs to the model of config
static void debug_state_read(DebugState* s, const char* path, const GPT2Config* c) {
    size_t P = gpt2_num_parameters(c);
    FILE* f = fopen_check(path, "rb");
    int32_t header[256];
    float hp[8];
    read_or_die(header, sizeof(int32_t), 256, f, path);
    if (header[0] != 20240327 || header[1] != 1) { die("%s: not a version-1 debug state", path); }
    s->B = header[2]; s->T = header[3]; s->V = header[4]; s->Vp = header[5]; s->nsteps = header[6];
    if (s->V != c->vocab_size || s->Vp != c->padded_vocab_size || header[7] != c->num_layers ||
        header[8] != c->num_heads || header[9] != c->channels || s->B <= 0 || s->T <= 0 || s->nsteps < 0) {
        die("%s does not match its model file", path);
    }
    read_or_die(hp, sizeof(float), 8, f, path);
    s->lr = hp[0]; s->beta1 = hp[1]; s->beta2 = hp[2]; s->eps = hp[3]; s->weight_decay = hp[4]; s->grad_clip = hp[5];
    size_t BT = (size_t)s->B * s->T;
    s->x = (int*)malloc_check(BT * sizeof(int), "x");
    s->y = (int*)malloc_check(BT * sizeof(int), "y");
    s->logits = float_alloc_check(BT * s->V, "reference logits");
    s->grads = float_alloc_check(P, "reference gradients");
    s->step_losses = float_alloc_check(s->nsteps, "reference step losses");
    s->params_after = float_alloc_check(P, "reference parameters");
    read_or_die(s->x, sizeof(int), BT, f, path);
    read_or_die(s->y, sizeof(int), BT, f, path);
    read_or_die(s->logits, sizeof(float), BT * s->V, f, path);
    read_or_die(&s->loss, sizeof(float), 1, f, path);
    read_or_die(s->grads, sizeof(float), P, f, path);
    read_or_die(s->step_losses, sizeof(float), s->nsteps, f, path);
    read_or_die(s->params_after, sizeof(float), P, f, path);
    fclose(f);
}

static void debug_state_free(DebugState* s) {
    free(s->x); free(s->y); free(s->logits); free(s->grads); free(s->step_losses); free(s->params_after);
}

#endif // DEV_TEST_TESTING_H

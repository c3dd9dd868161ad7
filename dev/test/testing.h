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

// The reference's debug state (layout: the docstring of dev/reference/gpt2_reference.py).
// Version 1: full fine-tuning, unweighted mean loss. Version 2 (the reference's --weights or
// --peft): adds a per-position loss weight and a PEFT method; the trainable vector is then the
// whole model (peft_method 0, n_trainable = num_parameters, checkpoint order) or the PEFT
// tensors of llmc/peft.h (n_trainable = that layout's float count, layout order).
typedef struct {
    int version;           // 1 or 2
    int B, T, V, Vp, nsteps;
    int has_weights;       // 1: weights holds the per-position loss weights (version 2 only)
    int peft_method;       // PEFT_NONE (0, full fine-tuning), 1 lora, 2 bitfit, 3 adapter, 4 prompt
    size_t n_trainable;    // floats in grads and params_after
    float lr, beta1, beta2, eps, weight_decay, grad_clip;
    int* x;                // (B, T) inputs
    int* y;                // (B, T) targets
    float* weights;        // (B, T) loss weights (loss = sum(w * loss_t) / sum(w)), or NULL
    float* logits;         // (B, T, V) at the T token positions (after a soft prompt's k positions)
    float loss;
    float* grads;          // n_trainable: checkpoint order (full) or PEFT layout order
    float* step_losses;    // nsteps
    float* params_after;   // n_trainable, after the nsteps AdamW steps
    // version 3: another loss than (weighted) cross-entropy (dev/reference/align_reference.py)
    int loss_kind;         // 0 cross-entropy, 1 DPO sigmoid, 2 IPO, 3 hinge, 4 distillation
    int reverse_kl;        // distillation: 1 for KL(student || teacher)
    float hp6, hp7;        // DPO: beta, label smoothing; distillation: alpha, tau
    float* ref_logp;       // DPO (B): the reference log-probs of the rows (weights = response mask)
    float* init_logp;      // DPO (B): the initial model's own log-probs of them
} DebugState;

static void read_or_die(void* p, size_t size, size_t n, FILE* f, const char* path) {
    char err[LLMC_ERRLEN];
    if (fread_exact(p, size, n, f, path, err) != 0) { die("%s", err); }
}

// reads PREFIX_debug_state.bin (version 1 or 2), checking it belongs to the model of config
// and that the file has exactly the size its header announces
static void debug_state_read(DebugState* s, const char* path, const GPT2Config* c) {
    size_t P = gpt2_num_parameters(c);
    FILE* f = fopen_check(path, "rb");
    long fsize = file_size_of(f);
    int32_t header[256];
    float hp[8];
    if (fsize < (long)sizeof(header)) { die("%s: truncated: %ld bytes, shorter than the 1024-byte debug state header", path, fsize); }
    read_or_die(header, sizeof(int32_t), 256, f, path);
    if (header[0] != 20240327 || header[1] < 1 || header[1] > 3) {
        die("%s: not a debug state of version 1, 2 or 3 (magic %d, version %d)", path, header[0], header[1]);
    }
    memset(s, 0, sizeof(*s));
    s->version = header[1];
    s->B = header[2]; s->T = header[3]; s->V = header[4]; s->Vp = header[5]; s->nsteps = header[6];
    if (s->V != c->vocab_size || s->Vp != c->padded_vocab_size || header[7] != c->num_layers ||
        header[8] != c->num_heads || header[9] != c->channels || header[10] != c->max_seq_len ||
        s->B <= 0 || s->T <= 0 || s->T > c->max_seq_len || s->nsteps < 0) {
        die("%s does not match its model file", path);
    }
    s->n_trainable = P;
    if (s->version >= 2) {
        s->has_weights = header[11];
        s->peft_method = header[12];
        uint64_t n = (uint64_t)(uint32_t)header[13] | ((uint64_t)(uint32_t)header[14] << 32);
        if (s->has_weights != 0 && s->has_weights != 1) { die("%s: bad has_weights %d in the header", path, s->has_weights); }
        if (s->peft_method < 0 || s->peft_method > 4) { die("%s: unknown PEFT method %d in the header", path, s->peft_method); }
        if (n == 0 || n > (uint64_t)fsize / 8) { die("%s: implausible trainable count %llu in the header", path, (unsigned long long)n); }
        if (s->peft_method == 0 && n != P) {
            die("%s: full fine-tuning with %llu trainable floats, but the model has %zu parameters", path, (unsigned long long)n, P);
        }
        s->n_trainable = (size_t)n;
    }
    if (s->version == 3) {
        s->loss_kind = header[15];
        s->reverse_kl = header[16];
        if (s->loss_kind < 1 || s->loss_kind > 4 || (s->reverse_kl != 0 && s->reverse_kl != 1)) {
            die("%s: bad loss kind %d / reverse flag %d in the header", path, s->loss_kind, s->reverse_kl);
        }
        if (s->loss_kind <= 3 && (!s->has_weights || s->B % 2 != 0)) { die("%s: a DPO state needs the response mask and an even B", path); }
    }
    size_t BT = (size_t)s->B * s->T, N = s->n_trainable;
    size_t expected = sizeof(header) + 8 * sizeof(float) + 2 * BT * sizeof(int32_t) + (s->has_weights ? BT : 0) * sizeof(float) +
                      (BT * s->V + 1 + 2 * N + (size_t)s->nsteps) * sizeof(float) +
                      (s->loss_kind >= 1 && s->loss_kind <= 3 ? 2 * (size_t)s->B * sizeof(float) : 0);
    if ((size_t)fsize != expected) {
        die("%s: has %ld bytes, but its header (version %d, B=%d T=%d V=%d nsteps=%d weights=%d peft=%d trainable=%zu) "
            "announces %zu (%s)", path, fsize, s->version, s->B, s->T, s->V, s->nsteps, s->has_weights, s->peft_method, N,
            expected, (size_t)fsize < expected ? "truncated" : "trailing bytes");
    }
    read_or_die(hp, sizeof(float), 8, f, path);
    s->lr = hp[0]; s->beta1 = hp[1]; s->beta2 = hp[2]; s->eps = hp[3]; s->weight_decay = hp[4]; s->grad_clip = hp[5];
    s->hp6 = hp[6]; s->hp7 = hp[7];
    s->x = (int*)malloc_check(BT * sizeof(int), "x");
    s->y = (int*)malloc_check(BT * sizeof(int), "y");
    s->weights = s->has_weights ? float_alloc_check(BT, "reference loss weights") : NULL;
    s->logits = float_alloc_check(BT * s->V, "reference logits");
    s->grads = float_alloc_check(N, "reference gradients");
    s->step_losses = float_alloc_check(s->nsteps, "reference step losses");
    s->params_after = float_alloc_check(N, "reference parameters");
    read_or_die(s->x, sizeof(int), BT, f, path);
    read_or_die(s->y, sizeof(int), BT, f, path);
    for (size_t i = 0; i < BT; i++) {
        if (s->x[i] < 0 || s->x[i] >= s->V || s->y[i] < 0 || s->y[i] >= s->V) { die("%s: token out of range at %zu", path, i); }
    }
    if (s->has_weights) {
        read_or_die(s->weights, sizeof(float), BT, f, path);
        double wsum = 0.0;
        for (size_t i = 0; i < BT; i++) {
            if (!(s->weights[i] >= 0.0f) || !isfinite(s->weights[i])) { die("%s: bad loss weight %g at %zu", path, s->weights[i], i); }
            wsum += s->weights[i];
        }
        if (!(wsum > 0.0)) { die("%s: the loss weights sum to zero", path); }
    }
    if (s->loss_kind >= 1 && s->loss_kind <= 3) {
        s->ref_logp = float_alloc_check(s->B, "reference log-probs");
        s->init_logp = float_alloc_check(s->B, "initial log-probs");
        read_or_die(s->ref_logp, sizeof(float), s->B, f, path);
        read_or_die(s->init_logp, sizeof(float), s->B, f, path);
    }
    read_or_die(s->logits, sizeof(float), BT * s->V, f, path);
    read_or_die(&s->loss, sizeof(float), 1, f, path);
    read_or_die(s->grads, sizeof(float), N, f, path);
    read_or_die(s->step_losses, sizeof(float), s->nsteps, f, path);
    read_or_die(s->params_after, sizeof(float), N, f, path);
    fclose(f);
}

static void debug_state_free(DebugState* s) {
    free(s->x); free(s->y); free(s->weights); free(s->logits); free(s->grads); free(s->step_losses); free(s->params_after);
    free(s->ref_logp); free(s->init_logp);
    s->weights = NULL;
}

#endif // DEV_TEST_TESTING_H

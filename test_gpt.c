/*
Checks train_gpt.c against the PyTorch reference (dev/reference/gpt2_reference.py).

usage: test_gpt PREFIX     reads PREFIX_model.bin and PREFIX_debug_state.bin

The reference computes in float64 from the same fp32 initial weights, so what we measure is
our fp32 error. Tolerances (fp32):
  logits, each gradient tensor, parameters after N steps:
      max |ours - ref| <= 1e-4 * max |ref|   (relative to the tensor's scale, because
      elementwise relative error is meaningless for entries near zero)
  loss, and each of the N step losses: |ours - ref| <= 1e-5 * |ref|
It also checks, on the same batch, that two micro-batches of B/2 with gradient accumulation
give the gradients of one batch of B, and that two identical passes are bitwise identical.
Prints PASS:/FAIL: lines; exits 1 if anything failed.
*/
#define TESTING
#include "train_gpt.c"

static int failures = 0;

static void check(int ok, const char* name, const char* fmt, ...) {
    char detail[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(detail, sizeof(detail), fmt, args);
    va_end(args);
    if (ok) {
        printf("PASS: %s (%s)\n", name, detail);
    } else {
        printf("FAIL: %s: %s\n", name, detail);
        failures++;
    }
}

// max |a-b| / max |b| over n values; a NaN anywhere makes it NaN (and the check fail)
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

static void read_or_die(void* p, size_t size, size_t n, FILE* f, const char* path) {
    char err[LLMC_ERRLEN];
    if (fread_exact(p, size, n, f, path, err) != 0) { die("%s", err); }
}

int main(int argc, char** argv) {
    if (argc != 2) { die("usage: test_gpt PREFIX (reads PREFIX_model.bin and PREFIX_debug_state.bin)"); }
    char model_path[1024], state_path[1024];
    snprintf(model_path, sizeof(model_path), "%s_model.bin", argv[1]);
    snprintf(state_path, sizeof(state_path), "%s_debug_state.bin", argv[1]);

    GPT2 model;
    gpt2_build_from_checkpoint(&model, model_path);
    GPT2Config* c = &model.config;
    size_t P = model.num_parameters;

    FILE* f = fopen_check(state_path, "rb");
    int32_t header[256];
    float hp[8];
    read_or_die(header, sizeof(int32_t), 256, f, state_path);
    if (header[0] != 20240327 || header[1] != 1) { die("%s: not a version-1 debug state", state_path); }
    int B = header[2], T = header[3], V = header[4], Vp = header[5], nsteps = header[6];
    if (V != c->vocab_size || Vp != c->padded_vocab_size || header[7] != c->num_layers ||
        header[8] != c->num_heads || header[9] != c->channels) {
        die("%s does not match %s", state_path, model_path);
    }
    read_or_die(hp, sizeof(float), 8, f, state_path);
    float lr = hp[0], beta1 = hp[1], beta2 = hp[2], eps = hp[3], wd = hp[4], clip = hp[5];
    int* x = (int*)malloc_check((size_t)B * T * sizeof(int), "x");
    int* y = (int*)malloc_check((size_t)B * T * sizeof(int), "y");
    float* ref_logits = float_alloc_check((size_t)B * T * V, "ref logits");
    float ref_loss;
    float* ref_grads = float_alloc_check(P, "ref grads");
    float* ref_losses = float_alloc_check(nsteps, "ref losses");
    float* ref_params = float_alloc_check(P, "ref params");
    read_or_die(x, sizeof(int), (size_t)B * T, f, state_path);
    read_or_die(y, sizeof(int), (size_t)B * T, f, state_path);
    read_or_die(ref_logits, sizeof(float), (size_t)B * T * V, f, state_path);
    read_or_die(&ref_loss, sizeof(float), 1, f, state_path);
    read_or_die(ref_grads, sizeof(float), P, f, state_path);
    read_or_die(ref_losses, sizeof(float), nsteps, f, state_path);
    read_or_die(ref_params, sizeof(float), P, f, state_path);
    fclose(f);
    printf("test_gpt: %s: L=%d C=%d NH=%d V=%d Vp=%d B=%d T=%d, %zu parameters, %d steps\n", argv[1],
           c->num_layers, c->channels, c->num_heads, V, Vp, B, T, P, nsteps);

    gpt2_allocate(&model, B, T, 0, P);

    // forward: logits (the real vocabulary of each row) and loss
    gpt2_forward(&model, x, y, B, T);
    float* logits = float_alloc_check((size_t)B * T * V, "logits");
    for (int bt = 0; bt < B * T; bt++) {
        memcpy(logits + (size_t)bt * V, model.acts.logits + (size_t)bt * Vp, V * sizeof(float));
    }
    double e = scaled_max_error(logits, ref_logits, (size_t)B * T * V);
    check(e <= 1e-4, "logits", "scaled max error %.2e, tolerance 1e-4", e);
    double le = fabs(model.mean_loss - ref_loss) / fabs(ref_loss);
    check(le <= 1e-5, "loss", "ours %.7f ref %.7f, relative error %.2e, tolerance 1e-5", model.mean_loss, ref_loss, le);

    // backward: each gradient tensor
    gpt2_zero_grad(&model);
    gpt2_backward(&model, 1.0f);
    size_t offset = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        size_t n = model.param_sizes[i];
        e = scaled_max_error(model.grads_memory + offset, ref_grads + offset, n);
        char name[64];
        snprintf(name, sizeof(name), "grad %s", PARAMETER_NAMES[i]);
        check(e <= 1e-4, name, "scaled max error %.2e, tolerance 1e-4", e);
        offset += n;
    }

    // determinism: the same pass again gives bitwise the same gradients
    float* grads1 = float_alloc_check(P, "grads copy");
    memcpy(grads1, model.grads_memory, P * sizeof(float));
    gpt2_forward(&model, x, y, B, T);
    gpt2_zero_grad(&model);
    gpt2_backward(&model, 1.0f);
    check(memcmp(grads1, model.grads_memory, P * sizeof(float)) == 0, "bitwise repeatable backward",
          "two identical passes");

    // gradient accumulation: two halves with loss_scale 1/2 == one full batch
    if (B % 2 == 0) {
        int half = B / 2;
        gpt2_zero_grad(&model);
        for (int h = 0; h < 2; h++) {
            gpt2_forward(&model, x + (size_t)h * half * T, y + (size_t)h * half * T, half, T);
            gpt2_backward(&model, 0.5f);
        }
        e = scaled_max_error(model.grads_memory, grads1, P);
        check(e <= 1e-5, "gradient accumulation", "2 x B=%d vs 1 x B=%d: scaled max error %.2e, tolerance 1e-5", half, B, e);
    }

    // N AdamW steps on the same batch, with the reference's settings and global-norm clipping
    int steps_ok = 1;
    double worst = 0.0;
    for (int step = 0; step < nsteps; step++) {
        gpt2_forward(&model, x, y, B, T);
        gpt2_zero_grad(&model);
        gpt2_backward(&model, 1.0f);
        float norm = gpt2_grad_norm(&model);
        gpt2_update(&model, model.grads_memory, lr, beta1, beta2, eps, wd, grad_clip_scale(norm, clip), step + 1);
        double d = fabs(model.mean_loss - ref_losses[step]) / fabs(ref_losses[step]);
        if (!(d <= 1e-5)) { steps_ok = 0; }
        if (!(d <= worst)) { worst = d; }
        printf("  step %2d: loss %.7f ref %.7f norm %.4f\n", step, model.mean_loss, ref_losses[step], norm);
    }
    check(steps_ok, "AdamW step losses", "%d steps, worst relative error %.2e, tolerance 1e-5", nsteps, worst);
    e = scaled_max_error(model.params_memory, ref_params, P);
    check(e <= 1e-4, "parameters after AdamW steps", "scaled max error %.2e, tolerance 1e-4", e);

    free(x); free(y); free(ref_logits); free(ref_grads); free(ref_losses); free(ref_params);
    free(logits); free(grads1);
    gpt2_free(&model);
    return failures == 0 ? 0 : 1;
}

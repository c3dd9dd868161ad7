/*
Checks train_gpt.c against the PyTorch reference (dev/reference/gpt2_reference.py).

usage: test_gpt PREFIX     reads PREFIX_model.bin and PREFIX_debug_state.bin (and, for a PEFT
                           reference, PREFIX_peft_init.peft: the adapter to start from)

The reference computes in float64 from the same fp32 initial weights, so what we measure is
our fp32 error. The debug state says what trains: every parameter, or the PEFT tensors of one
method on a frozen base; and whether the loss is weighted per target (a fine-tuning mask),
in which case the loss is sum(w * loss) / sum(w), here as in the reference. Tolerances (fp32):
  logits, each gradient tensor, trainable parameters after N steps:
      max |ours - ref| <= 1e-4 * max |ref|   (relative to the tensor's scale, because
      elementwise relative error is meaningless for entries near zero)
  loss, and each of the N step losses: |ours - ref| <= 1e-5 * |ref|
It also checks, on the same batch, that two micro-batches of B/2 with gradient accumulation
give the gradients of one batch of B, that two identical passes are bitwise identical, that a
frozen base really is frozen (bitwise unchanged after the steps), and for LoRA and BitFit that
the merged checkpoint gives the logits of base + adapter (scaled max error <= 1e-5: the merged
weights round W + s B A to fp32 once, the unmerged path rounds two products separately).
Prints PASS:/FAIL: lines; exits 1 if anything failed.
*/
#define TESTING
#include "train_gpt.c"
#include "dev/test/testing.h"

// the logits of the batch's real positions (after a soft prompt's), real vocabulary only
static void real_logits(const GPT2* model, float* out, int B, int T) {
    int V = model->config.vocab_size, Vp = model->config.padded_vocab_size, k = model->prompt_len;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            memcpy(out + ((size_t)b * T + t) * V, model->acts.logits + ((size_t)b * (T + k) + k + t) * Vp, V * sizeof(float));
        }
    }
}

int main(int argc, char** argv) {
    if (argc != 2) { die("usage: test_gpt PREFIX (reads PREFIX_model.bin and PREFIX_debug_state.bin)"); }
    char model_path[1024], state_path[1024], peft_path[1024];
    snprintf(model_path, sizeof(model_path), "%s_model.bin", argv[1]);
    snprintf(state_path, sizeof(state_path), "%s_debug_state.bin", argv[1]);
    snprintf(peft_path, sizeof(peft_path), "%s_peft_init.peft", argv[1]);

    GPT2 model;
    gpt2_build_from_checkpoint(&model, model_path);
    GPT2Config* c = &model.config;
    size_t P = model.num_parameters;
    float* base_before = float_alloc_check(P, "base copy");
    memcpy(base_before, model.params_memory, P * sizeof(float));

    DebugState ref;
    debug_state_read(&ref, state_path, c);
    int B = ref.B, T = ref.T, V = ref.V, nsteps = ref.nsteps;
    float lr = ref.lr, beta1 = ref.beta1, beta2 = ref.beta2, eps = ref.eps, wd = ref.weight_decay, clip = ref.grad_clip;
    const int* x = ref.x;
    const int* y = ref.y;
    const float* w = ref.has_weights ? ref.weights : NULL;
    uint64_t base_hash = peft_hash_floats(model.params_memory, P);
    if (ref.peft_method != PEFT_NONE) {
        char err[LLMC_ERRLEN];
        PeftLayout lay;
        float* peft;
        if (peft_file_read(peft_path, c, base_hash, &lay, &peft, err) != 0) { die("%s", err); }
        if (lay.pc.method != ref.peft_method) { die("%s: method %d, the debug state says %d", peft_path, lay.pc.method, ref.peft_method); }
        gpt2_set_peft(&model, &lay, peft);
    }
    size_t NT = model.num_trainable;
    if (NT != ref.n_trainable) { die("%s: %zu trainable values, our layout has %zu", state_path, ref.n_trainable, NT); }
    const char* method = PEFT_METHOD_NAMES[model.peft.pc.method];
    printf("test_gpt: %s: L=%d C=%d NH=%d V=%d Vp=%d B=%d T=%d, %zu parameters, %s (%zu trainable)%s, %d steps\n", argv[1],
           c->num_layers, c->channels, c->num_heads, V, ref.Vp, B, T, P, ref.peft_method ? method : "full", NT,
           w ? ", weighted loss" : "", nsteps);
    double wsum = 0.0;
    for (int i = 0; i < B * T; i++) { wsum += w ? w[i] : 1.0f; }
    float dloss = (float)(1.0 / wsum);  // the weighted mean's gradient per unit of weight

    gpt2_allocate(&model, B, T, 0, NT);

    // forward: logits (the real vocabulary of each row) and loss
    gpt2_forward(&model, x, y, w, B, T);
    float* logits = float_alloc_check((size_t)B * T * V, "logits");
    real_logits(&model, logits, B, T);
    double e = scaled_max_error(logits, ref.logits, (size_t)B * T * V);
    check(e <= 1e-4, "logits", "%s: scaled max error %.2e, tolerance 1e-4", method, e);
    double le = fabs(model.mean_loss - ref.loss) / fabs(ref.loss);
    check(le <= 1e-5, "loss", "%s: ours %.7f ref %.7f, relative error %.2e, tolerance 1e-5", method, model.mean_loss, ref.loss, le);

    // backward: each gradient tensor of the trainable vector
    gpt2_zero_grad(&model);
    gpt2_backward(&model, dloss);
    size_t sizes[PEFT_MAX_TENSORS + NUM_PARAMETER_TENSORS];
    int decays[PEFT_MAX_TENSORS + NUM_PARAMETER_TENSORS];
    int ntensors = gpt2_trainable_tensors(&model, sizes, decays);
    size_t offset = 0;
    for (int i = 0; i < ntensors; i++) {
        size_t n = sizes[i];
        e = scaled_max_error(model.grads_memory + offset, ref.grads + offset, n);
        char name[96];
        snprintf(name, sizeof(name), "grad %s", gpt2_is_peft(&model) ? model.peft.names[i] : PARAMETER_NAMES[i]);
        check(e <= 1e-4, name, "%s: scaled max error %.2e, tolerance 1e-4", method, e);
        offset += n;
    }

    // determinism: the same pass again gives bitwise the same gradients
    float* grads1 = float_alloc_check(NT, "grads copy");
    memcpy(grads1, model.grads_memory, NT * sizeof(float));
    gpt2_forward(&model, x, y, w, B, T);
    gpt2_zero_grad(&model);
    gpt2_backward(&model, dloss);
    check(memcmp(grads1, model.grads_memory, NT * sizeof(float)) == 0, "bitwise repeatable backward",
          "%s: two identical passes", method);

    // gradient accumulation: two halves, each scaled by the whole batch's weight, == one batch
    if (B % 2 == 0) {
        int half = B / 2;
        gpt2_zero_grad(&model);
        for (int h = 0; h < 2; h++) {
            gpt2_forward(&model, x + (size_t)h * half * T, y + (size_t)h * half * T, w ? w + (size_t)h * half * T : NULL, half, T);
            gpt2_backward(&model, dloss);
        }
        e = scaled_max_error(model.grads_memory, grads1, NT);
        check(e <= 1e-5, "gradient accumulation", "%s: 2 x B=%d vs 1 x B=%d: scaled max error %.2e, tolerance 1e-5", method, half, B, e);
    }

    // N AdamW steps on the same batch, with the reference's settings and global-norm clipping
    int steps_ok = 1;
    double worst = 0.0;
    for (int step = 0; step < nsteps; step++) {
        gpt2_forward(&model, x, y, w, B, T);
        gpt2_zero_grad(&model);
        gpt2_backward(&model, dloss);
        float norm = gpt2_grad_norm(&model);
        gpt2_update(&model, model.grads_memory, lr, beta1, beta2, eps, wd, grad_clip_scale(norm, clip), step + 1);
        double d = fabs(model.mean_loss - ref.step_losses[step]) / fabs(ref.step_losses[step]);
        if (!(d <= 1e-5)) { steps_ok = 0; }
        if (!(d <= worst)) { worst = d; }
        printf("  step %2d: loss %.7f ref %.7f norm %.4f\n", step, model.mean_loss, ref.step_losses[step], norm);
    }
    check(steps_ok, "AdamW step losses", "%s: %d steps, worst relative error %.2e, tolerance 1e-5", method, nsteps, worst);
    e = scaled_max_error(model.trainable, ref.params_after, NT);
    check(e <= 1e-4, "parameters after AdamW steps", "%s: scaled max error %.2e, tolerance 1e-4", method, e);

    if (gpt2_is_peft(&model)) {
        check(memcmp(base_before, model.params_memory, P * sizeof(float)) == 0, "frozen base",
              "%s: the base weights are bitwise unchanged after %d steps", method, nsteps);
        // the adapter file: written, read back bitwise, and refused on another base
        char tmp[1100], err[LLMC_ERRLEN];
        snprintf(tmp, sizeof(tmp), "%s_trained.peft", argv[1]);
        peft_file_write(tmp, &model.peft, c, base_hash, model.trainable);
        PeftLayout lay2;
        float* back = NULL;
        int rc = peft_file_read(tmp, c, base_hash, &lay2, &back, err);
        check(rc == 0 && lay2.count == NT && memcmp(back, model.trainable, NT * sizeof(float)) == 0, "adapter file round trip",
              "%s: %zu floats", method, NT);
        free(back);
        back = NULL;
        rc = peft_file_read(tmp, c, base_hash ^ 1, &lay2, &back, err);
        check(rc != 0 && strstr(err, "another base model") != NULL, "adapter file refused on another base", "%s", rc != 0 ? err : "accepted");
        free(back);
        if (model.peft.pc.method == PEFT_LORA || model.peft.pc.method == PEFT_BITFIT) {
            float* merged = float_alloc_check(P, "merged model");
            memcpy(merged, model.params_memory, P * sizeof(float));
            peft_merge(merged, model.trainable, &model.peft, c);
            GPT2 plain;
            gpt2_build_from_params(&plain, c, merged);
            gpt2_allocate(&plain, B, T, 0, P);
            gpt2_forward(&model, x, y, w, B, T);
            real_logits(&model, logits, B, T);
            gpt2_forward(&plain, x, y, w, B, T);
            float* logits2 = float_alloc_check((size_t)B * T * V, "merged logits");
            real_logits(&plain, logits2, B, T);
            e = scaled_max_error(logits2, logits, (size_t)B * T * V);
            check(e <= 1e-5, "merged checkpoint logits", "%s: merged vs base + adapter: scaled max error %.2e, tolerance 1e-5", method, e);
            free(logits2);
            gpt2_free(&plain);
        }
    }

    debug_state_free(&ref);
    free(logits); free(grads1); free(base_before);
    gpt2_free(&model);
    return test_failures == 0 ? 0 : 1;
}

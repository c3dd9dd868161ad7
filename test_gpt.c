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
#include "dev/test/testing.h"

int main(int argc, char** argv) {
    if (argc != 2) { die("usage: test_gpt PREFIX (reads PREFIX_model.bin and PREFIX_debug_state.bin)"); }
    char model_path[1024], state_path[1024];
    snprintf(model_path, sizeof(model_path), "%s_model.bin", argv[1]);
    snprintf(state_path, sizeof(state_path), "%s_debug_state.bin", argv[1]);

    GPT2 model;
    gpt2_build_from_checkpoint(&model, model_path);
    GPT2Config* c = &model.config;
    size_t P = model.num_parameters;

    DebugState ref;
    debug_state_read(&ref, state_path, c);
    int B = ref.B, T = ref.T, V = ref.V, Vp = ref.Vp, nsteps = ref.nsteps;
    float lr = ref.lr, beta1 = ref.beta1, beta2 = ref.beta2, eps = ref.eps, wd = ref.weight_decay, clip = ref.grad_clip;
    const int* x = ref.x;
    const int* y = ref.y;
    printf("test_gpt: %s: L=%d C=%d NH=%d V=%d Vp=%d B=%d T=%d, %zu parameters, %d steps\n", argv[1],
           c->num_layers, c->channels, c->num_heads, V, Vp, B, T, P, nsteps);

    gpt2_allocate(&model, B, T, 0, P);

    // forward: logits (the real vocabulary of each row) and loss
    gpt2_forward(&model, x, y, B, T);
    float* logits = float_alloc_check((size_t)B * T * V, "logits");
    for (int bt = 0; bt < B * T; bt++) {
        memcpy(logits + (size_t)bt * V, model.acts.logits + (size_t)bt * Vp, V * sizeof(float));
    }
    double e = scaled_max_error(logits, ref.logits, (size_t)B * T * V);
    check(e <= 1e-4, "logits", "scaled max error %.2e, tolerance 1e-4", e);
    double le = fabs(model.mean_loss - ref.loss) / fabs(ref.loss);
    check(le <= 1e-5, "loss", "ours %.7f ref %.7f, relative error %.2e, tolerance 1e-5", model.mean_loss, ref.loss, le);

    // backward: each gradient tensor
    gpt2_zero_grad(&model);
    gpt2_backward(&model, 1.0f);
    size_t offset = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        size_t n = model.param_sizes[i];
        e = scaled_max_error(model.grads_memory + offset, ref.grads + offset, n);
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
        double d = fabs(model.mean_loss - ref.step_losses[step]) / fabs(ref.step_losses[step]);
        if (!(d <= 1e-5)) { steps_ok = 0; }
        if (!(d <= worst)) { worst = d; }
        printf("  step %2d: loss %.7f ref %.7f norm %.4f\n", step, model.mean_loss, ref.step_losses[step], norm);
    }
    check(steps_ok, "AdamW step losses", "%d steps, worst relative error %.2e, tolerance 1e-5", nsteps, worst);
    e = scaled_max_error(model.params_memory, ref.params_after, P);
    check(e <= 1e-4, "parameters after AdamW steps", "scaled max error %.2e, tolerance 1e-4", e);

    debug_state_free(&ref);
    free(logits); free(grads1);
    gpt2_free(&model);
    return test_failures == 0 ? 0 : 1;
}

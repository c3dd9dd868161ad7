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
A version-3 debug state replaces the cross-entropy by DPO (sigmoid with label smoothing, IPO,
hinge; dev/reference/align_reference.py): pairs of rows (chosen 2i, rejected 2i+1), the
response mask as the loss weights, the reference log-probs stored. The DPO loss goes through
the trainer's own path (the per-position losses of the forward, llmc/dpo.h's per-token weights,
the weighted backward), and the same tolerances apply. Then also: the rows' log-probs at the
initial model (what the trainer's reference pass stores) within 1e-5 of the oracle's, and two
anchors that need no oracle. DPO's step losses are compared within 1e-5 x max(|ref|, 1) plus
|dL/dh| x (4 + 2 step) float epsilons x the log-prob sums' magnitude: the loss is a function of
h, a difference of fp32 sums of order 100, whose rounding does not shrink with the loss (IPO's
dL/dh grows with it: 8.7e-5 relative was seen at a loss of 1.4), and after each step the fp32
parameters' small drift from the float64 ones moves the sums a little more. The anchors: identical chosen and rejected rows give no parameter gradient
(|grad| <= 1e-6 of the real gradient's scale), and as beta -> 0 the sigmoid loss's gradient
over beta/2 is the gradient of (logp(rejected) - logp(chosen)) / pairs (at beta = 1e-4 within
2e-3: the next term of the expansion is beta * h / 2).
Prints PASS:/FAIL: lines; exits 1 if anything failed.
*/
#define TESTING
#include "train_gpt.c"
#include <float.h>
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

// What the reference's loss is, for test_pass
typedef struct {
    int dpo;            // 0: the weighted cross-entropy; 1: DPO with cfg
    DpoConfig cfg;
    double unit;        // the backward's dloss: 1 / sum(w) of the whole batch, or 1 / its pairs
    float* losses;      // (B, T) scratch
    float* weights;     // (B, T) scratch
    double cond;        // DPO, set by test_pass: the mean over pairs of |dL/dh| x (|logp| + |ref| of both rows),
                        // how far fp32 rounding of the log-prob sums can move the loss, per unit of rounding
} LossSpec;

// One forward, and if backward the backward, of the reference's loss on rows x, y (B, T) with
// weights w (the response mask for DPO) and ref (B, DPO's reference log-probs). Returns the loss
// (cross-entropy: the weighted mean of these rows; DPO: the mean over their pairs).
static float test_pass(GPT2* m, LossSpec* ls, const int* x, const int* y, const float* w, const float* ref, int B, int T,
                       int backward) {
    gpt2_forward(m, x, y, w, B, T);
    if (!ls->dpo) {
        if (backward) { gpt2_backward(m, (float)ls->unit); }
        return m->mean_loss;
    }
    DpoStats st;
    dpo_stats_reset(&st);
    cpu_losses_all(m, ls->losses);
    dpo_weights(&ls->cfg, ls->losses, w, ref, B, T, ls->weights, &st);
    ls->cond = 0.0;
    for (int i = 0; i < B / 2; i++) {
        double lc = dpo_row_logp(ls->losses + (size_t)2 * i * T, w + (size_t)2 * i * T, T);
        double lr = dpo_row_logp(ls->losses + (size_t)(2 * i + 1) * T, w + (size_t)(2 * i + 1) * T, T);
        double dl_dh;
        dpo_pair_loss(&ls->cfg, (lc - ref[2 * i]) - (lr - ref[2 * i + 1]), &dl_dh);
        ls->cond += fabs(dl_dh) * (fabs(lc) + fabs(lr) + fabs(ref[2 * i]) + fabs(ref[2 * i + 1])) / (B / 2);
    }
    if (backward) {
        cpu_set_weights(m, ls->weights);
        gpt2_backward(m, (float)ls->unit);
    }
    return (float)(st.loss / st.pairs);
}

// A loss against the reference's: *err its relative error, *tol its bound. Cross-entropy: 1e-5
// of |ref|. DPO: the loss is a function of h, a difference of fp32 log-prob sums of order 100
// (one ulp 7.6e-6 at 90), whose rounding moves it by |dL/dh| x a few ulps whatever its size
// (IPO: dL/dh = 2 (h - 1/(2 beta)) grows with the loss; the hinge sits at exactly 0). So its
// bound is 1e-5 plus `ulps` float epsilons of ls->cond (from the last test_pass), both in
// units of max(|ref|, 1).
static void loss_error(const LossSpec* ls, double got, double ref, double ulps, double* err, double* tol) {
    double scale = fmax(fabs(ref), ls->dpo ? 1.0 : 0.0);
    *err = fabs(got - ref) / scale;
    *tol = 1e-5 + (ls->dpo ? ulps * FLT_EPSILON * ls->cond / scale : 0.0);
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
    LossSpec ls = { 0 };
    ls.dpo = ref.loss_kind >= 1 && ref.loss_kind <= 3;
    GPT2 teacher;
    if (ref.loss_kind == 4) {
        // distillation: the oracle's teacher beside the model, the mixed loss in every pass
        char teacher_path[1100];
        snprintf(teacher_path, sizeof(teacher_path), "%s_teacher.bin", argv[1]);
        gpt2_build_from_checkpoint(&teacher, teacher_path);
        gpt2_set_teacher(&model, &teacher, ref.hp6, ref.hp7, ref.reverse_kl, teacher_path);
        model.distill_on = 1;
        method = ref.reverse_kl ? "distill-reverse" : "distill";
    }
    if (ls.dpo) {
        ls.cfg.loss = ref.loss_kind;
        ls.cfg.beta = ref.hp6;
        ls.cfg.label_smoothing = ref.hp7;
        method = DPO_LOSS_NAMES[ref.loss_kind];  // the check names say which loss
    }
    printf("test_gpt: %s: L=%d C=%d NH=%d V=%d Vp=%d B=%d T=%d, %zu parameters, %s (%zu trainable)%s, %d steps\n", argv[1],
           c->num_layers, c->channels, c->num_heads, V, ref.Vp, B, T, P, ref.peft_method ? PEFT_METHOD_NAMES[ref.peft_method] : "full",
           NT, ls.dpo ? ", DPO loss" : ref.loss_kind == 4 ? ", distillation loss" : w ? ", weighted loss" : "", nsteps);
    double wsum = 0.0;
    for (int i = 0; i < B * T; i++) { wsum += w ? w[i] : 1.0f; }
    ls.unit = ls.dpo ? 2.0 / B : 1.0 / wsum;  // per unit of weight: the weighted mean's, or the mean over pairs'
    ls.losses = float_alloc_check((size_t)B * T, "losses");
    ls.weights = float_alloc_check((size_t)B * T, "DPO weights");
    const float* rl = ref.ref_logp;
    gpt2_allocate(&model, B, T, 0, NT);

    // forward: logits (the real vocabulary of each row) and loss
    float loss0 = test_pass(&model, &ls, x, y, w, rl, B, T, 0);
    float* logits = float_alloc_check((size_t)B * T * V, "logits");
    real_logits(&model, logits, B, T);
    double e = scaled_max_error(logits, ref.logits, (size_t)B * T * V);
    check(e <= 1e-4, "logits", "%s: scaled max error %.2e, tolerance 1e-4", method, e);
    // DPO: the bound of step 0's loss below, the same loss at the same parameters (IPO at h ~ 0,
    // dL/dh = -1/beta: 1.16e-5 relative was seen against a bare 1e-5)
    double le, ltol;
    loss_error(&ls, loss0, ref.loss, 4.0, &le, &ltol);
    check(le <= ltol, "loss", "%s: ours %.7f ref %.7f, relative error %.2e, tolerance %.2e%s", method, loss0, ref.loss, le,
          ltol, ls.dpo ? " (1e-5 + the log-prob rounding term)" : "");
    if (ls.dpo) {
        // the reference pass: each row's response log-prob under the initial model
        float lpmax = 0.0f, lperr = 0.0f;
        for (int b = 0; b < B; b++) {
            float lp = (float)dpo_row_logp(ls.losses + (size_t)b * T, w + (size_t)b * T, T);
            lpmax = fmaxf(lpmax, fabsf(ref.init_logp[b]));
            lperr = fmaxf(lperr, fabsf(lp - ref.init_logp[b]));
        }
        check(lperr <= 1e-5f * lpmax, "DPO reference log-probs", "%s: max error %.2e of max |logp| %.3f, tolerance 1e-5 relative",
              method, lperr, lpmax);
    }

    // backward: each gradient tensor of the trainable vector
    gpt2_zero_grad(&model);
    test_pass(&model, &ls, x, y, w, rl, B, T, 1);
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
    gpt2_zero_grad(&model);
    test_pass(&model, &ls, x, y, w, rl, B, T, 1);
    check(memcmp(grads1, model.grads_memory, NT * sizeof(float)) == 0, "bitwise repeatable backward",
          "%s: two identical passes", method);

    // gradient accumulation: two halves, each scaled by the whole batch's weight, == one batch
    if (B % (ls.dpo ? 4 : 2) == 0) {  // DPO: whole pairs in each half
        int half = B / 2;
        gpt2_zero_grad(&model);
        for (int h = 0; h < 2; h++) {
            test_pass(&model, &ls, x + (size_t)h * half * T, y + (size_t)h * half * T, w ? w + (size_t)h * half * T : NULL,
                      rl ? rl + h * half : NULL, half, T, 1);
        }
        e = scaled_max_error(model.grads_memory, grads1, NT);
        check(e <= 1e-5, "gradient accumulation", "%s: 2 x B=%d vs 1 x B=%d: scaled max error %.2e, tolerance 1e-5", method, half, B, e);
    }

    if (ls.dpo) {
        // anchor 1: identical chosen and rejected rows: what the chosen row's weights push up,
        // the rejected row's push down, so the parameters get no gradient at all
        size_t BT = (size_t)B * T;
        int* x2 = (int*)malloc_check(BT * sizeof(int), "x2");
        int* y2 = (int*)malloc_check(BT * sizeof(int), "y2");
        float* w2 = float_alloc_check(BT, "w2");
        for (int b = 0; b < B; b++) {
            size_t src = (size_t)(b - b % 2) * T;
            memcpy(x2 + (size_t)b * T, x + src, T * sizeof(int));
            memcpy(y2 + (size_t)b * T, y + src, T * sizeof(int));
            memcpy(w2 + (size_t)b * T, w + src, T * sizeof(float));
        }
        gpt2_zero_grad(&model);
        test_pass(&model, &ls, x2, y2, w2, rl, B, T, 1);
        double gmax = 0.0, gscale = 0.0;
        for (size_t i = 0; i < NT; i++) {
            gmax = fmax(gmax, fabs(model.grads_memory[i]));
            gscale = fmax(gscale, fabs(grads1[i]));
        }
        check(gmax <= 1e-6 * gscale, "DPO anchor: identical chosen and rejected", "%s: max |grad| %.2e, real gradients' max %.2e",
              method, gmax, gscale);
        // anchor 2: beta -> 0: the sigmoid loss's gradient / (beta / 2) is the gradient of
        // (logp(rejected) - logp(chosen)) / pairs, i.e. of the cross-entropy weighted +mask on
        // the chosen rows and -mask on the rejected ones (logp = -sum of cross-entropies)
        LossSpec small = ls;
        small.cfg.loss = DPO_SIGMOID;
        small.cfg.beta = 1e-4f;
        small.cfg.label_smoothing = 0.0f;
        gpt2_zero_grad(&model);
        test_pass(&model, &small, x, y, w, rl, B, T, 1);
        float* gdpo = float_alloc_check(NT, "beta -> 0 gradients");
        for (size_t i = 0; i < NT; i++) { gdpo[i] = model.grads_memory[i] / (small.cfg.beta / 2); }
        for (size_t i = 0; i < BT; i++) { w2[i] = (i / T) % 2 == 0 ? w[i] : -w[i]; }
        gpt2_zero_grad(&model);
        gpt2_forward(&model, x, y, w, B, T);
        cpu_set_weights(&model, w2);
        gpt2_backward(&model, (float)ls.unit);
        e = scaled_max_error(gdpo, model.grads_memory, NT);
        check(e <= 2e-3, "DPO anchor: beta -> 0", "%s: gradient / (beta/2) at beta 1e-4 vs the log-prob difference's: scaled max error %.2e, "
              "tolerance 2e-3", method, e);
        free(x2); free(y2); free(w2); free(gdpo);
    }

    // N AdamW steps on the same batch, with the reference's settings and global-norm clipping
    int steps_ok = 1;
    double worst = 0.0, worst_ratio = 0.0;  // the largest relative error, and error / tolerance
    for (int step = 0; step < nsteps; step++) {
        gpt2_zero_grad(&model);
        float l = test_pass(&model, &ls, x, y, w, rl, B, T, 1);
        float norm = gpt2_grad_norm(&model);
        gpt2_update(&model, model.grads_memory, lr, beta1, beta2, eps, wd, grad_clip_scale(norm, clip), step + 1);
        // DPO (loss_error): 4 + 2 step ulps. The 2 a step: after k steps the fp32 parameters sit
        // a little off the float64 ones (within 3e-7 of their scale: the check after the loop),
        // which moves the sums by more ulps than their rounding at fixed parameters. Measured for
        // IPO (whose steps overshoot its minimum and back, at any lr tried): with 4 ulps at every
        // step, 4 of 100 fresh seeds failed at steps 8-9 (error / bound up to 2.4); 20-22 ulps
        // there put those at 0.5 or under.
        double d, tol;
        loss_error(&ls, l, ref.step_losses[step], 4.0 + 2.0 * step, &d, &tol);
        if (!(d <= tol)) { steps_ok = 0; }
        if (!(d <= worst)) { worst = d; }
        if (!(d / tol <= worst_ratio)) { worst_ratio = d / tol; }
        printf("  step %2d: loss %.7f ref %.7f norm %.4f\n", step, l, ref.step_losses[step], norm);
    }
    check(steps_ok, "AdamW step losses", "%s: %d steps, worst relative error %.2e, tolerance 1e-5%s (worst error / tolerance %.2f)",
          method, nsteps, worst, ls.dpo ? " + the log-prob rounding term" : "", worst_ratio);
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
    free(logits); free(grads1); free(base_before); free(ls.losses); free(ls.weights);
    gpt2_free(&model);
    if (ref.loss_kind == 4) { gpt2_free(&teacher); }
    return test_failures == 0 ? 0 : 1;
}

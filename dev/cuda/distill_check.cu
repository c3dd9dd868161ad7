// fused_distill_classifier_cuda (llmc/distill.h) against distill_forward + distill_backward, and
// the C reference itself against independent anchors: central finite differences of
// distill_forward, the plain cross-entropy of llmc/crossentropy.h at alpha = 0, the closed form
// of a two-token vocabulary, and KL = 0 when the teacher is the student.
//
// Tolerances (scaled max error, max|got - ref| / max|ref| per tensor):
//   losses, kl   1e-5 in both builds: the inputs are the same floatX values on both sides and the
//                kernel computes in fp32 (the reference in double); a few fp32 ulps of the
//                log-normalizers (~10) and of tree sums over <= 50257 terms stay near 1e-6.
//                When the teacher is close to the student (alpha 1: the loss is the KL), KL is
//                ~1e-2 and its absolute error, that of log(sum exp(s/tau) / sum exp(t/tau)) from
//                two fp32 tree sums (a few 1e-7), is ~1e-5 of it: 1e-4.
//   dlogits      fp32 2e-5: fp32 softmax terms, each with a relative error of a few ulps of
//                (s - lse) ~ 1e-6 (measured <= 4e-6, the largest when the teacher is near the
//                student and q - p cancels); bf16 8e-3 = 2^-7: the output is rounded to bf16,
//                whose unit roundoff is 2^-8 = 3.9e-3 (8-bit significand), so <= 2^-8 of the
//                tensor's max after scaling, plus the fp32 error near a rounding tie (measured
//                <= 3.8e-3).
//   finite differences (CPU only, fp32 outputs): step h = 2^-9 on logits in [-3, 3) (exact in
//                fp32), losses <= ~6 rounded to fp32 (|err| <= 2.4e-7 each): the central difference
//                has a rounding error <= 2.4e-7 / h = 1.2e-4 (times dloss * w <= 0.7) and a
//                truncation error h^2/6 * f''' ~ 1e-6, against gradients whose max is ~0.5: a
//                scaled error <= ~2e-4 (measured <= 1e-4), tolerance 5e-4. Dropping tau from the
//                soft term gives 0.25 there.
#include "../../llmc/distill.h"
#include "../../llmc/crossentropy.h"
#include "harness.h"

#define PAD_VALUE 1.0e4f  // padding logits: would dominate any softmax that let them in

// ----------------------------------------------------------------------------
// The C reference against anchors that do not share its code

static void random_targets(int* targets, int BT, int V) {
    for (int i = 0; i < BT; i++) {
        int y = (int)((harness_uniform() * 0.5f + 0.5f) * V);
        targets[i] = y < V ? y : V - 1;
    }
}

// weights in [0, 1) with every third one 0 (masked positions)
static float* random_weights(int BT) {
    float* w = (float*)malloc(sizeof(float) * BT + 1);
    for (int i = 0; i < BT; i++) { w[i] = i % 3 == 1 ? 0.0f : harness_uniform() * 0.5f + 0.5f; }
    return w;
}

static void check_finite_differences(int reverse, float alpha, float tau) {
    const int BT = 4, V = 13, Vp = 16;
    const float h = 1.0f / 512.0f, dloss = 0.7f;
    size_t n = (size_t)BT * Vp;
    float* s = harness_random(n, 3.0f);
    float* t = harness_random(n, 3.0f);
    for (int bt = 0; bt < BT; bt++) { for (int i = V; i < Vp; i++) { s[bt * Vp + i] = PAD_VALUE; t[bt * Vp + i] = PAD_VALUE; } }
    int targets[BT];
    random_targets(targets, BT, V);
    float* w = random_weights(BT);
    float* dl = (float*)malloc(n * sizeof(float));
    float* fd = (float*)malloc(n * sizeof(float));
    float lp[BT], lm[BT], kl[BT];
    distill_backward(dl, s, t, targets, w, dloss, alpha, tau, reverse, BT, V, Vp);
    for (size_t j = 0; j < n; j++) {
        int bt = (int)(j / Vp), i = (int)(j % Vp);
        if (i >= V) { fd[j] = 0.0f; continue; }
        float x = s[j];
        s[j] = x + h; distill_forward(lp, kl, s, t, targets, alpha, tau, reverse, BT, V, Vp);
        s[j] = x - h; distill_forward(lm, kl, s, t, targets, alpha, tau, reverse, BT, V, Vp);
        s[j] = x;
        fd[j] = (float)((double)dloss * w[bt] * ((double)lp[bt] - (double)lm[bt]) / (2.0 * h));
    }
    char name[160];
    snprintf(name, sizeof(name), "C reference: distill_backward vs finite differences of distill_forward (%s KL, alpha %.1f, tau %.1f, weights with zeros)",
             reverse ? "reverse" : "forward", alpha, tau);
    harness_compare(name, dl, fd, n, 5e-4);
    free(s); free(t); free(w); free(dl); free(fd);
}

static void check_reference_anchors(void) {
    // alpha = 0 is the plain cross-entropy (llmc/crossentropy.h: fp32 softmax, its own code)
    {
        const int BT = 9, V = 301, Vp = 384;
        size_t n = (size_t)BT * Vp;
        float* s = harness_random(n, 8.0f);
        float* t = harness_random(n, 8.0f);
        int targets[BT];
        random_targets(targets, BT, V);
        float* w = random_weights(BT);
        float* probs = (float*)malloc(n * sizeof(float));
        float* dl_ce = (float*)malloc(n * sizeof(float));
        float* dl = (float*)malloc(n * sizeof(float));
        float l_ce[BT], l[BT], kl[BT];
        softmax_forward(probs, s, BT, 1, V, Vp);
        crossentropy_forward(l_ce, probs, targets, BT, 1, Vp);
        crossentropy_softmax_backward(dl_ce, probs, targets, w, 0.3f, BT, 1, V, Vp);
        for (int reverse = 0; reverse <= 1; reverse++) {
            distill_forward(l, kl, s, t, targets, 0.0f, 2.5f, reverse, BT, V, Vp);
            distill_backward(dl, s, t, targets, w, 0.3f, 0.0f, 2.5f, reverse, BT, V, Vp);
            double el = harness_scaled_error(l, l_ce, BT), ed = harness_scaled_error(dl, dl_ce, n);
            harness_check(el <= 1e-5 && ed <= 1e-5, reverse ? "C reference: alpha 0 is crossentropy.h's loss and dlogits (reverse KL)"
                                                            : "C reference: alpha 0 is crossentropy.h's loss and dlogits (forward KL)",
                          "losses %.2e, dlogits %.2e, tolerance 1e-5 (fp32 softmax there)", el, ed);
        }
        free(s); free(t); free(w); free(probs); free(dl_ce); free(dl);
    }
    // two tokens: q = (sigmoid((s0 - s1) / tau), ...), p likewise, KL in closed form
    {
        const int BT = 6, V = 2, Vp = 4;
        float s[BT * Vp], t[BT * Vp], l[BT], kl[BT];
        int targets[BT];
        for (int i = 0; i < BT * Vp; i++) { s[i] = harness_uniform() * 6.0f; t[i] = harness_uniform() * 6.0f; }
        for (int bt = 0; bt < BT; bt++) { targets[bt] = bt % 2; }
        const double alpha = 0.6, tau = 2.5;
        for (int reverse = 0; reverse <= 1; reverse++) {
            distill_forward(l, kl, s, t, targets, (float)alpha, (float)tau, reverse, BT, V, Vp);
            double maxerr = 0.0;
            for (int bt = 0; bt < BT; bt++) {
                double a = s[bt * Vp], b = s[bt * Vp + 1], c = t[bt * Vp], d = t[bt * Vp + 1];
                double q0 = 1.0 / (1.0 + exp(-(a - b) / tau)), p0 = 1.0 / (1.0 + exp(-(c - d) / tau));
                double k = reverse ? q0 * log(q0 / p0) + (1.0 - q0) * log((1.0 - q0) / (1.0 - p0))
                                   : p0 * log(p0 / q0) + (1.0 - p0) * log((1.0 - p0) / (1.0 - q0));
                double sy = targets[bt] == 0 ? a : b, so = targets[bt] == 0 ? b : a;
                double ce = log1p(exp(so - sy));
                double loss = (1.0 - alpha) * ce + alpha * tau * tau * k;
                double e1 = fabs(kl[bt] - k) / fmax(fabs(k), 1e-3), e2 = fabs(l[bt] - loss) / fabs(loss);
                maxerr = fmax(maxerr, fmax(e1, e2));
            }
            harness_check(maxerr <= 1e-6, reverse ? "C reference: two-token closed form (reverse KL)" : "C reference: two-token closed form (forward KL)",
                          "max relative error %.2e of kl and losses, tolerance 1e-6", maxerr);
        }
    }
    // teacher = student: KL = 0 and, at alpha = 1, no gradient
    {
        const int BT = 5, V = 97, Vp = 128;
        size_t n = (size_t)BT * Vp;
        float* s = harness_random(n, 8.0f);
        float* dl = (float*)malloc(n * sizeof(float));
        int targets[BT];
        random_targets(targets, BT, V);
        float l[BT], kl[BT];
        for (int reverse = 0; reverse <= 1; reverse++) {
            distill_forward(l, kl, s, s, targets, 1.0f, 2.0f, reverse, BT, V, Vp);
            distill_backward(dl, s, s, targets, NULL, 1.0f, 1.0f, 2.0f, reverse, BT, V, Vp);
            double mk = 0.0, md = 0.0;
            for (int i = 0; i < BT; i++) { mk = fmax(mk, fabs(kl[i])); }
            for (size_t i = 0; i < n; i++) { md = fmax(md, fabs(dl[i])); }
            harness_check(mk <= 1e-12 && md <= 1e-12, reverse ? "C reference: teacher = student gives KL 0 and no gradient (reverse KL)"
                                                            : "C reference: teacher = student gives KL 0 and no gradient (forward KL)",
                          "max |kl| %.1e, max |dlogits| %.1e, tolerance 1e-12", mk, md);
        }
        free(s); free(dl);
    }
}

// ----------------------------------------------------------------------------
// CUDA against the C reference

typedef struct {
    floatX* logits; float* losses; float* kl; const floatX* teacher; const int* targets; const float* weights;
    float dloss, alpha, tau; int reverse, BT, V, Vp;
} DistillCtx;
static void run_loss(void* p) {
    DistillCtx* c = (DistillCtx*)p;
    fused_distill_classifier_cuda(c->logits, c->losses, c->kl, c->teacher, c->targets, c->weights, 0.0f,
                                  c->alpha, c->tau, c->reverse, c->BT, c->V, c->Vp, 0);
}
// in place: every timed run turns dlogits into the next dlogits, the same traffic
static void run_full(void* p) {
    DistillCtx* c = (DistillCtx*)p;
    fused_distill_classifier_cuda(c->logits, c->losses, c->kl, c->teacher, c->targets, c->weights, c->dloss,
                                  c->alpha, c->tau, c->reverse, c->BT, c->V, c->Vp, 0);
}

// near: the teacher is the student plus small noise (a small KL, as late in distillation)
static void run_case(int BT, int V, int Vp, int reverse, float alpha, float tau, int weighted, int near,
                     int check_determinism) {
    size_t n = (size_t)BT * Vp;
    float* logits = harness_random(n, 8.0f);
    float* teacher = harness_random(n, near ? 0.3f : 8.0f);
    if (near) { for (size_t i = 0; i < n; i++) { teacher[i] += logits[i]; } }
    for (int bt = 0; bt < BT; bt++) {
        for (int i = V; i < Vp; i++) { logits[(size_t)bt * Vp + i] = PAD_VALUE; teacher[(size_t)bt * Vp + i] = PAD_VALUE; }
    }
    harness_round_fx(logits, n);
    harness_round_fx(teacher, n);
    int* targets = (int*)malloc(sizeof(int) * BT);
    random_targets(targets, BT, V);
    float* weights = weighted ? random_weights(BT) : NULL;

    DistillCtx c;
    c.BT = BT; c.V = V; c.Vp = Vp; c.dloss = 1.0f / BT; c.alpha = alpha; c.tau = tau; c.reverse = reverse;
    c.logits = harness_upload_fx(logits, n);
    floatX* d_teacher = harness_upload_fx(teacher, n);
    c.teacher = d_teacher;
    c.losses = (float*)cuda_malloc_check(sizeof(float) * BT, "losses");
    c.kl = (float*)cuda_malloc_check(sizeof(float) * BT, "kl");
    int* d_t = (int*)cuda_malloc_check(sizeof(int) * BT, "targets");
    cudaCheck(cudaMemcpy(d_t, targets, sizeof(int) * BT, cudaMemcpyHostToDevice));
    c.targets = d_t;
    float* d_w = weighted ? harness_upload_f32(weights, BT) : NULL;
    c.weights = d_w;

    float* losses = (float*)malloc(BT * sizeof(float));
    float* kl = (float*)malloc(BT * sizeof(float));
    float* dlogits = (float*)malloc(n * sizeof(float));
    float* got = (float*)malloc(n * sizeof(float));
    float* got_l = (float*)malloc(BT * sizeof(float));
    float* got_k = (float*)malloc(BT * sizeof(float));
    distill_forward(losses, kl, logits, teacher, targets, alpha, tau, reverse, BT, V, Vp);
    distill_backward(dlogits, logits, teacher, targets, weights, c.dloss, alpha, tau, reverse, BT, V, Vp);

    char name[200];
    char what[160];
    snprintf(what, sizeof(what), "BT=%d V=%d Vp=%d %s KL alpha %.1f tau %.1f weights %s%s", BT, V, Vp,
             reverse ? "reverse" : "forward", alpha, tau, weighted ? "random with zeros" : "NULL",
             near ? ", teacher near student" : "");
    double tol_l = near ? 1e-4 : 1e-5, tol_k = near ? 1e-4 : 1e-5, tol_d = HARNESS_FP32 ? 2e-5 : 8e-3;

    // losses and kl only: the logits stay as they were
    harness_poison(c.losses, sizeof(float) * BT);
    harness_poison(c.kl, sizeof(float) * BT);
    run_loss(&c);
    cudaCheck(cudaGetLastError());
    harness_download_f32(got_l, c.losses, BT);
    harness_download_f32(got_k, c.kl, BT);
    harness_download_fx(got, c.logits, n);
    double el = harness_scaled_error(got_l, losses, BT), ek = harness_scaled_error(got_k, kl, BT);
    int untouched = memcmp(got, logits, n * sizeof(float)) == 0;
    snprintf(name, sizeof(name), "distill losses+kl without dlogits %s", what);
    harness_check(el <= tol_l && ek <= tol_k && untouched, name,
                  "losses %.2e (tol %.0e), kl %.2e (tol %.0e), logits %s", el, tol_l, ek, tol_k,
                  untouched ? "bitwise untouched" : "MODIFIED");

    // with dlogits, in place
    harness_poison(c.losses, sizeof(float) * BT);
    harness_poison(c.kl, sizeof(float) * BT);
    run_full(&c);
    cudaCheck(cudaGetLastError());
    harness_download_f32(got_l, c.losses, BT);
    harness_download_f32(got_k, c.kl, BT);
    el = harness_scaled_error(got_l, losses, BT);
    ek = harness_scaled_error(got_k, kl, BT);
    snprintf(name, sizeof(name), "distill losses+kl with dlogits %s", what);
    harness_check(el <= tol_l && ek <= tol_k, name, "losses %.2e (tol %.0e), kl %.2e (tol %.0e)", el, tol_l, ek, tol_k);
    harness_download_fx(got, c.logits, n);
    double ed = harness_scaled_error(got, dlogits, n);
    int pad_ok = 1;
    for (int bt = 0; bt < BT; bt++) { for (int i = V; i < Vp; i++) { if (got[(size_t)bt * Vp + i] != 0.0f) { pad_ok = 0; } } }
    float* got_t = (float*)malloc(n * sizeof(float));
    harness_download_fx(got_t, d_teacher, n);
    int teacher_ok = memcmp(got_t, teacher, n * sizeof(float)) == 0;
    snprintf(name, sizeof(name), "distill dlogits %s", what);
    harness_check(ed <= tol_d && pad_ok && teacher_ok, name, "%zu values, scaled max error %.2e, tolerance %.0e; padding %s; teacher %s",
                  n, ed, tol_d, pad_ok ? "zero" : "NOT ZERO", teacher_ok ? "untouched" : "MODIFIED");

    if (check_determinism) {
        // the same inputs again (a fresh copy of the logits): bitwise the same outputs
        float* got2 = (float*)malloc(n * sizeof(float));
        float* got_l2 = (float*)malloc(BT * sizeof(float));
        float* got_k2 = (float*)malloc(BT * sizeof(float));
        cudaCheck(cudaFree(c.logits));
        c.logits = harness_upload_fx(logits, n);
        harness_poison(c.losses, sizeof(float) * BT);
        harness_poison(c.kl, sizeof(float) * BT);
        run_full(&c);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got2, c.logits, n);
        harness_download_f32(got_l2, c.losses, BT);
        harness_download_f32(got_k2, c.kl, BT);
        int same = memcmp(got2, got, n * sizeof(float)) == 0 && memcmp(got_l2, got_l, BT * sizeof(float)) == 0 &&
                   memcmp(got_k2, got_k, BT * sizeof(float)) == 0;
        snprintf(name, sizeof(name), "distill is deterministic %s", what);
        harness_check(same, name, "two runs: dlogits, losses and kl %s", same ? "bitwise equal" : "DIFFER");
        free(got2); free(got_l2); free(got_k2);
    }

    cudaCheck(cudaFree(c.logits)); cudaCheck(cudaFree(d_teacher)); cudaCheck(cudaFree(c.losses));
    cudaCheck(cudaFree(c.kl)); cudaCheck(cudaFree(d_t));
    if (d_w != NULL) { cudaCheck(cudaFree(d_w)); }
    free(logits); free(teacher); free(targets); free(weights); free(losses); free(kl); free(dlogits);
    free(got); free(got_l); free(got_k); free(got_t);
}

static void time_case(int BT, int V, int Vp, int reverse, const Ceilings* ceil) {
    size_t n = (size_t)BT * Vp;
    float* h = harness_random(n, 8.0f);
    int* targets = (int*)malloc(sizeof(int) * BT);
    random_targets(targets, BT, V);
    DistillCtx c;
    c.BT = BT; c.V = V; c.Vp = Vp; c.dloss = 1.0f / BT; c.alpha = 0.6f; c.tau = 2.0f; c.reverse = reverse;
    c.logits = harness_upload_fx(h, n);
    floatX* d_teacher = harness_upload_fx(h, n);
    c.teacher = d_teacher;
    c.losses = (float*)cuda_malloc_check(sizeof(float) * BT, "losses");
    c.kl = (float*)cuda_malloc_check(sizeof(float) * BT, "kl");
    int* d_t = (int*)cuda_malloc_check(sizeof(int) * BT, "targets");
    cudaCheck(cudaMemcpy(d_t, targets, sizeof(int) * BT, cudaMemcpyHostToDevice));
    c.targets = d_t;
    c.weights = NULL;
    char what[128];
    // the unavoidable traffic: student and teacher read once, dlogits written once (the passes
    // re-read a row mostly from L1/L2)
    snprintf(what, sizeof(what), "distill loss+dlogits %s KL BT=%d Vp=%d", reverse ? "reverse" : "forward", BT, Vp);
    harness_report_bandwidth(what, harness_time_ms(run_full, &c, 20), 3.0 * n * sizeof(floatX), ceil);
    snprintf(what, sizeof(what), "distill loss only %s KL BT=%d Vp=%d", reverse ? "reverse" : "forward", BT, Vp);
    harness_report_bandwidth(what, harness_time_ms(run_loss, &c, 20), 2.0 * n * sizeof(floatX), ceil);
    cudaCheck(cudaFree(c.logits)); cudaCheck(cudaFree(d_teacher)); cudaCheck(cudaFree(c.losses));
    cudaCheck(cudaFree(c.kl)); cudaCheck(cudaFree(d_t));
    free(h); free(targets);
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("distill_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    // the reference itself
    for (int reverse = 0; reverse <= 1; reverse++) {
        check_finite_differences(reverse, 0.6f, 2.5f);
        check_finite_differences(reverse, 1.0f, 1.0f);
    }
    check_reference_anchors();
    // every combination on a small awkward shape (rows and vocabulary not multiples of 32)
    const float alphas[3] = { 0.0f, 0.6f, 1.0f };
    const float taus[2] = { 1.0f, 2.5f };
    for (int reverse = 0; reverse <= 1; reverse++) {
        for (int a = 0; a < 3; a++) {
            for (int t = 0; t < 2; t++) {
                for (int weighted = 0; weighted <= 1; weighted++) {
                    run_case(5, 301, 384, reverse, alphas[a], taus[t], weighted, 0, 0);
                }
            }
        }
    }
    // larger and odder shapes
    for (int reverse = 0; reverse <= 1; reverse++) {
        run_case(37, 997, 1024, reverse, 0.6f, 2.5f, 1, 0, reverse == 0);
        run_case(37, 997, 1024, reverse, 1.0f, 1.0f, 0, 1, 0);
        run_case(5, 7, 128, reverse, 0.6f, 2.5f, 1, 0, 0);
        run_case(37, 997, 1024, reverse, 0.6f, 0.5f, 1, 0, 0);  // tau < 1 too
        run_case(3, 50257, 50304, reverse, 0.6f, 2.5f, 1, 0, 0);
    }
    if (harness_timing()) {
        time_case(8 * 1024, 50257, 50304, 0, &ceil);
        time_case(8 * 1024, 50257, 50304, 1, &ceil);
    }
    return harness_finish("distill_check");
}

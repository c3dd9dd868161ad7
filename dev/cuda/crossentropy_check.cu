// fused_classifier_cuda (llmc/crossentropy.h) against softmax_forward + crossentropy_forward +
// crossentropy_softmax_backward.
#include "../../llmc/crossentropy.h"
#include "harness.h"

typedef struct { floatX* logits; float* losses; const int* targets; float dloss; int BT, V, Vp; } CeCtx;
static void run_loss(void* p) { CeCtx* c = (CeCtx*)p; fused_classifier_cuda(c->logits, c->losses, c->targets, NULL, 0.0f, c->BT, c->V, c->Vp, 0); }
// in place: every timed run turns dlogits into the next dlogits, the same traffic
static void run_full(void* p) { CeCtx* c = (CeCtx*)p; fused_classifier_cuda(c->logits, c->losses, c->targets, NULL, c->dloss, c->BT, c->V, c->Vp, 0); }

static void run_case(int BT, int V, int Vp, int check, int time_it, const Ceilings* ceil) {
    if (!check && !harness_timing()) { return; }
    size_t n = (size_t)BT * Vp;
    float* logits = harness_random(n, 8.0f);
    harness_round_fx(logits, n);
    for (int bt = 0; bt < BT; bt++) { for (int i = V; i < Vp; i++) { logits[(size_t)bt * Vp + i] = 0.0f; } }
    int* targets = (int*)malloc(sizeof(int) * BT);
    for (int i = 0; i < BT; i++) { targets[i] = (int)((harness_uniform() * 0.5f + 0.5f) * (V - 1)); }
    // the ends of the row: the last column (in the vector that straddles V when V is not a multiple
    // of the 128-bit vector) and the first
    targets[0] = V - 1;
    if (BT > 1) { targets[1] = 0; }
    CeCtx c;
    c.BT = BT; c.V = V; c.Vp = Vp; c.dloss = 1.0f / BT;
    c.logits = harness_upload_fx(logits, n);
    c.losses = (float*)cuda_malloc_check(sizeof(float) * BT, "losses");
    int* d_t = (int*)cuda_malloc_check(sizeof(int) * BT, "targets");
    cudaCheck(cudaMemcpy(d_t, targets, sizeof(int) * BT, cudaMemcpyHostToDevice));
    c.targets = d_t;
    if (check) {
        char name[128];
        float* probs = (float*)malloc(n * sizeof(float));
        float* losses = (float*)malloc(BT * sizeof(float));
        float* dlogits = (float*)malloc(n * sizeof(float));
        float* got = (float*)malloc(n * sizeof(float));
        softmax_forward(probs, logits, BT, 1, V, Vp);
        crossentropy_forward(losses, probs, targets, BT, 1, Vp);
        crossentropy_softmax_backward(dlogits, probs, targets, NULL, c.dloss, BT, 1, V, Vp);
        harness_poison(c.losses, sizeof(float) * BT);
        run_loss(&c);
        cudaCheck(cudaGetLastError());
        harness_download_f32(got, c.losses, BT);
        snprintf(name, sizeof(name), "classifier losses (no dlogits) BT=%d V=%d Vp=%d", BT, V, Vp);
        harness_compare(name, got, losses, BT, 1e-5);
        harness_download_fx(got, c.logits, n);
        snprintf(name, sizeof(name), "classifier leaves logits alone without dloss BT=%d", BT);
        harness_check(memcmp(got, logits, n * sizeof(float)) == 0, name, "bitwise");
        harness_poison(c.losses, sizeof(float) * BT);
        run_full(&c);
        cudaCheck(cudaGetLastError());
        harness_download_f32(got, c.losses, BT);
        snprintf(name, sizeof(name), "classifier losses (with dlogits) BT=%d V=%d Vp=%d", BT, V, Vp);
        harness_compare(name, got, losses, BT, 1e-5);
        harness_download_fx(got, c.logits, n);
        snprintf(name, sizeof(name), "classifier dlogits BT=%d V=%d Vp=%d", BT, V, Vp);
        harness_compare(name, got, dlogits, n, HARNESS_FP32 ? 1e-5 : 8e-3);
        int pad_ok = 1;
        for (int bt = 0; bt < BT; bt++) { for (int i = V; i < Vp; i++) { if (got[(size_t)bt * Vp + i] != 0.0f) { pad_ok = 0; } } }
        snprintf(name, sizeof(name), "classifier dlogits padding is zero BT=%d", BT);
        harness_check(pad_ok, name, "columns %d..%d", V, Vp - 1);
        free(probs); free(losses); free(dlogits); free(got);
    }
    if (time_it) {
        char what[128];
        snprintf(what, sizeof(what), "fused_classifier loss+dlogits BT=%d Vp=%d", BT, Vp);
        // the one-pass kernel reads the logits once, the two-pass one twice; both write once
        double passes = fused_classifier_one_pass(Vp, c.logits) ? 2.0 : 3.0;
        harness_report_bandwidth(what, harness_time_ms(run_full, &c, 20), passes * n * sizeof(floatX), ceil);
        snprintf(what, sizeof(what), "fused_classifier loss only BT=%d Vp=%d", BT, Vp);
        harness_report_bandwidth(what, harness_time_ms(run_loss, &c, 20), (passes - 1.0) * n * sizeof(floatX), ceil);
    }
    cudaCheck(cudaFree(c.logits)); cudaCheck(cudaFree(c.losses)); cudaCheck(cudaFree(d_t));
    free(logits); free(targets);
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("crossentropy_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    run_case(37, 997, 1024, 1, 0, &ceil);
    run_case(3, 50257, 50304, 1, 0, &ceil);
    run_case(5, 7, 128, 1, 0, &ceil);
    run_case(4, 999, 1001, 1, 0, &ceil);  // Vp not a multiple of the 128-bit vector: element by element
    run_case(2, 60001, 60008, 1, 0, &ceil);  // bf16: one pass (117 KiB of shared memory); fp32: two
    run_case(1, 120001, 120008, 1, 0, &ceil);  // longer than a block's shared memory: two passes, 128-bit
    run_case(8 * 1024, 50257, 50304, 0, 1, &ceil);
    return harness_finish("crossentropy_check");
}

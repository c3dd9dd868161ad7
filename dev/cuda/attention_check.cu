// attention_forward_cuda / attention_backward_cuda (llmc/attention.h) against the C reference,
// then timed: our CUDA-core kernels (scalar), our tensor-core kernels (tc, bf16), and in a
// USE_CUDNN=1 build cuDNN's fused SDPA on the same shapes, the baseline our kernels are
// measured against (the issue's goal: ours within 80% of cuDNN's speed).
#include "../../llmc/attention.h"
#include "harness.h"

typedef struct { Attention att; floatX *out, *dqkv; const floatX *qkv, *dout; float *lse, *dsum; int B, T, C, NH; } AttCtx;
static void run_fwd(void* p) {
    AttCtx* c = (AttCtx*)p;
    attention_forward_cuda(&c->att, c->out, c->lse, c->qkv, c->B, c->T, c->C, c->NH, 0);
}
static void run_bwd(void* p) {
    AttCtx* c = (AttCtx*)p;
    attention_backward_cuda(&c->att, c->dqkv, c->dsum, c->dout, c->qkv, c->out, c->lse, c->B, c->T, c->C, c->NH, 0);
}

static const char* kind_label(AttentionKind k) { return k == ATTENTION_CUDNN ? "cudnn" : k == ATTENTION_TC ? "tc" : "scalar"; }

// returns the fwd+bwd milliseconds when timed, else 0
// time_it: 1 times it (unless HARNESS_CHECK_ONLY), -1 runs it once (for a profiler), 0 neither
static float run_case(int B, int T, int NH, int hs, AttentionKind mode, int check, int time_it, const Ceilings* ceil) {
    const char* kind = kind_label(mode);
    if (!check && time_it > 0 && !harness_timing()) { return 0.0f; }
    int C = NH * hs;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float* qkv = harness_random(nq, 1.5f);
    float* dout = harness_random(no, 1.0f);
    harness_round_fx(qkv, nq); harness_round_fx(dout, no);
    AttCtx c;
    c.B = B; c.T = T; c.C = C; c.NH = NH;
    attention_init(&c.att, mode);
    attention_setup(&c.att, B, T, C, NH, 0);  // cuDNN: builds its graphs for this shape
    c.qkv = harness_upload_fx(qkv, nq); c.dout = harness_upload_fx(dout, no);
    c.out = (floatX*)cuda_malloc_check(no * sizeof(floatX), "out");
    c.dqkv = (floatX*)cuda_malloc_check(nq * sizeof(floatX), "dqkv");
    c.lse = (float*)cuda_malloc_check((size_t)B * NH * T * sizeof(float), "lse");
    c.dsum = (float*)cuda_malloc_check((size_t)B * NH * T * sizeof(float), "dsum");
    if (check) {
        char name[160];
        float* out = (float*)malloc(no * sizeof(float));
        float* att = (float*)malloc((size_t)B * NH * T * T * sizeof(float));
        float* dqkv = (float*)calloc(nq, sizeof(float));
        float* got = (float*)malloc(nq * sizeof(float));
        attention_forward(out, att, qkv, B, T, C, NH);
        harness_poison(c.out, no * sizeof(floatX));
        harness_poison(c.lse, (size_t)B * NH * T * sizeof(float));
        run_fwd(&c);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.out, no);
        snprintf(name, sizeof(name), "attention_forward %s B=%d T=%d NH=%d hs=%d", kind, B, T, NH, hs);
        harness_compare(name, got, out, no, HARNESS_FP32 ? 1e-5 : 1e-2);
        // logsumexp, from the reference's probabilities: lse = s_tt - log p_tt (the diagonal
        // score and probability of row t), s_tt = q_t . k_t / sqrt(hs)
        float* lse = (float*)malloc((size_t)B * NH * T * sizeof(float));
        float* lse_ref = (float*)malloc((size_t)B * NH * T * sizeof(float));
        for (int b = 0; b < B; b++) for (int h = 0; h < NH; h++) for (int t = 0; t < T; t++) {
            const float* q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
            const float* k = q + C;
            float s = 0.0f;
            for (int d = 0; d < hs; d++) { s += q[d] * k[d]; }
            s /= sqrtf((float)hs);
            float p = att[(((size_t)b * NH + h) * T + t) * T + t];
            lse_ref[((size_t)b * NH + h) * T + t] = s - logf(p);
        }
        harness_download_f32(lse, c.lse, (size_t)B * NH * T);
        snprintf(name, sizeof(name), "attention_forward %s logsumexp B=%d T=%d NH=%d hs=%d", kind, B, T, NH, hs);
        harness_compare(name, lse, lse_ref, (size_t)B * NH * T, 1e-4);
        // the backward from the GPU's own forward output, as in training; the reference takes
        // its own probabilities
        attention_backward(dqkv, dout, qkv, att, B, T, C, NH);
        harness_poison(c.dqkv, nq * sizeof(floatX));
        harness_poison(c.dsum, (size_t)B * NH * T * sizeof(float));
        run_bwd(&c);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.dqkv, nq);
        // q, k, v parts separately: their scales differ
        const char* part[3] = {"dq", "dk", "dv"};
        for (int which = 0; which < 3; which++) {
            size_t m = (size_t)B * T * C;
            float* g1 = (float*)malloc(m * sizeof(float));
            float* r1 = (float*)malloc(m * sizeof(float));
            for (size_t bt = 0; bt < (size_t)B * T; bt++) {
                memcpy(g1 + bt * C, got + bt * 3 * C + which * C, C * sizeof(float));
                memcpy(r1 + bt * C, dqkv + bt * 3 * C + which * C, C * sizeof(float));
            }
            snprintf(name, sizeof(name), "attention_backward %s %s B=%d T=%d NH=%d hs=%d", kind, part[which], B, T, NH, hs);
            harness_compare(name, g1, r1, m, HARNESS_FP32 ? 1e-4 : 3e-2);
            free(g1); free(r1);
        }
        free(out); free(att); free(dqkv); free(got); free(lse); free(lse_ref);
    }
    float total_ms = 0.0f;
    if (time_it < 0) {  // once, for a profiler
        run_fwd(&c);
        run_bwd(&c);
        cudaCheck(cudaDeviceSynchronize());
    }
    if (time_it > 0) {
        char what[160];
        // causal: half of the 4*T*T*hs FLOPs of QK^T and PV per (b, h); backward 2.5x (5 matmuls vs 2)
        double fwd_flops = 4.0 * B * NH * (double)T * T * hs / 2.0;
        snprintf(what, sizeof(what), "attention_forward %s B=%d T=%d NH=%d hs=%d", kind, B, T, NH, hs);
        float ms_f = harness_time_ms(run_fwd, &c, 20);
        harness_report_flops(what, ms_f, fwd_flops, ceil);
        snprintf(what, sizeof(what), "attention_backward %s B=%d T=%d NH=%d hs=%d", kind, B, T, NH, hs);
        float ms_b = harness_time_ms(run_bwd, &c, 20);
        harness_report_flops(what, ms_b, 2.5 * fwd_flops, ceil);
        printf("  attention fwd+bwd %s B=%d T=%d NH=%d hs=%d: %.3f ms\n", kind, B, T, NH, hs, ms_f + ms_b);
        total_ms = ms_f + ms_b;
    }
    attention_free(&c.att);
    cudaCheck(cudaFree((void*)c.qkv)); cudaCheck(cudaFree((void*)c.dout)); cudaCheck(cudaFree(c.out));
    cudaCheck(cudaFree(c.dqkv)); cudaCheck(cudaFree(c.lse)); cudaCheck(cudaFree(c.dsum));
    free(qkv); free(dout);
    return total_ms;
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("attention_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    // the implementations this build has: scalar always; tc in bf16; cuDNN in USE_CUDNN=1 bf16 builds
    AttentionKind kinds[3];
    int nk = 0;
    kinds[nk++] = ATTENTION_SCALAR;
    if (!HARNESS_FP32) { kinds[nk++] = ATTENTION_TC; }
    if (ATTENTION_HAS_CUDNN) { kinds[nk++] = ATTENTION_CUDNN; }
    // ATTENTION_PROFILE=1: one forward and backward of each implementation at d12's shape (B=8),
    // no checks and no timing loops: what dev/gpu_check.sh runs under ncu
    if (getenv("ATTENTION_PROFILE") != NULL) {
        for (int k = 0; k < nk; k++) { run_case(8, 1024, 12, 64, kinds[k], 0, -1, &ceil); }
        printf("attention_check: one forward and backward of each implementation run (ATTENTION_PROFILE)\n");
        return 0;
    }
    // check cases: B, T, NH, hs
    // (cuDNN at T = 1 checks the fallback to our kernels: attention_setup builds no graphs there)
    int cases[][4] = { {2, 77, 3, 64}, {1, 100, 2, 128}, {3, 13, 3, 24}, {1, 1, 1, 64}, {2, 33, 5, 96}, {2, 200, 2, 64}, {1, 130, 1, 128} };
    for (int i = 0; i < (int)(sizeof(cases) / sizeof(cases[0])); i++) {
        int hs = cases[i][3];
        for (int k = 0; k < nk; k++) {
            if (kinds[k] == ATTENTION_TC && hs != 64 && hs != 128) { continue; }  // tc falls back to scalar
            run_case(cases[i][0], cases[i][1], cases[i][2], hs, kinds[k], 1, 0, &ceil);
        }
    }
    // timing: d12's attention, and head size 128; ours against cuDNN's when it is built in
    int shapes[2][4] = { {8, 1024, 12, 64}, {8, 1024, 6, 128} };
    for (int s = 0; s < 2; s++) {
        float ms[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int k = 0; k < nk; k++) { ms[kinds[k]] = run_case(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], kinds[k], 0, 1, &ceil); }
        if (ms[ATTENTION_CUDNN] > 0.0f) {
            float ours = ms[ATTENTION_TC] > 0.0f && ms[ATTENTION_TC] < ms[ATTENTION_SCALAR] ? ms[ATTENTION_TC] : ms[ATTENTION_SCALAR];
            printf("  attention fwd+bwd B=%d T=%d NH=%d hs=%d: ours (best) %.3f ms, cuDNN %.3f ms: ours at %.0f%% of cuDNN's speed (goal 80%%)\n",
                   shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], ours, ms[ATTENTION_CUDNN], 100.0 * ms[ATTENTION_CUDNN] / ours);
        }
    }
    return harness_finish("attention_check");
}

// matmul_forward_cuda / matmul_backward_cuda (cuBLASLt, llmc/matmul.h) against
// matmul_forward / matmul_backward (+ gelu_forward / gelu_backward for the fused epilogues).
#include "../../llmc/matmul.h"
#include "../../llmc/gelu.h"
#include "harness.h"

typedef struct {
    floatX *out, *pre, *dinp; const floatX *inp, *w, *bias, *dout; float *dw, *db, *scratch; int BT, C, OC;
} MmCtx;
static void run_fwd(void* p) { MmCtx* c = (MmCtx*)p; matmul_forward_cuda(c->out, c->inp, c->w, c->bias, c->BT, c->C, c->OC, NULL, 0); }
static void run_fwd_gelu(void* p) { MmCtx* c = (MmCtx*)p; matmul_forward_cuda(c->out, c->inp, c->w, c->bias, c->BT, c->C, c->OC, c->pre, 0); }
static void run_bwd(void* p) {
    MmCtx* c = (MmCtx*)p;
    matmul_backward_cuda(c->dinp, c->dw, c->db, c->dout, c->inp, c->w, c->BT, c->C, c->OC, NULL, c->scratch, 0);
}

// gelu: 0 plain, 1 fused GELU epilogues (forward GELU_AUX_BIAS, backward DGELU on dinp)
static void run_case(int BT, int C, int OC, int gelu, int check, int time_it, const Ceilings* ceil) {
    if (!check && !harness_timing()) { return; }
    size_t ni = (size_t)BT * C, nw = (size_t)OC * C, no = (size_t)BT * OC;
    float* inp = harness_random(ni, 1.0f);
    float* w = harness_random(nw, 1.0f / sqrtf((float)C));
    float* bias = harness_random(OC, 0.5f);
    float* dout = harness_random(no, 1.0f);
    float* pre_in = harness_random(ni, 2.0f);  // gelu: the pre-GELU values whose GELU is inp
    float* dw0 = harness_random(nw, 0.1f);
    float* db0 = harness_random(OC, 0.1f);
    harness_round_fx(w, nw); harness_round_fx(bias, OC); harness_round_fx(dout, no); harness_round_fx(pre_in, ni);
    if (gelu) { gelu_forward(inp, pre_in, ni); }
    harness_round_fx(inp, ni);
    MmCtx c;
    c.BT = BT; c.C = C; c.OC = OC;
    c.inp = harness_upload_fx(inp, ni); c.w = harness_upload_fx(w, nw); c.bias = harness_upload_fx(bias, OC);
    c.dout = harness_upload_fx(dout, no);
    c.out = (floatX*)cuda_malloc_check(no * sizeof(floatX), "out");
    c.pre = (floatX*)cuda_malloc_check(no * sizeof(floatX), "pre");
    c.dinp = (floatX*)cuda_malloc_check(ni * sizeof(floatX), "dinp");
    floatX* d_pre_in = harness_upload_fx(pre_in, ni);
    c.dw = harness_upload_f32(dw0, nw);
    c.db = harness_upload_f32(db0, OC);
    c.scratch = (float*)cuda_malloc_check(colsum_scratch_floats(BT, OC) * sizeof(float), "scratch");
    double tol_x = HARNESS_FP32 ? 1e-5 : 1.6e-2;  // floatX outputs
    double tol_w = HARNESS_FP32 ? 1e-5 : 2e-3;    // fp32 weight gradients of rounded inputs
    if (check) {
        char name[160];
        float* ref = (float*)malloc(no * sizeof(float));
        float* ref2 = (float*)malloc(no * sizeof(float));
        float* got = (float*)malloc((no > nw ? (no > ni ? no : ni) : (nw > ni ? nw : ni)) * sizeof(float));
        matmul_forward(ref, inp, w, bias, 1, BT, C, OC);
        harness_poison(c.out, no * sizeof(floatX));
        harness_poison(c.pre, no * sizeof(floatX));
        if (gelu) {
            gelu_forward(ref2, ref, no);
            run_fwd_gelu(&c);
            cudaCheck(cudaGetLastError());
            harness_download_fx(got, c.pre, no);
            snprintf(name, sizeof(name), "matmul_forward+GELU pre-GELU BT=%d C=%d OC=%d", BT, C, OC);
            harness_compare(name, got, ref, no, tol_x);
            harness_download_fx(got, c.out, no);
            snprintf(name, sizeof(name), "matmul_forward+GELU out BT=%d C=%d OC=%d", BT, C, OC);
            harness_compare(name, got, ref2, no, tol_x);
        } else {
            run_fwd(&c);
            cudaCheck(cudaGetLastError());
            harness_download_fx(got, c.out, no);
            snprintf(name, sizeof(name), "matmul_forward BT=%d C=%d OC=%d", BT, C, OC);
            harness_compare(name, got, ref, no, tol_x);
        }
        float* dinp = (float*)calloc(ni, sizeof(float));
        matmul_backward(dinp, dw0, db0, dout, inp, w, 1, BT, C, OC);
        harness_poison(c.dinp, ni * sizeof(floatX));
        if (gelu) {
            float* dpre = (float*)calloc(ni, sizeof(float));
            gelu_backward(dpre, pre_in, dinp, ni);
            matmul_backward_cuda(c.dinp, c.dw, c.db, c.dout, c.inp, c.w, BT, C, OC, d_pre_in, c.scratch, 0);
            memcpy(dinp, dpre, ni * sizeof(float));
            free(dpre);
        } else {
            run_bwd(&c);
        }
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.dinp, ni);
        snprintf(name, sizeof(name), "matmul_backward dinp%s BT=%d C=%d OC=%d", gelu ? " (DGELU)" : "", BT, C, OC);
        harness_compare(name, got, dinp, ni, tol_x);
        harness_download_f32(got, c.dw, nw);
        snprintf(name, sizeof(name), "matmul_backward dweight BT=%d C=%d OC=%d", BT, C, OC);
        harness_compare(name, got, dw0, nw, tol_w);
        harness_download_f32(got, c.db, OC);
        snprintf(name, sizeof(name), "matmul_backward dbias BT=%d C=%d OC=%d", BT, C, OC);
        harness_compare(name, got, db0, OC, 1e-5);
        free(ref); free(ref2); free(got); free(dinp);
    }
    if (time_it) {
        char what[160];
        double flops = 2.0 * BT * C * OC;
        snprintf(what, sizeof(what), "matmul_forward%s BT=%d C=%d OC=%d", gelu ? "+GELU" : "", BT, C, OC);
        harness_report_flops(what, harness_time_ms(gelu ? run_fwd_gelu : run_fwd, &c, 30), flops, ceil);
        snprintf(what, sizeof(what), "matmul_backward BT=%d C=%d OC=%d", BT, C, OC);
        harness_report_flops(what, harness_time_ms(run_bwd, &c, 30), 2.0 * flops, ceil);
    }
    cudaCheck(cudaFree((void*)c.inp)); cudaCheck(cudaFree((void*)c.w)); cudaCheck(cudaFree((void*)c.bias));
    cudaCheck(cudaFree((void*)c.dout)); cudaCheck(cudaFree(c.out)); cudaCheck(cudaFree(c.pre)); cudaCheck(cudaFree(c.dinp));
    cudaCheck(cudaFree(d_pre_in)); cudaCheck(cudaFree(c.dw)); cudaCheck(cudaFree(c.db)); cudaCheck(cudaFree(c.scratch));
    free(inp); free(w); free(bias); free(dout); free(pre_in); free(dw0); free(db0);
}

// The plan cache of llmc/matmul.h: a repeated problem reuses its plan (no new descriptors, no
// heuristic query) and gives bitwise the same result; the same shape at a less aligned address,
// or without its bias, is another problem and makes a plan of its own.
static void check_plan_cache(void) {
    int BT = 37, C = 77, OC = 231;
    size_t ni = (size_t)BT * C, nw = (size_t)OC * C, no = (size_t)BT * OC;
    float* inp = harness_random(ni + 8, 1.0f);
    float* w = harness_random(nw, 1.0f / sqrtf((float)C));
    float* bias = harness_random(OC, 0.5f);
    floatX* d_inp = harness_upload_fx(inp, ni + 8);
    floatX* d_w = harness_upload_fx(w, nw);
    floatX* d_bias = harness_upload_fx(bias, OC);
    floatX* out = (floatX*)cuda_malloc_check(no * sizeof(floatX), "out");
    float* first = (float*)malloc(no * sizeof(float));
    float* again = (float*)malloc(no * sizeof(float));
    MatmulPlanCache* cache = &matmul_plan_cache;

    matmul_forward_cuda(out, d_inp, d_w, d_bias, BT, C, OC, NULL, 0);
    harness_download_fx(first, out, no);
    unsigned long long made = cache->made, reused = cache->reused;
    harness_poison(out, no * sizeof(floatX));
    matmul_forward_cuda(out, d_inp, d_w, d_bias, BT, C, OC, NULL, 0);
    cudaCheck(cudaGetLastError());
    harness_download_fx(again, out, no);
    harness_check(cache->made == made && cache->reused == reused + 1, "matmul plan cache: a repeated problem reuses its plan",
                  "plans made %llu -> %llu, reused %llu -> %llu", made, cache->made, reused, cache->reused);
    harness_check(memcmp(first, again, no * sizeof(float)) == 0, "matmul plan cache: the reused plan gives bitwise the same output",
                  "%zu values", no);
    // 8 elements in: 16 bytes (bf16) or 32 (fp32) aligned instead of 256
    matmul_forward_cuda(out, d_inp + 8, d_w, d_bias, BT, C, OC, NULL, 0);
    cudaCheck(cudaGetLastError());
    harness_check(cache->made == made + 1, "matmul plan cache: a less aligned input is a new problem",
                  "plans made %llu -> %llu", made, cache->made);
    matmul_forward_cuda(out, d_inp, d_w, NULL, BT, C, OC, NULL, 0);
    cudaCheck(cudaGetLastError());
    harness_check(cache->made == made + 2, "matmul plan cache: no bias is a new problem", "plans made %llu -> %llu", made, cache->made);
    // and the bias pointer of a reused plan follows the call: a second bias vector on the same plan
    float* bias2 = harness_random(OC, 0.5f);
    floatX* d_bias2 = harness_upload_fx(bias2, OC);
    harness_round_fx(inp, ni + 8); harness_round_fx(w, nw); harness_round_fx(bias2, OC);
    float* ref = (float*)malloc(no * sizeof(float));
    matmul_forward(ref, inp, w, bias2, 1, BT, C, OC);
    harness_poison(out, no * sizeof(floatX));
    made = cache->made;
    matmul_forward_cuda(out, d_inp, d_w, d_bias2, BT, C, OC, NULL, 0);
    cudaCheck(cudaGetLastError());
    harness_download_fx(again, out, no);
    harness_check(cache->made == made, "matmul plan cache: another bias vector reuses the plan", "plans made %llu -> %llu", made, cache->made);
    harness_compare("matmul plan cache: the reused plan adds the new bias", again, ref, no, HARNESS_FP32 ? 1e-5 : 1.6e-2);
    cudaCheck(cudaFree(d_inp)); cudaCheck(cudaFree(d_w)); cudaCheck(cudaFree(d_bias)); cudaCheck(cudaFree(d_bias2));
    cudaCheck(cudaFree(out));
    free(inp); free(w); free(bias); free(bias2); free(first); free(again); free(ref);
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("matmul_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    matmul_cuda_init();
    run_case(111, 72, 216, 0, 1, 0, &ceil);   // test_gpt's awkward config: C=72, 3C
    run_case(37, 77, 231, 0, 1, 0, &ceil);    // odd everything
    run_case(1029, 64, 1000, 0, 1, 0, &ceil); // many row chunks in the bias gradient
#ifndef ENABLE_FP32
    run_case(111, 72, 288, 1, 1, 0, &ceil);   // the fused GELU epilogues (aux ld must be a multiple of 8)
#endif
    // d12 at B=8, T=1024
    run_case(8192, 768, 2304, 0, 0, 1, &ceil);
    run_case(8192, 768, 768, 0, 0, 1, &ceil);
    run_case(8192, 768, 3072, 0, 0, 1, &ceil);
#ifndef ENABLE_FP32
    run_case(8192, 768, 3072, 1, 0, 1, &ceil);
#endif
    run_case(8192, 3072, 768, 0, 0, 1, &ceil);
    run_case(8192, 768, 50304, 0, 0, 1, &ceil);
    check_plan_cache();
    matmul_cuda_free();
    return harness_finish("matmul_check");
}

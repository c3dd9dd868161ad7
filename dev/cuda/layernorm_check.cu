// layernorm_forward_cuda, fused_residual_layernorm_forward_cuda and layernorm_backward_cuda
// (llmc/layernorm.h) against the C reference.
#include "../../llmc/layernorm.h"
#include "../../llmc/residual.h"
#include "harness.h"

typedef struct {
    floatX *out, *res, *dinp; const floatX *a, *b, *w, *bias, *dout; float *mean, *rstd, *dw, *db, *scratch; int N, C;
} LnCtx;

static void run_fused(void* p) {
    LnCtx* c = (LnCtx*)p;
    fused_residual_layernorm_forward_cuda(c->res, c->out, c->mean, c->rstd, c->a, c->b, c->w, c->bias, c->N, c->C, 0);
}
static void run_bwd(void* p) {
    LnCtx* c = (LnCtx*)p;
    layernorm_backward_cuda(c->dinp, c->dw, c->db, c->dout, c->res, c->w, c->mean, c->rstd, c->N, c->C, c->scratch, 0);
}

static void run_case(int B, int T, int C, int check, int time_it, const Ceilings* ceil) {
    if (!check && !harness_timing()) { return; }
    int N = B * T;
    size_t n = (size_t)N * C;
    float* a = harness_random(n, 2.0f);
    float* b = harness_random(n, 1.0f);
    float* w = harness_random(C, 1.0f);
    float* bias = harness_random(C, 0.5f);
    float* dout = harness_random(n, 1.0f);
    float* dinp0 = harness_random(n, 0.5f);   // backward accumulates into these
    float* dw0 = harness_random(C, 0.5f);
    float* db0 = harness_random(C, 0.5f);
    harness_round_fx(a, n); harness_round_fx(b, n); harness_round_fx(w, C); harness_round_fx(bias, C);
    harness_round_fx(dout, n); harness_round_fx(dinp0, n);
    LnCtx c;
    c.N = N; c.C = C;
    c.a = harness_upload_fx(a, n); c.b = harness_upload_fx(b, n); c.w = harness_upload_fx(w, C);
    c.bias = harness_upload_fx(bias, C); c.dout = harness_upload_fx(dout, n);
    c.out = (floatX*)cuda_malloc_check(n * sizeof(floatX), "out");
    c.res = (floatX*)cuda_malloc_check(n * sizeof(floatX), "res");
    c.mean = (float*)cuda_malloc_check(N * sizeof(float), "mean");
    c.rstd = (float*)cuda_malloc_check(N * sizeof(float), "rstd");
    c.dinp = harness_upload_fx(dinp0, n);
    c.dw = harness_upload_f32(dw0, C);
    c.db = harness_upload_f32(db0, C);
    c.scratch = (float*)cuda_malloc_check(layernorm_scratch_floats(N, C) * sizeof(float), "scratch");
    if (check) {
        char name[128];
        float* res = (float*)malloc(n * sizeof(float));
        float* out = (float*)malloc(n * sizeof(float));
        float* mean = (float*)malloc(N * sizeof(float));
        float* rstd = (float*)malloc(N * sizeof(float));
        float* got = (float*)malloc(n * sizeof(float));
        float tol = HARNESS_FP32 ? 1e-5f : 1.6e-2f;
        // plain forward on a
        layernorm_forward(out, mean, rstd, a, w, bias, B, T, C);
        harness_poison(c.out, n * sizeof(floatX)); harness_poison(c.mean, N * 4); harness_poison(c.rstd, N * 4);
        layernorm_forward_cuda(c.out, c.mean, c.rstd, c.a, c.w, c.bias, N, C, 0);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.out, n);
        snprintf(name, sizeof(name), "layernorm_forward out N=%d C=%d", N, C);
        harness_compare(name, got, out, n, tol);
        harness_download_f32(got, c.mean, N);
        snprintf(name, sizeof(name), "layernorm_forward mean N=%d C=%d", N, C);
        harness_compare(name, got, mean, N, 1e-5);
        harness_download_f32(got, c.rstd, N);
        snprintf(name, sizeof(name), "layernorm_forward rstd N=%d C=%d", N, C);
        harness_compare(name, got, rstd, N, 1e-5);
        // fused: residual = a + b (rounded to floatX like the GPU), then LN
        residual_forward(res, a, b, n);
        harness_round_fx(res, n);
        layernorm_forward(out, mean, rstd, res, w, bias, B, T, C);
        harness_poison(c.out, n * sizeof(floatX)); harness_poison(c.res, n * sizeof(floatX));
        harness_poison(c.mean, N * 4); harness_poison(c.rstd, N * 4);
        run_fused(&c);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.res, n);
        snprintf(name, sizeof(name), "fused_residual_layernorm residual N=%d C=%d", N, C);
        harness_compare(name, got, res, n, 1e-6);
        harness_download_fx(got, c.out, n);
        snprintf(name, sizeof(name), "fused_residual_layernorm out N=%d C=%d", N, C);
        harness_compare(name, got, out, n, tol);
        // backward at the fused forward's statistics
        float* dinp = (float*)malloc(n * sizeof(float));
        memcpy(dinp, dinp0, n * sizeof(float));
        layernorm_backward(dinp, dw0, db0, dout, res, w, mean, rstd, B, T, C);
        run_bwd(&c);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.dinp, n);
        snprintf(name, sizeof(name), "layernorm_backward dinp N=%d C=%d", N, C);
        harness_compare(name, got, dinp, n, HARNESS_FP32 ? 1e-5 : 2e-2);
        harness_download_f32(got, c.dw, C);
        snprintf(name, sizeof(name), "layernorm_backward dweight N=%d C=%d", N, C);
        harness_compare(name, got, dw0, C, HARNESS_FP32 ? 1e-5 : 1e-2);
        harness_download_f32(got, c.db, C);
        snprintf(name, sizeof(name), "layernorm_backward dbias N=%d C=%d", N, C);
        harness_compare(name, got, db0, C, 1e-5);
        free(res); free(out); free(mean); free(rstd); free(got); free(dinp);
    }
    if (time_it) {
        char what[128];
        float ms = harness_time_ms(run_fused, &c, 100);
        snprintf(what, sizeof(what), "fused_residual_layernorm N=%d C=%d", N, C);
        harness_report_bandwidth(what, ms, (double)n * 4 * sizeof(floatX), ceil);  // read a, b; write res, out
        ms = harness_time_ms(run_bwd, &c, 100);
        snprintf(what, sizeof(what), "layernorm_backward N=%d C=%d", N, C);
        harness_report_bandwidth(what, ms, (double)n * 6 * sizeof(floatX), ceil);  // dout, x twice; dinp r+w
    }
    cudaCheck(cudaFree((void*)c.a)); cudaCheck(cudaFree((void*)c.b)); cudaCheck(cudaFree((void*)c.w));
    cudaCheck(cudaFree((void*)c.bias)); cudaCheck(cudaFree((void*)c.dout)); cudaCheck(cudaFree(c.out));
    cudaCheck(cudaFree(c.res)); cudaCheck(cudaFree(c.mean)); cudaCheck(cudaFree(c.rstd)); cudaCheck(cudaFree(c.dinp));
    cudaCheck(cudaFree(c.dw)); cudaCheck(cudaFree(c.db)); cudaCheck(cudaFree(c.scratch));
    free(a); free(b); free(w); free(bias); free(dout); free(dinp0); free(dw0); free(db0);
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("layernorm_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    run_case(3, 37, 77, 1, 0, &ceil);
    run_case(5, 211, 1600, 1, 0, &ceil);  // many rows: several row chunks in the weight gradients
    run_case(1, 1, 13, 1, 0, &ceil);
    run_case(8, 1024, 768, 0, 1, &ceil);
    return harness_finish("layernorm_check");
}

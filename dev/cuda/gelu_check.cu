// gelu_forward_cuda / gelu_backward_cuda (llmc/gelu.h) and residual_forward_cuda
// (llmc/residual.h) against the C reference.
#include "../../llmc/gelu.h"
#include "../../llmc/residual.h"
#include "harness.h"

typedef struct { floatX *out, *dinp; const floatX *inp, *dout, *b; size_t n; } GeluCtx;
static void run_fwd(void* p) { GeluCtx* c = (GeluCtx*)p; gelu_forward_cuda(c->out, c->inp, c->n, 0); }
static void run_bwd(void* p) { GeluCtx* c = (GeluCtx*)p; gelu_backward_cuda(c->dinp, c->inp, c->dout, c->n, 0); }
static void run_res(void* p) { GeluCtx* c = (GeluCtx*)p; residual_forward_cuda(c->out, c->inp, c->b, c->n, 0); }

// off: every device array starts off elements into its allocation (off = 1: not 16-byte aligned,
// so the kernels take their element-by-element path; 0: the 128-bit path, with a tail when n is
// not a multiple of the vector)
static void run_case(size_t n, int off, int check, int time_it, const Ceilings* ceil) {
    if (!check && !harness_timing()) { return; }
    float* x = harness_random(n + off, 4.0f);
    float* dout = harness_random(n + off, 1.0f);
    float* b = harness_random(n + off, 1.0f);
    harness_round_fx(x, n + off); harness_round_fx(dout, n + off); harness_round_fx(b, n + off);
    floatX* base_inp = harness_upload_fx(x, n + off);
    floatX* base_dout = harness_upload_fx(dout, n + off);
    floatX* base_b = harness_upload_fx(b, n + off);
    floatX* base_out = (floatX*)cuda_malloc_check((n + off) * sizeof(floatX), "out");
    floatX* base_dinp = (floatX*)cuda_malloc_check((n + off) * sizeof(floatX), "dinp");
    x += off; dout += off; b += off;
    GeluCtx c;
    c.n = n;
    c.inp = base_inp + off; c.dout = base_dout + off; c.b = base_b + off;
    c.out = base_out + off;
    c.dinp = base_dinp + off;
    if (check) {
        char name[128];
        float* ref = (float*)calloc(n, sizeof(float));
        float* got = (float*)malloc(n * sizeof(float));
        double tol = HARNESS_FP32 ? 1e-5 : 8e-3;
        gelu_forward(ref, x, n);
        harness_poison(c.out, n * sizeof(floatX));
        run_fwd(&c);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.out, n);
        snprintf(name, sizeof(name), "gelu_forward n=%zu offset %d", n, off);
        harness_compare(name, got, ref, n, tol);
        memset(ref, 0, n * sizeof(float));
        gelu_backward(ref, x, dout, n);  // accumulates into zeros; the CUDA twin writes
        harness_poison(c.dinp, n * sizeof(floatX));
        run_bwd(&c);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.dinp, n);
        snprintf(name, sizeof(name), "gelu_backward n=%zu offset %d", n, off);
        harness_compare(name, got, ref, n, tol);
        residual_forward(ref, x, b, n);
        harness_poison(c.out, n * sizeof(floatX));
        run_res(&c);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.out, n);
        snprintf(name, sizeof(name), "residual_forward n=%zu offset %d", n, off);
        harness_compare(name, got, ref, n, HARNESS_FP32 ? 1e-7 : 4e-3);
        free(ref); free(got);
    }
    if (time_it) {
        char what[128];
        snprintf(what, sizeof(what), "gelu_forward n=%zu", n);
        harness_report_bandwidth(what, harness_time_ms(run_fwd, &c, 100), 2.0 * n * sizeof(floatX), ceil);
        snprintf(what, sizeof(what), "gelu_backward n=%zu", n);
        harness_report_bandwidth(what, harness_time_ms(run_bwd, &c, 100), 3.0 * n * sizeof(floatX), ceil);
        snprintf(what, sizeof(what), "residual_forward n=%zu", n);
        harness_report_bandwidth(what, harness_time_ms(run_res, &c, 100), 3.0 * n * sizeof(floatX), ceil);
    }
    cudaCheck(cudaFree(base_inp)); cudaCheck(cudaFree(base_dout)); cudaCheck(cudaFree(base_b));
    cudaCheck(cudaFree(base_out)); cudaCheck(cudaFree(base_dinp));
    free(x - off); free(dout - off); free(b - off);
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("gelu_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    run_case(1, 0, 1, 0, &ceil);
    run_case(100003, 0, 1, 0, &ceil);  // 128-bit path with a tail
    run_case(100003, 1, 1, 0, &ceil);  // unaligned: element by element
    run_case((size_t)8 * 1024 * 3072, 0, 0, 1, &ceil);  // d12's fch at B=8, T=1024
    return harness_finish("gelu_check");
}

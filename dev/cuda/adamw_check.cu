// adamw_update_cuda and sum_of_squares_cuda (llmc/adamw.h) against the C reference.
#include "../../llmc/adamw.h"
#include "harness.h"

typedef struct { float *p, *g, *m, *v; floatX* px; double *out, *scratch; size_t n; } AdamCtx;
static void run_adam(void* q) {
    AdamCtx* c = (AdamCtx*)q;
    adamw_update_cuda(c->p, c->px, c->g, c->m, c->v, c->n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 7, 0);
}
static void run_norm(void* q) { AdamCtx* c = (AdamCtx*)q; sum_of_squares_cuda(c->out, c->g, c->n, c->scratch, 0); }

// off: the device arrays start off elements into their allocations (1: not 16-byte aligned, the
// kernel's element-by-element path; 0: 128-bit accesses, and a tail when n % 4 != 0)
static void run_case(size_t n, int off, int check, int time_it, const Ceilings* ceil) {
    if (!check && !harness_timing()) { return; }
    float* p = harness_random(n + off, 1.0f) + off;
    float* g = harness_random(n + off, 0.01f) + off;
    float* m = harness_random(n + off, 0.001f) + off;
    float* v = harness_random(n + off, 0.0001f) + off;
    for (size_t i = 0; i < n; i++) { v[i] = fabsf(v[i]); }
    AdamCtx c;
    c.n = n;
    c.p = harness_upload_f32(p - off, n + off) + off; c.g = harness_upload_f32(g - off, n + off) + off;
    c.m = harness_upload_f32(m - off, n + off) + off; c.v = harness_upload_f32(v - off, n + off) + off;
    c.px = (floatX*)cuda_malloc_check((n + off) * sizeof(floatX), "params_x") + off;
    c.out = (double*)cuda_malloc_check(sizeof(double), "norm");
    c.scratch = (double*)cuda_malloc_check(SUMSQ_BLOCKS * sizeof(double), "norm scratch");
    if (check) {
        char name[128];
        float* got = (float*)malloc(n * sizeof(float));
        double ss = sum_of_squares(g, n);
        harness_poison(c.out, sizeof(double));
        run_norm(&c);
        cudaCheck(cudaGetLastError());
        double gs;
        cudaCheck(cudaMemcpy(&gs, c.out, sizeof(double), cudaMemcpyDeviceToHost));
        snprintf(name, sizeof(name), "sum_of_squares n=%zu offset %d", n, off);
        harness_check(fabs(gs - ss) <= 1e-5 * ss, name, "gpu %.9g cpu %.9g", gs, ss);
        adamw_update(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 7);
        harness_poison(c.px, n * sizeof(floatX));
        run_adam(&c);
        cudaCheck(cudaGetLastError());
        harness_download_f32(got, c.p, n);
        snprintf(name, sizeof(name), "adamw params n=%zu offset %d", n, off);
        harness_compare(name, got, p, n, 1e-6);
        harness_download_f32(got, c.m, n);
        snprintf(name, sizeof(name), "adamw m n=%zu offset %d", n, off);
        harness_compare(name, got, m, n, 1e-6);
        harness_download_f32(got, c.v, n);
        snprintf(name, sizeof(name), "adamw v n=%zu offset %d", n, off);
        harness_compare(name, got, v, n, 1e-6);
        harness_download_fx(got, c.px, n);
        snprintf(name, sizeof(name), "adamw floatX params copy n=%zu offset %d", n, off);
        harness_compare(name, got, p, n, HARNESS_FP32 ? 1e-6 : 4e-3);
        free(got);
    }
    if (time_it) {
        char what[128];
        snprintf(what, sizeof(what), "adamw_update n=%zu", n);
        // read p, g, m, v; write p, m, v, px
        harness_report_bandwidth(what, harness_time_ms(run_adam, &c, 50), (double)n * (7 * 4 + sizeof(floatX)), ceil);
        snprintf(what, sizeof(what), "sum_of_squares n=%zu", n);
        harness_report_bandwidth(what, harness_time_ms(run_norm, &c, 50), (double)n * 4, ceil);
    }
    cudaCheck(cudaFree(c.p - off)); cudaCheck(cudaFree(c.g - off)); cudaCheck(cudaFree(c.m - off)); cudaCheck(cudaFree(c.v - off));
    cudaCheck(cudaFree(c.px - off)); cudaCheck(cudaFree(c.out)); cudaCheck(cudaFree(c.scratch));
    free(p - off); free(g - off); free(m - off); free(v - off);
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("adamw_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    run_case(1, 0, 1, 0, &ceil);
    run_case(1000003, 0, 1, 0, &ceil);  // 128-bit path with a tail
    run_case(100003, 1, 1, 0, &ceil);   // unaligned: element by element
    run_case(124475904, 0, 0, 1, &ceil);  // GPT-2 124M (Vp = 50304)
    return harness_finish("adamw_check");
}

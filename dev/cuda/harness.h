// Shared helpers of the kernel harnesses in dev/cuda/ (one harness per llmc/ kernel header).
// Each harness:
//   1. checks the CUDA twin against the header's C reference on random inputs of awkward
//      sizes (not multiples of 32), with every output poisoned (NaN bytes) before the call and
//      every CUDA return code checked; prints PASS:/FAIL: lines;
//   2. times the kernel on model-sized shapes (median of many runs, CUDA events) and prints
//      the achieved GB/s or TFLOP/s next to the card's ceilings: dev/cuda/CEILINGS.md if it
//      exists (lines "hbm_GBps = ...", "bf16_TFLOPs = ...", "fp32_TFLOPs = ..."), else
//      datasheet numbers, labelled as such.
// Tolerances: scaled max error max|gpu - ref| / max|ref| per tensor; fp32 builds 1e-5 (most
// kernels) to 1e-4, bf16 builds a few 2^-8 (bf16's relative spacing) as stated per check.
#ifndef DEV_CUDA_HARNESS_H
#define DEV_CUDA_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include "../../llmc/cuda_common.h"

#ifdef ENABLE_FP32
#define HARNESS_FP32 1
#else
#define HARNESS_FP32 0
#endif

static int harness_failures = 0;

static void harness_check(int ok, const char* name, const char* fmt, ...) {
    char detail[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(detail, sizeof(detail), fmt, args);
    va_end(args);
    if (ok) { printf("PASS: %s [%s] (%s)\n", name, PRECISION_NAME, detail); }
    else { printf("FAIL: %s [%s]: %s\n", name, PRECISION_NAME, detail); harness_failures++; }
    fflush(stdout);
}

// deterministic uniform [-1, 1) values (xorshift), so failures reproduce
static uint64_t harness_rng_state = 0x9E3779B97F4A7C15ull;
static float harness_uniform(void) {
    uint64_t x = harness_rng_state;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    harness_rng_state = x;
    return (float)((x >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float* harness_random(size_t n, float scale) {
    float* p = (float*)malloc(n * sizeof(float) + 1);
    if (p == NULL) { fprintf(stderr, "error: out of host memory\n"); exit(EXIT_FAILURE); }
    for (size_t i = 0; i < n; i++) { p[i] = harness_uniform() * scale; }
    return p;
}

// Rounds host values to floatX in place, so the C reference sees exactly the GPU's inputs.
static void harness_round_fx(float* p, size_t n) {
    for (size_t i = 0; i < n; i++) { p[i] = host_fx2f(host_f2fx(p[i])); }
}

// device floatX copy of host fp32 values (rounded)
static floatX* harness_upload_fx(const float* h, size_t n) {
    floatX* tmp = (floatX*)malloc(n * sizeof(floatX) + 1);
    for (size_t i = 0; i < n; i++) { tmp[i] = host_f2fx(h[i]); }
    floatX* d = (floatX*)cuda_malloc_check(n * sizeof(floatX), "harness buffer");
    cudaCheck(cudaMemcpy(d, tmp, n * sizeof(floatX), cudaMemcpyHostToDevice));
    free(tmp);
    return d;
}

static float* harness_upload_f32(const float* h, size_t n) {
    float* d = (float*)cuda_malloc_check(n * sizeof(float), "harness buffer");
    cudaCheck(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}

static void harness_download_fx(float* h, const floatX* d, size_t n) {
    floatX* tmp = (floatX*)malloc(n * sizeof(floatX) + 1);
    cudaCheck(cudaDeviceSynchronize());
    cudaCheck(cudaMemcpy(tmp, d, n * sizeof(floatX), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) { h[i] = host_fx2f(tmp[i]); }
    free(tmp);
}

static void harness_download_f32(float* h, const float* d, size_t n) {
    cudaCheck(cudaDeviceSynchronize());
    cudaCheck(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
}

// all bytes 0xFF: NaN in fp32 and in bf16, so an element the kernel forgets shows up
static void harness_poison(void* d, size_t bytes) {
    cudaCheck(cudaMemset(d, 0xFF, bytes));
}

static double harness_scaled_error(const float* a, const float* ref, size_t n) {
    double maxdiff = 0.0, maxref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (isnan(d)) { return NAN; }
        if (d > maxdiff) { maxdiff = d; }
        if (fabs((double)ref[i]) > maxref) { maxref = fabs((double)ref[i]); }
    }
    return maxref > 0.0 ? maxdiff / maxref : maxdiff;
}

static void harness_compare(const char* name, const float* gpu, const float* ref, size_t n, double tol) {
    double e = harness_scaled_error(gpu, ref, n);
    harness_check(e <= tol, name, "%zu values, scaled max error %.2e, tolerance %.1e", n, e, tol);
}

// ----------------------------------------------------------------------------
// Ceilings

typedef struct {
    double hbm_gbps, bf16_tflops, fp32_tflops;
    const char* source;
    char name[256];
} Ceilings;

static Ceilings harness_ceilings(void) {
    Ceilings c;
    cudaDeviceProp prop;
    int dev = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaGetDeviceProperties(&prop, dev));
    snprintf(c.name, sizeof(c.name), "%s", prop.name);
    // datasheet numbers (dense): H100 SXM 3350 GB/s, 989 bf16, 67 fp32; H200 4800 GB/s;
    // H100 PCIe 2000 GB/s, 756 bf16, 51 fp32; A100 80GB 2039 GB/s, 312 bf16, 19.5 fp32
    c.hbm_gbps = -1; c.bf16_tflops = -1; c.fp32_tflops = -1;
    if (prop.major == 9) {
        if (strstr(prop.name, "H200") != NULL) { c.hbm_gbps = 4800; c.bf16_tflops = 989; c.fp32_tflops = 67; }
        else if (strstr(prop.name, "PCIe") != NULL) { c.hbm_gbps = 2000; c.bf16_tflops = 756; c.fp32_tflops = 51; }
        else { c.hbm_gbps = 3350; c.bf16_tflops = 989; c.fp32_tflops = 67; }
    } else if (prop.major == 8 && prop.minor == 0) { c.hbm_gbps = 2039; c.bf16_tflops = 312; c.fp32_tflops = 19.5; }
    c.source = "datasheet";
    FILE* f = fopen("dev/cuda/CEILINGS.md", "r");
    if (f != NULL) {
        char line[512];
        int found = 0;
        while (fgets(line, sizeof(line), f) != NULL) {
            double v;
            if (sscanf(line, " hbm_GBps = %lf", &v) == 1) { c.hbm_gbps = v; found = 1; }
            if (sscanf(line, " bf16_TFLOPs = %lf", &v) == 1) { c.bf16_tflops = v; found = 1; }
            if (sscanf(line, " fp32_TFLOPs = %lf", &v) == 1) { c.fp32_tflops = v; found = 1; }
        }
        fclose(f);
        if (found) { c.source = "measured, dev/cuda/CEILINGS.md"; }
    }
    return c;
}

// ----------------------------------------------------------------------------
// Timing: median over `reps` runs of fn(ctx), each between two CUDA events, after warmups.

typedef void (*harness_fn)(void* ctx);

static int harness_cmp_float(const void* a, const void* b) {
    float x = *(const float*)a, y = *(const float*)b;
    return (x > y) - (x < y);
}

static float harness_time_ms(harness_fn fn, void* ctx, int reps) {
    cudaEvent_t start, stop;
    cudaCheck(cudaEventCreate(&start));
    cudaCheck(cudaEventCreate(&stop));
    for (int i = 0; i < 3; i++) { fn(ctx); }
    cudaCheck(cudaDeviceSynchronize());
    float* ms = (float*)malloc(sizeof(float) * reps);
    for (int i = 0; i < reps; i++) {
        cudaCheck(cudaEventRecord(start, 0));
        fn(ctx);
        cudaCheck(cudaEventRecord(stop, 0));
        cudaCheck(cudaEventSynchronize(stop));
        cudaCheck(cudaEventElapsedTime(&ms[i], start, stop));
    }
    qsort(ms, reps, sizeof(float), harness_cmp_float);
    float med = ms[reps / 2];
    free(ms);
    cudaCheck(cudaEventDestroy(start));
    cudaCheck(cudaEventDestroy(stop));
    return med;
}

static void harness_report_bandwidth(const char* what, float ms, double bytes, const Ceilings* c) {
    double gbps = bytes / (ms * 1e-3) / 1e9;
    if (c->hbm_gbps > 0) {
        printf("  time %-44s %9.4f ms  %8.1f GB/s  (%.0f%% of %.0f GB/s, %s)\n", what, ms, gbps,
               100.0 * gbps / c->hbm_gbps, c->hbm_gbps, c->source);
    } else {
        printf("  time %-44s %9.4f ms  %8.1f GB/s  (no ceiling known for %s)\n", what, ms, gbps, c->name);
    }
    fflush(stdout);
}

static void harness_report_flops(const char* what, float ms, double flops, const Ceilings* c) {
    double tf = flops / (ms * 1e-3) / 1e12;
    double peak = HARNESS_FP32 ? c->fp32_tflops : c->bf16_tflops;
    if (peak > 0) {
        printf("  time %-44s %9.4f ms  %8.1f TFLOP/s (%.0f%% of %.0f %s TFLOP/s, %s)\n", what, ms, tf,
               100.0 * tf / peak, peak, HARNESS_FP32 ? "fp32" : "bf16", c->source);
    } else {
        printf("  time %-44s %9.4f ms  %8.1f TFLOP/s (no ceiling known for %s)\n", what, ms, tf, c->name);
    }
    fflush(stdout);
}

// HARNESS_CHECK_ONLY=1 skips the timing-only cases (e.g. the fp32 builds in gpu_check.sh)
static int harness_timing(void) { return getenv("HARNESS_CHECK_ONLY") == NULL; }

static int harness_finish(const char* harness) {
    printf("%s: %s\n", harness, harness_failures == 0 ? "all checks passed" : "SOME CHECKS FAILED");
    return harness_failures == 0 ? 0 : 1;
}

#endif // DEV_CUDA_HARNESS_H

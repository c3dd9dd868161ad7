// Measures this GPU's ceilings and writes them to dev/cuda/CEILINGS.md, where the kernel
// harnesses read them (see dev/cuda/harness.h):
//   hbm_GBps     device memory bandwidth: a 16-byte-per-thread copy of 2 x 1 GiB (read + write)
//   bf16_TFLOPs  tensor-core bf16 peak as reached by cuBLASLt: an 8192^3 GEMM, fp32 accumulation
//   fp32_TFLOPs  CUDA-core fp32 FMA peak: independent FMA chains in registers
// Each is the best of several timed runs (CUDA events). usage: ceilings [output file]
#include "../../llmc/matmul.h"
#include "harness.h"

__global__ static void copy_kernel(uint4* dst, const uint4* src, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        dst[i] = src[i];
    }
}

// 8 independent chains per thread, iters FMAs each; out keeps the compiler from dropping them
__global__ static void fma_kernel(float* out, int iters, float a, float b) {
    float x[8];
    for (int k = 0; k < 8; k++) { x[k] = threadIdx.x * 1e-3f + k; }
    for (int i = 0; i < iters; i++) {
        #pragma unroll
        for (int k = 0; k < 8; k++) { x[k] = fmaf(x[k], a, b); }
    }
    float s = 0.0f;
    for (int k = 0; k < 8; k++) { s += x[k]; }
    if (s == 12345.678f) { out[0] = s; }  // practically never true
}

typedef struct { uint4 *dst; const uint4 *src; size_t n; float* out; int iters; int blocks;
                 floatX *A, *Bm, *D; int M; } CeilCtx;
static void run_copy(void* p) { CeilCtx* c = (CeilCtx*)p; copy_kernel<<<c->blocks, 512>>>(c->dst, c->src, c->n); cudaCheckLaunch(); }
static void run_fma(void* p) { CeilCtx* c = (CeilCtx*)p; fma_kernel<<<c->blocks, 256>>>(c->out, c->iters, 0.999f, 1e-3f); cudaCheckLaunch(); }
static void run_gemm(void* p) {
    CeilCtx* c = (CeilCtx*)p;
    matmul_cublaslt(c->D, CUBLAS_FLOATX, c->A, c->Bm, c->M, c->M, c->M, 1, 0, c->M, c->M, c->M, 0.0f,
                    CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, 0);
}

static float best_of(harness_fn fn, void* ctx, int reps) {
    float best = 1e30f;
    for (int i = 0; i < 3; i++) { float ms = harness_time_ms(fn, ctx, reps); if (ms < best) { best = ms; } }
    return best;
}

int main(int argc, char** argv) {
    const char* path = argc > 1 ? argv[1] : "dev/cuda/CEILINGS.md";
#ifdef ENABLE_FP32
    fprintf(stderr, "error: build ceilings without -DENABLE_FP32 (it measures the bf16 tensor-core peak)\n");
    return 1;
#endif
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
    CeilCtx c;
    memset(&c, 0, sizeof(c));
    // memory bandwidth
    size_t bytes = (size_t)1 << 30;
    c.n = bytes / sizeof(uint4);
    c.dst = (uint4*)cuda_malloc_check(bytes, "copy dst");
    c.src = (const uint4*)cuda_malloc_check(bytes, "copy src");
    cudaCheck(cudaMemset(c.dst, 0, bytes));
    cudaCheck(cudaMemset((void*)c.src, 1, bytes));
    c.blocks = prop.multiProcessorCount * 8;
    float ms = best_of(run_copy, &c, 10);
    double gbps = 2.0 * bytes / (ms * 1e-3) / 1e9;
    cudaCheck(cudaFree(c.dst));
    cudaCheck(cudaFree((void*)c.src));
    // fp32 FMA
    c.out = (float*)cuda_malloc_check(sizeof(float), "fma out");
    c.iters = 1 << 14;
    c.blocks = prop.multiProcessorCount * 16;
    ms = best_of(run_fma, &c, 5);
    double fp32 = 2.0 * 8 * (double)c.iters * c.blocks * 256 / (ms * 1e-3) / 1e12;
    cudaCheck(cudaFree(c.out));
    // bf16 GEMM through cuBLASLt
    matmul_cuda_init();
    c.M = 8192;
    size_t n = (size_t)c.M * c.M;
    c.A = (floatX*)cuda_malloc_check(n * sizeof(floatX), "A");
    c.Bm = (floatX*)cuda_malloc_check(n * sizeof(floatX), "B");
    c.D = (floatX*)cuda_malloc_check(n * sizeof(floatX), "D");
    cudaCheck(cudaMemset(c.A, 0, n * sizeof(floatX)));  // zeros: the clocks do not depend on data much
    cudaCheck(cudaMemset(c.Bm, 0, n * sizeof(floatX)));
    ms = best_of(run_gemm, &c, 10);
    double bf16 = 2.0 * c.M * (double)c.M * c.M / (ms * 1e-3) / 1e12;
    cudaCheck(cudaFree(c.A)); cudaCheck(cudaFree(c.Bm)); cudaCheck(cudaFree(c.D));
    matmul_cuda_free();

    FILE* f = fopen(path, "w");
    if (f == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(f, "# Measured ceilings of %s (sm_%d%d, %d SMs)\n\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
    fprintf(f, "Written by dev/cuda/ceilings (dev/gpu_check.sh); read by the harnesses in dev/cuda/.\n\n");
    fprintf(f, "    hbm_GBps = %.0f\n    bf16_TFLOPs = %.0f\n    fp32_TFLOPs = %.1f\n\n", gbps, bf16, fp32);
    fprintf(f, "- hbm_GBps: copy of 1 GiB (read + write counted), best of 3 medians of 10\n");
    fprintf(f, "- bf16_TFLOPs: cuBLASLt bf16 GEMM 8192^3, fp32 accumulation\n");
    fprintf(f, "- fp32_TFLOPs: CUDA-core FMA chains in registers\n");
    fclose(f);
    printf("ceilings of %s: %.0f GB/s, %.0f bf16 TFLOP/s, %.1f fp32 TFLOP/s -> %s\n", prop.name, gbps, bf16, fp32, path);
    return 0;
}

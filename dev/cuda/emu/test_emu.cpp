// Self-test of the CPU emulation of CUDA (dev/cuda/emu/include/cuda_runtime.h): it must run
// correct kernels to the right answer, and it must catch the bugs it claims to catch.
//   test_emu            the correct kernels; PASS/FAIL lines
//   test_emu BUG        one buggy kernel (race, early-return, divergent, partial-warp) or a
//                       missing wait between two streams (stream-wait, stream-reuse): the
//                       caller (run_emu_tests.sh) expects a wrong answer or an emulation error
#include "../../../llmc/cuda_common.h"
#include "../../test/testing.h"

// sum of n floats: a block-wide tree in shared memory, then a warp shuffle butterfly
__global__ static void block_sum_kernel(float* out, const float* in, int n, int bug) {
    __shared__ float partial[256];
    int t = threadIdx.x;
    float s = 0.0f;
    for (int i = t; i < n; i += blockDim.x) { s += in[i]; }
    partial[t] = s;
    if (bug != 1) { __syncthreads(); }  // bug 1: the tree reads partial[] before all wrote it
    for (int stride = blockDim.x / 2; stride >= 32; stride /= 2) {
        if (t < stride) { partial[t] += partial[t + stride]; }
        __syncthreads();
    }
    if (t >= 32) { return; }
    if (bug == 2 && t == 7) { return; }  // bug 2: a lane leaves before the warp's shuffles
    float v = partial[t];
    if (bug == 3 && t < 16) { __syncthreads(); }  // bug 3: half a warp at a block barrier
    for (int o = 16; o > 0; o >>= 1) { v += __shfl_xor_sync(0xffffffffu, v, o); }
    if (t == 0) { out[blockIdx.x] = v; }
}

// each lane reads its neighbour's value through __shfl_sync and __shfl_down_sync
__global__ static void shuffle_kernel(int* out) {
    int lane = threadIdx.x % 32;
    int w = threadIdx.x / 32;
    int a = __shfl_sync(0xffffffffu, lane * 10 + w, (lane + 1) % 32);
    int b = __shfl_down_sync(0xffffffffu, lane, 3);
    out[threadIdx.x] = a * 1000 + b;
}

// a 2D grid and 2D blocks: every (block, thread) writes its own global index once
__global__ static void index_kernel(int* out, int W, int H) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x < W && y < H) { out[y * W + x] += y * W + x + 1; }
}

__global__ static void fill_kernel(float* x, int n, float v) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { x[i] = v; }
}
__global__ static void copy_kernel(float* y, const float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { y[i] = x[i]; }
}

// Two streams hand a buffer over: the producer fills x with 1, the consumer copies it to y, the
// producer then refills x with 2. The consumer must wait for the first fill (bug 1 drops that
// wait) and the refill for the copy (bug 2 drops that one). lazy: which of the two streams the
// emulation defers (0 none, 1 producer, 2 consumer). Returns 1 when y holds 1 and x 2.
static int run_streams(int lazy, int bug) {
    int n = 300;
    char env[16];
    snprintf(env, sizeof(env), "%d", lazy == 0 ? 0 : emu_streams.created + lazy);
    setenv("EMU_LAZY_STREAM", env, 1);
    cudaStream_t producer, consumer;
    cudaEvent_t filled, copied;
    cudaCheck(cudaStreamCreate(&producer));
    cudaCheck(cudaStreamCreate(&consumer));
    cudaCheck(cudaEventCreate(&filled));
    cudaCheck(cudaEventCreate(&copied));
    float *x, *y;
    cudaCheck(cudaMalloc(&x, n * sizeof(float)));
    cudaCheck(cudaMalloc(&y, n * sizeof(float)));
    fill_kernel<<<CEIL_DIV(n, 128), 128, 0, producer>>>(x, n, 1.0f);
    cudaCheck(cudaEventRecord(filled, producer));
    if (bug != 1) { cudaCheck(cudaStreamWaitEvent(consumer, filled, 0)); }
    copy_kernel<<<CEIL_DIV(n, 128), 128, 0, consumer>>>(y, x, n);
    cudaCheck(cudaEventRecord(copied, consumer));
    if (bug != 2) { cudaCheck(cudaStreamWaitEvent(producer, copied, 0)); }
    fill_kernel<<<CEIL_DIV(n, 128), 128, 0, producer>>>(x, n, 2.0f);
    cudaCheck(cudaGetLastError());
    cudaCheck(cudaStreamSynchronize(producer));
    cudaCheck(cudaStreamSynchronize(consumer));
    float* hy = (float*)malloc(2 * n * sizeof(float));
    cudaCheck(cudaMemcpy(hy, y, n * sizeof(float), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(hy + n, x, n * sizeof(float), cudaMemcpyDeviceToHost));
    int ok = 1;
    for (int i = 0; i < n; i++) { ok = ok && hy[i] == 1.0f && hy[n + i] == 2.0f; }
    free(hy);
    cudaCheck(cudaFree(x));
    cudaCheck(cudaFree(y));
    cudaCheck(cudaEventDestroy(filled));
    cudaCheck(cudaEventDestroy(copied));
    cudaCheck(cudaStreamDestroy(producer));
    cudaCheck(cudaStreamDestroy(consumer));
    unsetenv("EMU_LAZY_STREAM");
    return ok;
}

static float run_sum(const float* h, int n, int bug) {
    float *d_in, *d_out;
    cudaCheck(cudaMalloc(&d_in, n * sizeof(float)));
    cudaCheck(cudaMalloc(&d_out, sizeof(float)));
    cudaCheck(cudaMemcpy(d_in, h, n * sizeof(float), cudaMemcpyHostToDevice));
    block_sum_kernel<<<1, 256>>>(d_out, d_in, n, bug);
    cudaCheck(cudaGetLastError());
    float got;
    cudaCheck(cudaMemcpy(&got, d_out, sizeof(float), cudaMemcpyDeviceToHost));
    cudaCheck(cudaFree(d_in));
    cudaCheck(cudaFree(d_out));
    return got;
}

int main(int argc, char** argv) {
    int n = 1000;
    float* h = (float*)malloc(n * sizeof(float));
    double want = 0.0;
    for (int i = 0; i < n; i++) { h[i] = (float)((i * 37) % 101) - 50.0f; want += h[i]; }
    if (argc > 1 && strncmp(argv[1], "stream-", 7) == 0) {
        free(h);
        // the missing wait shows when the stream it should have waited for lags behind
        int reuse = strcmp(argv[1], "stream-reuse") == 0;
        int ok = run_streams(reuse ? 2 : 1, reuse ? 2 : 1);
        printf("two streams without the %s wait: %s\n", reuse ? "refill-after-copy" : "copy-after-fill",
               ok ? "right answer" : "wrong answer");
        return ok ? 0 : 1;
    }
    if (argc > 1) {
        int bug = strcmp(argv[1], "race") == 0 ? 1 : strcmp(argv[1], "early-return") == 0 ? 2 : 3;
        float got = run_sum(h, n, bug);
        printf("buggy kernel '%s' returned %.1f (right answer %.1f)\n", argv[1], got, want);
        free(h);
        return got == (float)want ? 0 : 1;
    }
    float got = run_sum(h, n, 0);
    check(got == (float)want, "emulation: block reduction with __syncthreads and __shfl_xor_sync", "got %.1f, want %.1f", got, want);

    int* d;
    cudaCheck(cudaMalloc(&d, 64 * sizeof(int)));
    shuffle_kernel<<<1, 64>>>(d);
    cudaCheck(cudaGetLastError());
    int o[64];
    cudaCheck(cudaMemcpy(o, d, sizeof(o), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int t = 0; t < 64; t++) {
        int lane = t % 32, w = t / 32;
        int a = ((lane + 1) % 32) * 10 + w;
        int b = lane + 3 < 32 ? lane + 3 : lane;
        if (o[t] != a * 1000 + b) { bad++; }
    }
    check(bad == 0, "emulation: __shfl_sync and __shfl_down_sync across two warps", "%d of 64 lanes wrong", bad);
    cudaCheck(cudaFree(d));

    int W = 37, H = 21;
    int* g;
    cudaCheck(cudaMalloc(&g, W * H * sizeof(int)));
    cudaCheck(cudaMemset(g, 0, W * H * sizeof(int)));
    index_kernel<<<dim3(5, 3), dim3(8, 8)>>>(g, W, H);
    cudaCheck(cudaGetLastError());
    int* hg = (int*)malloc(W * H * sizeof(int));
    cudaCheck(cudaMemcpy(hg, g, W * H * sizeof(int), cudaMemcpyDeviceToHost));
    bad = 0;
    for (int i = 0; i < W * H; i++) { if (hg[i] != i + 1) { bad++; } }
    check(bad == 0, "emulation: 2D grid of 2D blocks, each element written once", "%d of %d elements wrong", bad, W * H);
    cudaCheck(cudaFree(g));

    for (int lazy = 0; lazy <= 2; lazy++) {
        check(run_streams(lazy, 0), "emulation: two streams ordered by events give the right answer",
              "with stream %d deferred", lazy);
    }

    index_kernel<<<dim3(1), dim3(64, 32)>>>(g, W, H);
    cudaError_t e = cudaGetLastError();
    check(e == cudaErrorInvalidConfiguration, "emulation: a 2048-thread block is refused", "%s", cudaGetErrorString(e));
    free(h);
    free(hg);
    return test_failures == 0 ? 0 : 1;
}

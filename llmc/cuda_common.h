// Shared by every CUDA file: error checks, the activation precision (floatX), small device
// helpers and the reduction rules every CUDA twin in llmc/ follows.
//
// Precision: floatX is __nv_bfloat16 by default, float with -DENABLE_FP32 (make
// PRECISION=FP32). Weights used by the matmuls, activations and activation gradients are
// floatX; master weights, parameter gradients, AdamW moments, LayerNorm statistics, the
// attention logsumexp and the per-position losses are always fp32.
//
// Determinism: no kernel in llmc/ uses floating-point atomics. Every reduction is a fixed
// tree: a thread sums a fixed strided subset in order, a warp combines lanes with
// __shfl_xor_sync in a fixed butterfly, a block combines warps through shared memory in
// warp order, and reductions over many blocks write per-block partials that a second kernel
// sums in block order. So, for a given GPU, build and shape, two runs give bitwise the same
// results. (cuBLASLt is deterministic for a fixed algorithm on a fixed GPU, and the heuristic
// gives the same algorithm for the same question; its split-K schemes reduce in a fixed order.)
#ifndef LLMC_CUDA_COMMON_H
#define LLMC_CUDA_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <float.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublasLt.h>

// ----------------------------------------------------------------------------
// Error checks: every CUDA runtime and cuBLAS call goes through one of these.

// Without a GPU (or its driver) the first CUDA call fails with "no CUDA-capable device" or
// "CUDA driver version is insufficient", which reads like a version problem: say what it is.
static int cuda_error_is_no_gpu(cudaError_t err) {
    return err == cudaErrorNoDevice || (int)err == 35;  // 35: cudaErrorInsufficientDriver
}
static void cuda_check_impl(cudaError_t err, const char* call, const char* file, int line) {
    if (err != cudaSuccess) {
        if (cuda_error_is_no_gpu(err)) {
            fprintf(stderr, "error: no CUDA GPU found (%s: %s) at %s:%d\n"
                            "(nvidia-smi lists the GPUs this machine has; the CPU trainer is ./train_gpt)\n",
                    call, cudaGetErrorString(err), file, line);
        } else {
            fprintf(stderr, "error: CUDA: %s at %s:%d (%s)\n", cudaGetErrorString(err), file, line, call);
        }
        exit(EXIT_FAILURE);
    }
}
#define cudaCheck(err) cuda_check_impl((err), #err, __FILE__, __LINE__)

// The number of GPUs, at least 1, or a clear error: the first call a program makes.
static int cuda_device_count_or_die(void) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err == cudaSuccess && n == 0) { err = cudaErrorNoDevice; }
    if (err != cudaSuccess) { cuda_check_impl(err, "cudaGetDeviceCount", __FILE__, __LINE__); }
    return n;
}

static void cublas_check_impl(cublasStatus_t status, const char* file, int line) {
    if (status != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "error: cuBLAS status %d (%s) at %s:%d\n", (int)status, cublasLtGetStatusName(status), file, line);
        exit(EXIT_FAILURE);
    }
}
#define cublasCheck(status) cublas_check_impl((status), __FILE__, __LINE__)

// after a kernel launch: catches bad launch configurations at once (cheap, no sync)
#define cudaCheckLaunch() cuda_check_impl(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

static void* cuda_malloc_check(size_t bytes, const char* what) {
    void* p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes > 0 ? bytes : 1);
    if (err != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        fprintf(stderr, "error: cudaMalloc of %.1f MiB for %s failed: %s (%.1f of %.1f MiB free)\n",
                bytes / 1048576.0, what, cudaGetErrorString(err), free_b / 1048576.0, total_b / 1048576.0);
        exit(EXIT_FAILURE);
    }
    return p;
}

#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
// exp(x) = exp2(x LOG2E_F), log(x) = log2(x) LN2_F: the kernels' softmaxes take one MUFU.EX2 each
#define LOG2E_F 1.4426950408889634f
#define LN2_F 0.6931471805599453f

// ----------------------------------------------------------------------------
// Precision

#ifdef ENABLE_FP32
typedef float floatX;
#define PRECISION_NAME "fp32"
#define CUBLAS_FLOATX CUDA_R_32F
#else
typedef __nv_bfloat16 floatX;
#define PRECISION_NAME "bf16"
#define CUBLAS_FLOATX CUDA_R_16BF
#endif

// conversions that read the same for both precisions
__host__ __device__ static inline float fx2f(float x) { return x; }
__host__ __device__ static inline float fx2f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ static inline floatX f2fx(float x) { return (floatX)x; }

// host-side rounding to floatX for uploads (round-to-nearest-even, like the device)
static inline floatX host_f2fx(float x) {
#ifdef ENABLE_FP32
    return x;
#else
    return __float2bfloat16(x);
#endif
}
static inline float host_fx2f(floatX x) {
#ifdef ENABLE_FP32
    return x;
#else
    return __bfloat162float(x);
#endif
}

// ----------------------------------------------------------------------------
// 128-bit memory access: a thread moves 16 bytes per load or store instruction (8 bf16 or 4
// floats), so a warp's request covers 512 contiguous bytes: a quarter of the instructions of
// 4-byte accesses for the same sectors (dev/cuda/PROFILE.md). The address must be 16-byte
// aligned: kernels take the vector path only where the host found every pointer aligned
// (aligned16) and the whole vector in range, element by element otherwise.
template <class T> struct alignas(16) Packed128 {
    static constexpr int size = 16 / (int)sizeof(T);
    T v[16 / sizeof(T)];
};
// through int4, the type nvcc is sure to move with one LDG.128/STG.128 (and g++ with one 16-byte
// move in the emulation, which its profiler counts as one access)
template <class T> __device__ static inline Packed128<T> load128(const T* p) {
    int4 bits = *reinterpret_cast<const int4*>(p);
    Packed128<T> out;
    memcpy(&out, &bits, 16);
    return out;
}
template <class T> __device__ static inline void store128(T* p, const Packed128<T>& x) {
    int4 bits;
    memcpy(&bits, &x, 16);
    *reinterpret_cast<int4*>(p) = bits;
}
static inline int aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }
#define X128 (16 / (int)sizeof(floatX))  // floatX elements in 128 bits: 8 (bf16) or 4 (fp32)

// ----------------------------------------------------------------------------
// Reductions (fixed order, see the top of the file)

// width < 32 (a power of 2): the sum within each aligned group of width lanes
__device__ static inline float warp_reduce_sum(float v, int width = 32) {
    for (int offset = width / 2; offset > 0; offset >>= 1) { v += __shfl_xor_sync(0xffffffffu, v, offset); }
    return v;
}

__device__ static inline float warp_reduce_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) { v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset)); }
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the
// result. shared: 32 floats of scratch. Safe to call several times in a row.
__device__ static inline float block_reduce_sum(float v, float* shared) {
    int lane = threadIdx.x % 32;
    int warp = threadIdx.x / 32;
    int nwarps = blockDim.x / 32;
    v = warp_reduce_sum(v);
    __syncthreads();  // shared may still be read by a previous call
    if (lane == 0) { shared[warp] = v; }
    __syncthreads();
    float w = lane < nwarps ? shared[lane] : 0.0f;
    return warp_reduce_sum(w);
}

__device__ static inline float block_reduce_max(float v, float* shared) {
    int lane = threadIdx.x % 32;
    int warp = threadIdx.x / 32;
    int nwarps = blockDim.x / 32;
    v = warp_reduce_max(v);
    __syncthreads();
    if (lane == 0) { shared[warp] = v; }
    __syncthreads();
    float w = lane < nwarps ? shared[lane] : -FLT_MAX;
    return warp_reduce_max(w);
}

// Column sums of a (rows, cols) row-major floatX matrix, added into an fp32 vector:
//   out[c] += sum_r in[r * cols + c]
// Deterministic in two stages: blocks of 32 columns x 32 row-lanes write partial sums for
// fixed row chunks into scratch (nchunks x cols floats), then one thread per column adds the
// chunks in order. Used for bias gradients and the LayerNorm weight/bias gradients.
#define COLSUM_ROW_CHUNK 512
static size_t colsum_scratch_floats(int rows, int cols) {
    return (size_t)CEIL_DIV(rows, COLSUM_ROW_CHUNK) * cols;
}

__global__ static void colsum_partial_kernel(float* partial, const floatX* in, int rows, int cols) {
    // block (32, 32): threadIdx.x = column in the tile, threadIdx.y = row lane
    __shared__ float tile[32][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * COLSUM_ROW_CHUNK;
    int r1 = min(r0 + COLSUM_ROW_CHUNK, rows);
    float s = 0.0f;
    if (c < cols) {
        for (int r = r0 + threadIdx.y; r < r1; r += 32) { s += fx2f(in[(size_t)r * cols + c]); }
    }
    tile[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float t = 0.0f;
        for (int i = 0; i < 32; i++) { t += tile[i][threadIdx.x]; }
        partial[(size_t)blockIdx.y * cols + c] = t;
    }
}

// Column totals over row lanes, for the (32, VEC_ROW_LANES) blocks that add X128 adjacent
// columns a thread over every VEC_ROW_LANES-th row (the bias column sums below, the LayerNorm
// weight gradients, the wte gradient): each thread's X128 sums meet in tile, X128 + 1 floats
// apart so that a warp's writes of one k fall in 32 banks, and thread i = 32 threadIdx.y +
// threadIdx.x < 32 X128 gets the block's column i, the lanes added in order (the same order
// every run). A barrier inside: every thread of the block calls it.
#define VEC_ROW_LANES 8
__device__ static inline float vec_row_lanes_total(float (*tile)[32 * (X128 + 1)], const float* s) {
    for (int k = 0; k < X128; k++) { tile[threadIdx.y][threadIdx.x * (X128 + 1) + k] = s[k]; }
    __syncthreads();
    int i = threadIdx.y * 32 + threadIdx.x;
    float t = 0.0f;
    if (i < 32 * X128) {
        for (int y = 0; y < VEC_ROW_LANES; y++) { t += tile[y][(i / X128) * (X128 + 1) + i % X128]; }
    }
    return t;
}

// The same partial sums, 16 bytes a load, for cols % X128 == 0 and 16-byte aligned rows: a
// thread sums X128 adjacent columns over every 8th row of the chunk, so a warp's request covers
// 32 X128 columns (512 bytes, where the kernel above moves 64 in bf16) and each thread keeps X128
// times the bytes in flight. Measured on an H200, the kernel above took 4.19 ms of d12's step
// (48 launches) against 2.8 ms to read the gradients once. Block (32, VEC_ROW_LANES).
__global__ static void colsum_partial_vec_kernel(float* partial, const floatX* in, int rows, int cols) {
    __shared__ float tile[VEC_ROW_LANES][32 * (X128 + 1)];
    int c0 = (blockIdx.x * 32 + threadIdx.x) * X128;
    int r0 = blockIdx.y * COLSUM_ROW_CHUNK;
    int r1 = min(r0 + COLSUM_ROW_CHUNK, rows);
    float s[X128];
    for (int k = 0; k < X128; k++) { s[k] = 0.0f; }
    if (c0 < cols) {
        #pragma unroll 4
        for (int r = r0 + threadIdx.y; r < r1; r += VEC_ROW_LANES) {
            Packed128<floatX> v = load128(in + (size_t)r * cols + c0);
            for (int k = 0; k < X128; k++) { s[k] += fx2f(v.v[k]); }
        }
    }
    float t = vec_row_lanes_total(tile, s);
    int i = threadIdx.y * 32 + threadIdx.x, c = blockIdx.x * 32 * X128 + i;
    if (i < 32 * X128 && c < cols) { partial[(size_t)blockIdx.y * cols + c] = t; }
}

__global__ static void colsum_finish_kernel(float* out, const float* partial, int nchunks, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) { return; }
    float s = 0.0f;
    for (int i = 0; i < nchunks; i++) { s += partial[(size_t)i * cols + c]; }
    out[c] += s;
}

static void colsum_accumulate_cuda(float* out, const floatX* in, int rows, int cols, float* scratch,
                                   cudaStream_t stream) {
    int nchunks = CEIL_DIV(rows, COLSUM_ROW_CHUNK);
    if (cols % X128 == 0 && aligned16(in)) {
        dim3 grid(CEIL_DIV(cols, 32 * X128), nchunks);
        colsum_partial_vec_kernel<<<grid, dim3(32, VEC_ROW_LANES), 0, stream>>>(scratch, in, rows, cols);
    } else {
        dim3 grid(CEIL_DIV(cols, 32), nchunks);
        colsum_partial_kernel<<<grid, dim3(32, 32), 0, stream>>>(scratch, in, rows, cols);
    }
    cudaCheckLaunch();
    colsum_finish_kernel<<<CEIL_DIV(cols, 256), 256, 0, stream>>>(out, scratch, nchunks, cols);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// Device info, for MFU and the harnesses' ceilings

// Dense bf16 tensor-core peak in TFLOP/s for MFU. LLMC_PEAK_TFLOPS overrides it; otherwise a
// table of datasheet numbers by compute capability and name (H100 SXM 989, H100 PCIe 756,
// H200 989, A100 312). Returns -1 if unknown.
static double gpu_peak_bf16_tflops(void) {
    const char* env = getenv("LLMC_PEAK_TFLOPS");
    if (env != NULL && atof(env) > 0) { return atof(env); }
    int dev = 0;
    cudaDeviceProp prop;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) { return -1.0; }
    if (prop.major == 9) {
        if (strstr(prop.name, "PCIe") != NULL) { return 756.0; }
        return 989.0;  // H100 SXM, H200, GH200
    }
    if (prop.major == 8 && prop.minor == 0) { return 312.0; }  // A100
    if (prop.major == 8 && prop.minor == 9) { return 181.0; }  // L4/L40S class (approximate)
    if (prop.major == 10) { return 2250.0; }                    // B200 (datasheet, dense)
    return -1.0;
}

#endif // LLMC_CUDA_COMMON_H

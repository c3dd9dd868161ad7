// Checks the emulation's memory profiler (include/emu_profile.h) on small kernels whose counts
// are known by hand: coalesced, offset, strided, 16-byte and 2-byte global accesses; shared
// memory without conflicts, with 2- and 32-way conflicts, padded, broadcast, 16-byte phases; and
// the WMMA stub's tile loads (ldmatrix addresses) with a 32-byte and a 48-byte row pitch; and the
// shape of llmc's 128-bit accesses (gelu_forward_cuda, adamw_update_cuda).
// Built by run_emu_tests.sh with -DEMU_PROFILE and -fsanitize=thread, linked without the
// ThreadSanitizer runtime (emu_profile.h answers its calls). Prints PASS:/FAIL: lines.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <mma.h>
#include "llmc/gelu.h"
#include "llmc/adamw.h"
#include "llmc/attention.h"

static int fails = 0;

static void expect(const char* what, unsigned long long got, unsigned long long want) {
    if (got == want) {
        printf("PASS: profile: %s = %llu\n", what, got);
    } else {
        printf("FAIL: profile: %s = %llu, expected %llu\n", what, got, want);
        fails++;
    }
}

static const EmuCounters& last(void) { return emu_profile_records().back().c; }

__global__ void copy_kernel(float* y, const float* x, int n, int offset, int stride) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { y[i] = x[(size_t)i * stride + offset]; }
}

__global__ void broadcast_kernel(float* y, const float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { y[i] = x[7]; }  // one address for every lane: one sector a request
}

__global__ void copy4_kernel(uint4* y, const uint4* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { y[i] = x[i]; }
}

// a 16-byte load into a value that starts as zeros (the tensor-core attention's tile loads)
__global__ void cond_copy4_kernel(uint4* y, const uint4* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (i < n) { v = x[i]; }
    if (i < n + 6) { y[i] = v; }
}

__global__ void copy_bf16_kernel(__nv_bfloat16* y, const __nv_bfloat16* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { y[i] = x[i]; }
}

// one warp; mode picks the shared-memory access pattern of the read
__global__ void shared_kernel(float* out, int mode) {
    __shared__ float tile[32 * 33];
    int lane = threadIdx.x;
    for (int i = lane; i < 32 * 33; i += 32) { tile[i] = (float)i; }  // 33 conflict-free stores
    __syncthreads();
    float v = 0.0f;
    if (mode == 0) { v = tile[lane]; }                 // row: 1 wavefront
    if (mode == 1) { v = tile[lane * 32]; }            // column of a 32x32 tile: 32-way
    if (mode == 2) { v = tile[lane * 33]; }            // column of a padded 32x33 tile: 1
    if (mode == 3) { v = tile[5]; }                    // broadcast: 1
    if (mode == 4) { v = tile[lane * 2]; }             // stride 2: 2-way
    out[lane] = v;
}

__global__ void shared4_kernel(uint4* out, const uint4* in) {
    __shared__ __align__(16) uint4 tile4[64];
    int lane = threadIdx.x;
    tile4[lane] = in[lane];  // 16-byte stores: 4 phases of 8 lanes, no conflict
    __syncthreads();
    out[lane] = tile4[31 - lane];  // 16-byte loads: the same
}

__global__ void wmma_kernel(float* out, int ldm) {
    using namespace nvcuda;
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16* a = (__nv_bfloat16*)smem;
    for (int i = threadIdx.x; i < 16 * ldm; i += 32) { a[i] = __float2bfloat16(1.0f); }
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    wmma::load_matrix_sync(fa, a, (unsigned)ldm);
    out[threadIdx.x] = (float)fa.x[0];
}

int main(void) {
    const int n = 1000;  // 31.25 warps: the last warp has 8 lanes
    float *x, *y;
    cudaMalloc(&x, (size_t)n * 33 * sizeof(float));
    cudaMalloc(&y, (size_t)n * sizeof(float));
    cudaMemset(x, 0, (size_t)n * 33 * sizeof(float));
    emu_profile_enable(1);
    const unsigned long long warps = (n + 31) / 32;  // 32 requests a load

    copy_kernel<<<(n + 127) / 128, 128>>>(y, x, n, 0, 1);
    expect("coalesced float load: requests", last().requests[0][0], warps);
    // 31 full warps x 4 sectors + 8 lanes (32 bytes) x 1 sector
    expect("coalesced float load: sectors", last().sectors[0][0], 31 * 4 + 1);
    expect("coalesced float store: sectors", last().sectors[0][1], 31 * 4 + 1);
    expect("coalesced float load: bytes", last().bytes[0][0], (unsigned long long)n * 4);
    expect("coalesced float load: unique sectors", last().unique_sectors[0], (n * 4 + 31) / 32);

    copy_kernel<<<(n + 127) / 128, 128>>>(y, x, n, 1, 1);
    // shifted by one float: each full warp straddles 5 sectors; the last 8 lanes (bytes 3972..4003) 2
    expect("offset float load: sectors", last().sectors[0][0], 31 * 5 + 2);
    expect("offset float load: ideal sectors", last().ideal_sectors[0], 31 * 4 + 1);

    copy_kernel<<<(n + 127) / 128, 128>>>(y, x, n, 0, 32);
    expect("stride-32 float load: sectors", last().sectors[0][0], (unsigned long long)n);
    expect("stride-32 float load: unique sectors", last().unique_sectors[0], (unsigned long long)n);
    expect("stride-32 float load: ideal sectors", last().ideal_sectors[0], 31 * 4 + 1);

    broadcast_kernel<<<(n + 127) / 128, 128>>>(y, x, n);
    expect("broadcast load: sectors", last().sectors[0][0], warps);
    expect("broadcast load: ideal sectors", last().ideal_sectors[0], warps);

    copy4_kernel<<<(n / 4 + 127) / 128, 128>>>((uint4*)y, (const uint4*)x, n / 4);
    // 250 lanes of 16 bytes: 7 full warps (16 sectors each) and 26 lanes (13 sectors)
    expect("16-byte load: requests", last().requests[0][0], 8);
    expect("16-byte load: sectors", last().sectors[0][0], 7 * 16 + 13);

    cond_copy4_kernel<<<(n / 4 + 127) / 128, 128>>>((uint4*)y, (const uint4*)x, n / 4 - 6);
    expect("16-byte load into zeros: requests", last().requests[0][0], 8);
    expect("16-byte load into zeros: sectors", last().sectors[0][0], 7 * 16 + 10);

    copy_bf16_kernel<<<(n + 127) / 128, 128>>>((__nv_bfloat16*)y, (const __nv_bfloat16*)x, n);
    expect("bf16 load: sectors", last().sectors[0][0], 31 * 2 + 1);

    const char* modes[5] = {"row", "column 32x32", "column 32x33", "broadcast", "stride 2"};
    const unsigned long long wavefronts[5] = {1, 32, 1, 1, 2};
    for (int m = 0; m < 5; m++) {
        shared_kernel<<<1, 32>>>(y, m);
        char what[120];
        snprintf(what, sizeof(what), "shared %s: load wavefronts", modes[m]);
        expect(what, last().sectors[1][0], wavefronts[m]);
        snprintf(what, sizeof(what), "shared %s: store requests (33) and wavefronts", modes[m]);
        expect(what, last().sectors[1][1], 33);
    }

    shared4_kernel<<<1, 32>>>((uint4*)y, (const uint4*)x);
    expect("shared 16-byte: load phases", last().phases[0], 4);
    expect("shared 16-byte: load wavefronts", last().sectors[1][0], 4);
    expect("shared 16-byte: store wavefronts", last().sectors[1][1], 4);
    expect("shared 16-byte: global load sectors", last().sectors[0][0], 16);

    // ldmatrix.x4 from a row pitch of 16 bf16 (32 bytes): in each phase of 8 lanes, rows r and
    // r + 4 start in the same bank: 2 wavefronts per phase, 8 in all; a 24-element pitch (48
    // bytes) spreads the 8 rows of a phase over all 32 banks: 4
    wmma_kernel<<<1, 32, 16 * 24 * 2>>>(y, 16);
    expect("WMMA tile, pitch 32 bytes: load wavefronts", last().sectors[1][0], 8);
    wmma_kernel<<<1, 32, 16 * 24 * 2>>>(y, 24);
    expect("WMMA tile, pitch 48 bytes: load wavefronts", last().sectors[1][0], 4);
    expect("WMMA tile: load requests", last().requests[1][0], 1);

    // the 128-bit fixes of llmc/ keep their shape (bf16 build: 8 elements, 4 floats a thread)
    {
        const size_t m = 8192;
        floatX *a, *o;
        float *p, *g, *mm, *vv;
        cudaMalloc(&a, m * sizeof(floatX)); cudaMalloc(&o, m * sizeof(floatX));
        cudaMalloc(&p, m * 4); cudaMalloc(&g, m * 4); cudaMalloc(&mm, m * 4); cudaMalloc(&vv, m * 4);
        cudaMemset(a, 0, m * sizeof(floatX)); cudaMemset(p, 0, m * 4); cudaMemset(g, 0, m * 4);
        cudaMemset(mm, 0, m * 4); cudaMemset(vv, 0, m * 4);
        gelu_forward_cuda(o, a, m, 0);
        expect("gelu_forward_cuda (bf16): load requests (8 elements a lane)", last().requests[0][0], m / 8 / 32);
        expect("gelu_forward_cuda (bf16): load sectors", last().sectors[0][0], m * 2 / 32);
        expect("gelu_forward_cuda (bf16): store requests", last().requests[0][1], m / 8 / 32);
        adamw_update_cuda(p, o, g, mm, vv, m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1, 0);
        // four fp32 arrays read, three written with 16 bytes a lane, the bf16 copy with 8
        expect("adamw_update_cuda: load requests (4 floats a lane)", last().requests[0][0], 4 * m / 4 / 32);
        expect("adamw_update_cuda: load sectors", last().sectors[0][0], 4 * m * 4 / 32);
        expect("adamw_update_cuda: store requests", last().requests[0][1], 4 * m / 4 / 32);
        expect("adamw_update_cuda: store sectors", last().sectors[0][1], (3 * m * 4 + m * 2) / 32);
        cudaFree(a); cudaFree(o); cudaFree(p); cudaFree(g); cudaFree(mm); cudaFree(vv);
    }

    // the tensor-core attention's padded tiles (llmc/attention.h): its shared-memory traffic is
    // (nearly) conflict-free; unpadded (ATT_TC_PAD 0), 84-85% of its wavefronts are bank conflicts
    // in each of its three kernels (checked by hand on 2026-12-04)
    {
        int B = 1, T = 130, NH = 1, C = 64;
        floatX *qkv, *out;
        float* lse;
        cudaMalloc(&qkv, (size_t)B * T * 3 * C * sizeof(floatX));
        cudaMalloc(&out, (size_t)B * T * C * sizeof(floatX));
        cudaMalloc(&lse, (size_t)B * NH * T * sizeof(float));
        cudaMemset(qkv, 0, (size_t)B * T * 3 * C * sizeof(floatX));
        attention_forward_tc<64>(out, lse, qkv, B, T, C, NH, 0);
        const EmuCounters& c = last();
        unsigned long long waves = c.sectors[1][0] + c.sectors[1][1], phases = c.phases[0] + c.phases[1];
        char what[160];
        snprintf(what, sizeof(what), "attention_forward_tc<64>: bank conflicts %llu of %llu wavefronts, at most 5%%",
                 waves - phases, waves);
        expect(what, (waves - phases) * 20 <= waves, 1);
        // the backward's two kernels (dk/dv, then dq), through the same padded tiles
        floatX *dqkv, *dout;
        float* Dsum;
        cudaMalloc(&dqkv, (size_t)B * T * 3 * C * sizeof(floatX));
        cudaMalloc(&dout, (size_t)B * T * C * sizeof(floatX));
        cudaMalloc(&Dsum, (size_t)B * NH * T * sizeof(float));
        cudaMemset(dout, 0, (size_t)B * T * C * sizeof(floatX));
        cudaMemset(Dsum, 0, (size_t)B * NH * T * sizeof(float));
        attention_backward_tc<64>(dqkv, Dsum, dout, qkv, lse, B, T, C, NH, 0);
        const std::vector<EmuLaunchRecord>& recs = emu_profile_records();
        for (size_t k = recs.size() - 2; k < recs.size(); k++) {
            const EmuCounters& r = recs[k].c;
            unsigned long long w = r.sectors[1][0] + r.sectors[1][1], ph = r.phases[0] + r.phases[1];
            snprintf(what, sizeof(what), "%s: bank conflicts %llu of %llu wavefronts, at most 5%%", recs[k].name.c_str(),
                     w - ph, w);
            expect(what, w > 0 && (w - ph) * 20 <= w, 1);
        }
        cudaFree(qkv); cudaFree(out); cudaFree(lse); cudaFree(dqkv); cudaFree(dout); cudaFree(Dsum);
    }

    // the writer: one row per launch
    size_t nrec = emu_profile_records().size();
    char path[64];
    snprintf(path, sizeof(path), "/tmp/emu_profile_test_%d.csv", (int)getpid());
    if (emu_profile_write_csv(path) != 0) { printf("FAIL: profile: cannot write %s\n", path); fails++; }
    FILE* f = fopen(path, "r");
    size_t lines = 0;
    int ch;
    while (f != NULL && (ch = fgetc(f)) != EOF) { lines += ch == '\n'; }
    if (f != NULL) { fclose(f); }
    remove(path);
    expect("profile CSV: rows (header + one a launch)", lines, nrec + 1);

    cudaFree(x);
    cudaFree(y);
    return fails ? 1 : 0;
}

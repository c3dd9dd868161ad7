// mma_m16n8k16_bf16 (llmc/tensor_core.h) against the PTX ISA's fragment table, written out here
// element by element from the ISA's "Matrix Fragments for mma.m16n8k16 with floating point type"
// (not computed by the header's or the emulation's code). In the emulation this pins the emulated
// instruction to the ISA; on a GPU it pins the hardware, and so the emulation's model of it.
//   1. the table: each lane loads A, B, C by the table, the warp multiplies, each lane stores D by
//      the table; D must equal A B + C computed here (any misplaced element fails)
//   2. the FlashAttention-2 chain the attention forward relies on: S = Q K^T as two n8 tiles,
//      their fp32 accumulators turned into the bf16 A operand of O = P V in registers, without
//      going through memory; O must equal the product with P rounded to bf16 here
//   3. ldmatrix (.x4, plain and .trans) from shared memory: every register equal to the one the
//      table packs from global memory
// Several warps, each with its own matrices; both builds (the instruction is bf16 either way).
#include "../../llmc/tensor_core.h"
#include "harness.h"

// The ISA's table, written once here: lane l's registers of a 16x16 A (row-major, ld elements a
// row), of a 16x8 B stored [k][n] or stored as B^T [n][k], and its 16x8 C/D (row-major).
__device__ static void table_a(uint32_t a[4], const __nv_bfloat16* A, int ld) {
    int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
    a[0] = bf16x2_pack(A[g * ld + 2 * t], A[g * ld + 2 * t + 1]);
    a[1] = bf16x2_pack(A[(g + 8) * ld + 2 * t], A[(g + 8) * ld + 2 * t + 1]);
    a[2] = bf16x2_pack(A[g * ld + 2 * t + 8], A[g * ld + 2 * t + 9]);
    a[3] = bf16x2_pack(A[(g + 8) * ld + 2 * t + 8], A[(g + 8) * ld + 2 * t + 9]);
}
__device__ static void table_b_kn(uint32_t b[2], const __nv_bfloat16* B, int ld) {
    int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
    b[0] = bf16x2_pack(B[(2 * t) * ld + g], B[(2 * t + 1) * ld + g]);
    b[1] = bf16x2_pack(B[(2 * t + 8) * ld + g], B[(2 * t + 9) * ld + g]);
}
__device__ static void table_b_nk(uint32_t b[2], const __nv_bfloat16* Bt, int ld) {
    int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
    b[0] = bf16x2_pack(Bt[g * ld + 2 * t], Bt[g * ld + 2 * t + 1]);
    b[1] = bf16x2_pack(Bt[g * ld + 2 * t + 8], Bt[g * ld + 2 * t + 9]);
}
__device__ static void table_load_c(float d[4], const float* C) {
    int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
    d[0] = C[g * 8 + 2 * t]; d[1] = C[g * 8 + 2 * t + 1];
    d[2] = C[(g + 8) * 8 + 2 * t]; d[3] = C[(g + 8) * 8 + 2 * t + 1];
}
__device__ static void table_store_c(float* D, const float d[4]) {
    int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
    D[g * 8 + 2 * t] = d[0]; D[g * 8 + 2 * t + 1] = d[1];
    D[(g + 8) * 8 + 2 * t] = d[2]; D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

// one warp per 16x16 A (row-major), 16x8 B (row-major, k x n), 16x8 C and D (row-major)
__global__ static void mma_table_kernel(float* D, const __nv_bfloat16* A_all, const __nv_bfloat16* B_all,
                                        const float* C_all) {
    int warp = threadIdx.x / 32;
    uint32_t a[4], b[2];
    float d[4];
    table_a(a, A_all + warp * 256, 16);
    table_b_kn(b, B_all + warp * 128, 8);
    table_load_c(d, C_all + warp * 128);
    mma_m16n8k16_bf16(d, a, b);
    table_store_c(D + warp * 128, d);
}

// one warp per Q (16 x 16), K (16 keys x 16), V (16 keys x 8): O (16 x 8) = bf16(Q K^T) V
__global__ static void mma_chain_kernel(float* O, const __nv_bfloat16* Q_all, const __nv_bfloat16* K_all,
                                        const __nv_bfloat16* V_all) {
    int warp = threadIdx.x / 32;
    const __nv_bfloat16* K = K_all + warp * 256;
    uint32_t q[4];
    table_a(q, Q_all + warp * 256, 16);
    float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
    for (int nt = 0; nt < 2; nt++) {
        // B = K^T: B[k = dim][n = key] = K[key][dim], keys nt * 8 .. + 7
        uint32_t b[2];
        table_b_nk(b, K + nt * 8 * 16, 16);
        mma_m16n8k16_bf16(s[nt], q, b);
    }
    // the accumulators of keys 0-7 and 8-15 are P's A operand over k = 16 keys
    uint32_t p[4] = {bf16x2_from_floats(s[0][0], s[0][1]), bf16x2_from_floats(s[0][2], s[0][3]),
                     bf16x2_from_floats(s[1][0], s[1][1]), bf16x2_from_floats(s[1][2], s[1][3])};
    uint32_t b[2];
    table_b_kn(b, V_all + warp * 128, 8);
    float o[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    mma_m16n8k16_bf16(o, p, b);
    table_store_c(O + warp * 128, o);
}

// ldmatrix against the same table: a 16x16 A tile, a B^T tile stored [n][k] (plain) and a B
// tile stored [k][n] (.trans), each 16x16 in shared memory at a 48-byte row pitch; every
// register must equal the one packed by the table from global memory. bad[lane] counts the
// registers that differ.
#define LDM_PITCH 24
__global__ static void ldmatrix_table_kernel(int* bad, const __nv_bfloat16* A, const __nv_bfloat16* Bnk,
                                             const __nv_bfloat16* Bkn) {
    extern __shared__ __align__(128) unsigned char ldm_smem[];
    __nv_bfloat16* sA = (__nv_bfloat16*)ldm_smem;
    __nv_bfloat16* sBt = sA + 16 * LDM_PITCH;
    __nv_bfloat16* sB = sBt + 16 * LDM_PITCH;
    int lane = threadIdx.x % 32;
    for (int i = lane; i < 256; i += 32) {
        sA[(i / 16) * LDM_PITCH + i % 16] = A[i];
        sBt[(i / 16) * LDM_PITCH + i % 16] = Bnk[i];
        sB[(i / 16) * LDM_PITCH + i % 16] = Bkn[i];
    }
    __syncwarp();
    int n_bad = 0;
    uint32_t r[4], want[4];
    // A (row-major [m][k]): the ISA's a[0..3]
    ldmatrix_x4(r, sA + (lane % 8 + 8 * ((lane / 8) % 2)) * LDM_PITCH + 8 * (lane / 16));
    table_a(want, A, 16);
    for (int i = 0; i < 4; i++) { n_bad += r[i] != want[i]; }
    // B stored as B^T [n][k]: b[0], b[1] of n-tile 0, then of n-tile 1
    ldmatrix_x4(r, sBt + (lane % 8 + 8 * (lane / 16)) * LDM_PITCH + 8 * ((lane / 8) % 2));
    table_b_nk(want, Bnk, 16);
    table_b_nk(want + 2, Bnk + 8 * 16, 16);
    for (int i = 0; i < 4; i++) { n_bad += r[i] != want[i]; }
    // B stored [k][n], loaded with .trans
    ldmatrix_x4_trans(r, sB + (lane % 8 + 8 * ((lane / 8) % 2)) * LDM_PITCH + 8 * (lane / 16));
    table_b_kn(want, Bkn, 16);
    table_b_kn(want + 2, Bkn + 8, 16);
    for (int i = 0; i < 4; i++) { n_bad += r[i] != want[i]; }
    bad[lane] = n_bad;
}

static float round_bf16(float x) { return __bfloat162float(__float2bfloat16(x)); }

// n random values rounded to bf16: the host copy (floats) and the device copy (bf16)
static __nv_bfloat16* upload_bf16(float* h, size_t n) {
    __nv_bfloat16* tmp = (__nv_bfloat16*)malloc(n * sizeof(__nv_bfloat16));
    if (tmp == NULL) { fprintf(stderr, "error: out of host memory\n"); exit(EXIT_FAILURE); }
    for (size_t i = 0; i < n; i++) { tmp[i] = __float2bfloat16(h[i]); h[i] = __bfloat162float(tmp[i]); }
    __nv_bfloat16* d = (__nv_bfloat16*)cuda_malloc_check(n * sizeof(__nv_bfloat16), "bf16 matrix");
    cudaCheck(cudaMemcpy(d, tmp, n * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice));
    free(tmp);
    return d;
}

static void check_ldmatrix(void) {
    float* A = harness_random(256, 2.0f);
    float* Bnk = harness_random(256, 2.0f);
    float* Bkn = harness_random(256, 2.0f);
    __nv_bfloat16* dA = upload_bf16(A, 256);
    __nv_bfloat16* dBnk = upload_bf16(Bnk, 256);
    __nv_bfloat16* dBkn = upload_bf16(Bkn, 256);
    int* dbad = (int*)cuda_malloc_check(32 * sizeof(int), "bad");
    harness_poison(dbad, 32 * sizeof(int));
    ldmatrix_table_kernel<<<1, 32, 3 * 16 * LDM_PITCH * sizeof(__nv_bfloat16)>>>(dbad, dA, dBnk, dBkn);
    cudaCheck(cudaGetLastError());
    int bad[32];
    cudaCheck(cudaMemcpy(bad, dbad, sizeof(bad), cudaMemcpyDeviceToHost));
    int total = 0;
    for (int l = 0; l < 32; l++) { total += (bad[l] >= 0 && bad[l] <= 12) ? bad[l] : 1000; }
    harness_check(total == 0, "ldmatrix.x4 and .x4.trans by the ISA's fragment table", "%d of 384 registers differ", total);
    cudaCheck(cudaFree(dA)); cudaCheck(cudaFree(dBnk)); cudaCheck(cudaFree(dBkn)); cudaCheck(cudaFree(dbad));
    free(A); free(Bnk); free(Bkn);
}

static void check_table(int warps) {
    float* A = harness_random((size_t)warps * 256, 2.0f);
    float* B = harness_random((size_t)warps * 128, 2.0f);
    float* C = harness_random((size_t)warps * 128, 1.0f);
    __nv_bfloat16* dA = upload_bf16(A, (size_t)warps * 256);
    __nv_bfloat16* dB = upload_bf16(B, (size_t)warps * 128);
    float* dC = harness_upload_f32(C, (size_t)warps * 128);
    float* dD = (float*)cuda_malloc_check((size_t)warps * 128 * sizeof(float), "D");
    harness_poison(dD, (size_t)warps * 128 * sizeof(float));
    mma_table_kernel<<<1, 32 * warps>>>(dD, dA, dB, dC);
    cudaCheck(cudaGetLastError());
    float* got = (float*)malloc((size_t)warps * 128 * sizeof(float));
    float* ref = (float*)malloc((size_t)warps * 128 * sizeof(float));
    harness_download_f32(got, dD, (size_t)warps * 128);
    for (int w = 0; w < warps; w++) {
        for (int r = 0; r < 16; r++) {
            for (int c = 0; c < 8; c++) {
                double s = C[w * 128 + r * 8 + c];
                for (int k = 0; k < 16; k++) { s += (double)A[w * 256 + r * 16 + k] * B[w * 128 + k * 8 + c]; }
                ref[w * 128 + r * 8 + c] = (float)s;
            }
        }
    }
    char name[96];
    snprintf(name, sizeof(name), "mma.m16n8k16 bf16 by the ISA's fragment table, %d warps", warps);
    harness_compare(name, got, ref, (size_t)warps * 128, 1e-6);
    cudaCheck(cudaFree(dA)); cudaCheck(cudaFree(dB)); cudaCheck(cudaFree(dC)); cudaCheck(cudaFree(dD));
    free(A); free(B); free(C); free(got); free(ref);
}

static void check_chain(int warps) {
    float* Q = harness_random((size_t)warps * 256, 1.0f);
    float* K = harness_random((size_t)warps * 256, 1.0f);
    float* V = harness_random((size_t)warps * 128, 1.0f);
    __nv_bfloat16* dQ = upload_bf16(Q, (size_t)warps * 256);
    __nv_bfloat16* dK = upload_bf16(K, (size_t)warps * 256);
    __nv_bfloat16* dV = upload_bf16(V, (size_t)warps * 128);
    float* dO = (float*)cuda_malloc_check((size_t)warps * 128 * sizeof(float), "O");
    harness_poison(dO, (size_t)warps * 128 * sizeof(float));
    mma_chain_kernel<<<1, 32 * warps>>>(dO, dQ, dK, dV);
    cudaCheck(cudaGetLastError());
    float* got = (float*)malloc((size_t)warps * 128 * sizeof(float));
    float* ref = (float*)malloc((size_t)warps * 128 * sizeof(float));
    harness_download_f32(got, dO, (size_t)warps * 128);
    for (int w = 0; w < warps; w++) {
        float P[16][16];
        for (int i = 0; i < 16; i++) {
            for (int j = 0; j < 16; j++) {
                float s = 0.0f;  // fp32 as the instruction accumulates, then bf16 as the kernel packs
                for (int k = 0; k < 16; k++) { s += Q[w * 256 + i * 16 + k] * K[w * 256 + j * 16 + k]; }
                P[i][j] = round_bf16(s);
            }
        }
        for (int i = 0; i < 16; i++) {
            for (int c = 0; c < 8; c++) {
                double o = 0.0;
                for (int j = 0; j < 16; j++) { o += (double)P[i][j] * V[w * 128 + j * 8 + c]; }
                ref[w * 128 + i * 8 + c] = (float)o;
            }
        }
    }
    // P's bf16 rounding can land one step apart when the fp32 sums differ in the last bit (the
    // instruction's internal order is not ours): 2^-8 relative on an element of P
    char name[112];
    snprintf(name, sizeof(name), "mma chain: S = Q K^T accumulators as P's A operand, O = P V, %d warps", warps);
    harness_compare(name, got, ref, (size_t)warps * 128, 1e-2);
    cudaCheck(cudaFree(dQ)); cudaCheck(cudaFree(dK)); cudaCheck(cudaFree(dV)); cudaCheck(cudaFree(dO));
    free(Q); free(K); free(V); free(got); free(ref);
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("mma_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    check_table(1);
    check_table(3);
    check_chain(1);
    check_chain(4);
    check_ldmatrix();
    return harness_finish("mma_check");
}

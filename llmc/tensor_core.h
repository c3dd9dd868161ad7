/*
One tensor-core instruction, mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (sm_80 and
later): a warp computes D (16 x 8, fp32) = A (16 x 16, bf16) B (16 x 8, bf16) + C, each lane
holding its share of A, B and C/D in registers, by the PTX ISA's layout ("Matrix Fragments for
mma.m16n8k16 with floating point type"). With g = lane / 4 and t = lane % 4:

  A: a[0] = (A[g][2t],     A[g][2t+1])       B: b[0] = (B[2t][g],   B[2t+1][g])
     a[1] = (A[g+8][2t],   A[g+8][2t+1])        b[1] = (B[2t+8][g], B[2t+9][g])
     a[2] = (A[g][2t+8],   A[g][2t+9])       C, D: c[0] = C[g][2t],   c[1] = C[g][2t+1]
     a[3] = (A[g+8][2t+8], A[g+8][2t+9])           c[2] = C[g+8][2t], c[3] = C[g+8][2t+1]

(two bf16 in a 32-bit register: the first in the low half). Unlike WMMA's opaque fragments, the
layout is the contract, and code may depend on it: C's layout for two adjacent n8 tiles is A's
layout for one k16 tile, so a product's fp32 accumulators become the next product's bf16 A
operand in registers (FlashAttention-2's P = softmax(S) then O += P V).

There is no C reference here: the instruction is a matrix product, and its users' C references
(llmc/attention.h) are the oracle. The CUDA emulation computes it from every lane's registers by
the same table (dev/cuda/emu/include/mma.h), and dev/cuda/mma_check.cu pins both the emulation
and, on a GPU, the hardware to the table written out independently.
*/
#ifndef LLMC_TENSOR_CORE_H
#define LLMC_TENSOR_CORE_H
#ifdef __CUDACC__
#include <stdint.h>
#include <cuda_bf16.h>
#include <mma.h>  // the emulation's mma_m16n8k16 lives beside its WMMA

// d = a b + d
__device__ static inline void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef LLMC_EMU_CUDACC
    emu_mma_m16n8k16_bf16(d, a, b);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// ldmatrix.sync.aligned.m8n8.x4.shared.b16: four 8x8 b16 matrices from shared memory, one
// register each. Lane l gives the address of one 16-byte row: row l % 8 of matrix l / 8. Each
// lane receives, in r[i], two elements of matrix i by the ISA's layout:
//   plain:  (row g, columns 2t and 2t + 1)           g = lane / 4, t = lane % 4
//   .trans: (rows 2t and 2t + 1, column g)
// which are the A/B fragment layouts above. A 16x16 row-major A tile: lane l points at row
// l % 8 + 8 ((l / 8) % 2), column 8 (l / 16), and r[] is a[]. B fragments of two n8 tiles come
// from one call the same way (stored [n][k] plain, or [k][n] with .trans). Addresses must be
// 16-byte aligned, in shared memory.
// TRANS 0: plain, 1: .trans (the instruction's text must be a literal: one asm each)
template <int TRANS>
__device__ static inline void ldmatrix_x4_op(uint32_t r[4], const __nv_bfloat16* p) {
#ifdef LLMC_EMU_CUDACC
    emu_ldmatrix_x4(r, p, TRANS);
#else
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    if (TRANS) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
    } else {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
    }
#endif
}
__device__ static inline void ldmatrix_x4(uint32_t r[4], const __nv_bfloat16* p) { ldmatrix_x4_op<0>(r, p); }
__device__ static inline void ldmatrix_x4_trans(uint32_t r[4], const __nv_bfloat16* p) { ldmatrix_x4_op<1>(r, p); }

// cp.async.shared.global (sm_80 and later): 16 or 4 bytes from global to shared memory without
// passing through registers, so a block can fetch the next tile while it computes on this one.
// Copies are grouped by cp_async_commit; cp_async_wait<N> returns when all but the N most recent
// groups have landed (in this thread: a __syncthreads after it makes them visible to the block).
// Both addresses aligned to the size. The emulation writes shared memory only at the wait
// (dev/cuda/emu/include/mma.h), so a tile read before its wait is caught there.
// BYTES: 16 (.cg, cached in L2 only) or 4 (.ca: copies under 16 bytes must go through L1)
template <int BYTES>
__device__ static inline void cp_async(void* dst_shared, const void* src_global) {
#ifdef LLMC_EMU_CUDACC
    emu_cp_async(dst_shared, src_global, BYTES);
#else
    unsigned a = (unsigned)__cvta_generic_to_shared(dst_shared);
    if (BYTES == 16) {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" : : "r"(a), "l"(src_global) : "memory");
    } else {
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" : : "r"(a), "l"(src_global) : "memory");
    }
#endif
}
__device__ static inline void cp_async_commit(void) {
#ifdef LLMC_EMU_CUDACC
    emu_cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" : : : "memory");
#endif
}
template <int N>
__device__ static inline void cp_async_wait(void) {
#ifdef LLMC_EMU_CUDACC
    emu_cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;\n" : : "n"(N) : "memory");
#endif
}

// 2^x by the special-function unit alone: ex2.approx.ftz.f32 (relative error about 2^-22, results
// below 2^-126 flushed to 0). exp2f without --use_fast_math is the same MUFU.EX2 inside a range
// test and two multiplies that keep subnormal results (four instructions, dev/cuda/sass_loops.py);
// for a softmax probability a subnormal is as good as 0. The emulation computes it in float and
// flushes the same way.
__device__ static inline float exp2_approx(float x) {
#ifdef LLMC_EMU_CUDACC
    float r = exp2f(x);
    return r < 1.17549435e-38f ? 0.0f : r;  // FLT_MIN
#else
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
#endif
}

// two bf16 in one register, lo in the low half (the order of a[], b[] above)
__device__ static inline uint32_t bf16x2_pack(__nv_bfloat16 lo, __nv_bfloat16 hi) {
    return (uint32_t)__bfloat16_as_ushort(lo) | ((uint32_t)__bfloat16_as_ushort(hi) << 16);
}
__device__ static inline uint32_t bf16x2_from_floats(float lo, float hi) {
    return bf16x2_pack(__float2bfloat16(lo), __float2bfloat16(hi));
}
// two adjacent bf16 at a 4-byte aligned address: one 32-bit load
__device__ static inline uint32_t bf16x2_load(const __nv_bfloat16* p) { return *(const uint32_t*)p; }

#endif // __CUDACC__
#endif // LLMC_TENSOR_CORE_H

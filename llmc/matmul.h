// Matmul with bias: the fully connected layer, and all the FLOPs of the model.
//   forward:  out[B*T, OC] = inp[B*T, C] @ weight[OC, C]^T + bias[OC]
//   backward: dinp += dout @ weight;  dweight += dout^T @ inp;  dbias += column sums of dout
// Backward accumulates (+=) into all three, so gradient accumulation and branching
// activations need no extra buffers; the caller zeroes gradients when a step begins.
//
// How it is computed (CPU): one general GEMM core, C[M,N] (+)= A[M,K] @ B[K,N], in the
// BLIS / GotoBLAS style. A and B are given by element strides (rs = row stride, cs =
// column stride), so the three products (inp @ W^T, dout @ W, dout^T @ inp) only differ in
// how their panels are packed; nothing is ever transposed in memory.
//   - K is cut into KC-deep blocks, N into NC-wide blocks, M into MC-tall blocks.
//   - A block (MC x KC) is packed into MR-row micro-panels, k-major (Ap[k*MR + i]);
//     a B block (KC x NC) into NR-column micro-panels (Bp[k*NR + j]). Packing makes the
//     microkernel's loads contiguous whatever the strides, and zero-pads edge panels so
//     the microkernel always computes a full MR x NR tile.
//   - The microkernel keeps an MR x NR tile of C in registers and does one FMA per
//     element per k: AVX-512 12x32, AVX2+FMA 6x16, or plain C as a fallback.
//
// Determinism: every element of C is computed as
//     c = init + s_0 + s_1 + ...,   s_p = sum over k in K-block p, summed in k order
// where the K-blocks always start at k = 0 and are KC deep. The threads split only M and N
// (never K), so no element is ever touched by two threads and its arithmetic does not
// depend on the thread count, the partition or the scheduling: same inputs give bitwise
// the same outputs with 1, 2 or 64 threads. (The AVX-512, AVX2 and plain-C builds differ
// from each other in the last bits, because of FMA and KC.) No atomics, no reductions
// across threads.
//
// Memory: no malloc and no global state. Each thread packs into buffers on its own stack
// (MC*KC + KC*NC floats, under 512 KiB for every variant below), so the functions are
// reentrant and can run inside the training loop. Keep OMP_STACKSIZE / the thread stack
// above 1 MiB (the defaults are 2-8 MiB).
#ifndef LLMC_MATMUL_H
#define LLMC_MATMUL_H

#include <stddef.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// Which kernel this build uses: MATMUL_AVX512 (12x32), MATMUL_AVX2 (6x16) or neither
// (plain C). The scalar fallback is whatever is left without AVX2 and FMA.
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#if defined(__AVX512F__)
#define MATMUL_AVX512 1
#else
#define MATMUL_AVX2 1
#endif
#endif

// ----------------------------------------------------------------------------
// Blocking parameters per instruction set.
//   MR x NR: the register tile. KC: depth of a block; KC*NR floats of B (one micro-panel)
//   should stay in L1 while the A block streams past. MC x KC floats of A live in L2.
//   KC x NC floats of B live in L2 as well (stack budget). MC is a multiple of MR, NC of NR.

// MC is kept small on purpose: the A block is re-packed for every NC-wide block of B, and
// packing A is memory-bound, so under a fixed stack budget a wider NC buys more than a
// taller MC (the A block only has to fit L2; MC does not change the L1/L2 traffic).
// 96*256 + 256*384 floats = 480 KiB. Measured on Zen 5, 1 core: 384/96 beats 320/144 by ~4%.
#if defined(MATMUL_AVX512)
#define MATMUL_MR 12
#define MATMUL_NR 32
#define MATMUL_KC 256
#define MATMUL_MC 96
#define MATMUL_NC 384
#elif defined(MATMUL_AVX2)
#define MATMUL_MR 6
#define MATMUL_NR 16
#define MATMUL_KC 256
#define MATMUL_MC 96
#define MATMUL_NC 384
#else
#define MATMUL_MR 4
#define MATMUL_NR 16
#define MATMUL_KC 256
#define MATMUL_MC 128
#define MATMUL_NC 256
#endif

// below this many multiply-adds one thread does it all (fork/join costs a few microseconds)
#define MATMUL_PARALLEL_MIN_WORK (64 * 64 * 64)

// ----------------------------------------------------------------------------
// Microkernels. Contract (identical for every variant):
//   acc[i][j] = sum_{k < kc} Ap[k*MR + i] * Bp[k*NR + j]    (k in increasing order)
//   v = acc[i][j];  if (bias) v += bias[j];  if (load_c) v += c[i*ldc + j];  c[i*ldc + j] = v
// for the full MR x NR tile. Ap and Bp are packed and 64-byte aligned.

#if defined(MATMUL_AVX512)

static inline void matmul_ukernel(int kc, const float* __restrict__ Ap, const float* __restrict__ Bp,
                                  float* __restrict__ c, ptrdiff_t ldc, int load_c,
                                  const float* __restrict__ bias) {
    __m512 acc[MATMUL_MR][2];
    #pragma GCC unroll 12
    for (int i = 0; i < MATMUL_MR; i++) {
        // C is only touched after the k loop; ask for its lines now so the misses
        // overlap with the FMAs (worth a few percent: C comes from L3 on every K-block)
        _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char*)(c + i * ldc + 31), _MM_HINT_T0);
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
    }
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(Bp);
        __m512 b1 = _mm512_load_ps(Bp + 16);
        #pragma GCC unroll 12
        for (int i = 0; i < MATMUL_MR; i++) {
            // a broadcast from memory folds into the FMA ({1to16} operand)
            __m512 a = _mm512_set1_ps(Ap[i]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
        Ap += MATMUL_MR;
        Bp += MATMUL_NR;
    }
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias != NULL) { bias0 = _mm512_loadu_ps(bias); bias1 = _mm512_loadu_ps(bias + 16); }
    #pragma GCC unroll 12
    for (int i = 0; i < MATMUL_MR; i++) {
        __m512 v0 = acc[i][0], v1 = acc[i][1];
        if (bias != NULL) { v0 = _mm512_add_ps(v0, bias0); v1 = _mm512_add_ps(v1, bias1); }
        float* ci = c + i * ldc;
        if (load_c) {
            v0 = _mm512_add_ps(v0, _mm512_loadu_ps(ci));
            v1 = _mm512_add_ps(v1, _mm512_loadu_ps(ci + 16));
        }
        _mm512_storeu_ps(ci, v0);
        _mm512_storeu_ps(ci + 16, v1);
    }
}

#elif defined(MATMUL_AVX2)

static inline void matmul_ukernel(int kc, const float* __restrict__ Ap, const float* __restrict__ Bp,
                                  float* __restrict__ c, ptrdiff_t ldc, int load_c,
                                  const float* __restrict__ bias) {
    // 6x16: 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers
    __m256 acc[MATMUL_MR][2];
    #pragma GCC unroll 6
    for (int i = 0; i < MATMUL_MR; i++) {
        _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);  // see the AVX-512 kernel
        _mm_prefetch((const char*)(c + i * ldc + 15), _MM_HINT_T0);
        acc[i][0] = _mm256_setzero_ps();
        acc[i][1] = _mm256_setzero_ps();
    }
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(Bp);
        __m256 b1 = _mm256_load_ps(Bp + 8);
        #pragma GCC unroll 6
        for (int i = 0; i < MATMUL_MR; i++) {
            __m256 a = _mm256_broadcast_ss(Ap + i);
            acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
        }
        Ap += MATMUL_MR;
        Bp += MATMUL_NR;
    }
    __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
    if (bias != NULL) { bias0 = _mm256_loadu_ps(bias); bias1 = _mm256_loadu_ps(bias + 8); }
    #pragma GCC unroll 6
    for (int i = 0; i < MATMUL_MR; i++) {
        __m256 v0 = acc[i][0], v1 = acc[i][1];
        if (bias != NULL) { v0 = _mm256_add_ps(v0, bias0); v1 = _mm256_add_ps(v1, bias1); }
        float* ci = c + i * ldc;
        if (load_c) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(ci));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(ci + 8));
        }
        _mm256_storeu_ps(ci, v0);
        _mm256_storeu_ps(ci + 8, v1);
    }
}

#else

// Plain C: same packing, same contract. The loops over the tile are unrolled completely
// so the compiler can keep acc[][] in (vector) registers; without the pragmas it keeps
// acc in memory and runs ~8x slower. Mul and add stay separate unless the target has FMA.
static inline void matmul_ukernel(int kc, const float* __restrict__ Ap, const float* __restrict__ Bp,
                                  float* __restrict__ c, ptrdiff_t ldc, int load_c,
                                  const float* __restrict__ bias) {
    float acc[MATMUL_MR][MATMUL_NR];
    #pragma GCC unroll 4
    for (int i = 0; i < MATMUL_MR; i++) {
        #pragma GCC unroll 16
        for (int j = 0; j < MATMUL_NR; j++) { acc[i][j] = 0.0f; }
    }
    for (int k = 0; k < kc; k++) {
        #pragma GCC unroll 4
        for (int i = 0; i < MATMUL_MR; i++) {
            float a = Ap[i];
            #pragma GCC unroll 16
            for (int j = 0; j < MATMUL_NR; j++) { acc[i][j] += a * Bp[j]; }
        }
        Ap += MATMUL_MR;
        Bp += MATMUL_NR;
    }
    for (int i = 0; i < MATMUL_MR; i++) {
        float* ci = c + i * ldc;
        for (int j = 0; j < MATMUL_NR; j++) {
            float v = acc[i][j];
            if (bias != NULL) { v += bias[j]; }
            if (load_c) { v += ci[j]; }
            ci[j] = v;
        }
    }
}

#endif

// ----------------------------------------------------------------------------
// Packing. A points at the top-left element of the block, in the caller's strides.
// Two of the four layouts are transposes (row-major A -> k-major panels, and W^T in the
// forward); those go through 8x8 register transposes in the SIMD builds, which makes them
// 3-5x faster than element-by-element copies. That matters in the forward at B*T = 256,
// where packing W^T would otherwise cost a quarter of the time.

#if defined(MATMUL_AVX512) || defined(MATMUL_AVX2)
// r[0..7] = 8 rows of 8 floats -> r[u] = column u
static inline void matmul_transpose8(__m256 r[8]) {
    __m256 t[8], q[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        q[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
        q[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
        q[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        q[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(q[i], q[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(q[i], q[i + 4], 0x31);
    }
}

// stores the first n (1..8, known at compile time after unrolling) floats of v
static inline void matmul_store_n(float* dst, __m256 v, int n) {
    if (n == 8) { _mm256_storeu_ps(dst, v); return; }
    __m128 lo = _mm256_castps256_ps128(v);
    if (n >= 4) {
        _mm_storeu_ps(dst, lo);
        if (n == 4) { return; }
        lo = _mm256_extractf128_ps(v, 1);
        dst += 4;
        n -= 4;
    }
    if (n >= 2) {
        _mm_storel_pi((__m64*)dst, lo);
        if (n == 2) { return; }
        lo = _mm_movehl_ps(lo, lo);
        dst += 2;
        n -= 2;
    }
    _mm_store_ss(dst, lo);
}

// dst[k*ld + r] = src[r*stride + k] for r < nrows (<= 8), k < 8: eight k-columns of
// nrows rows become eight k-rows. Rows past nrows repeat the last row and are not stored.
static inline void matmul_transpose_block(float* dst, ptrdiff_t ld, const float* src,
                                          ptrdiff_t stride, int nrows) {
    __m256 r[8];
    for (int i = 0; i < 8; i++) { r[i] = _mm256_loadu_ps(src + (i < nrows ? i : nrows - 1) * stride); }
    matmul_transpose8(r);
    for (int u = 0; u < 8; u++) { matmul_store_n(dst + u * ld, r[u], nrows); }
}
#define MATMUL_HAVE_TRANSPOSE 1
#endif

// mc x kc block of A -> ceil(mc/MR) micro-panels of kc*MR floats, rows past mc zeroed
static void matmul_pack_a(int mc, int kc, const float* A, ptrdiff_t rsA, ptrdiff_t csA,
                          float* __restrict__ Ap) {
    int full = mc / MATMUL_MR * MATMUL_MR;  // rows in full micro-panels
    if (rsA == 1 && full > 0) {
        // columns of A contiguous (dout^T in the dweight product): walk k outermost so
        // each column of the block is read once, front to back (a panel-at-a-time walk
        // would revisit every column mc/MR times at a large power-of-two stride)
        for (int k = 0; k < kc; k++) {
            const float* src = A + k * csA;
            for (int i0 = 0; i0 < full; i0 += MATMUL_MR) {
                float* dst = Ap + (size_t)i0 * kc + k * MATMUL_MR;
                for (int i = 0; i < MATMUL_MR; i++) { dst[i] = src[i0 + i]; }
            }
        }
    } else if (csA == 1 && full > 0) {
        // rows of A contiguous (inp, dout): a transpose of MR rows into k-major order
        for (int i0 = 0; i0 < full; i0 += MATMUL_MR) {
            const float* a = A + i0 * rsA;
            float* ap = Ap + (size_t)i0 * kc;
            int k = 0;
#ifdef MATMUL_HAVE_TRANSPOSE
            for (; k + 8 <= kc; k += 8) {
                for (int r0 = 0; r0 < MATMUL_MR; r0 += 8) {
                    int nrows = MATMUL_MR - r0 < 8 ? MATMUL_MR - r0 : 8;
                    matmul_transpose_block(ap + k * MATMUL_MR + r0, MATMUL_MR,
                                           a + r0 * rsA + k, rsA, nrows);
                }
            }
#endif
            for (; k < kc; k++) {
                for (int i = 0; i < MATMUL_MR; i++) { ap[k * MATMUL_MR + i] = a[i * rsA + k]; }
            }
        }
    } else {
        full = 0;
    }
    // general strides, and the zero-padded last panel
    for (int i0 = full; i0 < mc; i0 += MATMUL_MR) {
        int mr = mc - i0 < MATMUL_MR ? mc - i0 : MATMUL_MR;
        const float* a = A + i0 * rsA;
        float* ap = Ap + (size_t)i0 * kc;
        for (int k = 0; k < kc; k++) {
            int i = 0;
            for (; i < mr; i++) { ap[k * MATMUL_MR + i] = a[i * rsA + k * csA]; }
            for (; i < MATMUL_MR; i++) { ap[k * MATMUL_MR + i] = 0.0f; }
        }
    }
}

// kc x nc block of B -> ceil(nc/NR) micro-panels of kc*NR floats, columns past nc zeroed
static void matmul_pack_b(int kc, int nc, const float* B, ptrdiff_t rsB, ptrdiff_t csB,
                          float* __restrict__ Bp) {
    for (int j0 = 0; j0 < nc; j0 += MATMUL_NR, Bp += (size_t)kc * MATMUL_NR) {
        int nr = nc - j0 < MATMUL_NR ? nc - j0 : MATMUL_NR;
        const float* b = B + j0 * csB;
        if (nr == MATMUL_NR && csB == 1) {
            // rows of B contiguous (W in dinp, inp in dweight): NR-float copies
            for (int k = 0; k < kc; k++) {
                const float* src = b + k * rsB;
                for (int j = 0; j < MATMUL_NR; j++) { Bp[k * MATMUL_NR + j] = src[j]; }
            }
        } else if (nr == MATMUL_NR && rsB == 1) {
            // columns of B contiguous (W^T in the forward): a transpose
            int k = 0;
#ifdef MATMUL_HAVE_TRANSPOSE
            for (; k + 8 <= kc; k += 8) {
                for (int j = 0; j < MATMUL_NR; j += 8) {
                    matmul_transpose_block(Bp + k * MATMUL_NR + j, MATMUL_NR, b + j * csB + k, csB, 8);
                }
            }
#endif
            for (int j = 0; j < MATMUL_NR; j++) {
                const float* src = b + j * csB;
                for (int kk = k; kk < kc; kk++) { Bp[kk * MATMUL_NR + j] = src[kk]; }
            }
        } else {
            for (int k = 0; k < kc; k++) {
                int j = 0;
                for (; j < nr; j++) { Bp[k * MATMUL_NR + j] = b[k * rsB + j * csB]; }
                for (; j < MATMUL_NR; j++) { Bp[k * MATMUL_NR + j] = 0.0f; }
            }
        }
    }
}

// ----------------------------------------------------------------------------
// Macro-kernel: C[mc, nc] (+)= Ap @ Bp. The B micro-panel of the outer loop stays in L1
// while the A micro-panels stream from L2. Edge tiles go through a local tile and are
// then combined with C by the same float ops the microkernel uses, so they round the same.
static void matmul_macro(int mc, int nc, int kc, const float* Ap, const float* Bp,
                         float* C, ptrdiff_t ldc, int load_c, const float* bias) {
    for (int j0 = 0; j0 < nc; j0 += MATMUL_NR) {
        int nr = nc - j0 < MATMUL_NR ? nc - j0 : MATMUL_NR;
        const float* bp = Bp + (size_t)j0 * kc;
        const float* bj = bias != NULL ? bias + j0 : NULL;
        for (int i0 = 0; i0 < mc; i0 += MATMUL_MR) {
            int mr = mc - i0 < MATMUL_MR ? mc - i0 : MATMUL_MR;
            const float* ap = Ap + (size_t)i0 * kc;
            float* c = C + i0 * ldc + j0;
            if (mr == MATMUL_MR && nr == MATMUL_NR) {
                matmul_ukernel(kc, ap, bp, c, ldc, load_c, bj);
            } else {
                float tile[MATMUL_MR * MATMUL_NR] __attribute__((aligned(64)));
                matmul_ukernel(kc, ap, bp, tile, MATMUL_NR, 0, NULL);
                for (int i = 0; i < mr; i++) {
                    for (int j = 0; j < nr; j++) {
                        float v = tile[i * MATMUL_NR + j];
                        if (bj != NULL) { v += bj[j]; }
                        if (load_c) { v += c[i * ldc + j]; }
                        c[i * ldc + j] = v;
                    }
                }
            }
        }
    }
}

// ----------------------------------------------------------------------------
// Work split. The threads form a pm x pn grid over C; each owns a rectangle of whole
// register tiles. Splitting N costs nothing extra (every A block is packed once per NC
// block anyway), splitting M makes each row of threads pack the same B blocks again, so
// among the grids with the least work per thread, the one with the fewest M splits wins.

typedef struct { int m0, m1, n0, n1; } MatmulRange;

static MatmulRange matmul_thread_range(int M, int N, int nthreads, int tid) {
    int tm = (M + MATMUL_MR - 1) / MATMUL_MR;  // register tiles along M
    int tn = (N + MATMUL_NR - 1) / MATMUL_NR;
    int best_pm = 1;
    long best_cost = -1;
    for (int pm = 1; pm <= nthreads; pm++) {
        if (nthreads % pm != 0) { continue; }
        int pn = nthreads / pm;
        long cost = (long)((tm + pm - 1) / pm) * ((tn + pn - 1) / pn);
        if (best_cost < 0 || cost < best_cost) { best_cost = cost; best_pm = pm; }
    }
    int pm = best_pm, pn = nthreads / best_pm;
    int im = tid / pn, in = tid % pn;
    // tiles spread as evenly as possible: the first (t % p) parts get one more
    int m_lo = im * (tm / pm) + (im < tm % pm ? im : tm % pm);
    int m_hi = m_lo + tm / pm + (im < tm % pm ? 1 : 0);
    int n_lo = in * (tn / pn) + (in < tn % pn ? in : tn % pn);
    int n_hi = n_lo + tn / pn + (in < tn % pn ? 1 : 0);
    MatmulRange r;
    r.m0 = m_lo * MATMUL_MR; r.m1 = m_hi * MATMUL_MR < M ? m_hi * MATMUL_MR : M;
    r.n0 = n_lo * MATMUL_NR; r.n1 = n_hi * MATMUL_NR < N ? n_hi * MATMUL_NR : N;
    return r;
}

// cut [0, len) into ceil(len/max) nearly equal chunks, rounded up to whole tiles, so a
// 448-wide range becomes 224 + 224 rather than 384 + 64
static int matmul_chunk(int len, int max, int unit) {
    int nchunks = (len + max - 1) / max;
    int chunk = (len + nchunks - 1) / nchunks;
    chunk = (chunk + unit - 1) / unit * unit;
    return chunk < max ? chunk : max;
}

// One thread's share: the rectangle r of C, the whole K range.
static void matmul_gemm_range(MatmulRange r, int K,
                              const float* A, ptrdiff_t rsA, ptrdiff_t csA,
                              const float* B, ptrdiff_t rsB, ptrdiff_t csB,
                              float* C, ptrdiff_t ldc, int accumulate, const float* bias) {
    if (r.m0 >= r.m1 || r.n0 >= r.n1) { return; }
    // per-thread packing buffers on this thread's stack (see the top comment)
    float Ap[MATMUL_MC * MATMUL_KC] __attribute__((aligned(64)));
    float Bp[MATMUL_KC * MATMUL_NC] __attribute__((aligned(64)));
    int ncs = matmul_chunk(r.n1 - r.n0, MATMUL_NC, MATMUL_NR);
    int mcs = matmul_chunk(r.m1 - r.m0, MATMUL_MC, MATMUL_MR);
    for (int jc = r.n0; jc < r.n1; jc += ncs) {
        int nc = r.n1 - jc < ncs ? r.n1 - jc : ncs;
        // K-blocks in increasing order: this is the summation order of every element
        for (int pc = 0; pc < K; pc += MATMUL_KC) {
            int kc = K - pc < MATMUL_KC ? K - pc : MATMUL_KC;
            matmul_pack_b(kc, nc, B + pc * rsB + jc * csB, rsB, csB, Bp);
            int load_c = accumulate || pc > 0;
            const float* bias_c = (pc == 0 && bias != NULL) ? bias + jc : NULL;
            for (int ic = r.m0; ic < r.m1; ic += mcs) {
                int mc = r.m1 - ic < mcs ? r.m1 - ic : mcs;
                matmul_pack_a(mc, kc, A + ic * rsA + pc * csA, rsA, csA, Ap);
                matmul_macro(mc, nc, kc, Ap, Bp, C + ic * ldc + jc, ldc, load_c, bias_c);
            }
        }
    }
}

// The core. C is row-major [M, N] with row stride ldc;
//   A[i, k] = A[i*rsA + k*csA],  B[k, j] = B[k*rsB + j*csB].
//   C = (accumulate ? C : 0) + bias[j] + A @ B      (bias: NULL or N floats)
// Strides are ptrdiff_t so that large products (Vp * C) never overflow an int.
static void gemm(int M, int N, int K,
                 const float* A, ptrdiff_t rsA, ptrdiff_t csA,
                 const float* B, ptrdiff_t rsB, ptrdiff_t csB,
                 float* C, ptrdiff_t ldc, int accumulate, const float* bias) {
    if (M <= 0 || N <= 0) { return; }
    if (K <= 0) {
        // empty sum: only the init part remains (same op order as the kernels)
        for (int i = 0; i < M; i++) {
            for (int j = 0; j < N; j++) {
                float v = 0.0f;
                if (bias != NULL) { v += bias[j]; }
                if (accumulate) { v += C[i * ldc + j]; }
                C[i * ldc + j] = v;
            }
        }
        return;
    }
    int nthreads = 1;
#ifdef _OPENMP
    if ((double)M * N * K >= MATMUL_PARALLEL_MIN_WORK) { nthreads = omp_get_max_threads(); }
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        // the team may be smaller than asked for; split over the threads that exist
        MatmulRange r = matmul_thread_range(M, N, omp_get_num_threads(), omp_get_thread_num());
        matmul_gemm_range(r, K, A, rsA, csA, B, rsB, csB, C, ldc, accumulate, bias);
    }
#else
    matmul_gemm_range(matmul_thread_range(M, N, nthreads, 0), K,
                      A, rsA, csA, B, rsB, csB, C, ldc, accumulate, bias);
#endif
}

// ----------------------------------------------------------------------------
// The layer.

static void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                           int B, int T, int C, int OC) {
    // out[BT, OC] = inp[BT, C] @ W^T: B[k=c, j=o] = weight[o*C + c]
    gemm(B * T, OC, C, inp, C, 1, weight, 1, C, out, OC, 0, bias);
}

// dbias[o] += sum over rows of dout[:, o]. Threads own column ranges; inside one, a
// 64-column strip is summed row by row (vectorizes across columns, streams dout), each
// column in row order, so the result is independent of the thread count.
static void matmul_dbias(float* dbias, const float* dout, int BT, int OC) {
    enum { STRIP = 64 };
    int nstrips = (OC + STRIP - 1) / STRIP;
#ifdef _OPENMP
    #pragma omp parallel for schedule(static) if ((double)BT * OC >= MATMUL_PARALLEL_MIN_WORK)
#endif
    for (int s = 0; s < nstrips; s++) {
        int o0 = s * STRIP;
        int w = OC - o0 < STRIP ? OC - o0 : STRIP;
        float sum[STRIP];
        for (int j = 0; j < w; j++) { sum[j] = 0.0f; }
        for (int bt = 0; bt < BT; bt++) {
            const float* row = dout + (size_t)bt * OC + o0;
            for (int j = 0; j < w; j++) { sum[j] += row[j]; }
        }
        for (int j = 0; j < w; j++) { dbias[o0 + j] += sum[j]; }
    }
}

static void matmul_backward(float* dinp, float* dweight, float* dbias,
                            const float* dout, const float* inp, const float* weight,
                            int B, int T, int C, int OC) {
    int BT = B * T;
    // dinp[BT, C] += dout[BT, OC] @ W[OC, C]
    gemm(BT, C, OC, dout, OC, 1, weight, C, 1, dinp, C, 1, NULL);
    // dweight[OC, C] += dout^T[OC, BT] @ inp[BT, C]: A[i=o, k=bt] = dout[bt*OC + o]
    // (NULL: a frozen weight, as in parameter-efficient fine-tuning, gets no gradient)
    if (dweight != NULL) { gemm(OC, C, BT, dout, 1, OC, inp, C, 1, dweight, C, 1, NULL); }
    if (dbias != NULL) { matmul_dbias(dbias, dout, BT, OC); }
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin: cuBLASLt, with the bias and GELU fused into the matmul's epilogue.
// Row-major (ours) vs column-major (cuBLAS): a row-major (R, K) matrix is a column-major
// (K, R) one, so out[BT, OC] = inp[BT, C] @ W[OC, C]^T is, column-major,
// out^T (OC x BT) = W^T-as-stored-transposed @ inp-as-stored; each call below spells it out.
//   matmul_forward_cuda:  out = inp @ W^T + bias          (epilogue BIAS)
//                         or out = gelu(inp @ W^T + bias) with the pre-GELU values saved to
//                         pre_gelu                        (epilogue GELU_AUX_BIAS)
//   matmul_backward_cuda: dinp = dout @ W (written, not accumulated), or with pre_gelu,
//                         dinp = gelu'(pre_gelu) * (dout @ W) (epilogue DGELU);
//                         dweight += dout^T @ inp (fp32, beta = 1: gradient accumulation);
//                         dbias += column sums of dout (own deterministic kernel, fp32)
// Precision: floatX inputs, fp32 accumulation (CUBLAS_COMPUTE_32F: true fp32 in the FP32
// build, no TF32), floatX activations out, fp32 weight gradients out. Deterministic for a given
// GPU and shape (cuBLASLt's split-K schemes reduce in a fixed order).
// cuBLASLt's GELU is GPT-2's tanh approximation (llm.c checks its fused path against the same
// C reference); test_gpt.cu checks the fused path against the plain kernels (--gelu-fusion).
#include "cuda_common.h"

#define CUBLASLT_WORKSPACE_BYTES (32u << 20)
static cublasLtHandle_t cublaslt_handle = NULL;
static void* cublaslt_workspace = NULL;

// A matmul problem as cuBLASLt's heuristic sees it: the shapes, types, epilogue and the pointer
// alignments it may assume (zero-initialized before filling: compared with memcmp)
typedef struct {
    int m, n, k, transA, transB, lda, ldb, ldd, ldaux;
    int d_type, epilogue, has_bias, has_aux;
    uint32_t al_a, al_b, al_d, al_bias, al_aux;
} MatmulKey;

// Its descriptors, layouts and chosen algorithm, made once and reused for every later call with
// the same key: the heuristic query and the creation of the descriptors cost tens of
// microseconds of host time per call, about as long as a small matmul itself. Per call only the
// bias and aux pointers are set (host-side attribute writes). A step of GPT-2 has a few dozen
// distinct keys; past MATMUL_PLANS the oldest plan is replaced.
typedef struct {
    int used;
    MatmulKey key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
} MatmulPlan;
#define MATMUL_PLANS 128
typedef struct {
    MatmulPlan plans[MATMUL_PLANS];
    int next;                      // the slot the next new plan takes (round robin)
    unsigned long long made, reused;
} MatmulPlanCache;
static MatmulPlanCache matmul_plan_cache;

static void matmul_plan_destroy(MatmulPlan* p) {
    if (!p->used) { return; }
    cublasCheck(cublasLtMatrixLayoutDestroy(p->la));
    cublasCheck(cublasLtMatrixLayoutDestroy(p->lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(p->ld));
    cublasCheck(cublasLtMatmulDescDestroy(p->desc));
    p->used = 0;
}

static void matmul_cuda_init(void) {
    if (cublaslt_handle != NULL) { return; }
    cublasCheck(cublasLtCreate(&cublaslt_handle));
    cublaslt_workspace = cuda_malloc_check(CUBLASLT_WORKSPACE_BYTES, "cuBLASLt workspace");
}

static void matmul_cuda_free(void) {
    if (cublaslt_handle == NULL) { return; }
    for (int i = 0; i < MATMUL_PLANS; i++) { matmul_plan_destroy(&matmul_plan_cache.plans[i]); }
    matmul_plan_cache.next = 0;
    cublasCheck(cublasLtDestroy(cublaslt_handle));
    cudaCheck(cudaFree(cublaslt_workspace));
    cublaslt_handle = NULL;
    cublaslt_workspace = NULL;
}

// largest power of two dividing the address, capped at 256: what the heuristic may assume
static uint32_t matmul_alignment(const void* p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && (a % al) != 0) { al >>= 1; }
    return al;
}

// a new plan for key into p: descriptors, layouts, and the heuristic's first algorithm
static void matmul_plan_make(MatmulPlan* p, const MatmulKey* key, const floatX* bias, void* aux, float beta) {
    p->key = *key;
    cublasCheck(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opA = key->transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opB = key->transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtEpilogue_t epilogue = (cublasLtEpilogue_t)key->epilogue;
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)));
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)));
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    if (bias != NULL) {
        cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
        cudaDataType_t bias_type = CUBLAS_FLOATX;
        cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
    }
    if (aux != NULL) {
        int64_t ld = key->ldaux;
        int32_t aux_type = CUBLAS_FLOATX;
        cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
        cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)));
        cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &aux_type, sizeof(aux_type)));
    }
    // layouts describe the matrices as stored (before op)
    int m = key->m, n = key->n, k = key->k;
    cudaDataType_t d_type = (cudaDataType_t)key->d_type;
    cublasCheck(cublasLtMatrixLayoutCreate(&p->la, CUBLAS_FLOATX, key->transA ? k : m, key->transA ? m : k, key->lda));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->lb, CUBLAS_FLOATX, key->transB ? n : k, key->transB ? k : n, key->ldb));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->ld, d_type, m, n, key->ldd));

    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = CUBLASLT_WORKSPACE_BYTES;
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    // the default assumes 256-byte aligned pointers; ours point inside big buffers
    uint32_t al_a = key->al_a, al_b = key->al_b, al_d = key->al_d;
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof(al_d)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof(al_d)));

    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    // no algorithm is reported as CUBLAS_STATUS_NOT_SUPPORTED (not only as found == 0): say which call
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(cublaslt_handle, p->desc, p->la, p->lb, p->ld, p->ld, pref, 1, &heur, &found);
    if (hs != CUBLAS_STATUS_SUCCESS || found == 0) {
        fprintf(stderr, "error: cuBLASLt has no algorithm (%s) for m=%d n=%d k=%d transA=%d transB=%d lda=%d ldb=%d "
                "ldd=%d d_type=%d beta=%g epilogue=%d bias=%p aux=%p ldaux=%d, alignments A=%u B=%u D=%u (%s)\n",
                cublasLtGetStatusName(hs), m, n, k, key->transA, key->transB, key->lda, key->ldb, key->ldd, key->d_type,
                beta, key->epilogue, (const void*)bias, aux, key->ldaux, al_a, al_b, al_d, PRECISION_NAME);
        exit(EXIT_FAILURE);
    }
    cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
    p->algo = heur.algo;
    p->used = 1;
}

// D (m x n, column-major, ldd) = alpha * op(A) @ op(B) (+ beta * D), with an epilogue.
// A is m x k after op, B is k x n after op; a, b are floatX; d is floatX or fp32 (d_type).
// (alpha != 1: LoRA's scale s, applied in the fp32 accumulator instead of by another kernel)
static void matmul_cublaslt_scaled(void* d, cudaDataType_t d_type, const floatX* a, const floatX* b,
                                   int m, int n, int k, int transA, int transB, int lda, int ldb, int ldd,
                                   float alpha, float beta, cublasLtEpilogue_t epilogue, const floatX* bias,
                                   void* aux, int ldaux, cudaStream_t stream) {
    if (cublaslt_handle == NULL) { fprintf(stderr, "error: matmul_cuda_init() was not called\n"); exit(EXIT_FAILURE); }
    MatmulKey key;
    memset(&key, 0, sizeof(key));
    key.m = m; key.n = n; key.k = k; key.transA = transA; key.transB = transB;
    key.lda = lda; key.ldb = ldb; key.ldd = ldd; key.ldaux = aux != NULL ? ldaux : 0;
    key.d_type = (int)d_type; key.epilogue = (int)epilogue;
    key.has_bias = bias != NULL; key.has_aux = aux != NULL;
    key.al_a = matmul_alignment(a); key.al_b = matmul_alignment(b); key.al_d = matmul_alignment(d);
    key.al_bias = bias != NULL ? matmul_alignment(bias) : 0;
    key.al_aux = aux != NULL ? matmul_alignment(aux) : 0;
    MatmulPlanCache* cache = &matmul_plan_cache;
    MatmulPlan* p = NULL;
    for (int i = 0; i < MATMUL_PLANS; i++) {
        if (cache->plans[i].used && memcmp(&cache->plans[i].key, &key, sizeof(key)) == 0) { p = &cache->plans[i]; break; }
    }
    if (p == NULL) {
        p = &cache->plans[cache->next];
        cache->next = (cache->next + 1) % MATMUL_PLANS;
        matmul_plan_destroy(p);
        matmul_plan_make(p, &key, bias, aux, beta);
        cache->made++;
    } else {
        // the same problem at other addresses: only the epilogue's pointers change
        if (bias != NULL) {
            cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
        }
        if (aux != NULL) {
            cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
        }
        cache->reused++;
    }
    cublasCheck(cublasLtMatmul(cublaslt_handle, p->desc, &alpha, a, p->la, b, p->lb, &beta, d, p->ld, d, p->ld,
                               &p->algo, cublaslt_workspace, CUBLASLT_WORKSPACE_BYTES, stream));
}

static void matmul_cublaslt(void* d, cudaDataType_t d_type, const floatX* a, const floatX* b,
                            int m, int n, int k, int transA, int transB, int lda, int ldb, int ldd,
                            float beta, cublasLtEpilogue_t epilogue, const floatX* bias,
                            void* aux, int ldaux, cudaStream_t stream) {
    matmul_cublaslt_scaled(d, d_type, a, b, m, n, k, transA, transB, lda, ldb, ldd, 1.0f, beta, epilogue, bias,
                           aux, ldaux, stream);
}

// out (BT, OC) = inp (BT, C) @ weight (OC, C)^T + bias; bias may be NULL.
// pre_gelu != NULL: out = gelu(...) and pre_gelu (BT, OC) receives the values before the GELU.
static void matmul_forward_cuda(floatX* out, const floatX* inp, const floatX* weight, const floatX* bias,
                                int BT, int C, int OC, floatX* pre_gelu, cudaStream_t stream) {
    cublasLtEpilogue_t ep;
    if (pre_gelu != NULL) { ep = bias != NULL ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX; }
    else { ep = bias != NULL ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT; }
    // column-major: out^T (OC x BT) = [W as stored: C x OC]^T @ [inp as stored: C x BT]
    matmul_cublaslt(out, CUBLAS_FLOATX, weight, inp, OC, BT, C, 1, 0, C, C, OC, 0.0f, ep, bias,
                    pre_gelu, OC, stream);
}

// scratch: colsum_scratch_floats(BT, OC) floats (for dbias); dbias may be NULL.
// pre_gelu != NULL: the matmul's input went through GELU (inp = gelu(pre_gelu)) and dinp
// receives the gradient with respect to pre_gelu instead (DGELU epilogue).
static void matmul_backward_cuda(floatX* dinp, float* dweight, float* dbias, const floatX* dout,
                                 const floatX* inp, const floatX* weight, int BT, int C, int OC,
                                 const floatX* pre_gelu, float* scratch, cudaStream_t stream) {
    // dinp^T (C x BT) = [W as stored: C x OC] @ [dout as stored: OC x BT]
    matmul_cublaslt(dinp, CUBLAS_FLOATX, weight, dout, C, BT, OC, 0, 0, C, OC, C, 0.0f,
                    pre_gelu != NULL ? CUBLASLT_EPILOGUE_DGELU : CUBLASLT_EPILOGUE_DEFAULT, NULL,
                    (void*)pre_gelu, C, stream);
    // dweight^T (C x OC) += [inp as stored: C x BT] @ [dout as stored: OC x BT]^T
    // (NULL: a frozen weight, as in parameter-efficient fine-tuning)
    if (dweight != NULL) {
        matmul_cublaslt(dweight, CUDA_R_32F, inp, dout, C, OC, BT, 0, 1, C, OC, C, 1.0f,
                        CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, stream);
    }
    if (dbias != NULL) { colsum_accumulate_cuda(dbias, dout, BT, OC, scratch, stream); }
}

#endif // __CUDACC__

#endif // LLMC_MATMUL_H

// Weight-only quantization for inference: int8 per output channel, int4 group-wise, and the
// matmul that reads the quantized weights directly.
//
// INTERFACE (fixed: dev/infer/generate.c is written against it)
//
// A QuantMatrix is one weight matrix W (rows = OC output channels, cols = C inputs, row-major,
// the layout of our matmul weights: out[bt, o] = sum_c inp[bt, c] * W[o, c] + bias[o]).
//   QUANT_F32:  W kept as fp32; f points at it (borrowed, not owned).
//   QUANT_INT8: one scale per row: W[o, c] ~ scales[o] * q[o * cols + c], q in [-127, 127].
//   QUANT_INT4: groups of `group` consecutive values along a row (the last group of a row may
//               be shorter when cols % group != 0), one scale per group:
//               W[o, c] ~ scales[o * ngroups + c / group] * v, v in [-8, 7] (or [-7, 7], see the
//               implementation's comment), stored two per byte.
// quant_matmul_forward: out[BT, OC] = inp[BT, C] @ W^T + bias (bias may be NULL), reading the
// quantized values directly (no dequantized copy of the matrix is ever made).
#ifndef LLMC_QUANT_H
#define LLMC_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "llmc/utils.h"
#include "llmc/checkpoint.h"
#include "llmc/matmul.h"

enum { QUANT_F32 = 0, QUANT_INT8 = 1, QUANT_INT4 = 2 };

typedef struct {
    int kind;        // QUANT_F32, QUANT_INT8, QUANT_INT4
    int rows, cols;  // OC, C
    int group;       // int4: values per scale along a row; int8: cols; f32: 0
    const float* f;  // QUANT_F32 only (borrowed)
    uint8_t* q;      // int8: rows * cols bytes (int8_t); int4: packed nibbles (layout: implementation)
    float* scales;   // int8: rows; int4: rows * ngroups
} QuantMatrix;

// A model for inference: the fp32 small tensors and the four matmul weights of each layer as
// QuantMatrix; the token embedding doubles as the LM head (tied), quantized or not.
typedef struct {
    GPT2Config config;
    int kind, group;       // the matmul weights' quantization (QUANT_*), int4 group size
    int head_kind;         // the embedding / LM head: QUANT_F32 or the same as kind
    const float *wpe, *ln1w, *ln1b, *qkvb, *attprojb, *ln2w, *ln2b, *fcb, *fcprojb, *lnfw, *lnfb;
    QuantMatrix wte;       // (Vp, C): the embedding rows and the LM head
    QuantMatrix* qkvw;     // L matrices (3C, C)
    QuantMatrix* attprojw; // L (C, C)
    QuantMatrix* fcw;      // L (4C, C)
    QuantMatrix* fcprojw;  // L (C, 4C)
    void* memory;          // what the model owns (freed by quant_model_free)
    float* params;         // when built over an fp32 parameter array that it owns, else NULL
} QuantModel;

// =============================================================================================
// IMPLEMENTATION (everything below the fixed structs above)
//
// Conventions
//   int8  scales[o] = max_c |W[o, c]| / 127 (the quotient rounded to fp32), q = W / scale rounded
//         to the nearest integer (ties to even; the quotient taken in double), clamped to
//         [-127, 127]. -128 is never produced (and the reader refuses it). group = cols.
//   int4  symmetric, values v in [-7, 7]: scale = max |W| over the group / 7, v = W / scale
//         rounded as for int8. (Not llama.cpp's Q4_0, scale = the max-magnitude value / -8 and
//         v in [-8, 7]: that buys a 16th level, but where a group reaches the maximum magnitude
//         with both signs the opposite extreme is clamped from +8 to +7, an error of a whole
//         scale. With [-7, 7] every element is within scale / 2.)
//         group: a multiple of 32 (32, 64, 128, ...) so that a packed block of 32 values never
//         straddles two groups; cols need not be a multiple of it (the last group of a row is
//         then cols % group wide), and it may exceed cols (then one group per row).
//         Packing: a row is ceil(cols / 32) blocks of 16 bytes (quant_row_bytes); in block b,
//         byte j holds element 32b + j in its low nibble and element 32b + 16 + j in its high
//         nibble (llama.cpp's order inside a Q4_0 block), each stored as v + 8 (1..15). Elements
//         past cols are padding, stored as 8 (v = 0). Row o starts at q + o * quant_row_bytes.
//   both  A row (int8) or group (int4) of zeros gets scale 0 and q = 0: exact zeros back, no NaN.
//         A row whose max |W| is so small that max / 127 underflows to 0 (below ~1.8e-43) is
//         stored the same way. W must be finite: quant_matrix_quantize dies on a NaN or an
//         infinity (quant_model_from_params checks first and returns an error naming the tensor).
//         Dequantized value: deq = scale * (float)v, one fp32 product (quant_matrix_dequantize).
//         Error bound, per element: |W - deq| <= scale / 2 + 2^-24 |deq| (nearest level, then the
//         fp32 rounding of the product).
//   fp32  the matrix borrows W (f); q and scales are NULL, group 0.
//   Ownership: an int8/int4 QuantMatrix owns q and scales (quant_matrix_free frees them); an
//   fp32 one never owns f.
//
// quant_matmul_forward(out, inp, w, bias, BT, C, OC): out[BT, OC] = inp @ W^T + bias.
//   Reference, quant_matmul_forward_ref: out = fl32(bias[o] + sum_c inp[bt, c] * deq[o, c]) with
//   deq = quant_matrix_dequantize's fp32 values, the products and the sum in double (the
//   products of two floats are exact in double; the sum's error is ~C * 1e-16 relative), so it
//   is the correctly rounded result to about 1e-12. One thread, obvious loops, slow.
//   Fast path (AVX-512F/BW/VL, this machine): fp32 activations times the dequantized weights
//   in fp32 FMAs. No activation quantization (no VNNI dpbusd as in llama.cpp's Q8_0 dot): the
//   error is the weights' alone, which is what "weight-only" is meant to measure. Each weight
//   byte is read once per call and widened in registers:
//     int8  vpmovsxbd + vcvtdq2ps, sum_c x * q in fp32, times the row's scale at the end (one
//           multiply per output rather than per weight);
//     int4  vpmovzxbd, then vpermps with the nibble as index into the 16 levels scale * (n - 8)
//           of the group (built once per group): exactly quant_matrix_dequantize's values;
//     fp32  a plain load (llmc/matmul.h's matmul_forward packs panels: wasted work at BT = 1).
//   Tiles of QUANT_TILE_R weight rows x up to QUANT_TILE_B input rows: each widened weight
//   vector feeds up to 4 input rows, so a batch of BT <= 4 costs about one pass over the weights.
//   Every output has one 16-lane accumulator: lane j sums the columns c = j (mod 16) in order
//   (the last partial vector masked), then a fixed horizontal sum, then (int8) the scale, then
//   the bias. int8/int4 tiles prefetch the tile QUANT_PF_TILES ahead in software, one cache
//   line per vector step: the hardware prefetcher alone left int8 and int4 at half of fp32's
//   GB/s from DRAM / L3 (6 vs 13 GB/s on one core; 11 GB/s with it).
//   Portable fallback (no AVX-512): the row dequantized into a buffer, a 16-lane dot per input.
//   Long prompts, BT > QUANT_GEMV_MAX_BT (64): compute-bound, where llmc/matmul.h's blocked GEMM
//   wins (measured on 3072 x 768: the tiles are faster up to BT = 64, the GEMM from 128). fp32
//   calls matmul_forward; int8/int4 dequantize QUANT_DEQ_ROWS rows at a time into a scratch
//   block (a few MB, never the whole matrix) and run gemm on it, as fast as fp32 there.
//   Precision: fast and reference differ by rounding only. For ANY summation order,
//       |fast - ref| <= gamma(C + 10) * (|bias[o]| + sum_c |inp[bt, c] * deq[o, c]|),
//       gamma(n) = n u / (1 - n u), u = 2^-24,
//   since every product passes through at most C - 1 additions plus: its own rounding, the
//   scale (int8: scale * sum(x q) instead of sum(x * fl(scale q)), 2 roundings), the bias and the
//   final roundings of both results. dev/infer/test_quant checks this bound on random data, and
//   bitwise equality where every intermediate is exact (small integers, power-of-two scales),
//   which catches any element dropped, doubled or misplaced.
//   Determinism: each output element is computed by one thread, by the same operations whatever
//   the thread count (gemm too: llmc/matmul.h), so results are bitwise the same with 1 or 64
//   threads. Up to BT = QUANT_GEMV_MAX_BT an output also does not depend on the tile it falls in
//   or on the other rows of the batch: row bt of a batch is bitwise the row computed alone (a
//   matmul over up to 64 prompt tokens gives the rows of one token at a time). The AVX-512 and portable builds differ in the last bits.
//   OpenMP splits the output rows (OC) in contiguous blocks; no reductions across threads.
//
// QuantModel: quant_model_from_params quantizes an llm.c fp32 parameter array (checkpoint
//   order), keeping pointers into it for every fp32 tensor (it must outlive the model);
//   quant_model_dequantize writes an llm.c fp32 parameter array back (for a plain checkpoint:
//   train_gpt can then evaluate a quantized model); quant_model_write / quant_model_read are the
//   quantized checkpoint file; quant_model_load takes either kind of file.
//
// Quantized checkpoint file (version 1), little-endian:
//   header: 256 x int32
//     [0] 20261204 (QUANT_MAGIC)  [1] 1 (version)
//     [2] maxT [3] V [4] L [5] NH [6] C [7] Vp       (the positions of llmc/checkpoint.h's header)
//     [8] kind of the four weight matrices  [9] int4 group (0 unless kind is int4)
//     [10] head_kind: of wte (embedding and LM head), 0 (fp32) or the same as kind
//     [11] [12] the file's total size in bytes, low and high 32 bits
//     [13..255] 0
//   then the tensors in llm.c's checkpoint order: wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw,
//   attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw, lnfb, where
//     a plain tensor (wpe, the LayerNorms, the biases) is its fp32 values, as in a v3 checkpoint;
//     a matrix tensor is its matrices one after the other (wte: one (Vp, C); qkvw: L (3C, C);
//     attprojw: L (C, C); fcw: L (4C, C); fcprojw: L (C, 4C)), each
//       fp32: rows * cols floats (so an all-fp32 file's payload is byte for byte a v3 one's)
//       int8: rows float scales, then rows * cols int8 values
//       int4: rows * ngroups float scales (row-major), then rows * quant_row_bytes packed bytes.
//   No padding anywhere: the size follows from the header (quant_model_file_bytes).
//   The reader checks the magic, the version, the shape (gpt2_config_validate), the kinds and the
//   group, the reserved words, the recorded and the actual file size against the computed one,
//   every fp32 value and every scale finite (scales >= 0), every int8 in [-127, 127], every
//   nibble in 1..15 and the padding nibbles 8; it fails with one message naming the file and
//   what is wrong, and frees everything. An llm.c checkpoint (magic 20240326) is refused with a
//   message saying to use it as a plain checkpoint: quant_model_load (and checkpoint_read) take it.
//   The writer writes a temp file, fsyncs and renames (llmc/utils.h's atomic_*).

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define QUANT_AVX512 1
#endif

#define QUANT_MAGIC 20261204
#define QUANT_VERSION 1
#define QUANT_BLOCK 32                 // int4 values per packed block (16 bytes)
#define QUANT_GROUP_MAX (1 << 20)      // int4 group: a multiple of QUANT_BLOCK up to this
#ifndef QUANT_GEMV_MAX_BT
#define QUANT_GEMV_MAX_BT 64           // the tiles up to this batch, the blocked GEMM above (see the top)
#endif
#define QUANT_TILE_R 4                 // weight rows per tile
#define QUANT_TILE_B 4                 // input rows per tile
#define QUANT_PARALLEL_MIN_WORK (1 << 17)  // multiply-adds below which one thread does it all
#define QUANT_DEQ_ROWS 384             // BT > QUANT_GEMV_MAX_BT (int8/int4): rows dequantized per GEMM
#ifndef QUANT_PF_TILES
#define QUANT_PF_TILES 4                   // software prefetch distance, in tiles (int8/int4)
#endif
#ifndef QUANT_PF_HINT
#define QUANT_PF_HINT _MM_HINT_T0
#endif

static const char* quant_kind_name(int kind) {
    return kind == QUANT_F32 ? "fp32" : kind == QUANT_INT8 ? "int8" : kind == QUANT_INT4 ? "int4" : "unknown";
}

// "fp32" / "int8" / "int4" -> QUANT_*, or -1
static int quant_kind_from_name(const char* name) {
    if (strcmp(name, "fp32") == 0) { return QUANT_F32; }
    if (strcmp(name, "int8") == 0) { return QUANT_INT8; }
    if (strcmp(name, "int4") == 0) { return QUANT_INT4; }
    return -1;
}

static int quant_group_valid(int group) {
    return group >= QUANT_BLOCK && group <= QUANT_GROUP_MAX && group % QUANT_BLOCK == 0;
}

static inline int quant_ngroups(int cols, int group) { return (cols + group - 1) / group; }

// bytes of one row of q: int8 cols, int4 ceil(cols / 32) * 16, fp32 0 (no q)
static inline size_t quant_row_bytes(int kind, int cols) {
    if (kind == QUANT_INT8) { return (size_t)cols; }
    if (kind == QUANT_INT4) { return (size_t)((cols + QUANT_BLOCK - 1) / QUANT_BLOCK) * (QUANT_BLOCK / 2); }
    return 0;
}

static inline size_t quant_matrix_num_scales(const QuantMatrix* m) {
    if (m->kind == QUANT_INT8) { return (size_t)m->rows; }
    if (m->kind == QUANT_INT4) { return (size_t)m->rows * quant_ngroups(m->cols, m->group); }
    return 0;
}

static inline size_t quant_matrix_q_bytes(const QuantMatrix* m) {
    return (size_t)m->rows * quant_row_bytes(m->kind, m->cols);
}

// bytes a matrix takes in the file (and, but for the fp32 case, in memory)
static size_t quant_matrix_file_bytes(int kind, int rows, int cols, int group) {
    size_t r = (size_t)rows, c = (size_t)cols;
    if (kind == QUANT_INT8) { return 4 * r + r * c; }
    if (kind == QUANT_INT4) { return 4 * r * (size_t)quant_ngroups(cols, group) + r * quant_row_bytes(kind, cols); }
    return 4 * r * c;
}

// ---------------------------------------------------------------------------------------------
// One matrix: quantize, free, dequantize.

static void quant_matrix_quantize(QuantMatrix* m, const float* W, int rows, int cols, int kind, int group) {
    memset(m, 0, sizeof(*m));
    if (rows <= 0 || cols <= 0) { die("quant_matrix_quantize: bad shape %d x %d", rows, cols); }
    if (kind != QUANT_F32 && kind != QUANT_INT8 && kind != QUANT_INT4) { die("quant_matrix_quantize: unknown kind %d", kind); }
    m->kind = kind;
    m->rows = rows;
    m->cols = cols;
    if (kind == QUANT_F32) { m->f = W; return; }
    if (kind == QUANT_INT4 && !quant_group_valid(group)) {
        die("quant_matrix_quantize: int4 group %d: must be a multiple of %d in [%d, %d]", group, QUANT_BLOCK, QUANT_BLOCK, QUANT_GROUP_MAX);
    }
    m->group = kind == QUANT_INT8 ? cols : group;
    size_t n = (size_t)rows * cols;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(W[i])) {
            die("quant_matrix_quantize: W[%zu][%zu] is %g: cannot quantize a non-finite weight", i / cols, i % cols, W[i]);
        }
    }
    const int ng = quant_ngroups(cols, m->group);
    const int gs = m->group;
    const size_t rb = quant_row_bytes(kind, cols);
    const double qmax = kind == QUANT_INT8 ? 127.0 : 7.0;
    m->scales = float_alloc_check((size_t)rows * ng, "quantization scales");
    m->q = (uint8_t*)malloc_check((size_t)rows * rb, "quantized weights");
    uint8_t* q = m->q;
    float* scales = m->scales;
    // rows are independent: any thread count gives the same bytes
    #pragma omp parallel for schedule(static) if (n >= ((size_t)1 << 18))
    for (int r = 0; r < rows; r++) {
        const float* w = W + (size_t)r * cols;
        uint8_t* qr = q + (size_t)r * rb;
        if (kind == QUANT_INT4) { memset(qr, 0x88, rb); }  // padding nibbles: v = 0
        for (int g = 0; g < ng; g++) {
            int c0 = g * gs, c1 = c0 + gs < cols ? c0 + gs : cols;
            float amax = 0.0f;
            for (int c = c0; c < c1; c++) { float a = fabsf(w[c]); if (a > amax) { amax = a; } }
            float scale = (float)((double)amax / qmax);
            scales[(size_t)r * ng + g] = scale;
            for (int c = c0; c < c1; c++) {
                int v = 0;
                if (scale > 0.0f) {
                    double t = nearbyint((double)w[c] / (double)scale);
                    v = t > qmax ? (int)qmax : t < -qmax ? -(int)qmax : (int)t;
                }
                if (kind == QUANT_INT8) {
                    qr[c] = (uint8_t)(int8_t)v;
                } else {
                    size_t k = (size_t)(c / QUANT_BLOCK) * (QUANT_BLOCK / 2) + (c % (QUANT_BLOCK / 2));
                    uint8_t nib = (uint8_t)(v + 8);
                    if (c % QUANT_BLOCK < QUANT_BLOCK / 2) { qr[k] = (uint8_t)((qr[k] & 0xF0) | nib); }
                    else { qr[k] = (uint8_t)((qr[k] & 0x0F) | (nib << 4)); }
                }
            }
        }
    }
}

static void quant_matrix_free(QuantMatrix* m) {
    if (m->kind != QUANT_F32) { free(m->q); free(m->scales); }
    memset(m, 0, sizeof(*m));
}

// out[0..cols) = row `row` of W as fp32 (an embedding lookup when W is the token table)
static void quant_matrix_dequantize_row(const QuantMatrix* m, int row, float* out) {
    const int cols = m->cols;
    if (m->kind == QUANT_F32) {
        memcpy(out, m->f + (size_t)row * cols, (size_t)cols * sizeof(float));
    } else if (m->kind == QUANT_INT8) {
        const int8_t* q = (const int8_t*)m->q + (size_t)row * cols;
        const float s = m->scales[row];
        for (int c = 0; c < cols; c++) { out[c] = s * (float)q[c]; }
    } else {
        const int ng = quant_ngroups(cols, m->group);
        const uint8_t* q = m->q + (size_t)row * quant_row_bytes(QUANT_INT4, cols);
        const float* sc = m->scales + (size_t)row * ng;
        // block by block (a block never straddles two groups); whole blocks vectorize
        for (int c0 = 0; c0 < cols; c0 += QUANT_BLOCK) {
            const uint8_t* b = q + c0 / 2;
            const float s = sc[c0 / m->group];
            if (c0 + QUANT_BLOCK <= cols) {
                for (int j = 0; j < 16; j++) {
                    out[c0 + j] = s * (float)((b[j] & 0x0F) - 8);
                    out[c0 + 16 + j] = s * (float)((b[j] >> 4) - 8);
                }
            } else {
                for (int c = c0; c < cols; c++) {
                    int j = (c - c0) % 16;
                    int nib = c - c0 < 16 ? (b[j] & 0x0F) : (b[j] >> 4);
                    out[c] = s * (float)(nib - 8);
                }
            }
        }
    }
}

// W[rows, cols] = the whole matrix as fp32
static void quant_matrix_dequantize(const QuantMatrix* m, float* W) {
    #pragma omp parallel for schedule(static) if ((size_t)m->rows * m->cols >= ((size_t)1 << 18))
    for (int r = 0; r < m->rows; r++) { quant_matrix_dequantize_row(m, r, W + (size_t)r * m->cols); }
}

static void quant_check_shape(const QuantMatrix* w, int BT, int C, int OC, const char* where) {
    if (w->rows != OC || w->cols != C || BT < 0) {
        die("%s: the weight matrix is %d x %d (OC x C), the call says OC=%d C=%d (BT=%d)", where, w->rows, w->cols, OC, C, BT);
    }
}

// ---------------------------------------------------------------------------------------------
// The matmul. Reference first.

static void quant_matmul_forward_ref(float* out, const float* inp, const QuantMatrix* w, const float* bias,
                                     int BT, int C, int OC) {
    quant_check_shape(w, BT, C, OC, "quant_matmul_forward_ref");
    float* row = float_alloc_check((size_t)C, "a dequantized row");
    for (int o = 0; o < OC; o++) {
        quant_matrix_dequantize_row(w, o, row);
        for (int bt = 0; bt < BT; bt++) {
            const float* x = inp + (size_t)bt * C;
            double s = bias != NULL ? (double)bias[o] : 0.0;
            for (int c = 0; c < C; c++) { s += (double)x[c] * (double)row[c]; }
            out[(size_t)bt * OC + o] = (float)s;
        }
    }
    free(row);
}

#ifdef QUANT_AVX512
// ---------------------------------------------------------------------------------------------
// AVX-512 tiles: R weight rows (o..o+R) x NB input rows (bt..bt+NB), R and NB compile-time
// constants after inlining (the wrappers below), so acc[][] lives in zmm registers.

static inline __mmask16 quant_mask16(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

// out[bt + b, o + r] = hsum(acc[r][b]) (* scale[o + r]) (+ bias[o + r])
static inline __attribute__((always_inline)) void
quant_tile_store(float* out, int OC, const float* bias, const float* scales, int o, int bt,
                 __m512 acc[QUANT_TILE_R][QUANT_TILE_B], const int R, const int NB) {
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        #pragma GCC unroll 4
        for (int b = 0; b < NB; b++) {
            float v = _mm512_reduce_add_ps(acc[r][b]);
            if (scales != NULL) { v *= scales[o + r]; }
            if (bias != NULL) { v += bias[o + r]; }
            out[(size_t)(bt + b) * OC + o + r] = v;
        }
    }
}

static inline __attribute__((always_inline)) void
quant_tile_f32(float* out, const float* inp, const QuantMatrix* w, const float* bias, int C, int OC,
               int o, int bt, const int R, const int NB, const char* pf) {
    (void)pf;
    __m512 acc[QUANT_TILE_R][QUANT_TILE_B];
    const float* wr[QUANT_TILE_R];
    const float* xr[QUANT_TILE_B];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        wr[r] = w->f + (size_t)(o + r) * C;
        #pragma GCC unroll 4
        for (int b = 0; b < NB; b++) { acc[r][b] = _mm512_setzero_ps(); }
    }
    #pragma GCC unroll 4
    for (int b = 0; b < NB; b++) { xr[b] = inp + (size_t)(bt + b) * C; }
    int c = 0;
    for (; c + 16 <= C; c += 16) {
        __m512 x[QUANT_TILE_B];
        #pragma GCC unroll 4
        for (int b = 0; b < NB; b++) { x[b] = _mm512_loadu_ps(xr[b] + c); }
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 wv = _mm512_loadu_ps(wr[r] + c);
            #pragma GCC unroll 4
            for (int b = 0; b < NB; b++) { acc[r][b] = _mm512_fmadd_ps(x[b], wv, acc[r][b]); }
        }
    }
    if (c < C) {  // the last partial vector: masked loads, zeros in the other lanes
        __mmask16 k = quant_mask16(C - c);
        __m512 x[QUANT_TILE_B];
        #pragma GCC unroll 4
        for (int b = 0; b < NB; b++) { x[b] = _mm512_maskz_loadu_ps(k, xr[b] + c); }
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 wv = _mm512_maskz_loadu_ps(k, wr[r] + c);
            #pragma GCC unroll 4
            for (int b = 0; b < NB; b++) { acc[r][b] = _mm512_fmadd_ps(x[b], wv, acc[r][b]); }
        }
    }
    quant_tile_store(out, OC, bias, NULL, o, bt, acc, R, NB);
}

static inline __attribute__((always_inline)) void
quant_tile_int8(float* out, const float* inp, const QuantMatrix* w, const float* bias, int C, int OC,
                int o, int bt, const int R, const int NB, const char* pf) {
    __m512 acc[QUANT_TILE_R][QUANT_TILE_B];
    const int8_t* wr[QUANT_TILE_R];
    const float* xr[QUANT_TILE_B];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        wr[r] = (const int8_t*)w->q + (size_t)(o + r) * C;
        #pragma GCC unroll 4
        for (int b = 0; b < NB; b++) { acc[r][b] = _mm512_setzero_ps(); }
    }
    #pragma GCC unroll 4
    for (int b = 0; b < NB; b++) { xr[b] = inp + (size_t)(bt + b) * C; }
    int c = 0;
    for (; c + 16 <= C; c += 16) {
        if (pf != NULL) { _mm_prefetch(pf + 4 * c, QUANT_PF_HINT); }
        __m512 x[QUANT_TILE_B];
        #pragma GCC unroll 4
        for (int b = 0; b < NB; b++) { x[b] = _mm512_loadu_ps(xr[b] + c); }
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m128i q8 = _mm_loadu_si128((const __m128i*)(wr[r] + c));
            __m512 wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q8));
            #pragma GCC unroll 4
            for (int b = 0; b < NB; b++) { acc[r][b] = _mm512_fmadd_ps(x[b], wv, acc[r][b]); }
        }
    }
    if (c < C) {
        __mmask16 k = quant_mask16(C - c);
        __m512 x[QUANT_TILE_B];
        #pragma GCC unroll 4
        for (int b = 0; b < NB; b++) { x[b] = _mm512_maskz_loadu_ps(k, xr[b] + c); }
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m128i q8 = _mm_maskz_loadu_epi8(k, wr[r] + c);  // no read past the row's end
            __m512 wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q8));
            #pragma GCC unroll 4
            for (int b = 0; b < NB; b++) { acc[r][b] = _mm512_fmadd_ps(x[b], wv, acc[r][b]); }
        }
    }
    quant_tile_store(out, OC, bias, w->scales, o, bt, acc, R, NB);
}

static inline __attribute__((always_inline)) void
quant_tile_int4(float* out, const float* inp, const QuantMatrix* w, const float* bias, int C, int OC,
                int o, int bt, const int R, const int NB, const char* pf) {
    // the 16 levels n - 8 of a nibble n; times a group's scale they are its dequantized values
    const __m512 levels = _mm512_setr_ps(-8.0f, -7.0f, -6.0f, -5.0f, -4.0f, -3.0f, -2.0f, -1.0f,
                                         0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f);
    const int group = w->group;
    const int ng = quant_ngroups(C, group);
    const size_t rb = quant_row_bytes(QUANT_INT4, C);
    __m512 acc[QUANT_TILE_R][QUANT_TILE_B];
    const uint8_t* wr[QUANT_TILE_R];
    const float* sr[QUANT_TILE_R];
    const float* xr[QUANT_TILE_B];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        wr[r] = w->q + (size_t)(o + r) * rb;
        sr[r] = w->scales + (size_t)(o + r) * ng;
        #pragma GCC unroll 4
        for (int b = 0; b < NB; b++) { acc[r][b] = _mm512_setzero_ps(); }
    }
    #pragma GCC unroll 4
    for (int b = 0; b < NB; b++) { xr[b] = inp + (size_t)(bt + b) * C; }
    for (int g = 0; g < ng; g++) {
        __m512 table[QUANT_TILE_R];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) { table[r] = _mm512_mul_ps(levels, _mm512_set1_ps(sr[r][g])); }
        int c1 = (g + 1) * group < C ? (g + 1) * group : C;
        for (int c = g * group; c < c1; c += QUANT_BLOCK) {
            if (pf != NULL) { _mm_prefetch(pf + 2 * c, QUANT_PF_HINT); }
            __m512 xlo[QUANT_TILE_B], xhi[QUANT_TILE_B];
            if (c + QUANT_BLOCK <= C) {
                #pragma GCC unroll 4
                for (int b = 0; b < NB; b++) {
                    xlo[b] = _mm512_loadu_ps(xr[b] + c);
                    xhi[b] = _mm512_loadu_ps(xr[b] + c + 16);
                }
            } else {  // the row's last, partial block: x is zero past C (the padding nibbles are 0 too)
                __mmask16 klo = quant_mask16(C - c), khi = quant_mask16(C - c - 16);
                #pragma GCC unroll 4
                for (int b = 0; b < NB; b++) {
                    xlo[b] = _mm512_maskz_loadu_ps(klo, xr[b] + c);
                    xhi[b] = _mm512_maskz_loadu_ps(khi, xr[b] + c + 16);
                }
            }
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(wr[r] + c / 2)));
                // vpermps reads the low 4 bits of each index: the low nibble as is, the high one shifted
                __m512 wlo = _mm512_permutexvar_ps(idx, table[r]);
                __m512 whi = _mm512_permutexvar_ps(_mm512_srli_epi32(idx, 4), table[r]);
                #pragma GCC unroll 4
                for (int b = 0; b < NB; b++) {
                    acc[r][b] = _mm512_fmadd_ps(xlo[b], wlo, acc[r][b]);
                    acc[r][b] = _mm512_fmadd_ps(xhi[b], whi, acc[r][b]);
                }
            }
        }
    }
    quant_tile_store(out, OC, bias, NULL, o, bt, acc, R, NB);
}

typedef void (*QuantTileFn)(float*, const float*, const QuantMatrix*, const float*, int, int, int, int, const char*);
#define QUANT_TILE_VARIANT(KIND, R, NB) \
    static void quant_tile_##KIND##_##R##x##NB(float* out, const float* inp, const QuantMatrix* w, const float* bias, \
                                                int C, int OC, int o, int bt, const char* pf) { \
        quant_tile_##KIND(out, inp, w, bias, C, OC, o, bt, R, NB, pf); \
    }
#define QUANT_TILE_VARIANTS(KIND) \
    QUANT_TILE_VARIANT(KIND, 1, 1) QUANT_TILE_VARIANT(KIND, 1, 2) QUANT_TILE_VARIANT(KIND, 1, 3) QUANT_TILE_VARIANT(KIND, 1, 4) \
    QUANT_TILE_VARIANT(KIND, 4, 1) QUANT_TILE_VARIANT(KIND, 4, 2) QUANT_TILE_VARIANT(KIND, 4, 3) QUANT_TILE_VARIANT(KIND, 4, 4)
QUANT_TILE_VARIANTS(f32)
QUANT_TILE_VARIANTS(int8)
QUANT_TILE_VARIANTS(int4)
// [kind][R == 4][NB - 1]
static const QuantTileFn quant_tiles[3][2][QUANT_TILE_B] = {
    {{quant_tile_f32_1x1, quant_tile_f32_1x2, quant_tile_f32_1x3, quant_tile_f32_1x4},
     {quant_tile_f32_4x1, quant_tile_f32_4x2, quant_tile_f32_4x3, quant_tile_f32_4x4}},
    {{quant_tile_int8_1x1, quant_tile_int8_1x2, quant_tile_int8_1x3, quant_tile_int8_1x4},
     {quant_tile_int8_4x1, quant_tile_int8_4x2, quant_tile_int8_4x3, quant_tile_int8_4x4}},
    {{quant_tile_int4_1x1, quant_tile_int4_1x2, quant_tile_int4_1x3, quant_tile_int4_1x4},
     {quant_tile_int4_4x1, quant_tile_int4_4x2, quant_tile_int4_4x3, quant_tile_int4_4x4}},
};

// output rows [o0, o1) for every input row (BT <= QUANT_GEMV_MAX_BT); o0 is a multiple of QUANT_TILE_R
static void quant_matmul_rows(float* out, const float* inp, const QuantMatrix* w, const float* bias,
                              int BT, int C, int OC, int o0, int o1) {
    for (int o = o0; o < o1;) {
        int R = o1 - o >= QUANT_TILE_R ? QUANT_TILE_R : 1;
        const QuantTileFn* fns = quant_tiles[w->kind][R == QUANT_TILE_R];
        // the tile QUANT_PF_TILES ahead: one cache line of it per 16 (int8) or 32 (int4) columns
        const char* pf = NULL;
        if (R == QUANT_TILE_R && w->kind != QUANT_F32 && o + (QUANT_PF_TILES + 1) * QUANT_TILE_R <= o1) {
            pf = (const char*)w->q + (size_t)(o + QUANT_PF_TILES * QUANT_TILE_R) * quant_row_bytes(w->kind, C);
        }
        // the R weight rows stay in L1 while the input rows go past them, QUANT_TILE_B at a time
        for (int bt = 0; bt < BT; bt += QUANT_TILE_B) {
            int nb = BT - bt < QUANT_TILE_B ? BT - bt : QUANT_TILE_B;
            fns[nb - 1](out, inp, w, bias, C, OC, o, bt, bt == 0 ? pf : NULL);
        }
        o += R;
    }
}

#else  // !QUANT_AVX512

// ---------------------------------------------------------------------------------------------
// Portable fallback: each row dequantized into a buffer (the reference's values), then a dot
// product with 16 independent lanes (vectorizable without reassociation) per input row.

static float quant_dot16(const float* x, const float* w, int n) {
    float lane[16] = {0};
    int c = 0;
    for (; c + 16 <= n; c += 16) {
        for (int j = 0; j < 16; j++) { lane[j] += x[c + j] * w[c + j]; }
    }
    for (int j = 0; c + j < n; j++) { lane[j] += x[c + j] * w[c + j]; }
    for (int s = 8; s > 0; s /= 2) {
        for (int j = 0; j < s; j++) { lane[j] += lane[j + s]; }
    }
    return lane[0];
}

static void quant_matmul_rows(float* out, const float* inp, const QuantMatrix* w, const float* bias,
                              int BT, int C, int OC, int o0, int o1) {
    float* buf = w->kind == QUANT_F32 ? NULL : float_alloc_check((size_t)C, "a dequantized row");
    for (int o = o0; o < o1; o++) {
        const float* row = w->f != NULL && w->kind == QUANT_F32 ? w->f + (size_t)o * C : buf;
        if (w->kind != QUANT_F32) { quant_matrix_dequantize_row(w, o, buf); }
        for (int bt = 0; bt < BT; bt++) {
            float v = quant_dot16(inp + (size_t)bt * C, row, C);
            if (bias != NULL) { v += bias[o]; }
            out[(size_t)bt * OC + o] = v;
        }
    }
    free(buf);
}

#endif  // QUANT_AVX512

static void quant_matmul_forward(float* out, const float* inp, const QuantMatrix* w, const float* bias,
                                 int BT, int C, int OC) {
    quant_check_shape(w, BT, C, OC, "quant_matmul_forward");
    if (BT == 0) { return; }
    if (w->kind == QUANT_F32 && BT > QUANT_GEMV_MAX_BT) {
        matmul_forward(out, inp, w->f, bias, 1, BT, C, OC);
        return;
    }
    if (BT > QUANT_GEMV_MAX_BT) {
        // a long prompt: compute-bound, where llmc/matmul.h's blocked GEMM beats the GEMV tiles.
        // QUANT_DEQ_ROWS rows at a time are dequantized into a scratch block (never the whole
        // matrix) and multiplied into their columns of out.
        float* block = float_alloc_check((size_t)QUANT_DEQ_ROWS * C, "a dequantized block of rows");
        for (int o0 = 0; o0 < OC; o0 += QUANT_DEQ_ROWS) {
            int n = OC - o0 < QUANT_DEQ_ROWS ? OC - o0 : QUANT_DEQ_ROWS;
            #pragma omp parallel for schedule(static) if ((size_t)n * C >= ((size_t)1 << 16))
            for (int r = 0; r < n; r++) { quant_matrix_dequantize_row(w, o0 + r, block + (size_t)r * C); }
            // out[:, o0:o0+n] = inp[BT, C] @ block[n, C]^T + bias[o0:o0+n]
            gemm(BT, n, C, inp, C, 1, block, 1, C, out + o0, OC, 0, bias != NULL ? bias + o0 : NULL);
        }
        free(block);
        return;
    }
#ifdef _OPENMP
    int nthreads = (double)BT * OC * C >= QUANT_PARALLEL_MIN_WORK ? omp_get_max_threads() : 1;
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        // contiguous blocks of whole tiles; the team may be smaller than asked for
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        long nblk = (OC + QUANT_TILE_R - 1) / QUANT_TILE_R;
        int lo = (int)(nblk * t / nt) * QUANT_TILE_R;
        int hi = (int)(nblk * (t + 1) / nt) * QUANT_TILE_R;
        if (hi > OC) { hi = OC; }
        if (lo < hi) { quant_matmul_rows(out, inp, w, bias, BT, C, OC, lo, hi); }
    }
#else
    quant_matmul_rows(out, inp, w, bias, BT, C, OC, 0, OC);
#endif
}

// ---------------------------------------------------------------------------------------------
// The model. Tensors go by their index in llm.c's checkpoint order (PARAMETER_NAMES): five are
// matrices (wte and the four per-layer weights), the other eleven plain fp32 tensors.

static int quant_tensor_is_matrix(int t) { return t == 0 || t == 4 || t == 6 || t == 10 || t == 12; }

// rows x cols of each of the *count matrices of tensor t
static void quant_tensor_shape(const GPT2Config* cfg, int t, int* rows, int* cols, int* count) {
    int C = cfg->channels, L = cfg->num_layers;
    *count = L;
    switch (t) {
        case 0: *rows = cfg->padded_vocab_size; *cols = C; *count = 1; break;
        case 4: *rows = 3 * C; *cols = C; break;
        case 6: *rows = C; *cols = C; break;
        case 10: *rows = 4 * C; *cols = C; break;
        default: *rows = C; *cols = 4 * C; break;  // 12: fcprojw
    }
}

static QuantMatrix* quant_model_matrices(const QuantModel* m, int t) {
    switch (t) {
        case 0: return (QuantMatrix*)&m->wte;
        case 4: return m->qkvw;
        case 6: return m->attprojw;
        case 10: return m->fcw;
        default: return m->fcprojw;
    }
}

static const float** quant_model_slot(QuantModel* m, int t) {
    switch (t) {
        case 1: return &m->wpe;
        case 2: return &m->ln1w;
        case 3: return &m->ln1b;
        case 5: return &m->qkvb;
        case 7: return &m->attprojb;
        case 8: return &m->ln2w;
        case 9: return &m->ln2b;
        case 11: return &m->fcb;
        case 13: return &m->fcprojb;
        case 14: return &m->lnfw;
        default: return &m->lnfb;
    }
}

// 0, or -1 with err: kind and head_kind known, head fp32 or the same as kind, an int4 group valid
static int quant_check_kinds(int kind, int group, int head_kind, const char* where, char* err) {
    if (kind != QUANT_F32 && kind != QUANT_INT8 && kind != QUANT_INT4) {
        return set_err(err, "%s: unknown quantization kind %d (0 fp32, 1 int8, 2 int4)", where, kind);
    }
    if (head_kind != QUANT_F32 && head_kind != kind) {
        return set_err(err, "%s: head (wte) kind %s with weights of kind %s: the head is fp32 or quantized like the weights",
                       where, quant_kind_name(head_kind), quant_kind_name(kind));
    }
    if (kind == QUANT_INT4 && !quant_group_valid(group)) {
        return set_err(err, "%s: int4 group %d: must be a multiple of %d in [%d, %d]", where, group, QUANT_BLOCK,
                       QUANT_BLOCK, QUANT_GROUP_MAX);
    }
    return 0;
}

// the size of the quantized checkpoint of a model of shape cfg (header included)
static uint64_t quant_model_file_bytes(const GPT2Config* cfg, int kind, int group, int head_kind) {
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, cfg);
    uint64_t total = 256 * sizeof(int32_t);
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        if (!quant_tensor_is_matrix(t)) { total += 4 * (uint64_t)sizes[t]; continue; }
        int rows, cols, count;
        quant_tensor_shape(cfg, t, &rows, &cols, &count);
        total += (uint64_t)count * quant_matrix_file_bytes(t == 0 ? head_kind : kind, rows, cols, group);
    }
    return total;
}

static void quant_model_free(QuantModel* m) {
    if (m->memory != NULL) {  // the per-layer arrays exist: free their matrices
        for (int l = 0; l < m->config.num_layers; l++) {
            quant_matrix_free(&m->qkvw[l]);
            quant_matrix_free(&m->attprojw[l]);
            quant_matrix_free(&m->fcw[l]);
            quant_matrix_free(&m->fcprojw[l]);
        }
    }
    quant_matrix_free(&m->wte);
    free(m->memory);
    free(m->params);
    memset(m, 0, sizeof(*m));
}

// the four per-layer arrays of L matrices each, zeroed, in one block (m->memory)
static void quant_model_alloc_layers(QuantModel* m) {
    int L = m->config.num_layers;
    QuantMatrix* all = (QuantMatrix*)calloc_check((size_t)4 * L, sizeof(QuantMatrix), "quantized model matrices");
    m->memory = all;
    m->qkvw = all;
    m->attprojw = all + L;
    m->fcw = all + 2 * L;
    m->fcprojw = all + 3 * L;
}

// Builds a model over an llm.c fp32 parameter array (checkpoint order, gpt2_num_parameters
// floats): the matrices quantized to kind (head_kind for wte: QUANT_F32 or kind; group for
// int4), every fp32 tensor (and fp32 matrix) a pointer into params, which must outlive the
// model (m->params is NULL: the model does not own it). Every parameter must be finite.
// Returns 0, or -1 with err (nothing allocated then).
static int quant_model_from_params(QuantModel* m, const GPT2Config* cfg, float* params, int kind, int group,
                                   int head_kind, char* err) {
    memset(m, 0, sizeof(*m));
    if (gpt2_config_validate(cfg, "quant_model_from_params", err) != 0) { return -1; }
    if (quant_check_kinds(kind, group, head_kind, "quant_model_from_params", err) != 0) { return -1; }
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, cfg);
    float* t[NUM_PARAMETER_TENSORS];
    float* p = params;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { t[i] = p; p += sizes[i]; }
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        for (size_t k = 0; k < sizes[i]; k++) {
            if (!isfinite(t[i][k])) {
                return set_err(err, "quant_model_from_params: parameter %s[%zu] is %g: the model holds non-finite values",
                               PARAMETER_NAMES[i], k, t[i][k]);
            }
        }
    }
    m->config = *cfg;
    m->kind = kind;
    m->group = kind == QUANT_INT4 ? group : 0;
    m->head_kind = head_kind;
    quant_model_alloc_layers(m);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        if (!quant_tensor_is_matrix(i)) { *quant_model_slot(m, i) = t[i]; continue; }
        int rows, cols, count;
        quant_tensor_shape(cfg, i, &rows, &cols, &count);
        QuantMatrix* mats = quant_model_matrices(m, i);
        for (int l = 0; l < count; l++) {
            quant_matrix_quantize(&mats[l], t[i] + (size_t)l * rows * cols, rows, cols, i == 0 ? head_kind : kind, m->group);
        }
    }
    return 0;
}

// params (gpt2_num_parameters floats, checkpoint order) = the model's weights as fp32
static void quant_model_dequantize(const QuantModel* m, float* params) {
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, &m->config);
    float* p = params;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        if (!quant_tensor_is_matrix(i)) {
            memcpy(p, *quant_model_slot((QuantModel*)m, i), sizes[i] * sizeof(float));
        } else {
            int rows, cols, count;
            quant_tensor_shape(&m->config, i, &rows, &cols, &count);
            const QuantMatrix* mats = quant_model_matrices(m, i);
            for (int l = 0; l < count; l++) { quant_matrix_dequantize(&mats[l], p + (size_t)l * rows * cols); }
        }
        p += sizes[i];
    }
}

// ---------------------------------------------------------------------------------------------
// The file (format: the comment at the top of this part).

// 1 if path is a readable file that starts with the quantized checkpoint's magic, else 0
static int quant_file_is_quantized(const char* path) {
    char err[LLMC_ERRLEN];
    FILE* f = fopen_regular(path, err);
    if (f == NULL) { return 0; }
    int32_t magic = 0;
    size_t got = fread(&magic, sizeof(magic), 1, f);
    fclose(f);
    return got == 1 && magic == QUANT_MAGIC;
}

// Writes m to path atomically. Returns 0, or -1 with err when the path cannot be written to (a
// directory, a device) or the model is inconsistent; nothing is written then. An I/O error while
// writing (a full disk) dies, like every writer in llmc/utils.h, leaving the old file in place.
static int quant_model_write(const char* path, const QuantModel* m, char* err) {
    if (check_output_path(path, err) != 0) { return -1; }
    if (gpt2_config_validate(&m->config, path, err) != 0) { return -1; }
    if (quant_check_kinds(m->kind, m->group, m->head_kind, path, err) != 0) { return -1; }
    const GPT2Config* cfg = &m->config;
    // every matrix must be what the header will say
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        if (!quant_tensor_is_matrix(i)) { continue; }
        int rows, cols, count;
        quant_tensor_shape(cfg, i, &rows, &cols, &count);
        const QuantMatrix* mats = quant_model_matrices(m, i);
        int kind = i == 0 ? m->head_kind : m->kind;
        for (int l = 0; l < count; l++) {
            const QuantMatrix* q = &mats[l];
            if (q->kind != kind || q->rows != rows || q->cols != cols || (kind == QUANT_INT4 && q->group != m->group) ||
                (kind == QUANT_F32 ? q->f == NULL : (q->q == NULL || q->scales == NULL))) {
                return set_err(err, "%s: not written: matrix %s[%d] is %s %d x %d (group %d), the model says %s %d x %d",
                               path, PARAMETER_NAMES[i], l, quant_kind_name(q->kind), q->rows, q->cols, q->group,
                               quant_kind_name(kind), rows, cols);
            }
        }
    }
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, cfg);
    uint64_t total = quant_model_file_bytes(cfg, m->kind, m->group, m->head_kind);
    int32_t header[256];
    memset(header, 0, sizeof(header));
    header[0] = QUANT_MAGIC;
    header[1] = QUANT_VERSION;
    checkpoint_header_shape(header, cfg);
    header[8] = m->kind;
    header[9] = m->kind == QUANT_INT4 ? m->group : 0;
    header[10] = m->head_kind;
    header[11] = (int32_t)(uint32_t)(total & 0xffffffffu);
    header[12] = (int32_t)(uint32_t)(total >> 32);
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, header, sizeof(int32_t), 256);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        if (!quant_tensor_is_matrix(i)) {
            atomic_write(&af, *quant_model_slot((QuantModel*)m, i), sizeof(float), sizes[i]);
            continue;
        }
        int rows, cols, count;
        quant_tensor_shape(cfg, i, &rows, &cols, &count);
        const QuantMatrix* mats = quant_model_matrices(m, i);
        for (int l = 0; l < count; l++) {
            const QuantMatrix* q = &mats[l];
            if (q->kind == QUANT_F32) {
                atomic_write(&af, q->f, sizeof(float), (size_t)rows * cols);
            } else {
                atomic_write(&af, q->scales, sizeof(float), quant_matrix_num_scales(q));
                atomic_write(&af, q->q, 1, quant_matrix_q_bytes(q));
            }
        }
    }
    atomic_commit(&af);
    return 0;
}

// "qkvw[3]" for a layer's matrix, "wte" for the single one
static void quant_matrix_label(char* buf, size_t n, int t, int l, int count) {
    if (count > 1 || t != 0) { snprintf(buf, n, "%s[layer %d]", PARAMETER_NAMES[t], l); }
    else { snprintf(buf, n, "%s", PARAMETER_NAMES[t]); }
}

// reads one int8/int4 matrix's scales and values into freshly allocated arrays and checks them
static int quant_read_matrix(FILE* f, const char* path, QuantMatrix* q, const char* label, char* err) {
    size_t ns = quant_matrix_num_scales(q), nb = quant_matrix_q_bytes(q);
    q->scales = float_alloc_check(ns, "quantization scales");
    q->q = (uint8_t*)malloc_check(nb, "quantized weights");
    if (fread_exact(q->scales, sizeof(float), ns, f, path, err) != 0) { return -1; }
    if (fread_exact(q->q, 1, nb, f, path, err) != 0) { return -1; }
    int ng = q->kind == QUANT_INT4 ? quant_ngroups(q->cols, q->group) : 1;
    for (size_t i = 0; i < ns; i++) {
        float s = q->scales[i];
        if (!isfinite(s) || s < 0.0f) {
            char where[64];
            if (q->kind == QUANT_INT4) { snprintf(where, sizeof(where), "row %zu, group %zu", i / ng, i % ng); }
            else { snprintf(where, sizeof(where), "row %zu", i); }
            return set_err(err, "%s: %s: the scale of %s is %g (scales are finite and >= 0): a corrupt file", path, label, where, (double)s);
        }
    }
    if (q->kind == QUANT_INT8) {
        const int8_t* v = (const int8_t*)q->q;
        for (size_t i = 0; i < nb; i++) {
            if (v[i] == -128) {
                return set_err(err, "%s: %s: value -128 at row %zu, column %zu (int8 values are in [-127, 127]): a corrupt file",
                               path, label, i / q->cols, i % q->cols);
            }
        }
    } else {
        // every nibble is 1..15 (v = -7..7); those past the row's end are 8 (v = 0)
        size_t rb = quant_row_bytes(QUANT_INT4, q->cols);
        for (int r = 0; r < q->rows; r++) {
            const uint8_t* row = q->q + (size_t)r * rb;
            int zero = 0;
            for (size_t j = 0; j < rb; j++) { zero |= ((row[j] & 0x0F) == 0) | ((row[j] >> 4) == 0); }
            int pad_bad = 0;
            for (int c = q->cols; c < (int)(rb * 2); c++) {
                uint8_t b = row[(c / QUANT_BLOCK) * (QUANT_BLOCK / 2) + c % (QUANT_BLOCK / 2)];
                pad_bad |= ((c % QUANT_BLOCK < QUANT_BLOCK / 2) ? (b & 0x0F) : (b >> 4)) != 8;
            }
            if (!zero && !pad_bad) { continue; }
            for (int c = 0; c < (int)(rb * 2); c++) {  // find the first bad nibble, to name it
                uint8_t b = row[(c / QUANT_BLOCK) * (QUANT_BLOCK / 2) + c % (QUANT_BLOCK / 2)];
                int nib = (c % QUANT_BLOCK < QUANT_BLOCK / 2) ? (b & 0x0F) : (b >> 4);
                if (c < q->cols ? nib == 0 : nib != 8) {
                    return set_err(err, "%s: %s: nibble %d at row %d, column %d (%s): a corrupt file", path, label, nib, r, c,
                                   c >= q->cols ? "padding past the row's end must be 8, i.e. 0" : "int4 nibbles are 1..15, i.e. -7..7");
                }
            }
        }
    }
    return 0;
}

// Reads a quantized checkpoint into m (everything owned by m: quant_model_free). Returns 0, or
// -1 with err naming the file and what is wrong (m is then empty, nothing left allocated).
static int quant_model_read(const char* path, QuantModel* m, char* err) {
    memset(m, 0, sizeof(*m));
    FILE* f = fopen_regular(path, err);
    if (f == NULL) { return -1; }
    long fsize = file_size_of(f);
    int32_t header[256];
    if (fsize < (long)sizeof(header)) {
        fclose(f);
        return set_err(err, "%s: file is truncated: %ld bytes, shorter than the %zu-byte header of a quantized model",
                       path, fsize, sizeof(header));
    }
    if (fread_exact(header, sizeof(int32_t), 256, f, path, err) != 0) { fclose(f); return -1; }
    if (header[0] == CHECKPOINT_MAGIC) {
        fclose(f);
        return set_err(err, "%s: is an llm.c model checkpoint (magic %d, version %d), not a quantized one: use it as a plain "
                       "checkpoint (checkpoint_read, quant_model_load), or make a quantized file with dev/infer/quantize",
                       path, header[0], header[1]);
    }
    if (header[0] != QUANT_MAGIC) {
        fclose(f);
        return set_err(err, "%s: bad magic %d (expected %d): not a quantized model checkpoint", path, header[0], QUANT_MAGIC);
    }
    if (header[1] != QUANT_VERSION) {
        fclose(f);
        return set_err(err, "%s: unsupported quantized model version %d (supported: %d)", path, header[1], QUANT_VERSION);
    }
    GPT2Config cfg;
    cfg.max_seq_len = header[2];
    cfg.vocab_size = header[3];
    cfg.num_layers = header[4];
    cfg.num_heads = header[5];
    cfg.channels = header[6];
    cfg.padded_vocab_size = header[7];
    if (gpt2_config_validate(&cfg, path, err) != 0) { fclose(f); return -1; }
    int kind = header[8], group = header[9], head_kind = header[10];
    if (quant_check_kinds(kind, group, head_kind, path, err) != 0) { fclose(f); return -1; }
    if (kind != QUANT_INT4 && group != 0) {
        fclose(f);
        return set_err(err, "%s: group %d in the header of an %s model (only int4 has groups; expected 0)", path, group, quant_kind_name(kind));
    }
    for (int i = 13; i < 256; i++) {
        if (header[i] != 0) {
            fclose(f);
            return set_err(err, "%s: reserved header word %d is %d, not 0: a corrupt file or a newer format", path, i, header[i]);
        }
    }
    uint64_t expected = quant_model_file_bytes(&cfg, kind, group, head_kind);
    uint64_t recorded = (uint64_t)(uint32_t)header[11] | ((uint64_t)(uint32_t)header[12] << 32);
    if (recorded != expected) {
        fclose(f);
        return set_err(err, "%s: the header records %llu bytes, but its shape (L=%d C=%d Vp=%d maxT=%d) and kinds (%s, head %s, "
                       "group %d) need %llu: a corrupt header", path, (unsigned long long)recorded, cfg.num_layers, cfg.channels,
                       cfg.padded_vocab_size, cfg.max_seq_len, quant_kind_name(kind), quant_kind_name(head_kind), group,
                       (unsigned long long)expected);
    }
    if ((uint64_t)fsize != expected) {
        fclose(f);
        return set_err(err, "%s: file is %s: %ld bytes, but the header's shape (L=%d C=%d Vp=%d maxT=%d) and kinds (%s, head %s, "
                       "group %d) need %llu", path, (uint64_t)fsize < expected ? "truncated" : "too long (trailing bytes)", fsize,
                       cfg.num_layers, cfg.channels, cfg.padded_vocab_size, cfg.max_seq_len, quant_kind_name(kind),
                       quant_kind_name(head_kind), group, (unsigned long long)expected);
    }
    m->config = cfg;
    m->kind = kind;
    m->group = group;
    m->head_kind = head_kind;
    quant_model_alloc_layers(m);
    // every fp32 tensor and fp32 matrix goes into one owned array, in file order
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, &cfg);
    size_t nfloat = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        int k = i == 0 ? head_kind : kind;
        if (!quant_tensor_is_matrix(i) || k == QUANT_F32) { nfloat += sizes[i]; }
    }
    m->params = float_alloc_check(nfloat, "model parameters");
    float* p = m->params;
    char label[64];
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        int rows = 0, cols = 0, count = 1;
        int k = QUANT_F32;
        if (quant_tensor_is_matrix(i)) {
            quant_tensor_shape(&cfg, i, &rows, &cols, &count);
            k = i == 0 ? head_kind : kind;
        }
        if (k == QUANT_F32) {
            if (fread_exact(p, sizeof(float), sizes[i], f, path, err) != 0) { goto fail; }
            for (size_t j = 0; j < sizes[i]; j++) {
                if (!isfinite(p[j])) {
                    set_err(err, "%s: parameter %s[%zu] is %g: the model holds non-finite values", path, PARAMETER_NAMES[i], j, (double)p[j]);
                    goto fail;
                }
            }
            if (quant_tensor_is_matrix(i)) {
                QuantMatrix* mats = quant_model_matrices(m, i);
                for (int l = 0; l < count; l++) {
                    mats[l].kind = QUANT_F32;
                    mats[l].rows = rows;
                    mats[l].cols = cols;
                    mats[l].f = p + (size_t)l * rows * cols;
                }
            } else {
                *quant_model_slot(m, i) = p;
            }
            p += sizes[i];
            continue;
        }
        QuantMatrix* mats = quant_model_matrices(m, i);
        for (int l = 0; l < count; l++) {
            QuantMatrix* q = &mats[l];
            q->kind = k;
            q->rows = rows;
            q->cols = cols;
            q->group = k == QUANT_INT8 ? cols : group;
            quant_matrix_label(label, sizeof(label), i, l, count);
            if (quant_read_matrix(f, path, q, label, err) != 0) { goto fail; }
        }
    }
    fclose(f);
    return 0;
fail:
    fclose(f);
    quant_model_free(m);
    return -1;
}

// Either kind of file: a quantized checkpoint (quant_model_read), or an llm.c checkpoint
// (v3/v5, checkpoint_read) as an all-fp32 model that owns its parameters (m->params).
static int quant_model_load(const char* path, QuantModel* m, char* err) {
    if (quant_file_is_quantized(path)) { return quant_model_read(path, m, err); }
    memset(m, 0, sizeof(*m));
    GPT2Config cfg;
    float* params = NULL;
    if (checkpoint_read(path, &cfg, &params, err) != 0) { return -1; }
    if (quant_model_from_params(m, &cfg, params, QUANT_F32, 0, QUANT_F32, err) != 0) { free(params); return -1; }
    m->params = params;
    return 0;
}

#ifdef __CUDACC__
// =============================================================================================
// CUDA twin of quant_matmul_forward for int8 and int4 weights (the fp32 case is llmc/matmul.h's
// cuBLASLt matmul). The matrix lives on the GPU in the same layout as on the host (the same
// bytes and scales: quant_matrix_upload copies them), activations are floatX, sums in fp32.
// One warp per output row: the warp reads the row's bytes once, coalesced, for up to 4 input
// rows at a time (generation's decode step has BT = 1 or a few beams), dequantizes each value
// in registers (int8: q, times the row's scale at the end; int4: scale * (nibble - 8), the
// scale of the value's group) and reduces with shuffles. Bandwidth bound at small BT, like the
// CPU kernel; checked against quant_matmul_forward_ref by dev/cuda/quant_check.cu.
#include "cuda_common.h"

typedef struct {
    int kind, rows, cols, group;
    uint8_t* q;      // device: the host layout's bytes
    float* scales;   // device
} QuantMatrixCU;

static void quant_matrix_upload(QuantMatrixCU* d, const QuantMatrix* m) {
    if (m->kind != QUANT_INT8 && m->kind != QUANT_INT4) { die("quant_matrix_upload: int8 or int4 only (fp32 goes through cuBLASLt)"); }
    d->kind = m->kind; d->rows = m->rows; d->cols = m->cols; d->group = m->group;
    size_t qb = quant_matrix_q_bytes(m), sb = quant_matrix_num_scales(m) * sizeof(float);
    d->q = (uint8_t*)cuda_malloc_check(qb, "quantized weights");
    d->scales = (float*)cuda_malloc_check(sb, "quantization scales");
    cudaCheck(cudaMemcpy(d->q, m->q, qb, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(d->scales, m->scales, sb, cudaMemcpyHostToDevice));
}

static void quant_matrix_cu_free(QuantMatrixCU* d) {
    cudaCheck(cudaFree(d->q));
    cudaCheck(cudaFree(d->scales));
    memset(d, 0, sizeof(*d));
}

#define QUANT_CU_ROWS 4  // input rows per pass over the weights

__global__ static void quant_matmul_kernel(floatX* out, const floatX* inp, const uint8_t* q, const float* scales,
                                           const floatX* bias, int BT, int C, int OC, int kind, int group) {
    int o = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (o >= OC) { return; }  // the whole warp: o is the warp's
    int ng = kind == QUANT_INT4 ? (C + group - 1) / group : 1;
    size_t row_bytes = kind == QUANT_INT8 ? (size_t)C : (size_t)((C + 31) / 32) * 16;
    const uint8_t* row = q + (size_t)o * row_bytes;
    for (int b0 = 0; b0 < BT; b0 += QUANT_CU_ROWS) {
        int nb = BT - b0 < QUANT_CU_ROWS ? BT - b0 : QUANT_CU_ROWS;
        float acc[QUANT_CU_ROWS] = { 0.0f, 0.0f, 0.0f, 0.0f };
        if (kind == QUANT_INT8) {
            for (int c = lane; c < C; c += 32) {
                float w = (float)(int8_t)row[c];
                for (int k = 0; k < nb; k++) { acc[k] += w * fx2f(inp[(size_t)(b0 + k) * C + c]); }
            }
        } else {
            for (int i = lane; i < (int)row_bytes; i += 32) {
                int blk = i / 16, j = i % 16;
                int c_lo = blk * 32 + j, c_hi = c_lo + 16;
                float s = scales[(size_t)o * ng + (blk * 32) / group];
                uint8_t byte = row[i];
                float w_lo = s * (float)((int)(byte & 0x0F) - 8), w_hi = s * (float)((int)(byte >> 4) - 8);
                for (int k = 0; k < nb; k++) {
                    const floatX* x = inp + (size_t)(b0 + k) * C;
                    if (c_lo < C) { acc[k] += w_lo * fx2f(x[c_lo]); }
                    if (c_hi < C) { acc[k] += w_hi * fx2f(x[c_hi]); }
                }
            }
        }
        for (int k = 0; k < nb; k++) {
            float v = warp_reduce_sum(acc[k]);
            if (kind == QUANT_INT8) { v *= scales[o]; }
            if (lane == 0) { out[(size_t)(b0 + k) * OC + o] = f2fx(v + (bias != NULL ? fx2f(bias[o]) : 0.0f)); }
        }
    }
}

// out (BT, OC) = inp (BT, C) @ W^T + bias, W an uploaded int8/int4 matrix; bias may be NULL.
static void quant_matmul_forward_cuda(floatX* out, const floatX* inp, const QuantMatrixCU* w, const floatX* bias,
                                      int BT, int C, int OC, cudaStream_t stream) {
    if (w->rows != OC || w->cols != C) { die("quant_matmul_forward_cuda: a %dx%d matrix for C=%d OC=%d", w->rows, w->cols, C, OC); }
    int threads = 128;
    quant_matmul_kernel<<<CEIL_DIV(OC, threads / 32), threads, 0, stream>>>(out, inp, w->q, w->scales, bias, BT, C, OC, w->kind, w->group);
    cudaCheckLaunch();
}
#endif // __CUDACC__


#endif // LLMC_QUANT_H

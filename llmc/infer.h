// The model at inference time: a forward pass over new positions only, with a KV cache per
// sequence, on weights that may be quantized (llmc/quant.h). Used by dev/infer/generate.c.
//
// R sequences ("rows": the prompts of a batch, or the beams of a beam search) each own a
// cache of cap positions in every layer. infer_forward appends n tokens to each of the rows it
// is given and leaves, per row, the logits of its last new position in logits + row * Vp:
//   the prompt:     one row, n = its length (in chunks of at most `positions` tokens)
//   a decode step:  several rows, n = 1 each; their matmuls run as one batch
// Beams that die and beams that split are handled by infer_reorder, which moves caches between
// rows (only the rows that are duplicated are copied).
//
// Memory is allocated once in infer_init: the cache (2 * L * R * cap * C floats) and the
// activations of `positions` positions at a time (a forward never takes more).
//
// The CUDA twin (InferCU, below under __CUDACC__) runs the same forward on floatX weights
// with the kernels' CUDA twins and the same bookkeeping (KvBook), int8/int4 weights included. dev/cuda/infer_check.cu checks it against this file's
// forward, in the CUDA emulation in `make test`.
#ifndef LLMC_INFER_H
#define LLMC_INFER_H

#include <stdlib.h>
#include <string.h>
#include "llmc/utils.h"
#include "llmc/quant.h"
#include "llmc/layernorm.h"
#include "llmc/encoder.h"
#include "llmc/gelu.h"
#include "llmc/residual.h"
#include "llmc/kv_cache.h"

// Which cache slot holds which row, and how long each row is: the bookkeeping both forwards
// share. Rows are what the caller sees (beam j, prompt i); slots are where the caches are.
typedef struct {
    int R, cap;
    int* len;         // (R) positions cached per row
    int* slot;        // (R) row -> slot
    int* scratch;     // (4R)
} KvBook;

static void kv_book_init(KvBook* b, int R, int cap) {
    b->R = R;
    b->cap = cap;
    b->len = (int*)calloc_check((size_t)R, sizeof(int), "KV cache lengths");
    b->slot = (int*)malloc_check((size_t)R * sizeof(int), "KV cache slots");
    b->scratch = (int*)malloc_check((size_t)4 * R * sizeof(int), "KV cache scratch");
    for (int r = 0; r < R; r++) { b->slot[r] = r; }
}

static void kv_book_free(KvBook* b) { free(b->len); free(b->slot); free(b->scratch); memset(b, 0, sizeof(*b)); }

// The checks of a forward: rows in range, caches large enough, tokens in the vocabulary.
static void kv_book_check(const KvBook* b, const int* rows, int nrows, const int* tokens, int n, int V, int positions) {
    if (nrows < 1 || n < 1 || nrows * n > positions) { die("infer_forward: %d rows x %d positions exceed %d", nrows, n, positions); }
    for (int i = 0; i < nrows; i++) {
        int r = rows[i];
        if (r < 0 || r >= b->R) { die("infer_forward: row %d of %d", r, b->R); }
        if (b->len[r] + n > b->cap) { die("infer_forward: row %d would hold %d positions, the cache %d", r, b->len[r] + n, b->cap); }
        for (int j = 0; j < n; j++) {
            int tok = tokens[(size_t)i * n + j];
            if (tok < 0 || tok >= V) { die("infer_forward: token %d outside the vocabulary of %d", tok, V); }
        }
    }
}

// After a beam step: new row j continues old row src[j] (j < nb). A row kept by one successor
// keeps its slot; the extra successors of a row take the slots of rows nobody continues, and
// their caches must be copied: copy_from[k] -> copy_to[k] (slots), copy_len[k] positions.
// Returns the number of copies.
static int kv_book_reorder(KvBook* b, const int* src, int nb, int* copy_from, int* copy_to, int* copy_len) {
    int *count = b->scratch, *old_slot = b->scratch + b->R, *old_len = b->scratch + 2 * b->R, *free_slots = b->scratch + 3 * b->R;
    for (int r = 0; r < nb; r++) { count[r] = 0; old_slot[r] = b->slot[r]; old_len[r] = b->len[r]; }
    for (int j = 0; j < nb; j++) {
        if (src[j] < 0 || src[j] >= nb) { die("infer_reorder: source row %d of %d", src[j], nb); }
        count[src[j]]++;
    }
    int nfree = 0, ncopies = 0, next_free = 0;
    for (int r = 0; r < nb; r++) { if (count[r] == 0) { free_slots[nfree++] = old_slot[r]; } }
    for (int r = 0; r < nb; r++) { count[r] = 0; }  // now: successors placed so far
    for (int j = 0; j < nb; j++) {
        int o = src[j];
        if (count[o]++ == 0) { b->slot[j] = old_slot[o]; }
        else {
            b->slot[j] = free_slots[next_free++];
            copy_from[ncopies] = old_slot[o]; copy_to[ncopies] = b->slot[j]; copy_len[ncopies] = old_len[o];
            ncopies++;
        }
        b->len[j] = old_len[o];
    }
    return ncopies;
}

typedef struct {
    const QuantModel* w;
    int R, cap, positions;  // rows, cached positions per row, positions per forward
    KvBook book;            // len / slot of every row
    float* kcache;          // (L, R slots, cap, C)
    float* vcache;
    // activations of up to `positions` positions
    float *x, *ln, *qkv, *atty, *proj, *fch, *fch_gelu, *mean, *rstd, *att, *last;
    int *pos, *copy;        // (positions) absolute positions; (3R) reorder copies
    float* logits;          // (R, Vp): each row's latest logits
    float* logits_saved;    // (R, Vp): infer_reorder's copy
    float* row_scratch;     // (C): a dequantized embedding row
} InferState;

static void infer_init(InferState* s, const QuantModel* w, int R, int cap, int positions) {
    const GPT2Config* c = &w->config;
    if (R < 1 || cap < 1 || positions < 1) { die("infer_init: rows %d, cap %d, positions %d", R, cap, positions); }
    if (cap > c->max_seq_len) { die("infer_init: %d positions exceed the model's context of %d", cap, c->max_seq_len); }
    memset(s, 0, sizeof(*s));
    s->w = w;
    s->R = R;
    s->cap = cap;
    s->positions = positions < R ? R : positions;  // a decode step of all rows must fit
    kv_book_init(&s->book, R, cap);
    size_t C = (size_t)c->channels, L = (size_t)c->num_layers, P = (size_t)s->positions;
    size_t cache = L * (size_t)R * (size_t)cap * C;
    s->kcache = float_alloc_check(cache, "KV cache (keys)");
    s->vcache = float_alloc_check(cache, "KV cache (values)");
    s->x = float_alloc_check(P * C, "inference activations");
    s->ln = float_alloc_check(P * C, "inference activations");
    s->qkv = float_alloc_check(P * 3 * C, "inference activations");
    s->atty = float_alloc_check(P * C, "inference activations");
    s->proj = float_alloc_check(P * C, "inference activations");
    s->fch = float_alloc_check(P * 4 * C, "inference activations");
    s->fch_gelu = float_alloc_check(P * 4 * C, "inference activations");
    s->mean = float_alloc_check(P, "inference activations");
    s->rstd = float_alloc_check(P, "inference activations");
    // scores of the widest forward: a chunk of `positions` new positions over cap keys
    s->att = float_alloc_check((size_t)c->num_heads * P * (size_t)cap, "attention scores");
    s->last = float_alloc_check((size_t)R * C, "last positions");
    s->pos = (int*)malloc_check(P * sizeof(int), "positions");
    s->copy = (int*)malloc_check((size_t)3 * R * sizeof(int), "reorder copies");
    s->logits = float_alloc_check((size_t)R * (size_t)c->padded_vocab_size, "logits");
    s->logits_saved = float_alloc_check((size_t)R * (size_t)c->padded_vocab_size, "logits");
    s->row_scratch = float_alloc_check(C, "embedding row");
}

static void infer_free(InferState* s) {
    kv_book_free(&s->book);
    free(s->kcache); free(s->vcache);
    free(s->x); free(s->ln); free(s->qkv); free(s->atty); free(s->proj); free(s->fch); free(s->fch_gelu);
    free(s->mean); free(s->rstd); free(s->att); free(s->last); free(s->pos); free(s->copy);
    free(s->logits); free(s->logits_saved); free(s->row_scratch);
    memset(s, 0, sizeof(*s));
}

static void infer_reset(InferState* s, int row) { s->book.len[row] = 0; }
static int infer_len(const InferState* s, int row) { return s->book.len[row]; }

static float* infer_cache_at(const InferState* s, float* cache, int layer, int row) {
    size_t C = (size_t)s->w->config.channels;
    return cache + (((size_t)layer * s->R + (size_t)s->book.slot[row]) * (size_t)s->cap) * C;
}

// rows[0..nrows) each take n new tokens: tokens[i * n + j] is row rows[i]'s j-th. nrows * n
// must fit in `positions`, and every row's cache in cap. Leaves each row's last logits in
// s->logits + rows[i] * Vp; all_logits, when given, receives every new position's (nrows*n, Vp).
static void infer_forward(InferState* s, const int* rows, int nrows, const int* tokens, int n, float* all_logits) {
    const QuantModel* w = s->w;
    const GPT2Config* c = &w->config;
    int C = c->channels, NH = c->num_heads, L = c->num_layers, Vp = c->padded_vocab_size;
    int N = nrows * n;
    kv_book_check(&s->book, rows, nrows, tokens, n, c->vocab_size, s->positions);
    // token + position embeddings (the embedding row dequantized when the table is quantized)
    for (int i = 0; i < nrows; i++) {
        for (int j = 0; j < n; j++) { s->pos[i * n + j] = s->book.len[rows[i]] + j; }
    }
    if (w->wte.kind == QUANT_F32) {
        encoder_forward_at(s->x, tokens, s->pos, w->wte.f, w->wpe, N, C);
    } else {
        for (int i = 0; i < N; i++) {
            quant_matrix_dequantize_row(&w->wte, tokens[i], s->row_scratch);
            float* o = s->x + (size_t)i * C;
            const float* pe = w->wpe + (size_t)s->pos[i] * C;
            for (int k = 0; k < C; k++) { o[k] = s->row_scratch[k] + pe[k]; }
        }
    }
    size_t NC = (size_t)N * C;
    for (int l = 0; l < L; l++) {
        layernorm_forward(s->ln, s->mean, s->rstd, s->x, w->ln1w + (size_t)l * C, w->ln1b + (size_t)l * C, 1, N, C);
        quant_matmul_forward(s->qkv, s->ln, &w->qkvw[l], w->qkvb + (size_t)l * 3 * C, N, C, 3 * C);
        for (int i = 0; i < nrows; i++) {
            int r = rows[i];
            attention_forward_cached(s->atty + (size_t)i * n * C, s->att, s->qkv + (size_t)i * n * 3 * C,
                                     infer_cache_at(s, s->kcache, l, r), infer_cache_at(s, s->vcache, l, r), s->book.len[r], n, C, NH);
        }
        quant_matmul_forward(s->proj, s->atty, &w->attprojw[l], w->attprojb + (size_t)l * C, N, C, C);
        residual_forward(s->x, s->x, s->proj, NC);
        layernorm_forward(s->ln, s->mean, s->rstd, s->x, w->ln2w + (size_t)l * C, w->ln2b + (size_t)l * C, 1, N, C);
        quant_matmul_forward(s->fch, s->ln, &w->fcw[l], w->fcb + (size_t)l * 4 * C, N, C, 4 * C);
        gelu_forward(s->fch_gelu, s->fch, 4 * NC);
        quant_matmul_forward(s->proj, s->fch_gelu, &w->fcprojw[l], w->fcprojb + (size_t)l * C, N, 4 * C, C);
        residual_forward(s->x, s->x, s->proj, NC);
    }
    for (int i = 0; i < nrows; i++) { s->book.len[rows[i]] += n; }
    if (all_logits != NULL) {
        layernorm_forward(s->ln, s->mean, s->rstd, s->x, w->lnfw, w->lnfb, 1, N, C);
        quant_matmul_forward(all_logits, s->ln, &w->wte, NULL, N, C, Vp);
        for (int i = 0; i < nrows; i++) {
            memcpy(s->logits + (size_t)rows[i] * Vp, all_logits + ((size_t)i * n + n - 1) * Vp, (size_t)Vp * sizeof(float));
        }
        return;
    }
    // the LM head only where a next token is wanted: each row's last position
    for (int i = 0; i < nrows; i++) {
        memcpy(s->ln + (size_t)i * C, s->x + ((size_t)i * n + n - 1) * C, (size_t)C * sizeof(float));
    }
    layernorm_forward(s->last, s->mean, s->rstd, s->ln, w->lnfw, w->lnfb, 1, nrows, C);
    for (int i = 0; i < nrows; i++) {
        quant_matmul_forward(s->logits + (size_t)rows[i] * Vp, s->last + (size_t)i * C, &w->wte, NULL, 1, C, Vp);
    }
}

// Appends a whole prompt to one row, in chunks of `positions`; its last logits in s->logits.
static void infer_prefill(InferState* s, int row, const int* tokens, int n) {
    for (int done = 0; done < n;) {
        int k = n - done < s->positions ? n - done : s->positions;
        infer_forward(s, &row, 1, tokens + done, k, NULL);
        done += k;
    }
}

// After a beam step: new row j continues old row src[j] (j < nb); see kv_book_reorder. The
// logits move along.
static void infer_reorder(InferState* s, const int* src, int nb) {
    const GPT2Config* c = &s->w->config;
    int L = c->num_layers, C = c->channels, Vp = c->padded_vocab_size;
    int *from = s->copy, *to = s->copy + s->R, *len = s->copy + 2 * s->R;
    int ncopies = kv_book_reorder(&s->book, src, nb, from, to, len);
    for (int k = 0; k < ncopies; k++) {
        for (int l = 0; l < L; l++) {
            size_t f = (((size_t)l * s->R + from[k]) * s->cap) * C, t = (((size_t)l * s->R + to[k]) * s->cap) * C;
            memcpy(s->kcache + t, s->kcache + f, (size_t)len[k] * C * sizeof(float));
            memcpy(s->vcache + t, s->vcache + f, (size_t)len[k] * C * sizeof(float));
        }
    }
    memcpy(s->logits_saved, s->logits, (size_t)nb * Vp * sizeof(float));
    for (int j = 0; j < nb; j++) {
        memcpy(s->logits + (size_t)j * Vp, s->logits_saved + (size_t)src[j] * Vp, (size_t)Vp * sizeof(float));
    }
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin: the same forward on the GPU. fp32 weights become one floatX copy (checkpoint
// order), int8/int4 matrices stay quantized (llmc/quant.h's CUDA kernel reads them); activations and the KV cache are floatX; the logits of each row's last
// position come back to the host as floats (s->logits), where decoding happens. The matmuls
// are cuBLASLt (llmc/matmul.h) with the bias, and the GELU of the MLP, in the epilogue.
#include "llmc/matmul.h"

typedef struct {
    GPT2Config config;
    int R, cap, positions;
    KvBook book;
    floatX* params;                 // device, checkpoint order (quantized matrices left out)
    floatX* t[NUM_PARAMETER_TENSORS];
    int kind, head_kind;            // the QuantModel's: QUANT_F32, or int8/int4 matrices (below)
    QuantMatrixCU* qm;              // (4L) qkvw, attprojw, fcw, fcprojw of each layer, when quantized
    QuantMatrixCU head;             // the LM head, when quantized (the embedding stays floatX)
    floatX *kcache, *vcache;        // (L, R slots, cap, C)
    floatX *x, *ln, *qkv, *atty, *proj, *fch, *fch_gelu, *last, *logits_dev;
    float *mean, *rstd;
    int *tokens_dev, *pos_dev;      // (positions)
    int *pos, *copy;                // host: (positions), (3R)
    floatX* stage;                  // host: (R, Vp) logits as downloaded
    float* logits;                  // host: (R, Vp)
    float* logits_saved;
    cudaStream_t stream;
} InferCU;

// The weights come from a QuantModel (llmc/quant.h): fp32 tensors are uploaded as floatX; int8
// and int4 matrices as their bytes and scales (quant_matrix_upload), read by
// quant_matmul_forward_cuda. A quantized LM head keeps a floatX embedding table for the lookups.
static void infer_cu_init(InferCU* s, const QuantModel* m, int R, int cap, int positions) {
    const GPT2Config* c = &m->config;
    cuda_device_count_or_die();
    if (R < 1 || cap < 1 || positions < 1) { die("infer_cu_init: rows %d, cap %d, positions %d", R, cap, positions); }
    if (cap > c->max_seq_len) { die("infer_cu_init: %d positions exceed the model's context of %d", cap, c->max_seq_len); }
    memset(s, 0, sizeof(*s));
    s->config = *c;
    s->R = R;
    s->cap = cap;
    s->positions = positions < R ? R : positions;
    s->kind = m->kind;
    s->head_kind = m->head_kind;
    kv_book_init(&s->book, R, cap);
    int Lm = c->num_layers;
    // the fp32 parameter array in checkpoint order; quantized matrices take no room in it
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, c);
    static const int matrix_tensor[4] = { 4, 6, 10, 12 };
    if (m->kind != QUANT_F32) { for (int k = 0; k < 4; k++) { sizes[matrix_tensor[k]] = 0; } }
    size_t P = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) { P += sizes[k]; }
    floatX* host = (floatX*)malloc_check(P * sizeof(floatX), "weights upload");
    float* row = float_alloc_check((size_t)c->channels, "embedding row");
    const float* small[NUM_PARAMETER_TENSORS] = { NULL, m->wpe, m->ln1w, m->ln1b, NULL, m->qkvb, NULL, m->attprojb,
                                                  m->ln2w, m->ln2b, NULL, m->fcb, NULL, m->fcprojb, m->lnfw, m->lnfb };
    const QuantMatrix* mats[4] = { m->qkvw, m->attprojw, m->fcw, m->fcprojw };
    size_t off = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        floatX* dst = host + off;
        if (k == 0) {  // wte: its rows, dequantized when stored quantized (the lookups read floatX)
            for (int v = 0; v < c->padded_vocab_size; v++) {
                quant_matrix_dequantize_row(&m->wte, v, row);
                for (int j = 0; j < c->channels; j++) { dst[(size_t)v * c->channels + j] = host_f2fx(row[j]); }
            }
        } else if (small[k] != NULL) {
            for (size_t i = 0; i < sizes[k]; i++) { dst[i] = host_f2fx(small[k][i]); }
        } else if (sizes[k] > 0) {  // an fp32 matrix tensor: its L matrices one after the other
            int which = k == 4 ? 0 : k == 6 ? 1 : k == 10 ? 2 : 3;
            size_t per = sizes[k] / (size_t)Lm;
            for (int l = 0; l < Lm; l++) {
                const float* f = mats[which][l].f;
                for (size_t i = 0; i < per; i++) { dst[(size_t)l * per + i] = host_f2fx(f[i]); }
            }
        }
        off += sizes[k];
    }
    s->params = (floatX*)cuda_malloc_check(P * sizeof(floatX), "weights");
    cudaCheck(cudaMemcpy(s->params, host, P * sizeof(floatX), cudaMemcpyHostToDevice));
    free(host);
    free(row);
    off = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) { s->t[k] = sizes[k] > 0 ? s->params + off : NULL; off += sizes[k]; }
    if (m->kind != QUANT_F32) {
        s->qm = (QuantMatrixCU*)calloc_check((size_t)4 * Lm, sizeof(QuantMatrixCU), "quantized matrices");
        for (int l = 0; l < Lm; l++) {
            for (int k = 0; k < 4; k++) { quant_matrix_upload(&s->qm[4 * l + k], &mats[k][l]); }
        }
    }
    if (m->head_kind != QUANT_F32) { quant_matrix_upload(&s->head, &m->wte); }
    size_t C = (size_t)c->channels, L = (size_t)c->num_layers, Pn = (size_t)s->positions, Vp = (size_t)c->padded_vocab_size;
    size_t cache = L * (size_t)R * (size_t)cap * C;
    s->kcache = (floatX*)cuda_malloc_check(cache * sizeof(floatX), "KV cache (keys)");
    s->vcache = (floatX*)cuda_malloc_check(cache * sizeof(floatX), "KV cache (values)");
    s->x = (floatX*)cuda_malloc_check(Pn * C * sizeof(floatX), "inference activations");
    s->ln = (floatX*)cuda_malloc_check(Pn * C * sizeof(floatX), "inference activations");
    s->qkv = (floatX*)cuda_malloc_check(Pn * 3 * C * sizeof(floatX), "inference activations");
    s->atty = (floatX*)cuda_malloc_check(Pn * C * sizeof(floatX), "inference activations");
    s->proj = (floatX*)cuda_malloc_check(Pn * C * sizeof(floatX), "inference activations");
    s->fch = (floatX*)cuda_malloc_check(Pn * 4 * C * sizeof(floatX), "inference activations");
    s->fch_gelu = (floatX*)cuda_malloc_check(Pn * 4 * C * sizeof(floatX), "inference activations");
    s->last = (floatX*)cuda_malloc_check((size_t)R * C * sizeof(floatX), "last positions");
    s->logits_dev = (floatX*)cuda_malloc_check((size_t)R * Vp * sizeof(floatX), "logits");
    s->mean = (float*)cuda_malloc_check(Pn * sizeof(float), "inference activations");
    s->rstd = (float*)cuda_malloc_check(Pn * sizeof(float), "inference activations");
    s->tokens_dev = (int*)cuda_malloc_check(Pn * sizeof(int), "tokens");
    s->pos_dev = (int*)cuda_malloc_check(Pn * sizeof(int), "positions");
    s->pos = (int*)malloc_check(Pn * sizeof(int), "positions");
    s->copy = (int*)malloc_check((size_t)3 * R * sizeof(int), "reorder copies");
    s->stage = (floatX*)malloc_check((size_t)R * Vp * sizeof(floatX), "logits");
    s->logits = float_alloc_check((size_t)R * Vp, "logits");
    s->logits_saved = float_alloc_check((size_t)R * Vp, "logits");
    cudaCheck(cudaStreamCreate(&s->stream));
    matmul_cuda_init();
}

static void infer_cu_free(InferCU* s) {
    kv_book_free(&s->book);
    floatX* dev[] = { s->params, s->kcache, s->vcache, s->x, s->ln, s->qkv, s->atty, s->proj, s->fch, s->fch_gelu, s->last, s->logits_dev };
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++) { cudaCheck(cudaFree(dev[i])); }
    cudaCheck(cudaFree(s->mean)); cudaCheck(cudaFree(s->rstd)); cudaCheck(cudaFree(s->tokens_dev)); cudaCheck(cudaFree(s->pos_dev));
    cudaCheck(cudaStreamDestroy(s->stream));
    if (s->qm != NULL) {
        for (int i = 0; i < 4 * s->config.num_layers; i++) { quant_matrix_cu_free(&s->qm[i]); }
        free(s->qm);
    }
    if (s->head.q != NULL) { quant_matrix_cu_free(&s->head); }
    free(s->pos); free(s->copy); free(s->stage); free(s->logits); free(s->logits_saved);
    memset(s, 0, sizeof(*s));
}

static void infer_cu_reset(InferCU* s, int row) { s->book.len[row] = 0; }

static floatX* infer_cu_cache_at(const InferCU* s, floatX* cache, int layer, int row) {
    size_t C = (size_t)s->config.channels;
    return cache + (((size_t)layer * s->R + (size_t)s->book.slot[row]) * (size_t)s->cap) * C;
}

// infer_forward's contract (no all_logits): each row's last logits in s->logits + row * Vp.
static void infer_cu_forward(InferCU* s, const int* rows, int nrows, const int* tokens, int n) {
    const GPT2Config* c = &s->config;
    int C = c->channels, NH = c->num_heads, L = c->num_layers, Vp = c->padded_vocab_size;
    int N = nrows * n;
    cudaStream_t st = s->stream;
    kv_book_check(&s->book, rows, nrows, tokens, n, c->vocab_size, s->positions);
    for (int i = 0; i < nrows; i++) {
        for (int j = 0; j < n; j++) { s->pos[i * n + j] = s->book.len[rows[i]] + j; }
    }
    cudaCheck(cudaMemcpyAsync(s->tokens_dev, tokens, (size_t)N * sizeof(int), cudaMemcpyHostToDevice, st));
    cudaCheck(cudaMemcpyAsync(s->pos_dev, s->pos, (size_t)N * sizeof(int), cudaMemcpyHostToDevice, st));
    floatX** t = s->t;
    encoder_forward_at_cuda(s->x, s->tokens_dev, s->pos_dev, t[0], t[1], N, C, st);
    size_t NC = (size_t)N * C;
    for (int l = 0; l < L; l++) {
        layernorm_forward_cuda(s->ln, s->mean, s->rstd, s->x, t[2] + (size_t)l * C, t[3] + (size_t)l * C, N, C, st);
        if (s->qm) { quant_matmul_forward_cuda(s->qkv, s->ln, &s->qm[4 * l], t[5] + (size_t)l * 3 * C, N, C, 3 * C, st); }
        else { matmul_forward_cuda(s->qkv, s->ln, t[4] + (size_t)l * 3 * C * C, t[5] + (size_t)l * 3 * C, N, C, 3 * C, NULL, st); }
        for (int i = 0; i < nrows; i++) {
            int r = rows[i];
            attention_forward_cached_cuda(s->atty + (size_t)i * n * C, s->qkv + (size_t)i * n * 3 * C, infer_cu_cache_at(s, s->kcache, l, r),
                                          infer_cu_cache_at(s, s->vcache, l, r), s->book.len[r], n, C, NH, st);
        }
        if (s->qm) { quant_matmul_forward_cuda(s->proj, s->atty, &s->qm[4 * l + 1], t[7] + (size_t)l * C, N, C, C, st); }
        else { matmul_forward_cuda(s->proj, s->atty, t[6] + (size_t)l * C * C, t[7] + (size_t)l * C, N, C, C, NULL, st); }
        residual_forward_cuda(s->x, s->x, s->proj, NC, st);
        layernorm_forward_cuda(s->ln, s->mean, s->rstd, s->x, t[8] + (size_t)l * C, t[9] + (size_t)l * C, N, C, st);
        // the GELU in cuBLASLt's epilogue: fch_gelu = gelu(ln @ fcw^T + fcb), fch the values before it
        if (s->qm) {
            quant_matmul_forward_cuda(s->fch, s->ln, &s->qm[4 * l + 2], t[11] + (size_t)l * 4 * C, N, C, 4 * C, st);
            gelu_forward_cuda(s->fch_gelu, s->fch, (size_t)N * 4 * C, st);
            quant_matmul_forward_cuda(s->proj, s->fch_gelu, &s->qm[4 * l + 3], t[13] + (size_t)l * C, N, 4 * C, C, st);
        } else {
            matmul_forward_cuda(s->fch_gelu, s->ln, t[10] + (size_t)l * 4 * C * C, t[11] + (size_t)l * 4 * C, N, C, 4 * C, s->fch, st);
            matmul_forward_cuda(s->proj, s->fch_gelu, t[12] + (size_t)l * 4 * C * C, t[13] + (size_t)l * C, N, 4 * C, C, NULL, st);
        }
        residual_forward_cuda(s->x, s->x, s->proj, NC, st);
    }
    for (int i = 0; i < nrows; i++) { s->book.len[rows[i]] += n; }
    for (int i = 0; i < nrows; i++) {
        cudaCheck(cudaMemcpyAsync(s->ln + (size_t)i * C, s->x + ((size_t)i * n + n - 1) * C, (size_t)C * sizeof(floatX),
                                  cudaMemcpyDeviceToDevice, st));
    }
    layernorm_forward_cuda(s->last, s->mean, s->rstd, s->ln, t[14], t[15], nrows, C, st);
    if (s->head.q != NULL) { quant_matmul_forward_cuda(s->logits_dev, s->last, &s->head, NULL, nrows, C, Vp, st); }
    else { matmul_forward_cuda(s->logits_dev, s->last, t[0], NULL, nrows, C, Vp, NULL, st); }
    cudaCheck(cudaMemcpyAsync(s->stage, s->logits_dev, (size_t)nrows * Vp * sizeof(floatX), cudaMemcpyDeviceToHost, st));
    cudaCheck(cudaStreamSynchronize(st));
    for (int i = 0; i < nrows; i++) {
        float* out = s->logits + (size_t)rows[i] * Vp;
        const floatX* in = s->stage + (size_t)i * Vp;
        for (int v = 0; v < Vp; v++) { out[v] = host_fx2f(in[v]); }
    }
}

static void infer_cu_prefill(InferCU* s, int row, const int* tokens, int n) {
    for (int done = 0; done < n;) {
        int k = n - done < s->positions ? n - done : s->positions;
        infer_cu_forward(s, &row, 1, tokens + done, k);
        done += k;
    }
}

static void infer_cu_reorder(InferCU* s, const int* src, int nb) {
    int L = s->config.num_layers, C = s->config.channels, Vp = s->config.padded_vocab_size;
    int *from = s->copy, *to = s->copy + s->R, *len = s->copy + 2 * s->R;
    int ncopies = kv_book_reorder(&s->book, src, nb, from, to, len);
    for (int k = 0; k < ncopies; k++) {
        for (int l = 0; l < L; l++) {
            size_t f = (((size_t)l * s->R + from[k]) * s->cap) * C, t = (((size_t)l * s->R + to[k]) * s->cap) * C;
            size_t bytes = (size_t)len[k] * C * sizeof(floatX);
            cudaCheck(cudaMemcpyAsync(s->kcache + t, s->kcache + f, bytes, cudaMemcpyDeviceToDevice, s->stream));
            cudaCheck(cudaMemcpyAsync(s->vcache + t, s->vcache + f, bytes, cudaMemcpyDeviceToDevice, s->stream));
        }
    }
    cudaCheck(cudaStreamSynchronize(s->stream));
    memcpy(s->logits_saved, s->logits, (size_t)nb * Vp * sizeof(float));
    for (int j = 0; j < nb; j++) {
        memcpy(s->logits + (size_t)j * Vp, s->logits_saved + (size_t)src[j] * Vp, (size_t)Vp * sizeof(float));
    }
}
#endif // __CUDACC__

#endif // LLMC_INFER_H

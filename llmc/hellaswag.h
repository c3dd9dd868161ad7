// HellaSwag multiple-choice evaluation: the file of tokenized examples and the scoring rule.
//
// Scoring (the standard completion scoring, as in lm-evaluation-harness's acc_norm-style
// length normalisation and llm.c): for each of the 4 endings, the model reads context + ending
// and we average the cross-entropy over the ending's tokens only; the predicted ending is the
// one with the lowest mean loss. Accuracy = fraction of examples predicted right.
//
// File (written by dev/data/hellaswag.py): 256 x int32 header (magic 20241127, version 1,
// number of examples, total tokens), then per example: int32 label, int32 context length,
// int32 x 4 ending lengths, then the uint16 tokens of the context and of the 4 endings.
#ifndef LLMC_HELLASWAG_H
#define LLMC_HELLASWAG_H

#include "utils.h"

#define HELLASWAG_MAGIC 20241127

typedef struct {
    int label;
    int ctx_len;
    int end_len[4];
    int* ctx;        // points into HellaSwag.tokens
    int* ending[4];
} HellaSwagExample;

typedef struct {
    int num_examples;
    int max_len;     // longest context + ending, tokens
    HellaSwagExample* examples;
    int* tokens;
} HellaSwag;

static void hellaswag_free(HellaSwag* hs) {
    free(hs->examples);
    free(hs->tokens);
    memset(hs, 0, sizeof(*hs));
}

// Loads and validates every example (ids must be < V). 0, or -1 with err naming the file.
static int hellaswag_load(HellaSwag* hs, const char* path, int V, char* err) {
    memset(hs, 0, sizeof(*hs));
    FILE* f = fopen_regular(path, err);
    if (f == NULL) {
        size_t l = strlen(err);
        snprintf(err + l, LLMC_ERRLEN - l, " (a HellaSwag file: make it with dev/data/hellaswag.py)");
        return -1;
    }
    int32_t header[256];
    long fsize = file_size_of(f);
    if (fread_exact(header, sizeof(int32_t), 256, f, path, err) != 0) { fclose(f); return -1; }
    if (header[0] != HELLASWAG_MAGIC) { fclose(f); return set_err(err, "%s: bad magic %d in HellaSwag header (expected %d)", path, header[0], HELLASWAG_MAGIC); }
    if (header[1] != 1) { fclose(f); return set_err(err, "%s: unsupported HellaSwag file version %d (supported: 1)", path, header[1]); }
    int n = header[2];
    long total = header[3];
    if (n <= 0 || total <= 0 || (long)n * 24 + total * 2 + 1024 != fsize) {
        fclose(f);
        return set_err(err, "%s: header says %d examples and %ld tokens, which does not match the file size %ld%s",
                       path, n, total, fsize, (long)n * 24 + total * 2 + 1024 > fsize ? " (truncated)" : "");
    }
    hs->examples = (HellaSwagExample*)calloc_check(n, sizeof(HellaSwagExample), "HellaSwag examples");
    hs->tokens = (int*)malloc_check(total * sizeof(int), "HellaSwag tokens");
    hs->num_examples = n;
    long used = 0;
    uint16_t buf[4096];
    for (int i = 0; i < n; i++) {
        HellaSwagExample* ex = &hs->examples[i];
        int32_t meta[6];
        if (fread_exact(meta, sizeof(int32_t), 6, f, path, err) != 0) { hellaswag_free(hs); fclose(f); return -1; }
        ex->label = meta[0];
        ex->ctx_len = meta[1];
        long len = meta[1];
        int bad = ex->label < 0 || ex->label > 3 || meta[1] < 1 || meta[1] > 4096;
        for (int j = 0; j < 4; j++) {
            ex->end_len[j] = meta[2 + j];
            bad |= meta[2 + j] < 1 || meta[2 + j] > 4096;
            len += meta[2 + j];
        }
        if (bad || used + len > total) {
            hellaswag_free(hs); fclose(f);
            return set_err(err, "%s: example %d has a bad label or lengths (label %d, context %d tokens)", path, i, meta[0], meta[1]);
        }
        ex->ctx = hs->tokens + used;
        for (long k = 0; k < len; k += 4096) {
            long chunk = len - k < 4096 ? len - k : 4096;
            if (fread_exact(buf, 2, chunk, f, path, err) != 0) { hellaswag_free(hs); fclose(f); return -1; }
            for (long q = 0; q < chunk; q++) {
                if (buf[q] >= V) {
                    hellaswag_free(hs); fclose(f);
                    return set_err(err, "%s: example %d holds token id %d, outside the vocabulary of %d", path, i, buf[q], V);
                }
                hs->tokens[used + k + q] = buf[q];
            }
        }
        int* p = ex->ctx + ex->ctx_len;
        for (int j = 0; j < 4; j++) {
            ex->ending[j] = p;
            p += ex->end_len[j];
            if (ex->ctx_len + ex->end_len[j] > hs->max_len) { hs->max_len = ex->ctx_len + ex->end_len[j]; }
        }
        used += len;
    }
    fclose(f);
    if (used != total) { hellaswag_free(hs); return set_err(err, "%s: examples hold %ld tokens, header says %ld", path, used, total); }
    return 0;
}

// Builds the sequence context + ending j into seq, at most max_tokens (>= 2) tokens: when it is
// longer, the context is cut from the left (at least one token stays, to predict the ending
// from), and an ending longer than the window is scored on its first max_tokens-1 tokens.
// Returns the length; *first_target is the index, in the target positions seq[1..len), of
// the ending's first token.
static int hellaswag_sequence(const HellaSwagExample* ex, int j, int* seq, int max_tokens, int* first_target) {
    int end = ex->end_len[j] < max_tokens - 1 ? ex->end_len[j] : max_tokens - 1;
    int ctx = ex->ctx_len < max_tokens - end ? ex->ctx_len : max_tokens - end;
    memcpy(seq, ex->ctx + (ex->ctx_len - ctx), ctx * sizeof(int));
    memcpy(seq + ctx, ex->ending[j], end * sizeof(int));
    *first_target = ctx - 1;
    return ctx + end;
}

#endif // LLMC_HELLASWAG_H

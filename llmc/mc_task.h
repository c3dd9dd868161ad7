// Multiple-choice tasks (HellaSwag, ARC, PIQA, Winogrande, TruthfulQA MC1/MC2,
// JCommonsenseQA, JTruthfulQA, ...): the tokenized file, the sequence a choice is scored on,
// and the metrics, with lm-evaluation-harness's conventions (dev/data/EVAL.md says them per
// task). The model part (batched forwards, processes) is llmc/train_mc.h.
//
// An example has one or more contexts and two or more choices; a choice is a continuation
// scored after one of the contexts. HellaSwag: 1 context, 4 continuations. Winogrande
// (partial scoring): 2 contexts (the sentence up to the blank, each option filled in), 2
// choices with the same continuation (the rest of the sentence). The score of a choice is the
// sum of the log-probabilities of its continuation's tokens (its log-likelihood, ll).
//
// File (dev/data/eval_tasks.py writes it), little-endian:
//   header 256 x int32: [0] magic 20261203, [1] version 1, [2] examples, [3] tokens,
//     [4] contexts, [5] choices (all examples together), [6] kind (0: one true choice,
//     1: several true, scored by MC2), [7] headline metric (an McMetric), [8] vocabulary size
//     of the tokenizer, [9] k of k-shot, [10] the k-shot seed; bytes 64..127 the task's name
//     (NUL-terminated, [a-z0-9_]).
//   per example: int32 num_contexts, int32 num_choices, int32 x num_contexts context
//     lengths (tokens), then per choice 5 x int32: context index, continuation tokens,
//     continuation characters (Unicode code points, without the target delimiter: acc_norm's
//     divisor), its UTF-8 bytes (acc_bytes' divisor), true (1) or false (0); then the uint16
//     tokens of the contexts, then of the continuations, in order.
#ifndef LLMC_MC_TASK_H
#define LLMC_MC_TASK_H

#include "utils.h"

#define MC_TASK_MAGIC 20261203
#define MC_TASK_VERSION 1
#define MC_OLD_HELLASWAG_MAGIC 20241127  // our HellaSwag-only file before this one
#define MC_MAX_CHOICES 64
#define MC_MAX_TOKENS (1 << 20)          // per context or continuation

enum { MC_KIND_ONE_TRUE = 0, MC_KIND_MC2 = 1 };

// acc: the choice of highest ll; acc_norm: highest ll / characters (the harness's acc_norm);
// acc_bytes: highest ll / UTF-8 bytes; acc_token: highest ll / tokens scored, i.e. the lowest
// mean loss (llm.c's HellaSwag rule, which -h reports); mc2: the probability mass on the true
// choices, p_i = exp(ll_i) normalised over the example's choices (TruthfulQA MC2).
typedef enum { MC_ACC = 0, MC_ACC_NORM, MC_ACC_BYTES, MC_ACC_TOKEN, MC_MC2, MC_NUM_METRICS } McMetric;
static const char* const mc_metric_names[MC_NUM_METRICS] = {"acc", "acc_norm", "acc_bytes", "acc_token", "mc2"};

typedef struct {
    int context;       // index among its example's contexts
    int len;           // continuation tokens
    int chars, bytes;  // the continuation's characters and UTF-8 bytes (delimiter excluded)
    int is_true;
    const int* tokens;
} McChoice;

typedef struct {
    int num_contexts, num_choices;
    int first_context, first_choice;  // into McTask.context_* and McTask.choices
} McExample;

typedef struct {
    char name[64];
    int kind, headline, vocab_size, shots, shot_seed;
    int num_examples, num_contexts, num_choices;
    int max_choices;       // most choices of one example
    McExample* examples;
    McChoice* choices;
    int* context_len;
    const int** context_tokens;
    int* tokens;
} McTask;

static void mc_task_free(McTask* t) {
    free(t->examples);
    free(t->choices);
    free(t->context_len);
    free((void*)t->context_tokens);
    free(t->tokens);
    memset(t, 0, sizeof(*t));
}

// The metrics a task of this kind reports (mc2 for kind 1, the four accuracies otherwise).
static int mc_task_has_metric(const McTask* t, int m) {
    return t->kind == MC_KIND_MC2 ? m == MC_MC2 : m != MC_MC2;
}

// reads count int32 into out; 0 or -1 with err (the file named, "truncated")
static int mc_read_ints(FILE* f, const char* path, int32_t* out, int count, int example, char* err) {
    if (fread(out, sizeof(int32_t), count, f) != (size_t)count) {
        return set_err(err, "%s: truncated in example %d", path, example);
    }
    return 0;
}

// Loads and validates the whole file for a model of vocabulary V (the file must have been
// tokenized for the same vocabulary size). 0, or -1 with err naming the file and the fault.
static int mc_task_load(McTask* t, const char* path, int V, char* err) {
    memset(t, 0, sizeof(*t));
    FILE* f = fopen_regular(path, err);
    if (f == NULL) {
        size_t l = strlen(err);
        snprintf(err + l, LLMC_ERRLEN - l, " (a task file: make eval-data, or dev/data/eval_tasks.py)");
        return -1;
    }
    long fsize = file_size_of(f);
    int32_t h[256];
    if (fread_exact(h, sizeof(int32_t), 256, f, path, err) != 0) { fclose(f); return -1; }
    if (h[0] == MC_OLD_HELLASWAG_MAGIC) {
        fclose(f);
        return set_err(err, "%s: a HellaSwag file in the format before multiple-choice tasks (magic %d): "
                       "write it again with make eval-data", path, h[0]);
    }
    if (h[0] != MC_TASK_MAGIC) { fclose(f); return set_err(err, "%s: bad magic %d (expected %d, a task file)", path, h[0], MC_TASK_MAGIC); }
    if (h[1] != MC_TASK_VERSION) { fclose(f); return set_err(err, "%s: unsupported task file version %d (supported: %d)", path, h[1], MC_TASK_VERSION); }
    int n = h[2], ncontexts = h[4], nchoices = h[5];
    long total = h[3];
    // each example takes at least 8 + 4 + 2 * 20 bytes of lengths and 3 * 2 of tokens
    // (each context takes a 4-byte length, each choice 20 bytes of fields: no count the file
    // cannot hold is allocated for)
    long body = fsize - 1024;
    if (n <= 0 || total <= 0 || ncontexts < n || (long)nchoices < 2L * n || (long)n * 58 > body || total > body / 2 ||
        (long)ncontexts * 4 > body || (long)nchoices * 20 > body) {
        fclose(f);
        return set_err(err, "%s: header says %d examples, %ld tokens, %d contexts, %d choices, which a file of %ld bytes "
                       "cannot hold%s", path, n, total, ncontexts, nchoices, fsize, fsize < 1024 + 58L * (n > 0 ? n : 1) ? " (truncated)" : "");
    }
    if (h[6] != MC_KIND_ONE_TRUE && h[6] != MC_KIND_MC2) { fclose(f); return set_err(err, "%s: unknown task kind %d (0: one true choice, 1: MC2)", path, h[6]); }
    if (h[7] < 0 || h[7] >= MC_NUM_METRICS) { fclose(f); return set_err(err, "%s: unknown headline metric %d", path, h[7]); }
    if (h[8] != V) {
        fclose(f);
        return set_err(err, "%s: tokenized for a vocabulary of %d tokens, the model has %d: prepare it with the model's "
                       "tokenizer (dev/data/eval_tasks.py --tiktoken FILE)", path, h[8], V);
    }
    if (h[9] < 0 || h[9] > 1000) { fclose(f); return set_err(err, "%s: bad k-shot count %d", path, h[9]); }
    const char* name = (const char*)&h[16];
    int name_len = 0;
    while (name_len < 63 && name[name_len] != '\0') {
        char c = name[name_len];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) { name_len = -1; break; }
        name_len++;
    }
    if (name_len <= 0 || name[name_len] != '\0') { fclose(f); return set_err(err, "%s: the task name in the header is not [a-z0-9_]+", path); }
    memcpy(t->name, name, name_len + 1);
    t->kind = h[6]; t->headline = h[7]; t->vocab_size = h[8]; t->shots = h[9]; t->shot_seed = h[10];
    if (!mc_task_has_metric(t, t->headline)) { fclose(f); return set_err(err, "%s: headline metric %s does not apply to this kind of task", path, mc_metric_names[t->headline]); }
    t->num_examples = n; t->num_contexts = ncontexts; t->num_choices = nchoices;
    t->examples = (McExample*)calloc_check(n, sizeof(McExample), "task examples");
    t->choices = (McChoice*)calloc_check(nchoices, sizeof(McChoice), "task choices");
    t->context_len = (int*)calloc_check(ncontexts, sizeof(int), "task contexts");
    t->context_tokens = (const int**)calloc_check(ncontexts, sizeof(int*), "task contexts");
    t->tokens = (int*)malloc_check(total * sizeof(int), "task tokens");
    int32_t meta[MC_MAX_CHOICES * 5];
    uint16_t buf[4096];
    long used = 0;
    int ctx_used = 0, ch_used = 0, rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        McExample* ex = &t->examples[i];
        if ((rc = mc_read_ints(f, path, meta, 2, i, err)) != 0) { break; }
        int nc = meta[0], nch = meta[1];
        if (nc < 1 || nc > MC_MAX_CHOICES || nch < 2 || nch > MC_MAX_CHOICES || ctx_used + nc > ncontexts ||
            ch_used + nch > nchoices) {
            rc = set_err(err, "%s: example %d has %d contexts and %d choices (1..%d contexts, 2..%d choices, within the "
                         "header's totals)", path, i, nc, nch, MC_MAX_CHOICES, MC_MAX_CHOICES);
            break;
        }
        ex->num_contexts = nc; ex->num_choices = nch; ex->first_context = ctx_used; ex->first_choice = ch_used;
        if (nch > t->max_choices) { t->max_choices = nch; }
        long len = 0;
        if ((rc = mc_read_ints(f, path, meta, nc, i, err)) != 0) { break; }
        for (int c = 0; c < nc && rc == 0; c++) {
            if (meta[c] < 1 || meta[c] > MC_MAX_TOKENS) { rc = set_err(err, "%s: example %d: context %d has %d tokens", path, i, c, meta[c]); }
            t->context_len[ctx_used + c] = meta[c];
            len += meta[c];
        }
        if (rc != 0) { break; }
        if ((rc = mc_read_ints(f, path, meta, 5 * nch, i, err)) != 0) { break; }
        int trues = 0;
        for (int c = 0; c < nch; c++) {
            const int32_t* m = meta + 5 * c;
            McChoice* ch = &t->choices[ch_used + c];
            ch->context = m[0]; ch->len = m[1]; ch->chars = m[2]; ch->bytes = m[3]; ch->is_true = m[4];
            if (m[0] < 0 || m[0] >= nc || m[1] < 1 || m[1] > MC_MAX_TOKENS || m[2] < 1 || m[3] < m[2] || (long)m[3] > 4L * m[2] ||
                (m[4] != 0 && m[4] != 1)) {
                rc = set_err(err, "%s: example %d, choice %d: bad fields (context %d, %d tokens, %d characters, %d bytes, "
                             "true %d)", path, i, c, m[0], m[1], m[2], m[3], m[4]);
                break;
            }
            trues += m[4];
            len += m[1];
        }
        if (rc != 0) { break; }
        if (t->kind == MC_KIND_ONE_TRUE ? trues != 1 : (trues < 1 || trues == nch)) {
            rc = set_err(err, "%s: example %d has %d true choices of %d (%s)", path, i, trues, nch,
                         t->kind == MC_KIND_ONE_TRUE ? "this task needs exactly one" : "MC2 needs at least one true and one false");
            break;
        }
        if (used + len > total) { rc = set_err(err, "%s: example %d goes past the header's %ld tokens", path, i, total); break; }
        for (long k = 0; k < len && rc == 0; k += 4096) {
            long chunk = len - k < 4096 ? len - k : 4096;
            if (fread(buf, 2, chunk, f) != (size_t)chunk) { rc = set_err(err, "%s: truncated in the tokens of example %d", path, i); break; }
            for (long q = 0; q < chunk; q++) {
                if (buf[q] >= V) { rc = set_err(err, "%s: example %d holds token id %d, outside the vocabulary of %d", path, i, buf[q], V); break; }
                t->tokens[used + k + q] = buf[q];
            }
        }
        if (rc != 0) { break; }
        int* p = t->tokens + used;
        for (int c = 0; c < nc; c++) { t->context_tokens[ctx_used + c] = p; p += t->context_len[ctx_used + c]; }
        for (int c = 0; c < nch; c++) { t->choices[ch_used + c].tokens = p; p += t->choices[ch_used + c].len; }
        used += len;
        ctx_used += nc;
        ch_used += nch;
    }
    if (rc == 0 && (used != total || ctx_used != ncontexts || ch_used != nchoices)) {
        rc = set_err(err, "%s: the examples hold %ld tokens, %d contexts, %d choices; the header says %ld, %d, %d", path,
                     used, ctx_used, ch_used, total, ncontexts, nchoices);
    }
    if (rc == 0 && ftell(f) != fsize) { rc = set_err(err, "%s: %ld bytes after the last example", path, fsize - ftell(f)); }
    fclose(f);
    if (rc != 0) { mc_task_free(t); }
    return rc;
}

// The sequence choice c of example ex is scored on, as lm-evaluation-harness builds it: the
// last max_len (T + 1) tokens of context + continuation; the model reads seq[0..len-1) and
// the continuation's tokens are the targets from index *first_target on (all of them, unless
// the continuation alone is longer than the window). Returns len.
static int mc_sequence(const McTask* t, const McExample* ex, int c, int* seq, int max_len, int* first_target) {
    const McChoice* ch = &t->choices[ex->first_choice + c];
    int ci = ex->first_context + ch->context;
    int clen = t->context_len[ci];
    int whole = clen + ch->len;
    int len = whole < max_len ? whole : max_len;
    int skip = whole - len;  // tokens cut from the left
    for (int i = 0; i < len; i++) {
        int k = skip + i;
        seq[i] = k < clen ? t->context_tokens[ci][k] : ch->tokens[k - clen];
    }
    int scored = ch->len < len - 1 ? ch->len : len - 1;
    *first_target = len - 1 - scored;
    return len;
}

// index of the first maximum of score[i] / div[i] (div NULL: 1), as numpy's argmax
static int mc_argmax(const double* score, const double* div, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) {
        double a = div ? score[i] / div[i] : score[i], b = div ? score[best] / div[best] : score[best];
        if (a > b) { best = i; }
    }
    return best;
}

// The metrics of one example from its choices' log-likelihoods ll and scored token counts
// ntok, into value[MC_NUM_METRICS] (the ones that do not apply are left 0).
static void mc_score_example(const McTask* t, const McExample* ex, const double* ll, const int* ntok, double* value) {
    const McChoice* ch = &t->choices[ex->first_choice];
    int n = ex->num_choices;
    for (int m = 0; m < MC_NUM_METRICS; m++) { value[m] = 0.0; }
    if (t->kind == MC_KIND_MC2) {
        // exp(ll) normalised over the choices: shifted by the largest ll first, which changes
        // nothing mathematically and keeps long answers (ll of -800) from underflowing to 0/0
        double mx = ll[0], all = 0.0, yes = 0.0;
        for (int i = 1; i < n; i++) { if (ll[i] > mx) { mx = ll[i]; } }
        for (int i = 0; i < n; i++) {
            double p = exp(ll[i] - mx);
            all += p;
            if (ch[i].is_true) { yes += p; }
        }
        value[MC_MC2] = yes / all;
        return;
    }
    double chars[MC_MAX_CHOICES], bytes[MC_MAX_CHOICES], toks[MC_MAX_CHOICES];
    for (int i = 0; i < n; i++) { chars[i] = ch[i].chars; bytes[i] = ch[i].bytes; toks[i] = ntok[i]; }
    value[MC_ACC] = ch[mc_argmax(ll, NULL, n)].is_true;
    value[MC_ACC_NORM] = ch[mc_argmax(ll, chars, n)].is_true;
    value[MC_ACC_BYTES] = ch[mc_argmax(ll, bytes, n)].is_true;
    value[MC_ACC_TOKEN] = ch[mc_argmax(ll, toks, n)].is_true;
}

// What guessing scores on an example: 1 / choices, or for MC2 the share of true choices
// (uniform probabilities).
static double mc_chance(const McTask* t, const McExample* ex) {
    if (t->kind == MC_KIND_MC2) {
        int trues = 0;
        for (int i = 0; i < ex->num_choices; i++) { trues += t->choices[ex->first_choice + i].is_true; }
        return (double)trues / ex->num_choices;
    }
    return 1.0 / ex->num_choices;
}

#endif // LLMC_MC_TASK_H

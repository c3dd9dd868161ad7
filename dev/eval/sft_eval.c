// Evaluates a fine-tuned model on a multiple-choice task file, the way it was trained: every
// prompt goes through the chat template of llmc/chat.h, so the model sees exactly the tokens
// sft_prepare put in its training shards.
//
//   sft_eval -e MODEL.bin [--peft-init ADAPTER.peft] --task FILE.jsonl [--max-examples N]
//            [--gen-tokens N] [--report OUT.json] [--scores OUT.tsv] [--generations OUT.jsonl]
//            [vocabulary options of sft_prepare]
//
// Task file: one JSON object per line (dev/data/sft_sources.py writes <task>_test_choices.jsonl):
//   {"prompt": "...", "choices": ["...", ...], "label": <index into choices>, "system": "..."}
// "system" is optional (a string, or null for none), as in sft_prepare; other keys are ignored.
//
// For each example, with P = chat_prompt_ids(system, prompt) (EOT [, system], user segment):
// (a) log-likelihood choice: for each choice c with A_c = chat_answer_ids(c) (its tokens, then
//     EOT), score(c) = sum over j of log p(A_c[j] | P, A_c[0..j)), the answer's EOT included:
//     the model must also say that the answer ends there. Predicted: the argmax of score (the
//     first on ties), and of score / |A_c| (length-normalized, per token).
// (b) greedy generation from P: the most likely token (the first on ties), repeatedly, until
//     EOT or --gen-tokens tokens (default: the longest choice's tokens + 1, enough for the
//     longest answer and its EOT). Correct if the generated text (EOT excluded) equals the label's
//     text, compared as bytes after decoding the ids with the vocabulary.
//
// Computation. The choices of an example are the rows of one forward pass (prompt + answer,
// padded with EOT to the longest row; causal attention makes the padding invisible to the
// positions that are scored). The log-probabilities come from the logits in double
// (log-sum-exp over the real vocabulary). Greedy generation reuses those logits while what it
// has generated so far is a prefix of some choice's answer (the row holds exactly that
// context), so a model that answers with one of the choices costs no extra forward; only
// when it leaves every choice does it run one forward per token (no KV cache: the CPU
// trainer has none). A soft prompt (PEFT prompt) adds its k positions in front of every row:
// prompt + answer must fit in maxT - k.
//
// Bad input. A missing or unreadable file, a bad flag, a model/vocabulary mismatch: one error,
// exit 1. A bad line (invalid JSON, a missing or mistyped field, an empty text, a label out of
// range, a prompt + answer longer than the model's context): an error naming FILE:LINE and
// exit 1, before any model computation; with --skip-bad such lines are skipped, counted by
// reason (with their first line numbers) in the summary and the report instead. Blank lines
// are skipped and counted. Invalid UTF-8 bytes become U+FFFD, as in sft_prepare.
#define TESTING
#include "train_gpt.c"
#include "llmc/bpe.h"
#include "llmc/chat.h"
#include "dev/data/doc_reader.h"
#include "dev/data/json_text.h"

static const char* usage_text =
"usage: sft_eval -e MODEL.bin --task FILE.jsonl [options]\n"
"Scores a model on a multiple-choice task file ({\"prompt\", \"choices\", \"label\"[, \"system\"]} per line)\n"
"through the SFT chat template of llmc/chat.h: (a) log-likelihood of each choice + EOT given the\n"
"prompt (argmax, and argmax of the per-token mean), (b) greedy generation compared with the label's\n"
"text (bytes, after decoding). Prints a one-line summary; --report writes JSON, --scores one TSV row\n"
"per example and choice, --generations one JSON line per example (all written atomically).\n"
"Vocabulary: GPT-2 from ../shared/data/gpt2 (looked up from the current directory, then from\n"
"this program's repository), or --encoder/--merges, or --tiktoken. Numbers accept 1e3.\n"
"Exit status: 0 ok; 1 on bad usage, unreadable input, a bad line (unless --skip-bad), or no example.";

// ----------------------------------------------------------------------------
// bad lines

enum { BAD_JSON, BAD_FIELD, BAD_LABEL, BAD_TOO_LONG, NUM_BAD };
static const char* bad_key[NUM_BAD] = { "invalid_json", "bad_field", "label_out_of_range", "too_long" };
static const char* bad_text[NUM_BAD] = { "invalid JSON", "missing/wrong/empty field", "label out of range", "too long for maxT" };

#define FIRST_LINES 5
#define DETAIL_LEN 512

typedef struct {
    long count;
    int nfirst;
    long first_line[FIRST_LINES];
    char detail[DETAIL_LEN + 1100];  // "file:line: what was wrong" of the first one
} BadCount;

static int bad(char* detail, int reason, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(detail, DETAIL_LEN, fmt, args);
    va_end(args);
    return reason;
}

// ----------------------------------------------------------------------------
// the task: every usable example, tokenized

typedef struct {
    long line;            // 1-based line number in the task file
    int label;
    int nchoices;
    int prompt_len;       // tokens of the templated prompt
    size_t prompt_off;    // into Task.ids
    int first_choice;     // into Task.choices
    int max_answer;       // the longest answer, EOT included
} Example;

typedef struct {
    size_t ids_off;       // the answer's ids (text + EOT) in Task.ids
    int len;              // ... and how many
    size_t text_off;      // the choice's text (decoded JSON, UTF-8 repaired) in Task.text
    size_t text_len;
} Choice;

typedef struct {
    Example* ex;
    int n, cap;
    Choice* choices;
    int nch, chcap;
    BpeIds ids;
    BpeBytes text;
    int max_choices;
    int max_positions;    // the most positions a forward needs (before the soft prompt)
    long lines, blank, utf8_lines, nbad;
    int stopped;          // --max-examples reached
    BadCount reasons[NUM_BAD];
} Task;

static Choice* task_add_choice(Task* t) {
    if (t->nch == t->chcap) {
        t->chcap = t->chcap ? 2 * t->chcap : 256;
        t->choices = (Choice*)realloc(t->choices, (size_t)t->chcap * sizeof(Choice));
        if (t->choices == NULL) { die("out of memory"); }
    }
    return &t->choices[t->nch++];
}

static Example* task_add_example(Task* t) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->ex = (Example*)realloc(t->ex, (size_t)t->cap * sizeof(Example));
        if (t->ex == NULL) { die("out of memory"); }
    }
    return &t->ex[t->n++];
}

// ----------------------------------------------------------------------------
// parsing one line

typedef struct { size_t off, len; } Span;

typedef struct {
    BpeBytes key;       // scratch: a decoded key
    BpeBytes text;      // prompt, system, choices, back to back
    Span prompt, system;
    int has_system;
    Span* choices;
    int nch, chcap;
    long long label;
} Line;

// decodes the JSON string at s[p] onto ln->text
static Span line_string(Line* ln, const unsigned char* s, size_t n, size_t p) {
    Span sp = { ln->text.len, 0 };
    doc_json_string(s, n, &p, &ln->text, NULL);
    sp.len = ln->text.len - sp.off;
    return sp;
}

// Parses one line (no newline) into ln. -1 if usable, else the bad reason with detail.
static int parse_line(Line* ln, const unsigned char* s, size_t n, char* detail) {
    enum { K_PROMPT, K_CHOICES, K_LABEL, K_SYSTEM, NKEYS };
    static const char* const keys[NKEYS] = { "prompt", "choices", "label", "system" };
    ln->text.len = 0;
    ln->nch = 0;
    ln->has_system = 0;
    // syntax first, so that everything after may assume valid JSON
    size_t p = 0;
    int r = doc_json_skip(s, n, &p, 1);
    if (r == -2) { return bad(detail, BAD_JSON, "nesting deeper than %d", DOC_JSON_MAX_DEPTH); }
    if (r != 0) { return bad(detail, BAD_JSON, "syntax error at byte %zu", p + 1); }
    doc_json_ws(s, n, &p);
    if (p != n) { return bad(detail, BAD_JSON, "text after the JSON value at byte %zu", p + 1); }
    p = 0;
    doc_json_ws(s, n, &p);
    if (s[p] != '{') { return bad(detail, BAD_FIELD, "the line is %s, not an object", json_kind(s[p])); }
    size_t at[NKEYS] = { 0, 0, 0, 0 };  // where each value starts (0: absent; a value never starts at 0)
    p++;
    doc_json_ws(s, n, &p);
    if (s[p] != '}') {
        for (;;) {
            ln->key.len = 0;
            doc_json_ws(s, n, &p);
            doc_json_string(s, n, &p, &ln->key, NULL);
            doc_json_ws(s, n, &p);
            p++;  // ':'
            doc_json_ws(s, n, &p);
            for (int k = 0; k < NKEYS; k++) {
                if (ln->key.len == strlen(keys[k]) && memcmp(ln->key.data, keys[k], ln->key.len) == 0) {
                    if (at[k] != 0) { return bad(detail, BAD_FIELD, "the key \"%s\" is given twice", keys[k]); }
                    at[k] = p;
                }
            }
            doc_json_skip(s, n, &p, 1);
            doc_json_ws(s, n, &p);
            if (s[p++] != ',') { break; }
        }
    }
    for (int k = K_PROMPT; k <= K_LABEL; k++) {
        if (at[k] == 0) { return bad(detail, BAD_FIELD, "no \"%s\"", keys[k]); }
    }
    if (s[at[K_PROMPT]] != '"') { return bad(detail, BAD_FIELD, "\"prompt\" is %s, not a string", json_kind(s[at[K_PROMPT]])); }
    if (s[at[K_CHOICES]] != '[') { return bad(detail, BAD_FIELD, "\"choices\" is %s, not an array", json_kind(s[at[K_CHOICES]])); }
    if (at[K_SYSTEM] && s[at[K_SYSTEM]] != '"' && s[at[K_SYSTEM]] != 'n') {
        return bad(detail, BAD_FIELD, "\"system\" is %s, not a string or null", json_kind(s[at[K_SYSTEM]]));
    }
    // label: a JSON integer (no fraction, no exponent), checked against the choices below
    {
        const unsigned char* v = s + at[K_LABEL];
        size_t i = 0, m = n - at[K_LABEL];
        if (v[0] != '-' && !isdigit(v[0])) { return bad(detail, BAD_FIELD, "\"label\" is %s, not an integer", json_kind(v[0])); }
        if (v[0] == '-') { i++; }
        size_t d = i;
        while (i < m && isdigit(v[i])) { i++; }
        if (i == d || (i < m && (v[i] == '.' || v[i] == 'e' || v[i] == 'E' || isalpha(v[i])))) {
            int shown = 0;
            while ((size_t)shown < m && shown < 24 && (isalnum(v[shown]) || v[shown] == '.' || v[shown] == '-' || v[shown] == '+')) { shown++; }
            return bad(detail, BAD_FIELD, "\"label\" is %.*s, not an integer index into \"choices\"", shown, (const char*)v);
        }
        char num[32];
        if (i >= sizeof(num)) { return bad(detail, BAD_LABEL, "\"label\" %.24s... is out of range", (const char*)v); }
        memcpy(num, v, i);
        num[i] = '\0';
        ln->label = strtoll(num, NULL, 10);
    }
    // the texts
    ln->prompt = line_string(ln, s, n, at[K_PROMPT]);
    if (blank_text(ln->text.data + ln->prompt.off, ln->prompt.len)) { return bad(detail, BAD_FIELD, "\"prompt\" is empty"); }
    if (at[K_SYSTEM] && s[at[K_SYSTEM]] == '"') {
        ln->system = line_string(ln, s, n, at[K_SYSTEM]);
        // an empty system text is the same as none, as in sft_prepare
        ln->has_system = !blank_text(ln->text.data + ln->system.off, ln->system.len);
    }
    p = at[K_CHOICES] + 1;
    doc_json_ws(s, n, &p);
    if (s[p] == ']') { return bad(detail, BAD_FIELD, "\"choices\" is an empty array"); }
    for (int i = 0; ; i++) {
        doc_json_ws(s, n, &p);
        if (s[p] != '"') { return bad(detail, BAD_FIELD, "choices[%d] is %s, not a string", i, json_kind(s[p])); }
        if (ln->nch == ln->chcap) {
            ln->chcap = ln->chcap ? 2 * ln->chcap : 16;
            ln->choices = (Span*)realloc(ln->choices, (size_t)ln->chcap * sizeof(Span));
            if (ln->choices == NULL) { die("out of memory"); }
        }
        Span sp = line_string(ln, s, n, p);
        if (blank_text(ln->text.data + sp.off, sp.len)) { return bad(detail, BAD_FIELD, "choices[%d] is empty", i); }
        ln->choices[ln->nch++] = sp;
        doc_json_skip(s, n, &p, 1);
        doc_json_ws(s, n, &p);
        if (s[p++] != ',') { break; }
    }
    if (ln->label < 0 || ln->label >= ln->nch) {
        return bad(detail, BAD_LABEL, "\"label\" is %lld, outside 0..%d (%d choices)", ln->label, ln->nch - 1, ln->nch);
    }
    return -1;
}

// ----------------------------------------------------------------------------
// reading the task file

typedef struct {
    const char* path;
    int max_positions;    // maxT - k: the positions a row may use
    int k;                // soft-prompt positions (for the message)
    long long max_examples;
    int skip_bad;
} ReadOpts;

static void read_task(Task* t, const ReadOpts* o, ChatEncoder* ce) {
    char err[LLMC_ERRLEN], detail[DETAIL_LEN];
    FILE* f = fopen_regular(o->path, err);
    if (f == NULL) { die("--task: %s", err); }
    Line ln;
    memset(&ln, 0, sizeof(ln));
    BpeBytes fixed = {0};
    BpeIds ans = {0};
    char* buf = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    while ((got = getline(&buf, &cap, f)) != -1) {
        if (o->max_examples >= 0 && t->n >= o->max_examples) { t->stopped = 1; break; }
        lineno++;
        t->lines++;
        const unsigned char* s = (const unsigned char*)buf;
        size_t n = (size_t)got;
        if (lineno == 1) { size_t b = doc_bom_len(s, n); s += b; n -= b; }
        if (n > 0 && s[n - 1] == '\n') { n--; }
        if (blank_text(s, n)) { t->blank++; continue; }
        if (chat_utf8_repair(s, n, &fixed) > 0) { t->utf8_lines++; s = fixed.data; n = fixed.len; }
        int reason = parse_line(&ln, s, n, detail);
        Example* e = NULL;
        if (reason < 0) {
            // tokenize by the template; the answers go after the prompt in t->ids
            size_t ids_mark = t->ids.len, text_mark = t->text.len;
            int ch_mark = t->nch;
            const unsigned char* txt = ln.text.data;
            BpeIds prompt = {0};
            chat_prompt_ids(ce, ln.has_system ? txt + ln.system.off : NULL, ln.has_system ? ln.system.len : 0,
                            txt + ln.prompt.off, ln.prompt.len, &prompt);
            size_t prompt_off = t->ids.len;
            for (size_t i = 0; i < prompt.len; i++) { bpe_ids_push(&t->ids, prompt.data[i]); }
            int max_answer = 0;
            for (int c = 0; c < ln.nch; c++) {
                chat_answer_ids(ce, txt + ln.choices[c].off, ln.choices[c].len, &ans);
                Choice* ch = task_add_choice(t);
                ch->ids_off = t->ids.len;
                ch->len = (int)ans.len;
                for (size_t i = 0; i < ans.len; i++) { bpe_ids_push(&t->ids, ans.data[i]); }
                ch->text_off = t->text.len;
                ch->text_len = ln.choices[c].len;
                bpe_bytes_append(&t->text, txt + ln.choices[c].off, ln.choices[c].len);
                if (ch->len > max_answer) { max_answer = ch->len; }
            }
            // a row's inputs are the prompt and the answer but its last token (EOT: a target only)
            long need = (long)prompt.len + max_answer - 1;
            if (need > o->max_positions) {
                if (o->k > 0) {
                    snprintf(err, sizeof(err), " (maxT %d minus the soft prompt's %d)", o->max_positions + o->k, o->k);
                } else {
                    snprintf(err, sizeof(err), " (its maxT)");
                }
                reason = bad(detail, BAD_TOO_LONG, "the templated prompt (%zu tokens) and the longest choice (%d tokens "
                             "with EOT) need %ld positions; the model has %d%s", prompt.len, max_answer, need,
                             o->max_positions, err);
                t->ids.len = ids_mark;
                t->text.len = text_mark;
                t->nch = ch_mark;
            } else {
                e = task_add_example(t);
                e->line = lineno;
                e->label = (int)ln.label;
                e->nchoices = ln.nch;
                e->prompt_len = (int)prompt.len;
                e->prompt_off = prompt_off;
                e->first_choice = ch_mark;
                e->max_answer = max_answer;
                if (ln.nch > t->max_choices) { t->max_choices = ln.nch; }
                if (need > t->max_positions) { t->max_positions = (int)need; }
            }
            bpe_ids_free(&prompt);
        }
        if (e == NULL) {
            if (!o->skip_bad) { die("%s:%ld: %s (%s; --skip-bad skips such lines)", o->path, lineno, detail, bad_text[reason]); }
            BadCount* b = &t->reasons[reason];
            if (b->count == 0) { snprintf(b->detail, sizeof(b->detail), "%.1000s:%ld: %s", o->path, lineno, detail); }
            if (b->nfirst < FIRST_LINES) { b->first_line[b->nfirst++] = lineno; }
            b->count++;
            t->nbad++;
        }
    }
    if (ferror(f)) { die("%s: read error after line %ld", o->path, lineno); }
    fclose(f);
    free(buf);
    bpe_bytes_free(&fixed);
    bpe_ids_free(&ans);
    bpe_bytes_free(&ln.key);
    bpe_bytes_free(&ln.text);
    free(ln.choices);
}

// ----------------------------------------------------------------------------
// output helpers: text buffers written atomically at the end

static void write_atomic(const char* path, const BpeBytes* b) {
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, b->data, 1, b->len);
    atomic_commit(&af);
}

// a share, or null in JSON when there is nothing to divide by
static void buf_share(BpeBytes* b, long num, long den) {
    if (den > 0) { buf_printf(b, "%.6f", (double)num / (double)den); } else { buf_printf(b, "null"); }
}

// ----------------------------------------------------------------------------
// per-label counts, keyed by the choice's text

#define MAX_LABELS 256

typedef struct {
    size_t text_off, text_len;   // in Task.text
    long n, correct_ll, correct_ll_norm, correct_greedy;  // as the label
    long predicted_ll, predicted_ll_norm, generated;      // as a prediction
} LabelCount;

typedef struct {
    LabelCount* l;
    int n;
    long overflow;   // examples whose label did not fit in the table
} Labels;

// the entry of this choice's text (added if new), or NULL when the table is full
static LabelCount* label_entry(Labels* ls, const Task* t, const Choice* ch) {
    for (int i = 0; i < ls->n; i++) {
        LabelCount* e = &ls->l[i];
        if (e->text_len == ch->text_len && memcmp(t->text.data + e->text_off, t->text.data + ch->text_off, ch->text_len) == 0) {
            return e;
        }
    }
    if (ls->n == MAX_LABELS) { return NULL; }
    LabelCount* e = &ls->l[ls->n++];
    memset(e, 0, sizeof(*e));
    e->text_off = ch->text_off;
    e->text_len = ch->text_len;
    return e;
}

// ----------------------------------------------------------------------------
// scoring

typedef struct {
    GPT2* model;
    const Task* task;
    int V, Vp, k, eot;
    int rows;             // rows per forward (allocated batch)
    int positions;        // allocated positions per row (before the soft prompt)
    int* inputs;          // (rows, positions)
    double* logprob;      // per choice of the example: sum of log p over its answer
    int* argmax;          // per choice and answer position: the most likely next token there
    long forwards;
} Scorer;

// log p(target) and the argmax at one position's logits (real vocabulary, in double)
static double position_logprob(const float* logits, int V, int target, int* best) {
    float mx = logits[0];
    int arg = 0;
    for (int v = 1; v < V; v++) {
        if (logits[v] > mx) { mx = logits[v]; arg = v; }
    }
    double sum = 0.0;
    for (int v = 0; v < V; v++) { sum += exp((double)logits[v] - (double)mx); }
    *best = arg;
    return (double)logits[target] - (double)mx - log(sum);
}

static const float* logits_at(const Scorer* sc, int b, int T, int t) {
    return sc->model->acts.logits + ((size_t)b * (T + sc->k) + sc->k + t) * sc->Vp;
}

// (a): every choice of e in rows of one forward (several when the choices outnumber the
// rows); fills sc->logprob[c] and sc->argmax[c * max_answer + j].
static void score_choices(Scorer* sc, const Example* e) {
    const Task* t = sc->task;
    const int* prompt = t->ids.data + e->prompt_off;
    int P = e->prompt_len;
    for (int c0 = 0; c0 < e->nchoices; c0 += sc->rows) {
        int nrows = e->nchoices - c0 < sc->rows ? e->nchoices - c0 : sc->rows;
        int T = 0;
        for (int r = 0; r < nrows; r++) {
            int len = P + t->choices[e->first_choice + c0 + r].len - 1;
            if (len > T) { T = len; }
        }
        for (int r = 0; r < nrows; r++) {
            const Choice* ch = &t->choices[e->first_choice + c0 + r];
            int* row = sc->inputs + (size_t)r * T;
            memcpy(row, prompt, (size_t)P * sizeof(int));
            memcpy(row + P, t->ids.data + ch->ids_off, (size_t)(ch->len - 1) * sizeof(int));
            for (int i = P + ch->len - 1; i < T; i++) { row[i] = sc->eot; }  // never read by a scored position
        }
        gpt2_forward(sc->model, sc->inputs, NULL, NULL, nrows, T);
        sc->forwards++;
        for (int r = 0; r < nrows; r++) {
            int c = c0 + r;
            const Choice* ch = &t->choices[e->first_choice + c];
            const int* ans = t->ids.data + ch->ids_off;
            double sum = 0.0;
            for (int j = 0; j < ch->len; j++) {
                sum += position_logprob(logits_at(sc, r, T, P - 1 + j), sc->V, ans[j], &sc->argmax[(size_t)c * e->max_answer + j]);
            }
            sc->logprob[c] = sum;
        }
    }
}

enum { STOP_EOT, STOP_LIMIT, STOP_MAXT };
static const char* stop_name[3] = { "eot", "limit", "maxT" };

// (b): greedy generation of up to G tokens into gen; returns how it stopped. While gen is a
// prefix of a choice's answer, that choice's row already holds the next-token logits.
static int generate(Scorer* sc, const Example* e, int G, BpeIds* gen) {
    const Task* t = sc->task;
    int P = e->prompt_len;
    gen->len = 0;
    for (int j = 0; j < G; j++) {
        int next = -1;
        for (int c = 0; c < e->nchoices && next < 0; c++) {
            const Choice* ch = &t->choices[e->first_choice + c];
            if (j < ch->len && (j == 0 || memcmp(t->ids.data + ch->ids_off, gen->data, (size_t)j * sizeof(int)) == 0)) {
                next = sc->argmax[(size_t)c * e->max_answer + j];
            }
        }
        if (next < 0) {
            // off every choice: a forward of prompt + what was generated, B = 1
            int T = P + j;
            if (T > sc->positions) { return STOP_MAXT; }
            memcpy(sc->inputs, t->ids.data + e->prompt_off, (size_t)P * sizeof(int));
            if (j > 0) { memcpy(sc->inputs + P, gen->data, (size_t)j * sizeof(int)); }
            gpt2_forward(sc->model, sc->inputs, NULL, NULL, 1, T);
            sc->forwards++;
            position_logprob(logits_at(sc, 0, T, T - 1), sc->V, 0, &next);
        }
        if (next == sc->eot) { return STOP_EOT; }
        bpe_ids_push(gen, next);
    }
    return STOP_LIMIT;
}

// ----------------------------------------------------------------------------

#define EVAL_NUM_ARGS 14

int main(int argc, char** argv) {
    char vocab_dir[PATH_MAX], enc_default[PATH_MAX + 32], merges_default[PATH_MAX + 32], err[LLMC_ERRLEN];
    doc_default_vocab_dir(vocab_dir, sizeof(vocab_dir));
    snprintf(enc_default, sizeof(enc_default), "%s/encoder.json", vocab_dir);
    snprintf(merges_default, sizeof(merges_default), "%s/vocab.bpe", vocab_dir);
    const char *model_path = NULL, *peft_path = NULL, *task_path = NULL, *report = NULL, *scores = NULL, *gens = NULL;
    const char *encoder = NULL, *merges = NULL, *tiktoken = NULL;
    const char *max_examples_arg = NULL, *gen_tokens_arg = NULL, *batch_arg = NULL;
    int skip_bad = 0, quiet = 0;
    ArgSpec specs[EVAL_NUM_ARGS] = {
        {"-e", "--model", ARG_STRING, &model_path, 0, 0, "model checkpoint (llm.c format; the base when --peft-init is given)"},
        {NULL, "--peft-init", ARG_STRING, &peft_path, 0, 0, "PEFT adapter (.peft) to apply on the model"},
        {NULL, "--task", ARG_STRING, &task_path, 0, 0, "choices file: {\"prompt\", \"choices\", \"label\"[, \"system\"]} per line"},
        {NULL, "--max-examples", ARG_STRING, &max_examples_arg, 0, 0, "evaluate the first N usable examples (default: all)"},
        {NULL, "--gen-tokens", ARG_STRING, &gen_tokens_arg, 0, 0, "greedy generation: at most N tokens, EOT included (default: the longest choice's tokens + 1)"},
        {NULL, "--batch", ARG_STRING, &batch_arg, 0, 0, "rows per forward pass: choices scored together (default: the most choices of an example, at most 16)"},
        {NULL, "--skip-bad", ARG_FLAG, &skip_bad, 0, 0, "skip bad lines (counted and reported by reason) instead of failing"},
        {NULL, "--report", ARG_STRING, &report, 0, 0, "write the results as JSON (atomically)"},
        {NULL, "--scores", ARG_STRING, &scores, 0, 0, "write a TSV: line, choice, is_label, tokens, logprob, logprob_per_token"},
        {NULL, "--generations", ARG_STRING, &gens, 0, 0, "write one JSON line per example: predictions and the greedy generation"},
        {NULL, "--encoder", ARG_STRING, &encoder, 0, 0, "GPT-2 encoder.json (default: GPT-2 from ../shared/data/gpt2)"},
        {NULL, "--merges", ARG_STRING, &merges, 0, 0, "GPT-2 vocab.bpe"},
        {NULL, "--tiktoken", ARG_STRING, &tiktoken, 0, 0, "tiktoken rank file instead (e.g. from bpe_train)"},
        {"-q", "--quiet", ARG_FLAG, &quiet, 0, 0, "no progress lines, only the summary"},
    };
    int rc = args_parse(argc, argv, specs, EVAL_NUM_ARGS, err);
    if (rc == 1) {
        args_print_help(stdout, usage_text, specs, EVAL_NUM_ARGS);
        return 0;
    }
    if (rc != 0) { die("%s", err); }
    long long max_examples = -1, gen_tokens = 0, batch = 0;
    if (max_examples_arg && parse_integer("--max-examples", max_examples_arg, 1, 1LL << 40, &max_examples, err) != 0) { die("%s", err); }
    if (gen_tokens_arg && parse_integer("--gen-tokens", gen_tokens_arg, 1, 1 << 20, &gen_tokens, err) != 0) { die("%s", err); }
    if (batch_arg && parse_integer("--batch", batch_arg, 1, 4096, &batch, err) != 0) { die("%s", err); }
    if (model_path == NULL) { die("-e (--model): a model checkpoint is required (see --help)"); }
    if (task_path == NULL) { die("--task: a choices file is required (see --help)"); }
    if (tiktoken != NULL && (encoder != NULL || merges != NULL)) { die("--tiktoken and --encoder/--merges are two vocabularies; give one"); }
    if (encoder == NULL) { encoder = enc_default; }
    if (merges == NULL) { merges = merges_default; }
    // every input a regular file; no output may be an input or another output
    {
        DocPath in[5], out[3];
        int nin = 0, nout = 0;
        in[nin++] = (DocPath){"-e (--model)", model_path};
        if (peft_path) { in[nin++] = (DocPath){"--peft-init", peft_path}; }
        in[nin++] = (DocPath){"--task", task_path};
        if (tiktoken) { in[nin++] = (DocPath){"--tiktoken", tiktoken}; }
        else { in[nin++] = (DocPath){"--encoder", encoder}; in[nin++] = (DocPath){"--merges", merges}; }
        for (int k = 0; k < nin; k++) {
            if (check_regular_file(in[k].path, err) != 0) { die("%s: %s", in[k].what, err); }
        }
        if (report) { out[nout++] = (DocPath){"--report", report}; }
        if (scores) { out[nout++] = (DocPath){"--scores", scores}; }
        if (gens) { out[nout++] = (DocPath){"--generations", gens}; }
        if (doc_check_paths(in, nin, out, nout, NULL, err) != 0) { die("%s", err); }
        for (int k = 0; k < nout; k++) {
            if (check_output_path(out[k].path, err) != 0) { die("%s: %s", out[k].what, err); }
            if (doc_make_parent_dirs(out[k].path, err) != 0) { die("%s: %s", out[k].what, err); }
        }
    }
    double t0 = now_seconds();

    // the model (and its adapter)
    if (peft_file_is_adapter(model_path)) {
        die("-e %s: is a PEFT adapter file; give the base model with -e and the adapter with --peft-init", model_path);
    }
    GPT2 model;
    gpt2_build_from_checkpoint(&model, model_path);
    GPT2Config* cfg = &model.config;
    if (peft_path != NULL) {
        PeftLayout lay;
        float* peft;
        uint64_t base_hash = peft_hash_floats(model.params_memory, model.num_parameters);
        if (peft_file_read(peft_path, cfg, base_hash, &lay, &peft, err) != 0) { die("--peft-init: %s", err); }
        if (peft_config_check(&lay.pc, cfg, 0, err) != 0) { die("--peft-init %s: %s", peft_path, err); }
        gpt2_set_peft(&model, &lay, peft);
    }
    int k = model.prompt_len;
    if (k >= cfg->max_seq_len) { die("--peft-init: a soft prompt of %d positions leaves none of the model's maxT %d", k, cfg->max_seq_len); }

    // the vocabulary, which must be the model's
    BPE bpe;
    rc = tiktoken ? bpe_load_tiktoken(&bpe, tiktoken, err) : bpe_load_gpt2(&bpe, encoder, merges, err);
    if (rc != 0) { die("%s", err); }
    if (bpe.vocab_size > cfg->vocab_size) {
        die("the vocabulary (%s) has %d tokens, the model %s only %d: not the vocabulary it was trained with "
            "(give it with --tiktoken or --encoder/--merges)", tiktoken ? tiktoken : encoder, bpe.vocab_size, model_path, cfg->vocab_size);
    }
    if (bpe.vocab_size < cfg->vocab_size) {
        fprintf(stderr, "note: the vocabulary has %d tokens, the model %d: generated ids the vocabulary lacks count as wrong\n",
                bpe.vocab_size, cfg->vocab_size);
    }

    // the task, all of it, before any computation: a bad line fails in a second, not after hours
    Task task;
    memset(&task, 0, sizeof(task));
    ChatEncoder ce;
    chat_init(&ce, &bpe);
    ReadOpts ro = { task_path, cfg->max_seq_len - k, k, max_examples, skip_bad };
    read_task(&task, &ro, &ce);
    chat_free(&ce);
    if (task.n == 0) {
        die("%s: no usable example (%ld lines: %ld bad, %ld blank)", task_path, task.lines, task.nbad, task.blank);
    }

    // buffers: rows for the choices, positions for the longest row or generation
    int rows = task.max_choices;
    if (batch > 0) { rows = rows < batch ? rows : (int)batch; }
    else if (rows > 16) { rows = 16; }
    int positions = task.max_positions;
    if (gen_tokens > 0) {
        for (int i = 0; i < task.n; i++) {
            long need = (long)task.ex[i].prompt_len + gen_tokens - 1;
            if (need > cfg->max_seq_len - k) { need = cfg->max_seq_len - k; }
            if (need > positions) { positions = (int)need; }
        }
    }
    gpt2_allocate(&model, rows, positions, 0, 0);
    int max_answer_all = 0;
    for (int i = 0; i < task.n; i++) { if (task.ex[i].max_answer > max_answer_all) { max_answer_all = task.ex[i].max_answer; } }
    Scorer sc = { &model, &task, cfg->vocab_size, cfg->padded_vocab_size, k, bpe.eot, rows, positions,
                  (int*)malloc_check((size_t)rows * positions * sizeof(int), "inputs"),
                  (double*)malloc_check((size_t)task.max_choices * sizeof(double), "scores"),
                  (int*)malloc_check((size_t)task.max_choices * max_answer_all * sizeof(int), "argmax"), 0 };
    if (!quiet) {
        printf("sft_eval: %s%s%s (%s, k=%d), %s: %d examples, up to %d choices, rows of up to %d positions, %d per forward\n",
               model_path, peft_path ? " + " : "", peft_path ? peft_path : "", gpt2_is_peft(&model) ? PEFT_METHOD_NAMES[model.peft.pc.method] : "no adapter",
               k, task_path, task.n, task.max_choices, positions, rows);
        flush_stdout_check();
    }

    // the examples
    Labels labels = { (LabelCount*)calloc_check(MAX_LABELS, sizeof(LabelCount), "labels"), 0, 0 };
    long correct_ll = 0, correct_norm = 0, correct_greedy = 0, gen_is_choice = 0, undecodable = 0;
    long stops[3] = { 0, 0, 0 };
    double label_logprob = 0.0, label_logprob_tok = 0.0;
    BpeBytes tsv = {0}, gjson = {0}, text = {0};
    BpeIds gen = {0};
    if (scores) { buf_printf(&tsv, "line\tchoice\tis_label\ttokens\tlogprob\tlogprob_per_token\n"); }
    double last_print = now_seconds();
    for (int i = 0; i < task.n; i++) {
        const Example* e = &task.ex[i];
        const Choice* chs = &task.choices[e->first_choice];
        score_choices(&sc, e);
        int pred = 0, pred_norm = 0;
        for (int c = 1; c < e->nchoices; c++) {
            if (sc.logprob[c] > sc.logprob[pred]) { pred = c; }
            if (sc.logprob[c] / chs[c].len > sc.logprob[pred_norm] / chs[pred_norm].len) { pred_norm = c; }
        }
        correct_ll += pred == e->label;
        correct_norm += pred_norm == e->label;
        label_logprob += sc.logprob[e->label];
        label_logprob_tok += sc.logprob[e->label] / chs[e->label].len;
        int G = gen_tokens > 0 ? (int)gen_tokens : e->max_answer;
        int stop = generate(&sc, e, G, &gen);
        stops[stop]++;
        text.len = 0;
        int decoded = bpe_decode(&bpe, gen.data, gen.len, &text) == 0;
        undecodable += !decoded;
        int gen_choice = -1;  // the first choice whose text the generation is
        for (int c = 0; c < e->nchoices && decoded && gen_choice < 0; c++) {
            if (chs[c].text_len == text.len && memcmp(task.text.data + chs[c].text_off, text.data, text.len) == 0) { gen_choice = c; }
        }
        int greedy_ok = decoded && chs[e->label].text_len == text.len &&
                        memcmp(task.text.data + chs[e->label].text_off, text.data, text.len) == 0;
        correct_greedy += greedy_ok;
        gen_is_choice += gen_choice >= 0;
        LabelCount* lc = label_entry(&labels, &task, &chs[e->label]);
        if (lc != NULL) {
            lc->n++;
            lc->correct_ll += pred == e->label;
            lc->correct_ll_norm += pred_norm == e->label;
            lc->correct_greedy += greedy_ok;
        } else {
            labels.overflow++;
        }
        if ((lc = label_entry(&labels, &task, &chs[pred])) != NULL) { lc->predicted_ll++; }
        if ((lc = label_entry(&labels, &task, &chs[pred_norm])) != NULL) { lc->predicted_ll_norm++; }
        if (gen_choice >= 0 && (lc = label_entry(&labels, &task, &chs[gen_choice])) != NULL) { lc->generated++; }
        if (scores) {
            for (int c = 0; c < e->nchoices; c++) {
                buf_printf(&tsv, "%ld\t%d\t%d\t%d\t%.10g\t%.10g\n", e->line, c, c == e->label, chs[c].len,
                           sc.logprob[c], sc.logprob[c] / chs[c].len);
            }
        }
        if (gens) {
            buf_printf(&gjson, "{\"line\": %ld, \"label\": %d, \"pred_ll\": %d, \"pred_ll_norm\": %d, \"generated\": ",
                       e->line, e->label, pred, pred_norm);
            if (decoded) { buf_json_bytes(&gjson, text.data, text.len); } else { buf_printf(&gjson, "null"); }
            buf_printf(&gjson, ", \"generated_ids\": [");
            for (size_t j = 0; j < gen.len; j++) { buf_printf(&gjson, "%s%d", j ? ", " : "", gen.data[j]); }
            buf_printf(&gjson, "], \"stop\": \"%s\", \"greedy_choice\": %d, \"greedy_correct\": %s}\n",
                       stop_name[stop], gen_choice, greedy_ok ? "true" : "false");
        }
        double now = now_seconds();
        if (!quiet && (now - last_print > 30.0 || (i + 1) % (task.n > 10 ? task.n / 10 : 1) == 0) && i + 1 < task.n) {
            printf("  %d/%d examples: accuracy LL %.4f, greedy %.4f (%.1f s)\n", i + 1, task.n,
                   (double)correct_ll / (i + 1), (double)correct_greedy / (i + 1), now - t0);
            flush_stdout_check();
            last_print = now;
        }
    }
    double dt = now_seconds() - t0;
    long n = task.n;

    if (scores) { write_atomic(scores, &tsv); }
    if (gens) { write_atomic(gens, &gjson); }
    if (report) {
        BpeBytes b = {0};
        buf_printf(&b, "{\n  \"model\": ");
        buf_json_string(&b, model_path);
        buf_printf(&b, ",\n  \"peft\": ");
        if (peft_path) { buf_json_string(&b, peft_path); } else { buf_printf(&b, "null"); }
        buf_printf(&b, ",\n  \"peft_method\": \"%s\",\n  \"soft_prompt_len\": %d,\n  \"task\": ",
                   PEFT_METHOD_NAMES[model.peft.pc.method], k);
        buf_json_string(&b, task_path);
        buf_printf(&b, ",\n  \"vocabulary\": ");
        buf_json_string(&b, tiktoken ? tiktoken : encoder);
        buf_printf(&b, ",\n  \"vocab_size\": %d,\n  \"eot\": %d,\n  \"template\": \"llmc/chat.h\",\n", bpe.vocab_size, bpe.eot);
        buf_printf(&b, "  \"n\": %ld,\n  \"accuracy_ll\": ", n);
        buf_share(&b, correct_ll, n);
        buf_printf(&b, ",\n  \"accuracy_ll_norm\": ");
        buf_share(&b, correct_norm, n);
        buf_printf(&b, ",\n  \"accuracy_greedy\": ");
        buf_share(&b, correct_greedy, n);
        buf_printf(&b, ",\n  \"greedy_is_choice\": ");
        buf_share(&b, gen_is_choice, n);
        buf_printf(&b, ",\n  \"correct_ll\": %ld,\n  \"correct_ll_norm\": %ld,\n  \"correct_greedy\": %ld,\n  \"greedy_choice_count\": %ld,\n",
                   correct_ll, correct_norm, correct_greedy, gen_is_choice);
        buf_printf(&b, "  \"mean_label_logprob\": %.8f,\n  \"mean_label_logprob_per_token\": %.8f,\n",
                   label_logprob / n, label_logprob_tok / n);
        buf_printf(&b, "  \"gen_tokens\": ");
        if (gen_tokens > 0) { buf_printf(&b, "%lld", gen_tokens); } else { buf_printf(&b, "null"); }  // null: each example's longest choice + 1
        buf_printf(&b, ",\n  \"greedy_stops\": {\"eot\": %ld, \"limit\": %ld, \"maxT\": %ld},\n  \"greedy_undecodable\": %ld,\n",
                   stops[STOP_EOT], stops[STOP_LIMIT], stops[STOP_MAXT], undecodable);
        buf_printf(&b, "  \"per_label\": [");
        for (int i = 0; i < labels.n; i++) {
            const LabelCount* l = &labels.l[i];
            buf_printf(&b, "%s\n    {\"label\": ", i ? "," : "");
            buf_json_bytes(&b, task.text.data + l->text_off, l->text_len);
            buf_printf(&b, ", \"n\": %ld, \"correct_ll\": %ld, \"correct_ll_norm\": %ld, \"correct_greedy\": %ld, "
                       "\"predicted_ll\": %ld, \"predicted_ll_norm\": %ld, \"generated\": %ld}",
                       l->n, l->correct_ll, l->correct_ll_norm, l->correct_greedy, l->predicted_ll, l->predicted_ll_norm, l->generated);
        }
        buf_printf(&b, "\n  ],\n  \"per_label_overflow\": %ld,\n", labels.overflow);
        buf_printf(&b, "  \"lines\": %ld,\n  \"blank_lines\": %ld,\n  \"invalid_utf8_lines\": %ld,\n  \"stopped_at_max_examples\": %s,\n",
                   task.lines, task.blank, task.utf8_lines, task.stopped ? "true" : "false");
        buf_printf(&b, "  \"skipped_bad\": %ld,\n  \"bad\": {", task.nbad);
        for (int r = 0; r < NUM_BAD; r++) {
            const BadCount* bc = &task.reasons[r];
            buf_printf(&b, "%s\n    \"%s\": {\"count\": %ld, \"first_lines\": [", r ? "," : "", bad_key[r], bc->count);
            for (int j = 0; j < bc->nfirst; j++) { buf_printf(&b, "%s%ld", j ? ", " : "", bc->first_line[j]); }
            buf_printf(&b, "], \"first_detail\": ");
            buf_json_string(&b, bc->detail);
            buf_printf(&b, "}");
        }
        buf_printf(&b, "\n  },\n  \"forwards\": %ld,\n  \"seconds\": %.3f\n}\n", sc.forwards, dt);
        write_atomic(report, &b);
        bpe_bytes_free(&b);
    }
    if (task.nbad > 0) {
        fprintf(stderr, "%ld bad line%s skipped (--skip-bad):\n", task.nbad, task.nbad == 1 ? "" : "s");
        for (int r = 0; r < NUM_BAD; r++) {
            const BadCount* bc = &task.reasons[r];
            if (bc->count == 0) { continue; }
            fprintf(stderr, "  %-26s %6ld  lines", bad_text[r], bc->count);
            for (int j = 0; j < bc->nfirst; j++) { fprintf(stderr, " %ld", bc->first_line[j]); }
            fprintf(stderr, "%s\n  %-26s         first: %s\n", bc->count > bc->nfirst ? " ..." : "", "", bc->detail);
        }
    }
    if (task.stopped) { printf("reached --max-examples %lld: stopped reading there\n", max_examples); }
    printf("sft_eval %s: n=%ld accuracy_ll=%.4f accuracy_ll_norm=%.4f accuracy_greedy=%.4f greedy_is_choice=%.4f "
           "skipped=%ld (%.1f s, %ld forwards)\n", task_path, n, (double)correct_ll / n, (double)correct_norm / n,
           (double)correct_greedy / n, (double)gen_is_choice / n, task.nbad, dt, sc.forwards);
    flush_stdout_check();

    bpe_bytes_free(&tsv); bpe_bytes_free(&gjson); bpe_bytes_free(&text); bpe_ids_free(&gen);
    bpe_ids_free(&task.ids); bpe_bytes_free(&task.text);
    free(task.ex); free(task.choices); free(labels.l);
    free(sc.inputs); free(sc.logprob); free(sc.argmax);
    bpe_free(&bpe);
    gpt2_free(&model);
    return 0;
}

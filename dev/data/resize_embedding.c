// Resizes a checkpoint's token embedding to a new vocabulary size, for continued pretraining
// with an extended vocabulary (dev/data/bpe_train --add): rows of the existing ids are kept,
// new rows are initialised by --init, and the padded size Vp is rounded up to a multiple of
// 128. Every other parameter is copied unchanged; the LM head is tied to wte, so it grows
// with it.
//
//   --init mean   (default) every new row = the mean of the old real rows (padding excluded)
//   --init tokens each new token's row = the mean of the old rows of the pieces its bytes split
//                 into under the base vocabulary's byte-level BPE (Swallow-style vocabulary
//                 extension): a new token starts near what the model already makes of its text
//
//   resize_embedding IN.bin OUT.bin --vocab-size 58257
//   resize_embedding IN.bin OUT.bin --tokenizer gpt2_ja_tokenizer.bin --base-tokenizer gpt2_tokenizer.bin
//   resize_embedding IN.bin OUT.bin --tokenizer gpt2_ja_tokenizer.bin --base-tokenizer gpt2_tokenizer.bin --init tokens
//
// Checkpoint: llm.c's model file, 256 x int32 header (magic 20240326, version 3 = fp32 or
// 5 = bf16 params, [2] maxT, [3] V, [4] L, [5] NH, [6] C, [7] Vp), then the parameters with
// wte (Vp x C) first. Written atomically (temp file, fsync, rename).
#include "llmc/utils.h"
#include "llmc/args.h"
#include "llmc/checkpoint.h"
#include "llmc/tokenizer.h"

static const char* usage_text =
"usage: resize_embedding IN.bin OUT.bin --vocab-size V [--init mean]\n"
"       resize_embedding IN.bin OUT.bin --tokenizer NEW.bin --base-tokenizer OLD.bin [--init mean|tokens]\n"
"Grows a checkpoint's token embedding to V rows. With --tokenizer, V is the new llm.c\n"
"tokenizer file's size, and NEW.bin must extend OLD.bin (the tokenizer the checkpoint was\n"
"trained with, whose size must equal the checkpoint's V): its first V tokens must be OLD.bin's,\n"
"byte for byte, with the same end-of-text id. A checkpoint holds no vocabulary, so this is the\n"
"check that the new ids mean what the old rows learned.\n"
"--init mean (default): every new row = the mean of the old rows.\n"
"--init tokens: each new token's row = the mean of the old rows of the old tokens its bytes\n"
"split into under OLD.bin's byte-level BPE (ids as merge ranks, as in GPT-2 and bpe_train's\n"
"vocabularies); needs --tokenizer and --base-tokenizer.";

// 0 if the llm.c tokenizer `nt` extends `bt` (the same first bt->vocab_size tokens and the
// same end-of-text id); -1 with err otherwise.
static int check_extends(const Tokenizer* nt, const char* npath, const Tokenizer* bt, const char* bpath, char* err) {
    if (nt->vocab_size < bt->vocab_size) {
        return set_err(err, "--tokenizer %s: has %d tokens, fewer than the base tokenizer %s (%d)", npath, nt->vocab_size, bpath, bt->vocab_size);
    }
    for (int i = 0; i < bt->vocab_size; i++) {
        if (nt->token_length[i] != bt->token_length[i] || memcmp(nt->token_table[i], bt->token_table[i], (size_t)bt->token_length[i]) != 0) {
            return set_err(err, "--tokenizer %s: token %d differs from the base tokenizer %s: it does not extend the checkpoint's vocabulary",
                           npath, i, bpath);
        }
    }
    if (nt->eot_token != bt->eot_token) {
        return set_err(err, "--tokenizer %s: end-of-text id %d, but the base tokenizer %s has %d", npath, nt->eot_token, bpath, bt->eot_token);
    }
    return 0;
}

// bytes -> id over a vocabulary, open addressing with linear probing. Built once; the BPE split
// below asks it about every adjacent pair at every merge step.
typedef struct {
    const Tokenizer* tok;
    int* slot;      // token id, or -1 for an empty slot
    size_t mask;    // capacity - 1, capacity a power of two
} TokenIndex;

// FNV-1a: simple, and good enough spread for short byte strings
static uint64_t bytes_hash(const unsigned char* s, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) { h ^= s[i]; h *= 1099511628211ull; }
    return h;
}

// The id of the token whose bytes are s[0..n), or -1.
static int token_index_find(const TokenIndex* ix, const unsigned char* s, int n) {
    for (size_t i = (size_t)bytes_hash(s, n) & ix->mask;; i = (i + 1) & ix->mask) {
        int id = ix->slot[i];
        if (id < 0) { return -1; }
        if (ix->tok->token_length[id] == n && memcmp(ix->tok->token_table[id], s, (size_t)n) == 0) { return id; }
    }
}

// Indexes ids [0, n) of tok except skip_id (the end-of-text token: a special token, never the
// result of a merge, as in tiktoken where it is not among the mergeable ranks). Ids are added
// in increasing order and a repeated byte string keeps its first id, so the lowest id (the
// highest merge priority) wins.
static void token_index_build(TokenIndex* ix, const Tokenizer* tok, int n, int skip_id) {
    size_t cap = 16;
    while (cap < 2 * (size_t)n) { cap *= 2; }  // load <= 1/2 keeps probes short
    ix->tok = tok;
    ix->mask = cap - 1;
    ix->slot = (int*)malloc_check(cap * sizeof(int), "token index");
    for (size_t i = 0; i < cap; i++) { ix->slot[i] = -1; }
    for (int id = 0; id < n; id++) {
        if (id == skip_id) { continue; }
        const unsigned char* s = (const unsigned char*)tok->token_table[id];
        int len = tok->token_length[id];
        size_t i = (size_t)bytes_hash(s, len) & ix->mask;
        int dup = 0;
        for (; ix->slot[i] >= 0; i = (i + 1) & ix->mask) {
            int o = ix->slot[i];
            if (tok->token_length[o] == len && memcmp(tok->token_table[o], s, (size_t)len) == 0) { dup = 1; break; }
        }
        if (!dup) { ix->slot[i] = id; }
    }
}

static void token_index_free(TokenIndex* ix) { free(ix->slot); ix->slot = NULL; }

// Splits s[0..n) (n <= 255, a token's length) into old tokens by tiktoken's byte-pair merge
// with the old ids as ranks: start from single bytes, repeatedly merge the adjacent pair whose
// concatenation is an old token of the lowest id (the leftmost such pair on a tie), until no
// adjacent pair concatenates to an old token. Writes the piece ids to pieces[] and returns
// their count.
static int bpe_split(const TokenIndex* ix, const unsigned char* s, int n, int* pieces) {
    // part k is s[start[k] .. start[k+1]); rank[k] is the id of part k + part k+1, or -1
    int start[257], rank[256];
    int np = n;
    for (int k = 0; k <= n; k++) { start[k] = k; }
    for (int k = 0; k + 1 < np; k++) { rank[k] = token_index_find(ix, s + start[k], start[k + 2] - start[k]); }
    for (;;) {
        int best = -1;
        for (int k = 0; k + 1 < np; k++) {
            if (rank[k] >= 0 && (best < 0 || rank[k] < rank[best])) { best = k; }
        }
        if (best < 0) { break; }
        // merge parts best and best+1: drop the boundary start[best+1]
        for (int k = best + 1; k < np; k++) { start[k] = start[k + 1]; }
        for (int k = best + 1; k + 1 < np - 1; k++) { rank[k] = rank[k + 1]; }
        np--;
        // only the pairs that touch the merged part changed
        if (best > 0) { rank[best - 1] = token_index_find(ix, s + start[best - 1], start[best + 1] - start[best - 1]); }
        if (best + 1 < np) { rank[best] = token_index_find(ix, s + start[best], start[best + 2] - start[best]); }
    }
    // every part is an old token: a single byte (the caller checked that each has one) or a merge
    for (int k = 0; k < np; k++) { pieces[k] = token_index_find(ix, s + start[k], start[k + 1] - start[k]); }
    return np;
}

int main(int argc, char** argv) {
    const char *tokfile = NULL, *basefile = NULL, *init = "mean";
    long long newV = -1;
    ArgSpec specs[4] = {
        {NULL, "--vocab-size", ARG_LONG, &newV, 1, 1 << 24, "the new vocabulary size V"},
        {NULL, "--tokenizer", ARG_STRING, &tokfile, 0, 0, "the new llm.c tokenizer file (V from it)"},
        {NULL, "--base-tokenizer", ARG_STRING, &basefile, 0, 0, "the llm.c tokenizer file the checkpoint was trained with"},
        {NULL, "--init", ARG_STRING, &init, 0, 0, "new rows: mean (of all old rows) | tokens (of the old pieces of each new token; needs --tokenizer)"},
    };
    const char* pos[2];
    int npos = 0;
    char err[LLMC_ERRLEN];
    int rc = args_parse_positional(argc, argv, specs, 4, pos, 2, &npos, 0, err);
    if (rc == 1) { args_print_help(stdout, usage_text, specs, 4); return 0; }
    if (rc != 0) { die("%s", err); }
    int init_tokens = 0;
    if (strcmp(init, "tokens") == 0) { init_tokens = 1; }
    else if (strcmp(init, "mean") != 0) { die("--init: unknown value '%s' (expected mean or tokens)", init); }
    if (npos != 2) { die("expected IN.bin OUT.bin, got %d file argument%s (see --help)", npos, npos == 1 ? "" : "s"); }
    const char* in = pos[0];
    const char* out = pos[1];
    if ((newV >= 0) == (tokfile != NULL)) { die("give --vocab-size V or --tokenizer NEW.bin, exactly one of them"); }
    if (tokfile != NULL && basefile == NULL) {
        die("--tokenizer %s: needs --base-tokenizer OLD.bin (the tokenizer the checkpoint was trained with) to check that it extends it", tokfile);
    }
    if (basefile != NULL && tokfile == NULL) { die("--base-tokenizer: only used with --tokenizer"); }
    if (init_tokens && tokfile == NULL) {
        die("--init tokens: needs --tokenizer NEW.bin --base-tokenizer OLD.bin (the new tokens' bytes and the old vocabulary to split them with); --vocab-size gives neither");
    }
    {
        if (check_regular_file(in, err) != 0) { die("%s", err); }
        if (tokfile && check_regular_file(tokfile, err) != 0) { die("--tokenizer: %s", err); }
        if (basefile && check_regular_file(basefile, err) != 0) { die("--base-tokenizer: %s", err); }
        if (check_output_path(out, err) != 0) { die("%s", err); }
        const char* ins[3] = { in, tokfile, basefile };
        const char* what[3] = { "input checkpoint", "--tokenizer", "--base-tokenizer" };
        for (int i = 0; i < 3; i++) {
            if (ins[i] != NULL && same_file(out, ins[i])) {
                die("%s: is the same file as the %s %s; refusing to overwrite an input", out, what[i], ins[i]);
            }
        }
    }
    // the header is validated (shape limits, file size) before any size arithmetic
    GPT2Config cfg;
    float* params = NULL;
    if (checkpoint_read(in, &cfg, &params, err) != 0) { die("%s", err); }
    int32_t h[256];
    {
        FILE* f = fopen_regular(in, err);
        if (f == NULL || fread_exact(h, sizeof(int32_t), 256, f, in, err) != 0) { die("%s", err); }
        fclose(f);
    }
    int version = h[1];
    long V = cfg.vocab_size, Vp = cfg.padded_vocab_size, C = cfg.channels;
    // kept to the end: --init tokens reads the new tokens' bytes and splits them with the old ones
    Tokenizer nt, bt;
    memset(&nt, 0, sizeof(nt));
    memset(&bt, 0, sizeof(bt));
    if (tokfile) {
        if (tokenizer_init(&nt, tokfile, err) != 0) { die("--tokenizer: %s", err); }
        if (tokenizer_init(&bt, basefile, err) != 0) { die("--base-tokenizer: %s", err); }
        if (bt.vocab_size != V) {
            die("--base-tokenizer %s: has %d tokens, but the checkpoint %s has V = %ld: not the tokenizer it was trained with", basefile, bt.vocab_size, in, V);
        }
        if (check_extends(&nt, tokfile, &bt, basefile, err) != 0) { die("%s", err); }
        newV = nt.vocab_size;
    }
    if (newV < V) { die("--vocab-size: new vocabulary size %lld is below the checkpoint's %ld: only growing is supported", newV, V); }
    GPT2Config ncfg = cfg;
    ncfg.vocab_size = (int)newV;
    ncfg.padded_vocab_size = (int)((newV + 127) / 128 * 128);
    if (gpt2_config_validate(&ncfg, out, err) != 0) { die("%s", err); }
    size_t n_old = gpt2_num_parameters(&cfg), n_new = gpt2_num_parameters(&ncfg);
    size_t wte_old = (size_t)Vp * (size_t)C, wte_new = (size_t)ncfg.padded_vocab_size * (size_t)C;
    if (n_old < wte_old || n_new < wte_new || n_new - wte_new != n_old - wte_old) { die("internal error: parameter sizes"); }
    float* np = (float*)calloc_check(n_new, sizeof(float), "resized parameters");  // padding rows zero
    memcpy(np, params, (size_t)V * (size_t)C * sizeof(float));
    double* mean = (double*)calloc_check((size_t)C, sizeof(double), "mean");
    long long total_pieces = 0;
    if (!init_tokens) {
        // mean of the real rows, in double so the order of 50k additions does not matter
        for (size_t v = 0; v < (size_t)V; v++) {
            for (size_t c = 0; c < (size_t)C; c++) { mean[c] += (double)params[v * (size_t)C + c]; }
        }
        for (size_t v = (size_t)V; v < (size_t)newV; v++) {
            for (size_t c = 0; c < (size_t)C; c++) { np[v * (size_t)C + c] = (float)(mean[c] / (double)V); }
        }
    } else {
        TokenIndex ix;
        token_index_build(&ix, &bt, (int)V, bt.eot_token);
        // the split starts from single bytes, so each byte a new token holds needs an old one-byte token
        int byte_id[256];
        for (int b = 0; b < 256; b++) {
            unsigned char one = (unsigned char)b;
            byte_id[b] = token_index_find(&ix, &one, 1);
        }
        int pieces[256];
        for (long v = V; v < (long)newV; v++) {
            const unsigned char* s = (const unsigned char*)nt.token_table[v];
            int n = nt.token_length[v];
            for (int i = 0; i < n; i++) {
                if (byte_id[s[i]] < 0) {
                    die("--init tokens: the base tokenizer %s has no one-byte token for byte 0x%02x, which new token %ld holds: "
                        "the split needs a byte-level vocabulary (all 256 single bytes)", basefile, s[i], v);
                }
            }
            int k = bpe_split(&ix, s, n, pieces);
            total_pieces += k;
            // the mean of the pieces' rows, a piece counted as often as it occurs, summed in double
            for (size_t c = 0; c < (size_t)C; c++) { mean[c] = 0.0; }
            for (int j = 0; j < k; j++) {
                const float* row = params + (size_t)pieces[j] * (size_t)C;
                for (size_t c = 0; c < (size_t)C; c++) { mean[c] += (double)row[c]; }
            }
            for (size_t c = 0; c < (size_t)C; c++) { np[(size_t)v * (size_t)C + c] = (float)(mean[c] / (double)k); }
        }
        token_index_free(&ix);
    }
    // every other parameter, unchanged
    memcpy(np + wte_new, params + wte_old, (n_old - wte_old) * sizeof(float));
    checkpoint_write(out, &ncfg, np, version);
    if (!init_tokens) {
        printf("wrote %s: V %ld -> %lld, Vp %ld -> %d, %lld new rows = mean of the %ld old rows (%s)\n",
               out, V, newV, Vp, ncfg.padded_vocab_size, newV - V, V, version == 3 ? "fp32" : "bf16");
    } else {
        printf("wrote %s: V %ld -> %lld, Vp %ld -> %d, %lld new rows = mean of the old rows of each new token's pieces, "
               "%.3f old pieces per new token (%s)\n",
               out, V, newV, Vp, ncfg.padded_vocab_size, newV - V,
               newV > V ? (double)total_pieces / (double)(newV - V) : 0.0, version == 3 ? "fp32" : "bf16");
    }
    tokenizer_free(&nt);
    tokenizer_free(&bt);
    free(params); free(np); free(mean);
    return 0;
}

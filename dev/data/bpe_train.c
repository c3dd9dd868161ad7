// Trains a byte-level BPE vocabulary (llmc/bpe_train.h) on text / JSONL / JSON documents, or
// extends an existing one (GPT-2 by default with --add) keeping every existing id.
//
//   bpe_train --vocab-size 8192 -o my.tiktoken corpus.jsonl            # from scratch
//   bpe_train --add 8000 -o gpt2_ja.tiktoken aozora.jsonl livedoor.jsonl  # extend GPT-2
//
// Output: the tiktoken rank file (load it with `tokenize --tiktoken`, or in Python with
// tiktoken.load.load_tiktoken_bpe + special_tokens {"<|endoftext|>": eot}), and optionally
// llm.c's decode-only tokenizer file (--write-tokenizer).
#include <time.h>
#include "llmc/utils.h"
#include "llmc/bpe.h"
#include "llmc/bpe_train.h"
#include "dev/data/doc_reader.h"

static const char* usage_text =
"usage: bpe_train [options] INPUT...\n"
"Trains a byte-level BPE vocabulary from scratch (--vocab-size N, --base none by default) or\n"
"extends a base vocabulary by N tokens (--add N; GPT-2 by default, found in ../shared/data/gpt2\n"
"from the current directory or from this program's repository). --vocab-size and --add are\n"
"two ways to say the size: give one.";

static long g_docs = 0;
static void count_doc(void* ctx, const unsigned char* s, size_t n) { bpe_counts_add((BpeCounts*)ctx, s, n); g_docs++; }

#define BPET_NUM_ARGS 12

int main(int argc, char** argv) {
    const char *out = NULL, *base_kind = NULL, *enc = NULL, *merges = NULL, *tik = NULL, *tokfile = NULL;
    const char *format = "auto", *field = "text", *sep_arg = NULL;
    int vocab_size = -1, add = -1, max_bytes = 64;
    ArgSpec specs[BPET_NUM_ARGS] = {
        {"-o", "--out", ARG_STRING, &out, 0, 0, "tiktoken rank file to write (required)"},
        {NULL, "--vocab-size", ARG_INT, &vocab_size, 257, 1 << 24, "ids in the result, <|endoftext|> included"},
        {NULL, "--add", ARG_INT, &add, 0, 1 << 24, "extend the base vocabulary by N tokens (instead of --vocab-size)"},
        {NULL, "--base", ARG_STRING, &base_kind, 0, 0, "gpt2 | none: start from GPT-2 (default with --add) or from bytes (default with --vocab-size)"},
        {NULL, "--base-encoder", ARG_STRING, &enc, 0, 0, "another GPT-2 style base: its encoder.json"},
        {NULL, "--base-merges", ARG_STRING, &merges, 0, 0, "... and its vocab.bpe"},
        {NULL, "--base-tiktoken", ARG_STRING, &tik, 0, 0, "a tiktoken rank file as the base"},
        {NULL, "--max-token-bytes", ARG_INT, &max_bytes, 1, 255, "longest token to learn, in bytes"},
        {NULL, "--format", ARG_STRING, &format, 0, 0, "auto (by extension), text, jsonl, json"},
        {NULL, "--field", ARG_STRING, &field, 0, 0, "JSON field holding the text"},
        {NULL, "--doc-sep", ARG_STRING, &sep_arg, 0, 0, "split text files into documents after each STR"},
        {NULL, "--write-tokenizer", ARG_STRING, &tokfile, 0, 0, "also write llm.c's decode-only tokenizer file"},
    };
    const char** inputs = (const char**)malloc_check((size_t)(argc + 1) * sizeof(char*), "inputs");
    int ninputs = 0;
    char err[LLMC_ERRLEN];
    int rc = args_parse_positional(argc, argv, specs, BPET_NUM_ARGS, inputs, argc, &ninputs, 0, err);
    if (rc == 1) { args_print_help(stdout, usage_text, specs, BPET_NUM_ARGS); return 0; }
    if (rc != 0) { die("%s", err); }
    const char* sep = sep_arg;
    if (out == NULL) { die("-o (--out): the output tiktoken file is required"); }
    if (ninputs == 0) { die("no INPUT files to train on (see --help)"); }
    if (vocab_size >= 0 && add >= 0) { die("--vocab-size and --add contradict each other: give the final size or the number of new tokens, not both"); }
    if (vocab_size < 0 && add < 0) { die("give --vocab-size N (the final size) or --add N (new tokens on top of the base)"); }
    if (base_kind != NULL && strcmp(base_kind, "gpt2") != 0 && strcmp(base_kind, "none") != 0) {
        die("--base: unknown base '%s' (gpt2 or none)", base_kind);
    }
    if (tik != NULL && (enc != NULL || merges != NULL)) { die("--base-tiktoken and --base-encoder/--base-merges are two bases; give one"); }
    if (base_kind != NULL && strcmp(base_kind, "none") == 0 && (tik || enc || merges)) { die("--base none contradicts --base-tiktoken/--base-encoder/--base-merges"); }
    if (strcmp(format, "auto") != 0 && strcmp(format, "text") != 0 && strcmp(format, "jsonl") != 0 && strcmp(format, "json") != 0) {
        die("--format: unknown format '%s' (auto, text, jsonl, json)", format);
    }
    char vocab_dir[PATH_MAX], enc_default[PATH_MAX + 32], merges_default[PATH_MAX + 32];
    doc_default_vocab_dir(vocab_dir, sizeof(vocab_dir));
    snprintf(enc_default, sizeof(enc_default), "%s/encoder.json", vocab_dir);
    snprintf(merges_default, sizeof(merges_default), "%s/vocab.bpe", vocab_dir);
    int want_gpt2 = tik == NULL && (enc || merges || (base_kind && strcmp(base_kind, "gpt2") == 0) || (add >= 0 && base_kind == NULL));
    if (want_gpt2) {
        if (!enc) { enc = enc_default; }
        if (!merges) { merges = merges_default; }
    }
    {
        DocPath* in = (DocPath*)malloc_check((size_t)(ninputs + 3) * sizeof(DocPath), "paths");
        int nin = 0;
        for (int k = 0; k < ninputs; k++) {
            if (check_regular_file(inputs[k], err) != 0) { die("%s", err); }
            in[nin++] = (DocPath){"input", inputs[k]};
        }
        if (tik) { in[nin++] = (DocPath){"--base-tiktoken", tik}; }
        if (want_gpt2) { in[nin++] = (DocPath){"--base-encoder", enc}; in[nin++] = (DocPath){"--base-merges", merges}; }
        DocPath outs[2];
        int nout = 0;
        outs[nout++] = (DocPath){"-o (--out)", out};
        if (tokfile) { outs[nout++] = (DocPath){"--write-tokenizer", tokfile}; }
        if (doc_check_paths(in, nin, outs, nout, NULL, err) != 0) { die("%s", err); }
        free(in);
    }
    BPE base;
    int have_base = 0;
    if (tik) {
        if (bpe_load_tiktoken(&base, tik, err) != 0) { die("%s", err); }
        have_base = 1;
    } else if (want_gpt2) {
        if (bpe_load_gpt2(&base, enc, merges, err) != 0) { die("%s", err); }
        have_base = 1;
    }
    if (add >= 0) { vocab_size = (have_base ? base.vocab_size : 257) + add; }

    time_t t0 = time(NULL);
    BpeCounts counts;
    bpe_counts_init(&counts);
    for (int k = 0; k < ninputs; k++) {
        long before = g_docs;
        read_documents(inputs[k], format, field, sep, count_doc, &counts);
        if (g_docs == before) { fprintf(stderr, "warning: %s: no documents in it\n", inputs[k]); }
    }
    if (g_docs == 0) { die("%s: no documents: nothing to train on", ninputs == 1 ? inputs[0] : "the inputs"); }
    printf("counted %llu pieces (%llu distinct) in %llu bytes, %ld s\n", (unsigned long long)counts.total_pieces,
           (unsigned long long)counts.n, (unsigned long long)counts.total_bytes, (long)(time(NULL) - t0));
    BPE trained;
    if (bpe_train(&counts, have_base ? &base : NULL, vocab_size, max_bytes, &trained, 1, err) != 0) { die("%s", err); }
    bpe_save_tiktoken(&trained, out);
    printf("wrote %s: %d ids (end-of-text %d), %ld s\n", out, trained.vocab_size, trained.eot, (long)(time(NULL) - t0));
    if (tokfile) {
        bpe_write_llmc_tokenizer(&trained, tokfile);
        printf("wrote %s\n", tokfile);
    }
    bpe_free(&trained);
    if (have_base) { bpe_free(&base); }
    bpe_counts_free(&counts);
    free(inputs);
    return 0;
}

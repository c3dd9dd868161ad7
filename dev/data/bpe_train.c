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

static void usage(void) {
    fprintf(stderr,
"usage: bpe_train [options] INPUT...\n"
"  -o, --out FILE          tiktoken rank file to write (required)\n"
"  --vocab-size N          ids in the result, <|endoftext|> included\n"
"  --add N                 extend the base vocabulary by N tokens (instead of --vocab-size)\n"
"  --base gpt2|none        start from GPT-2 (../shared/data/gpt2; default with --add) or bytes\n"
"  --base-encoder FILE --base-merges FILE   another GPT-2 style base\n"
"  --base-tiktoken FILE    a tiktoken rank file as the base\n"
"  --max-token-bytes N     longest token to learn (default 64, at most 255)\n"
"  --format F --field NAME --doc-sep STR   how to read INPUT (see tokenize --help)\n"
"  --write-tokenizer FILE  also write llm.c's decode-only tokenizer file\n");
    exit(EXIT_FAILURE);
}

static void count_doc(void* ctx, const unsigned char* s, size_t n) { bpe_counts_add((BpeCounts*)ctx, s, n); }

int main(int argc, char** argv) {
    const char *out = NULL, *base_kind = NULL, *enc = NULL, *merges = NULL, *tik = NULL, *tokfile = NULL;
    const char *format = "auto", *field = "text", *sep = NULL;
    int vocab_size = 0, add = -1, max_bytes = 64;
    const char* inputs[4096];
    int ninputs = 0;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        int more = i + 1 < argc;
#define ARG(name) (strcmp(a, name) == 0 && more)
        if (ARG("-o") || ARG("--out")) { out = argv[++i]; }
        else if (ARG("--vocab-size")) { vocab_size = atoi(argv[++i]); }
        else if (ARG("--add")) { add = atoi(argv[++i]); }
        else if (ARG("--base")) { base_kind = argv[++i]; }
        else if (ARG("--base-encoder")) { enc = argv[++i]; }
        else if (ARG("--base-merges")) { merges = argv[++i]; }
        else if (ARG("--base-tiktoken")) { tik = argv[++i]; }
        else if (ARG("--max-token-bytes")) { max_bytes = atoi(argv[++i]); }
        else if (ARG("--format")) { format = argv[++i]; }
        else if (ARG("--field")) { field = argv[++i]; }
        else if (ARG("--doc-sep")) { sep = argv[++i]; }
        else if (ARG("--write-tokenizer")) { tokfile = argv[++i]; }
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(); }
        else if (a[0] == '-' && a[1] != 0) { fprintf(stderr, "unknown or incomplete option %s\n", a); usage(); }
        else if (ninputs < 4096) { inputs[ninputs++] = a; }
        else { die("too many inputs"); }
#undef ARG
    }
    if (out == NULL || ninputs == 0 || (vocab_size <= 0 && add < 0)) { usage(); }
    char err[LLMC_ERRLEN];
    BPE base;
    int have_base = 0;
    if (tik) {
        if (bpe_load_tiktoken(&base, tik, err) != 0) { die("%s", err); }
        have_base = 1;
    } else if (enc || merges || (base_kind && strcmp(base_kind, "gpt2") == 0) || (add >= 0 && base_kind == NULL)) {
        if (!enc) { enc = "../shared/data/gpt2/encoder.json"; }
        if (!merges) { merges = "../shared/data/gpt2/vocab.bpe"; }
        if (bpe_load_gpt2(&base, enc, merges, err) != 0) { die("%s", err); }
        have_base = 1;
    } else if (base_kind && strcmp(base_kind, "none") != 0) {
        die("unknown --base %s (gpt2 or none)", base_kind);
    }
    if (add >= 0) { vocab_size = (have_base ? base.vocab_size : 257) + add; }

    time_t t0 = time(NULL);
    BpeCounts counts;
    bpe_counts_init(&counts);
    for (int k = 0; k < ninputs; k++) { read_documents(inputs[k], format, field, sep, count_doc, &counts); }
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
    return 0;
}

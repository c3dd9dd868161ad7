// Byte-level BPE command-line tool (llmc/bpe.h): text / JSONL / JSON -> token shards,
// shards -> text, and the llm.c tokenizer file.
//
//   tokenize [options] INPUT...          encode documents into shards (llmc/shard.h)
//   tokenize --decode SHARD              print a shard's text
//   tokenize --write-tokenizer OUT.bin   write llm.c's decode-only tokenizer file
//   tokenize --batch-encode IN OUT       test/bench protocol, see batch_encode()
//
// llm.c's tiny shakespeare files (same tokens as its tinyshakespeare.py):
//   tokenize ../shared/data/tinyshakespeare/input.txt -o dev/data/tinyshakespeare/tiny_shakespeare
//            --doc-sep '\n\n' --val-tokens 32768 --no-shard-index --write-tokenizer dev/data/gpt2_tokenizer.bin
//
// Every document is preceded by <|endoftext|>, as llm.c's data scripts do, so the token
// stream has one end-of-text between consecutive documents. Documents are encoded in
// parallel (--threads) but written in input order, so the output does not depend on the
// thread count.
#include <time.h>
#include <omp.h>
#include "llmc/utils.h"
#include "llmc/shard.h"
#include "llmc/bpe.h"
#include "dev/data/doc_reader.h"

static const char* usage_text =
"usage: tokenize [options] INPUT...     encode into token shards\n"
"       tokenize [vocab options] --decode SHARD\n"
"       tokenize [vocab options] --write-tokenizer OUT.bin   (llm.c's decode-only file)\n"
"       tokenize [vocab options] --save-tiktoken OUT          (tiktoken rank file)\n"
"       tokenize [vocab options] --batch-encode IN OUT [--allow-special] [--threads N] [--repeat K]\n"
"Vocabulary: GPT-2 from ../shared/data/gpt2 (looked up from the current directory, then from\n"
"this program's repository), or --encoder/--merges, or --tiktoken.\n"
"Shards: PREFIX_train_000000.bin, PREFIX_val_000000.bin, ... (the prefix's folder is created).\n"
"Val split: --val-fraction F sends every 1/F-th document to val (document k when\n"
"floor((k+1)F) > floor(kF): exactly floor(n F) documents, spread evenly), as dev/data/pipeline does;\n"
"--val-tokens N sends the stream's first N tokens instead. Numbers accept 1e6.";

// ----------------------------------------------------------------------------
// output: train and val shard streams

typedef struct {
    char prefix[900];
    const char* split;
    int token_bytes;
    long shard_size;
    unsigned char* buf;   // shard_size tokens of token_bytes
    long n;               // tokens in buf
    int index;            // next shard number
    int no_index;         // name the file PREFIX_split.bin (one shard only)
    long total;
} ShardOut;

static void shard_out_init(ShardOut* o, const char* prefix, const char* split, int token_bytes, long shard_size) {
    snprintf(o->prefix, sizeof(o->prefix), "%s", prefix);
    o->split = split;
    o->token_bytes = token_bytes;
    o->shard_size = shard_size;
    o->buf = (unsigned char*)malloc_check((size_t)shard_size * (size_t)token_bytes, "shard buffer");
    o->n = 0;
    o->index = 0;
    o->total = 0;
}

static void shard_out_flush(ShardOut* o) {
    if (o->n == 0) { return; }
    char path[1024];
    if (o->no_index) {
        snprintf(path, sizeof(path), "%s_%s.bin", o->prefix, o->split);
        o->index++;
    } else {
        snprintf(path, sizeof(path), "%s_%s_%06d.bin", o->prefix, o->split, o->index++);
    }
    shard_write(path, o->buf, o->n, o->token_bytes, NULL);
    printf("wrote %s: %ld tokens\n", path, o->n);
    o->n = 0;
}

static void shard_out_push(ShardOut* o, const int* ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (o->n == o->shard_size) {  // only with --no-shard-index: nothing has been written yet
            die("--no-shard-index: the %s split needs more than one shard of %ld tokens (raise --shard-tokens); nothing written",
                o->split, o->shard_size);
        }
        if (o->token_bytes == 2) { ((uint16_t*)o->buf)[o->n] = (uint16_t)ids[i]; }
        else { ((uint32_t*)o->buf)[o->n] = (uint32_t)ids[i]; }
        o->n++;
        o->total++;
        if (o->n == o->shard_size && !o->no_index) { shard_out_flush(o); }
    }
}

// ----------------------------------------------------------------------------
// encoding documents in parallel batches

typedef struct {
    const BPE* bpe;
    BpeWork** work;        // one per thread
    int threads;
    int allow_special;
    double val_fraction;
    long val_tokens;       // first N tokens -> val (if > 0)
    ShardOut train, val;
    long docs, val_docs;
    double bytes;
    // the current batch
    BpeBytes text;         // documents back to back
    size_t* doc_off;       // doc i = text[doc_off[i] .. doc_off[i+1])
    size_t ndocs, cap_docs;
    BpeIds* out;           // per document
} Encoder;

static void enc_add_doc_end(Encoder* e) {
    if (e->ndocs + 2 > e->cap_docs) {
        e->cap_docs = e->cap_docs ? 2 * e->cap_docs : 1024;
        e->doc_off = (size_t*)realloc(e->doc_off, e->cap_docs * sizeof(size_t));
        if (e->doc_off == NULL) { die("out of memory"); }
    }
    e->ndocs++;
    e->doc_off[e->ndocs] = e->text.len;
}

// Encodes m documents (doc i = text[off[i] .. off[i] + len[i])) on `threads` threads,
// appending doc i's ids to out[i]. Documents over 1 MiB are cut at bpe_safe_split() points
// into pieces of about 256 KiB, so one big document still keeps every thread busy; the
// tokens are the same as encoding it whole.
#define SPLIT_ABOVE (1u << 20)
#define SPLIT_CHUNK (256u << 10)
typedef struct { size_t doc, start, end; } WorkItem;

static void encode_many(const BPE* bpe, BpeWork** work, int threads, const unsigned char* text,
                        const size_t* off, const size_t* len, size_t m, int allow_special, BpeIds* out) {
    size_t cap = m + 16, n = 0;
    WorkItem* items = (WorkItem*)malloc_check(cap * sizeof(WorkItem), "work items");
    for (size_t i = 0; i < m; i++) {
        size_t a = 0;
        while (a < len[i]) {
            size_t b = len[i];
            if (threads > 1 && len[i] > SPLIT_ABOVE && len[i] - a > 2 * SPLIT_CHUNK) {
                b = bpe_safe_split(text + off[i], len[i], a + SPLIT_CHUNK);
            }
            if (n == cap) {
                cap *= 2;
                items = (WorkItem*)realloc(items, cap * sizeof(WorkItem));
                if (items == NULL) { die("out of memory"); }
            }
            items[n].doc = i; items[n].start = a; items[n].end = b;
            n++;
            a = b;
        }
    }
    BpeIds* part = (BpeIds*)calloc_check(n, sizeof(BpeIds), "token buffers");
    #pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (size_t k = 0; k < n; k++) {
        const WorkItem* it = &items[k];
        bpe_encode(bpe, work[omp_get_thread_num()], text + off[it->doc] + it->start, it->end - it->start, allow_special, &part[k]);
    }
    for (size_t k = 0; k < n; k++) {
        BpeIds* o = &out[items[k].doc];
        bpe_ids_reserve(o, part[k].len);
        memcpy(o->data + o->len, part[k].data, part[k].len * sizeof(int));
        o->len += part[k].len;
        bpe_ids_free(&part[k]);
    }
    free(part);
    free(items);
}

static void enc_flush(Encoder* e) {
    if (e->ndocs == 0) { return; }
    e->out = (BpeIds*)calloc_check(e->ndocs, sizeof(BpeIds), "token buffers");
    size_t* len = (size_t*)malloc_check(e->ndocs * sizeof(size_t), "lengths");
    for (size_t i = 0; i < e->ndocs; i++) {
        len[i] = e->doc_off[i + 1] - e->doc_off[i];
        bpe_ids_push(&e->out[i], e->bpe->eot);
    }
    encode_many(e->bpe, e->work, e->threads, e->text.data, e->doc_off, len, e->ndocs, e->allow_special, e->out);
    free(len);
    for (size_t i = 0; i < e->ndocs; i++) {
        long d = e->docs++;
        e->bytes += (double)(e->doc_off[i + 1] - e->doc_off[i]);
        const int* ids = e->out[i].data;
        size_t n = e->out[i].len;
        if (e->val_tokens > 0) {
            // llm.c's tinyshakespeare split: the stream's first val_tokens tokens are val
            long room = e->val_tokens - e->val.total;
            size_t k = room > 0 ? ((size_t)room < n ? (size_t)room : n) : 0;
            if (k > 0) { e->val_docs++; }  // a document with tokens in val (the last may be split)
            shard_out_push(&e->val, ids, k);
            shard_out_push(&e->train, ids + k, n - k);
        } else if (e->val_fraction > 0 && (long)((double)(d + 1) * e->val_fraction) > (long)((double)d * e->val_fraction)) {
            // every 1/F-th document, as dev/data/pipeline splits
            e->val_docs++;
            shard_out_push(&e->val, ids, n);
        } else {
            shard_out_push(&e->train, ids, n);
        }
        bpe_ids_free(&e->out[i]);
    }
    free(e->out);
    e->out = NULL;
    e->ndocs = 0;
    e->text.len = 0;
}

#define BATCH_BYTES (32u << 20)

static void enc_doc(void* ctx, const unsigned char* s, size_t n) {
    Encoder* e = (Encoder*)ctx;
    if (e->ndocs == 0) { e->text.len = 0; }
    bpe_bytes_append(&e->text, s, n);
    enc_add_doc_end(e);
    if (e->text.len >= BATCH_BYTES) { enc_flush(e); }
}

// ----------------------------------------------------------------------------
// --batch-encode IN OUT: IN holds records (uint32 length, bytes); OUT gets, per record,
// (uint32 count, count x int32 ids). Used by the tests and the benchmark, which time the
// encoding alone: it prints "encode_seconds=S bytes=B" to stderr (best of --repeat runs).
static void batch_encode(const BPE* bpe, const char* in, const char* outp, int threads, int allow_special, int repeat) {
    size_t n;
    unsigned char* s = read_all(in, &n);
    size_t cap = 1024, m = 0;
    size_t* off = (size_t*)malloc_check(cap * sizeof(size_t), "records");
    size_t* len = (size_t*)malloc_check(cap * sizeof(size_t), "records");
    for (size_t p = 0; p < n;) {
        if (p + 4 > n) { die("%s: truncated record header at byte %zu", in, p); }
        uint32_t l;
        memcpy(&l, s + p, 4);
        if (p + 4 + l > n) { die("%s: record at byte %zu runs past the end", in, p); }
        if (m == cap) {
            cap *= 2;
            off = (size_t*)realloc(off, cap * sizeof(size_t));
            len = (size_t*)realloc(len, cap * sizeof(size_t));
            if (!off || !len) { die("out of memory"); }
        }
        off[m] = p + 4;
        len[m] = l;
        m++;
        p += 4 + l;
    }
    BpeIds* out = (BpeIds*)calloc_check(m, sizeof(BpeIds), "outputs");
    BpeWork** work = (BpeWork**)malloc_check((size_t)threads * sizeof(BpeWork*), "work");
    for (int t = 0; t < threads; t++) { work[t] = bpe_work_new(); }
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < repeat; r++) {
        // a fresh cache each run, so repeats do not measure a warm cache of the same text
        for (int t = 0; t < threads; t++) { bpe_work_free(work[t]); work[t] = bpe_work_new(); }
        for (size_t i = 0; i < m; i++) { out[i].len = 0; }
        struct timespec t0, t1, c0, c1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        encode_many(bpe, work, threads, s, off, len, m, allow_special, out);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        double dc = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
        if (dt < best) { best = dt; }
        if (dc < best_cpu) { best_cpu = dc; }
    }
    double total = 0;
    for (size_t i = 0; i < m; i++) { total += len[i]; }
    // cpu_seconds: CPU time of all threads, a steadier number than wall time on a busy machine
    fprintf(stderr, "encode_seconds=%.6f cpu_seconds=%.6f bytes=%.0f records=%zu threads=%d\n", best, best_cpu, total, m, threads);
    AtomicFile af;
    atomic_open(&af, outp);
    for (size_t i = 0; i < m; i++) {
        uint32_t c = (uint32_t)out[i].len;
        atomic_write(&af, &c, 4, 1);
        atomic_write(&af, out[i].data, sizeof(int), out[i].len);
        bpe_ids_free(&out[i]);
    }
    atomic_commit(&af);
    for (int t = 0; t < threads; t++) { bpe_work_free(work[t]); }
    free(work); free(out); free(off); free(len); free(s);
}

// ----------------------------------------------------------------------------

static void decode_shard(const BPE* bpe, const char* path) {
    char err[LLMC_ERRLEN];
    FILE* f = fopen_regular(path, err);
    if (f == NULL) { die("%s", err); }
    ShardInfo info;
    memset(&info, 0, sizeof(info));
    if (shard_read_header(f, path, &info, err) != 0) { die("%s", err); }
    int* ids = (int*)malloc_check((size_t)(info.ntok > 0 ? info.ntok : 1) * sizeof(int), "tokens");
    if (shard_read_tokens(f, path, &info, 0, info.ntok, ids, NULL, bpe->vocab_size, err) != 0) { die("%s", err); }
    fclose(f);
    BpeBytes out = {0};
    if (bpe_decode(bpe, ids, (size_t)info.ntok, &out) != 0) { die("%s: token id out of range", path); }
    fwrite_check(out.data, 1, out.len, stdout, "stdout");
    bpe_bytes_free(&out);
    free(ids);
}

// unescapes \n \t \\ in a command-line separator
static char* unescape(const char* s) {
    char* o = (char*)malloc_check(strlen(s) + 1, "separator");
    size_t k = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '\\' && s[i + 1]) {
            i++;
            o[k++] = s[i] == 'n' ? '\n' : s[i] == 't' ? '\t' : s[i] == 'r' ? '\r' : s[i];
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = 0;
    return o;
}

#define TOK_NUM_ARGS 18

int main(int argc, char** argv) {
    char vocab_dir[PATH_MAX], enc_default[PATH_MAX + 32], merges_default[PATH_MAX + 32];
    doc_default_vocab_dir(vocab_dir, sizeof(vocab_dir));
    snprintf(enc_default, sizeof(enc_default), "%s/encoder.json", vocab_dir);
    snprintf(merges_default, sizeof(merges_default), "%s/vocab.bpe", vocab_dir);
    const char* encoder = NULL;
    const char* merges = NULL;
    const char *tiktoken = NULL, *out = NULL, *format = "auto", *field = "text", *decode = NULL;
    const char *save_tiktoken = NULL, *write_tok = NULL, *batch_in = NULL, *batch_out = NULL, *sep_arg = NULL;
    char* sep = NULL;
    double val_fraction = -1;       // -1: not given
    long long val_tokens = -1;      // -1: not given
    long long shard_size = -1, shard_size_alias = -1;
    int no_index = 0, allow_special = 0, threads = omp_get_num_procs(), repeat = 1;
    char err[LLMC_ERRLEN];
    // --batch-encode takes two values: take them out before the table parser sees argv
    char** av = (char**)malloc_check((size_t)(argc + 1) * sizeof(char*), "arguments");
    int ac = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--batch-encode") == 0) {
            if (batch_in != NULL) { die("--batch-encode is given twice; give each flag once"); }
            if (i + 2 >= argc) { die("--batch-encode: missing values (IN OUT)"); }
            batch_in = argv[++i];
            batch_out = argv[++i];
            continue;
        }
        av[ac++] = argv[i];
    }
    av[ac] = NULL;
    const double big = 9.2e18;
    ArgSpec specs[TOK_NUM_ARGS] = {
        {"-o", "--out", ARG_STRING, &out, 0, 0, "output prefix: PREFIX_train_000000.bin, PREFIX_val_000000.bin, ..."},
        {NULL, "--encoder", ARG_STRING, &encoder, 0, 0, "GPT-2 encoder.json (default: GPT-2 from ../shared/data/gpt2)"},
        {NULL, "--merges", ARG_STRING, &merges, 0, 0, "GPT-2 vocab.bpe"},
        {NULL, "--tiktoken", ARG_STRING, &tiktoken, 0, 0, "tiktoken rank file instead (e.g. from bpe_train)"},
        {NULL, "--format", ARG_STRING, &format, 0, 0, "auto (by extension: .jsonl, .json, else text), text, jsonl, json (array of objects)"},
        {NULL, "--field", ARG_STRING, &field, 0, 0, "JSON field holding the text"},
        {NULL, "--doc-sep", ARG_STRING, &sep_arg, 0, 0, "split text files into documents after each STR (C escapes: \\n)"},
        {NULL, "--val-fraction", ARG_DOUBLE, &val_fraction, 0, 1, "fraction of documents sent to val: every 1/F-th document (default 0)"},
        {NULL, "--val-tokens", ARG_LONG, &val_tokens, 0, big, "the first N tokens go to val instead (llm.c's tinyshakespeare split)"},
        {NULL, "--shard-tokens", ARG_LONG, &shard_size, 1, 2147483647.0, "tokens per shard (default 100000000)"},
        {NULL, "--shard-size", ARG_LONG, &shard_size_alias, 1, 2147483647.0, "the same as --shard-tokens (older name)"},
        {NULL, "--no-shard-index", ARG_FLAG, &no_index, 0, 0, "name the outputs PREFIX_train.bin / PREFIX_val.bin (one shard each)"},
        {NULL, "--allow-special", ARG_FLAG, &allow_special, 0, 0, "literal \"<|endoftext|>\" in the text becomes the end-of-text token"},
        {NULL, "--threads", ARG_INT, &threads, 1, 1024, "encoding threads (default: all cores)"},
        {NULL, "--repeat", ARG_INT, &repeat, 1, 1000000, "--batch-encode: timing runs"},
        {NULL, "--decode", ARG_STRING, &decode, 0, 0, "print the text of this shard"},
        {NULL, "--write-tokenizer", ARG_STRING, &write_tok, 0, 0, "write llm.c's decode-only tokenizer file"},
        {NULL, "--save-tiktoken", ARG_STRING, &save_tiktoken, 0, 0, "write the vocabulary as a tiktoken rank file"},
    };
    const char** inputs = (const char**)malloc_check((size_t)(argc + 1) * sizeof(char*), "inputs");
    int ninputs = 0;
    int rc = args_parse_positional(ac, av, specs, TOK_NUM_ARGS, inputs, argc, &ninputs, 0, err);
    if (rc == 1) {
        printf("%s\n\n(--batch-encode IN OUT: records of (uint32 length, bytes) -> (uint32 count, int32 ids); for tests and benchmarks)\n", usage_text);
        ArgSpec none[1];
        (void)none;
        args_print_help(stdout, "", specs, TOK_NUM_ARGS);
        return 0;
    }
    if (rc != 0) { die("%s", err); }
    if (shard_size >= 0 && shard_size_alias >= 0) { die("--shard-tokens and --shard-size are the same setting; give one"); }
    if (shard_size < 0) { shard_size = shard_size_alias >= 0 ? shard_size_alias : 100000000; }
    if (val_fraction >= 0 && val_tokens >= 0) {
        die("--val-fraction and --val-tokens contradict each other: split by documents or by the first N tokens, not both");
    }
    if (val_fraction < 0) { val_fraction = 0; }
    if (val_tokens < 0) { val_tokens = 0; }
    if (tiktoken != NULL && (encoder != NULL || merges != NULL)) { die("--tiktoken and --encoder/--merges are two vocabularies; give one"); }
    if ((encoder == NULL) != (merges == NULL) && tiktoken == NULL) {
        // one of the pair given: the other defaults to GPT-2's, which is what people mean
    }
    if (encoder == NULL) { encoder = enc_default; }
    if (merges == NULL) { merges = merges_default; }
    if (strcmp(format, "auto") != 0 && strcmp(format, "text") != 0 && strcmp(format, "jsonl") != 0 && strcmp(format, "json") != 0) {
        die("--format: unknown format '%s' (auto, text, jsonl, json)", format);
    }
    if (ninputs > 0 && out == NULL) { die("-o (--out): encoding INPUT needs an output prefix"); }
    if (ninputs == 0 && out != NULL) { die("-o (--out) %s: no INPUT files to encode", out); }
    if (ninputs == 0 && !write_tok && !decode && !batch_in && !save_tiktoken) {
        die("nothing to do: give INPUT files with -o PREFIX, or --decode, --write-tokenizer, --save-tiktoken, --batch-encode (see --help)");
    }
    if (sep_arg != NULL) { sep = unescape(sep_arg); }
    // inputs must be regular files; no output may be an input or another output
    {
        int cap = ninputs + 8, nin = 0, nout = 0;
        DocPath* in = (DocPath*)malloc_check((size_t)cap * sizeof(DocPath), "paths");
        DocPath outp[4];
        for (int k = 0; k < ninputs; k++) {
            if (check_regular_file(inputs[k], err) != 0) { die("%s", err); }
            in[nin++] = (DocPath){"input", inputs[k]};
        }
        if (tiktoken) { in[nin++] = (DocPath){"--tiktoken", tiktoken}; }
        else { in[nin++] = (DocPath){"--encoder", encoder}; in[nin++] = (DocPath){"--merges", merges}; }
        if (decode) { in[nin++] = (DocPath){"--decode", decode}; }
        if (batch_in) { in[nin++] = (DocPath){"--batch-encode input", batch_in}; }
        for (int k = 0; k < nin; k++) {
            if (check_regular_file(in[k].path, err) != 0) { die("%s: %s", in[k].what, err); }
        }
        if (write_tok) { outp[nout++] = (DocPath){"--write-tokenizer", write_tok}; }
        if (save_tiktoken) { outp[nout++] = (DocPath){"--save-tiktoken", save_tiktoken}; }
        if (batch_out) { outp[nout++] = (DocPath){"--batch-encode output", batch_out}; }
        if (doc_check_paths(in, nin, outp, nout, ninputs > 0 ? out : NULL, err) != 0) { die("%s", err); }
        free(in);
    }
    if (ninputs > 0 && doc_make_parent_dirs(out, err) != 0) { die("-o (--out): %s", err); }
    BPE bpe;
    rc = tiktoken ? bpe_load_tiktoken(&bpe, tiktoken, err) : bpe_load_gpt2(&bpe, encoder, merges, err);
    if (rc != 0) { die("%s", err); }
    if (write_tok) {
        bpe_write_llmc_tokenizer(&bpe, write_tok);
        printf("wrote %s: %d tokens, end-of-text %d\n", write_tok, bpe.vocab_size, bpe.eot);
    }
    if (save_tiktoken) {
        bpe_save_tiktoken(&bpe, save_tiktoken);
        printf("wrote %s: %d ranked tokens\n", save_tiktoken, bpe.n_ranked);
    }
    if (decode) { decode_shard(&bpe, decode); }
    if (batch_in) { batch_encode(&bpe, batch_in, batch_out, threads, allow_special, repeat); }
    if (ninputs > 0) {
        Encoder e;
        memset(&e, 0, sizeof(e));
        e.bpe = &bpe;
        e.threads = threads;
        e.allow_special = allow_special;
        e.val_fraction = val_fraction;
        e.val_tokens = val_tokens;
        e.cap_docs = 1024;
        e.doc_off = (size_t*)calloc_check(e.cap_docs, sizeof(size_t), "documents");
        e.work = (BpeWork**)malloc_check((size_t)threads * sizeof(BpeWork*), "work");
        for (int t = 0; t < threads; t++) { e.work[t] = bpe_work_new(); }
        int tb = bpe.vocab_size > 65536 ? 4 : 2;
        shard_out_init(&e.train, out, "train", tb, shard_size);
        shard_out_init(&e.val, out, "val", tb, shard_size);
        e.train.no_index = e.val.no_index = no_index;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int k = 0; k < ninputs; k++) {
            long before = e.docs + (long)e.ndocs;
            read_documents(inputs[k], format, field, sep, enc_doc, &e);
            if (e.docs + (long)e.ndocs == before) { fprintf(stderr, "warning: %s: no documents in it\n", inputs[k]); }
        }
        enc_flush(&e);
        shard_out_flush(&e.val);
        shard_out_flush(&e.train);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        long text_tokens = e.train.total + e.val.total - e.docs;  // without the end-of-text tokens
        if (val_fraction > 0 && e.val_docs == 0) {
            fprintf(stderr, "warning: --val-fraction %g sent no document to val (%ld documents; val needs at least %.0f)\n",
                    val_fraction, e.docs, val_fraction > 0 ? 1.0 / val_fraction : 0.0);
        }
        if (e.docs == 0) {
            die("%s: no documents: nothing to write", ninputs == 1 ? inputs[0] : "the inputs");
        }
        printf("%ld documents (%ld to val), %.0f bytes -> %ld train + %ld val tokens, %.4f bytes/token (end-of-text tokens not counted), %.2f s, %.1f MB/s\n",
               e.docs, e.val_docs, e.bytes, e.train.total, e.val.total,
               e.bytes / (double)(text_tokens > 0 ? text_tokens : 1), dt, e.bytes / dt / 1e6);
        for (int t = 0; t < threads; t++) { bpe_work_free(e.work[t]); }
        free(e.work); free(e.train.buf); free(e.val.buf); free(e.doc_off); bpe_bytes_free(&e.text);
    }
    free(sep);
    free(inputs);
    free(av);
    bpe_free(&bpe);
    return 0;
}

/*
libFuzzer targets for the file readers: each input is written to an in-memory file and handed
to one reader by path. A reader must return 0 or -1 with a message, never crash, hang, leak or
read out of bounds (built with AddressSanitizer and UndefinedBehaviorSanitizer).
Build one target per reader with -DFUZZ_CHECKPOINT, -DFUZZ_SHARD, -DFUZZ_TOKENIZER,
-DFUZZ_STATE, -DFUZZ_MC_TASK, -DFUZZ_ARGS, -DFUZZ_DOCS, -DFUZZ_GPT2BPE, -DFUZZ_TIKTOKEN, -DFUZZ_DONE,
-DFUZZ_PEFT or -DFUZZ_PAIRS (see dev/fuzz/fuzz.mk).

- PAIRS: llmc/pairs.h's DPO pair-file reader; a file it accepts must have every token below its
  vocabulary, mask bytes 0/1 with a target in every row, and finite reference log-probs <= 0.

- PEFT: llmc/peft.h's adapter-file reader for a fixed base shape (the awkward reference's:
  L=2 C=72 NH=3 V=997 maxT=16), with the base hash taken from the input's own header so that
  inputs get past the hash check to the size, checksum and finiteness checks.

- ARGS: the input is split on NUL bytes into argv, parsed by args_parse_positional over the
  trainer's flag table (train_config_specs), with and without repeats allowed and with
  positional arguments taken; each piece also goes through parse_integer and parse_number.
  The parser must return 0, 1 or -1 with a message, never crash. Each piece also goes through
  dev/data/doc_reader.h's doc_parse_list (the data tools' "A,B" and "A,B,C" values).
- DOCS: dev/data/doc_reader.h's read_documents on the input as JSONL, as a JSON array and as
  text split on a separator. Its callers die() on malformed input (a JSON array), so exit()
  is turned into a longjmp back to the target here: an orderly "error: ..." exit is fine,
  a crash or an out-of-bounds read is not.
- GPT2BPE: llmc/bpe.h's bpe_load_gpt2, the input split at its first NUL byte into
  encoder.json and vocab.bpe; a loaded tokenizer encodes and decodes a short text.
- TIKTOKEN: llmc/bpe.h's bpe_load_tiktoken (the rank file bpe_train writes), then the same.
*/
#define _GNU_SOURCE
#include <sys/mman.h>
#include <setjmp.h>
#include <limits.h>
#include <stdlib.h>
#if defined(FUZZ_DOCS) || defined(FUZZ_GPT2BPE) || defined(FUZZ_TIKTOKEN)
// die() ends with exit(): come back to the fuzz target instead of ending the fuzzer
static jmp_buf fuzz_exit_jmp;
static int fuzz_exit_armed = 0;
static void fuzz_exit(int code) {
    if (fuzz_exit_armed) { longjmp(fuzz_exit_jmp, 1); }
    _Exit(code);
}
#define exit(code) fuzz_exit(code)
#endif
#include "llmc/utils.h"
#include "llmc/checkpoint.h"
#include "llmc/shard.h"
#include "llmc/tokenizer.h"
#include "llmc/train_state.h"
#include "llmc/mc_task.h"
#if defined(FUZZ_PEFT)
#include "llmc/peft.h"
#endif
#if defined(FUZZ_PAIRS)
#include "llmc/pairs.h"
#endif
#if defined(FUZZ_ARGS)
#include "llmc/args.h"
#include "dev/data/doc_reader.h"  // doc_parse_list: the data tools' "A,B" / "A,B,C" values
#endif
#if defined(FUZZ_DOCS)
#include "dev/data/doc_reader.h"
static volatile unsigned fuzz_doc_sum;
// touches every byte of each document, so a document that points outside the file is caught
static void fuzz_doc(void* ctx, const unsigned char* text, size_t len) {
    (void)ctx;
    for (size_t i = 0; i < len; i++) { fuzz_doc_sum += text[i]; }
}
#endif
#if defined(FUZZ_GPT2BPE) || defined(FUZZ_TIKTOKEN)
#include "llmc/bpe.h"
// a loaded tokenizer must encode and decode: every id it makes is in range, and the bytes round-trip
static void fuzz_bpe_roundtrip(const BPE* bpe) {
    static const char text[] = "Hello world, it's 2026! <|endoftext|> \xe3\x81\x93\xe3\x82\x93 \xff\xfe  tabs\tand\nlines";
    BpeWork* w = bpe_work_new();
    BpeIds ids = {0};
    BpeBytes back = {0};
    bpe_encode(bpe, w, (const unsigned char*)text, sizeof(text) - 1, 1, &ids);
    for (size_t i = 0; i < ids.len; i++) {
        if (ids.data[i] < 0 || ids.data[i] >= bpe->vocab_size) { abort(); }
    }
    if (bpe_decode(bpe, ids.data, ids.len, &back) != 0 || back.len != sizeof(text) - 1 ||
        memcmp(back.data, text, back.len) != 0) {
        fprintf(stderr, "fuzz: encode/decode does not round-trip\n");
        abort();
    }
    bpe_ids_free(&ids);
    bpe_bytes_free(&back);
    bpe_work_free(w);
}
#endif

#if defined(FUZZ_ARGS)
// argv from the input split on NUL bytes; the trainer's table, as train_gpt parses it
static void fuzz_args(const uint8_t* data, size_t size) {
    char* buf = (char*)malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    int argc = 1;
    char* argv[258];
    argv[0] = (char*)"train_gpt";
    for (size_t i = 0; i <= size && argc < 257; ) {
        argv[argc++] = buf + i;
        size_t l = strlen(buf + i);
        i += l + 1;
    }
    argv[argc] = NULL;
    char err[LLMC_ERRLEN];
    for (int mode = 0; mode < 3; mode++) {
        TrainConfig c;
        train_config_defaults(&c);
        ArgSpec specs[TRAIN_NUM_ARGS];
        train_config_specs(&c, specs);
        const char* pos[4];
        int npos = 0;
        err[0] = 0;
        int rc = mode == 2 ? args_parse_positional(argc, argv, specs, TRAIN_NUM_ARGS, pos, 4, &npos, 0, err)
                           : args_parse_positional(argc, argv, specs, TRAIN_NUM_ARGS, NULL, 0, NULL, mode, err);
        if (rc != 0 && rc != 1 && rc != -1) { abort(); }
        if (rc == -1 && err[0] == 0) { fprintf(stderr, "fuzz: -1 without a message\n"); abort(); }
        if (rc == 0) {
            // every number is within its flag's range, or still its default (some defaults, like
            // -1 for "from the launcher", sit outside the range a user may give)
            TrainConfig d;
            train_config_defaults(&d);
            ArgSpec dspecs[TRAIN_NUM_ARGS];
            train_config_specs(&d, dspecs);
            for (int k = 0; k < TRAIN_NUM_ARGS; k++) {
                const ArgSpec* s = &specs[k];
                if (s->type == ARG_INT || s->type == ARG_LONG || s->type == ARG_FLOAT || s->type == ARG_DOUBLE) {
                    size_t bytes = s->type == ARG_INT ? sizeof(int) : s->type == ARG_FLOAT ? sizeof(float) : 8;
                    double v = s->type == ARG_INT ? *(int*)s->value : s->type == ARG_FLOAT ? *(float*)s->value
                             : s->type == ARG_LONG ? (double)*(long long*)s->value : *(double*)s->value;
                    if (!(v >= s->min && v <= s->max) && memcmp(s->value, dspecs[k].value, bytes) != 0) {
                        fprintf(stderr, "fuzz: %s = %g outside [%g, %g]\n", s->long_name, v, s->min, s->max);
                        abort();
                    }
                }
                if (s->type == ARG_STRING && *(const char**)s->value != NULL) { (void)strlen(*(const char**)s->value); }
            }
        }
    }
    for (int a = 1; a < argc; a++) {
        long long li = 0;
        double d = 0;
        if (parse_integer("--x", argv[a], -1000000, 1000000, &li, err) == 0 && (li < -1000000 || li > 1000000)) { abort(); }
        if (parse_integer("--x", argv[a], LLONG_MIN, LLONG_MAX, &li, err) != 0 && err[0] == 0) { abort(); }
        if (parse_number("--x", argv[a], -1e30, 1e30, &d, err) == 0 && !(d >= -1e30 && d <= 1e30)) { abort(); }
        if (parse_number("--x", argv[a], 0, 1, &d, err) == 0 && !(d >= 0 && d <= 1)) { abort(); }
        for (int n = 1; n <= 3; n++) {
            double vals[3];
            err[0] = 0;
            int r = doc_parse_list("--x", argv[a], n, -5, 100, vals, err);
            if (r == 0) {
                for (int i = 0; i < n; i++) { if (!(vals[i] >= -5 && vals[i] <= 100)) { abort(); } }
            } else if (r != -1 || err[0] == 0) {
                fprintf(stderr, "fuzz: doc_parse_list returned %d without a message\n", r);
                abort();
            }
        }
    }
    free(buf);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
#if defined(FUZZ_ARGS)
    fuzz_args(data, size);
    return 0;
#endif
    int fd = memfd_create("fuzz_input", 0);
    if (fd < 0) { die("memfd_create failed"); }
    if (size > 0 && write(fd, data, size) != (ssize_t)size) { die("write to memfd failed"); }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    char err[LLMC_ERRLEN];
#if defined(FUZZ_CHECKPOINT)
    GPT2Config cfg;
    float* params = NULL;
    if (checkpoint_read(path, &cfg, &params, err) == 0) { free(params); }
#elif defined(FUZZ_SHARD)
    FILE* f = fopen(path, "rb");
    ShardInfo info;
    if (f != NULL && shard_read_header(f, path, &info, err) == 0) {
        static int tokens[4096];
        static uint8_t mask[4096];
        long n = info.ntok < 4096 ? info.ntok : 4096;
        shard_read_tokens(f, path, &info, 0, n, tokens, mask, 50257, err);
        shard_read_tokens(f, path, &info, info.ntok - n, n, tokens, NULL, 50257, err);
    }
    if (f != NULL) { fclose(f); }
#elif defined(FUZZ_TOKENIZER)
    Tokenizer tok;
    if (tokenizer_init(&tok, path, err) == 0) {
        for (int i = 0; i < tok.vocab_size && i < 64; i++) { (void)tokenizer_decode(&tok, i); }
        tokenizer_free(&tok);
    }
#elif defined(FUZZ_STATE)
    TrainStateHeader expected, h;
    memset(&expected, 0, sizeof(expected));
    expected.num_parameters = 64; expected.shard_count = 64; expected.num_processes = 1;
    expected.B = 4; expected.T = 64; expected.total_batch_size = 256;
    static float m[64], v[64];
    FILE* f = NULL;
    if (train_state_open(path, &expected, &h, &f, err) == 0) {
        train_state_read_overlap(f, path, &h, 0, 64, m, v, err);
        fclose(f);
    }
#elif defined(FUZZ_MC_TASK)
    McTask task;
    if (mc_task_load(&task, path, 50257, err) == 0) {
        int seq[128], first, ntok[MC_MAX_CHOICES];
        double ll[MC_MAX_CHOICES], value[MC_NUM_METRICS];
        for (int i = 0; i < task.num_examples && i < 8; i++) {
            const McExample* ex = &task.examples[i];
            for (int c = 0; c < ex->num_choices; c++) {
                int len = mc_sequence(&task, ex, c, seq, 128, &first);
                ll[c] = -len;
                ntok[c] = len - 1 - first;
            }
            mc_score_example(&task, ex, ll, ntok, value);
            mc_chance(&task, ex);
        }
        mc_task_free(&task);
    }
#elif defined(FUZZ_ARGS)
    // handled above, before the memfd
#elif defined(FUZZ_DOCS)
    static const char* const formats[3] = {"jsonl", "json", "text"};
    for (int k = 0; k < 3; k++) {
        fuzz_doc_sum = 0;
        fuzz_exit_armed = 1;
        if (setjmp(fuzz_exit_jmp) == 0) {
            read_documents(path, formats[k], "text", "\n\n", fuzz_doc, NULL);
        }
        fuzz_exit_armed = 0;
    }
#elif defined(FUZZ_GPT2BPE)
    // encoder.json before the first NUL byte, vocab.bpe after it (empty without one)
    const uint8_t* nul = size > 0 ? (const uint8_t*)memchr(data, 0, size) : NULL;
    size_t n1 = nul != NULL ? (size_t)(nul - data) : size;
    int fd2 = memfd_create("fuzz_merges", 0);
    if (fd2 < 0) { die("memfd_create failed"); }
    if (ftruncate(fd, (off_t)n1) != 0) { die("ftruncate failed"); }
    if (nul != NULL && size - n1 - 1 > 0 && write(fd2, nul + 1, size - n1 - 1) != (ssize_t)(size - n1 - 1)) {
        die("write to memfd failed");
    }
    char path2[64];
    snprintf(path2, sizeof(path2), "/proc/self/fd/%d", fd2);
    BPE bpe;
    fuzz_exit_armed = 1;
    if (setjmp(fuzz_exit_jmp) == 0 && bpe_load_gpt2(&bpe, path, path2, err) == 0) {
        fuzz_bpe_roundtrip(&bpe);
        bpe_free(&bpe);
    }
    fuzz_exit_armed = 0;
    close(fd2);
#elif defined(FUZZ_TIKTOKEN)
    BPE bpe;
    fuzz_exit_armed = 1;
    if (setjmp(fuzz_exit_jmp) == 0 && bpe_load_tiktoken(&bpe, path, err) == 0) {
        fuzz_bpe_roundtrip(&bpe);
        bpe_free(&bpe);
    }
    fuzz_exit_armed = 0;
#elif defined(FUZZ_DONE)
    // the DONE marker (integrity record and config record, llmc/train_state.h): the input is
    // the marker of step 1 in a directory that also holds that step's model and state files
    static char dir[64] = "";
    char done[128];
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/fuzz_done.XXXXXX");
        if (mkdtemp(dir) == NULL) { die("mkdtemp failed"); }
        const char* names[2] = { "model_00000001.bin", "state_00000001_00000.bin" };
        for (int i = 0; i < 2; i++) {
            snprintf(done, sizeof(done), "%s/%s", dir, names[i]);
            FILE* g = fopen(done, "wb");
            if (g == NULL || fwrite(names[i], 1, 5, g) != 5 || fclose(g) != 0) { die("cannot write %s", done); }
        }
    }
    snprintf(done, sizeof(done), "%s/DONE_00000001", dir);
    FILE* g = fopen(done, "wb");
    if (g == NULL || (size > 0 && fwrite(data, 1, size, g) != size) || fclose(g) != 0) { die("cannot write %s", done); }
    int good, versioned, verified;
    char diffs[4096];
    read_done_marker(dir, 1, &good, &versioned, err);
    checkpoint_verify(dir, 1, &verified, err);
    checkpoint_config_changes(dir, 1, "config -x 8\nconfig -l 0.001\n", diffs, sizeof(diffs));
#elif defined(FUZZ_PEFT)
    GPT2Config c = { .max_seq_len = 16, .vocab_size = 997, .padded_vocab_size = 1024, .num_layers = 2,
                     .num_heads = 3, .channels = 72 };
    uint64_t base_hash = 0;
    if (size >= 1024) {
        int32_t h[256];
        memcpy(h, data, sizeof(h));
        base_hash = (uint64_t)(uint32_t)h[17] | ((uint64_t)(uint32_t)h[18] << 32);
    }
    PeftLayout lay;
    float* peft = NULL;
    if (peft_file_read(path, &c, base_hash, &lay, &peft, err) == 0) { free(peft); }
#elif defined(FUZZ_PAIRS)
    PairFile pf;
    err[0] = 0;
    if (pairs_read(path, &pf, err) == 0) {
        // what the reader promises the trainer, checked on everything it accepts
        size_t T = (size_t)pf.T, rows = 2 * (size_t)pf.npairs;
        for (size_t r = 0; r < rows; r++) {
            long targets = 0;
            for (size_t t = 0; t <= T; t++) { if (pf.tokens[r * (T + 1) + t] >= (uint32_t)pf.vocab) { abort(); } }
            for (size_t t = 0; t < T; t++) { if (pf.mask[r * T + t] > 1) { abort(); } targets += pf.mask[r * T + t]; }
            if (targets == 0) { abort(); }
            if (pf.has_ref && !(pf.ref_logp[r] <= 0.0f && isfinite(pf.ref_logp[r]))) { abort(); }
        }
        pairs_free(&pf);
    } else if (err[0] == 0) {
        fprintf(stderr, "fuzz: pairs_read failed without a message\n");
        abort();
    }
#else
#error "define one of FUZZ_CHECKPOINT, FUZZ_SHARD, FUZZ_TOKENIZER, FUZZ_STATE, FUZZ_MC_TASK, FUZZ_ARGS, FUZZ_DOCS, FUZZ_GPT2BPE, FUZZ_TIKTOKEN, FUZZ_DONE, FUZZ_PEFT, FUZZ_PAIRS"
#endif
    close(fd);
    return 0;
}

/*
Tests of the shared host code in llmc/: file readers on good and bad files, the data loader's
epoch coverage (shuffled or not, several shards, several ranks), flag parsing and the
learning-rate schedules. Token data comes from the real tiny shakespeare val shard.

usage: test_llmc VAL_SHARD TOKENIZER_FILE HELLASWAG_FILE
Prints PASS:/FAIL: lines; exits 1 if anything failed.
*/
#include <math.h>
#include <time.h>
#include "llmc/utils.h"
#include "llmc/rand.h"
#include "llmc/args.h"
#include "llmc/checkpoint.h"
#include "llmc/shard.h"
#include "llmc/dataloader.h"
#include "llmc/tokenizer.h"
#include "llmc/schedule.h"
#include "llmc/guard.h"
#include "llmc/train_state.h"
#include "llmc/run_dir.h"
#include "llmc/mc_task.h"
#include "llmc/comm.h"
#include "llmc/encoder.h"
#include "dev/test/testing.h"

static char tmpdir[256];

static void tmp_path(char* out, size_t n, const char* name) {
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static void write_bytes(const char* path, const void* data, size_t n) {
    FILE* f = fopen_check(path, "wb");
    fwrite_check(data, 1, n, f, path);
    fclose(f);
}

static unsigned char* read_all(const char* path, size_t* n) {
    FILE* f = fopen_check(path, "rb");
    long size = file_size_of(f);
    unsigned char* buf = (unsigned char*)malloc_check(size, path);
    char err[LLMC_ERRLEN];
    if (fread_exact(buf, 1, size, f, path, err) != 0) { die("%s", err); }
    fclose(f);
    *n = (size_t)size;
    return buf;
}

// expects rc == -1 and an error message containing both the file name and `what`
static void check_rejects(int rc, const char* err, const char* path, const char* what, const char* name) {
    int ok = rc == -1 && strstr(err, path) != NULL && strstr(err, what) != NULL;
    check(ok, name, "rc=%d, message: %s", rc, rc == -1 ? err : "(none)");
}

// ----------------------------------------------------------------------------

// gpt2_init_random on memory full of NaN (what a recycled malloc can hold: an H200 machine's
// infer_check found one in wte's padded rows): every value finite, biases and padded rows zero
static void test_init_random(void) {
    GPT2Config cfg = { .max_seq_len = 7, .vocab_size = 131, .padded_vocab_size = 136,
                       .num_layers = 2, .num_heads = 3, .channels = 12 };
    size_t n = gpt2_num_parameters(&cfg);
    float* params = float_alloc_check(n, "params");
    for (size_t i = 0; i < n; i++) { params[i] = NAN; }
    gpt2_init_random(params, &cfg, 7);
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, &cfg);
    size_t nonfinite = 0, padded_nonzero = 0, bias_nonzero = 0, at = 0;
    for (size_t i = 0; i < n; i++) { nonfinite += !isfinite(params[i]); }
    for (size_t i = (size_t)cfg.vocab_size * cfg.channels; i < sizes[0]; i++) { padded_nonzero += params[i] != 0.0f; }
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        int is_bias = t == 3 || t == 5 || t == 7 || t == 9 || t == 11 || t == 13 || t == 15;  // ln1b qkvb attprojb ln2b fcb fcprojb lnfb
        for (size_t i = 0; is_bias && i < sizes[t]; i++) { bias_nonzero += params[at + i] != 0.0f; }
        at += sizes[t];
    }
    check(nonfinite == 0 && padded_nonzero == 0 && bias_nonzero == 0, "gpt2_init_random over NaN-filled memory",
          "%zu non-finite, %zu padded wte entries and %zu biases not zero, of %zu", nonfinite, padded_nonzero, bias_nonzero, n);
    free(params);
}

static void test_checkpoint(void) {
    GPT2Config cfg = { .max_seq_len = 7, .vocab_size = 131, .padded_vocab_size = 256,
                       .num_layers = 2, .num_heads = 3, .channels = 12 };
    size_t n = gpt2_num_parameters(&cfg);
    float* params = float_alloc_check(n, "params");
    Rng rng;
    rng_init(&rng, (uint64_t)time(NULL));
    rng_normal(&rng, params, n, 0.0f, 1.0f);
    char path[512], bad[512], err[LLMC_ERRLEN];
    tmp_path(path, sizeof(path), "model.bin");
    checkpoint_write(path, &cfg, params, 3);

    GPT2Config got;
    float* loaded = NULL;
    int rc = checkpoint_read(path, &got, &loaded, err);
    check(rc == 0 && memcmp(&got, &cfg, sizeof(cfg)) == 0 && memcmp(loaded, params, n * sizeof(float)) == 0,
          "checkpoint round trip", "%zu parameters, rc=%d", n, rc);
    free(loaded);

    size_t size;
    unsigned char* bytes = read_all(path, &size);
    int32_t* header = (int32_t*)bytes;

    tmp_path(bad, sizeof(bad), "model_badmagic.bin");
    header[0] = 12345;
    write_bytes(bad, bytes, size);
    header[0] = CHECKPOINT_MAGIC;
    rc = checkpoint_read(bad, &got, &loaded, err);
    check_rejects(rc, err, bad, "bad magic", "checkpoint: wrong magic rejected");

    tmp_path(bad, sizeof(bad), "model_badversion.bin");
    header[1] = 4;
    write_bytes(bad, bytes, size);
    header[1] = 3;
    rc = checkpoint_read(bad, &got, &loaded, err);
    check_rejects(rc, err, bad, "version 4", "checkpoint: wrong version rejected");

    tmp_path(bad, sizeof(bad), "model_truncated.bin");
    write_bytes(bad, bytes, size - 10);
    rc = checkpoint_read(bad, &got, &loaded, err);
    check_rejects(rc, err, bad, "truncated", "checkpoint: truncated file rejected");

    tmp_path(bad, sizeof(bad), "model_header_only.bin");
    write_bytes(bad, bytes, 100);
    rc = checkpoint_read(bad, &got, &loaded, err);
    check_rejects(rc, err, bad, "truncated", "checkpoint: truncated header rejected");

    tmp_path(bad, sizeof(bad), "model_badshape.bin");
    header[6] = 13;  // C not divisible by NH
    write_bytes(bad, bytes, size);
    header[6] = 12;
    rc = checkpoint_read(bad, &got, &loaded, err);
    check_rejects(rc, err, bad, "not divisible", "checkpoint: inconsistent shape rejected");

    // version 5: bf16 parameters, widened to fp32 on load
    tmp_path(bad, sizeof(bad), "model_bf16.bin");
    uint16_t* half = (uint16_t*)malloc_check(n * 2, "bf16");
    for (size_t i = 0; i < n; i++) { uint32_t b; memcpy(&b, &params[i], 4); half[i] = (uint16_t)(b >> 16); }
    header[1] = 5;
    FILE* f = fopen_check(bad, "wb");
    fwrite_check(header, 4, 256, f, bad);
    fwrite_check(half, 2, n, f, bad);
    fclose(f);
    header[1] = 3;
    rc = checkpoint_read(bad, &got, &loaded, err);
    int same = rc == 0;
    for (size_t i = 0; same && i < n; i++) {
        // truncation to bf16 keeps 8 bits of mantissa
        if (fabsf(loaded[i] - params[i]) > fabsf(params[i]) / 128.0f) { same = 0; }
    }
    check(same, "checkpoint: bf16 (version 5) loads", "rc=%d", rc);
    free(loaded);
    free(half);
    free(bytes);
    free(params);
}

// ----------------------------------------------------------------------------

static int* load_real_tokens(const char* shard, long* ntok) {
    char err[LLMC_ERRLEN];
    FILE* f = fopen_check(shard, "rb");
    ShardInfo info;
    if (shard_read_header(f, shard, &info, err) != 0) { die("%s", err); }
    int* tokens = (int*)malloc_check(info.ntok * sizeof(int), "tokens");
    if (shard_read_tokens(f, shard, &info, 0, info.ntok, tokens, NULL, 50257, err) != 0) { die("%s", err); }
    fclose(f);
    *ntok = info.ntok;
    return tokens;
}

static void write_u16_shard(const char* path, const int* tokens, long n) {
    uint16_t* t = (uint16_t*)malloc_check(n * 2, "u16");
    for (long i = 0; i < n; i++) { t[i] = (uint16_t)tokens[i]; }
    shard_write(path, t, n, 2, NULL);
    free(t);
}

static void test_shards(const int* tokens, long ntok) {
    char path[512], bad[512], err[LLMC_ERRLEN];
    long n = 1000;
    tmp_path(path, sizeof(path), "shard_ok.bin");
    write_u16_shard(path, tokens, n);
    size_t size;
    unsigned char* bytes = read_all(path, &size);
    int32_t* header = (int32_t*)bytes;
    check(header[1] == 1 && size == 1024 + 2 * (size_t)n, "shard writer emits llm.c version 1", "%zu bytes", size);

    FILE* f = fopen_check(path, "rb");
    ShardInfo info;
    int rc = shard_read_header(f, path, &info, err);
    int* got = (int*)malloc_check(n * sizeof(int), "got");
    if (rc == 0) { rc = shard_read_tokens(f, path, &info, 0, n, got, NULL, 50257, err); }
    fclose(f);
    check(rc == 0 && memcmp(got, tokens, n * sizeof(int)) == 0, "shard round trip", "%ld real tokens", n);

    tmp_path(bad, sizeof(bad), "shard_badmagic.bin");
    header[0] = 20240326;  // a checkpoint's magic
    write_bytes(bad, bytes, size);
    header[0] = SHARD_MAGIC;
    f = fopen_check(bad, "rb");
    rc = shard_read_header(f, bad, &info, err);
    fclose(f);
    check_rejects(rc, err, bad, "bad magic", "shard: wrong magic rejected");

    tmp_path(bad, sizeof(bad), "shard_badversion.bin");
    header[1] = 7;
    write_bytes(bad, bytes, size);
    header[1] = 1;
    f = fopen_check(bad, "rb");
    rc = shard_read_header(f, bad, &info, err);
    fclose(f);
    check_rejects(rc, err, bad, "version 7", "shard: wrong version rejected");

    tmp_path(bad, sizeof(bad), "shard_truncated.bin");
    write_bytes(bad, bytes, size - 3);
    f = fopen_check(bad, "rb");
    rc = shard_read_header(f, bad, &info, err);
    fclose(f);
    check_rejects(rc, err, bad, "truncated", "shard: truncated file rejected");

    // token ids >= V: real GPT-2 tokens read with a vocabulary of 100
    f = fopen_check(path, "rb");
    rc = shard_read_header(f, path, &info, err);
    if (rc == 0) { rc = shard_read_tokens(f, path, &info, 0, n, got, NULL, 100, err); }
    fclose(f);
    check_rejects(rc, err, path, "out of range", "shard: token id >= V rejected");

    // and through the data loader, which names the file
    DataLoader dl;
    rc = dataloader_init(&dl, path, 2, 16, 100, 0, 1, 0, 1, err);
    if (rc == 0) { rc = dataloader_next(&dl, err); dataloader_free(&dl); }
    check_rejects(rc, err, path, "out of range", "loader: token id >= V rejected");

    rc = dataloader_init(&dl, "/nonexistent/dir/*.bin", 2, 16, 100, 0, 1, 0, 1, err);
    check_rejects(rc, err, "/nonexistent/dir/*.bin", "no files match", "loader: empty glob rejected");

    rc = dataloader_init(&dl, path, 64, 16, 50257, 0, 1, 0, 1, err);
    check_rejects(rc, err, path, "fewer than one batch", "loader: data smaller than one batch rejected");

    // version 2: 4-byte tokens and a loss mask
    tmp_path(bad, sizeof(bad), "shard_v2.bin");
    uint32_t* wide = (uint32_t*)malloc_check(n * 4, "wide");
    uint8_t* mask = (uint8_t*)malloc_check(n, "mask");
    for (long i = 0; i < n; i++) { wide[i] = (uint32_t)tokens[i] + 70000u; mask[i] = (uint8_t)(i % 3 != 0); }
    shard_write(bad, wide, n, 4, mask);
    uint8_t* got_mask = (uint8_t*)malloc_check(n, "got mask");
    f = fopen_check(bad, "rb");
    rc = shard_read_header(f, bad, &info, err);
    if (rc == 0) { rc = shard_read_tokens(f, bad, &info, 0, n, got, got_mask, 200000, err); }
    fclose(f);
    int same = rc == 0 && info.version == 2 && memcmp(got_mask, mask, n) == 0;
    for (long i = 0; same && i < n; i++) { same = got[i] == (int)wide[i]; }
    check(same, "shard version 2 (uint32 tokens + mask) round trip", "rc=%d", rc);
    free(wide); free(mask); free(got_mask); free(got); free(bytes);
    (void)ntok;
}

// ----------------------------------------------------------------------------

// Consumes batches until `count` sequences have been drawn; records them as shard*1e6+seq and
// checks each against the file contents.
static int draw_sequences(DataLoader* dl, long count, long* out, int* const* shard_tokens, char* err) {
    long drawn = 0;
    int content_ok = 1;
    while (drawn < count) {
        if (dataloader_next(dl, err) != 0) { return -1; }
        for (int b = 0; b < dl->B && drawn < count; b++) {
            int s = dl->batch_shard[b];
            long q = dl->batch_seq[b];
            const int* src = shard_tokens[s] + q * dl->T;
            if (memcmp(dl->inputs + (size_t)b * dl->T, src, dl->T * sizeof(int)) != 0 ||
                memcmp(dl->targets + (size_t)b * dl->T, src + 1, dl->T * sizeof(int)) != 0) {
                content_ok = 0;
            }
            out[drawn++] = (long)s * 1000000 + q;
        }
    }
    return content_ok ? 0 : 1;
}

static int cmp_long(const void* a, const void* b) {
    long x = *(const long*)a, y = *(const long*)b;
    return (x > y) - (x < y);
}

// every (shard, seq) of the epoch exactly once
static int is_exact_cover(const long* drawn, long n, const DataLoader* dl) {
    long* sorted = (long*)malloc_check(n * sizeof(long), "sorted");
    memcpy(sorted, drawn, n * sizeof(long));
    qsort(sorted, n, sizeof(long), cmp_long);
    long k = 0;
    int ok = n == dl->total_seqs;
    for (int s = 0; ok && s < dl->num_shards; s++) {
        for (long q = 0; ok && q < dl->shard_num_seqs[s]; q++) {
            if (sorted[k++] != (long)s * 1000000 + q) { ok = 0; }
        }
    }
    free(sorted);
    return ok;
}

static void test_dataloader(const int* tokens, long ntok) {
    // three shards of unequal, awkward sizes cut from the real tokens
    long cuts[4] = { 0, 4001, 4001 + 7777, 4001 + 7777 + 9123 };
    if (cuts[3] > ntok) { die("val shard too small for the loader test"); }
    int* shard_tokens[3];
    for (int s = 0; s < 3; s++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/loader_%d.bin", tmpdir, s);
        write_u16_shard(path, tokens + cuts[s], cuts[s + 1] - cuts[s]);
        shard_tokens[s] = (int*)tokens + cuts[s];
    }
    char pattern[512], err[LLMC_ERRLEN];
    snprintf(pattern, sizeof(pattern), "%s/loader_*.bin", tmpdir);
    int B = 5, T = 17;
    uint64_t seed = (uint64_t)time(NULL);

    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        DataLoader dl;
        if (dataloader_init(&dl, pattern, B, T, 50257, 0, 1, shuffle, seed, err) != 0) { die("%s", err); }
        long n = dl.total_seqs;
        long* epoch0 = (long*)malloc_check(n * sizeof(long), "epoch0");
        long* epoch1 = (long*)malloc_check(n * sizeof(long), "epoch1");
        // two epochs drawn back to back: the batch that straddles the boundary is split correctly
        long* both = (long*)malloc_check(2 * n * sizeof(long), "both");
        int rc = draw_sequences(&dl, 2 * n, both, shard_tokens, err);
        memcpy(epoch0, both, n * sizeof(long));
        memcpy(epoch1, both + n, n * sizeof(long));
        const char* mode = shuffle ? "shuffled" : "in order";
        char name[128];
        snprintf(name, sizeof(name), "loader %s: batches hold the right tokens", mode);
        check(rc == 0, name, "%ld sequences of T=%d from 3 shards", 2 * n, T);
        snprintf(name, sizeof(name), "loader %s: epoch 1 covers every sequence once", mode);
        check(is_exact_cover(epoch0, n, &dl), name, "%ld sequences", n);
        snprintf(name, sizeof(name), "loader %s: epoch 2 covers every sequence once", mode);
        check(is_exact_cover(epoch1, n, &dl), name, "%ld sequences", n);
        int in_order = 1, same_epochs = 1;
        for (long i = 0; i < n; i++) {
            if (i > 0 && epoch0[i] < epoch0[i - 1]) { in_order = 0; }
            if (epoch0[i] != epoch1[i]) { same_epochs = 0; }
        }
        if (shuffle) {
            check(!in_order && !same_epochs, "loader shuffled: order is shuffled and differs by epoch",
                  "in_order=%d same_epochs=%d", in_order, same_epochs);
        } else {
            check(in_order && same_epochs, "loader in order: file order every epoch",
                  "in_order=%d same_epochs=%d", in_order, same_epochs);
        }
        // reset: the same stream again
        dataloader_reset(&dl, seed);
        long* again = (long*)malloc_check(n * sizeof(long), "again");
        draw_sequences(&dl, n, again, shard_tokens, err);
        snprintf(name, sizeof(name), "loader %s: reset replays the stream", mode);
        check(memcmp(again, epoch0, n * sizeof(long)) == 0, name, "%ld sequences", n);
        free(again);

        // two ranks of B together see what one process with 2B sees, disjointly
        DataLoader r0, r1, one;
        if (dataloader_init(&r0, pattern, B, T, 50257, 0, 2, shuffle, seed, err) != 0 ||
            dataloader_init(&r1, pattern, B, T, 50257, 1, 2, shuffle, seed, err) != 0 ||
            dataloader_init(&one, pattern, 2 * B, T, 50257, 0, 1, shuffle, seed, err) != 0) { die("%s", err); }
        int ranks_ok = 1;
        for (int step = 0; step < 40 && ranks_ok; step++) {
            if (dataloader_next(&r0, err) || dataloader_next(&r1, err) || dataloader_next(&one, err)) { die("%s", err); }
            for (int b = 0; b < B; b++) {
                if (r0.batch_shard[b] != one.batch_shard[b] || r0.batch_seq[b] != one.batch_seq[b] ||
                    r1.batch_shard[b] != one.batch_shard[B + b] || r1.batch_seq[b] != one.batch_seq[B + b]) {
                    ranks_ok = 0;
                }
            }
            if (memcmp(r1.inputs, one.inputs + (size_t)B * T, (size_t)B * T * sizeof(int)) != 0) { ranks_ok = 0; }
        }
        snprintf(name, sizeof(name), "loader %s: 2 ranks x B == 1 process x 2B", mode);
        check(ranks_ok, name, "40 batches");
        dataloader_free(&r0); dataloader_free(&r1); dataloader_free(&one);
        free(epoch0); free(epoch1); free(both);
        dataloader_free(&dl);
    }
}

// ----------------------------------------------------------------------------

static void test_tokenizer(const char* path) {
    Tokenizer tok;
    char err[LLMC_ERRLEN], bad[512];
    int rc = tokenizer_init(&tok, path, err);
    int ok = rc == 0 && tok.vocab_size == 50257 && tok.eot_token == 50256 &&
             strcmp(tokenizer_decode(&tok, 15496), "Hello") == 0 &&     // GPT-2's ids
             strcmp(tokenizer_decode(&tok, 995), " world") == 0 &&
             strcmp(tokenizer_decode(&tok, 50256), "<|endoftext|>") == 0 &&
             tokenizer_decode(&tok, 50257) == NULL;
    check(ok, "tokenizer decodes GPT-2 ids", "rc=%d %s", rc, rc ? err : "");
    if (rc == 0) { tokenizer_free(&tok); }
    size_t size;
    unsigned char* bytes = read_all(path, &size);
    tmp_path(bad, sizeof(bad), "tok_badmagic.bin");
    ((int32_t*)bytes)[0] = 1;
    write_bytes(bad, bytes, size);
    ((int32_t*)bytes)[0] = TOKENIZER_MAGIC;
    rc = tokenizer_init(&tok, bad, err);
    check_rejects(rc, err, bad, "bad magic", "tokenizer: wrong magic rejected");
    tmp_path(bad, sizeof(bad), "tok_truncated.bin");
    write_bytes(bad, bytes, size / 2);
    rc = tokenizer_init(&tok, bad, err);
    check_rejects(rc, err, bad, "truncated", "tokenizer: truncated file rejected");
    free(bytes);
}

// ----------------------------------------------------------------------------

static int parse_argv(TrainConfig* c, const char* line, char* err) {
    char buf[512];
    snprintf(buf, sizeof(buf), "prog %s", line);
    char* argv[32];
    int argc = 0;
    for (char* tokp = strtok(buf, " "); tokp != NULL && argc < 32; tokp = strtok(NULL, " ")) { argv[argc++] = tokp; }
    train_config_defaults(c);
    ArgSpec specs[TRAIN_NUM_ARGS];
    train_config_specs(c, specs);
    return args_parse(argc, argv, specs, TRAIN_NUM_ARGS, err);
}

static void test_args(void) {
    TrainConfig c;
    char err[LLMC_ERRLEN];
    int rc = parse_argv(&c, "-b 3 --seq-len 17 -l 0.002 --lr-schedule=wsd -x 5 --no-shuffle -i a.bin", err);
    check(rc == 0 && c.B == 3 && c.T == 17 && fabsf(c.learning_rate - 0.002f) < 1e-9f && strcmp(c.lr_schedule, "wsd") == 0 &&
          c.max_steps == 5 && c.no_shuffle == 1 && strcmp(c.train_data, "a.bin") == 0,
          "flags: short, long and --name=value forms", "rc=%d", rc);
    struct { const char* line; const char* flag; const char* what; } bad[] = {
        { "-b 0", "-b", "out of range" },
        { "-b 2x", "-b", "expected an integer" },
        { "--batch-size -4", "--batch-size", "out of range" },
        { "-l abc", "-l", "expected a number" },
        { "-l nan", "-l", "expected a number" },
        { "-q 1.5", "-q", "out of range" },
        { "-t", "-t", "missing value" },
        { "--bogus 3", "--bogus", "unknown flag" },
        { "--no-shuffle=1", "--no-shuffle", "takes no value" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc = parse_argv(&c, bad[i].line, err);
        char name[128];
        snprintf(name, sizeof(name), "flags: '%s' refused, naming the flag", bad[i].line);
        check(rc == -1 && strstr(err, bad[i].flag) != NULL && strstr(err, bad[i].what) != NULL, name,
              "%s", rc == -1 ? err : "accepted");
    }
    rc = parse_argv(&c, "--help", err);
    check(rc == 1, "flags: --help recognised", "rc=%d", rc);
}

static void test_schedule(void) {
    LRSchedule s = { LR_COSINE, 1e-3f, 10, 110, 0.1f, 0.2f };
    int ok = fabsf(lr_at(&s, 0) - 1e-4f) < 1e-9f && fabsf(lr_at(&s, 9) - 1e-3f) < 1e-9f &&
             fabsf(lr_at(&s, 10) - 1e-3f) < 1e-9f && fabsf(lr_at(&s, 109) - 1e-4f) < 1e-9f &&
             fabsf(lr_at(&s, 59) - 5.5e-4f) < 1e-5f;
    for (int i = 11; i < 110; i++) { if (lr_at(&s, i) > lr_at(&s, i - 1)) { ok = 0; } }
    check(ok, "schedule: cosine warmup, peak, monotone decay to the final fraction", "lr(0)=%g lr(109)=%g", lr_at(&s, 0), lr_at(&s, 109));
    s.type = LR_LINEAR;
    ok = fabsf(lr_at(&s, 109) - 1e-4f) < 1e-9f && fabsf(lr_at(&s, 10 + 99 / 2) - (1e-3f - 0.5f * 9e-4f)) < 1e-5f;
    check(ok, "schedule: linear", "lr(109)=%g", lr_at(&s, 109));
    s.type = LR_CONSTANT;
    check(lr_at(&s, 109) == 1e-3f && lr_at(&s, 50) == 1e-3f, "schedule: constant", "lr(109)=%g", lr_at(&s, 109));
    s.type = LR_WSD;  // decay over the last 22 steps: 88..109
    ok = lr_at(&s, 87) == 1e-3f && lr_at(&s, 88) == 1e-3f && lr_at(&s, 89) < 1e-3f && fabsf(lr_at(&s, 109) - 1e-4f) < 1e-9f;
    check(ok, "schedule: wsd stable then linear decay", "lr(87)=%g lr(89)=%g lr(109)=%g", lr_at(&s, 87), lr_at(&s, 89), lr_at(&s, 109));
}

static void test_atomic_file(void) {
    char path[512];
    tmp_path(path, sizeof(path), "atomic.bin");
    write_bytes(path, "old", 3);
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, "new contents", 1, 12);
    size_t n;
    unsigned char* before = read_all(path, &n);
    int old_intact = n == 3 && memcmp(before, "old", 3) == 0;  // not replaced until commit
    free(before);
    atomic_commit(&af);
    unsigned char* after = read_all(path, &n);
    int replaced = n == 12 && memcmp(after, "new contents", 12) == 0;
    free(after);
    check(old_intact && replaced && access(af.tmp_path, F_OK) != 0, "atomic file: old file intact until rename, no temp left",
          "old_intact=%d replaced=%d", old_intact, replaced);
}

static void test_guard(void) {
    SpikeGuard g;
    guard_init(&g, 20, 4.0f, 4.0f, 3);
    char why[256];
    Rng rng;
    rng_init(&rng, (uint64_t)time(NULL));
    int bad = 0;
    for (int i = 0; i < 40; i++) {  // a noisy, slowly falling loss: never flagged
        bad += guard_check(&g, 5.0f - 0.01f * i + 0.05f * (rng_f32(&rng) - 0.5f), 1.0f + 0.1f * rng_f32(&rng), why, sizeof(why));
    }
    check(bad == 0 && g.count == 20, "guard: ordinary steps pass", "%d flagged, window %d", bad, g.count);
    int spike = guard_check(&g, 9.0f, 1.0f, why, sizeof(why));
    check(spike == 1 && strstr(why, "loss") != NULL && g.bad_in_row == 1, "guard: a loss spike is flagged", "%s", why);
    int normspike = guard_check(&g, 4.6f, 50.0f, why, sizeof(why));
    check(normspike == 1 && strstr(why, "gradient norm") != NULL && g.bad_in_row == 2, "guard: a gradient-norm spike is flagged", "%s", why);
    int nan = guard_check(&g, NAN, 1.0f, why, sizeof(why));
    check(nan == 1 && strstr(why, "non-finite") != NULL && g.bad_in_row == 3, "guard: NaN is flagged", "%s", why);
    int ok = guard_check(&g, 4.6f, 1.05f, why, sizeof(why));
    check(ok == 0 && g.bad_in_row == 0, "guard: a good step resets the bad count", "bad_in_row %d", g.bad_in_row);
    guard_init(&g, 20, 0.0f, 0.0f, 3);
    for (int i = 0; i < 20; i++) { guard_check(&g, 5.0f, 1.0f, why, sizeof(why)); }
    check(guard_check(&g, 50.0f, 100.0f, why, sizeof(why)) == 0, "guard: z tests off with -sl 0 -sg 0", "spike accepted");
    check(guard_check(&g, INFINITY, 1.0f, why, sizeof(why)) == 1, "guard: inf still flagged with z tests off", "%s", why);
}

static void test_train_state(void) {
    // a checkpoint at step 7 written by 2 processes, each with its ZeRO-1 shard of 1000 moments
    const size_t N = 1000;
    float* m = float_alloc_check(N, "m");
    float* v = float_alloc_check(N, "v");
    for (size_t i = 0; i < N; i++) { m[i] = i * 0.5f; v[i] = i * 0.25f; }
    char dir[512], path[1100], bad[512], err[LLMC_ERRLEN];
    tmp_path(dir, sizeof(dir), "ckpt");
    ensure_dir(dir);
    TrainStateHeader h;
    memset(&h, 0, sizeof(h));
    h.magic = STATE_MAGIC; h.version = STATE_VERSION; h.step = 7; h.num_parameters = (int64_t)N;
    h.num_processes = 2; h.B = 4; h.T = 64; h.total_batch_size = 512; h.guard_window = 10; h.sample_rng = 42;
    for (int r = 0; r < 2; r++) {
        size_t off, cnt;
        comm_shard(N, 2, r, &off, &cnt);
        h.process_rank = r; h.shard_offset = (int64_t)off; h.shard_count = (int64_t)cnt;
        checkpoint_paths(dir, 7, r, NULL, path, NULL, sizeof(path));
        train_state_write(path, &h, m + off, v + off);
    }
    TrainStateHeader expected = h, got;
    expected.num_processes = 1; expected.process_rank = 0; expected.B = 8;  // resumed by 1 process
    float* m2 = float_alloc_check(N, "m2");
    float* v2 = float_alloc_check(N, "v2");
    int rc = train_state_load(dir, 7, 0, N, &expected, &got, m2, v2, err);
    check(rc == 0 && got.step == 7 && got.sample_rng == 42 && memcmp(m, m2, N * 4) == 0 && memcmp(v, v2, N * 4) == 0,
          "state: 2 shards load into 1 process", "rc=%d %s", rc, rc ? err : "");
    memset(m2, 0, N * 4);
    rc = train_state_load(dir, 7, 300, 500, &expected, &got, m2, v2, err);  // a range across both shards
    check(rc == 0 && memcmp(m + 300, m2, 500 * 4) == 0 && memcmp(v + 300, v2, 500 * 4) == 0,
          "state: a range across both shards loads", "rc=%d %s", rc, rc ? err : "");
    TrainStateHeader other = expected;
    other.num_parameters = 999;
    rc = train_state_load(dir, 7, 0, 999, &other, &got, m2, v2, err);
    check_rejects(rc, err, dir, "this model has 999", "state: another model rejected");
    other = expected;
    other.total_batch_size = 1024;
    rc = train_state_load(dir, 7, 0, N, &other, &got, m2, v2, err);
    check_rejects(rc, err, dir, "resume needs the same", "state: another total batch size rejected");
    checkpoint_paths(dir, 7, 1, NULL, path, NULL, sizeof(path));
    size_t n;
    unsigned char* bytes = read_all(path, &n);
    write_bytes(path, bytes, n - 4);
    rc = train_state_load(dir, 7, 0, N, &expected, &got, m2, v2, err);
    check_rejects(rc, err, path, "truncated", "state: truncated file rejected");
    unlink(path);
    rc = train_state_load(dir, 7, 0, N, &expected, &got, m2, v2, err);
    check_rejects(rc, err, path, "cannot open", "state: a missing rank's file rejected");
    tmp_path(bad, sizeof(bad), "state_badmagic.bin");
    ((int64_t*)bytes)[0] = 5;
    write_bytes(bad, bytes, n);
    FILE* f;
    rc = train_state_open(bad, &expected, &got, &f, err);
    check_rejects(rc, err, bad, "bad magic", "state: wrong magic rejected");
    free(bytes); free(m); free(v); free(m2); free(v2);
}

// The multiple-choice task file (llmc/mc_task.h) on make eval-data's HellaSwag, the sequences
// lm-evaluation-harness's truncation gives, and the metrics on scores whose answers are known.
static void test_mc_task(const char* path) {
    McTask t;
    char err[LLMC_ERRLEN], bad[512];
    if (access(path, F_OK) != 0) { check(0, "task file", "%s missing: run make eval-data", path); return; }
    int rc = mc_task_load(&t, path, 50257, err);
    int labels[4] = {0}, shape_ok = rc == 0;
    if (rc == 0) {
        for (int i = 0; i < t.num_examples; i++) {
            const McExample* ex = &t.examples[i];
            shape_ok &= ex->num_contexts == 1 && ex->num_choices == 4;
            for (int c = 0; c < ex->num_choices && shape_ok; c++) {
                if (t.choices[ex->first_choice + c].is_true) { labels[c]++; }
            }
        }
    }
    // the counts in ../shared/data/README.md
    check(shape_ok && t.num_examples == 10042 && labels[0] == 2515 && labels[1] == 2485 && labels[2] == 2584 &&
          labels[3] == 2458 && strcmp(t.name, "hellaswag") == 0 && t.kind == MC_KIND_ONE_TRUE && t.headline == MC_ACC_NORM,
          "task file: HellaSwag's 10042 examples of 4 endings with the documented label counts", "rc=%d %s", rc, rc ? err : "");
    if (rc == 0) {
        int seq[64], first;
        const McExample* ex = &t.examples[0];
        const McChoice* ch = &t.choices[ex->first_choice + 1];
        int clen = t.context_len[ex->first_context];
        const int* ctx = t.context_tokens[ex->first_context];
        int len = mc_sequence(&t, ex, 1, seq, 64, &first);
        int ok = len == clen + ch->len && first == clen - 1 && seq[0] == ctx[0] && seq[first + 1] == ch->tokens[0] &&
                 seq[len - 1] == ch->tokens[ch->len - 1];
        // longer than the window: the last max_len tokens, the whole continuation still scored
        int max_len = ch->len + 3, first2;
        int len2 = mc_sequence(&t, ex, 1, seq, max_len, &first2);
        ok = ok && len2 == max_len && first2 == 2 && seq[0] == ctx[clen - 3] && seq[len2 - 1] == ch->tokens[ch->len - 1];
        // a continuation longer than the window: its last max_len - 1 tokens are the targets
        int len3 = mc_sequence(&t, ex, 1, seq, 2, &first2);
        ok = ok && len3 == 2 && first2 == 0 && seq[0] == ch->tokens[ch->len - 2] && seq[1] == ch->tokens[ch->len - 1];
        check(ok, "task file: sequences cut from the left, the continuation's tokens are the targets",
              "len %d first %d; cut: len %d first %d", len, first, len2, first2);
    }
    // metrics on known scores (the first choice true): ll -5 over 10 characters against -3 over
    // 2: acc picks the second, acc_norm (-0.5 > -1.5) the first; over 10 and 6 bytes both are
    // -0.5 and the first wins the tie, as numpy's argmax; over 1 and 3 tokens (-5 < -1) the second
    {
        McTask k;
        memset(&k, 0, sizeof(k));
        McChoice chs[3] = {{0, 1, 10, 10, 1, NULL}, {0, 3, 2, 6, 0, NULL}, {0, 1, 1, 1, 1, NULL}};
        McExample ex = {1, 2, 0, 0};
        k.choices = chs;
        k.kind = MC_KIND_ONE_TRUE;
        double ll[3] = {-5.0, -3.0, 0.0}, v[MC_NUM_METRICS];
        int ntok[3] = {1, 3, 1};
        mc_score_example(&k, &ex, ll, ntok, v);
        int ok = v[MC_ACC] == 0 && v[MC_ACC_NORM] == 1 && v[MC_ACC_BYTES] == 1 && v[MC_ACC_TOKEN] == 0 && fabs(mc_chance(&k, &ex) - 0.5) < 1e-15;
        // MC2: probabilities 0.2, 0.3, 0.5 with the first and the last true: 0.7; the same
        // shifted by -900 (exp underflows without the shift)
        k.kind = MC_KIND_MC2;
        ex.num_choices = 3;
        chs[1].is_true = 0;
        double l2[3] = {log(0.2), log(0.3), log(0.5)}, l3[3];
        for (int i = 0; i < 3; i++) { l3[i] = l2[i] - 900.0; }
        mc_score_example(&k, &ex, l2, ntok, v);
        double a = v[MC_MC2];
        mc_score_example(&k, &ex, l3, ntok, v);
        ok = ok && fabs(a - 0.7) < 1e-12 && fabs(v[MC_MC2] - 0.7) < 1e-9 && fabs(mc_chance(&k, &ex) - 2.0 / 3) < 1e-15;
        check(ok, "task metrics: acc, acc_norm, acc_bytes, acc_token, MC2 on known scores", "mc2 %.6f, shifted %.6f", a, v[MC_MC2]);
    }
    mc_task_free(&t);
    size_t n;
    unsigned char* bytes = read_all(path, &n);
    tmp_path(bad, sizeof(bad), "task_truncated.bin");
    write_bytes(bad, bytes, n - 2);
    rc = mc_task_load(&t, bad, 50257, err);
    check_rejects(rc, err, bad, "truncated", "task file: truncated file rejected");
    rc = mc_task_load(&t, path, 58257, err);
    check_rejects(rc, err, path, "vocabulary of 50257", "task file: another vocabulary's model rejected");
    // the first example's second choice made true as well: two true choices
    int32_t* ex0 = (int32_t*)(bytes + 1024);
    int32_t* choice1 = ex0 + 2 + ex0[0] + 5;
    tmp_path(bad, sizeof(bad), "task_two_true.bin");
    int saved = choice1[4];
    choice1[4] = 1 - saved;
    write_bytes(bad, bytes, n);
    rc = mc_task_load(&t, bad, 50257, err);
    check_rejects(rc, err, bad, "true choices", "task file: an example with two true choices rejected");
    choice1[4] = saved;
    ((int32_t*)bytes)[0] = 20241127;
    tmp_path(bad, sizeof(bad), "task_old.bin");
    write_bytes(bad, bytes, n);
    rc = mc_task_load(&t, bad, 50257, err);
    check_rejects(rc, err, bad, "make eval-data", "task file: the old HellaSwag format rejected, naming the fix");
    free(bytes);
}

// The GPU's encoder backward groups positions by token on the host (encoder_backward_buckets)
// and sums each group in position order. On real tokens: every position lands in its token's
// bucket exactly once, in order, and summing the buckets that way gives the C reference's dwte
// bit for bit (both add the same floats in the same order).
static void test_encoder_buckets(const int* tokens, long ntok) {
    int B = 3, T = 337, C = 5, V = 50257, BT = B * T;
    if (ntok < BT) { check(0, "encoder buckets", "only %ld tokens", ntok); return; }
    const int* inp = tokens + 1000;
    int* count = (int*)calloc_check((size_t)V + 1, sizeof(int), "count");
    int* order = (int*)calloc_check(BT, sizeof(int), "order");
    int* start = (int*)calloc_check(BT + 1, sizeof(int), "start");
    int* token = (int*)calloc_check(BT, sizeof(int), "token");
    int nb = encoder_backward_buckets(inp, BT, V, count, order, start, token);
    int distinct = 0, ok = start[0] == 0 && start[nb] == BT;
    unsigned char* seen = (unsigned char*)calloc_check(V, 1, "seen");
    for (int i = 0; i < BT; i++) { if (!seen[inp[i]]) { seen[inp[i]] = 1; distinct++; } }
    for (int k = 0; k < nb && ok; k++) {
        if (k > 0 && token[k] <= token[k - 1]) { ok = 0; }
        if (start[k + 1] <= start[k]) { ok = 0; }
        for (int i = start[k]; i < start[k + 1] && ok; i++) {
            if (inp[order[i]] != token[k] || (i > start[k] && order[i] <= order[i - 1])) { ok = 0; }
        }
    }
    check(ok && nb == distinct, "encoder buckets: each token's positions once, in order",
          "%d buckets for %d distinct tokens", nb, distinct);
    float* dout = (float*)malloc_check((size_t)BT * C * sizeof(float), "dout");
    Rng rng;
    rng_init(&rng, (uint64_t)time(NULL));
    for (size_t i = 0; i < (size_t)BT * C; i++) { dout[i] = rng_f32(&rng) * 2.0f - 1.0f; }
    float* dwte_ref = (float*)calloc_check((size_t)V * C, sizeof(float), "dwte");
    float* dwpe_ref = (float*)calloc_check((size_t)T * C, sizeof(float), "dwpe");
    float* dwte = (float*)calloc_check((size_t)V * C, sizeof(float), "dwte");
    encoder_backward(dwte_ref, dwpe_ref, dout, inp, B, T, C);
    for (int k = 0; k < nb; k++) {
        for (int c = 0; c < C; c++) {
            float s = 0.0f;
            for (int i = start[k]; i < start[k + 1]; i++) { s += dout[(size_t)order[i] * C + c]; }
            dwte[(size_t)token[k] * C + c] += s;
        }
    }
    double maxdiff = 0.0;
    for (size_t i = 0; i < (size_t)V * C; i++) { maxdiff = fmax(maxdiff, fabs((double)dwte[i] - dwte_ref[i])); }
    check(memcmp(dwte, dwte_ref, (size_t)V * C * sizeof(float)) == 0,
          "encoder buckets: summed bucket by bucket, dwte equals the C reference bitwise", "max |diff| %g", maxdiff);
    free(count); free(order); free(start); free(token); free(seen); free(dout);
    free(dwte_ref); free(dwpe_ref); free(dwte);
}

// ----------------------------------------------------------------------------
// Hardening primitives (issue 19)

static void test_strict_numbers(void) {
    char err[LLMC_ERRLEN];
    long long v = -7;
    check(parse_integer("--shard-size", "1e6", 1, 1LL << 40, &v, err) == 0 && v == 1000000, "parse_integer: 1e6 is a million", "v=%lld", v);
    check(parse_integer("--n", "2.5e3", 0, 10000, &v, err) == 0 && v == 2500, "parse_integer: 2.5e3 is 2500", "v=%lld", v);
    const char* bad[] = { "abc", "nan", "inf", "1.5", "", "12x", "1e99", "-1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = -7;
        int rc = parse_integer("--n", bad[i], 0, 1LL << 40, &v, err);
        check(rc == -1 && v == -7 && strstr(err, "--n") != NULL, "parse_integer refuses a bad value", "'%s': rc=%d err=%s", bad[i], rc, err);
    }
    double d = 0;
    check(parse_number("--jaccard", "nan", 0, 1, &d, err) == -1 && strstr(err, "--jaccard") != NULL, "parse_number refuses nan", "%s", err);
    check(parse_number("--jaccard", "0.7", 0, 1, &d, err) == 0 && d == 0.7, "parse_number: 0.7", "%g", d);
    check(parse_number("--x", "1e400", -1e300, 1e300, &d, err) == -1, "parse_number refuses 1e400", "%s", err);
}

static void test_utf8_printer(void) {
    // a tiny tokenizer whose tokens split characters: "é" = C3 A9 across two tokens, a lone
    // continuation byte, a cut-off 3-byte character at the end
    Tokenizer tok;
    memset(&tok, 0, sizeof(tok));
    static char t0[] = "a\xC3", t1[] = "\xA9" "b", t2[] = "\x80", t3[] = "\xE3\x81";
    char* table[4] = { t0, t1, t2, t3 };
    int lengths[4] = { 2, 2, 1, 2 };
    tok.vocab_size = 4;
    tok.token_table = table;
    tok.token_length = lengths;
    char* out = NULL;
    size_t outlen = 0;
    FILE* f = open_memstream(&out, &outlen);
    Utf8Printer up;
    utf8_printer_init(&up);
    for (int i = 0; i < 4; i++) { utf8_printer_token(&up, &tok, i, f); }
    utf8_printer_finish(&up, f);
    fclose(f);
    const char* want = "a\xC3\xA9" "b" "\xEF\xBF\xBD" "\xEF\xBF\xBD";
    check(strcmp(out, want) == 0, "samples: split characters joined, invalid bytes become U+FFFD", "got %zu bytes", outlen);
    free(out);
}

static void test_hash_and_paths(void) {
    // streaming the hash in odd pieces equals hashing at once; one flipped bit changes it
    uint8_t data[1000];
    for (int i = 0; i < 1000; i++) { data[i] = (uint8_t)(i * 31 + 7); }
    Hash64 a, b;
    hash64_init(&a); hash64_update(&a, data, 1000);
    hash64_init(&b);
    size_t pieces[] = { 3, 1, 17, 8, 300, 671 };
    size_t at = 0;
    for (int i = 0; i < 6; i++) { hash64_update(&b, data + at, pieces[i]); at += pieces[i]; }
    check(hash64_final(&a) == hash64_final(&b), "Hash64: streamed in pieces equals all at once", "");
    data[500] ^= 1;
    hash64_init(&b); hash64_update(&b, data, 1000);
    check(hash64_final(&a) != hash64_final(&b), "Hash64: one flipped bit changes it", "");
    // run-directory names: only our own leftovers are ours
    check(run_dir_is_own_temp("model_00000004.bin.tmp.123") && run_dir_is_own_temp("state_00000004_00001.bin.tmp.9") &&
          run_dir_is_own_temp("main.log.tmp.55") && !run_dir_is_own_temp("notes.tmp.123") &&
          !run_dir_is_own_temp("model_4.bin.tmp.1") && !run_dir_is_own_temp("main.log.tmp.x1"),
          "run_dir_is_own_temp: our leftovers only", "");
    // writing through a symlink keeps the link; a FIFO output is refused
    char target[600], link[600], fifo[600], err[LLMC_ERRLEN];
    snprintf(target, sizeof(target), "%s/target.bin", tmpdir);
    snprintf(link, sizeof(link), "%s/link.bin", tmpdir);
    snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
    FILE* f = fopen(target, "w"); fputs("old", f); fclose(f);
    if (symlink("target.bin", link) != 0) { die("symlink failed"); }
    AtomicFile af;
    atomic_open(&af, link);
    atomic_write(&af, "new!", 1, 4);
    atomic_commit(&af);
    struct stat st;
    lstat(link, &st);
    f = fopen(target, "r"); char buf[8] = {0}; size_t got = fread(buf, 1, 7, f); fclose(f);
    check(S_ISLNK(st.st_mode) && got == 4 && strcmp(buf, "new!") == 0, "atomic write through a relative symlink: target replaced, link kept", "");
    if (mkfifo(fifo, 0644) != 0) { die("mkfifo failed"); }
    check(check_output_path(fifo, err) == -1 && strstr(err, "FIFO") != NULL, "a FIFO as an output is refused", "%s", err);
    check(check_regular_file(fifo, err) == -1 && strstr(err, "FIFO") != NULL, "a FIFO as an input is refused", "%s", err);
    check(check_regular_file(tmpdir, err) == -1 && strstr(err, "directory") != NULL, "a directory as an input is refused", "%s", err);
    check(same_file(link, target) && !same_file(link, fifo), "same_file by device and inode", "");
}

// retention keeps the newest good checkpoint however many bad ones follow it
static void test_retention_keeps_good(void) {
    char dir[600], path[700];
    snprintf(dir, sizeof(dir), "%s/retention", tmpdir);
    ensure_dir(dir);
    for (int step = 1; step <= 6; step++) {
        snprintf(path, sizeof(path), "%s/model_%08d.bin", dir, step);
        FILE* f = fopen(path, "w"); fputs("m", f); fclose(f);
        snprintf(path, sizeof(path), "%s/state_%08d_00000.bin", dir, step);
        f = fopen(path, "w"); fputs("s", f); fclose(f);
        checkpoint_commit(dir, step, 2, 0, step <= 2, NULL);  // steps 3.. are written during a streak
    }
    int steps[16];
    int n = list_checkpoints(dir, steps, 16);
    check(n == 3 && steps[0] == 2 && steps[1] == 5 && steps[2] == 6, "retention -nk 2 keeps the newest good checkpoint (2) through a streak",
          "n=%d: %d %d %d", n, steps[0], n > 1 ? steps[1] : -1, n > 2 ? steps[2] : -1);
    // an orphan (files, no DONE) older than the newest complete checkpoint is removed
    snprintf(path, sizeof(path), "%s/model_%08d.bin", dir, 4);
    FILE* f = fopen(path, "w"); fputs("m", f); fclose(f);
    prune_checkpoints(dir, 2, 0);
    check(access(path, F_OK) != 0, "an orphan model file without DONE is pruned", "");
}

int main(int argc, char** argv) {
    if (argc != 4) { die("usage: test_llmc VAL_SHARD TOKENIZER_FILE HELLASWAG_FILE"); }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_llmc.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) { die("mkdtemp failed"); }
    long ntok;
    int* tokens = load_real_tokens(argv[1], &ntok);
    test_init_random();
    test_checkpoint();
    test_shards(tokens, ntok);
    test_dataloader(tokens, ntok);
    test_tokenizer(argv[2]);
    test_args();
    test_schedule();
    test_atomic_file();
    test_guard();
    test_train_state();
    test_mc_task(argv[3]);
    test_encoder_buckets(tokens, ntok);
    test_strict_numbers();
    test_utf8_printer();
    test_hash_and_paths();
    test_retention_keeps_good();
    free(tokens);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) { printf("warning: could not remove %s\n", tmpdir); }
    return test_failures == 0 ? 0 : 1;
}

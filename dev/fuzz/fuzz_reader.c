/*
libFuzzer targets for the file readers: each input is written to an in-memory file and handed
to one reader by path. A reader must return 0 or -1 with a message, never crash, hang, leak or
read out of bounds (built with AddressSanitizer and UndefinedBehaviorSanitizer).
Build one target per reader with -DFUZZ_CHECKPOINT, -DFUZZ_SHARD, -DFUZZ_TOKENIZER,
-DFUZZ_STATE or -DFUZZ_HELLASWAG (see dev/fuzz/fuzz.mk).
*/
#define _GNU_SOURCE
#include <sys/mman.h>
#include "llmc/utils.h"
#include "llmc/checkpoint.h"
#include "llmc/shard.h"
#include "llmc/tokenizer.h"
#include "llmc/train_state.h"
#include "llmc/hellaswag.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
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
#elif defined(FUZZ_HELLASWAG)
    HellaSwag hs;
    if (hellaswag_load(&hs, path, 50257, err) == 0) {
        int seq[128], first;
        for (int i = 0; i < hs.num_examples && i < 8; i++) {
            for (int j = 0; j < 4; j++) { hellaswag_sequence(&hs.examples[i], j, seq, 128, &first); }
        }
        hellaswag_free(&hs);
    }
#else
#error "define one of FUZZ_CHECKPOINT, FUZZ_SHARD, FUZZ_TOKENIZER, FUZZ_STATE, FUZZ_HELLASWAG"
#endif
    close(fd);
    return 0;
}

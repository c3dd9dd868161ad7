// A small driver of llmc/pairs.h for dev/data/test_dpo_prepare.sh (built as build/test_pairs):
//
//   test_pairs read FILE                  pairs_read: prints "ok npairs T has_ref vocab eot ref_hash
//                                         masked_targets", or the reader's message and exit 1
//   test_pairs addref IN OUT HASH         reads IN, attaches reference log-probs (pair i: chosen
//                                         -(i+1)/2, rejected -(i+1)/4 - 0.125) and HASH (uint64,
//                                         decimal), writes OUT with pairs_write, reads OUT back and
//                                         checks every field against what it wrote
// The test script corrupts files with Python and checks the messages; this program only runs
// the reader and the writer, so the checks stay outside the code under test.
#include <inttypes.h>
#include "llmc/pairs.h"

static int read_cmd(const char* path) {
    PairFile pf;
    char err[LLMC_ERRLEN];
    if (pairs_read(path, &pf, err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    long targets = 0;
    for (size_t i = 0; i < (size_t)pf.npairs * 2 * (size_t)pf.T; i++) { targets += pf.mask[i]; }
    printf("ok %d %d %d %d %d %" PRIu64 " %ld\n", pf.npairs, pf.T, pf.has_ref, pf.vocab, pf.eot, pf.ref_hash, targets);
    pairs_free(&pf);
    return 0;
}

static int addref_cmd(const char* in, const char* out, const char* hash_text) {
    PairFile pf, back;
    char err[LLMC_ERRLEN];
    if (pairs_read(in, &pf, err) != 0) { fprintf(stderr, "%s\n", err); return 1; }
    char* end = NULL;
    errno = 0;
    unsigned long long hash = strtoull(hash_text, &end, 10);
    if (end == hash_text || *end != '\0' || errno != 0) { fprintf(stderr, "addref: HASH must be a decimal uint64, got '%s'\n", hash_text); return 1; }
    pf.has_ref = 1;
    pf.ref_hash = (uint64_t)hash;
    pf.ref_logp = (float*)malloc_check((size_t)pf.npairs * 2 * sizeof(float), "ref_logp");
    for (int i = 0; i < pf.npairs; i++) {
        pf.ref_logp[2 * i] = -(float)(i + 1) / 2.0f;
        pf.ref_logp[2 * i + 1] = -(float)(i + 1) / 4.0f - 0.125f;
    }
    pairs_write(out, &pf);
    if (pairs_read(out, &back, err) != 0) { fprintf(stderr, "round trip: %s\n", err); return 1; }
    size_t nt = (size_t)pf.npairs * 2 * ((size_t)pf.T + 1), nm = (size_t)pf.npairs * 2 * (size_t)pf.T;
    int same = back.npairs == pf.npairs && back.T == pf.T && back.has_ref == 1 && back.vocab == pf.vocab &&
               back.eot == pf.eot && back.ref_hash == pf.ref_hash && back.ref_logp != NULL &&
               memcmp(back.tokens, pf.tokens, nt * sizeof(uint32_t)) == 0 && memcmp(back.mask, pf.mask, nm) == 0 &&
               memcmp(back.ref_logp, pf.ref_logp, (size_t)pf.npairs * 2 * sizeof(float)) == 0;
    if (!same) { fprintf(stderr, "round trip: %s reads back different from what was written\n", out); return 1; }
    printf("ok round trip %d pairs, ref_hash %" PRIu64 "\n", back.npairs, back.ref_hash);
    pairs_free(&back);
    pairs_free(&pf);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 3 && strcmp(argv[1], "read") == 0) { return read_cmd(argv[2]); }
    if (argc == 5 && strcmp(argv[1], "addref") == 0) { return addref_cmd(argv[2], argv[3], argv[4]); }
    fprintf(stderr, "usage: test_pairs read FILE | test_pairs addref IN OUT HASH\n");
    return 2;
}

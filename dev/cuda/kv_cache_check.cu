// attention_forward_cached_cuda (llmc/kv_cache.h, generation's attention over a KV cache)
// against the C reference: the output of the new positions and the cache after the call
// (the new keys and values stored, nothing else touched), at awkward sizes; then timed at a
// GPT-2 124M decode step (one new position over a full 1024-position cache).
#include "../../llmc/kv_cache.h"
#include "harness.h"

typedef struct { floatX *out, *k, *v; const floatX* qkv; int pos, n, C, NH; } KvCtx;
static void run_fwd(void* p) {
    KvCtx* c = (KvCtx*)p;
    attention_forward_cached_cuda(c->out, c->qkv, c->k, c->v, c->pos, c->n, c->C, c->NH, 0);
}

static void run_case(int pos, int n, int NH, int hs, int check, int time_it, const Ceilings* ceil) {
    if (!check && !harness_timing()) { return; }
    int C = NH * hs, cap = pos + n + 3;  // 3 spare positions: must stay untouched
    size_t nq = (size_t)n * 3 * C, nc = (size_t)cap * C, no = (size_t)n * C;
    float* qkv = harness_random(nq, 1.5f);
    float* kc = harness_random(nc, 1.5f);
    float* vc = harness_random(nc, 1.0f);
    harness_round_fx(qkv, nq); harness_round_fx(kc, nc); harness_round_fx(vc, nc);
    KvCtx c;
    c.pos = pos; c.n = n; c.C = C; c.NH = NH;
    c.qkv = harness_upload_fx(qkv, nq);
    c.k = harness_upload_fx(kc, nc);
    c.v = harness_upload_fx(vc, nc);
    c.out = (floatX*)cuda_malloc_check(no * sizeof(floatX), "out");
    if (check) {
        char name[160];
        float* out = (float*)malloc(no * sizeof(float));
        float* att = (float*)malloc((size_t)NH * n * (pos + n) * sizeof(float));
        float* got = (float*)malloc(nc * sizeof(float));
        attention_forward_cached(out, att, qkv, kc, vc, pos, n, C, NH);  // updates kc, vc too
        harness_poison(c.out, no * sizeof(floatX));
        run_fwd(&c);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.out, no);
        snprintf(name, sizeof(name), "attention_forward_cached pos=%d n=%d NH=%d hs=%d", pos, n, NH, hs);
        harness_compare(name, got, out, no, HARNESS_FP32 ? 1e-5 : 1e-2);
        // the caches: bitwise what the reference holds (stored values are copies)
        harness_download_fx(got, c.k, nc);
        int same_k = memcmp(got, kc, nc * sizeof(float)) == 0;
        harness_download_fx(got, c.v, nc);
        int same_v = memcmp(got, vc, nc * sizeof(float)) == 0;
        snprintf(name, sizeof(name), "KV cache after the call pos=%d n=%d", pos, n);
        harness_check(same_k && same_v, name, "keys %s, values %s (the new ones stored, the rest untouched)",
                      same_k ? "bitwise equal" : "DIFFER", same_v ? "bitwise equal" : "DIFFER");
        free(out); free(att); free(got);
    }
    if (time_it) {
        char what[160];
        snprintf(what, sizeof(what), "attention_forward_cached pos=%d n=%d NH=%d hs=%d", pos, n, NH, hs);
        // compulsory traffic: the cached keys and values once, the new qkv and output
        double bytes = (2.0 * (pos + n) * C + 4.0 * n * C) * sizeof(floatX);
        harness_report_bandwidth(what, harness_time_ms(run_fwd, &c, 100), bytes, ceil);
    }
    cudaCheck(cudaFree((void*)c.qkv)); cudaCheck(cudaFree(c.k)); cudaCheck(cudaFree(c.v)); cudaCheck(cudaFree(c.out));
    free(qkv); free(kc); free(vc);
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("kv_cache_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    run_case(0, 13, 3, 24, 1, 0, &ceil);    // a prompt: 13 positions, empty cache
    run_case(37, 1, 4, 16, 1, 0, &ceil);    // a decode step
    run_case(101, 5, 5, 20, 1, 0, &ceil);   // a chunk after 101 cached positions
    run_case(300, 1, 2, 64, 1, 0, &ceil);   // more positions than threads per block
    run_case(1023, 1, 12, 64, 0, 1, &ceil); // d12, the last position of a 1024 context
    return harness_finish("kv_cache_check");
}

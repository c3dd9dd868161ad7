// The generator's parts against independent computations, with a fresh seed each run (printed;
// `test_infer SEED` repeats one):
//   - the KV-cache forward (llmc/infer.h) against train_gpt.c's full forward (gpt2_forward, the
//     model the PyTorch oracle checks) at an awkward size: the prompt in one forward, in
//     chunks, then one token at a time; batched rows; rows moved by infer_reorder; and a
//     quantized model against the full forward of its dequantized weights
//   - beam search (llmc/beam.h) against exhaustive search of every sequence on a tiny
//     vocabulary, where enough beams must find the best-scoring sequence, for several length
//     penalties; and the hypothesis bookkeeping with few beams against a brute-force replay
//   - the sampling rules (llmc/sampler.h) on hand-checked cases; dev/infer/decode_reference.py
//     checks them against transformers' own processors on random logits (decode-cases mode:
//     `test_infer --cases FILE` writes logits, settings and our distributions there)
#define TESTING
#include "train_gpt.c"
#include "dev/test/testing.h"
#include "llmc/infer.h"
#include "llmc/sampler.h"
#include "llmc/beam.h"

// logits of every position of tokens[0..n) by the training program's full forward
static void full_logits(GPT2* m, const int* tokens, int n, float* out) {
    gpt2_forward(m, tokens, NULL, NULL, 1, n);
    memcpy(out, m->acts.logits, (size_t)n * m->config.padded_vocab_size * sizeof(float));
}

// max over positions of the scaled error of the real vocabulary's logits
static double logits_error(const float* a, const float* b, int n, int V, int Vp) {
    double worst = 0.0;
    for (int t = 0; t < n; t++) {
        double e = scaled_max_error(a + (size_t)t * Vp, b + (size_t)t * Vp, (size_t)V);
        if (isnan(e) || e > worst) { worst = isnan(e) ? INFINITY : e; }
    }
    return worst;
}

static void test_cache(uint64_t seed) {
    GPT2Config c = { .max_seq_len = 40, .vocab_size = 997, .padded_vocab_size = 1024, .num_layers = 3, .num_heads = 3, .channels = 72 };
    size_t P = gpt2_num_parameters(&c);
    float* params = float_alloc_check(P, "params");
    gpt2_init_random(params, &c, seed);
    // q and k far larger than GPT-2's init gives, so that attention is far from uniform (with
    // uniform attention, keys in the wrong places would not show). Only qkv: scaling every
    // weight makes the network chaotic, and rounding differences of 1e-7 grow to 1e-4.
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, &c);
    size_t qkv_at = sizes[0] + sizes[1] + sizes[2] + sizes[3];
    for (size_t i = 0; i < sizes[4]; i++) { params[qkv_at + i] *= 8.0f; }
    GPT2 full;
    gpt2_build_from_params(&full, &c, params);
    gpt2_allocate(&full, 1, c.max_seq_len, 0, 0);
    int n = 37, V = c.vocab_size, Vp = c.padded_vocab_size;
    Rng rng;
    rng_init(&rng, seed + 1);
    int tokens[64];
    for (int i = 0; i < n; i++) { tokens[i] = (int)rng_below(&rng, (uint32_t)V); }
    float* ref = float_alloc_check((size_t)n * Vp, "reference logits");
    float* got = float_alloc_check((size_t)n * Vp, "cached logits");
    full_logits(&full, tokens, n, ref);

    char err[LLMC_ERRLEN];
    QuantModel qm;
    if (quant_model_from_params(&qm, &c, params, QUANT_F32, 0, QUANT_F32, err) != 0) { die("%s", err); }
    InferState st;
    infer_init(&st, &qm, 3, c.max_seq_len, 8);
    // (a) a prompt of 5 in one forward (all its logits), then one token at a time
    for (size_t i = 0; i < (size_t)n * Vp; i++) { got[i] = NAN; }
    int row = 0;
    infer_forward(&st, &row, 1, tokens, 5, got);
    for (int t = 5; t < n; t++) {
        infer_forward(&st, &row, 1, tokens + t, 1, NULL);
        memcpy(got + (size_t)t * Vp, st.logits, (size_t)Vp * sizeof(float));
    }
    double e = logits_error(got, ref, n, V, Vp);
    // the cache holds exactly the keys and values of the full forward and the attention
    // arithmetic is the same; the matmuls at a few rows take another kernel (llmc/quant.h's GEMV),
    // which sums in another order: errors of a few 1e-7 (measured: 5e-7 to 1.5e-6)
    check(e <= 1e-5, "KV cache: prompt then one token at a time vs full forward", "%d positions, worst scaled error %.2e, tolerance 1e-5", n, e);
    // (b) the same sequence prefilled in chunks of 8: the last position's logits
    infer_reset(&st, 1);
    infer_prefill(&st, 1, tokens, n);
    e = scaled_max_error(st.logits + (size_t)1 * Vp, ref + (size_t)(n - 1) * Vp, (size_t)V);
    check(e <= 1e-5 && infer_len(&st, 1) == n, "KV cache: prompt in chunks of 8", "%d positions, last logits scaled error %.2e", n, e);
    // (c) three rows of different lengths decoded together equal each decoded alone
    int lens[3] = { 4, 11, 7 };
    for (int r = 0; r < 3; r++) { infer_reset(&st, r); infer_prefill(&st, r, tokens + 3 * r, lens[r]); }
    double worst = 0.0;
    for (int step = 0; step < 6; step++) {
        int rows[3] = { 0, 1, 2 }, next[3];
        for (int r = 0; r < 3; r++) { next[r] = tokens[(3 * r + lens[r] + step) % n]; }
        infer_forward(&st, rows, 3, next, 1, NULL);
        for (int r = 0; r < 3; r++) {
            int m = lens[r] + step + 1;
            int seq[64];
            for (int i = 0; i < lens[r]; i++) { seq[i] = tokens[3 * r + i]; }
            for (int i = 0; i <= step; i++) { seq[lens[r] + i] = tokens[(3 * r + lens[r] + i) % n]; }
            full_logits(&full, seq, m, ref);
            double er = scaled_max_error(st.logits + (size_t)r * Vp, ref + (size_t)(m - 1) * Vp, (size_t)V);
            if (isnan(er) || er > worst) { worst = isnan(er) ? INFINITY : er; }
        }
    }
    check(worst <= 1e-5, "KV cache: three rows of different lengths decoded as one batch", "6 steps, worst scaled error %.2e", worst);
    // (d) infer_reorder: rows (0, 1, 2) become (1, 1, 0): row 2's cache is dropped, row 1's
    // copied; continuing each must equal the full forward of its new history
    int hist[3][64], hl[3];
    for (int r = 0; r < 3; r++) { hl[r] = infer_len(&st, r); }
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < lens[r]; i++) { hist[r][i] = tokens[3 * r + i]; }
        for (int i = 0; i < 6; i++) { hist[r][lens[r] + i] = tokens[(3 * r + lens[r] + i) % n]; }
    }
    int src[3] = { 1, 1, 0 };
    infer_reorder(&st, src, 3);
    int rows[3] = { 0, 1, 2 }, next[3] = { 5, 6, 7 };
    infer_forward(&st, rows, 3, next, 1, NULL);
    worst = 0.0;
    int ok_len = 1;
    for (int j = 0; j < 3; j++) {
        int o = src[j], m = hl[o] + 1;
        int seq[64];
        memcpy(seq, hist[o], (size_t)hl[o] * sizeof(int));
        seq[hl[o]] = next[j];
        ok_len = ok_len && infer_len(&st, j) == m;
        full_logits(&full, seq, m, ref);
        double er = scaled_max_error(st.logits + (size_t)j * Vp, ref + (size_t)(m - 1) * Vp, (size_t)V);
        if (isnan(er) || er > worst) { worst = isnan(er) ? INFINITY : er; }
    }
    check(worst <= 1e-5 && ok_len, "KV cache: rows moved by infer_reorder (one copied, one dropped)", "worst scaled error %.2e", worst);
    infer_free(&st);
    quant_model_free(&qm);

    // (e) int8 and int4 models: the cached forward against the full forward of the dequantized
    // weights (the same numbers as fp32, so only the kernels' arithmetic differs)
    int kinds[2] = { QUANT_INT8, QUANT_INT4 };
    for (int k = 0; k < 2; k++) {
        if (quant_model_from_params(&qm, &c, params, kinds[k], 32, kinds[k], err) != 0) { die("%s", err); }
        float* deq = float_alloc_check(P, "dequantized");
        quant_model_dequantize(&qm, deq);
        GPT2 dm;
        gpt2_build_from_params(&dm, &c, deq);
        gpt2_allocate(&dm, 1, c.max_seq_len, 0, 0);
        full_logits(&dm, tokens, n, ref);
        infer_init(&st, &qm, 1, c.max_seq_len, 8);
        row = 0;
        infer_forward(&st, &row, 1, tokens, 3, got);
        for (int t = 3; t < n; t++) {
            infer_forward(&st, &row, 1, tokens + t, 1, NULL);
            memcpy(got + (size_t)t * Vp, st.logits, (size_t)Vp * sizeof(float));
        }
        e = logits_error(got, ref, n, V, Vp);
        check(e <= 1e-5, kinds[k] == QUANT_INT8 ? "int8 model: cached forward vs full forward of its dequantized weights"
                                                 : "int4 model (group 32, head quantized): cached forward vs full forward of its dequantized weights",
              "worst scaled error %.2e, tolerance 1e-5", e);
        infer_free(&st);
        gpt2_free(&dm);
        quant_model_free(&qm);
    }
    free(ref); free(got);
    gpt2_free(&full);
}

// ----------------------------------------------------------------------------
// beam search against exhaustive search

// A deterministic "model" on a tiny vocabulary: the logits of a prefix are a hash of it, so
// beam search and the exhaustive search see the same numbers in any order.
static void toy_logits(const int* seq, int len, int V, uint64_t seed, float* out) {
    uint64_t h = seed * 0x9e3779b97f4a7c15ull + 12345;
    for (int i = 0; i < len; i++) { h = (h ^ (uint64_t)(seq[i] + 1)) * 0xbf58476d1ce4e5b9ull; h ^= h >> 29; }
    Rng r;
    rng_init(&r, h);
    for (int v = 0; v < V; v++) { out[v] = 3.0f * (rng_f32(&r) - 0.5f) * 2.0f; }
}

static float toy_logprob(const int* seq, int len, int tok, int V, uint64_t seed) {
    float x[16];
    toy_logits(seq, len, V, seed, x);
    float m = x[0];
    for (int v = 1; v < V; v++) { if (x[v] > m) { m = x[v]; } }
    double s = 0.0;
    for (int v = 0; v < V; v++) { s += exp((double)x[v] - m); }
    return (x[tok] - m) - (float)log(s);
}

typedef struct { double score; int len, eot; int tok[8]; } Best;

// every sequence of at most max_new tokens (ended by EOT, or max_new long without one)
static void exhaustive(int* seq, int plen, int depth, int max_new, int V, int eot, float lp_pen, float sum, uint64_t seed, Best* best) {
    for (int v = 0; v < V; v++) {
        float s = sum + toy_logprob(seq, plen + depth, v, V, seed);
        if (v == eot) {
            double score = (double)s / pow((double)(depth + 1), (double)lp_pen);
            if (score > best->score) { best->score = score; best->len = depth; best->eot = 1; memcpy(best->tok, seq + plen, (size_t)depth * sizeof(int)); }
            continue;
        }
        seq[plen + depth] = v;
        if (depth + 1 == max_new) {
            double score = (double)s / pow((double)max_new, (double)lp_pen);
            if (score > best->score) { best->score = score; best->len = max_new; best->eot = 0; memcpy(best->tok, seq + plen, (size_t)max_new * sizeof(int)); }
        } else {
            exhaustive(seq, plen, depth + 1, max_new, V, eot, lp_pen, s, seed, best);
        }
    }
}

// beam search over the toy model; the caller's "cache" is each beam's token history
static const BeamHyp* toy_beam(BeamSearch* bs, const int* prompt, int plen, int nb, int V, int max_new, int eot, float lp_pen,
                               int early, uint64_t seed) {
    beam_init(bs, nb, V, max_new, eot, lp_pen, early, 1.0f, prompt, plen);
    int* hist = (int*)malloc_check((size_t)nb * 32 * sizeof(int), "toy");
    int* hist2 = (int*)malloc_check((size_t)nb * 32 * sizeof(int), "toy");
    float* logits = float_alloc_check((size_t)nb * V, "toy");
    int *src = (int*)malloc_check((size_t)nb * sizeof(int), "toy"), *tok = (int*)malloc_check((size_t)nb * sizeof(int), "toy");
    for (int b = 0; b < nb; b++) { memcpy(hist + b * 32, prompt, (size_t)plen * sizeof(int)); }
    for (int len = plen;; len++) {
        for (int b = 0; b < nb; b++) { toy_logits(hist + b * 32, len, V, seed, logits + (size_t)b * V); }
        if (beam_step(bs, logits, V, src, tok)) { break; }
        for (int j = 0; j < nb; j++) { memcpy(hist2 + j * 32, hist + src[j] * 32, (size_t)len * sizeof(int)); hist2[j * 32 + len] = tok[j]; }
        int* t = hist; hist = hist2; hist2 = t;
    }
    free(hist); free(hist2); free(logits); free(src); free(tok);
    return beam_best(bs);
}

static void test_beam(uint64_t seed) {
    int V = 4, eot = 3, max_new = 4, plen = 2;
    int prompt[2] = { 0, 2 };
    float penalties[4] = { 1.0f, 0.0f, 2.0f, -0.5f };
    int all_ok = 1;
    double worst = 0.0;
    for (int trial = 0; trial < 8; trial++) {
        for (int p = 0; p < 4; p++) {
            uint64_t s = seed + 7919 * trial;
            Best best = { -INFINITY, 0, 0, {0} };
            int seq[16];
            memcpy(seq, prompt, sizeof(prompt));
            exhaustive(seq, plen, 0, max_new, V, eot, penalties[p], 0.0f, s, &best);
            // enough beams that every live prefix (27 at the last step, 108 continuations) ranks within
            // the first nb and every finished sequence is kept: beam search is then exhaustive
            BeamSearch bs;
            const BeamHyp* h = toy_beam(&bs, prompt, plen, 256, V, max_new, eot, penalties[p], 0, s);
            int same = h != NULL && h->len == best.len && h->eot == best.eot && memcmp(h->tokens, best.tok, (size_t)best.len * sizeof(int)) == 0;
            double d = h ? fabs(h->score - best.score) / fmax(1.0, fabs(best.score)) : INFINITY;
            if (d > worst) { worst = d; }
            if (!same || d > 1e-6) {
                all_ok = 0;
                printf("  trial %d length penalty %.1f: beam len %d eot %d score %.9f, exhaustive len %d eot %d score %.9f\n", trial,
                       penalties[p], h ? h->len : -1, h ? h->eot : -1, h ? h->score : NAN, best.len, best.eot, best.score);
            }
            beam_free(&bs);
        }
    }
    check(all_ok && worst <= 1e-6, "beam search with 256 beams equals exhaustive search",
          "V=4 (EOT one of them), up to 4 new tokens, 8 toy models x length penalties 1, 0, 2, -0.5: same sequence, score relative error %.1e", worst);

    // few beams: the kept hypotheses must be the nb best of what was closed, and the result at
    // least as good as greedy's sequence when that one ended within the budget
    int ok = 1;
    for (int trial = 0; trial < 20 && ok; trial++) {
        uint64_t s = seed + 104729 * trial;
        BeamSearch bs;
        toy_beam(&bs, prompt, plen, 3, V, max_new, eot, 1.0f, 0, s);
        for (int i = 0; i < bs.nhyps; i++) {
            // recompute each hypothesis' score from the toy model
            int seq[16];
            memcpy(seq, prompt, sizeof(prompt));
            double sum = 0.0;
            for (int k = 0; k < bs.hyps[i].len; k++) { sum += toy_logprob(seq, plen + k, bs.hyps[i].tokens[k], V, s); seq[plen + k] = bs.hyps[i].tokens[k]; }
            int L = bs.hyps[i].len;
            if (bs.hyps[i].eot) { sum += toy_logprob(seq, plen + L, eot, V, s); L++; }
            if (fabs(sum / L - bs.hyps[i].score) > 1e-5 * fmax(1.0, fabs(sum / L))) { ok = 0; printf("  trial %d hyp %d: score %.9f, recomputed %.9f\n", trial, i, bs.hyps[i].score, sum / L); }
        }
        ok = ok && bs.nhyps <= 3;
        beam_free(&bs);
    }
    check(ok, "beam search with 3 beams: every kept hypothesis' score recomputes from its tokens", "20 toy models");
}

// ----------------------------------------------------------------------------
// sampling rules

static void test_sampler(uint64_t seed) {
    float probs[8];
    SamplerItem items[8];
    unsigned char seen[8];
    // hand-checked: logits log(0.5), log(0.3), log(0.15), log(0.05)
    float x[4] = { logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f) };
    SamplerConfig sc = { 1.0f, 0, 0.75f, 1.0f };
    int kept = sampler_distribution(probs, x, 4, &sc, items);
    // top-p 0.75: keep 0.5 (before 0), 0.3 (before 0.5 < 0.75); 0.15 has 0.8 before it: removed
    check(kept == 2 && fabsf(probs[0] - 0.625f) < 1e-6f && fabsf(probs[1] - 0.375f) < 1e-6f && probs[2] == 0.0f,
          "top-p 0.75 on (0.5, 0.3, 0.15, 0.05)", "kept %d: %.6f %.6f %.6f %.6f", kept, probs[0], probs[1], probs[2], probs[3]);
    sc.top_p = 1.0f; sc.top_k = 3;
    float y[5] = { 1.0f, 3.0f, 2.0f, 2.0f, 0.5f };
    kept = sampler_distribution(probs, y, 5, &sc, items);
    check(kept == 3 && probs[0] == 0.0f && probs[4] == 0.0f, "top-k 3", "kept %d", kept);
    sc.top_k = 2;
    kept = sampler_distribution(probs, y, 5, &sc, items);
    check(kept == 3, "top-k 2 keeps both tokens tied at the 2nd value (transformers' rule)", "kept %d", kept);
    float z[4] = { 2.0f, -2.0f, 1.0f, 0.0f };
    int hist[3] = { 0, 1, 0 };
    sampler_penalize(z, 4, 2.0f, hist, 3, seen);
    check(z[0] == 1.0f && z[1] == -4.0f && z[2] == 1.0f && z[3] == 0.0f, "repetition penalty 2: positive halved, negative doubled, once per token",
          "%.1f %.1f %.1f %.1f", z[0], z[1], z[2], z[3]);
    // temperature: ratios of probabilities follow exp((a - b) / T)
    sc.top_k = 0; sc.temperature = 0.5f;
    float w[2] = { 1.0f, 0.0f };
    sampler_distribution(probs, w, 2, &sc, items);
    check(fabs(probs[0] / probs[1] - exp(2.0)) < 1e-5 * exp(2.0), "temperature 0.5 doubles logit gaps", "ratio %.6f, expected %.6f", probs[0] / probs[1], exp(2.0));
    // inverse CDF: frequencies of 200k draws within 5 sigma of the distribution
    Rng rng;
    rng_init(&rng, seed);
    float p3[3] = { 0.2f, 0.0f, 0.8f };
    int count[3] = { 0, 0, 0 };
    int N = 200000;
    for (int i = 0; i < N; i++) { count[sampler_pick(p3, 3, rng_f32(&rng))]++; }
    double sd = sqrt(N * 0.2 * 0.8);
    check(count[1] == 0 && fabs(count[0] - 0.2 * N) < 5 * sd, "sampler_pick frequencies", "%d / %d / %d of %d", count[0], count[1], count[2], N);
}

// decode cases for dev/infer/decode_reference.py: per case V, settings, history, logits, and
// our penalized logits, distribution and greedy token
static void write_cases(const char* path, uint64_t seed) {
    FILE* f = fopen_check(path, "wb");
    Rng rng;
    rng_init(&rng, seed);
    int ncases = 60;
    fwrite_check(&ncases, sizeof(int), 1, f, path);
    for (int c = 0; c < ncases; c++) {
        int V = 50 + (int)rng_below(&rng, 400);
        SamplerConfig sc = { 0.3f + 1.7f * rng_f32(&rng), 0, 1.0f, 1.0f };
        int mode = c % 6;
        if (mode == 1 || mode == 4) { sc.top_k = 1 + (int)rng_below(&rng, 40); }
        if (mode == 2 || mode == 4) { sc.top_p = 0.05f + 0.9f * rng_f32(&rng); }
        if (mode == 3 || mode == 4 || mode == 5) { sc.repetition_penalty = 0.5f + 1.5f * rng_f32(&rng); }
        int nh = 1 + (int)rng_below(&rng, 30);
        int* h = (int*)malloc_check((size_t)nh * sizeof(int), "case");
        for (int i = 0; i < nh; i++) { h[i] = (int)rng_below(&rng, (uint32_t)V); }
        float* x = float_alloc_check((size_t)V, "case");
        rng_normal(&rng, x, (size_t)V, 0.0f, 3.0f);
        float* pen = float_alloc_check((size_t)V, "case");
        memcpy(pen, x, (size_t)V * sizeof(float));
        unsigned char* seen = (unsigned char*)malloc_check((size_t)V, "case");
        SamplerItem* items = (SamplerItem*)malloc_check((size_t)V * sizeof(SamplerItem), "case");
        float* probs = float_alloc_check((size_t)V, "case");
        sampler_penalize(pen, V, sc.repetition_penalty, h, nh, seen);
        sampler_distribution(probs, pen, V, &sc, items);
        int greedy = sampler_argmax(pen, V);
        int head[2] = { V, nh };
        fwrite_check(head, sizeof(int), 2, f, path);
        fwrite_check(&sc.temperature, sizeof(float), 1, f, path);
        fwrite_check(&sc.top_k, sizeof(int), 1, f, path);
        fwrite_check(&sc.top_p, sizeof(float), 1, f, path);
        fwrite_check(&sc.repetition_penalty, sizeof(float), 1, f, path);
        fwrite_check(h, sizeof(int), (size_t)nh, f, path);
        fwrite_check(x, sizeof(float), (size_t)V, f, path);
        fwrite_check(pen, sizeof(float), (size_t)V, f, path);
        fwrite_check(probs, sizeof(float), (size_t)V, f, path);
        fwrite_check(&greedy, sizeof(int), 1, f, path);
        free(h); free(x); free(pen); free(seen); free(items); free(probs);
    }
    fclose(f);
}

int main(int argc, char** argv) {
    uint64_t seed = (uint64_t)time(NULL);
    if (argc == 3 && strcmp(argv[1], "--cases") == 0) {
        write_cases(argv[2], seed);
        printf("decode cases written to %s (seed %llu)\n", argv[2], (unsigned long long)seed);
        return 0;
    }
    if (argc == 2) { seed = strtoull(argv[1], NULL, 10); }
    printf("test_infer: seed %llu (rerun with: dev/infer/test_infer %llu)\n", (unsigned long long)seed, (unsigned long long)seed);
    test_cache(seed);
    test_beam(seed);
    test_sampler(seed);
    return test_failures == 0 ? 0 : 1;
}

// A small, explicit random number generator (splitmix64 to seed, xorshift64* to draw).
// Its whole state is one uint64_t, so a training-state file can save and restore it exactly.
#ifndef LLMC_RAND_H
#define LLMC_RAND_H

#include <math.h>
#include <stdint.h>
#include <stddef.h>

typedef struct {
    uint64_t state;
} Rng;

static void rng_init(Rng* rng, uint64_t seed) {
    // splitmix64: spreads nearby seeds (1, 2, 3...) into unrelated, nonzero states
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z = z ^ (z >> 31);
    rng->state = z != 0 ? z : 0x2545F4914F6CDD1DULL;
}

static uint32_t rng_u32(Rng* rng) {
    uint64_t x = rng->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

// uniform in [0, 1), 24 random bits
static float rng_f32(Rng* rng) {
    return (rng_u32(rng) >> 8) / 16777216.0f;
}

// uniform integer in [0, n), without modulo bias
static uint32_t rng_below(Rng* rng, uint32_t n) {
    uint32_t limit = UINT32_MAX - UINT32_MAX % n;
    uint32_t r;
    do { r = rng_u32(rng); } while (r >= limit);
    return r % n;
}

// fills x with normal(mean, std) values (Box-Muller, both outputs used)
static void rng_normal(Rng* rng, float* x, size_t n, float mean, float std) {
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = (rng_u32(rng) + 1.0) / 4294967297.0;  // in (0, 1): log(u1) is finite
        double u2 = rng_u32(rng) / 4294967296.0;
        double r = sqrt(-2.0 * log(u1));
        x[i] = (float)(mean + std * r * cos(two_pi * u2));
        if (i + 1 < n) { x[i + 1] = (float)(mean + std * r * sin(two_pi * u2)); }
    }
}

// Fisher-Yates: a uniformly random permutation of idx[0..n)
static void rng_shuffle(Rng* rng, int* idx, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(rng, (uint32_t)(i + 1));
        int tmp = idx[i]; idx[i] = idx[j]; idx[j] = tmp;
    }
}

#endif // LLMC_RAND_H

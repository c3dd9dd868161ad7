// Spike and NaN guard: decides whether a step's update is applied.
//
// A step is bad when its loss or gradient norm is NaN or infinite, or when either is an upward
// outlier: more than z standard deviations above the mean of the last `window` good steps
// (z thresholds are flags; 0 turns that test off). A bad step is skipped (no parameter update)
// and does not enter the window. max_bad bad steps in a row stop the run.
// The whole state is plain data, so the training-state file saves it and a resumed run makes
// the same decisions as an uninterrupted one.
#ifndef LLMC_GUARD_H
#define LLMC_GUARD_H

#include <math.h>
#include <stdio.h>

#define GUARD_MAX_WINDOW 1024
#define GUARD_MIN_HISTORY 8  // z-scores need a few good steps first

typedef struct {
    int window;         // good steps the statistics use, 2..GUARD_MAX_WINDOW
    float loss_z;       // outlier threshold on the loss, 0 = off
    float norm_z;       // outlier threshold on the gradient norm, 0 = off
    int max_bad;        // bad steps in a row that stop the run
    int count;          // good steps in the window so far (<= window)
    int head;           // next slot to write
    int bad_in_row;
    float losses[GUARD_MAX_WINDOW];
    float norms[GUARD_MAX_WINDOW];
} SpikeGuard;

static void guard_init(SpikeGuard* g, int window, float loss_z, float norm_z, int max_bad) {
    memset(g, 0, sizeof(*g));
    g->window = window < 2 ? 2 : (window > GUARD_MAX_WINDOW ? GUARD_MAX_WINDOW : window);
    g->loss_z = loss_z;
    g->norm_z = norm_z;
    g->max_bad = max_bad;
}

// z-score of x against the window's values (0 while there is too little history)
static double guard_zscore(const SpikeGuard* g, const float* values, float x) {
    if (g->count < GUARD_MIN_HISTORY) { return 0.0; }
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < g->count; i++) { mean += values[i]; }
    mean /= g->count;
    for (int i = 0; i < g->count; i++) { double d = values[i] - mean; var += d * d; }
    double std = sqrt(var / (g->count - 1));
    if (std < 1e-12) { std = 1e-12; }
    return (x - mean) / std;
}

// Returns 1 if the step is bad (skip its update; why says which test failed), 0 if it is good
// (and enters the window).
static int guard_check(SpikeGuard* g, float loss, float norm, char* why, size_t why_len) {
    int bad = 0;
    if (!isfinite(loss) || !isfinite(norm)) {
        snprintf(why, why_len, "non-finite loss %f or gradient norm %f", loss, norm);
        bad = 1;
    } else {
        double zl = guard_zscore(g, g->losses, loss);
        double zn = guard_zscore(g, g->norms, norm);
        if (g->loss_z > 0 && zl > g->loss_z) {
            snprintf(why, why_len, "loss %.4f is %.1f standard deviations above the last %d steps", loss, zl, g->count);
            bad = 1;
        } else if (g->norm_z > 0 && zn > g->norm_z) {
            snprintf(why, why_len, "gradient norm %.4f is %.1f standard deviations above the last %d steps", norm, zn, g->count);
            bad = 1;
        }
    }
    if (bad) {
        g->bad_in_row++;
        return 1;
    }
    g->bad_in_row = 0;
    g->losses[g->head] = loss;
    g->norms[g->head] = norm;
    g->head = (g->head + 1) % g->window;
    if (g->count < g->window) { g->count++; }
    why[0] = '\0';
    return 0;
}

#endif // LLMC_GUARD_H

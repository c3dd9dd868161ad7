// Learning-rate schedules: linear warmup, then cosine / linear / constant / WSD.
// WSD (warmup-stable-decay) holds the peak rate and decays linearly over the last
// decay_frac of the steps, the schedule used for continued pretraining and sweeps.
#ifndef LLMC_SCHEDULE_H
#define LLMC_SCHEDULE_H

#include <math.h>
#include <string.h>

typedef enum { LR_COSINE, LR_LINEAR, LR_CONSTANT, LR_WSD } LRScheduleType;

typedef struct {
    LRScheduleType type;
    float max_lr;
    int warmup_steps;
    int total_steps;
    float final_frac;  // the rate at the last step is max_lr * final_frac
    float decay_frac;  // WSD only: fraction of the steps spent decaying
} LRSchedule;

// returns 0 and sets *type, or -1 for an unknown name
static int lr_schedule_parse(const char* name, LRScheduleType* type) {
    if (strcmp(name, "cosine") == 0) { *type = LR_COSINE; return 0; }
    if (strcmp(name, "linear") == 0) { *type = LR_LINEAR; return 0; }
    if (strcmp(name, "constant") == 0) { *type = LR_CONSTANT; return 0; }
    if (strcmp(name, "wsd") == 0) { *type = LR_WSD; return 0; }
    return -1;
}

// step is 0-based; warmup ramps to max_lr over warmup_steps steps (step 0 gets max_lr/warmup)
static float lr_at(const LRSchedule* s, int step) {
    float min_lr = s->max_lr * s->final_frac;
    if (step < s->warmup_steps) {
        return s->max_lr * (float)(step + 1) / (float)s->warmup_steps;
    }
    if (s->type == LR_CONSTANT) { return s->max_lr; }
    int decay_span = s->total_steps - s->warmup_steps;
    if (decay_span <= 1) { return s->max_lr; }
    float progress = (float)(step - s->warmup_steps) / (float)(decay_span - 1);  // 0 .. 1
    if (progress > 1.0f) { progress = 1.0f; }
    if (s->type == LR_COSINE) {
        float coeff = 0.5f * (1.0f + cosf((float)M_PI * progress));
        return min_lr + coeff * (s->max_lr - min_lr);
    }
    if (s->type == LR_LINEAR) {
        return s->max_lr - progress * (s->max_lr - min_lr);
    }
    // LR_WSD: stable, then linear decay over the last decay_frac of all steps
    int decay_steps = (int)(s->decay_frac * s->total_steps);
    int decay_start = s->total_steps - decay_steps;
    if (step < decay_start || decay_steps <= 1) { return s->max_lr; }
    float p = (float)(step - decay_start) / (float)(decay_steps - 1);
    if (p > 1.0f) { p = 1.0f; }
    return s->max_lr - p * (s->max_lr - min_lr);
}

#endif // LLMC_SCHEDULE_H

// The training log: llm.c's line format, one line per event, flushed at once so a crashed
// run still has its log.
//   s:STEP trl:LOSS lr:LR norm:NORM     a training step
//   s:STEP tel:LOSS                     a validation evaluation
#ifndef LLMC_LOGGER_H
#define LLMC_LOGGER_H

#include "utils.h"

typedef struct {
    FILE* f;  // NULL when there is no output directory: logging is off
} Logger;

// resume != 0 appends to an existing log instead of starting a new one
static void logger_init(Logger* lg, const char* output_dir, int resume) {
    lg->f = NULL;
    if (output_dir == NULL || output_dir[0] == '\0') { return; }
    char path[1024];
    snprintf(path, sizeof(path), "%s/main.log", output_dir);
    lg->f = fopen_check(path, resume ? "a" : "w");
}

static void logger_log_train(Logger* lg, int step, float loss, float lr, float norm) {
    if (lg->f == NULL) { return; }
    fprintf(lg->f, "s:%d trl:%f lr:%f norm:%f\n", step, loss, lr, norm);
    fflush(lg->f);
}

static void logger_log_val(Logger* lg, int step, float loss) {
    if (lg->f == NULL) { return; }
    fprintf(lg->f, "s:%d tel:%f\n", step, loss);
    fflush(lg->f);
}

static void logger_free(Logger* lg) {
    if (lg->f != NULL) { fclose(lg->f); lg->f = NULL; }
}

#endif // LLMC_LOGGER_H

// Training state for exact resume, and the checkpoint directory.
//
// A checkpoint at step S in the output directory is three kinds of files:
//   model_SSSSSSSS.bin           the model (llmc/checkpoint.h), loadable on its own; in a
//                                PEFT run model_SSSSSSSS.peft instead, the adapter file
//                                (llmc/peft.h) that loads on top of the run's base model (-e)
//   state_SSSSSSSS_RRRRR.bin     per rank: AdamW moments (this rank's share), step, RNG states,
//                                data-loader position and shuffle state, spike-guard window
//   DONE_SSSSSSSS                written last: only a checkpoint with it is complete
// Each file is written to a temporary name, fsynced and renamed (then the directory fsynced),
// so a crash at any moment leaves the previous complete checkpoint intact. Old checkpoints are
// deleted only after the new DONE marker is durable, DONE first so a half-deleted checkpoint
// never looks complete.
//
// State file: the TrainStateHeader struct below (fixed-width fields), then shard_count floats of
// m and shard_count floats of v, the moments of parameters [shard_offset, shard_offset+count).
#ifndef LLMC_TRAIN_STATE_H
#define LLMC_TRAIN_STATE_H

#include <dirent.h>
#include "utils.h"
#include "guard.h"
#include "checkpoint.h"
#include "run_dir.h"

#define STATE_MAGIC 20241126
#define STATE_VERSION 1

typedef struct {
    int64_t magic;
    int64_t version;
    int64_t step;                 // optimizer steps completed
    int64_t num_parameters;
    int64_t shard_offset;         // the moments in this file: parameters [offset, offset+count)
    int64_t shard_count;
    int64_t process_rank;
    int64_t num_processes;
    int64_t B, T, total_batch_size;
    int64_t loader_epoch;
    int64_t loader_shard_pos;
    int64_t loader_seq_pos;
    uint64_t loader_epoch_rng;
    uint64_t sample_rng;
    int64_t skipped_steps;        // updates skipped by the spike guard so far
    int64_t guard_count, guard_head, guard_bad_in_row, guard_window;
    float guard_losses[GUARD_MAX_WINDOW];
    float guard_norms[GUARD_MAX_WINDOW];
} TrainStateHeader;

static void checkpoint_paths(const char* dir, int step, int rank, char* model, char* state, char* done, size_t n) {
    if (model) { snprintf(model, n, "%s/model_%08d.bin", dir, step); }
    if (state) { snprintf(state, n, "%s/state_%08d_%05d.bin", dir, step, rank); }
    if (done) { snprintf(done, n, "%s/DONE_%08d", dir, step); }
}

// The model file of the checkpoint at step: model_SSSSSSSS.peft when a PEFT run wrote one,
// else model_SSSSSSSS.bin.
static void checkpoint_model_path(const char* dir, int step, char* out, size_t n) {
    snprintf(out, n, "%s/model_%08d.peft", dir, step);
    if (access(out, F_OK) == 0) { return; }
    snprintf(out, n, "%s/model_%08d.bin", dir, step);
}

static void train_state_write(const char* path, const TrainStateHeader* h, const float* m, const float* v) {
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, h, sizeof(*h), 1);
    atomic_write(&af, m, sizeof(float), h->shard_count);
    atomic_write(&af, v, sizeof(float), h->shard_count);
    atomic_commit(&af);
}

// Opens a state file and validates its header: magic, version, internal consistency, file
// size, and agreement with this run (expected->num_parameters, T and total_batch_size: the
// data stream and the loss depend on those, not on B or the number of processes, so a run can
// resume on another world size). 0 with *fp open past the header, or -1 with err.
static int train_state_open(const char* path, const TrainStateHeader* expected, TrainStateHeader* h,
                            FILE** fp, char* err) {
    *fp = NULL;
    if (check_regular_file(path, err) != 0) { return -1; }
    FILE* f = fopen(path, "rb");
    if (f == NULL) { return set_err(err, "%s: cannot open training state: %s", path, strerror(errno)); }
    long fsize = file_size_of(f);
    if (fread_exact(h, sizeof(*h), 1, f, path, err) != 0) { fclose(f); return -1; }
    long want = 0;  // computed once shard_count is known to be in range
    int rc = 0;
    if (h->magic != STATE_MAGIC) {
        rc = set_err(err, "%s: bad magic %lld in training state header (expected %d)", path, (long long)h->magic, STATE_MAGIC);
    } else if (h->version != STATE_VERSION) {
        rc = set_err(err, "%s: unsupported training state version %lld (supported: %d)", path, (long long)h->version, STATE_VERSION);
    } else if (h->num_parameters != expected->num_parameters) {
        rc = set_err(err, "%s: state is for a model of %lld parameters, this model has %lld", path,
                     (long long)h->num_parameters, (long long)expected->num_parameters);
    } else if (h->T != expected->T || h->total_batch_size != expected->total_batch_size) {
        rc = set_err(err, "%s: state was written with -t %lld -d %lld; resume needs the same (now -t %lld -d %lld)",
                     path, (long long)h->T, (long long)h->total_batch_size, (long long)expected->T,
                     (long long)expected->total_batch_size);
    } else if (h->num_processes < 1 || h->process_rank < 0 || h->process_rank >= h->num_processes ||
               h->shard_offset < 0 || h->shard_count < 0 || h->shard_offset > h->num_parameters ||
               h->shard_count > h->num_parameters - h->shard_offset || h->B < 1 ||
               h->step < 0 || h->skipped_steps < 0 || h->skipped_steps > h->step || h->loader_epoch < 0 ||
               h->loader_epoch > INT32_MAX || h->loader_shard_pos < 0 || h->loader_shard_pos > INT32_MAX ||
               h->loader_seq_pos < 0 || h->guard_window < 2 || h->guard_window > GUARD_MAX_WINDOW ||
               h->guard_count < 0 || h->guard_count > h->guard_window || h->guard_head < 0 ||
               h->guard_head >= h->guard_window || h->guard_bad_in_row < 0 || h->guard_bad_in_row > INT32_MAX) {
        rc = set_err(err, "%s: training state holds out-of-range values (step %lld)", path, (long long)h->step);
    } else if (want = (long)sizeof(*h) + 2 * (long)h->shard_count * (long)sizeof(float), fsize != want) {
        rc = set_err(err, "%s: file is %s: %ld bytes, expected %ld", path, fsize < want ? "truncated" : "too long", fsize, want);
    }
    if (rc != 0) { fclose(f); return rc; }
    *fp = f;
    return 0;
}

// Reads the moments of the parameters [lo, lo+count) that the open file f holds into m and v
// (both indexed from lo). Returns how many it read, or -1 with err.
static long train_state_read_overlap(FILE* f, const char* path, const TrainStateHeader* h, size_t lo, size_t count,
                                     float* m, float* v, char* err) {
    size_t a = (size_t)h->shard_offset > lo ? (size_t)h->shard_offset : lo;
    size_t b_file = (size_t)(h->shard_offset + h->shard_count);
    size_t b = b_file < lo + count ? b_file : lo + count;
    if (a >= b) { return 0; }
    long m_at = (long)sizeof(*h) + (long)(a - h->shard_offset) * (long)sizeof(float);
    long v_at = m_at + (long)h->shard_count * (long)sizeof(float);
    if (fseek(f, m_at, SEEK_SET) != 0 || fread_exact(m + (a - lo), sizeof(float), b - a, f, path, err) != 0) { return -1; }
    if (fseek(f, v_at, SEEK_SET) != 0 || fread_exact(v + (a - lo), sizeof(float), b - a, f, path, err) != 0) { return -1; }
    return (long)(b - a);
}

// Loads the training state of the checkpoint at step in dir for a process that holds the
// moments of parameters [lo, lo+count): reads every rank's file of that checkpoint, whatever
// the number of processes that wrote it, and takes the overlaps. h0 receives rank 0's header
// (step, positions, RNG and guard state are the same on every rank).
static int train_state_load(const char* dir, int step, size_t lo, size_t count, const TrainStateHeader* expected,
                            TrainStateHeader* h0, float* m, float* v, char* err) {
    char path[1100];
    checkpoint_paths(dir, step, 0, NULL, path, NULL, sizeof(path));
    FILE* f;
    if (train_state_open(path, expected, h0, &f, err) != 0) { return -1; }
    if (h0->step != step) { fclose(f); return set_err(err, "%s holds step %lld, expected %d", path, (long long)h0->step, step); }
    if (h0->process_rank != 0) { fclose(f); return set_err(err, "%s: holds rank %lld, expected 0", path, (long long)h0->process_rank); }
    int old_world = (int)h0->num_processes;
    long covered = train_state_read_overlap(f, path, h0, lo, count, m, v, err);
    fclose(f);
    if (covered < 0) { return -1; }
    for (int r = 1; r < old_world; r++) {
        TrainStateHeader h;
        checkpoint_paths(dir, step, r, NULL, path, NULL, sizeof(path));
        if (train_state_open(path, expected, &h, &f, err) != 0) { return -1; }
        if (h.step != step || h.process_rank != r || h.num_processes != old_world) {
            fclose(f);
            return set_err(err, "%s: holds step %lld of rank %lld of %lld, expected step %d of rank %d of %d", path,
                           (long long)h.step, (long long)h.process_rank, (long long)h.num_processes, step, r, old_world);
        }
        long got = train_state_read_overlap(f, path, &h, lo, count, m, v, err);
        fclose(f);
        if (got < 0) { return -1; }
        covered += got;
    }
    if (covered != (long)count) {
        return set_err(err, "%s: the state files of step %d hold %ld of the %zu optimizer moments this process needs",
                       dir, step, covered, count);
    }
    return 0;
}

// The DONE marker is also the checkpoint's integrity record (text, one item per line):
//   done
//   version 2
//   step S
//   good G        1: the model is finite and no spike-guard streak was running when it was
//                 written; retention never deletes the newest good checkpoint
//   config FLAG V    the run-defining flags (llmc/args.h), compared on resume
//   file NAME HASH   for the model and every state file: Hash64 of its bytes (llmc/utils.h)
// A marker that is just "done" was written before integrity records: accepted, unverified.

static int all_finite(const float* x, size_t n) {
    int ok = 1;
    for (size_t i = 0; i < n; i++) { ok &= isfinite(x[i]) ? 1 : 0; }
    return ok;
}

static void write_done_marker(const char* dir, int step, int good, const char* extra) {
    char done[LLMC_PATH_MAX + 64], path[LLMC_PATH_MAX + 300], err[LLMC_ERRLEN];
    checkpoint_paths(dir, step, 0, NULL, NULL, done, sizeof(done));
    char (*names)[64] = (char (*)[64])malloc_check((1 + 4096) * 64, "checkpoint file names");  // state_SSSSSSSS_RRRRR.bin
    int nnames = 0;
    char model[LLMC_PATH_MAX + 64];
    checkpoint_model_path(dir, step, model, sizeof(model));
    snprintf(names[nnames++], sizeof(names[0]), "%s", strrchr(model, '/') + 1);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "state_%08d_", step);
    DIR* d = opendir(dir);
    if (d == NULL) { die("cannot list %s: %s", dir, strerror(errno)); }
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && run_dir_is_run_file(e->d_name) && nnames < 1 + 4096 &&
            strlen(e->d_name) < sizeof(names[0])) {
            memcpy(names[nnames++], e->d_name, strlen(e->d_name) + 1);
        }
    }
    closedir(d);
    AtomicFile af;
    atomic_open(&af, done);
    char line[128];
    int len = snprintf(line, sizeof(line), "done\nversion 2\nstep %d\ngood %d\n", step, good);
    atomic_write(&af, line, 1, len);
    if (extra != NULL) { atomic_write(&af, extra, 1, strlen(extra)); }
    for (int i = 0; i < nnames; i++) {
        snprintf(path, sizeof(path), "%s/%.63s", dir, names[i]);
        uint64_t h = 0;
        if (hash64_file(path, &h, err) != 0) { atomic_abort(&af); die("checkpoint at step %d: %s", step, err); }
        len = snprintf(line, sizeof(line), "file %s %016llx\n", names[i], (unsigned long long)h);
        atomic_write(&af, line, 1, len);
    }
    free(names);
    atomic_commit(&af);
}

// Reads dir's DONE marker of step: *good (1 for a legacy marker) and *versioned. 0, or -1.
static int read_done_marker(const char* dir, int step, int* good, int* versioned, char* err) {
    char done[LLMC_PATH_MAX + 64];
    checkpoint_paths(dir, step, 0, NULL, NULL, done, sizeof(done));
    FILE* f = fopen_regular(done, err);
    if (f == NULL) { return -1; }
    *good = 1;
    *versioned = 0;
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        int v;
        if (sscanf(line, "version %d", &v) == 1) { *versioned = 1; }
        if (sscanf(line, "good %d", &v) == 1) { *good = v; }
    }
    fclose(f);
    return 0;
}

// Compares the "config FLAG VALUE" lines of the DONE marker of step with record (the same
// lines for this run). Writes "FLAG OLD -> NEW" items, comma-separated, into diffs; returns how
// many differ (0 also for a marker without a record).
static int checkpoint_config_changes(const char* dir, int step, const char* record, char* diffs, size_t n) {
    char done[LLMC_PATH_MAX + 64], err[LLMC_ERRLEN], line[1024];
    checkpoint_paths(dir, step, 0, NULL, NULL, done, sizeof(done));
    diffs[0] = '\0';
    FILE* f = fopen_regular(done, err);
    if (f == NULL) { return 0; }
    int changes = 0;
    size_t used = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char flag[64], old[900];
        if (sscanf(line, "config %63s %899[^\n]", flag, old) != 2) { continue; }
        // find the same flag in this run's record
        char key[80];
        snprintf(key, sizeof(key), "config %s ", flag);
        const char* at = strstr(record, key);
        char now[900] = "(not set)";
        if (at != NULL) { sscanf(at + strlen(key), "%899[^\n]", now); }
        if (strcmp(old, now) != 0) {
            int w = snprintf(diffs + used, n - used, "%s%s %s -> %s", changes > 0 ? ", " : "", flag, old, now);
            if (w > 0 && (size_t)w < n - used) { used += (size_t)w; }
            changes++;
        }
    }
    fclose(f);
    return changes;
}

// Checks every file the DONE marker of step lists against its recorded hash, and that the
// model and rank 0's state are among them. 0 (also for a legacy marker: *verified = 0), or -1
// with err naming the file that changed.
static int checkpoint_verify(const char* dir, int step, int* verified, char* err) {
    char done[LLMC_PATH_MAX + 64], path[LLMC_PATH_MAX + 300];
    checkpoint_paths(dir, step, 0, NULL, NULL, done, sizeof(done));
    *verified = 0;
    FILE* f = fopen_regular(done, err);
    if (f == NULL) { return -1; }
    char line[512], model[40], model_peft[40], state0[40];
    snprintf(model, sizeof(model), "model_%08d.bin", step);
    snprintf(model_peft, sizeof(model_peft), "model_%08d.peft", step);
    snprintf(state0, sizeof(state0), "state_%08d_00000.bin", step);
    int versioned = 0, have_model = 0, have_state0 = 0, nfiles = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        int v;
        char name[256];
        unsigned long long want;
        if (sscanf(line, "version %d", &v) == 1) { versioned = 1; continue; }
        if (sscanf(line, "file %255s %llx", name, &want) != 2) { continue; }
        if (!run_dir_is_run_file(name)) { fclose(f); return set_err(err, "%s: names an unexpected file '%s'", done, name); }
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        uint64_t got = 0;
        if (hash64_file(path, &got, err) != 0) { fclose(f); return -1; }
        if (got != want) {
            fclose(f);
            return set_err(err, "%s: does not match the checksum recorded in %s: the file changed after it was written "
                           "(delete %s to resume from the checkpoint before it)", path, done, done);
        }
        have_model |= strcmp(name, model) == 0 || strcmp(name, model_peft) == 0;
        have_state0 |= strcmp(name, state0) == 0;
        nfiles++;
    }
    fclose(f);
    if (!versioned) { return 0; }
    if (!have_model || !have_state0) {
        return set_err(err, "%s: the integrity record does not list %s", done, !have_model ? model : state0);
    }
    *verified = nfiles;
    return 0;
}

// Steps of the complete checkpoints (those with a DONE marker) in dir, ascending, into steps
// (capacity max). Returns how many (possibly more than max: only max are stored).
static int list_checkpoints(const char* dir, int* steps, int max) {
    DIR* d = opendir(dir);
    if (d == NULL) { return 0; }
    int n = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        int step;
        char tail;
        if (sscanf(e->d_name, "DONE_%8d%c", &step, &tail) == 1 && strlen(e->d_name) == 13) {
            if (n < max) { steps[n] = step; }
            n++;
        }
    }
    closedir(d);
    int stored = n < max ? n : max;
    for (int i = 1; i < stored; i++) {  // insertion sort: a handful of entries
        int s = steps[i], j = i - 1;
        while (j >= 0 && steps[j] > s) { steps[j + 1] = steps[j]; j--; }
        steps[j + 1] = s;
    }
    return n;
}

// the latest complete checkpoint's step, or -1
static int latest_checkpoint(const char* dir) {
    int steps[4096];
    int n = list_checkpoints(dir, steps, 4096);
    if (n > 4096) { die("%s holds over 4096 checkpoints; clean it up or use -nk", dir); }
    return n > 0 ? steps[n - 1] : -1;
}

// Deletes complete checkpoints other than the newest keep_last ones and those whose step is a
// multiple of keep_every (0: none kept that way). keep_last <= 0 keeps everything. A
// checkpoint's state files are found by name, whatever number of processes wrote them.
// Deletes the model and state files of steps older than the newest complete checkpoint that
// have no DONE marker: a checkpoint interrupted half-way, never to be completed.
static void prune_orphans(const char* dir, const int* steps, int n) {
    if (n <= 0) { return; }
    int newest = steps[n - 1];
    DIR* d = opendir(dir);
    if (d == NULL) { return; }
    struct dirent* e;
    char path[LLMC_PATH_MAX + 300];
    while ((e = readdir(d)) != NULL) {
        int step;
        if (!run_dir_is_run_file(e->d_name)) { continue; }
        if (sscanf(e->d_name, "model_%8d", &step) != 1 && sscanf(e->d_name, "state_%8d", &step) != 1) { continue; }
        if (step >= newest) { continue; }
        int complete = 0;
        for (int i = 0; i < n; i++) { complete |= steps[i] == step; }
        if (complete) { continue; }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) { printf("removed %s, part of a checkpoint that never completed\n", path); }
    }
    closedir(d);
}

static void prune_checkpoints(const char* dir, int keep_last, int keep_every) {
    int steps[4096];
    int n = list_checkpoints(dir, steps, 4096);
    if (n > 4096) { n = 4096; }
    prune_orphans(dir, steps, n);
    if (keep_last <= 0) { return; }
    char model[1100], done[1100], prefix[32], path[1100];
    // the newest good checkpoint (finite model, no spike-guard streak) is never deleted, so a
    // long streak of bad steps cannot prune away the last checkpoint worth resuming from
    int newest_good = -1;
    for (int i = n - 1; i >= 0 && newest_good < 0; i--) {
        int good = 1, versioned = 0;
        char err[LLMC_ERRLEN];
        if (read_done_marker(dir, steps[i], &good, &versioned, err) == 0 && good) { newest_good = steps[i]; }
    }
    int deleted = 0;
    for (int i = 0; i < n - keep_last; i++) {
        int s = steps[i];
        if (keep_every > 0 && s % keep_every == 0) { continue; }
        if (s == newest_good) { continue; }
        checkpoint_paths(dir, s, 0, model, NULL, done, sizeof(done));
        if (unlink(done) != 0) { die("cannot delete %s: %s", done, strerror(errno)); }
        fsync_dir_of(done);  // no longer complete, durably, before its files go
        unlink(model);
        snprintf(path, sizeof(path), "%s/model_%08d.peft", dir, s);
        unlink(path);
        snprintf(prefix, sizeof(prefix), "state_%08d_", s);
        DIR* d = opendir(dir);
        struct dirent* e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                unlink(path);
            }
        }
        if (d != NULL) { closedir(d); }
        deleted++;
    }
    if (deleted > 0) { fsync_dir_of(model); }
}

// Writes this rank's part of the checkpoint at step: the model (rank 0; params is the fp32
// model) and this rank's state file (m and v hold the moments described by h). When every
// rank has done so (a barrier), rank 0 calls checkpoint_commit.
static void checkpoint_save_rank(const char* dir, int step, const GPT2Config* cfg, const float* params,
                                 const TrainStateHeader* h, const float* m, const float* v) {
    char model[1100], state[1100];
    checkpoint_paths(dir, step, (int)h->process_rank, model, state, NULL, sizeof(model));
    if (h->process_rank == 0) { checkpoint_write(model, cfg, params, 3); }
    train_state_write(state, h, m, v);
}

// Marks the checkpoint at step complete (its DONE file with the integrity record), then prunes
// old ones. Rank 0 only, after every rank's checkpoint_save_rank.
// extra: more lines for the marker (the run's "config NAME VALUE" record), or NULL.
static void checkpoint_commit(const char* dir, int step, int keep_last, int keep_every, int good, const char* extra) {
    write_done_marker(dir, step, good, extra);
    prune_checkpoints(dir, keep_last, keep_every);
}

#endif // LLMC_TRAIN_STATE_H

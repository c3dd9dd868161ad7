// The run directory (-o): who may write into it, and what counts as a run already there.
//
// - Lock: a training run holds an advisory lock (flock) on <dir>/LOCK for its whole life, with
//   its pid written in the file. A second run, or a `-y 1` started while the first still runs,
//   is refused with the holder's pid. The kernel drops the lock when the process dies (kill -9
//   included), so a crashed run never leaves a stale lock behind.
// - Fresh runs: a directory that already holds a run (logs or checkpoints) is not overwritten
//   unless --overwrite is given, which deletes that run's files first. `-y 1` continues it.
// - Leftovers: files named "<one of our files>.tmp.<pid>" that an interrupted atomic write left
//   behind. Only those are removed on resume, never another program's "*.tmp.*" files.
#ifndef LLMC_RUN_DIR_H
#define LLMC_RUN_DIR_H

#include <ctype.h>
#include <dirent.h>
#include <sys/file.h>
#include "utils.h"

// The longest name we create inside -o: "state_SSSSSSSS_RRRRR.bin.tmp.<pid>" plus slack.
#define RUN_DIR_LONGEST_NAME 48

// Dies unless every file of the run fits LLMC_PATH_MAX, before any work is done.
static void run_dir_check_path(const char* dir) {
    size_t n = strlen(dir);
    if (n + RUN_DIR_LONGEST_NAME >= LLMC_PATH_MAX) {
        die("-o: the output directory path is %zu characters long; at most %d fit (checkpoint names are appended to it)",
            n, LLMC_PATH_MAX - RUN_DIR_LONGEST_NAME - 1);
    }
}

// Takes the run's lock on dir (which must exist) and returns its fd, held open until exit.
static int run_dir_lock(const char* dir) {
    char path[LLMC_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) { die("-o: cannot create the lock file %s: %s", path, strerror(errno)); }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char holder[64] = "";
        ssize_t got = pread(fd, holder, sizeof(holder) - 1, 0);
        holder[got > 0 ? got : 0] = '\0';
        long pid = atol(holder);
        close(fd);
        if (e == EWOULDBLOCK) {
            die("-o %s: in use by another run (pid %ld holds %s); wait for it to end or choose another -o", dir, pid, path);
        }
        die("-o: cannot lock %s: %s", path, strerror(e));
    }
    char text[64];
    int len = snprintf(text, sizeof(text), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, len, 0) != len) { die("-o: cannot write %s: %s", path, strerror(errno)); }
    return fd;
}

// 1 if name is one of the files a run writes: main.log, main.jsonl, model_SSSSSSSS.bin,
// model_SSSSSSSS_bf16.bin, state_SSSSSSSS_RRRRR.bin, DONE_SSSSSSSS.
static int run_dir_is_run_file(const char* name) {
    if (strcmp(name, "main.log") == 0 || strcmp(name, "main.jsonl") == 0) { return 1; }
    int digits = 0;
    const char* p;
    if (strncmp(name, "DONE_", 5) == 0) {
        for (p = name + 5; isdigit((unsigned char)*p); p++) { digits++; }
        return digits == 8 && *p == '\0';
    }
    if (strncmp(name, "model_", 6) == 0) {
        for (p = name + 6; isdigit((unsigned char)*p); p++) { digits++; }
        // .peft: a parameter-efficient fine-tuning run's checkpoint holds its adapter file instead
        return digits == 8 && (strcmp(p, ".bin") == 0 || strcmp(p, "_bf16.bin") == 0 || strcmp(p, ".peft") == 0);
    }
    if (strncmp(name, "state_", 6) == 0) {
        for (p = name + 6; isdigit((unsigned char)*p); p++) { digits++; }
        if (digits != 8 || *p != '_') { return 0; }
        digits = 0;
        for (p = p + 1; isdigit((unsigned char)*p); p++) { digits++; }
        return digits == 5 && strcmp(p, ".bin") == 0;
    }
    return 0;
}

// 1 if name is "<run file>.tmp.<digits>": what an interrupted atomic write of ours leaves.
static int run_dir_is_own_temp(const char* name) {
    const char* t = strstr(name, ".tmp.");
    if (t == NULL || t[5] == '\0') { return 0; }
    for (const char* p = t + 5; *p; p++) { if (!isdigit((unsigned char)*p)) { return 0; } }
    char base[256];
    size_t n = (size_t)(t - name);
    if (n >= sizeof(base)) { return 0; }
    memcpy(base, name, n);
    base[n] = '\0';
    return run_dir_is_run_file(base);
}

// How many run files dir holds (0: no run there, or no such directory).
static int run_dir_count_run_files(const char* dir) {
    DIR* d = opendir(dir);
    if (d == NULL) { return 0; }
    int n = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) { n += run_dir_is_run_file(e->d_name); }
    closedir(d);
    return n;
}

// Deletes the run files (and our leftovers) in dir, DONE markers first so that no checkpoint
// ever looks complete while its files are going. For --overwrite.
static void run_dir_clear(const char* dir) {
    char path[LLMC_PATH_MAX + 300];
    for (int pass = 0; pass < 2; pass++) {
        DIR* d = opendir(dir);
        if (d == NULL) { return; }
        struct dirent* e;
        while ((e = readdir(d)) != NULL) {
            int is_done = strncmp(e->d_name, "DONE_", 5) == 0;
            if ((pass == 0) != is_done) { continue; }
            if (!run_dir_is_run_file(e->d_name) && !run_dir_is_own_temp(e->d_name)) { continue; }
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (unlink(path) != 0) { die("--overwrite: cannot delete %s: %s", path, strerror(errno)); }
        }
        closedir(d);
        fsync_dir_of(path);
    }
}

// Removes the leftovers of our interrupted writes in dir (see run_dir_is_own_temp).
static void remove_stale_temp_files(const char* dir) {
    DIR* d = opendir(dir);
    if (d == NULL) { return; }
    struct dirent* e;
    char path[LLMC_PATH_MAX + 300];
    while ((e = readdir(d)) != NULL) {
        if (run_dir_is_own_temp(e->d_name)) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (unlink(path) == 0) { printf("removed %s, left by an interrupted write\n", path); }
        }
    }
    closedir(d);
}

#endif // LLMC_RUN_DIR_H

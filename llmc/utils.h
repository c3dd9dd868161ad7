// Checked I/O, allocation and error helpers shared by every program.
//
// Two styles of error handling live here, on purpose:
// - file *readers* (checkpoint, shards, tokenizer) return -1 and write a message into a
//   caller's buffer, so tests and fuzzers can call them on bad input without the process
//   exiting;
// - everything else (allocation, writing our own outputs) calls die(), because there is
//   nothing sensible a training run can do when malloc fails or the disk is full.
#ifndef LLMC_UTILS_H
#define LLMC_UTILS_H

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdarg.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <libgen.h>
#include <sys/stat.h>
#include <signal.h>
#include <time.h>

#define LLMC_ERRLEN 512

// prints "error: ..." and exits non-zero
static inline void die(const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, args);
    fprintf(stderr, "\n");
    va_end(args);
    exit(EXIT_FAILURE);
}

// fills err (if given) and returns -1, so readers can write `return set_err(err, ...)`
static inline int set_err(char* err, const char* fmt, ...) {
    if (err != NULL) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(err, LLMC_ERRLEN, fmt, args);
        va_end(args);
    }
    return -1;
}

static inline void* malloc_check(size_t size, const char* what) {
    void* p = malloc(size > 0 ? size : 1);
    if (p == NULL) { die("out of memory allocating %zu bytes for %s", size, what); }
    return p;
}

static inline void* calloc_check(size_t count, size_t size, const char* what) {
    void* p = calloc(count > 0 ? count : 1, size > 0 ? size : 1);
    if (p == NULL) { die("out of memory allocating %zu x %zu bytes for %s", count, size, what); }
    return p;
}

// 64-byte aligned, zeroed: the matmul and AdamW loops like aligned rows
static inline float* float_alloc_check(size_t count, const char* what) {
    void* p = NULL;
    size_t bytes = (count > 0 ? count : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes) != 0) { die("out of memory allocating %zu floats for %s", count, what); }
    memset(p, 0, bytes);
    return (float*)p;
}

static inline FILE* fopen_check(const char* path, const char* mode) {
    FILE* f = fopen(path, mode);
    if (f == NULL) { die("cannot open %s (mode %s): %s", path, mode, strerror(errno)); }
    return f;
}

static inline void fwrite_check(const void* ptr, size_t size, size_t count, FILE* f, const char* path) {
    if (count > 0 && fwrite(ptr, size, count, f) != count) {
        die("write to %s failed: %s", path, strerror(errno));
    }
}

// reads exactly count items or reports a truncated file; returns 0 or -1
static inline int fread_exact(void* ptr, size_t size, size_t count, FILE* f, const char* path, char* err) {
    if (count == 0) { return 0; }
    size_t got = fread(ptr, size, count, f);
    if (got != count) {
        if (ferror(f)) { return set_err(err, "%s: read error: %s", path, strerror(errno)); }
        return set_err(err, "%s: file is truncated (wanted %zu items of %zu bytes, got %zu)", path, count, size, got);
    }
    return 0;
}

static inline long file_size_of(FILE* f) {
    long here = ftell(f);
    if (fseek(f, 0, SEEK_END) != 0) { return -1; }
    long size = ftell(f);
    if (fseek(f, here, SEEK_SET) != 0) { return -1; }
    return size;
}

static inline double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// 42s, 3m07s, 2h15m
static inline void format_duration(char* buf, size_t n, double seconds) {
    long s = (long)(seconds + 0.5);
    if (s >= 3600) { snprintf(buf, n, "%ldh%02ldm", s / 3600, (s % 3600) / 60); }
    else if (s >= 60) { snprintf(buf, n, "%ldm%02lds", s / 60, s % 60); }
    else { snprintf(buf, n, "%lds", s); }
}

// ----------------------------------------------------------------------------
// Atomic file writing: write to "<path>.tmp.<pid>", fsync, rename over <path>, fsync the
// directory. A crash at any point leaves either the old file or the new one, never half of it.

typedef struct {
    FILE* f;
    char path[1024];
    char tmp_path[1100];
} AtomicFile;

static inline void atomic_open(AtomicFile* af, const char* path) {
    if (strlen(path) >= sizeof(af->path)) { die("path too long: %s", path); }
    strcpy(af->path, path);
    snprintf(af->tmp_path, sizeof(af->tmp_path), "%s.tmp.%d", af->path, (int)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (af->f == NULL) { die("cannot create %s: %s", af->tmp_path, strerror(errno)); }
}

static inline void fsync_dir_of(const char* path) {
    char buf[1100];
    snprintf(buf, sizeof(buf), "%s", path);
    const char* dir = dirname(buf);
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }  // best effort: some filesystems refuse fsync on dirs
}

static inline void atomic_commit(AtomicFile* af) {
    // For the crash tests only: LLMC_TEST_KILL_IN_WRITE=<text> kills the process (SIGKILL, as
    // kill -9 would) when a file whose path contains <text> is written but not yet renamed.
    const char* kill_on = getenv("LLMC_TEST_KILL_IN_WRITE");
    if (kill_on != NULL && kill_on[0] != '\0' && strstr(af->path, kill_on) != NULL) {
        fflush(af->f);
        kill(getpid(), SIGKILL);
    }
    if (fflush(af->f) != 0) { die("write to %s failed: %s", af->tmp_path, strerror(errno)); }
    if (fsync(fileno(af->f)) != 0) { die("fsync of %s failed: %s", af->tmp_path, strerror(errno)); }
    if (fclose(af->f) != 0) { die("close of %s failed: %s", af->tmp_path, strerror(errno)); }
    af->f = NULL;
    if (rename(af->tmp_path, af->path) != 0) {
        die("rename %s -> %s failed: %s", af->tmp_path, af->path, strerror(errno));
    }
    fsync_dir_of(af->path);
}

static inline void atomic_write(AtomicFile* af, const void* ptr, size_t size, size_t count) {
    fwrite_check(ptr, size, count, af->f, af->tmp_path);
}

// mkdir -p for one level, fine if it exists
static inline void ensure_dir(const char* dir) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) { die("%s exists and is not a directory", dir); }
        return;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) { die("cannot create directory %s: %s", dir, strerror(errno)); }
}

#endif // LLMC_UTILS_H

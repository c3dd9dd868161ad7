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
// Input files. A FIFO, a device or a directory given where a file is expected would block
// forever or fail in a confusing way (a directory "opens" and reads as size 2^63), so every
// reader checks first that the path names a regular file (symlinks are followed).
// Returns 0, or -1 with err naming the file and what it is instead.
static inline const char* file_kind_name(mode_t mode) {
    if (S_ISDIR(mode)) { return "a directory"; }
    if (S_ISFIFO(mode)) { return "a FIFO (named pipe)"; }
    if (S_ISCHR(mode)) { return "a character device"; }
    if (S_ISBLK(mode)) { return "a block device"; }
    if (S_ISSOCK(mode)) { return "a socket"; }
    return "not a regular file";
}

static inline int check_regular_file(const char* path, char* err) {
    struct stat st;
    if (stat(path, &st) != 0) { return set_err(err, "%s: cannot open: %s", path, strerror(errno)); }
    if (!S_ISREG(st.st_mode)) {
        return set_err(err, "%s: is %s, expected a regular file", path, file_kind_name(st.st_mode));
    }
    return 0;
}

// fopen for reading, regular files only; NULL with err set otherwise
static inline FILE* fopen_regular(const char* path, char* err) {
    if (check_regular_file(path, err) != 0) { return NULL; }
    FILE* f = fopen(path, "rb");
    if (f == NULL) { set_err(err, "%s: cannot open: %s", path, strerror(errno)); }
    return f;
}

// 1 if a and b name the same existing file (same device and inode, whatever the spelling:
// links, "./x" and "x", hard links), 0 otherwise (also when either does not exist).
static inline int same_file(const char* a, const char* b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) { return 0; }
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// A 64-bit hash of a byte stream, 8 bytes at a time (several GB/s), for the integrity
// records of checkpoints. Not cryptographic: it catches corruption and careless edits.
typedef struct {
    uint64_t h;
    uint64_t total;     // bytes hashed
    uint8_t tail[8];    // bytes not yet forming a whole word
    int ntail;
} Hash64;

static inline void hash64_init(Hash64* hs) { memset(hs, 0, sizeof(*hs)); hs->h = 0x9e3779b97f4a7c15ull; }

static inline uint64_t hash64_mix(uint64_t h, uint64_t w) {
    h ^= w * 0xff51afd7ed558ccdull;
    h = (h << 31) | (h >> 33);
    return h * 0xc4ceb9fe1a85ec53ull + 0x165667b19e3779f9ull;
}

static inline void hash64_update(Hash64* hs, const void* data, size_t n) {
    const uint8_t* p = (const uint8_t*)data;
    hs->total += n;
    while (n > 0 && hs->ntail > 0 && hs->ntail < 8) { hs->tail[hs->ntail++] = *p++; n--; }
    if (hs->ntail == 8) {
        uint64_t w; memcpy(&w, hs->tail, 8);
        hs->h = hash64_mix(hs->h, w);
        hs->ntail = 0;
    }
    uint64_t h = hs->h;
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); h = hash64_mix(h, w); p += 8; n -= 8; }
    hs->h = h;
    while (n > 0) { hs->tail[hs->ntail++] = *p++; n--; }
}

static inline uint64_t hash64_final(const Hash64* hs) {
    uint64_t h = hs->h;
    if (hs->ntail > 0) {
        uint8_t last[8] = {0};
        memcpy(last, hs->tail, hs->ntail);
        uint64_t w; memcpy(&w, last, 8);
        h = hash64_mix(h, w);
    }
    return hash64_mix(h, hs->total);
}

// Hash of a whole file; 0 with *out set, or -1 with err.
static inline int hash64_file(const char* path, uint64_t* out, char* err) {
    FILE* f = fopen_regular(path, err);
    if (f == NULL) { return -1; }
    Hash64 hs;
    hash64_init(&hs);
    static const size_t bufsize = 1 << 20;
    uint8_t* buf = (uint8_t*)malloc(bufsize);
    if (buf == NULL) { fclose(f); return set_err(err, "%s: out of memory hashing it", path); }
    size_t got;
    while ((got = fread(buf, 1, bufsize, f)) > 0) { hash64_update(&hs, buf, got); }
    int bad = ferror(f);
    free(buf);
    fclose(f);
    if (bad) { return set_err(err, "%s: read error while verifying it", path); }
    *out = hash64_final(&hs);
    return 0;
}

// ----------------------------------------------------------------------------
// Atomic file writing: write to "<target>.tmp.<pid>", fsync, rename over <target>, fsync the
// directory. A crash at any point leaves either the old file or the new one, never half of it.
// <target> is the path with its symlinks resolved: writing through a link replaces the file it
// points to, never the link. A path that names something other than a regular file (a device
// such as /dev/full, a FIFO, a directory) is refused: renaming over it would replace it.

#define LLMC_PATH_MAX 1024

typedef struct {
    FILE* f;
    char path[LLMC_PATH_MAX];       // the target, symlinks resolved
    char tmp_path[LLMC_PATH_MAX + 32];
    Hash64 hash;                    // of everything written, for integrity records
} AtomicFile;

// Resolves the symlinks of path's last component (following a chain; dangling links are fine:
// the target is created). 0 with out set, or -1 with err.
static inline int resolve_output_path(const char* path, char* out, size_t n, char* err) {
    if (strlen(path) >= n) { return set_err(err, "%s: path too long (%zu characters, at most %zu)", path, strlen(path), n - 1); }
    strcpy(out, path);
    for (int hops = 0; hops < 40; hops++) {
        struct stat st;
        if (lstat(out, &st) != 0) { return 0; }  // does not exist yet: created by the rename
        if (!S_ISLNK(st.st_mode)) {
            if (!S_ISREG(st.st_mode)) {
                return set_err(err, "%s: is %s; refusing to replace it with a regular file", path, file_kind_name(st.st_mode));
            }
            return 0;
        }
        char link[LLMC_PATH_MAX];
        ssize_t len = readlink(out, link, sizeof(link) - 1);
        if (len < 0 || (size_t)len >= sizeof(link) - 1) { return set_err(err, "%s: cannot read the symlink %s", path, out); }
        link[len] = '\0';
        char next[2 * LLMC_PATH_MAX];
        if (link[0] == '/') {
            snprintf(next, sizeof(next), "%s", link);
        } else {  // relative to the directory holding the link
            char dirbuf[LLMC_PATH_MAX];
            snprintf(dirbuf, sizeof(dirbuf), "%s", out);
            char* slash = strrchr(dirbuf, '/');
            if (slash == NULL) { snprintf(next, sizeof(next), "%s", link); }
            else { slash[1] = '\0'; snprintf(next, sizeof(next), "%s%s", dirbuf, link); }
        }
        if (strlen(next) >= n) { return set_err(err, "%s: the symlink's target path is too long", path); }
        strcpy(out, next);
    }
    return set_err(err, "%s: too many levels of symbolic links", path);
}

// 0, or -1 with err: the checks atomic_open makes, for a tool to run on all its outputs
// before it starts any work.
static inline int check_output_path(const char* path, char* err) {
    char resolved[LLMC_PATH_MAX];
    return resolve_output_path(path, resolved, sizeof(resolved), err);
}

static inline void atomic_open(AtomicFile* af, const char* path) {
    char err[LLMC_ERRLEN];
    if (resolve_output_path(path, af->path, sizeof(af->path), err) != 0) { die("%s", err); }
    snprintf(af->tmp_path, sizeof(af->tmp_path), "%s.tmp.%d", af->path, (int)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (af->f == NULL) { die("cannot create %s: %s", af->tmp_path, strerror(errno)); }
    hash64_init(&af->hash);
}

static inline void fsync_dir_of(const char* path) {
    char buf[2 * LLMC_PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    const char* dir = dirname(buf);
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }  // best effort: some filesystems refuse fsync on dirs
}

// Gives up on an open atomic file: the temp file is removed, the target is untouched.
static inline void atomic_abort(AtomicFile* af) {
    if (af->f != NULL) { fclose(af->f); af->f = NULL; }
    unlink(af->tmp_path);
}

static inline void atomic_commit(AtomicFile* af) {
    // For the crash tests only: LLMC_TEST_KILL_IN_WRITE=<text> kills the process (SIGKILL, as
    // kill -9 would) when a file whose path contains <text> is written but not yet renamed.
    const char* kill_on = getenv("LLMC_TEST_KILL_IN_WRITE");
    if (kill_on != NULL && kill_on[0] != '\0' && strstr(af->path, kill_on) != NULL) {
        fflush(af->f);
        kill(getpid(), SIGKILL);
    }
    if (fflush(af->f) != 0) { int e = errno; atomic_abort(af); die("write to %s failed: %s", af->tmp_path, strerror(e)); }
    if (fsync(fileno(af->f)) != 0) { int e = errno; atomic_abort(af); die("fsync of %s failed: %s", af->tmp_path, strerror(e)); }
    if (fclose(af->f) != 0) { int e = errno; af->f = NULL; unlink(af->tmp_path); die("close of %s failed: %s", af->tmp_path, strerror(e)); }
    af->f = NULL;
    if (rename(af->tmp_path, af->path) != 0) {
        int e = errno;
        unlink(af->tmp_path);  // leave no leftover behind
        die("rename %s -> %s failed: %s", af->tmp_path, af->path, strerror(e));
    }
    fsync_dir_of(af->path);
}

static inline void atomic_write(AtomicFile* af, const void* ptr, size_t size, size_t count) {
    if (count > 0 && fwrite(ptr, size, count, af->f) != count) {
        int e = errno;
        atomic_abort(af);
        die("write to %s failed: %s", af->tmp_path, strerror(e));
    }
    hash64_update(&af->hash, ptr, size * count);
}

// Flushes stdout and dies if what was printed could not be written (stdout on a full disk):
// the progress of a run is its user's record of it.
static inline void flush_stdout_check(void) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int e = errno;
        fprintf(stderr, "error: writing to standard output failed: %s\n", strerror(e));
        exit(EXIT_FAILURE);
    }
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

// CPU emulation of CUDA (dev/cuda/emu): NCCL, what llmc/comm_nccl.h calls, across processes of
// one machine (one process per rank, started by mpirun or by the program's own rendezvous).
//
// - ncclGetUniqueId writes the name of a POSIX shared-memory object, unique on this machine.
// - ncclCommInitRank maps that object in every rank: a page of per-rank records (a barrier
//   counter, the collective the rank is in, its pid), then one slot of EMU_NCCL_SLOT_BYTES per
//   rank. The ranks meet at a barrier, after which the name is unlinked, so nothing is left in
//   /dev/shm even if a process dies later. An id serves one communicator, as in NCCL.
// - A collective goes round by round, as many rounds as it takes to pass any count through the
//   slots: each rank copies its share of the round into its slot, barrier, each rank computes
//   its output from all the slots, barrier.
// - Reductions combine the ranks in rank order, ((r0 op r1) op r2) ..., element by element, in
//   the element type (float sums in float, double in double, bfloat16 rounded to nearest even
//   after every step). So every rank gets bitwise the same result, and the result of an element
//   does not depend on how a buffer is split into calls or rounds: a bucketed all-reduce and a
//   whole one agree bitwise (the trainer's tests rely on that). Real NCCL promises neither.
// - A barrier that waits longer than EMU_NCCL_TIMEOUT seconds (default 120) stops the process
//   (emu_fail) naming the collective and the ranks it waited for: a dead peer is an error, not
//   a hang. It stops sooner (within half a second) when a rank it waits for stopped with such an
//   error or its process is gone. Ranks that call different collectives (kind, count, type, op,
//   root) stop with an error naming both calls (real NCCL would hang or mix the data up).
// - Every collective runs through emu_stream_run (cuda_runtime.h), in its stream's order: the
//   arguments are checked when it is called (ncclInvalidArgument, with a message on stderr);
//   what goes wrong while it runs stops the process through emu_fail.
// - With one rank there is no shared memory: every collective copies its send buffer to its
//   receive buffer (nothing when they are the same buffer).
// Limits: at most EMU_NCCL_MAX_RANKS ranks; no float16 reductions (there is no half type here;
// gathers and broadcasts of float16 are copies and work); groups run their collectives one by
// one in call order; no ncclSend/ncclRecv, no ncclCommSplit.
#ifndef EMU_NCCL_H
#define EMU_NCCL_H

#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <atomic>
#include <type_traits>
#include <cuda_runtime.h>
#include <cuda_bf16.h>

#define NCCL_UNIQUE_ID_BYTES 128

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7
} ncclResult_t;

typedef enum {
    ncclInt8 = 0, ncclChar = 0,
    ncclUint8 = 1,
    ncclInt32 = 2, ncclInt = 2,
    ncclUint32 = 3,
    ncclInt64 = 4,
    ncclUint64 = 5,
    ncclFloat16 = 6, ncclHalf = 6,
    ncclFloat32 = 7, ncclFloat = 7,
    ncclFloat64 = 8, ncclDouble = 8,
    ncclBfloat16 = 9
} ncclDataType_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;

typedef struct { char internal[NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;

#define EMU_NCCL_MAX_RANKS 64
#define EMU_NCCL_SLOT_BYTES ((size_t)4 << 20)   // one rank's share of a round
#define EMU_NCCL_HEADER_BYTES ((size_t)4096)    // the records, one page: the slots stay page-aligned
// The size does not depend on nranks, so a rank that disagrees about nranks cannot shrink the
// object under the others (ftruncate); only the slots in use take memory (tmpfs is sparse).
#define EMU_NCCL_MAP_BYTES (EMU_NCCL_HEADER_BYTES + EMU_NCCL_MAX_RANKS * EMU_NCCL_SLOT_BYTES)
#define EMU_NCCL_ID_PREFIX "/llmc-emu-nccl-"

// What a rank publishes about itself, written by that rank only (its own cache line). The
// mapping starts as zeros and nothing constructs these: the first rank to arrive could not
// construct them without racing the others, so zero must be a valid state for every field (a
// zeroed lock-free std::atomic is a zero). Every field is atomic because the others read it
// while it may change (the barrier, the diagnostics of a timeout).
struct alignas(64) EmuNcclRecord {
    std::atomic<uint64_t> barriers;  // barriers this rank has entered
    std::atomic<uint64_t> seq;       // the collective it is in: 1, 2, ... (0: none yet)
    std::atomic<uint64_t> count;     // that collective's arguments, compared across ranks
    std::atomic<int32_t> kind, type, op, root;
    std::atomic<uint64_t> pidns;     // its pid namespace (the inode of /proc/self/ns/pid; 0: unknown)
    std::atomic<int32_t> pid;        // 0 until the rank has joined
    std::atomic<int32_t> nranks;     // the communicator's size as this rank was told it
    std::atomic<int32_t> failed;     // 1: this rank stopped with an error (the others stop too)
};
struct EmuNcclHeader { EmuNcclRecord rank[EMU_NCCL_MAX_RANKS]; };
static_assert(sizeof(EmuNcclRecord) == 64, "one cache line a rank");
static_assert(sizeof(EmuNcclHeader) <= EMU_NCCL_HEADER_BYTES, "the records must fit the header page");
static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int32_t>::is_always_lock_free,
              "the records are shared between processes: only lock-free atomics work there");

struct EmuNcclComm {
    int nranks, rank;
    // several ranks only:
    unsigned char* map;              // EMU_NCCL_MAP_BYTES: EmuNcclHeader, then the slots
    uint64_t barriers;               // barriers this rank has entered (its record's copy)
    uint64_t collectives;            // collectives started on this communicator
    double timeout_s;
    bool pids_visible;               // the peers' pids are in this process's pid namespace
    char name[NCCL_UNIQUE_ID_BYTES]; // the shared-memory name until it is unlinked ("" after)
};
typedef EmuNcclComm* ncclComm_t;

// the kinds of call a record names
enum { EMU_NCCL_NONE = 0, EMU_NCCL_INIT = 1, EMU_NCCL_ALLREDUCE = 2, EMU_NCCL_REDUCESCATTER = 3,
       EMU_NCCL_ALLGATHER = 4, EMU_NCCL_BROADCAST = 5, EMU_NCCL_REDUCE = 6 };

// one collective as it is called (and published, and compared across ranks)
struct EmuNcclCall {
    int kind;
    uint64_t seq;
    size_t count;   // all-reduce, broadcast: count; reduce-scatter: recvcount; all-gather: sendcount
    int type, op, root;  // op -1 where there is none, root -1 except for broadcasts
};

static inline const char* ncclGetErrorString(ncclResult_t r) {
    switch (r) {
        case ncclSuccess: return "no error (emulated NCCL)";
        case ncclUnhandledCudaError: return "unhandled cuda error (emulated NCCL)";
        case ncclSystemError: return "unhandled system error (emulated NCCL)";
        case ncclInternalError: return "internal error (emulated NCCL)";
        case ncclInvalidArgument: return "invalid argument (emulated NCCL)";
        case ncclInvalidUsage: return "invalid usage (emulated NCCL)";
        case ncclRemoteError: return "remote process exited or there was a network error (emulated NCCL)";
        case ncclInProgress: return "NCCL operation in progress (emulated NCCL)";
    }
    return "unknown result code (emulated NCCL)";
}

static inline size_t emu_nccl_type_bytes(ncclDataType_t t) {
    switch (t) {
        case ncclInt8: case ncclUint8: return 1;
        case ncclFloat16: case ncclBfloat16: return 2;
        case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
        case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    }
    return 0;
}

static inline const char* emu_nccl_type_name(int t) {
    static const char* names[] = {"int8", "uint8", "int32", "uint32", "int64", "uint64", "float16", "float32",
                                  "float64", "bfloat16"};
    return t >= 0 && t <= 9 ? names[t] : "unknown type";
}
static inline const char* emu_nccl_op_name(int op) {
    static const char* names[] = {"sum", "prod", "max", "min", "avg"};
    return op >= 0 && op <= 4 ? names[op] : "unknown op";
}
static inline const char* emu_nccl_kind_name(int kind) {
    switch (kind) {
        case EMU_NCCL_INIT: return "ncclCommInitRank";
        case EMU_NCCL_ALLREDUCE: return "ncclAllReduce";
        case EMU_NCCL_REDUCESCATTER: return "ncclReduceScatter";
        case EMU_NCCL_ALLGATHER: return "ncclAllGather";
        case EMU_NCCL_BROADCAST: return "ncclBroadcast";
        case EMU_NCCL_REDUCE: return "ncclReduce";
    }
    return "no collective yet";
}

// "ncclAllReduce #3 (1000 float32, sum)", for the messages
static inline void emu_nccl_describe(char* buf, size_t n, int kind, uint64_t seq, uint64_t count, int type, int op,
                                     int root) {
    if (kind == EMU_NCCL_NONE || kind == EMU_NCCL_INIT) { snprintf(buf, n, "%s", emu_nccl_kind_name(kind)); return; }
    int k = snprintf(buf, n, "%s #%llu (%llu %s", emu_nccl_kind_name(kind), (unsigned long long)seq,
                     (unsigned long long)count, emu_nccl_type_name(type));
    if (k < 0 || (size_t)k >= n) { return; }
    if (op >= 0) { k += snprintf(buf + k, n - k, ", %s", emu_nccl_op_name(op)); }
    if (k < 0 || (size_t)k >= n) { return; }
    if (root >= 0) { k += snprintf(buf + k, n - k, ", root %d", root); }
    if (k < 0 || (size_t)k >= n) { return; }
    snprintf(buf + k, n - k, ")");
}

// an invalid argument, refused when the collective is called: the reason goes to stderr, since
// ncclGetErrorString can only say "invalid argument"
static inline ncclResult_t emu_nccl_refuse(ncclResult_t r, const char* call, const char* why) {
    fprintf(stderr, "emulated NCCL: %s: %s\n", call, why);
    return r;
}

static inline double emu_nccl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
    if (id == NULL) { return ncclInvalidArgument; }
    // the pid and the clock make it unique on this machine, the counter within one process
    static unsigned counter = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    memset(id->internal, 0, sizeof(id->internal));
    snprintf(id->internal, sizeof(id->internal), EMU_NCCL_ID_PREFIX "%ld-%lld%09ld-%u", (long)getpid(),
             (long long)ts.tv_sec, ts.tv_nsec, counter++);
    return ncclSuccess;
}

static inline EmuNcclHeader* emu_nccl_header(const EmuNcclComm* c) { return (EmuNcclHeader*)c->map; }
static inline unsigned char* emu_nccl_slot(const EmuNcclComm* c, int rank) {
    return c->map + EMU_NCCL_HEADER_BYTES + (size_t)rank * EMU_NCCL_SLOT_BYTES;
}

static inline void emu_nccl_unlink(EmuNcclComm* c) {
    if (c->name[0] != 0) {
        shm_unlink(c->name);  // ENOENT: another rank was first
        c->name[0] = 0;
    }
}

// Stops the process through emu_fail, first marking this rank as failed so that the others stop
// at once instead of waiting for it until their timeout.
static inline void emu_nccl_fail(EmuNcclComm* c, const char* msg) {
    emu_nccl_header(c)->rank[c->rank].failed.store(1, std::memory_order_release);
    emu_fail(msg);
}

// what became of rank q, for the messages and the early stop: 0 still running (as far as this
// process can tell), 1 never joined, 2 stopped with an error, 3 its process is gone
static inline int emu_nccl_peer_state(const EmuNcclComm* c, int q) {
    EmuNcclRecord* r = &emu_nccl_header(c)->rank[q];
    int pid = r->pid.load(std::memory_order_relaxed);
    if (pid == 0) { return 1; }
    if (r->failed.load(std::memory_order_acquire) != 0) { return 2; }
    // (an exited process that its parent has not reaped yet still exists: mpirun reaps at once)
    if (c->pids_visible && kill((pid_t)pid, 0) != 0 && errno == ESRCH) { return 3; }
    return 0;
}

// Stops the process: the barrier of `call` waited `waited` seconds for the ranks whose counter
// is below target. Names each of them, what it was last doing and what became of it.
static inline void emu_nccl_give_up(EmuNcclComm* c, const EmuNcclCall* call, uint64_t target, size_t round,
                                    size_t rounds, double waited, bool timed_out) {
    emu_nccl_unlink(c);  // stopped in ncclCommInitRank: the others may never come to unlink it
    EmuNcclHeader* h = emu_nccl_header(c);
    static const char* states[] = {"still running", "never joined", "stopped with an error", "no longer running"};
    char msg[4096], what[160];
    emu_nccl_describe(what, sizeof(what), call->kind, call->seq, call->count, call->type, call->op, call->root);
    int k = snprintf(msg, sizeof(msg), "emulated NCCL: rank %d of %d waited %.1f s in %s", c->rank, c->nranks,
                     waited, what);
    if (rounds > 1) { k += snprintf(msg + k, sizeof(msg) - k, " (round %zu of %zu)", round + 1, rounds); }
    k += snprintf(msg + k, sizeof(msg) - k, " for");
    for (int q = 0; q < c->nranks && (size_t)k < sizeof(msg) - 300; q++) {
        EmuNcclRecord* r = &h->rank[q];
        if (r->barriers.load(std::memory_order_acquire) >= target) { continue; }
        int state = emu_nccl_peer_state(c, q);
        if (state == 1) {
            k += snprintf(msg + k, sizeof(msg) - k, " rank %d (never joined);", q);
            continue;
        }
        char last[160];
        emu_nccl_describe(last, sizeof(last), r->kind.load(std::memory_order_relaxed),
                          r->seq.load(std::memory_order_relaxed), r->count.load(std::memory_order_relaxed),
                          r->type.load(std::memory_order_relaxed), r->op.load(std::memory_order_relaxed),
                          r->root.load(std::memory_order_relaxed));
        k += snprintf(msg + k, sizeof(msg) - k, " rank %d (pid %d, %s, last in %s);", q,
                      (int)r->pid.load(std::memory_order_relaxed), states[state], last);
    }
    if (timed_out) {
        snprintf(msg + k, sizeof(msg) - k, " a rank died, hangs, or calls the collectives in another order "
                 "(EMU_NCCL_TIMEOUT=%g s is the longest wait)", c->timeout_s);
    } else {
        snprintf(msg + k, sizeof(msg) - k, " a rank it waits for is gone, so the collective cannot complete");
    }
    emu_nccl_fail(c, msg);
}

// A barrier for the communicator's processes: rank r announces that it has entered its k-th
// barrier (its own counter, so zero memory is the start and no rank resets anything), then waits
// until every rank's counter reaches k. No rank can get two barriers ahead of another, so ">= k"
// is exact. The release store and acquire loads also order the slots: what a rank wrote before
// the barrier, the others read after it. Waits yield the CPU (there are often more ranks than
// cores) and, after a while, sleep a little: a peer that computes for seconds costs no CPU. A
// quarter of a second into a wait and then every quarter, the ranks still missing are looked at:
// one that failed or whose process is gone stops this one at once, the timeout stops it anyway.
static inline void emu_nccl_barrier(EmuNcclComm* c, const EmuNcclCall* call, size_t round, size_t rounds) {
    EmuNcclHeader* h = emu_nccl_header(c);
    uint64_t k = ++c->barriers;
    h->rank[c->rank].barriers.store(k, std::memory_order_release);
    double start = -1.0, look = 0.0;
    unsigned waits = 0;
    for (int q = 0; q < c->nranks;) {
        if (h->rank[q].barriers.load(std::memory_order_acquire) >= k) { q++; continue; }
        double now = emu_nccl_now();
        if (start < 0) { start = now; look = now + 0.25; }
        if (now - start > c->timeout_s) { emu_nccl_give_up(c, call, k, round, rounds, now - start, true); }
        if (now >= look) {
            look = now + 0.25;
            for (int p = 0; p < c->nranks; p++) {
                if (h->rank[p].barriers.load(std::memory_order_acquire) < k && emu_nccl_peer_state(c, p) >= 2) {
                    emu_nccl_give_up(c, call, k, round, rounds, now - start, false);
                }
            }
        }
        if (waits++ < 200) {
            sched_yield();
        } else {
            struct timespec ts = {0, 200000};  // 0.2 ms
            nanosleep(&ts, NULL);
        }
    }
}

// The ranks must call the same collective with the same arguments. Called between the first
// two barriers of a collective: no rank can start the next one (and overwrite its record) before
// every rank has passed the second barrier, so the records hold still while they are compared.
static inline void emu_nccl_check_same(EmuNcclComm* c, const EmuNcclCall* call) {
    EmuNcclHeader* h = emu_nccl_header(c);
    for (int q = 0; q < c->nranks; q++) {
        EmuNcclRecord* r = &h->rank[q];
        int kind = r->kind.load(std::memory_order_relaxed), type = r->type.load(std::memory_order_relaxed);
        int op = r->op.load(std::memory_order_relaxed), root = r->root.load(std::memory_order_relaxed);
        uint64_t seq = r->seq.load(std::memory_order_relaxed), count = r->count.load(std::memory_order_relaxed);
        if (kind == call->kind && seq == call->seq && count == call->count && type == call->type && op == call->op &&
            root == call->root) {
            continue;
        }
        char mine[160], theirs[160], msg[1024];
        emu_nccl_describe(mine, sizeof(mine), call->kind, call->seq, call->count, call->type, call->op, call->root);
        emu_nccl_describe(theirs, sizeof(theirs), kind, seq, count, type, op, root);
        snprintf(msg, sizeof(msg), "emulated NCCL: the ranks called different collectives: rank %d called %s, rank %d "
                 "called %s (every rank must call the same collectives, in the same order, with the same "
                 "counts, types, ops and root)", c->rank, mine, q, theirs);
        emu_nccl_fail(c, msg);
    }
}

// Starts a collective on this rank: numbers it and publishes it in the rank's record.
static inline void emu_nccl_begin(EmuNcclComm* c, EmuNcclCall* call) {
    call->seq = ++c->collectives;
    EmuNcclRecord* r = &emu_nccl_header(c)->rank[c->rank];
    r->seq.store(call->seq, std::memory_order_relaxed);
    r->count.store(call->count, std::memory_order_relaxed);
    r->kind.store(call->kind, std::memory_order_relaxed);
    r->type.store(call->type, std::memory_order_relaxed);
    r->op.store(call->op, std::memory_order_relaxed);
    r->root.store(call->root, std::memory_order_relaxed);
}

// the rounds a collective takes to pass count elements, per at most per elements a round; a
// count of 0 still takes one round, so that the ranks meet and compare their calls
static inline size_t emu_nccl_rounds(size_t count, size_t per) { return count == 0 ? 1 : (count + per - 1) / per; }

// ----------------------------------------------------------------------------
// the reductions, one element type at a time

// integer sums and products wrap (in the unsigned type: signed overflow is undefined in C++)
template <class T> static inline T emu_nccl_add(T a, T b) {
    if constexpr (std::is_integral<T>::value) {
        typedef typename std::make_unsigned<T>::type U;
        return (T)(U)((U)a + (U)b);
    } else {
        return a + b;
    }
}
template <class T> static inline T emu_nccl_mul(T a, T b) {
    if constexpr (std::is_integral<T>::value) {
        typedef typename std::make_unsigned<T>::type U;
        return (T)(U)((U)a * (U)b);
    } else {
        return a * b;
    }
}

// a op b, in T; max and min as the comparison gives (a NaN propagates only from a: still the
// same on every rank)
template <class T> static inline T emu_nccl_apply(ncclRedOp_t op, T a, T b) {
    switch (op) {
        case ncclSum: case ncclAvg: return emu_nccl_add(a, b);
        case ncclProd: return emu_nccl_mul(a, b);
        case ncclMax: return a < b ? b : a;
        case ncclMin: return b < a ? b : a;
    }
    return a;
}
// bfloat16: each step in float, rounded to bfloat16 (nearest even) before the next, so the
// chain is the same whatever holds the partial results
static inline __nv_bfloat16 emu_nccl_apply(ncclRedOp_t op, __nv_bfloat16 a, __nv_bfloat16 b) {
    return __nv_bfloat16(emu_nccl_apply(op, (float)a, (float)b));
}

// avg: the sum divided by the number of ranks (integers: truncated toward zero)
template <class T> static inline T emu_nccl_divide(T sum, int nranks) { return (T)(sum / (T)nranks); }
static inline __nv_bfloat16 emu_nccl_divide(__nv_bfloat16 sum, int nranks) {
    return __nv_bfloat16((float)sum / (float)nranks);
}

// out[i] = rank 0's op rank 1's op ... element i, of the n elements at element offset at of
// every slot. Element by element, in rank order: the order never depends on n or on the round.
template <class T> static inline void emu_nccl_reduce_t(const EmuNcclComm* c, ncclRedOp_t op, size_t at, size_t n,
                                                        T* out) {
    const T* s0 = (const T*)emu_nccl_slot(c, 0) + at;
    for (size_t i = 0; i < n; i++) { out[i] = s0[i]; }
    for (int q = 1; q < c->nranks; q++) {
        const T* s = (const T*)emu_nccl_slot(c, q) + at;
        for (size_t i = 0; i < n; i++) { out[i] = emu_nccl_apply(op, out[i], s[i]); }
    }
    if (op == ncclAvg) {
        for (size_t i = 0; i < n; i++) { out[i] = emu_nccl_divide(out[i], c->nranks); }
    }
}

static inline void emu_nccl_reduce(const EmuNcclComm* c, ncclDataType_t type, ncclRedOp_t op, size_t at, size_t n,
                                   void* out) {
    switch (type) {
        case ncclInt8: emu_nccl_reduce_t(c, op, at, n, (int8_t*)out); return;
        case ncclUint8: emu_nccl_reduce_t(c, op, at, n, (uint8_t*)out); return;
        case ncclInt32: emu_nccl_reduce_t(c, op, at, n, (int32_t*)out); return;
        case ncclUint32: emu_nccl_reduce_t(c, op, at, n, (uint32_t*)out); return;
        case ncclInt64: emu_nccl_reduce_t(c, op, at, n, (int64_t*)out); return;
        case ncclUint64: emu_nccl_reduce_t(c, op, at, n, (uint64_t*)out); return;
        case ncclFloat32: emu_nccl_reduce_t(c, op, at, n, (float*)out); return;
        case ncclFloat64: emu_nccl_reduce_t(c, op, at, n, (double*)out); return;
        case ncclBfloat16: emu_nccl_reduce_t(c, op, at, n, (__nv_bfloat16*)out); return;
        case ncclFloat16: break;
    }
    emu_fail("emulated NCCL: a reduction of a type the call should have refused (internal error)");
}

// ----------------------------------------------------------------------------
// the collectives as they run (in stream order), several ranks

// The rounds every collective goes through: put(off, n) copies this rank's part of the round
// (n elements from element off) into its slot, the ranks meet, take(off, n) computes this
// rank's output from the slots, and the ranks meet again, so nobody refills a slot another
// still reads. per: the elements a round moves.
template <class Put, class Take>
static inline void emu_nccl_run_rounds(EmuNcclComm* c, EmuNcclCall* call, size_t per, Put put, Take take) {
    size_t rounds = emu_nccl_rounds(call->count, per);
    emu_nccl_begin(c, call);
    for (size_t r = 0; r < rounds; r++) {
        size_t off = r * per, n = call->count - off < per ? call->count - off : per;
        put(off, n);
        emu_nccl_barrier(c, call, r, rounds);
        if (r == 0) { emu_nccl_check_same(c, call); }
        take(off, n);
        emu_nccl_barrier(c, call, r, rounds);
    }
}

static inline size_t emu_nccl_call_bytes(const EmuNcclCall* call) { return emu_nccl_type_bytes((ncclDataType_t)call->type); }

static inline void emu_nccl_allreduce_run(EmuNcclComm* c, EmuNcclCall call, const void* send, void* recv) {
    size_t b = emu_nccl_call_bytes(&call);
    emu_nccl_run_rounds(c, &call, EMU_NCCL_SLOT_BYTES / b,
        [&](size_t off, size_t n) { if (n > 0) { memcpy(emu_nccl_slot(c, c->rank), (const char*)send + off * b, n * b); } },
        // in place is fine: every rank's input is in the slots by now
        [&](size_t off, size_t n) { emu_nccl_reduce(c, (ncclDataType_t)call.type, (ncclRedOp_t)call.op, 0, n, (char*)recv + off * b); });
}

// rank d receives the reduction of elements [d*count, +count) of every rank's send buffer. A
// round moves per elements of each of the nranks parts: part d at element d*n of every slot.
static inline void emu_nccl_reducescatter_run(EmuNcclComm* c, EmuNcclCall call, const void* send, void* recv) {
    size_t b = emu_nccl_call_bytes(&call);
    emu_nccl_run_rounds(c, &call, EMU_NCCL_SLOT_BYTES / b / (size_t)c->nranks,
        [&](size_t off, size_t n) {
            for (int d = 0; d < c->nranks && n > 0; d++) {
                memcpy(emu_nccl_slot(c, c->rank) + (size_t)d * n * b, (const char*)send + ((size_t)d * call.count + off) * b,
                       n * b);
            }
        },
        // in place (recv = send + rank*count): this round's part is in the slot already, and
        // later rounds read only later elements
        [&](size_t off, size_t n) {
            emu_nccl_reduce(c, (ncclDataType_t)call.type, (ncclRedOp_t)call.op, (size_t)c->rank * n, n, (char*)recv + off * b);
        });
}

// recv holds every rank's count elements in rank order
static inline void emu_nccl_allgather_run(EmuNcclComm* c, EmuNcclCall call, const void* send, void* recv) {
    size_t b = emu_nccl_call_bytes(&call);
    emu_nccl_run_rounds(c, &call, EMU_NCCL_SLOT_BYTES / b,
        [&](size_t off, size_t n) { if (n > 0) { memcpy(emu_nccl_slot(c, c->rank), (const char*)send + off * b, n * b); } },
        // in place (send = recv + rank*count): my own part gets the values it has
        [&](size_t off, size_t n) {
            for (int q = 0; q < c->nranks && n > 0; q++) {
                memcpy((char*)recv + ((size_t)q * call.count + off) * b, emu_nccl_slot(c, q), n * b);
            }
        });
}

static inline void emu_nccl_broadcast_run(EmuNcclComm* c, EmuNcclCall call, const void* send, void* recv) {
    size_t b = emu_nccl_call_bytes(&call);
    emu_nccl_run_rounds(c, &call, EMU_NCCL_SLOT_BYTES / b,
        [&](size_t off, size_t n) {
            if (c->rank == call.root && n > 0) { memcpy(emu_nccl_slot(c, c->rank), (const char*)send + off * b, n * b); }
        },
        [&](size_t off, size_t n) {
            if (n > 0 && !(c->rank == call.root && send == recv)) {
                memcpy((char*)recv + off * b, emu_nccl_slot(c, call.root), n * b);
            }
        });
}

// the all-reduce's chain, written on the root only: the same bits the all-reduce and the
// reduce-scatter give for the same element
static inline void emu_nccl_reduce_run(EmuNcclComm* c, EmuNcclCall call, const void* send, void* recv) {
    size_t b = emu_nccl_call_bytes(&call);
    emu_nccl_run_rounds(c, &call, EMU_NCCL_SLOT_BYTES / b,
        [&](size_t off, size_t n) { if (n > 0) { memcpy(emu_nccl_slot(c, c->rank), (const char*)send + off * b, n * b); } },
        [&](size_t off, size_t n) {
            if (c->rank == call.root) {
                emu_nccl_reduce(c, (ncclDataType_t)call.type, (ncclRedOp_t)call.op, 0, n, (char*)recv + off * b);
            }
        });
}

// ----------------------------------------------------------------------------
// the API

static inline ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
    if (comm == NULL || nranks < 1 || rank < 0 || rank >= nranks) { return ncclInvalidArgument; }
    if (nranks > EMU_NCCL_MAX_RANKS) {
        char why[128];
        snprintf(why, sizeof(why), "%d ranks: the emulation has room for at most %d", nranks, EMU_NCCL_MAX_RANKS);
        return emu_nccl_refuse(ncclInvalidArgument, "ncclCommInitRank", why);
    }
    if (nranks == 1) {  // no peers: no shared memory, the collectives copy
        *comm = (ncclComm_t)calloc(1, sizeof(EmuNcclComm));
        if (*comm == NULL) { return ncclSystemError; }
        (*comm)->nranks = nranks;
        (*comm)->rank = rank;
        return ncclSuccess;
    }
    if (memchr(id.internal, 0, sizeof(id.internal)) == NULL ||
        strncmp(id.internal, EMU_NCCL_ID_PREFIX, strlen(EMU_NCCL_ID_PREFIX)) != 0) {
        return emu_nccl_refuse(ncclInvalidArgument, "ncclCommInitRank",
                               "the id was not made by this emulation's ncclGetUniqueId (or did not reach this rank "
                               "intact)");
    }
    double timeout_s = 120.0;
    const char* env = getenv("EMU_NCCL_TIMEOUT");
    if (env != NULL && env[0] != 0) {
        char* end = NULL;
        timeout_s = strtod(env, &end);
        if (end == env || *end != 0 || !(timeout_s > 0.0) || timeout_s > 1e9) {
            char why[256];
            snprintf(why, sizeof(why), "EMU_NCCL_TIMEOUT=%.100s: give the barrier timeout in seconds, a number > 0", env);
            return emu_nccl_refuse(ncclInvalidUsage, "ncclCommInitRank", why);
        }
    }
    char why[512];
    int fd = shm_open(id.internal, O_CREAT | O_RDWR, 0600);
    if (fd < 0) {
        snprintf(why, sizeof(why), "shm_open(%s): %s", id.internal, strerror(errno));
        return emu_nccl_refuse(ncclSystemError, "ncclCommInitRank", why);
    }
    // every rank sets the same size: whoever comes first, the object ends up this size
    if (ftruncate(fd, (off_t)EMU_NCCL_MAP_BYTES) != 0) {
        snprintf(why, sizeof(why), "ftruncate(%s, %zu): %s", id.internal, (size_t)EMU_NCCL_MAP_BYTES, strerror(errno));
        close(fd);
        shm_unlink(id.internal);  // the others time out (this rank never joins), leaving nothing behind
        return emu_nccl_refuse(ncclSystemError, "ncclCommInitRank", why);
    }
    // Reserve the header and this rank's slot now, so that a /dev/shm too small is an error here
    // and not a SIGBUS in the middle of a collective (tmpfs allocates pages when first touched).
    // fallocate leaves data already there alone; where the file system has none, go without.
    if (fallocate(fd, 0, 0, (off_t)EMU_NCCL_HEADER_BYTES) != 0 ||
        fallocate(fd, 0, (off_t)(EMU_NCCL_HEADER_BYTES + (size_t)rank * EMU_NCCL_SLOT_BYTES), (off_t)EMU_NCCL_SLOT_BYTES) != 0) {
        if (errno != EOPNOTSUPP && errno != ENOSYS) {
            snprintf(why, sizeof(why), "no room in the shared memory (/dev/shm) for rank %d's %zu MiB (fallocate: %s)",
                     rank, (size_t)(EMU_NCCL_SLOT_BYTES >> 20), strerror(errno));
            close(fd);
            shm_unlink(id.internal);
            return emu_nccl_refuse(ncclSystemError, "ncclCommInitRank", why);
        }
    }
    void* map = mmap(NULL, EMU_NCCL_MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int map_errno = errno;
    close(fd);  // the mapping keeps the object
    if (map == MAP_FAILED) {
        snprintf(why, sizeof(why), "mmap of %s (%zu bytes): %s", id.internal, (size_t)EMU_NCCL_MAP_BYTES,
                 strerror(map_errno));
        shm_unlink(id.internal);
        return emu_nccl_refuse(ncclSystemError, "ncclCommInitRank", why);
    }
    EmuNcclComm* c = (EmuNcclComm*)calloc(1, sizeof(EmuNcclComm));
    if (c == NULL) { munmap(map, EMU_NCCL_MAP_BYTES); return ncclSystemError; }
    c->nranks = nranks;
    c->rank = rank;
    c->map = (unsigned char*)map;
    c->timeout_s = timeout_s;
    memcpy(c->name, id.internal, sizeof(c->name));
    EmuNcclRecord* me = &emu_nccl_header(c)->rank[rank];
    int32_t none = 0;
    if (!me->pid.compare_exchange_strong(none, (int32_t)getpid())) {
        snprintf(why, sizeof(why), "rank %d has joined already (pid %d): each process must pass its own rank", rank,
                 (int)none);
        munmap(map, EMU_NCCL_MAP_BYTES);
        free(c);
        return emu_nccl_refuse(ncclInvalidUsage, "ncclCommInitRank", why);
    }
    me->nranks.store(nranks, std::memory_order_relaxed);
    struct stat ns_st;
    me->pidns.store(stat("/proc/self/ns/pid", &ns_st) == 0 ? (uint64_t)ns_st.st_ino : 0, std::memory_order_relaxed);
    me->kind.store(EMU_NCCL_INIT, std::memory_order_relaxed);
    EmuNcclCall call = {EMU_NCCL_INIT, 0, 0, -1, -1, -1};
    emu_nccl_barrier(c, &call, 0, 1);
    // every rank has mapped the object: its name can go (the first rank to get here removes it)
    emu_nccl_unlink(c);
    for (int q = 0; q < nranks; q++) {
        int theirs = emu_nccl_header(c)->rank[q].nranks.load(std::memory_order_relaxed);
        if (theirs != nranks) {
            snprintf(why, sizeof(why), "emulated NCCL: ncclCommInitRank: rank %d was told %d ranks, rank %d was told %d",
                     rank, nranks, q, theirs);
            emu_nccl_fail(c, why);
        }
    }
    // A pid means something here only if the peer lives in this process's pid namespace;
    // otherwise "no such process" would not say that it died (then only the timeout stops a wait).
    uint64_t ns = me->pidns.load(std::memory_order_relaxed);
    c->pids_visible = ns != 0;
    for (int q = 0; q < nranks; q++) {
        if (emu_nccl_header(c)->rank[q].pidns.load(std::memory_order_relaxed) != ns) { c->pids_visible = false; }
    }
    *comm = c;
    return ncclSuccess;
}

// Not a collective (as in NCCL): every collective ends with a barrier after which no rank reads
// another's slot, so a rank may unmap and leave. Work still queued on a stream is run first, as
// it would finish on a GPU: a collective left behind would keep the other ranks waiting.
static inline ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (comm == NULL) { return ncclSuccess; }
    if (comm->nranks > 1) {
        cudaDeviceSynchronize();
        emu_nccl_unlink(comm);
        munmap(comm->map, EMU_NCCL_MAP_BYTES);
    }
    free(comm);
    return ncclSuccess;
}
static inline ncclResult_t ncclCommCount(ncclComm_t comm, int* n) { if (comm == NULL || n == NULL) { return ncclInvalidArgument; } *n = comm->nranks; return ncclSuccess; }
static inline ncclResult_t ncclCommUserRank(ncclComm_t comm, int* r) { if (comm == NULL || r == NULL) { return ncclInvalidArgument; } *r = comm->rank; return ncclSuccess; }
// Every rank calls the collectives of a group in the same order, so running each one as it is
// called (no fusion) gives the same results.
static inline ncclResult_t ncclGroupStart(void) { return ncclSuccess; }
static inline ncclResult_t ncclGroupEnd(void) { return ncclSuccess; }

static inline bool emu_nccl_overlap(const void* a, size_t an, const void* b, size_t bn) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return an > 0 && bn > 0 && x < y + bn && y < x + an;
}

// The checks every collective makes when it is called. send_bytes/recv_bytes: the extent of the
// two buffers on this rank; in_place_send: the one place where send may overlap recv (NCCL's
// in-place layout); need_send/need_recv: whether this rank uses the buffer (broadcast reads send
// on the root only, reduce writes recv on the root only).
static inline ncclResult_t emu_nccl_check_call(const char* name, ncclComm_t comm, ncclDataType_t type, int op,
                                               const void* send, size_t send_bytes, const void* recv, size_t recv_bytes,
                                               const void* in_place_send, bool need_send, bool need_recv) {
    char why[200];
    if (comm == NULL) { return emu_nccl_refuse(ncclInvalidArgument, name, "the communicator is NULL"); }
    if (emu_nccl_type_bytes(type) == 0) {
        snprintf(why, sizeof(why), "unknown data type %d", (int)type);
        return emu_nccl_refuse(ncclInvalidArgument, name, why);
    }
    if (op != -1 && (op < ncclSum || op > ncclAvg)) {
        snprintf(why, sizeof(why), "unknown reduction op %d", op);
        return emu_nccl_refuse(ncclInvalidArgument, name, why);
    }
    if (op != -1 && type == ncclFloat16 && comm->nranks > 1) {
        return emu_nccl_refuse(ncclInvalidArgument, name, "float16 reductions are not emulated (no half type here)");
    }
    if ((need_send && send_bytes > 0 && send == NULL) || (need_recv && recv_bytes > 0 && recv == NULL)) {
        return emu_nccl_refuse(ncclInvalidArgument, name, "a NULL buffer");
    }
    if (need_send && need_recv && send != in_place_send && emu_nccl_overlap(send, send_bytes, recv, recv_bytes)) {
        return emu_nccl_refuse(ncclInvalidArgument, name,
                               "the send and receive buffers overlap, and not in the in-place layout NCCL allows");
    }
    return ncclSuccess;
}

static inline ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                                         ncclComm_t comm, cudaStream_t stream) {
    size_t bytes = count * emu_nccl_type_bytes(type);
    ncclResult_t rc = emu_nccl_check_call("ncclAllReduce", comm, type, (int)op, send, bytes, recv, bytes, recv, true, true);
    if (rc != ncclSuccess) { return rc; }
    if (comm->nranks == 1) {  // sum, prod, max, min or avg of one value: the value
        emu_stream_run(stream, [=]() { if (bytes > 0 && send != recv) { memmove(recv, send, bytes); } });
        return ncclSuccess;
    }
    EmuNcclCall call = {EMU_NCCL_ALLREDUCE, 0, count, (int)type, (int)op, -1};
    emu_stream_run(stream, [=]() { emu_nccl_allreduce_run(comm, call, send, recv); });
    return ncclSuccess;
}

// send holds nranks*recvcount elements; in place: recv = send + rank*recvcount
static inline ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recvcount, ncclDataType_t type,
                                             ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
    if (comm == NULL) { return emu_nccl_refuse(ncclInvalidArgument, "ncclReduceScatter", "the communicator is NULL"); }
    size_t bytes = recvcount * emu_nccl_type_bytes(type);
    // (as an address: recv - rank*bytes need not point into recv's own allocation)
    const void* in_place = (const void*)((uintptr_t)recv - (uintptr_t)comm->rank * bytes);
    ncclResult_t rc = emu_nccl_check_call("ncclReduceScatter", comm, type, (int)op, send, bytes * comm->nranks, recv,
                                          bytes, in_place, true, true);
    if (rc != ncclSuccess) { return rc; }
    if (comm->nranks == 1) {  // rank 0's share is the first recvcount elements (all of them)
        emu_stream_run(stream, [=]() { if (bytes > 0 && send != recv) { memmove(recv, send, bytes); } });
        return ncclSuccess;
    }
    EmuNcclCall call = {EMU_NCCL_REDUCESCATTER, 0, recvcount, (int)type, (int)op, -1};
    emu_stream_run(stream, [=]() { emu_nccl_reducescatter_run(comm, call, send, recv); });
    return ncclSuccess;
}

// recv holds nranks*sendcount elements; in place: send = recv + rank*sendcount
static inline ncclResult_t ncclAllGather(const void* send, void* recv, size_t sendcount, ncclDataType_t type,
                                         ncclComm_t comm, cudaStream_t stream) {
    if (comm == NULL) { return emu_nccl_refuse(ncclInvalidArgument, "ncclAllGather", "the communicator is NULL"); }
    size_t bytes = sendcount * emu_nccl_type_bytes(type);
    const void* in_place = (const char*)recv + (size_t)comm->rank * bytes;
    ncclResult_t rc = emu_nccl_check_call("ncclAllGather", comm, type, -1, send, bytes, recv, bytes * comm->nranks,
                                          in_place, true, true);
    if (rc != ncclSuccess) { return rc; }
    if (comm->nranks == 1) {
        emu_stream_run(stream, [=]() { if (bytes > 0 && send != recv) { memmove(recv, send, bytes); } });
        return ncclSuccess;
    }
    EmuNcclCall call = {EMU_NCCL_ALLGATHER, 0, sendcount, (int)type, -1, -1};
    emu_stream_run(stream, [=]() { emu_nccl_allgather_run(comm, call, send, recv); });
    return ncclSuccess;
}

// send is read on the root only
static inline ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root,
                                         ncclComm_t comm, cudaStream_t stream) {
    if (comm == NULL) { return emu_nccl_refuse(ncclInvalidArgument, "ncclBroadcast", "the communicator is NULL"); }
    if (root < 0 || root >= comm->nranks) {
        char why[96];
        snprintf(why, sizeof(why), "root %d of %d ranks", root, comm->nranks);
        return emu_nccl_refuse(ncclInvalidArgument, "ncclBroadcast", why);
    }
    size_t bytes = count * emu_nccl_type_bytes(type);
    ncclResult_t rc = emu_nccl_check_call("ncclBroadcast", comm, type, -1, send, bytes, recv, bytes, recv,
                                          comm->rank == root, true);
    if (rc != ncclSuccess) { return rc; }
    if (comm->nranks == 1) {
        emu_stream_run(stream, [=]() { if (bytes > 0 && send != recv) { memmove(recv, send, bytes); } });
        return ncclSuccess;
    }
    EmuNcclCall call = {EMU_NCCL_BROADCAST, 0, count, (int)type, -1, root};
    emu_stream_run(stream, [=]() { emu_nccl_broadcast_run(comm, call, send, recv); });
    return ncclSuccess;
}

// the reduction of every rank's send buffer into recv on the root (recv is not used elsewhere)
static inline ncclResult_t ncclReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                                      int root, ncclComm_t comm, cudaStream_t stream) {
    if (comm == NULL) { return emu_nccl_refuse(ncclInvalidArgument, "ncclReduce", "the communicator is NULL"); }
    if (root < 0 || root >= comm->nranks) {
        char why[96];
        snprintf(why, sizeof(why), "root %d of %d ranks", root, comm->nranks);
        return emu_nccl_refuse(ncclInvalidArgument, "ncclReduce", why);
    }
    size_t bytes = count * emu_nccl_type_bytes(type);
    ncclResult_t rc = emu_nccl_check_call("ncclReduce", comm, type, (int)op, send, bytes, recv, bytes, recv, true,
                                          comm->rank == root);
    if (rc != ncclSuccess) { return rc; }
    if (comm->nranks == 1) {
        emu_stream_run(stream, [=]() { if (bytes > 0 && send != recv) { memmove(recv, send, bytes); } });
        return ncclSuccess;
    }
    EmuNcclCall call = {EMU_NCCL_REDUCE, 0, count, (int)type, (int)op, root};
    emu_stream_run(stream, [=]() { emu_nccl_reduce_run(comm, call, send, recv); });
    return ncclSuccess;
}

#endif // EMU_NCCL_H

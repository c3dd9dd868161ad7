// Checks the emulated NCCL (dev/cuda/emu/include/nccl.h) across processes, one per rank, as the
// trainer runs it under mpirun: the parent makes the id, forks N ranks (N = 1, 2, 3, 5), and each
// rank runs the collectives on random data of its own (from the seed and its rank), so that every
// rank can compute what every collective must give it. Reductions must equal the rank-order chain
// ((r0 op r1) op r2) ... bitwise (all-reduce, reduce-scatter, reduce), and an all-reduce in
// pieces must equal the whole one bitwise.
// Then the failures: a peer that dies before an all-reduce or before joining, and ranks that call
// different collectives, must each stop the other ranks with a clear error within seconds; and no
// shared-memory object of this test may be left in /dev/shm.
// Prints PASS:/FAIL: lines; exits non-zero on a failure. NCCL_TEST_SEED=n repeats a run.
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <nccl.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string>
#include <vector>

static int failures = 0;

// ----------------------------------------------------------------------------
// random data: rank q's buffer `tag` comes from (seed, q, tag) alone, so every rank can make it

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
struct Rng {
    uint64_t s;
    uint64_t next() { s += 0x9e3779b97f4a7c15ull; return mix64(s); }
};

// magnitudes from 2^-10 to 2^10 and both signs: a float sum then depends on its order, so a
// reduction in another order than the ranks' shows up bitwise
static float draw_f32(Rng& r) {
    uint64_t x = r.next();
    float v = ldexpf(1.0f + (float)(x & 0xffffff) / 16777216.0f, (int)((x >> 24) % 21) - 10);
    return (x >> 40) & 1 ? -v : v;
}
static double draw_f64(Rng& r) {
    uint64_t x = r.next();
    double v = ldexp(1.0 + (double)(x & 0xfffffffffffull) / 17592186044416.0, (int)((x >> 44) % 41) - 20);
    return (x >> 50) & 1 ? -v : v;
}
static float draw_near_one(Rng& r) { return 0.5f + 1.5f * (float)(r.next() >> 40) / 16777216.0f; }  // for products
static int32_t draw_i32(Rng& r) { return (int32_t)(uint32_t)r.next(); }  // the whole range: sums wrap
static int64_t draw_i64(Rng& r) { return (int64_t)r.next(); }
static uint8_t draw_u8(Rng& r) { return (uint8_t)r.next(); }
static __nv_bfloat16 draw_bf16(Rng& r) { return __nv_bfloat16(draw_f32(r)); }

template <class T> static std::vector<T> make_data(uint64_t seed, int rank, int tag, size_t n, T (*draw)(Rng&)) {
    Rng r = {mix64(seed ^ mix64((uint64_t)rank * 1000003u + (uint64_t)tag))};
    std::vector<T> v(n);
    for (size_t i = 0; i < n; i++) { v[i] = draw(r); }
    return v;
}

// ----------------------------------------------------------------------------
// the expected results, written apart from nccl.h: integers wrap modulo 2^bits (through
// uint64), bfloat16 rounds after every step

template <class T> static T ref_op(ncclRedOp_t op, T a, T b) {
    switch (op) {
        case ncclSum: case ncclAvg: return (T)((uint64_t)a + (uint64_t)b);
        case ncclProd: return (T)((uint64_t)a * (uint64_t)b);
        case ncclMax: return a > b ? a : b;
        case ncclMin: return a < b ? a : b;
    }
    return a;
}
// floating point: in the type itself (float in float, double in double)
template <class T> static T ref_float_op(ncclRedOp_t op, T a, T b) {
    switch (op) {
        case ncclSum: case ncclAvg: return a + b;
        case ncclProd: return a * b;
        case ncclMax: return a > b ? a : b;
        case ncclMin: return a < b ? a : b;
    }
    return a;
}
static float ref_op(ncclRedOp_t op, float a, float b) { return ref_float_op(op, a, b); }
static double ref_op(ncclRedOp_t op, double a, double b) { return ref_float_op(op, a, b); }
static __nv_bfloat16 ref_op(ncclRedOp_t op, __nv_bfloat16 a, __nv_bfloat16 b) {
    return __nv_bfloat16(ref_op(op, (float)a, (float)b));
}
template <class T> static T ref_avg(T sum, int n) { return (T)(sum / (T)n); }
static __nv_bfloat16 ref_avg(__nv_bfloat16 sum, int n) { return __nv_bfloat16((float)sum / (float)n); }

// element i of the result: data[0][at+i] op data[1][at+i] op ..., in rank order
template <class T>
static std::vector<T> ref_reduce(const std::vector<std::vector<T>>& data, ncclRedOp_t op, size_t at, size_t n) {
    std::vector<T> out(n);
    for (size_t i = 0; i < n; i++) {
        T acc = data[0][at + i];
        for (size_t q = 1; q < data.size(); q++) { acc = ref_op(op, acc, data[q][at + i]); }
        out[i] = op == ncclAvg ? ref_avg(acc, (int)data.size()) : acc;
    }
    return out;
}

// ----------------------------------------------------------------------------
// one rank (a child process)

struct Rank {
    int nranks, rank;
    uint64_t seed;
    ncclComm_t comm;
    int failed;  // checks that failed on this rank
};

static void rank_fail(Rank* r, const char* check, const char* detail) {
    fprintf(stderr, "  %d ranks, rank %d: %s: %s\n", r->nranks, r->rank, check, detail);
    r->failed++;
}

static void expect_rc(Rank* r, const char* check, ncclResult_t got, ncclResult_t want) {
    if (got == want) { return; }
    char detail[256];
    snprintf(detail, sizeof(detail), "returned \"%s\", expected \"%s\"", ncclGetErrorString(got), ncclGetErrorString(want));
    rank_fail(r, check, detail);
}

template <class T> static void expect_same(Rank* r, const char* check, const T* got, const T* want, size_t n) {
    if (n == 0 || memcmp(got, want, n * sizeof(T)) == 0) { return; }
    size_t i = 0;
    while (memcmp(got + i, want + i, sizeof(T)) == 0) { i++; }
    char detail[256];
    snprintf(detail, sizeof(detail), "element %zu of %zu is %.17g, expected %.17g (bitwise)", i, n, (double)got[i],
             (double)want[i]);
    rank_fail(r, check, detail);
}

template <class T> static std::vector<std::vector<T>> every_rank(Rank* r, int tag, size_t n, T (*draw)(Rng&)) {
    std::vector<std::vector<T>> data;
    for (int q = 0; q < r->nranks; q++) { data.push_back(make_data(r->seed, q, tag, n, draw)); }
    return data;
}

template <class T> static void poison(std::vector<T>& v) { if (!v.empty()) { memset(v.data(), 0xa5, v.size() * sizeof(T)); } }

// an all-reduce against the rank-order chain, in place or out of place (then the send buffer
// must be left as it was)
template <class T>
static void check_allreduce(Rank* r, const char* check, ncclDataType_t type, ncclRedOp_t op, size_t n, T (*draw)(Rng&),
                            int tag, bool in_place, cudaStream_t stream = 0) {
    std::vector<std::vector<T>> data = every_rank(r, tag, n, draw);
    std::vector<T> want = ref_reduce(data, op, 0, n);
    std::vector<T> send = data[r->rank], recv(n);
    poison(recv);
    T* out = in_place ? send.data() : recv.data();
    expect_rc(r, check, ncclAllReduce(send.data(), out, n, type, op, r->comm, stream), ncclSuccess);
    if (stream != 0) { cudaStreamSynchronize(stream); }
    expect_same(r, check, out, want.data(), n);
    if (!in_place) { expect_same(r, check, send.data(), data[r->rank].data(), n); }
}

// the trainer's bucketed all-reduce: the same buffer whole and in uneven pieces (one crossing a
// slot's size) must agree bitwise
static void check_pieces(Rank* r, size_t slot_floats) {
    const char* check = "float sum all-reduce whole vs in 5 uneven pieces (bitwise)";
    size_t n = slot_floats + slot_floats / 2 + 13;
    std::vector<std::vector<float>> data = every_rank(r, 3, n, draw_f32);
    std::vector<float> want = ref_reduce(data, ncclSum, 0, n);
    std::vector<float> whole = data[r->rank], pieces = data[r->rank];
    expect_rc(r, check, ncclAllReduce(whole.data(), whole.data(), n, ncclFloat, ncclSum, r->comm, 0), ncclSuccess);
    size_t cuts[] = {0, 1, 1001, 7777, slot_floats + 5, n};
    for (int i = 0; i + 1 < 6; i++) {
        float* p = pieces.data() + cuts[i];
        expect_rc(r, check, ncclAllReduce(p, p, cuts[i + 1] - cuts[i], ncclFloat, ncclSum, r->comm, 0), ncclSuccess);
    }
    expect_same(r, check, pieces.data(), whole.data(), n);
    expect_same(r, "float sum all-reduce over 1.5 slots against the rank order", whole.data(), want.data(), n);
}

// rank d gets the reduction of part d: in place (recv inside send) or out of place
template <class T>
static void check_reducescatter(Rank* r, const char* check, ncclDataType_t type, ncclRedOp_t op, size_t count,
                                T (*draw)(Rng&), int tag, bool in_place) {
    size_t total = count * (size_t)r->nranks;
    std::vector<std::vector<T>> data = every_rank(r, tag, total, draw);
    std::vector<T> want = ref_reduce(data, op, (size_t)r->rank * count, count);
    std::vector<T> send = data[r->rank], recv(count);
    poison(recv);
    T* out = in_place ? send.data() + (size_t)r->rank * count : recv.data();
    expect_rc(r, check, ncclReduceScatter(send.data(), out, count, type, op, r->comm, 0), ncclSuccess);
    expect_same(r, check, out, want.data(), count);
}

// every rank's count elements in rank order: in place (send inside recv) or out of place
template <class T>
static void check_allgather(Rank* r, const char* check, ncclDataType_t type, size_t count, T (*draw)(Rng&), int tag,
                            bool in_place) {
    std::vector<std::vector<T>> data = every_rank(r, tag, count, draw);
    std::vector<T> want;
    for (int q = 0; q < r->nranks; q++) { want.insert(want.end(), data[q].begin(), data[q].end()); }
    std::vector<T> recv(count * (size_t)r->nranks), send = data[r->rank];
    poison(recv);
    const T* in = send.data();
    if (in_place) {
        memcpy(recv.data() + (size_t)r->rank * count, send.data(), count * sizeof(T));
        in = recv.data() + (size_t)r->rank * count;
    }
    expect_rc(r, check, ncclAllGather(in, recv.data(), count, type, r->comm, 0), ncclSuccess);
    expect_same(r, check, recv.data(), want.data(), want.size());
}

// from root nranks-1: out of place (the others pass no send buffer) or in place
template <class T>
static void check_broadcast(Rank* r, const char* check, ncclDataType_t type, size_t count, T (*draw)(Rng&), int tag,
                            bool in_place) {
    int root = r->nranks - 1;
    std::vector<T> want = make_data(r->seed, root, tag, count, draw);
    std::vector<T> send = want, recv(count);
    poison(recv);
    if (in_place && r->rank == root) { recv = want; }
    const T* in = in_place ? recv.data() : (r->rank == root ? send.data() : NULL);
    expect_rc(r, check, ncclBroadcast(in, recv.data(), count, type, root, r->comm, 0), ncclSuccess);
    expect_same(r, check, recv.data(), want.data(), count);
}

// the reduction into the root only (the others pass no receive buffer): in place or out of place
template <class T>
static void check_reduce(Rank* r, const char* check, ncclDataType_t type, ncclRedOp_t op, size_t count,
                         T (*draw)(Rng&), int tag, int root, bool in_place) {
    std::vector<std::vector<T>> data = every_rank(r, tag, count, draw);
    std::vector<T> want = ref_reduce(data, op, 0, count);
    std::vector<T> send = data[r->rank], recv(count);
    poison(recv);
    T* out = r->rank != root ? NULL : (in_place ? send.data() : recv.data());
    expect_rc(r, check, ncclReduce(send.data(), out, count, type, op, root, r->comm, 0), ncclSuccess);
    if (r->rank == root) { expect_same(r, check, out, want.data(), count); }
    if (!in_place || r->rank != root) { expect_same(r, check, send.data(), data[r->rank].data(), count); }
}

// calls that must be refused where they are made (no rank communicates: any rank may make them)
static void check_refusals(Rank* r) {
    float x[64] = {0};
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);  // the refusals explain themselves on stderr
    dup2(devnull, 2);
    ncclResult_t overlap = ncclAllReduce(x, x + 1, 10, ncclFloat, ncclSum, r->comm, 0);
    ncclResult_t bad_op = ncclAllReduce(x, x, 10, ncclFloat, (ncclRedOp_t)9, r->comm, 0);
    ncclResult_t bad_root = ncclBroadcast(x, x, 10, ncclFloat, r->nranks, r->comm, 0);
    ncclResult_t bad_reduce_root = ncclReduce(x, x, 10, ncclFloat, ncclSum, -1, r->comm, 0);
    ncclResult_t bad_type = ncclAllGather(x, x, 1, (ncclDataType_t)42, r->comm, 0);
    // recv inside send, but at another rank's part: not NCCL's in-place layout
    ncclResult_t rs_wrong = r->nranks > 1
        ? ncclReduceScatter(x, x + ((r->rank + 1) % r->nranks) * 4, 4, ncclFloat, ncclSum, r->comm, 0)
        : ncclInvalidArgument;
    ncclResult_t half = r->nranks > 1 ? ncclAllReduce(x, x, 4, ncclFloat16, ncclSum, r->comm, 0) : ncclInvalidArgument;
    dup2(saved, 2);
    close(saved);
    close(devnull);
    expect_rc(r, "a partly overlapping all-reduce is refused", overlap, ncclInvalidArgument);
    expect_rc(r, "an unknown reduction op is refused", bad_op, ncclInvalidArgument);
    expect_rc(r, "a broadcast root out of range is refused", bad_root, ncclInvalidArgument);
    expect_rc(r, "a reduce root out of range is refused", bad_reduce_root, ncclInvalidArgument);
    expect_rc(r, "an unknown data type is refused", bad_type, ncclInvalidArgument);
    expect_rc(r, "a reduce-scatter into another rank's part is refused", rs_wrong, ncclInvalidArgument);
    expect_rc(r, "a float16 reduction is refused", half, ncclInvalidArgument);
}

// Every rank runs the same collectives in the same order, whatever failed before: a rank that
// skipped one would leave the others waiting.
static int rank_collectives(Rank* r) {
    size_t slot_floats = EMU_NCCL_SLOT_BYTES / sizeof(float);
    int n = 0, me = -1;
    expect_rc(r, "ncclCommCount", ncclCommCount(r->comm, &n), ncclSuccess);
    expect_rc(r, "ncclCommUserRank", ncclCommUserRank(r->comm, &me), ncclSuccess);
    if (n != r->nranks || me != r->rank) { rank_fail(r, "ncclCommCount/ncclCommUserRank", "wrong size or rank"); }

    check_allreduce(r, "float sum all-reduce out of place", ncclFloat, ncclSum, 1007, draw_f32, 1, false);
    check_allreduce(r, "float sum all-reduce in place", ncclFloat, ncclSum, 1007, draw_f32, 2, true);
    check_pieces(r, slot_floats);
    cudaStream_t stream = NULL;
    cudaStreamCreate(&stream);
    check_allreduce(r, "double sum all-reduce over a slot, on a stream", ncclDouble, ncclSum,
                    EMU_NCCL_SLOT_BYTES / sizeof(double) + 5, draw_f64, 4, true, stream);
    cudaStreamDestroy(stream);
    check_allreduce(r, "int32 max all-reduce", ncclInt32, ncclMax, 10007, draw_i32, 5, true);
    check_allreduce(r, "int32 sum all-reduce (wraps)", ncclInt32, ncclSum, 999, draw_i32, 6, false);
    check_allreduce(r, "int64 sum all-reduce (wraps)", ncclInt64, ncclSum, 999, draw_i64, 7, true);
    check_allreduce(r, "uint8 min all-reduce", ncclUint8, ncclMin, 3001, draw_u8, 8, true);
    check_allreduce(r, "uint8 sum all-reduce (wraps)", ncclUint8, ncclSum, 3001, draw_u8, 9, false);
    check_allreduce(r, "float prod all-reduce", ncclFloat, ncclProd, 1001, draw_near_one, 10, true);
    check_allreduce(r, "float avg all-reduce", ncclFloat, ncclAvg, 1001, draw_f32, 11, false);
    check_allreduce(r, "double max all-reduce", ncclDouble, ncclMax, 1001, draw_f64, 12, true);
    check_allreduce(r, "bfloat16 sum all-reduce (rounded each step)", ncclBfloat16, ncclSum, 2049, draw_bf16, 13, true);
    check_allreduce(r, "bfloat16 avg all-reduce", ncclBfloat16, ncclAvg, 2049, draw_bf16, 14, false);
    check_allreduce(r, "int32 avg all-reduce", ncclInt32, ncclAvg, 513, draw_i32, 15, true);
    check_allreduce(r, "float sum all-reduce of 0 elements", ncclFloat, ncclSum, 0, draw_f32, 16, true);

    // per-destination rounds hold slot/nranks elements: this count takes two
    check_reducescatter(r, "float sum reduce-scatter in place, over a slot", ncclFloat, ncclSum,
                        slot_floats / (size_t)r->nranks + 1001, draw_f32, 20, true);
    check_reducescatter(r, "float sum reduce-scatter out of place", ncclFloat, ncclSum, 333, draw_f32, 21, false);
    check_reducescatter(r, "int32 max reduce-scatter out of place", ncclInt32, ncclMax, 77, draw_i32, 22, false);

    check_reduce(r, "float sum reduce to rank 0, out of place, over a slot", ncclFloat, ncclSum, slot_floats + 9,
                 draw_f32, 25, 0, false);
    check_reduce(r, "float sum reduce to the last rank, in place", ncclFloat, ncclSum, 1001, draw_f32, 26,
                 r->nranks - 1, true);
    check_reduce(r, "int64 max reduce to rank 1", ncclInt64, ncclMax, 500, draw_i64, 27, 1 % r->nranks, false);

    check_allgather(r, "float all-gather in place, over a slot", ncclFloat, slot_floats + 77, draw_f32, 30, true);
    check_allgather(r, "int64 all-gather out of place", ncclInt64, 1000, draw_i64, 31, false);

    check_broadcast(r, "float broadcast from the last rank, out of place, over a slot", ncclFloat, slot_floats + 3,
                    draw_f32, 40, false);
    check_broadcast(r, "int32 broadcast from the last rank, in place", ncclInt32, 999, draw_i32, 41, true);

    // a group: its collectives run one by one, in call order
    {
        std::vector<std::vector<float>> a = every_rank(r, 50, 100, draw_f32);
        std::vector<std::vector<int32_t>> b = every_rank(r, 51, 50, draw_i32);
        std::vector<float> wa = ref_reduce(a, ncclSum, 0, 100);
        std::vector<int32_t> wb = ref_reduce(b, ncclMax, 0, 50);
        std::vector<float> xa = a[r->rank];
        std::vector<int32_t> xb = b[r->rank];
        expect_rc(r, "ncclGroupStart", ncclGroupStart(), ncclSuccess);
        expect_rc(r, "all-reduce in a group", ncclAllReduce(xa.data(), xa.data(), 100, ncclFloat, ncclSum, r->comm, 0), ncclSuccess);
        expect_rc(r, "all-reduce in a group", ncclAllReduce(xb.data(), xb.data(), 50, ncclInt32, ncclMax, r->comm, 0), ncclSuccess);
        expect_rc(r, "ncclGroupEnd", ncclGroupEnd(), ncclSuccess);
        expect_same(r, "float sum all-reduce in a group", xa.data(), wa.data(), 100);
        expect_same(r, "int32 max all-reduce in a group", xb.data(), wb.data(), 50);
    }
    check_refusals(r);
    // and the communicator still works after the refusals (they reached no other rank)
    check_allreduce(r, "float sum all-reduce after the refusals", ncclFloat, ncclSum, 17, draw_f32, 60, true);
    return r->failed;
}

enum Mode { COLLECTIVES, DIES_BEFORE_ALLREDUCE, HANGS_BEFORE_ALLREDUCE, DIES_BEFORE_JOINING, DIFFERENT_CALLS };

// a child: runs rank `rank` of the scenario; its exit status is the result
static int child_main(Mode mode, const ncclUniqueId& id, int nranks, int rank, uint64_t seed) {
    Rank r = {nranks, rank, seed, NULL, 0};
    if (mode == DIES_BEFORE_JOINING && rank == 1) { return 0; }
    ncclResult_t rc = ncclCommInitRank(&r.comm, nranks, id, rank);
    if (rc != ncclSuccess) {
        fprintf(stderr, "  %d ranks, rank %d: ncclCommInitRank: %s\n", nranks, rank, ncclGetErrorString(rc));
        return 1;
    }
    if (mode == DIES_BEFORE_ALLREDUCE && rank == 1) { return 0; }  // leaves without a word
    if (mode == HANGS_BEFORE_ALLREDUCE && rank == 1) { sleep(4); return 0; }  // alive, but not coming
    if (mode == COLLECTIVES) {
        rank_collectives(&r);
    } else {
        float x[16] = {0};
        if (mode == DIFFERENT_CALLS && rank == 1) {
            float y[32];
            ncclAllGather(x, y, 16, ncclFloat, r.comm, 0);
        } else {
            ncclAllReduce(x, x, 16, ncclFloat, ncclSum, r.comm, 0);
        }
    }
    ncclCommDestroy(r.comm);
    return r.failed > 0 ? 1 : 0;
}

// ----------------------------------------------------------------------------
// the parent

struct Outcome {
    int status[8];          // wait status per rank (-1: killed at the deadline)
    std::string err[8];     // what each rank wrote to stderr
    double seconds[8];      // from the fork to its exit
};

// Forks nranks children running `mode` on a new id and waits for them all, reaping each as soon
// as it exits (so a dead rank's pid is gone when the others look), reading their stderr as it
// comes (a full pipe would block them), and killing whatever is left at the deadline.
static void run_ranks(Mode mode, int nranks, uint64_t seed, double deadline_s, Outcome* out) {
    ncclUniqueId id;
    if (ncclGetUniqueId(&id) != ncclSuccess) { fprintf(stderr, "ncclGetUniqueId failed\n"); exit(1); }
    pid_t pid[8];
    int fd[8];
    bool done[8];
    double start = emu_nccl_now();
    fflush(stdout);
    fflush(stderr);
    for (int q = 0; q < nranks; q++) {
        int p[2];
        if (pipe(p) != 0) { perror("pipe"); exit(1); }
        pid[q] = fork();
        if (pid[q] < 0) { perror("fork"); exit(1); }
        if (pid[q] == 0) {
            close(p[0]);
            for (int k = 0; k < q; k++) { close(fd[k]); }
            dup2(p[1], 2);
            close(p[1]);
            int code = child_main(mode, id, nranks, q, seed);
            fflush(stderr);
            exit(code);
        }
        close(p[1]);
        fd[q] = p[0];
        fcntl(fd[q], F_SETFL, O_NONBLOCK);
        done[q] = false;
        out->status[q] = -1;
        out->err[q].clear();
        out->seconds[q] = 0;
    }
    int left = nranks;
    while (left > 0) {
        for (int q = 0; q < nranks; q++) {
            char buf[4096];
            ssize_t got;
            while ((got = read(fd[q], buf, sizeof(buf))) > 0) { out->err[q].append(buf, (size_t)got); }
            int st;
            if (!done[q] && waitpid(pid[q], &st, WNOHANG) == pid[q]) {
                done[q] = true;
                out->status[q] = st;
                out->seconds[q] = emu_nccl_now() - start;
                left--;
            }
        }
        if (left > 0 && emu_nccl_now() - start > deadline_s) {
            for (int q = 0; q < nranks; q++) {
                if (!done[q]) { kill(pid[q], SIGKILL); waitpid(pid[q], NULL, 0); done[q] = true; out->seconds[q] = deadline_s; }
            }
            left = 0;
        }
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    for (int q = 0; q < nranks; q++) {
        char buf[4096];
        ssize_t got;
        while ((got = read(fd[q], buf, sizeof(buf))) > 0) { out->err[q].append(buf, (size_t)got); }
        close(fd[q]);
    }
}

static bool exited_ok(int status) { return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
static std::string describe_status(int status) {
    char s[64];
    if (status == -1) { snprintf(s, sizeof(s), "killed at the deadline (hangs)"); }
    else if (WIFEXITED(status)) { snprintf(s, sizeof(s), "exit %d", WEXITSTATUS(status)); }
    else if (WIFSIGNALED(status)) { snprintf(s, sizeof(s), "signal %d", WTERMSIG(status)); }
    else { snprintf(s, sizeof(s), "status %d", status); }
    return s;
}
static void report(bool ok, const std::string& what) {
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what.c_str());
    fflush(stdout);
    if (!ok) { failures++; }
}
// the error line of a rank's stderr, for the report
static std::string first_error(const std::string& err) {
    size_t at = err.find("error:");
    std::string line = err.substr(at == std::string::npos ? 0 : at);
    line = line.substr(0, line.find('\n'));
    return line.size() > 400 ? line.substr(0, 400) + "..." : line;
}

static void run_collectives(int nranks, uint64_t seed) {
    Outcome o;
    run_ranks(COLLECTIVES, nranks, seed, 900.0, &o);
    bool ok = true;
    std::string why;
    for (int q = 0; q < nranks; q++) {
        if (!exited_ok(o.status[q])) {
            ok = false;
            why += " rank " + std::to_string(q) + ": " + describe_status(o.status[q]) + ";";
        }
    }
    char what[256];
    snprintf(what, sizeof(what), "emulated NCCL, %d rank%s (processes): every collective and type against the rank "
             "order, bitwise, in place and not, over a slot, whole = pieces (%.1f s)", nranks, nranks > 1 ? "s" : "",
             o.seconds[0]);
    report(ok, ok ? std::string(what) : std::string(what) + ":" + why);
    for (int q = 0; q < nranks && !ok; q++) { fputs(o.err[q].c_str(), stdout); }
}

// a scenario where rank 0 must stop with an error that says `must_say` and `must_say_too` within
// `within` seconds (EMU_NCCL_TIMEOUT=2)
static void run_failure(Mode mode, int nranks, const char* what, const char* must_say, const char* must_say_too,
                        double within) {
    Outcome o;
    run_ranks(mode, nranks, 1, 30.0, &o);
    bool stopped = o.status[0] != -1 && !exited_ok(o.status[0]);
    bool said = o.err[0].find(must_say) != std::string::npos && o.err[0].find(must_say_too) != std::string::npos;
    bool soon = o.seconds[0] < within;
    char line[1024];
    snprintf(line, sizeof(line), "emulated NCCL: %s: rank 0 %s after %.1f s: %s", what, describe_status(o.status[0]).c_str(),
             o.seconds[0], first_error(o.err[0]).c_str());
    report(stopped && said && soon, line);
    if (!(stopped && said && soon)) {
        printf("    expected a non-zero exit within %.0f s saying \"%s\" and \"%s\"\n", within, must_say, must_say_too);
    }
}

// shared-memory objects of this process's ids still in /dev/shm
static void check_shm_left(void) {
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "llmc-emu-nccl-%ld-", (long)getpid());
    DIR* d = opendir("/dev/shm");
    if (d == NULL) { report(false, "emulated NCCL: /dev/shm cannot be read"); return; }
    std::string left;
    for (struct dirent* e = readdir(d); e != NULL; e = readdir(d)) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) { left += std::string(" ") + e->d_name; }
    }
    closedir(d);
    report(left.empty(), "emulated NCCL: /dev/shm holds no llmc-emu-nccl object of this test" +
                             (left.empty() ? std::string() : ": left behind:" + left));
}

int main(void) {
    uint64_t seed = (uint64_t)time(NULL);
    const char* s = getenv("NCCL_TEST_SEED");
    if (s != NULL) { seed = strtoull(s, NULL, 10); }
    printf("emulated NCCL across processes, seed %llu (NCCL_TEST_SEED repeats it), slot %zu MiB\n",
           (unsigned long long)seed, (size_t)(EMU_NCCL_SLOT_BYTES >> 20));
    // a broken barrier should fail the run, not hang it for the default 120 s
    setenv("EMU_NCCL_TIMEOUT", "100", 1);
    int sizes[] = {1, 2, 3, 5};
    for (int i = 0; i < 4; i++) { run_collectives(sizes[i], seed); }

    // A dead peer is seen within a second (its pid is gone); a live one that does not come, or one
    // that never joined, at the timeout; ranks that call different collectives, at once.
    setenv("EMU_NCCL_TIMEOUT", "2", 1);
    run_failure(DIES_BEFORE_ALLREDUCE, 2, "rank 1 exits before an all-reduce",
                "in ncclAllReduce #1 (16 float32, sum) for rank 1 (pid", "no longer running", 1.9);
    run_failure(HANGS_BEFORE_ALLREDUCE, 2, "rank 1 sleeps instead of all-reducing", "waited 2.0 s in ncclAllReduce #1",
                "still running", 3.9);
    run_failure(DIES_BEFORE_JOINING, 2, "rank 1 never joins", "waited 2.0 s in ncclCommInitRank",
                "rank 1 (never joined)", 3.9);
    run_failure(DIFFERENT_CALLS, 2, "rank 0 all-reduces while rank 1 all-gathers", "called different collectives",
                "ncclAllGather #1", 1.9);
    check_shm_left();

    if (failures > 0) { printf("%d NCCL check(s) failed\n", failures); return 1; }
    printf("all NCCL checks passed\n");
    return 0;
}

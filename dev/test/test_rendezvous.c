/*
The fs and tcp rendezvous (llmc/rendezvous.h) with real processes on this machine: rank 0 hands
a random 128-byte blob (the size of an NCCL id) to 3 other processes through a directory and
through a TCP socket on 127.0.0.1, in either start order; and a rank without its rank 0 gives
up with a message after the timeout.
*/
#include <sys/wait.h>
#include <time.h>
#include "llmc/rendezvous.h"
#include "llmc/rand.h"
#include "dev/test/testing.h"

#define WORLD 4
#define BLOB 128

// runs the rendezvous in WORLD processes (rank 0 starting first or last); returns how many
// non-zero ranks received exactly rank 0's blob
static int run(const char* method, const char* dir, int port, int rank0_last, const unsigned char* want) {
    pid_t pids[WORLD];
    for (int i = 0; i < WORLD; i++) {
        int rank = rank0_last ? (i + 1) % WORLD : i;
        pid_t pid = fork();
        if (pid < 0) { die("fork failed"); }
        if (pid == 0) {
            unsigned char blob[BLOB];
            char err[LLMC_ERRLEN];
            if (rank == 0) { memcpy(blob, want, BLOB); } else { memset(blob, 0, BLOB); }
            int rc = strcmp(method, "fs") == 0 ? rendezvous_fs(dir, rank, blob, BLOB, 10.0, err)
                                               : rendezvous_tcp("127.0.0.1", port, rank, WORLD, blob, BLOB, 10.0, err);
            if (rc != 0) { fprintf(stderr, "rank %d: %s\n", rank, err); _exit(2); }
            _exit(memcmp(blob, want, BLOB) == 0 ? 0 : 1);
        }
        pids[i] = pid;
        usleep(50 * 1000);  // a real start order, not all at once
    }
    int ok = 0;
    for (int i = 0; i < WORLD; i++) {
        int status;
        waitpid(pids[i], &status, 0);
        int rank = rank0_last ? (i + 1) % WORLD : i;
        if (rank != 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) { ok++; }
    }
    return ok;
}

int main(void) {
    Rng rng;
    rng_init(&rng, (uint64_t)time(NULL) ^ (uint64_t)getpid());
    unsigned char want[BLOB];
    for (int i = 0; i < BLOB; i++) { want[i] = (unsigned char)rng_u32(&rng); }
    char dir[] = "/tmp/test_rendezvous.XXXXXX";
    if (mkdtemp(dir) == NULL) { die("mkdtemp failed"); }
    char run_id[32];
    snprintf(run_id, sizeof(run_id), "%d", (int)getpid());
    setenv("LLMC_RUN_ID", run_id, 1);

    int n = run("fs", dir, 0, 0, want);
    check(n == WORLD - 1, "fs rendezvous: rank 0 first", "%d of %d ranks got the blob", n, WORLD - 1);
    char path[1024];
    rendezvous_path(path, sizeof(path), dir);
    unlink(path);
    n = run("fs", dir, 0, 1, want);
    check(n == WORLD - 1, "fs rendezvous: rank 0 last", "%d of %d ranks got the blob", n, WORLD - 1);
    unlink(path);

    int port = 20000 + (int)rng_below(&rng, 30000);
    n = run("tcp", NULL, port, 0, want);
    check(n == WORLD - 1, "tcp rendezvous: rank 0 first", "%d of %d ranks got the blob (port %d)", n, WORLD - 1, port);
    n = run("tcp", NULL, port + 1, 1, want);
    check(n == WORLD - 1, "tcp rendezvous: rank 0 last", "%d of %d ranks got the blob (port %d)", n, WORLD - 1, port + 1);

    unsigned char blob[BLOB];
    char err[LLMC_ERRLEN];
    double t0 = now_seconds();
    int rc = rendezvous_fs(dir, 1, blob, BLOB, 1.0, err);
    double took = now_seconds() - t0;
    check(rc == -1 && strstr(err, "did not publish") != NULL && took < 5.0, "fs rendezvous: no rank 0 times out",
          "%.1f s: %s", took, rc ? err : "(no error)");
    t0 = now_seconds();
    rc = rendezvous_tcp("127.0.0.1", port + 2, 1, WORLD, blob, BLOB, 1.0, err);
    took = now_seconds() - t0;
    check(rc == -1 && strstr(err, "no rank 0 listening") != NULL && took < 5.0, "tcp rendezvous: no rank 0 times out",
          "%.1f s: %s", took, rc ? err : "(no error)");
    rc = rendezvous_tcp("not-an-ip", port, 1, WORLD, blob, BLOB, 1.0, err);
    check(rc == -1 && strstr(err, "-ps not-an-ip") != NULL, "tcp rendezvous: a bad address is refused", "%s", err);
    rmdir(dir);
    return test_failures == 0 ? 0 : 1;
}

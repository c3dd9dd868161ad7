// Rendezvous without MPI: rank 0 hands a small blob (the NCCL unique id) to every other rank,
// through a shared filesystem or a TCP connection. llm.c's -pm fs and -pm tcp.
//   fs:  rank 0 writes <dir>/llmc_rendezvous_<tag>.bin atomically; the others poll for it.
//        The tag is SLURM_JOB_ID or LLMC_RUN_ID when set, else "default": without one, give
//        each job its own -pp directory, or a file left by an earlier job would be read.
//   tcp: rank 0 listens on <server_ip>:<port> and sends the blob to each of the world - 1
//        ranks that connect; they retry until rank 0 is up.
// Both give up with a message after timeout seconds.
#ifndef LLMC_RENDEZVOUS_H
#define LLMC_RENDEZVOUS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include "utils.h"

#define RENDEZVOUS_PORT 12345

static void rendezvous_path(char* out, size_t n, const char* dir) {
    const char* tag = getenv("SLURM_JOB_ID");
    if (tag == NULL) { tag = getenv("LLMC_RUN_ID"); }
    if (tag == NULL) { tag = "default"; }
    snprintf(out, n, "%s/llmc_rendezvous_%s.bin", dir, tag);
}

static int rendezvous_fs(const char* dir, int rank, void* blob, size_t n, double timeout, char* err) {
    char path[1024];
    rendezvous_path(path, sizeof(path), dir);
    if (rank == 0) {
        AtomicFile af;
        atomic_open(&af, path);
        atomic_write(&af, blob, 1, n);
        atomic_commit(&af);
        return 0;
    }
    double start = now_seconds();
    for (;;) {
        FILE* f = fopen(path, "rb");
        if (f != NULL) {
            long size = file_size_of(f);
            int rc = size == (long)n ? fread_exact(blob, 1, n, f, path, err) : -2;
            fclose(f);
            if (rc == 0) { return 0; }
            if (rc == -1) { return -1; }
            return set_err(err, "%s: %ld bytes, expected %zu: not a rendezvous file of this program", path, size, n);
        }
        if (now_seconds() - start > timeout) {
            return set_err(err, "-pp %s: rank 0 did not publish %s within %.0f s", dir, path, timeout);
        }
        usleep(100 * 1000);
    }
}

// sends or receives exactly n bytes; 0 or -1
static int socket_all(int fd, void* buf, size_t n, int sending) {
    size_t done = 0;
    while (done < n) {
        ssize_t k = sending ? send(fd, (char*)buf + done, n - done, MSG_NOSIGNAL) : recv(fd, (char*)buf + done, n - done, 0);
        if (k <= 0) {
            if (k < 0 && errno == EINTR) { continue; }
            return -1;
        }
        done += (size_t)k;
    }
    return 0;
}

static int rendezvous_tcp(const char* server_ip, int port, int rank, int world, void* blob, size_t n,
                          double timeout, char* err) {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, server_ip, &addr.sin_addr) != 1) {
        return set_err(err, "-ps %s: not an IPv4 address", server_ip);
    }
    double start = now_seconds();
    if (rank == 0) {
        int srv = socket(AF_INET, SOCK_STREAM, 0);
        if (srv < 0) { return set_err(err, "tcp rendezvous: socket: %s", strerror(errno)); }
        int one = 1;
        setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(srv, (struct sockaddr*)&addr, sizeof(addr)) != 0 || listen(srv, world) != 0) {
            int e = errno;
            close(srv);
            return set_err(err, "-ps %s: cannot listen on port %d: %s", server_ip, port, strerror(e));
        }
        for (int served = 1; served < world; served++) {
            struct pollfd p = { srv, POLLIN, 0 };
            int left = (int)((timeout - (now_seconds() - start)) * 1000);
            if (left <= 0 || poll(&p, 1, left) <= 0) {
                close(srv);
                return set_err(err, "tcp rendezvous: only %d of %d ranks connected to %s:%d within %.0f s",
                               served, world, server_ip, port, timeout);
            }
            int c = accept(srv, NULL, NULL);
            if (c < 0) { served--; continue; }
            int rc = socket_all(c, blob, n, 1);
            close(c);
            if (rc != 0) { close(srv); return set_err(err, "tcp rendezvous: sending to a rank failed"); }
        }
        close(srv);
        return 0;
    }
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) { return set_err(err, "tcp rendezvous: socket: %s", strerror(errno)); }
        if (connect(fd, (struct sockaddr*)&addr, sizeof(addr)) == 0) {
            int rc = socket_all(fd, blob, n, 0);
            close(fd);
            if (rc == 0) { return 0; }
            return set_err(err, "tcp rendezvous: %s:%d closed the connection early", server_ip, port);
        }
        close(fd);
        if (now_seconds() - start > timeout) {
            return set_err(err, "tcp rendezvous: no rank 0 listening on %s:%d within %.0f s", server_ip, port, timeout);
        }
        usleep(100 * 1000);
    }
}

#endif // LLMC_RENDEZVOUS_H

// SIGINT / SIGTERM handling for long runs: the first signal asks the training loop to finish
// its current step, write a checkpoint and exit 0; a second one exits at once.
// The flag is the one piece of global state in the programs: a signal handler can reach
// nothing else.
#ifndef LLMC_SIGNALS_H
#define LLMC_SIGNALS_H

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal = 0;  // the signal received, 0 if none

static void on_stop_signal(int sig) {
    if (stop_signal != 0) {
        static const char msg[] = "\nsecond signal: exiting now, without a checkpoint\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(128 + sig);
    }
    stop_signal = sig;
    static const char msg[] = "\nsignal received: finishing this step, then writing a checkpoint (signal again to exit now)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)w;
}

// A handler that only records the signal, for tools that stop at their next safe point and
// clean up there (the data pipeline).
static void record_stop_signal(int sig) { stop_signal = sig; }

// handler for SIGINT and SIGTERM
static void install_signal_handler(void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void install_stop_handlers(void) { install_signal_handler(on_stop_signal); }

#endif // LLMC_SIGNALS_H

/* The measuring launcher that bench/run starts every workload through.
 *
 * Why not measure from Python directly: Linux keeps a process's peak RSS in its signal
 * struct, which survives exec, and folds the pre-exec memory into it; a child forked
 * from the Python runner therefore starts with Python's ~18 MiB as its "peak", which
 * would hide every workload smaller than that. This launcher is small (about 1 MiB
 * resident), so a child forked from it starts near zero.
 *
 * It forks, sets LD_PRELOAD in the child only (so the launcher itself never runs on the
 * allocator under test, and the floor is the same for every allocator), execs the
 * workload, waits for it with wait4, and prints as its last line on stderr:
 *
 *     launch: SECONDS PEAK_RSS_KIB STATUS TIMED_OUT
 *
 * where STATUS is the exit status, or -N when signal N killed the workload. A workload
 * still running after TIMEOUT seconds is killed with SIGKILL (it is this launcher's own
 * unreaped child, so the pid cannot have been reused) and TIMED_OUT is 1.
 *
 * usage: launch TIMEOUT_S PRELOAD|- PROGRAM [ARGS...] */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child;
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig) {
    (void)sig;
    timed_out = 1;
    if (child > 0)
        kill(child, SIGKILL);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s TIMEOUT_S PRELOAD|- PROGRAM [ARGS...]\n", argv[0]);
        return 2;
    }
    unsigned timeout = (unsigned)strtoul(argv[1], NULL, 10);
    const char *preload = argv[2];

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("launch: fork");
        return 2;
    }
    if (pid == 0) {
        if (preload[0] == '-' && preload[1] == 0)
            unsetenv("LD_PRELOAD");
        else
            setenv("LD_PRELOAD", preload, 1);
        execv(argv[3], argv + 3);
        perror("launch: exec");
        _exit(127);
    }
    child = pid;
    signal(SIGALRM, on_alarm);
    alarm(timeout);

    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        /* The alarm may interrupt the wait; then wait again, for the killed child. */
        if (errno != EINTR) {
            perror("launch: wait4");
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    alarm(0);

    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    int code = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
    fflush(stdout);
    fprintf(stderr, "\nlaunch: %.6f %ld %d %d\n", secs, ru.ru_maxrss, code, (int)timed_out);
    return 0;
}

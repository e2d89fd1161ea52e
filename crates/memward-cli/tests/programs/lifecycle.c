/* Process life cycles for `memward profile`: fork, exec, many threads, and endings
 * that skip exit handlers. `lifecycle MODE`:
 *
 *   fork     the child allocates 10 x 777 bytes (kept) and exits; the parent 3 x 333
 *   fork-busy  a thread makes 200,000 malloc/free pairs of 999 bytes while the main
 *            thread allocates 4 x 111 bytes (kept) and forks at once (both still in the
 *            parent's buffers); the child allocates 10 x 777 bytes (kept) and exits
 *   exec     a forked child execs this program as `lifecycle exec-child`, which
 *            allocates 5 x 555 bytes
 *   threads  8 threads allocate 1,000 x 24 bytes each (freed) and 10 x 4,000 (kept)
 *   _exit    allocates 7 x 4,444 bytes, sleeps 100 ms (past a flush), then _exit(0)
 *   kill     as _exit, then SIGKILL to itself
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *volatile sink;

__attribute__((noinline)) static void keep(size_t n, int count) {
    for (int i = 0; i < count; i++) {
        char *p = malloc(n);
        p[0] = 1;
        sink = p;
    }
}

__attribute__((noinline)) static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(24);
        p[0] = 1;
        sink = p;
        free(p);
    }
    keep(4000, 10);
    return NULL;
}

static void *churn(void *arg) {
    (void)arg;
    for (int i = 0; i < 200000; i++) {
        char *p = malloc(999);
        p[0] = 1;
        sink = p;
        free(p);
    }
    return NULL;
}

static void nap(void) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "fork")) {
        pid_t pid = fork();
        if (pid == 0) {
            keep(777, 10);
            exit(0);
        }
        keep(333, 3);
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    if (!strcmp(mode, "fork-busy")) {
        pthread_t t;
        if (pthread_create(&t, NULL, churn, NULL) != 0) return 1;
        keep(111, 4);
        pid_t pid = fork();
        if (pid == 0) {
            keep(777, 10);
            exit(0);
        }
        pthread_join(t, NULL);
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    if (!strcmp(mode, "exec")) {
        pid_t pid = fork();
        if (pid == 0) {
            execl("/proc/self/exe", argv[0], "exec-child", (char *)NULL);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    if (!strcmp(mode, "exec-child")) {
        keep(555, 5);
        return 0;
    }
    if (!strcmp(mode, "threads")) {
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            if (pthread_create(&t[i], NULL, worker, NULL)) return 1;
        for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
        return 0;
    }
    if (!strcmp(mode, "_exit") || !strcmp(mode, "kill")) {
        keep(4444, 7);
        nap();
        if (mode[0] == 'k') raise(SIGKILL);
        _exit(0);
    }
    return 2;
}

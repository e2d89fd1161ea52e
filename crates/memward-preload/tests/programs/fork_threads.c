/* Threads allocating while other threads fork, many times: the classic way to break an
 * allocator. If fork() happens while another thread holds an allocator lock (or is midway
 * through updating a shared structure), the child inherits the lock held by a thread that
 * does not exist in it, and its first malloc deadlocks or corrupts memory. A correct
 * allocator takes its locks around fork (pthread_atfork or equivalent) or avoids needing
 * them in the child.
 *
 * Workers allocate, verify and free blocks of many sizes (8 B .. 1 MiB), and pass blocks
 * to each other through a shared queue, so frees cross threads. Meanwhile the main thread
 * and worker 0 fork children. Each child frees and verifies blocks it inherited, allocates
 * heavily (sometimes from a new thread, sometimes in a grandchild), and exits with status
 * 0 only if every check passed; half exit through exit() (running atexit handlers and
 * library destructors), half through _exit(). An alarm kills a child that deadlocks, and
 * the parent reports it. Output is deterministic: counts only, no addresses or timings. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { WORKERS = 3, SLOTS = 256, FORKS_MAIN = 150, FORKS_WORKER = 50, QUEUE = 1024 };

static atomic_int stop;
static atomic_int worker_failures;

/* xorshift64*: deterministic per-thread sizes. */
static uint64_t next_rand(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Mostly small sizes, sometimes medium, rarely large (up to 1 MiB). */
static size_t pick_size(uint64_t *s) {
    uint64_t r = next_rand(s);
    switch (r % 16) {
    case 0: return 4096 + (r >> 8) % 60000;
    case 1: return (r >> 8) % 2 ? 65536 + (r >> 9) % (1 << 20) : 200;
    default: return 1 + (r >> 8) % 512;
    }
}

/* A block records its size and a tag in its first bytes, then a byte pattern. */
struct header {
    size_t size;
    uint32_t tag;
};

static void *make_block(size_t size, uint32_t tag) {
    if (size < sizeof(struct header)) size = sizeof(struct header);
    unsigned char *p = malloc(size);
    if (!p) return NULL;
    struct header h = {size, tag};
    memcpy(p, &h, sizeof h);
    for (size_t i = sizeof h; i < size; i++) p[i] = (unsigned char)(tag + i);
    return p;
}

static int check_block(const void *block) {
    const unsigned char *p = block;
    struct header h;
    memcpy(&h, p, sizeof h);
    /* Large blocks: check both ends and a stride, so the check stays cheap. */
    size_t step = h.size > 4096 ? 509 : 1;
    for (size_t i = sizeof h; i < h.size; i += step)
        if (p[i] != (unsigned char)(h.tag + i)) return 0;
    return p[h.size - 1] == (unsigned char)(h.tag + h.size - 1) || h.size == sizeof h;
}

/* The cross-thread queue: a worker pushes a block, another pops and frees it. */
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static void *queue[QUEUE];
static int queue_len;

static void push_block(void *p) {
    pthread_mutex_lock(&queue_lock);
    if (queue_len < QUEUE) {
        queue[queue_len++] = p;
        p = NULL;
    }
    pthread_mutex_unlock(&queue_lock);
    if (p) free(p);
}

static void *pop_block(void) {
    void *p = NULL;
    pthread_mutex_lock(&queue_lock);
    if (queue_len > 0) p = queue[--queue_len];
    pthread_mutex_unlock(&queue_lock);
    return p;
}

/* What a child does: verify and free what it inherited, then allocate on its own. */
static int child_work(int id, void **inherited, int count) {
    alarm(30); /* a deadlocked child dies with SIGALRM; the parent reports it */
    for (int i = 0; i < count; i++) {
        if (inherited[i] && !check_block(inherited[i])) return 3;
        free(inherited[i]);
    }
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)(id + 1);
    void *mine[64] = {0};
    for (int round = 0; round < 300; round++) {
        int slot = (int)(next_rand(&seed) % 64);
        if (mine[slot]) {
            if (!check_block(mine[slot])) return 4;
            free(mine[slot]);
        }
        mine[slot] = make_block(pick_size(&seed), (uint32_t)round);
        if (!mine[slot]) return 5;
    }
    /* realloc growth in the child. */
    char *grow = NULL;
    for (size_t n = 16; n <= (1 << 18); n *= 2) {
        char *g = realloc(grow, n);
        if (!g) return 6;
        memset(g + n / 2, (int)(n & 0x7f), n / 2);
        grow = g;
    }
    free(grow);
    for (int i = 0; i < 64; i++) {
        if (mine[i] && !check_block(mine[i])) return 7;
        free(mine[i]);
    }
    return 0;
}

static void *child_thread(void *arg) {
    int id = (int)(intptr_t)arg;
    void *none[1] = {NULL};
    return (void *)(intptr_t)child_work(id + 100000, none, 0);
}

/* The child's whole life; returns its exit status. */
static int child_main(int id, void **inherited, int count) {
    int rc = child_work(id, inherited, count);
    if (rc) return rc;
    if (id % 4 == 1) {
        /* A thread in the child: the allocator must work for new threads after fork. */
        pthread_t t;
        void *res;
        if (pthread_create(&t, NULL, child_thread, (void *)(intptr_t)id) != 0) return 8;
        pthread_join(t, &res);
        if ((intptr_t)res != 0) return 9;
    }
    if (id % 8 == 3) {
        /* A grandchild: fork from a process that was itself forked. */
        pid_t g = fork();
        if (g < 0) return 10;
        if (g == 0) {
            void *none[1] = {NULL};
            _exit(child_work(id + 200000, none, 0));
        }
        int st;
        if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 11;
    }
    return 0;
}

struct forker {
    int first_id, count;
    int failures;
    char message[256];
};

/* Forks `count` children one after another, each inheriting a few live blocks. */
static void fork_many(struct forker *f) {
    uint64_t seed = 12345 + (uint64_t)f->first_id;
    for (int k = 0; k < f->count; k++) {
        int id = f->first_id + k;
        void *gift[8];
        for (int i = 0; i < 8; i++) gift[i] = make_block(pick_size(&seed), (uint32_t)(id * 8 + i));
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            snprintf(f->message, sizeof f->message, "fork failed: %s", strerror(errno));
            f->failures++;
            return;
        }
        if (pid == 0) {
            int rc = child_main(id, gift, 8);
            if (id % 2) exit(rc);
            _exit(rc);
        }
        for (int i = 0; i < 8; i++) {
            if (!check_block(gift[i])) {
                snprintf(f->message, sizeof f->message, "parent block corrupted after fork %d", id);
                f->failures++;
            }
            free(gift[i]);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid) {
            snprintf(f->message, sizeof f->message, "waitpid: %s", strerror(errno));
            f->failures++;
        } else if (WIFSIGNALED(st)) {
            snprintf(f->message, sizeof f->message, "child %d killed by signal %d%s", id,
                     WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (deadlock after fork?)" : "");
            f->failures++;
        } else if (WEXITSTATUS(st) != 0) {
            snprintf(f->message, sizeof f->message, "child %d failed its checks (status %d)", id,
                     WEXITSTATUS(st));
            f->failures++;
        }
    }
}

static struct forker worker_forker;

static void *worker(void *arg) {
    int w = (int)(intptr_t)arg;
    uint64_t seed = 0x1234567ull * (uint64_t)(w + 1);
    void *slots[SLOTS] = {0};
    uint32_t tag = 0;
    int forks_done = 0;
    while (!atomic_load(&stop) || (w == 0 && forks_done == 0)) {
        int slot = (int)(next_rand(&seed) % SLOTS);
        if (slots[slot]) {
            if (!check_block(slots[slot])) atomic_fetch_add(&worker_failures, 1);
            /* Every third block goes to another thread to free. */
            if (tag % 3 == 0)
                push_block(slots[slot]);
            else
                free(slots[slot]);
        }
        slots[slot] = make_block(pick_size(&seed), tag++);
        if (!slots[slot]) atomic_fetch_add(&worker_failures, 1);
        void *other = pop_block();
        if (other) {
            if (!check_block(other)) atomic_fetch_add(&worker_failures, 1);
            free(other);
        }
        /* Worker 0 also forks, from a non-main thread, while its siblings allocate. */
        if (w == 0 && forks_done == 0 && tag == 2000) {
            fork_many(&worker_forker);
            forks_done = 1;
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i] && !check_block(slots[i])) atomic_fetch_add(&worker_failures, 1);
        free(slots[i]);
    }
    return NULL;
}

int main(void) {
    pthread_t threads[WORKERS];
    worker_forker.first_id = FORKS_MAIN;
    worker_forker.count = FORKS_WORKER;
    for (int w = 0; w < WORKERS; w++)
        if (pthread_create(&threads[w], NULL, worker, (void *)(intptr_t)w) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }

    struct forker main_forker = {.first_id = 0, .count = FORKS_MAIN};
    fork_many(&main_forker);

    atomic_store(&stop, 1);
    for (int w = 0; w < WORKERS; w++) pthread_join(threads[w], NULL);
    void *left;
    while ((left = pop_block())) {
        if (!check_block(left)) atomic_fetch_add(&worker_failures, 1);
        free(left);
    }

    int failed = 0;
    if (main_forker.failures) {
        printf("FAIL forks from the main thread: %d failures; last: %s\n", main_forker.failures,
               main_forker.message);
        failed = 1;
    } else {
        printf("ok %d children forked from the main thread while %d threads allocated\n", FORKS_MAIN,
               WORKERS);
    }
    if (worker_forker.failures) {
        printf("FAIL forks from a worker thread: %d failures; last: %s\n", worker_forker.failures,
               worker_forker.message);
        failed = 1;
    } else {
        printf("ok %d children forked from a worker thread\n", FORKS_WORKER);
    }
    if (atomic_load(&worker_failures)) {
        printf("FAIL worker blocks: %d corrupted or failed allocations\n", atomic_load(&worker_failures));
        failed = 1;
    } else {
        printf("ok worker blocks intact, cross-thread frees done\n");
    }
    return failed;
}

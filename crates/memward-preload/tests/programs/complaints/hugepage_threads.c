/* Complaint 6 (issue 8, item 3): the transparent-huge-page hint multiplies RSS.
 *
 * Reproduces: once the process holds 64 MiB, 400 threads that each keep 10 KiB alive at
 * the same time (glibc: +8 MiB RSS; memward with a process-wide huge-page rule: +805
 * MiB, a 2 MiB page per thread), then 8 blocks of 64 MiB touched once every 256 KiB
 * (glibc: 8 MiB resident; with the hint on huge blocks: a 2 MiB page per touch, 512 MiB).
 * Prints key=value lines; RSS from /proc/self/statm.
 *
 * Bounds the CI test applies (tests/complaints_large.rs; glibc meets them):
 *   threads_rss_delta_mib <= 48, sparse_rss_delta_mib <= 64.
 *
 * usage: hugepage_threads [THREADS] [KEEP_BYTES] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024L * 1024L)

static long rss_kib(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) {
        perror("statm");
        exit(2);
    }
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static pthread_barrier_t started, release_all;
static long keep_bytes = 10 * 1024;
static void **kept;

static void *worker(void *arg) {
    long id = (long)(size_t)arg;
    /* 10 blocks of KEEP/10 bytes: small blocks, kept past the thread's exit. */
    void **mine = &kept[id * 10];
    for (int i = 0; i < 10; i++) {
        mine[i] = malloc((size_t)keep_bytes / 10);
        if (!mine[i]) {
            fprintf(stderr, "malloc failed in thread %ld\n", id);
            exit(2);
        }
        memset(mine[i], (int)id, (size_t)keep_bytes / 10);
    }
    pthread_barrier_wait(&started);
    pthread_barrier_wait(&release_all);
    return NULL;
}

int main(int argc, char **argv) {
    long threads = argc > 1 ? atol(argv[1]) : 400;
    if (argc > 2)
        keep_bytes = atol(argv[2]);
    if (threads < 1 || keep_bytes < 10) {
        fprintf(stderr, "usage: hugepage_threads [THREADS] [KEEP_BYTES]\n");
        return 2;
    }
    kept = calloc((size_t)threads * 10, sizeof(void *));

    /* 80 MiB of small blocks in use, touched: the process is past any 64 MiB threshold. */
    long base_blocks = 80 * MIB / 1024;
    void **base = malloc((size_t)base_blocks * sizeof(void *));
    for (long i = 0; i < base_blocks; i++) {
        base[i] = malloc(1000);
        memset(base[i], 1, 1000);
    }

    long before = rss_kib();
    pthread_barrier_init(&started, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&release_all, NULL, (unsigned)threads + 1);
    pthread_t *tid = malloc((size_t)threads * sizeof(pthread_t));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (long t = 0; t < threads; t++) {
        if (pthread_create(&tid[t], &attr, worker, (void *)(size_t)t) != 0) {
            fprintf(stderr, "pthread_create failed at %ld\n", t);
            return 2;
        }
    }
    pthread_barrier_wait(&started);
    long during = rss_kib();
    pthread_barrier_wait(&release_all);
    for (long t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    long after_exit = rss_kib();
    printf("threads=%ld\n", threads);
    printf("keep_bytes_per_thread=%ld\n", keep_bytes);
    printf("rss_before_threads_mib=%.1f\n", before / 1024.0);
    printf("threads_rss_delta_mib=%.1f\n", (during - before) / 1024.0);
    printf("after_exit_rss_delta_mib=%.1f\n", (after_exit - before) / 1024.0);

    /* Big blocks used here and there: one byte every 256 KiB. */
    long sparse_before = rss_kib();
    void *big[8];
    for (int b = 0; b < 8; b++) {
        big[b] = malloc(64 * MIB);
        if (!big[b]) {
            fprintf(stderr, "malloc(64 MiB) failed\n");
            return 2;
        }
        for (long off = 0; off < 64 * MIB; off += 256 * 1024)
            ((volatile char *)big[b])[off] = 1;
    }
    long sparse_after = rss_kib();
    printf("sparse_rss_delta_mib=%.1f\n", (sparse_after - sparse_before) / 1024.0);
    for (int b = 0; b < 8; b++)
        free(big[b]);
    for (long i = 0; i < threads * 10; i++)
        free(kept[i]);
    for (long i = 0; i < base_blocks; i++)
        free(base[i]);
    free(base);
    free(kept);
    free(tid);
    return 0;
}

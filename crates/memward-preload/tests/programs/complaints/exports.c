/* Issue 8, item 8: the glibc-only malloc functions must come from the allocator in use.
 * A preloaded allocator that does not export malloc_info, mallopt and cfree leaves glibc's
 * versions bound: malloc_info then describes glibc's unused arena, mallopt tunes it, and
 * cfree (bound by old binaries as cfree@GLIBC_2.2.5) hands the allocator's blocks to
 * glibc's free, which aborts.
 *
 * The program reports, for each function, which object the dynamic linker bound
 * (bound_NAME=file, from dlsym + dladdr; same_NAME=1 when it is malloc's object), then
 * exercises each:
 *   malloc_info: its <system type="current"> total before and after 64 MiB of 4 KiB blocks
 *     (info_grew=1 when it rose by at least 60 MiB), and its answer to options != 0;
 *     when the document has memward's <memward> element, the purge delay it shows;
 *   mallopt: the return value for glibc's parameters, out-of-range values and an unknown
 *     number, and (under memward) the purge delay each M_TRIM_THRESHOLD call leaves;
 *   cfree: called through the versioned compat symbol an old binary binds, last, since an
 *     allocator without it crashes here (cfree_ok=1 when the program survives).
 * Bound: every function is the allocator's own (glibc meets it trivially: it is glibc).
 *
 * usage: exports
 * prints: bound_* same_* info_* mallopt_* delay_* cfree_* (key=value) */
#include "measure.h"
#include <dlfcn.h>
#include <malloc.h>

/* The compat symbol old binaries bind; new programs cannot name cfree directly. */
void cfree_compat(void *);
#if defined(__x86_64__)
__asm__(".symver cfree_compat, cfree@GLIBC_2.2.5");
#elif defined(__aarch64__)
__asm__(".symver cfree_compat, cfree@GLIBC_2.17");
#else
#error "cfree's compat version is only known for x86_64 and aarch64"
#endif

static const char *object_of(void *fn) {
    Dl_info info;
    if (!fn || !dladdr(fn, &info) || !info.dli_fname)
        return "none";
    const char *slash = strrchr(info.dli_fname, '/');
    return slash ? slash + 1 : info.dli_fname;
}

static void report_binding(const char *name, void *fn, const char *malloc_object) {
    const char *object = object_of(fn);
    printf("bound_%s=%s\n", name, object);
    printf("same_%s=%d\n", name, strcmp(object, malloc_object) == 0);
}

/* malloc_info's document, read back from a temporary file. */
static char document[1 << 16];

static int info_document(int options) {
    FILE *f = tmpfile();
    if (!f)
        fail("tmpfile");
    int rc = malloc_info(options, f);
    rewind(f);
    size_t n = fread(document, 1, sizeof document - 1, f);
    document[n] = 0;
    fclose(f);
    return rc;
}

/* The number in attribute `attr` of the last element that starts with `element`, or -2
 * when absent (the last <system type="current"> is the whole process's). */
static long info_value(const char *element, const char *attr) {
    const char *at = NULL;
    for (const char *p = document; (p = strstr(p, element)); p++)
        at = p;
    if (!at)
        return -2;
    const char *end = strchr(at, '>');
    char key[64];
    snprintf(key, sizeof key, " %s=\"", attr);
    const char *v = strstr(at, key);
    if (!v || (end && v > end))
        return -2;
    return strtol(v + strlen(key), NULL, 10);
}

static long purge_delay(void) {
    info_document(0);
    return info_value("<memward ", "purge_delay_ms");
}

int main(void) {
    const char *malloc_object = object_of(dlsym(RTLD_DEFAULT, "malloc"));
    printf("bound_malloc=%s\n", malloc_object);
    report_binding("malloc_info", dlsym(RTLD_DEFAULT, "malloc_info"), malloc_object);
    report_binding("mallopt", dlsym(RTLD_DEFAULT, "mallopt"), malloc_object);
    report_binding("cfree", (void *)cfree_compat, malloc_object);
    fflush(stdout);

    /* malloc_info follows the program's allocations. */
    if (info_document(0) != 0)
        fail("malloc_info(0, f)");
    long before = info_value("<system type=\"current\"", "size");
    enum { BLOCKS = 16384, BLOCK = 4096 };
    static char *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        if (!(blocks[i] = malloc(BLOCK)))
            fail("malloc");
        memset(blocks[i], i, BLOCK);
    }
    info_document(0);
    long after = info_value("<system type=\"current\"", "size");
    report("info_current_before", before);
    report("info_current_after", after);
    report("info_grew", before >= 0 && after >= before + (60L << 20));
    report("info_memward_element", info_value("<memward ", "allocations") >= 0);
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    report("info_bad_options", info_document(1));

    /* mallopt: glibc's parameters, glibc's range checks, an unknown number. */
    report("delay_start", purge_delay());
    report("mallopt_trim_off", mallopt(M_TRIM_THRESHOLD, -1));
    report("delay_after_trim_off", purge_delay());
    report("mallopt_trim_zero", mallopt(M_TRIM_THRESHOLD, 0));
    report("delay_after_trim_zero", purge_delay());
    report("mallopt_trim_positive", mallopt(M_TRIM_THRESHOLD, 128 * 1024));
    report("delay_after_trim_positive", purge_delay());
    report("mallopt_mmap_threshold", mallopt(M_MMAP_THRESHOLD, 1 << 20));
    report("mallopt_mmap_threshold_too_big", mallopt(M_MMAP_THRESHOLD, 64 << 20));
    report("mallopt_mxfast_too_big", mallopt(M_MXFAST, 1000));
    report("mallopt_arena_max", mallopt(M_ARENA_MAX, 2));
    report("mallopt_perturb_off", mallopt(M_PERTURB, 0));
    report("mallopt_perturb_on", mallopt(M_PERTURB, 0x5a));
    report("mallopt_unknown", mallopt(12345, 1));

    /* cfree, as an old binary calls it; under memward its effect shows in malloc_info. */
    enum { BIG = 1 << 20 };
    char *big = malloc(BIG);
    if (!big)
        fail("malloc");
    memset(big, 1, BIG);
    info_document(0);
    long in_use = info_value("<memward ", "in_use");
    cfree_compat(big);
    info_document(0);
    if (in_use >= 0)
        report("cfree_in_use_drop_kib", (in_use - info_value("<memward ", "in_use")) / 1024);
    report("cfree_ok", 1);
    return 0;
}

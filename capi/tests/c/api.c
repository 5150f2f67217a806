/* Every exported function's edge cases, checked against glibc's documented semantics.
 * Run under LD_PRELOAD=libpinalloc.so and linked against it; prints "ok" and exits 0. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pinalloc.h"

/* Deliberate: a failed realloc leaves its block usable, and foreign pointers are freed. */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"

static int failures;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

/* Sizes the compiler cannot see, so it neither warns about nor folds the huge ones. */
static volatile size_t huge = SIZE_MAX;
static volatile size_t half = SIZE_MAX / 2;
static volatile size_t max_object = PTRDIFF_MAX;

/* Looked up at run time, so one source serves the preloaded and the linked runs. */
static int (*stats_fn)(struct pinalloc_stats *);
static void (*purge_fn)(void);

static struct pinalloc_stats stats(void) {
    struct pinalloc_stats s;
    memset(&s, 0, sizeof s);
    CHECK(stats_fn(&s) == 0);
    return s;
}

static int aligned(const void *p, size_t align) { return ((uintptr_t)p & (align - 1)) == 0; }

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i);
}

static int intact(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i)) return 0;
    return 1;
}

static void the_allocator_is_pinalloc(void) {
    stats_fn = (int (*)(struct pinalloc_stats *))dlsym(RTLD_DEFAULT, "pinalloc_stats");
    purge_fn = (void (*)(void))dlsym(RTLD_DEFAULT, "pinalloc_purge");
    CHECK(stats_fn != NULL && purge_fn != NULL);
    if (!stats_fn || !purge_fn) return;
    Dl_info info;
    CHECK(dladdr((void *)malloc, &info) && info.dli_fname && strstr(info.dli_fname, "libpinalloc"));
    CHECK(stats_fn(NULL) == EINVAL);
}

static void malloc_and_free(void) {
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b && aligned(a, 16));
    free(a);
    free(b);
    free(NULL);
    static const size_t sizes[] = {1, 7, 8, 15, 16, 17, 24, 100, 1000, 1024, 1025, 4096, 10000,
                                   32768, 32769, 65536, 100000, 1 << 20, 5 << 20, 33 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = malloc(sizes[i]);
        CHECK(p && aligned(p, 16));
        CHECK(malloc_usable_size(p) >= sizes[i]);
        fill(p, sizes[i], (unsigned)i);
        CHECK(intact(p, sizes[i], (unsigned)i));
        errno = 1234;
        free(p);
        CHECK(errno == 1234);
    }
    for (size_t n = 1; n <= 70000; n += n / 8 + 1) {
        unsigned char *p = malloc(n);
        CHECK(p && aligned(p, 16) && malloc_usable_size(p) >= n);
        fill(p, n, 5);
        free(p);
    }
    errno = 0;
    CHECK(malloc(huge) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(max_object) == NULL && errno == ENOMEM);
    CHECK(malloc_usable_size(NULL) == 0);
}

static void calloc_zeroes_and_checks_overflow(void) {
    for (size_t n = 1; n <= (2 << 20); n = n * 3 + 5) {
        unsigned char *dirty = malloc(n);
        memset(dirty, 0xff, n);
        free(dirty);
        unsigned char *p = calloc(n, 1);
        CHECK(p && aligned(p, 16));
        int zero = 1;
        for (size_t i = 0; i < n; i++) zero &= p[i] == 0;
        CHECK(zero);
        free(p);
    }
    void *p = calloc(0, 5);
    CHECK(p != NULL);
    free(p);
    errno = 0;
    CHECK(calloc(half, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(3, half) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(huge, huge) == NULL && errno == ENOMEM);
}

static void realloc_keeps_contents(void) {
    unsigned char *p = realloc(NULL, 100);
    CHECK(p && aligned(p, 16) && malloc_usable_size(p) >= 100);
    fill(p, 100, 1);
    static const size_t steps[] = {200, 50, 5000, 40000, 3 << 20, 70000, 16, 9 << 20, 1};
    size_t kept = 50;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        fill(p, kept, (unsigned)i);
        p = realloc(p, steps[i]);
        CHECK(p && aligned(p, 16) && malloc_usable_size(p) >= steps[i]);
        CHECK(intact(p, kept < steps[i] ? kept : steps[i], (unsigned)i));
        kept = steps[i];
    }
    /* Failure leaves the block intact and usable. */
    fill(p, 1, 9);
    errno = 0;
    CHECK(realloc(p, huge) == NULL && errno == ENOMEM);
    CHECK(intact(p, 1, 9));
    /* realloc(p, 0) frees p and returns NULL (glibc). */
    CHECK(realloc(p, 0) == NULL);

    unsigned char *q = reallocarray(NULL, 10, 10);
    CHECK(q && malloc_usable_size(q) >= 100);
    fill(q, 100, 3);
    errno = 0;
    CHECK(reallocarray(q, half, 3) == NULL && errno == ENOMEM);
    CHECK(intact(q, 100, 3));
    q = reallocarray(q, 1000, 10);
    CHECK(q && intact(q, 100, 3));
    free(q);
}

static void posix_memalign_reports_errors_without_errno(void) {
    void *p = (void *)0x1;
    errno = 77;
    CHECK(posix_memalign(&p, 0, 16) == EINVAL);
    CHECK(posix_memalign(&p, 3, 16) == EINVAL);
    CHECK(posix_memalign(&p, 4, 16) == EINVAL); /* not a multiple of sizeof(void *) */
    CHECK(posix_memalign(&p, 24, 16) == EINVAL);
    CHECK(p == (void *)0x1);
    CHECK(posix_memalign(&p, 64, huge) == ENOMEM);
    CHECK(errno == 77);
    for (size_t align = sizeof(void *); align <= (16u << 20); align *= 2) {
        for (size_t size = 0; size <= 3 * align && size < (40u << 20); size += align / 2 + 1) {
            void *q = NULL;
            CHECK(posix_memalign(&q, align, size) == 0);
            CHECK(q && aligned(q, align) && aligned(q, 16) && malloc_usable_size(q) >= size);
            if (size) memset(q, 0x5a, size);
            free(q);
        }
    }
}

static void aligned_alloc_memalign_valloc_pvalloc(void) {
    errno = 0;
    CHECK(aligned_alloc(3, 16) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(0, 16) == NULL && errno == EINVAL);
    for (size_t align = 1; align <= (8u << 20); align *= 4) {
        void *p = aligned_alloc(align, 3 * align);
        CHECK(p && aligned(p, align) && aligned(p, 16) && malloc_usable_size(p) >= 3 * align);
        free(p);
    }
    void *m = memalign(24, 100); /* rounded up to 32 */
    CHECK(m && aligned(m, 32));
    free(m);
    m = memalign(1 << 16, 10);
    CHECK(m && aligned(m, 1 << 16) && malloc_usable_size(m) >= 10);
    m = realloc(m, 100000); /* realloc of an over-aligned block */
    CHECK(m && aligned(m, 16));
    free(m);
    errno = 0;
    CHECK(memalign(half + 2, 16) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(memalign(64, huge) == NULL && errno == ENOMEM);

    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *v = valloc(1);
    CHECK(v && aligned(v, page));
    free(v);
    void *pv = pvalloc(1);
    CHECK(pv && aligned(pv, page) && malloc_usable_size(pv) >= page);
    free(pv);
    pv = pvalloc(0);
    CHECK(pv != NULL);
    free(pv);
    errno = 0;
    CHECK(pvalloc(huge) == NULL && errno == ENOMEM);
}

static char foreign[256];

static void foreign_pointers_are_handled(void) {
    struct pinalloc_stats before = stats();
    CHECK(malloc_usable_size(foreign + 16) == 0);
    free(foreign + 16);
    for (int i = 0; i < 64; i++) foreign[i] = (char)i;
    char *moved = realloc(foreign, 32);
    CHECK(moved && moved != foreign && memcmp(moved, foreign, 32) == 0);
    CHECK(malloc_usable_size(moved) >= 32);
    free(moved);
    struct pinalloc_stats after = stats();
    CHECK(after.foreign_frees == before.foreign_frees + 1);
    CHECK(after.foreign_reallocs == before.foreign_reallocs + 1);
}

static void stats_and_purge(void) {
    struct pinalloc_stats before = stats();
    enum { N = 1000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) blocks[i] = malloc(4000);
    struct pinalloc_stats during = stats();
    CHECK(during.allocated_bytes >= before.allocated_bytes + N * 4000 / 2);
    CHECK(during.mapped_bytes >= during.active_bytes && during.segments >= 1);
    for (int i = 0; i < N; i++) free(blocks[i]);
    void *big = malloc(64 << 20);
    free(big);
    purge_fn();
    struct pinalloc_stats after = stats();
    CHECK(after.thread_cache_bytes == 0);
    CHECK(after.large_cached_bytes == 0);
    CHECK(after.purged_bytes_total > before.purged_bytes_total);
}

int main(void) {
    the_allocator_is_pinalloc();
    if (failures) return 1;
    malloc_and_free();
    calloc_zeroes_and_checks_overflow();
    realloc_keeps_contents();
    posix_memalign_reports_errors_without_errno();
    aligned_alloc_memalign_valloc_pvalloc();
    foreign_pointers_are_handled();
    stats_and_purge();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    puts("ok");
    return 0;
}

/* pinalloc.h: the C ABI of libpinalloc.so.
 *
 * libpinalloc.so exports the C library's allocation functions (malloc, free, calloc,
 * realloc, reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * malloc_usable_size) with glibc's semantics, so a program uses it either unchanged:
 *
 *     LD_PRELOAD=/path/to/libpinalloc.so program args
 *
 * or linked (its malloc then takes precedence over the C library's):
 *
 *     cc app.c -I/path/to/include -L/path/to/lib -lpinalloc -Wl,-rpath,/path/to/lib
 *
 * The declarations of the standard functions come from <stdlib.h> and <malloc.h>; this
 * header adds what only pinalloc has.
 */
#ifndef PINALLOC_H
#define PINALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A snapshot of the allocator's state, filled in by pinalloc_stats. */
struct pinalloc_stats {
    /* Bytes of blocks handed out (live, or free in some thread's cache). */
    size_t allocated_bytes;
    /* Bytes of pages in use by small-block spans and live large blocks. */
    size_t active_bytes;
    /* Bytes mapped from the OS. */
    size_t mapped_bytes;
    /* Resident bytes of small-block segments. */
    size_t small_resident_bytes;
    /* Small-block segments (4 MiB each) mapped. */
    size_t segments;
    /* Bytes of freed large mappings kept for reuse until the purge delay passes. */
    size_t large_cached_bytes;
    /* Bytes of free blocks held by the calling thread's cache. */
    size_t thread_cache_bytes;
    /* Bytes of free pages given back to the OS since start. */
    size_t purged_bytes_total;
    /* free() calls on pointers pinalloc did not hand out (left alone). */
    uint64_t foreign_frees;
    /* realloc() calls on pointers pinalloc did not hand out (moved into a new block). */
    uint64_t foreign_reallocs;
};

/* Fills *out. Returns 0, or EINVAL if out is NULL. */
int pinalloc_stats(struct pinalloc_stats *out);

/* Gives every free page back to the OS now, including the blocks cached by the calling
 * thread. Free pages are otherwise returned after a delay (PINALLOC_PURGE_DELAY_MS,
 * default 250 ms) by the threads that free memory. */
void pinalloc_purge(void);

#ifdef __cplusplus
}
#endif

#endif /* PINALLOC_H */

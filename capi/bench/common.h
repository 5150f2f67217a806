/* Shared by the allocator benchmark programs: a fast generator and block signatures. */
#ifndef PINALLOC_BENCH_COMMON_H
#define PINALLOC_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64*: enough randomness for sizes and slots, a few cycles per draw. */
static inline uint64_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Writes the block's size into its first word and a check byte at its end, so a block
 * handed out twice or overwritten is caught when it is freed. */
static inline void *sign(unsigned char *p, size_t size) {
    if (!p) {
        fprintf(stderr, "allocation of %zu bytes failed\n", size);
        exit(2);
    }
    memcpy(p, &size, sizeof size);
    p[size - 1] = (unsigned char)(size * 31u);
    return p;
}

static inline void check_and_free(unsigned char *p) {
    if (!p) return;
    size_t size;
    memcpy(&size, p, sizeof size);
    if (size < sizeof size || size > (1u << 30) || p[size - 1] != (unsigned char)(size * 31u)) {
        fprintf(stderr, "corrupted block %p\n", (void *)p);
        exit(3);
    }
    free(p);
}

static inline long arg(int argc, char **argv, int i, long fallback) {
    return argc > i ? strtol(argv[i], NULL, 10) : fallback;
}

#endif

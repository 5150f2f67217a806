/* mixed-small: one thread keeps LIVE small objects of mixed sizes (most below 64 bytes, a
 * tail up to 32 KiB, as a program's heap looks) and replaces random ones, then grows
 * strings by realloc and frees everything, repeatedly.
 * usage: mixed_small [ROUNDS=5] [OPS=2000000] [LIVE=200000] */
#include "common.h"

static size_t mixed_size(uint64_t r) {
    unsigned pick = (unsigned)(r % 100);
    r >>= 8;
    if (pick < 60) return 16 + r % 49;     /* 16..64 */
    if (pick < 90) return 65 + r % 448;    /* 65..512 */
    if (pick < 99) return 513 + r % 3584;  /* 513..4096 */
    return 4097 + r % 28672;               /* 4097..32768 */
}

int main(int argc, char **argv) {
    long rounds = arg(argc, argv, 1, 5);
    long ops = arg(argc, argv, 2, 2000000);
    long live = arg(argc, argv, 3, 200000);
    uint64_t seed = 42;
    unsigned char **blocks = calloc((size_t)live, sizeof *blocks);
    for (long round = 0; round < rounds; round++) {
        for (long i = 0; i < live; i++) {
            size_t size = mixed_size(next_random(&seed));
            blocks[i] = sign(malloc(size), size);
        }
        for (long i = 0; i < ops; i++) {
            uint64_t r = next_random(&seed);
            long slot = (long)(r % (uint64_t)live);
            check_and_free(blocks[slot]);
            size_t size = mixed_size(r >> 20);
            blocks[slot] = sign(malloc(size), size);
        }
        /* Strings grown a piece at a time. */
        for (long s = 0; s < live / 100; s++) {
            size_t len = 0, cap = 16;
            char *text = malloc(cap);
            for (int piece = 0; piece < 60; piece++) {
                if (len + 32 > cap) {
                    cap *= 2;
                    text = realloc(text, cap);
                    if (!text) return 2;
                }
                len += (size_t)snprintf(text + len, cap - len, "piece %d of %ld;", piece, s);
            }
            if (strncmp(text, "piece 0 of", 10) != 0) return 3;
            free(text);
        }
        for (long i = 0; i < live; i++) check_and_free(blocks[i]);
    }
    free(blocks);
    printf("ok %ld operations\n", rounds * (ops + 2 * live));
    return 0;
}

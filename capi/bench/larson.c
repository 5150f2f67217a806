/* larson: a server simulation after Larson and Krishnan's benchmark. Each of THREADS
 * workers owns an array of SLOTS blocks and replaces random ones (free, then malloc of
 * 16..512 bytes); after OPS replacements it exits and a new thread takes its array over,
 * so blocks are routinely freed by a thread other than the one that allocated them.
 * usage: larson [THREADS=2] [ROUNDS=30] [OPS=200000] [SLOTS=1000] */
#include <pthread.h>

#include "common.h"

static long threads, rounds, ops, slots;

struct worker {
    unsigned char **blocks;
    uint64_t seed;
    long round;
};

static void *work(void *arg) {
    struct worker *w = arg;
    /* The generator's state lives in a local: the workers' structs share a cache line, and
     * writing it there on every step would measure that false sharing, not the allocator. */
    uint64_t seed = w->seed;
    for (long i = 0; i < ops; i++) {
        uint64_t r = next_random(&seed);
        long slot = (long)(r % (uint64_t)slots);
        check_and_free(w->blocks[slot]);
        size_t size = 16 + (r >> 32) % 497;
        w->blocks[slot] = sign(malloc(size), size);
    }
    w->seed = seed;
    if (++w->round < rounds) {
        /* Hand the array to a fresh thread, as larson's workers do. */
        pthread_t next;
        if (pthread_create(&next, NULL, work, w) != 0) exit(4);
        pthread_join(next, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    threads = arg(argc, argv, 1, 2);
    rounds = arg(argc, argv, 2, 30);
    ops = arg(argc, argv, 3, 200000);
    slots = arg(argc, argv, 4, 1000);
    struct worker *workers = calloc((size_t)threads, sizeof *workers);
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    for (long t = 0; t < threads; t++) {
        workers[t].seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1);
        workers[t].blocks = calloc((size_t)slots, sizeof(unsigned char *));
        for (long s = 0; s < slots; s++) {
            size_t size = 16 + next_random(&workers[t].seed) % 497;
            workers[t].blocks[s] = sign(malloc(size), size);
        }
    }
    for (long t = 0; t < threads; t++) pthread_create(&ids[t], NULL, work, &workers[t]);
    for (long t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    for (long t = 0; t < threads; t++) {
        for (long s = 0; s < slots; s++) check_and_free(workers[t].blocks[s]);
        free(workers[t].blocks);
    }
    free(workers);
    free(ids);
    printf("ok %ld replacements\n", threads * rounds * ops);
    return 0;
}

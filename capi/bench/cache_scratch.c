/* cache-scratch: passive false sharing (after Hoard's benchmark). The main thread
 * allocates one small object per thread, back to back; each thread frees its object, then
 * repeatedly allocates an object of the same size and writes it many times. An allocator
 * that hands a thread the block freed into it, on a cache line shared with another
 * thread's, makes the lines bounce between cores.
 * usage: cache_scratch [THREADS=2] [ITERATIONS=2000] [WRITES=20000] [SIZE=8] */
#include <pthread.h>

#include "common.h"

static long iterations, writes, object_size;

static void *scratch(void *arg) {
    free(arg);
    for (long i = 0; i < iterations; i++) {
        volatile char *p = malloc((size_t)object_size);
        if (!p) exit(2);
        for (long w = 0; w < writes; w++)
            for (long b = 0; b < object_size; b++) p[b] = (char)(p[b] + w);
        free((void *)p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long threads = arg(argc, argv, 1, 2);
    iterations = arg(argc, argv, 2, 2000);
    writes = arg(argc, argv, 3, 20000);
    object_size = arg(argc, argv, 4, 8);
    if (threads < 1 || threads > 64) return 1;
    pthread_t ids[64];
    for (long t = 0; t < threads; t++) {
        char *object = malloc((size_t)object_size);
        memset(object, 0, (size_t)object_size);
        pthread_create(&ids[t], NULL, scratch, object);
    }
    for (long t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    printf("ok %ld objects\n", threads * iterations);
    return 0;
}

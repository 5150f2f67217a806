/* Blocks cross threads: producers allocate, consumers free (an xmalloc-style handoff through
 * a locked queue), every thread also reallocates its own blocks, and threads exit with
 * allocations made in pthread-key and TLS destructors. Prints "ok" and exits 0. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PRODUCERS = 4, CONSUMERS = 4, PER_PRODUCER = 200000, QUEUE = 4096, ROUNDS = 3 };

static void *queue[QUEUE];
static size_t head, tail;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;
static int producers_left;
static volatile int bad;

static void put(void *p) {
    pthread_mutex_lock(&lock);
    while (tail - head == QUEUE) pthread_cond_wait(&not_full, &lock);
    queue[tail++ % QUEUE] = p;
    pthread_cond_signal(&not_empty);
    pthread_mutex_unlock(&lock);
}

static void *take(void) {
    pthread_mutex_lock(&lock);
    while (tail == head && producers_left) pthread_cond_wait(&not_empty, &lock);
    void *p = tail == head ? NULL : queue[head++ % QUEUE];
    pthread_cond_signal(&not_full);
    pthread_mutex_unlock(&lock);
    return p;
}

static pthread_key_t key;

static void key_destructor(void *value) {
    /* Runs at thread exit, after the TLS destructors: allocation must still work. */
    void *late = malloc(48);
    memset(late, 1, 48);
    free(late);
    free(value);
}

static __thread char *tls_block;

static void *producer(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    pthread_setspecific(key, malloc(100));
    tls_block = malloc(64);
    for (int i = 0; i < PER_PRODUCER; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t size = 16 + (seed >> 16) % 2000;
        if ((seed & 0xff) == 0) size = 40000 + (seed >> 8) % 300000;
        unsigned char *p = malloc(size);
        if (!p) { bad = 1; break; }
        p[size - 1] = (unsigned char)(size >> 3);
        *(size_t *)(p + 0) = size;
        put(p);
        /* Own blocks, grown and shrunk. */
        if ((i & 63) == 0) {
            char *r = malloc(10);
            for (size_t n = 16; n < 100000; n *= 3) r = realloc(r, n);
            free(realloc(r, 5));
        }
    }
    pthread_mutex_lock(&lock);
    producers_left--;
    pthread_cond_broadcast(&not_empty);
    pthread_mutex_unlock(&lock);
    free(tls_block);
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    pthread_setspecific(key, malloc(200));
    for (;;) {
        unsigned char *p = take();
        if (!p) break;
        size_t size = *(size_t *)p;
        if (p[size - 1] != (unsigned char)(size >> 3)) bad = 1;
        free(p);
    }
    return NULL;
}

int main(void) {
    pthread_key_create(&key, key_destructor);
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t threads[PRODUCERS + CONSUMERS];
        producers_left = PRODUCERS;
        for (int i = 0; i < PRODUCERS; i++)
            pthread_create(&threads[i], NULL, producer, (void *)(uintptr_t)(i + 1 + round * 16));
        for (int i = 0; i < CONSUMERS; i++) pthread_create(&threads[PRODUCERS + i], NULL, consumer, NULL);
        for (int i = 0; i < PRODUCERS + CONSUMERS; i++) pthread_join(threads[i], NULL);
        if (head != tail) bad = 1;
    }
    /* Detached threads that allocate and exit on their own. */
    for (int i = 0; i < 64; i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_create(&t, &attr, consumer, NULL);
        pthread_attr_destroy(&attr);
    }
    if (bad) {
        fprintf(stderr, "a block was corrupted or an allocation failed\n");
        return 1;
    }
    puts("ok");
    return 0;
}

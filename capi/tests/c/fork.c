/* fork() while other threads allocate: the child must find the allocator unlocked and
 * consistent, allocate and free in it (also from new threads), and exit cleanly. Prints "ok". */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

static void *churn(void *arg) {
    (void)arg;
    void *blocks[64] = {0};
    unsigned seed = 7;
    while (!stop) {
        seed = seed * 1103515245u + 12345u;
        unsigned i = (seed >> 16) % 64;
        free(blocks[i]);
        size_t size = (seed >> 8) % 3 == 0 ? 50000 + seed % 200000 : 16 + seed % 3000;
        blocks[i] = malloc(size);
        memset(blocks[i], 1, 16);
    }
    for (int i = 0; i < 64; i++) free(blocks[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    for (int i = 0; i < 10000; i++) free(malloc((size_t)(16 + i % 5000)));
    return arg;
}

int main(void) {
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, churn, NULL);
    for (int round = 0; round < 200; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            char *p = malloc(1000);
            for (int i = 0; i < 1000; i++) free(malloc((size_t)(i * 37 % 70000 + 1)));
            pthread_t t;
            if (pthread_create(&t, NULL, child_thread, p) != 0 || pthread_join(t, NULL) != 0) _exit(2);
            free(p);
            _exit(0);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "child %d failed (status %d)\n", round, status);
            stop = 1;
            return 1;
        }
    }
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
    puts("ok");
    return 0;
}

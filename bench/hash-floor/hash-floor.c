/* The floor of hashing many files on this machine: the least any program can spend to read and SHA-256 them.
 *
 *   hash-floor THREADS MODE LIST      MODE 0: open + read + close only;  MODE 1: the same plus OpenSSL SHA-256
 *
 * LIST has one path per line. THREADS threads take files from a shared counter, read each through a 1 MiB buffer
 * with read(2) and hash it with OpenSSL's EVP SHA-256 (the implementation .NET uses on Linux). No directory walk,
 * no stat, no result kept: everything Kiln does on top (walking the tree, the stat before and after each read that
 * catches a file changed while read, the manifest) is left out, so Kiln ÷ this is the cost of Kiln's own work, and
 * this ÷ `openssl speed` is the cost of the kernel's (system calls, copies out of the page cache).
 * Built by bench/hash-bench.sh with `cc -O2 … -lcrypto` when the OpenSSL headers are there (Debian: libssl-dev).
 * Prints: files=N bytes=N wall_s=S */
#define _GNU_SOURCE
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char **paths;
static long count;
static int hash;
static long next_index;
static long long total_bytes;

static void *worker(void *unused)
{
    (void)unused;
    char *buffer = malloc(1 << 20);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len;
    long long bytes = 0;
    if (!buffer || !ctx) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (;;) {
        long i = __atomic_fetch_add(&next_index, 1, __ATOMIC_RELAXED);
        if (i >= count) break;
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) { perror(paths[i]); exit(1); }
        if (hash) EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        ssize_t n;
        while ((n = read(fd, buffer, 1 << 20)) > 0) {
            bytes += n;
            if (hash) EVP_DigestUpdate(ctx, buffer, (size_t)n);
        }
        if (n < 0) { perror(paths[i]); exit(1); }
        if (hash) EVP_DigestFinal_ex(ctx, digest, &digest_len);
        close(fd);
    }
    __atomic_fetch_add(&total_bytes, bytes, __ATOMIC_RELAXED);
    EVP_MD_CTX_free(ctx);
    free(buffer);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: hash-floor THREADS MODE(0 read, 1 read+sha256) LIST\n"); return 64; }
    int threads = atoi(argv[1]);
    hash = atoi(argv[2]);
    FILE *list = fopen(argv[3], "r");
    if (threads < 1 || threads > 256 || !list) { fprintf(stderr, "bad arguments\n"); return 64; }
    long capacity = 1 << 16;
    paths = malloc(sizeof(char *) * capacity);
    char line[8192];
    while (fgets(line, sizeof line, list)) {
        line[strcspn(line, "\n")] = 0;
        if (count == capacity) paths = realloc(paths, sizeof(char *) * (capacity *= 2));
        paths[count++] = strdup(line);
    }
    fclose(list);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t pool[256];
    for (int t = 0; t < threads; t++) pthread_create(&pool[t], NULL, worker, NULL);
    for (int t = 0; t < threads; t++) pthread_join(pool[t], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("files=%ld bytes=%lld wall_s=%.3f\n", count, total_bytes,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}

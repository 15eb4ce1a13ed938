/* A NumPy memory handler that keeps nanogan's large freed blocks for the next iteration.
 *
 * A training iteration allocates the same large temporaries every time (layer outputs,
 * gradients, unfolding buffers). glibc serves blocks from 128 KiB up with fresh mmap pages and
 * gives them back on free, so each iteration pays a page fault and a zero-fill for every page
 * of every temporary again. This handler (NumPy's NEP 49 allocator interface) is set only while
 * nanogan runs a training step (``nanogan._memory.workspace``, a context variable of NumPy's),
 * so only the arrays allocated there use it; every other allocation of the process keeps
 * NumPy's default handler.
 *
 *   malloc(n):  n >= NANOGAN_POOL_MIN and a kept block of exactly n bytes -> that block;
 *               else libc malloc.
 *   free(p, n): n >= NANOGAN_POOL_MIN and room in the pool (slots and the byte limit) -> kept;
 *               else libc free.
 *   calloc:     malloc, then zero-filled (a kept block) or libc calloc (a new one).
 *   realloc:    libc realloc (every block, kept or not, is a libc block).
 *
 * A new block of 4 MiB or more is offered transparent huge pages (madvise MADV_HUGEPAGE on its
 * whole pages), as NumPy's default allocator does on Linux, so that arrays from the pool are
 * backed as NumPy's own would be where the kernel's setting is "madvise".
 *
 * Sizes match exactly: the temporaries of one iteration recur with the same byte counts, so
 * the pool settles on them. A block is only ever handed to one array at a time: the pool holds
 * blocks whose arrays have been freed, nothing else. One mutex guards the slots (NumPy frees
 * under the GIL, but the handler does not rely on it).
 */
#ifndef NANOGAN_POOL_H
#define NANOGAN_POOL_H

#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <numpy/arrayobject.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#define NANOGAN_POOL_SLOTS 256
#define NANOGAN_POOL_MIN ((size_t)1 << 16)

typedef struct {
    void* ptr[NANOGAN_POOL_SLOTS];
    size_t size[NANOGAN_POOL_SLOTS];
    int count;
    size_t bytes;     /* bytes kept */
    size_t limit;     /* most bytes kept */
    size_t hits, misses;
    pthread_mutex_t lock;
} nanogan_pool_t;

static nanogan_pool_t nanogan_pool = {{0}, {0}, 0, 0, (size_t)512 << 20, 0, 0,
                                      PTHREAD_MUTEX_INITIALIZER};

/* A kept block of exactly n bytes (removed from the pool), or NULL. */
static void* nanogan_pool_take(size_t n) {
    void* p = NULL;
    pthread_mutex_lock(&nanogan_pool.lock);
    for (int i = nanogan_pool.count - 1; i >= 0; --i) {
        if (nanogan_pool.size[i] == n) {
            p = nanogan_pool.ptr[i];
            nanogan_pool.count--;
            nanogan_pool.ptr[i] = nanogan_pool.ptr[nanogan_pool.count];
            nanogan_pool.size[i] = nanogan_pool.size[nanogan_pool.count];
            nanogan_pool.bytes -= n;
            break;
        }
    }
    if (p) nanogan_pool.hits++; else nanogan_pool.misses++;
    pthread_mutex_unlock(&nanogan_pool.lock);
    return p;
}

static int nanogan_pool_hugepages = 1;
static size_t nanogan_pool_huge_min = (size_t)1 << 22;

/* Offer huge pages for the whole pages of a new block of at least 4 MiB (Linux). */
static void nanogan_pool_advise(void* p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p != NULL && nanogan_pool_hugepages && n >= nanogan_pool_huge_min) {
        const size_t page = 4096;
        size_t skip = (page - (size_t)((uintptr_t)p % page)) % page;
        size_t len = (n - skip) / page * page;
        if (len > 0) (void)madvise((char*)p + skip, len, MADV_HUGEPAGE);  /* a hint only */
    }
#else
    (void)p;
    (void)n;
#endif
}

static void* nanogan_pool_malloc(void* ctx, size_t n) {
    (void)ctx;
    if (n >= NANOGAN_POOL_MIN) {
        void* p = nanogan_pool_take(n);
        if (p) return p;
    }
    void* p = malloc(n);
    nanogan_pool_advise(p, n);
    return p;
}

static void* nanogan_pool_calloc(void* ctx, size_t nelem, size_t elsize) {
    (void)ctx;
    if (elsize != 0 && nelem > (size_t)-1 / elsize) return NULL;
    size_t n = nelem * elsize;
    if (n >= NANOGAN_POOL_MIN) {
        void* p = nanogan_pool_take(n);
        if (p) {
            memset(p, 0, n);
            return p;
        }
    }
    void* p = calloc(nelem, elsize);
    nanogan_pool_advise(p, n);
    return p;
}

static void* nanogan_pool_realloc(void* ctx, void* p, size_t n) {
    (void)ctx;
    void* q = realloc(p, n);
    nanogan_pool_advise(q, n);
    return q;
}

static void nanogan_pool_free(void* ctx, void* p, size_t n) {
    (void)ctx;
    if (p == NULL) return;
    if (n >= NANOGAN_POOL_MIN) {
        int kept = 0;
        pthread_mutex_lock(&nanogan_pool.lock);
        if (nanogan_pool.count < NANOGAN_POOL_SLOTS && nanogan_pool.bytes + n <= nanogan_pool.limit) {
            nanogan_pool.ptr[nanogan_pool.count] = p;
            nanogan_pool.size[nanogan_pool.count] = n;
            nanogan_pool.count++;
            nanogan_pool.bytes += n;
            kept = 1;
        }
        pthread_mutex_unlock(&nanogan_pool.lock);
        if (kept) return;
    }
    free(p);
}

/* Give every kept block back to libc; returns the bytes released. */
static size_t nanogan_pool_release(void) {
    void* ptrs[NANOGAN_POOL_SLOTS];
    int count;
    size_t bytes;
    pthread_mutex_lock(&nanogan_pool.lock);
    count = nanogan_pool.count;
    bytes = nanogan_pool.bytes;
    memcpy(ptrs, nanogan_pool.ptr, sizeof(void*) * (size_t)count);
    nanogan_pool.count = 0;
    nanogan_pool.bytes = 0;
    pthread_mutex_unlock(&nanogan_pool.lock);
    for (int i = 0; i < count; ++i) free(ptrs[i]);
    return bytes;
}

static void nanogan_pool_set_limit(size_t limit) {
    pthread_mutex_lock(&nanogan_pool.lock);
    nanogan_pool.limit = limit;
    pthread_mutex_unlock(&nanogan_pool.lock);
}

/* kept blocks, kept bytes, limit, hits, misses */
static void nanogan_pool_stats(size_t* out) {
    pthread_mutex_lock(&nanogan_pool.lock);
    out[0] = (size_t)nanogan_pool.count;
    out[1] = nanogan_pool.bytes;
    out[2] = nanogan_pool.limit;
    out[3] = nanogan_pool.hits;
    out[4] = nanogan_pool.misses;
    pthread_mutex_unlock(&nanogan_pool.lock);
}

static PyDataMem_Handler nanogan_pool_handler = {
    "nanogan_pool", 1,
    {NULL, nanogan_pool_malloc, nanogan_pool_calloc, nanogan_pool_realloc, nanogan_pool_free}};

/* The handler as the capsule PyDataMem_SetHandler takes. */
static PyObject* nanogan_pool_capsule(void) {
    return PyCapsule_New(&nanogan_pool_handler, "mem_handler", NULL);
}

#endif

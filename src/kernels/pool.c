/* Persistent thread pool for the kernels: workers are created once and wait for jobs
 * (spinning briefly, then blocking on a condition variable, since the machine is
 * often shared). vlmn_pool_run() hands one function to every thread, the caller
 * taking part as thread 0, and returns when all are done. */
#include "kernels/kernels_int.h"
#include "core/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <immintrin.h>

/* Iterations of a pause loop before a waiting thread blocks (~ tens of µs). */
#define POOL_SPIN 20000

struct vlmn_pool {
    int n;                  /* threads including the caller */
    pthread_t *th;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_start, cv_done;
    void (*fn)(void *ctx, int ith, int nth);
    void *ctx;
    atomic_ulong gen;       /* incremented (under mu) for every job */
    atomic_int pending;     /* workers still running the current job */
    atomic_int stop;
    void *scratch;          /* grow-only workspace for kernels, see pool_scratch */
    size_t scratch_bytes;
};

struct worker_arg { vlmn_pool *p; int ith; };

static void *worker_main(void *argp)
{
    struct worker_arg *wa = argp;
    vlmn_pool *p = wa->p;
    int ith = wa->ith;
    vlmn_free(wa);
    unsigned long seen = 0;
    for (;;) {
        unsigned long g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int i = 0; g == seen && i < POOL_SPIN; i++) {
            _mm_pause();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv_start, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) break;
        seen = g;
        p->fn(p->ctx, ith, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

vlmn_status vlmn_pool_create(int n_threads, vlmn_pool **out)
{
    *out = NULL;
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > VLMN_POOL_MAX_THREADS)
        return vlmn_error(VLMN_E_RANGE, "thread pool: %d threads (max %d)", n_threads,
                          VLMN_POOL_MAX_THREADS);
    vlmn_pool *p = vlmn_calloc(1, sizeof *p);
    if (!p) return vlmn_error(VLMN_E_NOMEM, "thread pool: out of memory");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_start, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    if (n_threads > 1) {
        p->th = vlmn_calloc((size_t)n_threads, sizeof *p->th);
        if (!p->th) goto nomem;
        for (int i = 1; i < n_threads; i++) {
            struct worker_arg *wa = vlmn_malloc(sizeof *wa);
            if (!wa) goto nomem;
            wa->p = p;
            wa->ith = i;
            if (pthread_create(&p->th[i], NULL, worker_main, wa) != 0) {
                vlmn_free(wa);
                vlmn_pool_free(p);
                return vlmn_error(VLMN_E_INTERNAL, "thread pool: cannot create thread %d", i);
            }
            p->n_started = i;
        }
    }
    *out = p;
    return VLMN_OK;
nomem:
    vlmn_pool_free(p);
    return vlmn_error(VLMN_E_NOMEM, "thread pool: out of memory");
}

void vlmn_pool_free(vlmn_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i <= p->n_started; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_start);
    pthread_cond_destroy(&p->cv_done);
    vlmn_free(p->th);
    vlmn_free_aligned(p->scratch);
    vlmn_free(p);
}

int vlmn_pool_size(const vlmn_pool *p) { return p ? p->n : 1; }

void vlmn_pool_run(vlmn_pool *p, void (*fn)(void *ctx, int ith, int nth), void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) && i < POOL_SPIN; i++)
        _mm_pause();
    if (atomic_load_explicit(&p->pending, memory_order_acquire)) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending)) pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Workspace shared by the threads of one job (the caller sizes it before
 * vlmn_pool_run). Without a pool, a per-thread buffer, freed when the thread exits
 * (pthread key destructor). NULL when out of memory. */
struct tl_buf { void *p; size_t cap; };
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
static int tl_key_ok;

static void tl_destroy(void *v)
{
    struct tl_buf *b = v;
    vlmn_free_aligned(b->p);
    vlmn_free(b);
}

static void tl_init(void) { tl_key_ok = pthread_key_create(&tl_key, tl_destroy) == 0; }

void *vlmn_pool_scratch(vlmn_pool *p, size_t bytes)
{
    void **buf;
    size_t *cap;
    if (p) {
        buf = &p->scratch;
        cap = &p->scratch_bytes;
    } else {
        pthread_once(&tl_once, tl_init);
        if (!tl_key_ok) return NULL;
        struct tl_buf *b = pthread_getspecific(tl_key);
        if (!b) {
            b = vlmn_calloc(1, sizeof *b);
            if (!b || pthread_setspecific(tl_key, b) != 0) {
                vlmn_free(b);
                return NULL;
            }
        }
        buf = &b->p;
        cap = &b->cap;
    }
    if (bytes <= *cap) return *buf;
    vlmn_free_aligned(*buf);
    *cap = 0;
    *buf = vlmn_malloc_aligned(bytes);
    if (*buf) *cap = bytes;
    return *buf;
}

/* test_threads.c: the API from several threads at once: blocks allocated in
 * one thread and freed in another, and concurrent churn with contents
 * checked, so per-thread caches are exercised through the public calls. */
#include "api.h"

#include <criterion/criterion.h>
#include <pthread.h>

#define N_THREADS 4
/* Blocks each producer thread hands over. */
#define HANDOFF_BLOCKS ((size_t)4000)
/* Per-thread churn: live slots and operations. */
#define THREAD_SLOTS ((size_t)512)
#define THREAD_OPS ((size_t)20000)
#define THREAD_MAX_SIZE (64 * KIB)

struct handoff {
  size_t thread;
  void **blocks;
  size_t *sizes;
};

static uint64_t handoff_seed(size_t thread, size_t i) {
  return ((uint64_t)thread << 32) | i;
}

static void *produce(void *arg) {
  struct handoff *h = arg;
  test_rng rng = test_rng_seeded(h->thread + 1);
  for (size_t i = 0; i < HANDOFF_BLOCKS; i++) {
    /* Mostly small, a few medium. */
    size_t size = test_rng_range(&rng, 0, 99) < 95 ? test_rng_range(&rng, 1, 512)
                                                   : test_rng_range(&rng, 513, 200 * KIB);
    h->blocks[i] = buddy_malloc(api_hide(size));
    h->sizes[i] = size;
    if (h->blocks[i] != NULL) test_fill(h->blocks[i], size, handoff_seed(h->thread, i));
  }
  return NULL;
}

/* Frees, from this thread, blocks another thread filled; returns how many
 * were corrupt (cast to a pointer for pthread_join). */
static void *consume(void *arg) {
  struct handoff *h = arg;
  size_t corrupt = 0;
  for (size_t i = 0; i < HANDOFF_BLOCKS; i++) {
    if (test_check(h->blocks[i], h->sizes[i], handoff_seed(h->thread, i)) != h->sizes[i]) corrupt++;
    buddy_free(h->blocks[i]);
  }
  return (void *)(uintptr_t)corrupt;
}

Test(threads, blocks_freed_by_another_thread) {
  struct handoff h[N_THREADS];
  pthread_t tid[N_THREADS];
  for (size_t t = 0; t < N_THREADS; t++) {
    h[t].thread = t;
    h[t].blocks = buddy_malloc(api_hide(HANDOFF_BLOCKS * sizeof(void *)));
    h[t].sizes = buddy_malloc(api_hide(HANDOFF_BLOCKS * sizeof(size_t)));
    cr_assert(h[t].blocks != NULL && h[t].sizes != NULL);
    cr_assert_eq(pthread_create(&tid[t], NULL, produce, &h[t]), 0);
  }
  for (size_t t = 0; t < N_THREADS; t++) {
    cr_assert_eq(pthread_join(tid[t], NULL), 0);
    for (size_t i = 0; i < HANDOFF_BLOCKS; i++)
      cr_assert_not_null(h[t].blocks[i], "thread %zu: block %zu failed", t, i);
  }
  /* Thread t frees what thread t+1 allocated (those threads have exited). */
  for (size_t t = 0; t < N_THREADS; t++)
    cr_assert_eq(pthread_create(&tid[t], NULL, consume, &h[(t + 1) % N_THREADS]), 0);
  for (size_t t = 0; t < N_THREADS; t++) {
    void *corrupt = NULL;
    cr_assert_eq(pthread_join(tid[t], &corrupt), 0);
    cr_assert_eq((uintptr_t)corrupt, 0, "%zu blocks of thread %zu corrupt when freed", (size_t)(uintptr_t)corrupt,
                 (t + 1) % N_THREADS);
  }
  for (size_t t = 0; t < N_THREADS; t++) {
    buddy_free(h[t].blocks);
    buddy_free(h[t].sizes);
  }
}

struct churner {
  size_t thread;
  size_t failures; /* allocation failures and corrupt blocks */
};

static void *churn(void *arg) {
  struct churner *c = arg;
  test_rng rng = test_rng_seeded(0xABCDu + c->thread);
  unsigned char *ptr[THREAD_SLOTS] = {0};
  size_t size[THREAD_SLOTS] = {0};
  uint64_t seed[THREAD_SLOTS] = {0};
  for (size_t op = 0; op < THREAD_OPS; op++) {
    size_t i = test_rng_range(&rng, 0, THREAD_SLOTS - 1);
    if (ptr[i] != NULL) {
      if (test_check(ptr[i], size[i], seed[i]) != size[i]) c->failures++;
      if (op % 4 == 0) {
        size_t n = test_rng_range(&rng, 1, THREAD_MAX_SIZE);
        unsigned char *q = buddy_realloc(ptr[i], api_hide(n));
        if (q == NULL) {
          c->failures++;
          continue;
        }
        size_t keep = n < size[i] ? n : size[i];
        if (test_check(q, keep, seed[i]) != keep) c->failures++;
        ptr[i] = q;
        size[i] = n;
        test_fill(q, n, seed[i]);
      } else {
        buddy_free(ptr[i]);
        ptr[i] = NULL;
      }
      continue;
    }
    size[i] = test_rng_range(&rng, 0, 99) < 90 ? test_rng_range(&rng, 0, 300)
                                               : test_rng_range(&rng, 301, THREAD_MAX_SIZE);
    ptr[i] = buddy_malloc(api_hide(size[i]));
    if (ptr[i] == NULL) {
      c->failures++;
      continue;
    }
    seed[i] = ((uint64_t)c->thread << 40) ^ op;
    test_fill(ptr[i], size[i], seed[i]);
  }
  for (size_t i = 0; i < THREAD_SLOTS; i++) {
    if (ptr[i] != NULL && test_check(ptr[i], size[i], seed[i]) != size[i]) c->failures++;
    buddy_free(ptr[i]);
  }
  return NULL;
}

Test(threads, concurrent_churn_keeps_blocks_intact) {
  struct churner c[N_THREADS];
  pthread_t tid[N_THREADS];
  for (size_t t = 0; t < N_THREADS; t++) {
    c[t].thread = t;
    c[t].failures = 0;
    cr_assert_eq(pthread_create(&tid[t], NULL, churn, &c[t]), 0);
  }
  for (size_t t = 0; t < N_THREADS; t++) {
    cr_assert_eq(pthread_join(tid[t], NULL), 0);
    cr_assert_eq(c[t].failures, 0, "thread %zu saw %zu failed or corrupt blocks", t, c[t].failures);
  }
}

/* stress_exit.c: threads that exit in the middle of allocating, and
 * allocation during thread teardown.
 *
 *  1. While churn threads allocate non-stop, waves of worker threads allocate
 *     heavily and call pthread_exit() from deep inside their loop, handing a
 *     heap-allocated list of live blocks to main, which checks and frees them
 *     after the thread (and its allocator cache) is gone.
 *  2. A pthread key destructor frees the thread's value, allocates and frees
 *     more blocks, hands one block out to main, and re-arms the key once so
 *     it runs a second time (later in teardown).
 *  3. A C11 thread_local table of blocks is cleaned up by a pthread key
 *     destructor, which also allocates while doing it.
 *  4. A thread_local destructor registered the way C++ thread_local objects
 *     register theirs (__cxa_thread_atexit_impl) allocates and frees too.
 * Blocks made during teardown must stay intact and freeable by main.
 */
#include <threads.h>

#include "stress_common.h"

#define EX_CHURN_THREADS 2
#define EX_CHURN_SLOTS 128
#define EX_WORKERS 240 /* threads that exit mid-allocation */
#define EX_WAVE 4
#define EX_WORKER_MAX_BLOCKS 96 /* a worker exits after at most this many */
#define EX_HANDOFF 8            /* blocks each worker hands to main */
#define EX_TEARDOWN_THREADS 64  /* threads that allocate in destructors */
#define EX_DTOR_BLOCKS 16       /* blocks allocated inside each destructor */
#define EX_TLS_BLOCKS 8
#define EX_MAX_SIZE (64 * KIB)

/* ---- blocks handed to main ------------------------------------------------ */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static stress_block *out_blocks;
static size_t out_count, out_cap;

static void hand_out(const stress_block *b) {
  pthread_mutex_lock(&out_lock);
  if (out_count == out_cap) {
    size_t cap = out_cap ? out_cap * 2 : 256;
    stress_block *nb = realloc(out_blocks, cap * sizeof *nb);
    if (nb == NULL) stress_die("realloc of hand-out list", ENOMEM);
    out_blocks = nb;
    out_cap = cap;
  }
  out_blocks[out_count++] = *b;
  pthread_mutex_unlock(&out_lock);
}

static size_t drain_handed_out(const char *where) {
  size_t n;
  pthread_mutex_lock(&out_lock);
  n = out_count;
  for (size_t i = 0; i < out_count; i++) stress_release(&out_blocks[i], where);
  out_count = 0;
  pthread_mutex_unlock(&out_lock);
  return n;
}

/* Allocates, checks and frees `n` blocks, handing the last one out. */
static void allocate_some(test_rng *rng, unsigned tid, unsigned n, const char *where) {
  stress_block b[EX_DTOR_BLOCKS];
  for (unsigned i = 0; i < n && i < EX_DTOR_BLOCKS; i++)
    if (!stress_alloc(&b[i], rng, stress_pick_small(rng, EX_MAX_SIZE), tid, 1000 + i)) b[i].p = NULL;
  for (unsigned i = 0; i + 1 < n && i < EX_DTOR_BLOCKS; i++)
    if (b[i].p != NULL) stress_release(&b[i], where);
  if (n > 0 && b[n - 1].p != NULL) hand_out(&b[n - 1]);
}

/* ---- part 1: exit during heavy allocation --------------------------------- */

static atomic_bool stop_churn;

static void *churn(void *argp) {
  unsigned tid = (unsigned)(uintptr_t)argp;
  stress_block slots[EX_CHURN_SLOTS] = {0};
  test_rng rng;
  uint64_t seq = 0;
  test_rng_seed(&rng, tid);
  while (!atomic_load(&stop_churn)) {
    stress_block *s = &slots[test_rng_below(&rng, EX_CHURN_SLOTS)];
    if (s->p != NULL) stress_release(s, "churn free");
    else stress_alloc(s, &rng, stress_pick_size(&rng), tid, ++seq);
  }
  for (unsigned i = 0; i < EX_CHURN_SLOTS; i++)
    if (slots[i].p != NULL) stress_release(&slots[i], "churn final free");
  return NULL;
}

typedef struct {
  unsigned tid;
  unsigned exit_after; /* allocations before pthread_exit */
} worker_arg;

typedef struct {
  unsigned count;
  stress_block blocks[EX_HANDOFF];
} handoff;

static void worker_step(stress_block *live, unsigned i, test_rng *rng, const worker_arg *a) {
  if (!stress_alloc(&live[i], rng, stress_pick_small(rng, EX_MAX_SIZE), a->tid, i)) live[i].p = NULL;
  if (i == a->exit_after) {
    /* Leave now, from inside the loop: hand the newest blocks to main,
     * free the rest just before dying so the thread cache is warm. */
    handoff *h = malloc(sizeof *h);
    if (h == NULL) stress_die("malloc handoff", ENOMEM);
    h->count = 0;
    for (unsigned k = 0; k <= i; k++) {
      if (live[k].p == NULL) continue;
      if (k + EX_HANDOFF > i && h->count < EX_HANDOFF) h->blocks[h->count++] = live[k];
      else stress_release(&live[k], "worker free before exit");
    }
    pthread_exit(h);
  }
}

static void *worker(void *argp) {
  const worker_arg *a = argp;
  stress_block live[EX_WORKER_MAX_BLOCKS];
  test_rng rng;
  test_rng_seed(&rng, a->tid * 31u);
  for (unsigned i = 0; i < EX_WORKER_MAX_BLOCKS; i++) worker_step(live, i, &rng, a);
  stress_fail("worker %u did not exit", a->tid);
  return NULL;
}

static void part_exit_mid_allocation(void) {
  pthread_t churners[EX_CHURN_THREADS];
  unsigned long before = atomic_load(&stress_failures);
  unsigned workers = (unsigned)stress_work(EX_WORKERS);
  unsigned handed = 0;
  test_rng rng;
  test_rng_seed(&rng, 77);
  for (unsigned t = 0; t < EX_CHURN_THREADS; t++) stress_spawn(&churners[t], churn, (void *)(uintptr_t)(t + 1));
  for (unsigned w = 0; w < workers; w += EX_WAVE) {
    pthread_t th[EX_WAVE];
    worker_arg args[EX_WAVE];
    for (unsigned k = 0; k < EX_WAVE; k++) {
      args[k] = (worker_arg){.tid = 100 + w + k, .exit_after = (unsigned)test_rng_below(&rng, EX_WORKER_MAX_BLOCKS)};
      stress_spawn(&th[k], worker, &args[k]);
    }
    for (unsigned k = 0; k < EX_WAVE; k++) {
      handoff *h = stress_join(th[k]);
      if (h == NULL) continue;
      for (unsigned i = 0; i < h->count; i++) stress_release(&h->blocks[i], "block of a thread that exited");
      handed += h->count;
      free(h);
    }
  }
  atomic_store(&stop_churn, true);
  for (unsigned t = 0; t < EX_CHURN_THREADS; t++) stress_join(churners[t]);
  char msg[128];
  snprintf(msg, sizeof msg, "%u threads exited mid-allocation, %u blocks they left intact", workers, handed);
  stress_check(atomic_load(&stress_failures) == before && handed > 0, msg);
}

/* ---- part 2: pthread key destructor that allocates ----------------------- */

static pthread_key_t alloc_key;
static atomic_uint key_dtor_runs;

static void key_dtor(void *value) {
  stress_block *b = value;
  test_rng rng;
  unsigned run = atomic_fetch_add(&key_dtor_runs, 1);
  test_rng_seed(&rng, 500 + run);
  unsigned tid = b->tid;
  bool first = b->seq == 0;
  stress_release(b, "key value in destructor");
  free(b);
  allocate_some(&rng, tid, EX_DTOR_BLOCKS, "key destructor free");
  if (first) {
    /* Re-arm once: glibc runs the destructor again in the next pass. */
    stress_block *again = malloc(sizeof *again);
    if (again == NULL || !stress_alloc(again, &rng, 100, tid, 0)) {
      stress_fail("allocation in key destructor failed");
      free(again);
      return;
    }
    again->seq = 1; /* marks the second incarnation; refill to match */
    test_fill_sampled(again->p, again->size, stress_cookie(again->p, again->tid, again->seq));
    if (pthread_setspecific(alloc_key, again) != 0) stress_fail("pthread_setspecific in destructor failed");
  }
}

/* ---- part 3: C11 thread_local blocks freed by a key destructor ------------ */

static thread_local stress_block tls_blocks[EX_TLS_BLOCKS];
static pthread_key_t tls_key;
static atomic_uint tls_dtor_runs;

static void tls_cleanup(void *value) {
  (void)value; /* only a non-NULL marker: the state is in tls_blocks */
  test_rng rng;
  unsigned tid = tls_blocks[0].tid;
  atomic_fetch_add(&tls_dtor_runs, 1);
  test_rng_seed(&rng, 900 + tid);
  for (unsigned i = 0; i < EX_TLS_BLOCKS; i++)
    if (tls_blocks[i].p != NULL) stress_release(&tls_blocks[i], "thread_local block in destructor");
  allocate_some(&rng, tid, EX_DTOR_BLOCKS / 2, "thread_local destructor free");
}

/* ---- part 4: C++-style thread_local destructor ---------------------------- */

extern int __cxa_thread_atexit_impl(void (*dtor)(void *), void *obj, void *dso_symbol);
extern void *__dso_handle;

static thread_local stress_block cxx_tls_block;
static atomic_uint cxx_dtor_runs;

static void cxx_tls_dtor(void *obj) {
  stress_block *b = obj;
  test_rng rng;
  atomic_fetch_add(&cxx_dtor_runs, 1);
  test_rng_seed(&rng, 1300 + b->tid);
  unsigned tid = b->tid;
  if (b->p != NULL) stress_release(b, "C++-style thread_local in destructor");
  allocate_some(&rng, tid, EX_DTOR_BLOCKS / 2, "C++-style destructor free");
}

static void *teardown_thread(void *argp) {
  unsigned tid = (unsigned)(uintptr_t)argp;
  test_rng rng;
  test_rng_seed(&rng, tid);
  stress_block *b = malloc(sizeof *b);
  if (b == NULL || !stress_alloc(b, &rng, stress_pick_small(&rng, EX_MAX_SIZE), tid, 0)) {
    stress_fail("teardown thread %u: allocation failed", tid);
    free(b);
    return NULL;
  }
  if (pthread_setspecific(alloc_key, b) != 0) stress_fail("pthread_setspecific failed");
  for (unsigned i = 0; i < EX_TLS_BLOCKS; i++)
    if (!stress_alloc(&tls_blocks[i], &rng, stress_pick_small(&rng, EX_MAX_SIZE), tid, 10 + i)) tls_blocks[i].p = NULL;
  if (pthread_setspecific(tls_key, &tls_blocks[0]) != 0) stress_fail("pthread_setspecific failed");
  if (!stress_alloc(&cxx_tls_block, &rng, stress_pick_small(&rng, EX_MAX_SIZE), tid, 50)) cxx_tls_block.p = NULL;
  if (__cxa_thread_atexit_impl(cxx_tls_dtor, &cxx_tls_block, &__dso_handle) != 0)
    stress_fail("__cxa_thread_atexit_impl failed");
  return NULL;
}

static void part_teardown_allocation(void) {
  unsigned long before = atomic_load(&stress_failures);
  unsigned threads = (unsigned)stress_work(EX_TEARDOWN_THREADS);
  int rc = pthread_key_create(&alloc_key, key_dtor);
  if (rc == 0) rc = pthread_key_create(&tls_key, tls_cleanup);
  if (rc != 0) stress_die("pthread_key_create", rc);
  for (unsigned t = 0; t < threads; t++) {
    pthread_t th;
    stress_spawn(&th, teardown_thread, (void *)(uintptr_t)(1 + t));
    stress_join(th);
  }
  size_t handed = drain_handed_out("block allocated during thread teardown");
  char msg[160];
  snprintf(msg, sizeof msg, "pthread key destructor allocated, re-armed and ran twice per thread (%u of %u)",
           atomic_load(&key_dtor_runs), 2 * threads);
  stress_check(atomic_load(&key_dtor_runs) == 2 * threads, msg);
  snprintf(msg, sizeof msg, "thread_local blocks freed and new ones allocated in a key destructor (%u of %u)",
           atomic_load(&tls_dtor_runs), threads);
  stress_check(atomic_load(&tls_dtor_runs) == threads, msg);
  snprintf(msg, sizeof msg, "C++-style thread_local destructor allocated (%u of %u)", atomic_load(&cxx_dtor_runs),
           threads);
  stress_check(atomic_load(&cxx_dtor_runs) == threads, msg);
  snprintf(msg, sizeof msg, "%zu blocks allocated during teardown intact after the threads were gone", handed);
  stress_check(atomic_load(&stress_failures) == before && handed == 4 * (size_t)threads, msg);
  pthread_key_delete(alloc_key);
  pthread_key_delete(tls_key);
}

int main(void) {
  part_exit_mid_allocation();
  part_teardown_allocation();
  free(out_blocks);
  return stress_finish("stress_exit");
}

/* thread_pools.c: independent per-thread pools.
 *
 * Stresses: thread scalability of the fast path.  Each of T threads churns
 * its own private pool (random replacement, 16..1024 B, no sharing), so an
 * allocator with good thread caches scales to the core count and one with
 * a contended global lock or shared cache lines does not.  The total work
 * (-n) is split evenly between the threads, so on an idle 2-core machine
 * the elapsed time at T=2 is ideally half that at T=1.
 */
#include <pthread.h>

#include "bench_common.h"

#define POOL_SLOTS 4096
#define SIZE_MIN 16
#define SIZE_MAX_BYTES 1024
#define DEFAULT_OPS 36000000L
#define QUICK_OPS 1000000L
#define MAX_THREADS 1024

typedef struct {
  pthread_t thread;
  int index;
  long ops;
  uint64_t checksum;
  pthread_barrier_t *start;
} worker;

typedef struct {
  void *ptr;
  size_t size;
  uint64_t tag;
} slot;

static void *worker_main(void *arg) {
  worker *w = arg;
  bench_rng rng;
  bench_rng_init(&rng, 100 + (uint64_t)w->index);
  slot *pool = bench_xmalloc(POOL_SLOTS * sizeof *pool);
  uint64_t checksum = 0;
  pthread_barrier_wait(w->start);

  for (size_t i = 0; i < POOL_SLOTS; i++) {
    pool[i].size = bench_rng_range(&rng, SIZE_MIN, SIZE_MAX_BYTES);
    pool[i].tag = bench_rng_next(&rng);
    pool[i].ptr = bench_xmalloc(pool[i].size);
    bench_stamp(pool[i].ptr, pool[i].size, pool[i].tag);
  }
  for (long op = 0; op < w->ops; op++) {
    slot *s = &pool[bench_rng_below(&rng, POOL_SLOTS)];
    checksum += bench_mix(bench_check(s->ptr, s->size, s->tag));
    free(s->ptr);
    s->size = bench_rng_range(&rng, SIZE_MIN, SIZE_MAX_BYTES);
    s->tag = bench_rng_next(&rng);
    s->ptr = bench_xmalloc(s->size);
    bench_stamp(s->ptr, s->size, s->tag);
  }
  for (size_t i = 0; i < POOL_SLOTS; i++) {
    checksum += bench_mix(bench_check(pool[i].ptr, pool[i].size, pool[i].tag));
    free(pool[i].ptr);
  }
  free(pool);
  w->checksum = checksum;
  return NULL;
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_OPS, .threads = 1, .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_OPS, "-n: total operations, split over -t threads");
  if (opts.threads > MAX_THREADS) opts.threads = MAX_THREADS;

  worker *workers = calloc((size_t)opts.threads, sizeof *workers);
  pthread_barrier_t start_barrier;
  pthread_barrier_init(&start_barrier, NULL, (unsigned)opts.threads + 1);
  for (int i = 0; i < opts.threads; i++) {
    workers[i].index = i;
    workers[i].ops = opts.n / opts.threads;
    workers[i].start = &start_barrier;
    if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
      fprintf(stderr, "thread_pools: pthread_create failed\n");
      return 2;
    }
  }
  pthread_barrier_wait(&start_barrier);
  double start = bench_now();
  uint64_t checksum = 0;
  for (int i = 0; i < opts.threads; i++) {
    pthread_join(workers[i].thread, NULL);
    checksum += workers[i].checksum;
  }
  double seconds = bench_now() - start;
  pthread_barrier_destroy(&start_barrier);

  char name[64];
  snprintf(name, sizeof name, "pools-t%d", opts.threads);
  char extra[64];
  snprintf(extra, sizeof extra, "threads=%d", opts.threads);
  bench_report(name, (opts.n / opts.threads) * opts.threads, seconds, checksum, extra);
  free(workers);
  return 0;
}

/* thread_generations.c: generations of threads inheriting each other's objects.
 *
 * Stresses: memory held across thread lifetimes when threads come and go
 * in waves, as in a program that runs each job on a fresh set of threads.
 * Each generation is T threads started together and joined together; the
 * next generation starts only when the previous one has exited.  A shared
 * table is split into T regions; in generation g thread i works on region
 * (i + g) mod T, so it inherits the objects a different thread of the
 * previous generation left there.  It frees about half of them, then
 * replaces random entries of the region with new blocks (16 B..4 KiB,
 * log-uniform), freeing whatever the entry held (inherited or its own).
 * The live set is bounded by the table size, so peak RSS (VmHWM, reported
 * with the time) shows how much memory the allocator keeps per dead
 * generation on top of it: per-thread caches or arenas that are not
 * reclaimed, or freed memory that new threads cannot reuse.  The final RSS
 * is taken with the last generation's objects still live.  Threads of one
 * generation touch disjoint regions and use their own PRNG streams, so the
 * checksum does not depend on the schedule.
 * -n is the number of generations; -t the threads per generation.
 */
#include <pthread.h>

#include "bench_common.h"

#define REGION_SLOTS 2000
#define INHERITED_FREE_ONE_IN 2
#define REPLACEMENTS_PER_THREAD 4000
#define SIZE_MIN 16
#define SIZE_MAX_BYTES 4096
#define DEFAULT_GENERATIONS 300L
#define QUICK_GENERATIONS 30L
#define DEFAULT_THREADS 4
#define MAX_THREADS 256

typedef struct {
  void *ptr;
  uint32_t size;
  uint64_t tag;
} entry;

typedef struct {
  pthread_t thread;
  long generation;
  int index;
  entry *region;
  uint64_t checksum;
  long inherited_freed;
} worker;

static int thread_count;

static uint64_t release(entry *e) {
  uint64_t sum = bench_mix(bench_check(e->ptr, e->size, e->tag) + e->size);
  free(e->ptr);
  e->ptr = NULL;
  return sum;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  bench_rng rng;
  uint64_t stream = (uint64_t)w->generation * (uint64_t)thread_count + (uint64_t)w->index;
  bench_rng_init(&rng, 900000 + stream);
  uint64_t checksum = 0;
  long inherited_freed = 0;
  /* The previous generation's survivors: about half go now. */
  for (size_t k = 0; k < REGION_SLOTS; k++) {
    if (w->region[k].ptr && bench_rng_below(&rng, INHERITED_FREE_ONE_IN) == 0) {
      checksum += release(&w->region[k]);
      inherited_freed++;
    }
  }
  for (int r = 0; r < REPLACEMENTS_PER_THREAD; r++) {
    entry *e = &w->region[bench_rng_below(&rng, REGION_SLOTS)];
    if (e->ptr) checksum += release(e);
    e->size = (uint32_t)bench_rng_logsize(&rng, SIZE_MIN, SIZE_MAX_BYTES);
    e->tag = bench_rng_next(&rng);
    e->ptr = bench_xmalloc(e->size);
    bench_stamp(e->ptr, e->size, e->tag);
  }
  w->checksum = checksum;
  w->inherited_freed = inherited_freed;
  return NULL;
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_GENERATIONS, .threads = DEFAULT_THREADS, .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_GENERATIONS, "-n: generations; -t: threads per generation");
  thread_count = opts.threads > MAX_THREADS ? MAX_THREADS : opts.threads;
  entry *table = calloc((size_t)thread_count * REGION_SLOTS, sizeof *table);
  worker *workers = calloc((size_t)thread_count, sizeof *workers);
  if (!table || !workers) return 2;
  uint64_t checksum = 0;
  long inherited_freed = 0;
  double start = bench_now();
  for (long g = 0; g < opts.n; g++) {
    for (int i = 0; i < thread_count; i++) {
      workers[i].generation = g;
      workers[i].index = i;
      workers[i].region = table + (size_t)((i + g) % thread_count) * REGION_SLOTS;
      if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
        fprintf(stderr, "thread_generations: pthread_create failed\n");
        return 2;
      }
    }
    for (int i = 0; i < thread_count; i++) {
      pthread_join(workers[i].thread, NULL);
      checksum += workers[i].checksum;
      inherited_freed += workers[i].inherited_freed;
    }
  }
  double seconds = bench_now() - start;
  /* RSS with the last generation's objects still live, then free them. */
  long rss_final = bench_rss_kb();
  long rss_peak = bench_peak_rss_kb();
  size_t live_bytes = 0;
  for (size_t k = 0; k < (size_t)thread_count * REGION_SLOTS; k++) {
    if (table[k].ptr) {
      live_bytes += table[k].size;
      checksum += release(&table[k]);
    }
  }
  free(table);
  free(workers);
  char extra[192];
  snprintf(extra, sizeof extra,
           "threads=%d threads_created=%ld inherited_freed=%ld rss_peak_kb=%ld rss_final_kb=%ld "
           "live_kb=%zu",
           thread_count, opts.n * thread_count, inherited_freed, rss_peak, rss_final, live_bytes / 1024);
  bench_report("thread-generations", opts.n * thread_count * REPLACEMENTS_PER_THREAD, seconds, checksum, extra);
  return 0;
}

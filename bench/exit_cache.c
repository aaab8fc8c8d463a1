/* exit_cache.c: threads that exit with a full cache and half their blocks out.
 *
 * Stresses: what happens to a thread's cached free blocks, and to the
 * blocks it hands out, when it exits.  Each round, a new thread allocates
 * a few hundred small blocks (16..512 B, log-uniform), frees every other
 * one itself (so they sit in its thread cache, if the allocator has one,
 * on the same pages as the others), passes the rest to the main thread and
 * exits.  Once the thread is joined, the main thread frees the blocks it
 * was passed (frees of memory whose owner is dead), keeping one in sixteen
 * for the rest of the run, so that some live data stays scattered over the
 * pages those threads used.  At the end it reports the RSS (VmRSS) with
 * only those blocks live, next to their size (live_kb) and the RSS before
 * the first round: an allocator that strands exited threads' caches, or
 * cannot reuse pages that dead threads' blocks were freed into, ends far
 * above the live data.  -n is the number of rounds; -t the threads per
 * round (default 1; they run at the same time).
 */
#include <pthread.h>

#include "bench_common.h"

#define BLOCKS_PER_THREAD 300
#define SIZE_MIN 16
#define SIZE_MAX_BYTES 512
#define KEEP_ONE_IN 16
#define DEFAULT_ROUNDS 1000L
#define QUICK_ROUNDS 100L
#define DEFAULT_THREADS 1
#define MAX_THREADS 256

typedef struct {
  void *ptr;
  uint32_t size;
  uint64_t tag;
} block;

typedef struct {
  pthread_t thread;
  uint64_t stream;
  block passed[BLOCKS_PER_THREAD / 2]; /* filled by the thread, freed by main */
  uint64_t checksum;
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  bench_rng rng;
  bench_rng_init(&rng, w->stream);
  block own[BLOCKS_PER_THREAD];
  for (int i = 0; i < BLOCKS_PER_THREAD; i++) {
    own[i].size = (uint32_t)bench_rng_logsize(&rng, SIZE_MIN, SIZE_MAX_BYTES);
    own[i].tag = bench_rng_next(&rng);
    own[i].ptr = bench_xmalloc(own[i].size);
    bench_stamp(own[i].ptr, own[i].size, own[i].tag);
  }
  uint64_t checksum = 0;
  for (int i = 0; i < BLOCKS_PER_THREAD; i++) {
    if (i % 2 == 0) {
      checksum += bench_mix(bench_check(own[i].ptr, own[i].size, own[i].tag) + own[i].size);
      free(own[i].ptr);
    } else {
      w->passed[i / 2] = own[i];
    }
  }
  w->checksum = checksum;
  return NULL;
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_ROUNDS, .threads = DEFAULT_THREADS, .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_ROUNDS, "-n: rounds; -t: threads per round");
  int count = opts.threads > MAX_THREADS ? MAX_THREADS : opts.threads;
  worker *workers = calloc((size_t)count, sizeof *workers);
  size_t kept_capacity = (size_t)opts.n * (size_t)count * (BLOCKS_PER_THREAD / 2) / KEEP_ONE_IN + 1;
  block *kept = calloc(kept_capacity, sizeof *kept);
  if (!workers || !kept) return 2;
  size_t kept_count = 0;
  long rss_start = bench_rss_kb();
  uint64_t checksum = 0;
  long passed_index = 0;
  double start = bench_now();
  for (long round = 0; round < opts.n; round++) {
    for (int i = 0; i < count; i++) {
      workers[i].stream = 600 + (uint64_t)round * (uint64_t)count + (uint64_t)i;
      if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
        fprintf(stderr, "exit_cache: pthread_create failed\n");
        return 2;
      }
    }
    for (int i = 0; i < count; i++) {
      pthread_join(workers[i].thread, NULL);
      checksum += workers[i].checksum;
      for (int k = 0; k < BLOCKS_PER_THREAD / 2; k++, passed_index++) {
        block *b = &workers[i].passed[k];
        if (passed_index % KEEP_ONE_IN == 0 && kept_count < kept_capacity) {
          kept[kept_count++] = *b;
        } else {
          checksum += bench_mix(bench_check(b->ptr, b->size, b->tag) + b->size);
          free(b->ptr);
        }
      }
    }
  }
  double seconds = bench_now() - start;
  long rss_final = bench_rss_kb();
  long rss_peak = bench_peak_rss_kb();
  size_t live_bytes = 0;
  for (size_t k = 0; k < kept_count; k++) {
    live_bytes += kept[k].size;
    checksum += bench_mix(bench_check(kept[k].ptr, kept[k].size, kept[k].tag) + kept[k].size);
    free(kept[k].ptr);
  }
  free(kept);
  free(workers);
  char extra[192];
  snprintf(extra, sizeof extra,
           "threads=%d threads_created=%ld rss_start_kb=%ld rss_final_kb=%ld rss_peak_kb=%ld "
           "live_kb=%zu",
           count, opts.n * count, rss_start, rss_final, rss_peak, live_bytes / 1024);
  bench_report("exit-cache", opts.n * count * BLOCKS_PER_THREAD, seconds, checksum, extra);
  return 0;
}

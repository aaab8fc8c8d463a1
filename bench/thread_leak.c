/* thread_leak.c: thread churn with leaked blocks.
 *
 * Stresses: per-thread state set up and torn down many times (thread
 * caches, arenas, TLS destructors), and memory that a thread leaves
 * behind: each short-lived thread allocates blocks, frees most of them,
 * and never frees about 2% (they stay reachable only through a global
 * list that is never walked for freeing).  Reports peak and final RSS: an
 * allocator that leaks whole per-thread caches or arenas on thread exit
 * shows a final RSS far above the leaked bytes.
 * -n is the number of threads created (T at a time, -t).
 */
#include <pthread.h>

#include "bench_common.h"

#define BLOCKS_PER_THREAD 4000
#define LEAK_PER_MILLE 20
#define SIZE_MIN 16
#define SIZE_MAX_BYTES 2048
#define DEFAULT_THREAD_TOTAL 600L
#define QUICK_THREAD_TOTAL 50L
#define DEFAULT_THREADS 4

/* Leaked blocks are chained through their first word into one list. */
static void *leak_head;
static size_t leaked_bytes;
static pthread_mutex_t leak_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
  pthread_t thread;
  long id;
  uint64_t checksum;
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  bench_rng rng;
  bench_rng_init(&rng, 5000 + (uint64_t)w->id);
  void *blocks[BLOCKS_PER_THREAD];
  size_t sizes[BLOCKS_PER_THREAD];
  uint64_t checksum = 0;
  for (int i = 0; i < BLOCKS_PER_THREAD; i++) {
    sizes[i] = bench_rng_logsize(&rng, SIZE_MIN, SIZE_MAX_BYTES);
    blocks[i] = bench_xmalloc(sizes[i]);
    bench_stamp(blocks[i], sizes[i], (uint64_t)i);
  }
  for (int i = 0; i < BLOCKS_PER_THREAD; i++) {
    checksum += bench_mix(bench_check(blocks[i], sizes[i], (uint64_t)i) + sizes[i]);
    if (bench_rng_below(&rng, 1000) < LEAK_PER_MILLE) {
      pthread_mutex_lock(&leak_lock);
      memcpy(blocks[i], &leak_head, sizeof leak_head);
      leak_head = blocks[i];
      leaked_bytes += sizes[i];
      pthread_mutex_unlock(&leak_lock);
    } else {
      free(blocks[i]);
    }
  }
  w->checksum = checksum;
  return NULL;
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_THREAD_TOTAL, .threads = DEFAULT_THREADS, .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_THREAD_TOTAL, "-n: threads created in total; -t: at a time");
  int batch = opts.threads;
  worker *workers = calloc((size_t)batch, sizeof *workers);
  uint64_t checksum = 0;
  double start = bench_now();
  for (long created = 0; created < opts.n;) {
    int now = 0;
    for (; now < batch && created < opts.n; now++, created++) {
      workers[now].id = created;
      if (pthread_create(&workers[now].thread, NULL, worker_main, &workers[now]) != 0) {
        fprintf(stderr, "thread_leak: pthread_create failed\n");
        return 2;
      }
    }
    for (int i = 0; i < now; i++) {
      pthread_join(workers[i].thread, NULL);
      checksum += workers[i].checksum;
    }
  }
  double seconds = bench_now() - start;
  bench_escape(leak_head);
  free(workers);
  char extra[160];
  snprintf(extra, sizeof extra, "threads=%d rss_peak_kb=%ld rss_final_kb=%ld leaked_kb=%zu", batch, bench_peak_rss_kb(),
           bench_rss_kb(), leaked_bytes / 1024);
  bench_report("thread-leak", opts.n * BLOCKS_PER_THREAD, seconds, checksum, extra);
  return 0;
}

/* xthread.c: producer/consumer, every block freed by a thread other than
 * the one that allocated it.
 *
 * Stresses: remote (cross-thread) frees: how an allocator returns a block
 * to its owning thread/heap, and whether memory freed remotely is reused
 * or piles up.
 *   -m ring : T threads in a ring; each allocates a batch per round and
 *             frees the batch its left neighbour allocated the round before
 *   -m asym : T/2 threads only allocate, the others only free (each
 *             consumer frees the batches of a fixed set of producers)
 * Rounds are double-buffered with one barrier per round, so allocation and
 * remote frees overlap while every block's fate stays deterministic.
 */
#include <pthread.h>

#include "bench_common.h"

#define BATCH_BLOCKS 1024
#define SIZE_MIN 16
#define SMALL_MAX 512
#define MEDIUM_MAX 4096
#define DEFAULT_BLOCKS 10000000L
#define QUICK_BLOCKS 400000L
#define DEFAULT_THREADS 4
#define MAX_THREADS 256

typedef struct {
  void *ptr[BATCH_BLOCKS];
  uint32_t size[BATCH_BLOCKS];
  uint64_t tag[BATCH_BLOCKS];
} batch;

typedef struct {
  pthread_t thread;
  int index;
  uint64_t checksum;
  long freed;
} worker;

/* Shared state: outbox[parity][thread] is the batch allocated by `thread` in
 * a round of that parity. */
static batch *outbox[2][MAX_THREADS];
static int thread_count, producer_count, asymmetric;
static long round_count;
static pthread_barrier_t round_barrier;

static void fill(batch *b, bench_rng *rng) {
  for (int i = 0; i < BATCH_BLOCKS; i++) {
    size_t size = bench_rng_below(rng, 8) ? bench_rng_range(rng, SIZE_MIN, SMALL_MAX)
                                          : bench_rng_range(rng, SMALL_MAX + 1, MEDIUM_MAX);
    b->size[i] = (uint32_t)size;
    b->tag[i] = bench_rng_next(rng);
    b->ptr[i] = bench_xmalloc(size);
    bench_stamp(b->ptr[i], size, b->tag[i]);
  }
}

static uint64_t drain(batch *b) {
  uint64_t sum = 0;
  for (int i = 0; i < BATCH_BLOCKS; i++) {
    sum += bench_mix(bench_check(b->ptr[i], b->size[i], b->tag[i]));
    free(b->ptr[i]);
  }
  return sum;
}

/* Is thread `self` responsible for freeing producer `p`'s batches? */
static int consumes(int self, int p) {
  if (!asymmetric) return p == (self + thread_count - 1) % thread_count;
  int consumers = thread_count - producer_count;
  return self >= producer_count && p % consumers == self - producer_count;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  bench_rng rng;
  bench_rng_init(&rng, 200 + (uint64_t)w->index);
  int produces = !asymmetric || w->index < producer_count;
  /* Round r produces into parity r%2 and consumes parity (r-1)%2; one extra
   * round at the end only consumes. */
  for (long r = 0; r <= round_count; r++) {
    int cur = (int)(r & 1), prev = cur ^ 1;
    if (produces && r < round_count) {
      batch *b = outbox[cur][w->index];
      fill(b, &rng);
    }
    if (r > 0) {
      for (int p = 0; p < thread_count; p++) {
        if (consumes(w->index, p) && outbox[prev][p]) {
          w->checksum += drain(outbox[prev][p]);
          w->freed += BATCH_BLOCKS;
        }
      }
    }
    pthread_barrier_wait(&round_barrier);
  }
  return NULL;
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_BLOCKS, .threads = DEFAULT_THREADS, .mode = "ring", .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_BLOCKS, "modes: ring (default), asym; -n: total blocks");
  asymmetric = bench_mode_is(&opts, "asym");
  if (!asymmetric && !bench_mode_is(&opts, "ring")) {
    fprintf(stderr, "xthread: unknown mode %s\n", opts.mode);
    return 1;
  }
  thread_count = opts.threads < 2 ? 2 : (opts.threads > MAX_THREADS ? MAX_THREADS : opts.threads);
  producer_count = asymmetric ? thread_count / 2 : thread_count;
  round_count = opts.n / ((long)BATCH_BLOCKS * producer_count);
  if (round_count < 1) round_count = 1;

  /* Batch descriptors live for the whole run: only the blocks move. */
  for (int parity = 0; parity < 2; parity++)
    for (int p = 0; p < producer_count; p++) outbox[parity][p] = bench_xmalloc(sizeof(batch));

  worker *workers = calloc((size_t)thread_count, sizeof *workers);
  pthread_barrier_init(&round_barrier, NULL, (unsigned)thread_count);
  double start = bench_now();
  for (int i = 0; i < thread_count; i++) {
    workers[i].index = i;
    if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
      fprintf(stderr, "xthread: pthread_create failed\n");
      return 2;
    }
  }
  uint64_t checksum = 0;
  long freed = 0;
  for (int i = 0; i < thread_count; i++) {
    pthread_join(workers[i].thread, NULL);
    checksum += workers[i].checksum;
    freed += workers[i].freed;
  }
  double seconds = bench_now() - start;
  pthread_barrier_destroy(&round_barrier);
  for (int parity = 0; parity < 2; parity++)
    for (int p = 0; p < producer_count; p++) free(outbox[parity][p]);
  free(workers);

  char extra[64];
  snprintf(extra, sizeof extra, "threads=%d", thread_count);
  bench_report(asymmetric ? "xthread-asym" : "xthread-ring", freed, seconds, checksum, extra);
  return 0;
}

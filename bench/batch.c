/* batch.c: fixed-size batches, half freed FIFO and half LIFO, in two threads.
 *
 * Stresses: the small-size fast path under the simplest pattern a program
 * has: allocate a batch of same-size blocks, use them, free them.  Batch
 * lengths cycle through 25, 100, 400 and 1600 blocks (from "fits any
 * per-thread cache" to "overflows it several times") and sizes through 16,
 * 32 and 64 B.  Every byte of every block is written.  The first half of a
 * batch is freed in allocation order (FIFO) and the rest in reverse order
 * (LIFO), so the free lists see both orders in every round.  The whole run
 * happens in one thread and then again in a second thread started after
 * the first has exited: the second thread starts with whatever state the
 * allocator keeps for a new thread (a fresh or reused arena or cache, or
 * what the first thread left behind), and the two phases are timed apart.
 * -n is the number of batches per thread.
 */
#include <pthread.h>

#include "bench_common.h"

#define PHASES 2
#define COUNT_KINDS 4
#define SIZE_KINDS 3
#define MAX_COUNT 1600
#define MIDDLE_CHECK_MIN_SIZE 16
#define DEFAULT_BATCHES 15000L
#define QUICK_BATCHES 1500L

static const size_t batch_counts[COUNT_KINDS] = {25, 100, 400, MAX_COUNT};
static const size_t batch_sizes[SIZE_KINDS] = {16, 32, 64};

typedef struct {
  pthread_t thread;
  int phase;
  long batches;
  long ops;
  double seconds;
  uint64_t checksum;
} phase_run;

/* Reads back a block: the stamp at both ends and the fill in the middle. */
static uint64_t check_block(const unsigned char *b, size_t size, uint64_t tag, unsigned char fill) {
  uint64_t value = bench_check(b, size, tag);
  if (size >= MIDDLE_CHECK_MIN_SIZE && b[size / 2] != fill) {
    fprintf(stderr, "batch: block %p (size %zu) corrupted\n", (const void *)b, size);
    abort();
  }
  return bench_mix(value + size);
}

static void *phase_main(void *arg) {
  phase_run *run = arg;
  bench_rng rng;
  bench_rng_init(&rng, 300 + (uint64_t)run->phase);
  unsigned char **blocks = bench_xmalloc(MAX_COUNT * sizeof *blocks);
  uint64_t *tags = bench_xmalloc(MAX_COUNT * sizeof *tags);
  uint64_t checksum = 0;
  long ops = 0;
  double start = bench_now();

  for (long b = 0; b < run->batches; b++) {
    size_t count = batch_counts[b % COUNT_KINDS];
    size_t size = batch_sizes[(b / COUNT_KINDS) % SIZE_KINDS];
    unsigned char fill = (unsigned char)b;
    for (size_t i = 0; i < count; i++) {
      tags[i] = bench_rng_next(&rng);
      blocks[i] = bench_xmalloc(size);
      memset(blocks[i], fill, size);
      bench_stamp(blocks[i], size, tags[i]);
    }
    size_t half = count / 2;
    for (size_t i = 0; i < half; i++) { /* first half: FIFO */
      checksum += check_block(blocks[i], size, tags[i], fill);
      free(blocks[i]);
    }
    for (size_t i = count; i-- > half;) { /* the rest: LIFO */
      checksum += check_block(blocks[i], size, tags[i], fill);
      free(blocks[i]);
    }
    ops += (long)count;
  }

  run->seconds = bench_now() - start;
  run->ops = ops;
  run->checksum = checksum;
  free(blocks);
  free(tags);
  return NULL;
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_BATCHES, .threads = 1, .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_BATCHES, "-n: batches per thread (two threads, one after the other)");
  phase_run runs[PHASES] = {{0}};
  uint64_t checksum = 0;
  long ops = 0;
  double start = bench_now();
  for (int p = 0; p < PHASES; p++) {
    runs[p].phase = p;
    runs[p].batches = opts.n;
    if (pthread_create(&runs[p].thread, NULL, phase_main, &runs[p]) != 0) {
      fprintf(stderr, "batch: pthread_create failed\n");
      return 2;
    }
    pthread_join(runs[p].thread, NULL);
    checksum += runs[p].checksum;
    ops += runs[p].ops;
  }
  double seconds = bench_now() - start;
  char extra[96];
  snprintf(extra, sizeof extra, "thread1_seconds=%.6f thread2_seconds=%.6f", runs[0].seconds, runs[1].seconds);
  bench_report("batch", ops, seconds, checksum, extra);
  return 0;
}

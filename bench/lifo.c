/* lifo.c: LIFO allocation bursts.
 *
 * Stresses: the stack-like pattern of parsers, request handlers and
 * recursive algorithms: allocate a burst of thousands of blocks, then free
 * them in exactly the reverse order, and repeat.  An allocator that keeps
 * recently freed blocks at the head of its free lists should hand the same
 * (cache-hot) memory back on the next burst.
 */
#include "bench_common.h"

#define BURST_MIN 1000
#define BURST_MAX 10000
#define SIZE_MIN 16
#define SIZE_MAX_BYTES 1024
#define DEFAULT_ROUNDS 500L
#define QUICK_ROUNDS 20L

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_ROUNDS, .threads = 1, .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_ROUNDS, "-n: number of bursts");

  void **stack = bench_xmalloc(BURST_MAX * sizeof *stack);
  size_t *sizes = bench_xmalloc(BURST_MAX * sizeof *sizes);
  bench_rng rng;
  bench_rng_init(&rng, 2);
  uint64_t checksum = 0;
  long ops = 0;
  double start = bench_now();

  for (long round = 0; round < opts.n; round++) {
    size_t burst = bench_rng_range(&rng, BURST_MIN, BURST_MAX);
    for (size_t i = 0; i < burst; i++) {
      sizes[i] = bench_rng_range(&rng, SIZE_MIN, SIZE_MAX_BYTES);
      stack[i] = bench_xmalloc(sizes[i]);
      bench_stamp(stack[i], sizes[i], (uint64_t)round * BURST_MAX + i);
    }
    for (size_t i = burst; i-- > 0;) {
      checksum += bench_mix(bench_check(stack[i], sizes[i], (uint64_t)round * BURST_MAX + i));
      free(stack[i]);
    }
    ops += (long)burst;
  }

  double seconds = bench_now() - start;
  free(stack);
  free(sizes);
  bench_report("lifo", ops, seconds, checksum, NULL);
  return 0;
}

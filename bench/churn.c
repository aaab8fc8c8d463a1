/* churn.c: single-threaded random replacement in a live pool.
 *
 * Stresses: the allocator's small-object fast path under a random (not
 * LIFO) free order, with a steady live set, so free lists get shuffled and
 * locality suffers as it does in long-running programs.
 *   -m small : every block is 16..512 B
 *   -m mixed : mostly small, some medium blocks up to 256 KiB
 *   -m hot   : as small, in a pool of HOT_POOL_SLOTS (about 130 KiB live, in
 *              a core's L2): the allocator's own paths set the pace, not
 *              cache misses on the blocks, so it is far less noisy on a shared
 *              machine
 * Each operation frees a random slot (after checking its contents) and
 * fills it with a new block of a random size.
 */
#include "bench_common.h"

#define SMALL_POOL_SLOTS 20000
#define MIXED_POOL_SLOTS 5000
#define HOT_POOL_SLOTS 500
#define SMALL_MIN 16
#define SMALL_MAX 512
#define MEDIUM_MAX (8 * 1024)
#define LARGE_MAX (256 * 1024)
#define DEFAULT_OPS 24000000L
#define QUICK_OPS 1000000L

typedef struct {
  void *ptr;
  size_t size;
  uint64_t tag;
} slot;

/* Mixed sizes: 90% small, 8% up to 8 KiB, 2% up to 256 KiB. */
static size_t pick_size(bench_rng *rng, int mixed) {
  if (!mixed) return bench_rng_range(rng, SMALL_MIN, SMALL_MAX);
  uint64_t roll = bench_rng_below(rng, 100);
  if (roll < 90) return bench_rng_range(rng, SMALL_MIN, SMALL_MAX);
  if (roll < 98) return bench_rng_range(rng, SMALL_MAX + 1, MEDIUM_MAX);
  return bench_rng_logsize(rng, MEDIUM_MAX + 1, LARGE_MAX);
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_OPS, .threads = 1, .mode = "small", .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_OPS, "modes: small (default), mixed, hot");
  int mixed = bench_mode_is(&opts, "mixed"), hot = bench_mode_is(&opts, "hot");
  if (!mixed && !hot && !bench_mode_is(&opts, "small")) {
    fprintf(stderr, "churn: unknown mode %s\n", opts.mode);
    return 1;
  }
  size_t slots = mixed ? MIXED_POOL_SLOTS : hot ? HOT_POOL_SLOTS : SMALL_POOL_SLOTS;
  slot *pool = calloc(slots, sizeof *pool);
  if (!pool) return 2;

  bench_rng rng;
  bench_rng_init(&rng, 1);
  uint64_t checksum = 0;
  double start = bench_now();

  for (size_t i = 0; i < slots; i++) {
    pool[i].size = pick_size(&rng, mixed);
    pool[i].tag = bench_rng_next(&rng);
    pool[i].ptr = bench_xmalloc(pool[i].size);
    bench_stamp(pool[i].ptr, pool[i].size, pool[i].tag);
  }
  for (long op = 0; op < opts.n; op++) {
    slot *s = &pool[bench_rng_below(&rng, slots)];
    checksum += bench_mix(bench_check(s->ptr, s->size, s->tag));
    free(s->ptr);
    s->size = pick_size(&rng, mixed);
    s->tag = bench_rng_next(&rng);
    s->ptr = bench_xmalloc(s->size);
    bench_stamp(s->ptr, s->size, s->tag);
  }
  for (size_t i = 0; i < slots; i++) {
    checksum += bench_mix(bench_check(pool[i].ptr, pool[i].size, pool[i].tag));
    free(pool[i].ptr);
  }

  double seconds = bench_now() - start;
  free(pool);
  bench_report(mixed ? "churn-mixed" : hot ? "churn-hot" : "churn-small", opts.n, seconds, checksum, NULL);
  return 0;
}

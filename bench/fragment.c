/* fragment.c: fragmentation and memory given back.
 *
 * Stresses: how much memory an allocator keeps after a heap of small
 * objects is mostly freed, and whether that freed space can serve larger
 * requests.  Phase 1 builds a large heap of small objects (16..256 B);
 * phase 2 frees 90% of them at random, leaving survivors scattered over
 * every page; phase 3 allocates medium blocks (4..64 KiB, fully written)
 * totalling half the freed bytes.  The cycle repeats a few times.
 * Reports the peak RSS (VmHWM) and the final RSS (VmRSS) with the live
 * set still allocated, plus the live bytes, so RSS/live is the overhead.
 * -n is the number of small objects in phase 1.
 */
#include "bench_common.h"

#define SMALL_MIN 16
#define SMALL_MAX 256
#define MEDIUM_MIN (4 * 1024)
#define MEDIUM_MAX (64 * 1024)
#define FREE_PERCENT 90
#define CYCLES 3
#define DEFAULT_OBJECTS 500000L
#define QUICK_OBJECTS 50000L

typedef struct {
  void *ptr;
  size_t size;
} block;

typedef struct {
  block *items;
  size_t count, capacity;
} block_list;

static void push(block_list *list, void *ptr, size_t size) {
  if (list->count == list->capacity) {
    list->capacity = list->capacity ? list->capacity * 2 : 1024;
    list->items = bench_xrealloc(list->items, list->capacity * sizeof *list->items);
  }
  list->items[list->count++] = (block){ptr, size};
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_OBJECTS, .threads = 1, .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_OBJECTS, "-n: small objects per cycle");
  bench_rng rng;
  bench_rng_init(&rng, 4);
  block_list small = {0}, survivors = {0}, medium = {0};
  uint64_t checksum = 0;
  long ops = 0;
  size_t live_bytes = 0;
  double start = bench_now();

  for (int cycle = 0; cycle < CYCLES; cycle++) {
    small.count = 0;
    for (long i = 0; i < opts.n; i++) {
      size_t size = bench_rng_range(&rng, SMALL_MIN, SMALL_MAX);
      void *p = bench_xmalloc(size);
      bench_stamp(p, size, (uint64_t)i);
      push(&small, p, size);
    }
    /* Free a random 90%: shuffle (Fisher-Yates), free the front part. */
    for (size_t i = small.count; i > 1; i--) {
      size_t j = bench_rng_below(&rng, i);
      block tmp = small.items[i - 1];
      small.items[i - 1] = small.items[j];
      small.items[j] = tmp;
    }
    size_t to_free = small.count * FREE_PERCENT / 100, freed_bytes = 0;
    for (size_t i = 0; i < small.count; i++) {
      block *b = &small.items[i];
      if (i < to_free) {
        checksum += bench_mix(b->size);
        freed_bytes += b->size;
        free(b->ptr);
      } else {
        push(&survivors, b->ptr, b->size);
        live_bytes += b->size;
      }
    }
    for (size_t got = 0; got < freed_bytes / 2;) {
      size_t size = bench_rng_range(&rng, MEDIUM_MIN, MEDIUM_MAX);
      unsigned char *p = bench_xmalloc(size);
      memset(p, (int)(got & 0xFF), size);
      push(&medium, p, size);
      got += size;
      live_bytes += size;
    }
    ops += opts.n + (long)medium.count;
  }

  long peak_kb = bench_peak_rss_kb();
  long final_kb = bench_rss_kb();
  double seconds = bench_now() - start;
  for (size_t i = 0; i < survivors.count; i++) {
    checksum += bench_mix(survivors.items[i].size);
    free(survivors.items[i].ptr);
  }
  for (size_t i = 0; i < medium.count; i++) {
    checksum += bench_mix(((unsigned char *)medium.items[i].ptr)[0]);
    free(medium.items[i].ptr);
  }
  long after_free_kb = bench_rss_kb();
  free(small.items);
  free(survivors.items);
  free(medium.items);

  char extra[160];
  snprintf(extra, sizeof extra, "rss_peak_kb=%ld rss_final_kb=%ld rss_after_free_kb=%ld live_kb=%zu", peak_kb, final_kb,
           after_free_kb, live_bytes / 1024);
  bench_report("fragmentation", ops, seconds, checksum, extra);
  return 0;
}

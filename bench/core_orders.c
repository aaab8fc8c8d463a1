/* core_orders.c: the buddy core alone, with no zones, caches or preload.
 *
 * Stresses: split and coalesce. A heap of CORE_REGIONS regions (given to the
 * core from this program's own memory, as the unit tests do) keeps a pool of
 * live blocks; each step frees a random one and allocates a block of a random
 * order (orders 0-3 mostly, up to 10 now and then), so blocks keep splitting
 * and merging. Prints ns per operation (one alloc or one free); scripts/bench
 * --core also runs it under callgrind for instructions per operation.
 *   -n STEPS (default 20000000)  -q (quick)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define CORE_REGIONS 8
#define CORE_LIVE 2048
#define DEFAULT_STEPS 20000000L
#define QUICK_STEPS 200000L

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static unsigned random_order(void) {
  uint64_t r = rng();
  return (r & 15) == 0 ? (unsigned)((r >> 8) % BUDDY_ORDERS) : (unsigned)((r >> 8) & 3);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  long steps = DEFAULT_STEPS;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-q") == 0) steps = QUICK_STEPS;
    else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) steps = atol(argv[++i]);
  }
  static buddy_heap_t heap;
  buddy_heap_init(&heap);
  for (int i = 0; i < CORE_REGIONS; i++) {
    region_t *meta = aligned_alloc(REGION_META_SIZE, REGION_META_SIZE);
    void *base = aligned_alloc(BUDDY_REGION_SIZE, BUDDY_REGION_SIZE);
    if (meta == NULL || base == NULL) return 1;
    buddy_heap_add_region(&heap, meta, base, false);
  }
  static page_desc_t *live[CORE_LIVE];
  for (int i = 0; i < CORE_LIVE; i++) live[i] = buddy_heap_alloc(&heap, random_order() & 3, NULL);
  long ops = 0, failed = 0;
  double start = now_seconds();
  for (long s = 0; s < steps; s++) {
    unsigned slot = (unsigned)(rng() % CORE_LIVE);
    if (live[slot] != NULL) {
      buddy_heap_free(&heap, live[slot]);
      ops++;
    }
    live[slot] = buddy_heap_alloc(&heap, random_order(), NULL);
    failed += live[slot] == NULL;
    ops++;
  }
  double seconds = now_seconds() - start;
  size_t free_pages = buddy_heap_verify(&heap);
  printf("workload=core-orders ops=%ld seconds=%.3f ns_per_op=%.1f failed_allocs=%ld free_pages=%zu\n", ops, seconds,
         seconds * 1e9 / (double)ops, failed, free_pages);
  return 0;
}

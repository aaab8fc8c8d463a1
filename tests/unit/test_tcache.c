/* test_tcache.c: unit tests of the thread caches (tcache_*.c), linked to the
 * tcache layer alone. malloc's and free's fast paths are the API's, so a
 * test reaches the layer through tcache.h: the bins' sizes and the budget
 * on caches it builds itself (tcache_bin_start, tcache_size,
 * tcache_bin_grow), the bin helpers, flushes back to the zones, and the
 * slow paths called directly, held as the fast paths call them
 * (tcache_hold, then tcache_alloc_slow or tcache_free_slow) on the calling
 * thread's own cache: its start, refills, full bins, remote batches, double
 * frees, a thread's exit, a fork's orphans and an idle thread's reclaim.
 * The caches as malloc and free drive them are in
 * tests/integration/test_tcache_heap.c. Each test runs in a process of its
 * own, whose first slow path makes its cache at home in zone 0. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tcache.h"
#include "heap_util.h"

/* What start-up does for the caches (init.c): the key, and the pthread key
 * whose destructor flushes a thread's cache at its exit. */
static void setup(void) {
  tcache_init();
}

static void setup_warnings(void) {
  setup();
  heap_test_warn_on_misuse();
}

TestSuite(sizes, .init = setup);
TestSuite(bins, .init = setup);
TestSuite(flush, .init = setup);
TestSuite(slow, .init = setup);
TestSuite(remote, .init = setup);
TestSuite(threads, .init = setup);
TestSuite(tcache_misuse, .init = setup_warnings);
TestSuite(tcache_fatal, .init = setup);

/* Checks in threads other than the test's own: report and abort (a crash
 * fails the test). */
#define check(cond)                                                                                                    \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                                         \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

/* ---- Caches the test builds -------------------------------------------------- */

/* A cache laid out as a thread's (types.h), in the test's own memory, at
 * home in zone zi. No thread owns it: only the
 * functions handed a cache touch it, and its slow-path clock moves only
 * when the test moves it. */
static tcache_t *cache_build(unsigned zi) {
  tcache_t *tc = calloc(1, tcache_size());
  cr_assert_not_null(tc);
  tc->zone = &zones[zi];
  tc->state = TCACHE_LIVE;
  tc->home_bins = small_map_bin_number(zi, 0);
  void **end = tcache_lay_out_bins(tc, true);
  cr_assert_leq((char *)end, (char *)tc + tcache_size(), "the slots fit tcache_size()");
  return tc;
}

/* The most objects a bin of class cls may grow to with the options in force. */
static uint32_t bin_ceiling(unsigned cls) {
  size_t n = TCACHE_BIN_CEILING_BYTES / size_class_bytes[cls];
  if (n > (size_t)options.tcache_max) n = (size_t)options.tcache_max;
  return (uint32_t)(n < 1 ? 1 : n);
}

static uint32_t bin_count(const tcache_t *tc, unsigned cls) {
  return tcache_bin_count(tc, cls);
}

/* How many more objects the home bin of class cls takes before its top
 * reaches its limit. */
static size_t bin_room(const tcache_t *tc, unsigned cls) {
  unsigned bin = tcache_home_bin(tc, cls);
  return (size_t)(tc->bin_limit[bin] - tc->bin_top[bin]);
}

/* Checks a cache's bins and budget: each bin's top between its NULL and its
 * limit, its limit max past the NULL, its max within its ceiling, and the
 * maxes' bytes adding up to budget_used, within TCACHE_BYTES_MAX. Returns
 * budget_used. */
static size_t check_budget(const tcache_t *tc) {
  size_t sum = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    unsigned bin = tcache_home_bin(tc, c);
    cr_assert_eq(tc->bin_limit[bin], tc->bin_base[c] + 1 + tc->bin_max[c], "class %u", c);
    cr_assert(tc->bin_top[bin] > tc->bin_base[c] && tc->bin_top[bin] <= tc->bin_limit[bin], "class %u", c);
    cr_assert_leq(tc->bin_max[c], bin_ceiling(c), "class %u", c);
    cr_assert_null(tc->bin_base[c][0]);
    cr_assert_eq((size_t)(tc->bin_top[bin] - tc->bin_base[c] - 1), bin_count(tc, c), "class %u", c);
    sum += (size_t)tc->bin_max[c] * size_class_bytes[c];
  }
  cr_assert_eq(sum, tc->budget_used);
  cr_assert_leq(sum, TCACHE_BYTES_MAX);
  return sum;
}

/* Objects served by a bin since the last rebalance, as the fast path counts
 * them. */
static void serve(tcache_t *tc, unsigned cls, uint64_t requests) {
  tc->bin_requests[tcache_home_bin(tc, cls)] += requests;
}

/* The slow-path clock passes a rebalance period. */
static void rebalance_due(tcache_t *tc) {
  tc->slow_paths += TCACHE_REBALANCE_SLOW_PATHS;
}

/* Objects from zone zi, pushed on tc's home bin of class cls (room for
 * them made first). */
static void bin_fill(tcache_t *tc, unsigned cls, void **objs, unsigned n, unsigned zi) {
  cr_assert_eq(zone_alloc_objects(&zones[zi], cls, objs, n), n);
  for (unsigned i = 0; i < n; i++) {
    cr_assert_gt(bin_room(tc, cls), 0, "class %u: object %u", cls, i);
    tcache_bin_push(tc, tcache_home_bin(tc, cls), objs[i]);
  }
}

/* ---- Bin sizes and the budget ------------------------------------------------- */

Test(sizes, the_starts_fit_the_budget) {
  size_t starts = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    uint32_t start = tcache_bin_start(c);
    size_t bytes = size_class_bytes[c];
    cr_assert(start >= 1 && start <= TCACHE_BIN_START_MAX, "class %u: %u", c, start);
    cr_assert(start == 1 || start * bytes <= TCACHE_BIN_START_BYTES, "class %u: about START_BYTES", c);
    cr_assert_leq(start, tcache_bin_slots(c));
    starts += start * bytes;
  }
  cr_assert_leq(starts, TCACHE_BYTES_MAX, "the starts need %zu KiB", starts >> 10);
}

/* A cache's size is its header, the remote batches and, per class, a
 * nursery (a NULL and room for the largest start any tcache_max allows) and
 * a full stack (a NULL and room for the largest ceiling). */
Test(sizes, a_caches_size_holds_every_bins_slots) {
  size_t slots = 0;
  cr_assert_eq(tcache_bin_slots(0), 0);
  cr_assert_eq(tcache_bin_nursery_slots(0), 0);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    size_t n = TCACHE_BIN_CEILING_BYTES / size_class_bytes[c], start = TCACHE_BIN_START_BYTES / size_class_bytes[c];
    cr_assert_eq(tcache_bin_slots(c), n < 1 ? 1 : n > TCACHE_BIN_MAX ? TCACHE_BIN_MAX : n, "class %u", c);
    cr_assert_eq(tcache_bin_nursery_slots(c),
                 start < 1                      ? 1
                 : start > TCACHE_BIN_START_MAX ? TCACHE_BIN_START_MAX
                                                : start,
                 "class %u", c);
    cr_assert_geq(tcache_bin_nursery_slots(c), tcache_bin_start(c), "class %u: a bin starts in its nursery", c);
    slots += 2 + tcache_bin_nursery_slots(c) + tcache_bin_slots(c);
  }
  size_t remote_slots = (ZONES_MAX * sizeof(tcache_remote_t) + sizeof(void *) - 1) / sizeof(void *);
  cr_assert_eq(tcache_size(), sizeof(tcache_t) + (2 + slots + remote_slots) * sizeof(void *));
  options.tcache_max = 8;
  cr_assert_eq(tcache_bin_slots(1), TCACHE_BIN_MAX, "slots do not follow the option");
  cr_assert_eq(tcache_bin_nursery_slots(1), TCACHE_BIN_START_MAX, "nor do nurseries");
}

/* Laid out, the nurseries come first, class after class, then the remote
 * batches, then the full stacks: no two overlap, and all fit the cache. A
 * thread that uses a little of many classes touches the nurseries' few
 * pages (with the 16-byte classes' 128 slots each, they hold under 12 KiB). */
Test(sizes, the_nurseries_come_first_then_the_batches_then_the_full_stacks) {
  tcache_t *tc = cache_build(0);
  void **end = (void **)(void *)((char *)tc + tcache_size());
  void **next = tc->slots;
  for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) {
    cr_assert_eq(tc->bin_base[c], next, "class %u's nursery follows the one before", c);
    next += 1 + tcache_bin_nursery_slots(c);
  }
  cr_assert_leq((char *)next - (char *)tc->slots, 12 * 1024, "the nurseries take %td bytes",
                (char *)next - (char *)tc->slots);
  cr_assert_eq((void *)tc->remote, (void *)next);
  next = (void **)(void *)(tc->remote + ZONES_MAX);
  for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) {
    cr_assert_geq(tc->bin_stack[c], next, "class %u's stack overlaps what comes before", c);
    next = tc->bin_stack[c] + 1 + tcache_bin_slots(c);
  }
  cr_assert_leq(next, end, "the slots fit tcache_size()");
  free(tc);
}

/* A bin stays in its nursery up to its start; growing past it, it moves to
 * its full stack with its objects, oldest at the bottom, and stays there
 * when it shrinks again. */
Test(sizes, a_bin_outgrowing_its_nursery_moves_to_its_stack_with_its_objects) {
  tcache_t *tc = cache_build(0);
  unsigned cls = SIZE_CLASS_FOR_64, bin = tcache_home_bin(tc, cls);
  void **nursery = tc->bin_base[cls];
  uint32_t start = tcache_bin_grow(tc, cls);
  cr_assert_eq(start, tcache_bin_nursery_slots(cls), "64-byte bins start at their nursery's size");
  void *objs[128];
  cr_assert_leq(start, 128);
  bin_fill(tc, cls, objs, start, 0);
  cr_assert_eq(tc->bin_base[cls], nursery, "full, still in the nursery");
  cr_assert_eq(bin_room(tc, cls), 0);
  cr_assert_eq(tcache_bin_grow(tc, cls), 2 * start);
  cr_assert_eq(tc->bin_base[cls], tc->bin_stack[cls], "moved to its full stack");
  cr_assert_null(tc->bin_base[cls][0]);
  cr_assert_eq(bin_count(tc, cls), start, "with every object");
  for (uint32_t i = 0; i < start; i++) cr_assert_eq(tc->bin_base[cls][1 + i], objs[i], "object %u in its place", i);
  cr_assert_eq(bin_room(tc, cls), start, "room for as many more");
  check_budget(tc);
  tcache_flush_bin(tc, cls, start, false);
  cr_assert_eq(tc->bin_top[bin], tc->bin_base[cls] + 1, "flushed");
  free(tc);
}

Test(sizes, a_built_cache_has_every_bin_empty_and_closed) {
  tcache_t *tc = cache_build(2);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    cr_assert_eq(tc->bin_max[c], 0);
    cr_assert_eq(bin_count(tc, c), 0);
    cr_assert(tcache_top_full(&tc->bin_top[tcache_home_bin(tc, c)]), "max 0: no room");
    for (unsigned z = 0; z < ZONES_MAX; z++)
      if (z != 2) cr_assert_null(tc->bin_top[small_map_bin_number(z, c)], "another zone's bin is never used");
  }
  check_budget(tc);
  free(tc);
}

Test(sizes, a_bin_starts_then_doubles_up_to_its_ceiling) {
  tcache_t *tc = cache_build(0);
  unsigned cls = SIZE_CLASS_FOR_320;
  uint32_t start = tcache_bin_start(cls), ceiling = bin_ceiling(cls);
  cr_assert_eq(tcache_bin_grow(tc, cls), start);
  cr_assert_eq(bin_room(tc, cls), start, "an empty bin's room is its max");
  cr_assert_eq(tc->budget_used, (size_t)start * 320);
  uint32_t max = start;
  while (max < ceiling) {
    uint32_t grown = tcache_bin_grow(tc, cls);
    cr_assert_eq(grown, 2 * max < ceiling ? 2 * max : ceiling);
    max = grown;
    check_budget(tc);
  }
  cr_assert_eq(tcache_bin_grow(tc, cls), ceiling, "no further");
  cr_assert_eq(tc->budget_used, (size_t)ceiling * 320);
  free(tc);
}

Test(sizes, tcache_max_caps_every_bin) {
  options.tcache_max = 16;
  tcache_t *tc = cache_build(0);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    cr_assert_leq(tcache_bin_start(c), 16);
    for (int i = 0; i < 8; i++) tcache_bin_grow(tc, c);
    cr_assert_leq(tc->bin_max[c], 16, "class %u", c);
  }
  check_budget(tc);
  free(tc);
}

/* debug=1 caches nothing: every object goes through its slab (the fill). */
Test(sizes, debug_gives_no_bin) {
  options.debug = 1;
  tcache_t *tc = cache_build(0);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    cr_assert_eq(tcache_bin_start(c), 0);
    cr_assert_eq(tcache_bin_grow(tc, c), 0);
  }
  cr_assert_eq(tc->budget_used, 0);
  free(tc);
}

/* Every class asks for its ceiling, more than the budget: the bins take what
 * fits, never more. */
Test(sizes, every_class_in_demand_stays_within_the_budget) {
  tcache_t *tc = cache_build(0);
  size_t asked = 0, most = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) asked += (size_t)bin_ceiling(c) * size_class_bytes[c];
  cr_assert_gt(asked, TCACHE_BYTES_MAX);
  for (int round = 0; round < 12; round++) {
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
      serve(tc, c, 1); /* every class in use */
      tcache_bin_grow(tc, c);
      size_t held = check_budget(tc);
      if (held > most) most = held;
    }
    rebalance_due(tc);
  }
  cr_assert_geq(most, TCACHE_BYTES_MAX * 3 / 4, "the budget is used: %zu KiB", most >> 10);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++)
    cr_assert_geq(tc->bin_max[c], tcache_bin_start(c), "class %u in use keeps its start", c);
  free(tc);
}

/* The classes of 5 to 28 KiB fill the budget; 32 KiB stays out of it. The
 * rest is less than any of them: the budget is spent. */
static void fill_budget_with_large_classes(tcache_t *tc) {
  for (int round = 0; round < 8; round++)
    for (unsigned c = SIZE_CLASS_FOR_5120; c < SIZE_CLASS_FOR_32768; c++) tcache_bin_grow(tc, c);
  size_t used = check_budget(tc);
  cr_assert_lt(TCACHE_BYTES_MAX - used, size_class_bytes[SIZE_CLASS_FOR_28672], "%zu bytes left",
               TCACHE_BYTES_MAX - used);
}

static const unsigned middle_classes[] = {SIZE_CLASS_FOR_320, SIZE_CLASS_FOR_384, SIZE_CLASS_FOR_448,
                                          SIZE_CLASS_FOR_512};
#define MIDDLE_CLASSES (sizeof middle_classes / sizeof middle_classes[0])

Test(sizes, a_new_working_set_takes_the_budget_of_classes_no_longer_used) {
  tcache_t *tc = cache_build(0);
  fill_budget_with_large_classes(tc);
  rebalance_due(tc);
  /* The large classes served nothing since: they close, the middle ones
   * grow to their ceilings. */
  for (int round = 0; round < 12; round++)
    for (unsigned i = 0; i < MIDDLE_CLASSES; i++) {
      serve(tc, middle_classes[i], 1);
      tcache_bin_grow(tc, middle_classes[i]);
    }
  for (unsigned i = 0; i < MIDDLE_CLASSES; i++)
    cr_assert_eq(tc->bin_max[middle_classes[i]], bin_ceiling(middle_classes[i]), "class %u", middle_classes[i]);
  for (unsigned c = SIZE_CLASS_FOR_5120; c < SIZE_CLASS_FOR_32768; c++)
    cr_assert_eq(tc->bin_max[c], 0, "class %u, unused, closed", c);
  check_budget(tc);
  free(tc);
}

/* What a byte of budget saves a class per period (tcache_size.c): requests
 * served over max squared times the class size. */
static double score(uint64_t served, uint32_t max, unsigned cls) {
  return (double)served / ((double)max * max * size_class_bytes[cls]);
}

/* With equal demand, smaller classes take budget from larger ones (a byte
 * saves more refills in a small class), until no larger class in use would
 * give a byte that saves it fewer refills than the smaller one gains: the
 * scores level, and the larger classes keep their starts. */
Test(sizes, a_smaller_class_in_demand_takes_budget_from_larger_ones_still_in_use) {
  tcache_t *tc = cache_build(0);
  fill_budget_with_large_classes(tc);
  size_t large_before = tc->budget_used, middle_starts = 0;
  /* One rebalance a period, by whichever class asks first: the middle
   * classes ask in turn. */
  for (int round = 0; round < 80; round++) {
    for (unsigned c = SIZE_CLASS_FOR_5120; c < SIZE_CLASS_FOR_32768; c++) serve(tc, c, 100);
    for (unsigned i = 0; i < MIDDLE_CLASSES; i++) serve(tc, middle_classes[i], 100);
    rebalance_due(tc);
    tcache_bin_grow(tc, middle_classes[(unsigned)round % MIDDLE_CLASSES]);
    check_budget(tc);
  }
  size_t middle = 0, large = 0;
  double lowest_large = 1e300;
  for (unsigned i = 0; i < MIDDLE_CLASSES; i++) {
    middle += (size_t)tc->bin_max[middle_classes[i]] * size_class_bytes[middle_classes[i]];
    middle_starts += (size_t)tcache_bin_start(middle_classes[i]) * size_class_bytes[middle_classes[i]];
  }
  for (unsigned c = SIZE_CLASS_FOR_5120; c < SIZE_CLASS_FOR_32768; c++) {
    cr_assert_geq(tc->bin_max[c], tcache_bin_start(c), "class %u, in use, keeps its start", c);
    large += (size_t)tc->bin_max[c] * size_class_bytes[c];
    if (tc->bin_max[c] > tcache_bin_start(c) && score(100, tc->bin_max[c], c) < lowest_large)
      lowest_large = score(100, tc->bin_max[c], c);
  }
  cr_assert_gt(middle, middle_starts, "the smaller classes grew: %zu KiB from %zu KiB", middle >> 10,
               middle_starts >> 10);
  cr_assert_lt(large, large_before, "the larger classes gave up budget");
  /* Level: no middle class would gain, by doubling, more than a larger class
   * above its start would lose by giving the bytes. */
  for (unsigned i = 0; i < MIDDLE_CLASSES; i++) {
    unsigned c = middle_classes[i];
    if (tc->bin_max[c] >= bin_ceiling(c)) continue;
    cr_assert_leq(score(100, 2 * tc->bin_max[c], c), lowest_large, "class %u (max %u) could still take budget", c,
                  tc->bin_max[c]);
  }
  free(tc);
}

/* The case the scores are for: small classes hold the budget but serve few
 * requests, a large class serves most of them and has a bin of a few
 * objects. The large class takes budget from the small ones (down to their
 * starts), where a rule by size alone would leave it at its start. */
Test(sizes, a_larger_class_in_demand_takes_budget_from_smaller_ones_serving_less) {
  tcache_t *tc = cache_build(0);
  unsigned large = SIZE_CLASS_FOR_16384;
  for (int round = 0; round < 10; round++)
    for (unsigned c = SIZE_CLASS_FOR_64; c <= SIZE_CLASS_FOR_2048; c++) tcache_bin_grow(tc, c);
  cr_assert_gt(tc->budget_used + size_class_bytes[large] * tcache_bin_start(large), TCACHE_BYTES_MAX,
               "the small classes hold the budget: %zu KiB", tc->budget_used >> 10);
  size_t small_before = tc->budget_used;
  cr_assert_eq(tcache_bin_grow(tc, large), tcache_bin_start(large), "a starting bin takes its start at once");
  uint32_t start = tc->bin_max[large];
  for (int round = 0; round < 40; round++) {
    for (unsigned c = SIZE_CLASS_FOR_64; c <= SIZE_CLASS_FOR_2048; c++) serve(tc, c, 10);
    serve(tc, large, 5000);
    rebalance_due(tc);
    tcache_bin_grow(tc, large);
    check_budget(tc);
  }
  cr_assert_geq(tc->bin_max[large], 4 * start, "the large class grew from %u to %u", start, tc->bin_max[large]);
  size_t small = tc->budget_used - (size_t)tc->bin_max[large] * size_class_bytes[large];
  cr_assert_lt(small, small_before, "the small classes gave up budget: %zu KiB, were %zu KiB", small >> 10,
               small_before >> 10);
  for (unsigned c = SIZE_CLASS_FOR_64; c <= SIZE_CLASS_FOR_2048; c++)
    cr_assert_geq(tc->bin_max[c], tcache_bin_start(c), "class %u, in use, keeps its start", c);
  free(tc);
}

/* A bin below its start takes budget from any class at once, due or not;
 * one above its start waits for the period. */
Test(sizes, a_starting_bin_takes_its_start_at_once) {
  tcache_t *tc = cache_build(0);
  fill_budget_with_large_classes(tc);
  for (unsigned c = SIZE_CLASS_FOR_5120; c < SIZE_CLASS_FOR_32768; c++) serve(tc, c, 100);
  uint32_t max_5120 = tc->bin_max[SIZE_CLASS_FOR_5120];
  cr_assert_gt(max_5120, tcache_bin_start(SIZE_CLASS_FOR_5120));
  cr_assert_lt(max_5120, bin_ceiling(SIZE_CLASS_FOR_5120));
  cr_assert_eq(tcache_bin_grow(tc, SIZE_CLASS_FOR_5120), max_5120, "not due: no room to double");
  cr_assert_eq(tcache_bin_grow(tc, SIZE_CLASS_FOR_32768), tcache_bin_start(SIZE_CLASS_FOR_32768), "its start");
  check_budget(tc);
  free(tc);
}

/* A bin that closes gives its objects back to their zones first. */
Test(sizes, a_closing_bin_flushes_its_objects) {
  tcache_t *tc = cache_build(0);
  unsigned cls = SIZE_CLASS_FOR_64;
  void *objs[50];
  cr_assert_eq(tcache_bin_grow(tc, cls), tcache_bin_start(cls));
  bin_fill(tc, cls, objs, 50, 0);
  fill_budget_with_large_classes(tc);
  rebalance_due(tc);
  tcache_bin_grow(tc, SIZE_CLASS_FOR_320); /* class 64 served nothing: it closes */
  cr_assert_eq(tc->bin_max[cls], 0);
  cr_assert_eq(bin_count(tc, cls), 0);
  cr_assert_eq(bin_room(tc, cls), 0);
  for (int i = 0; i < 50; i++) cr_assert(free_in_slab(objs[i]), "object %d went home", i);
  check_budget(tc);
  zone_verify_all();
  free(tc);
}

/* ---- The bin operations ------------------------------------------------------- */

Test(bins, push_and_pop_keep_the_count_and_the_requests) {
  tcache_t *tc = cache_build(1);
  unsigned cls = SIZE_CLASS_FOR_96, bin = tcache_home_bin(tc, cls);
  cr_assert_eq(bin, small_map_bin_number(1, cls));
  cr_assert(tcache_zone_is_home(tc, 1));
  cr_assert_not(tcache_zone_is_home(tc, 0));
  cr_assert_eq(tcache_limit_of(&tc->bin_top[bin]), &tc->bin_limit[bin]);
  cr_assert_eq(tcache_requests_of(&tc->bin_top[bin]), &tc->bin_requests[bin]);
  uint32_t max = tcache_bin_grow(tc, cls);
  void *objs[8];
  cr_assert_eq(zone_alloc_objects(&zones[1], cls, objs, 8), 8);
  for (int i = 0; i < 8; i++) {
    ((void **)objs[i])[1] = NULL; /* as the program had it */
    if (i % 2) tcache_bin_push(tc, bin, objs[i]);
    else tcache_top_push(&tc->bin_top[bin], objs[i]); /* free's fast path, from the top */
    cr_assert_eq(((void **)objs[i])[1], (void *)FREE_KEY, "a cached object holds the key");
    cr_assert_eq(tc->bin_base[cls][1 + i], objs[i]);
  }
  cr_assert_eq(tcache_bin_count(tc, cls), 8);
  cr_assert_eq(tc->bin_limit[bin] - tc->bin_top[bin], max - 8, "room for the rest of the max");
  cr_assert_eq(tcache_bin_requests(tc, cls), 0);
  cr_assert_eq(tcache_cached_bytes(tc), 8 * 96);
  /* A pop, as malloc's fast path makes it: the top, then one add. */
  void *p = *--tc->bin_top[bin];
  tc->bin_requests[bin]++;
  cr_assert_eq(p, objs[7]);
  cr_assert_eq(tcache_bin_requests(tc, cls), 1);
  cr_assert_eq(tcache_bin_count(tc, cls), 7);
  /* A reader racing a shrink may see a top past the new max, or below the
   * NULL: never a count above the max or below 0. */
  void **top = tc->bin_top[bin];
  tc->bin_max[cls] = 5;
  cr_assert_eq(tcache_bin_count(tc, cls), 5);
  tc->bin_max[cls] = max;
  tc->bin_top[bin] = tc->bin_base[cls];
  cr_assert_eq(tcache_bin_count(tc, cls), 0);
  tc->bin_top[bin] = top;
  free(tc);
}

Test(bins, a_full_bin_shows_at_its_top) {
  options.tcache_max = 4;
  tcache_t *tc = cache_build(0);
  unsigned cls = SIZE_CLASS_FOR_32, bin = tcache_home_bin(tc, cls);
  cr_assert_eq(tcache_bin_grow(tc, cls), 4);
  void *objs[4];
  cr_assert_eq(zone_alloc_objects(&zones[0], cls, objs, 4), 4);
  for (int i = 0; i < 4; i++) {
    cr_assert_not(tcache_top_full(&tc->bin_top[bin]), "object %d", i);
    tcache_bin_push(tc, bin, objs[i]);
  }
  cr_assert(tcache_top_full(&tc->bin_top[bin]));
  free(tc);
}

/* ---- Flushes back to the zones ------------------------------------------------- */

/* A flush takes a bin's oldest objects, at its bottom; the rest move down. */
Test(flush, a_bin_flush_sends_its_oldest_objects_home) {
  tcache_t *tc = cache_build(0);
  unsigned cls = SIZE_CLASS_FOR_128;
  tcache_bin_grow(tc, cls);
  void *objs[20];
  bin_fill(tc, cls, objs, 20, 0);
  uint32_t room = bin_room(tc, cls);
  tcache_flush_bin(tc, cls, 5, false);
  cr_assert_eq(bin_count(tc, cls), 15);
  cr_assert_eq(bin_room(tc, cls), room + 5);
  for (int i = 0; i < 20; i++) cr_assert_eq(free_in_slab(objs[i]), i < 5, "object %d", i);
  for (int i = 0; i < 15; i++) cr_assert_eq(tc->bin_base[cls][1 + i], objs[5 + i], "object %d moved down", 5 + i);
  tcache_flush_bin(tc, cls, 0, false);
  cr_assert_eq(bin_count(tc, cls), 15);
  check_budget(tc);
  zone_verify_all();
  free(tc);
}

/* Everything a cache holds, in its bins (objects of any zone: a bin adopts
 * remote objects) and its remote batches, goes back to its zones. */
Test(flush, flush_all_empties_the_bins_and_the_batches) {
  tcache_t *tc = cache_build(0);
  static const unsigned classes[] = {SIZE_CLASS_FOR_16, SIZE_CLASS_FOR_1024, SIZE_CLASS_FOR_16384};
  void *objs[3][6];
  for (int k = 0; k < 3; k++) {
    for (int i = 0; i < 3; i++) tcache_bin_grow(tc, classes[k]); /* room for 4 of 16 KiB */
    bin_fill(tc, classes[k], objs[k], 3, 0);
    bin_fill(tc, classes[k], objs[k] + 3, 1, 2); /* adopted from zone 2 */
  }
  void *stray[2];
  cr_assert_eq(zone_alloc_objects(&zones[1], SIZE_CLASS_FOR_48, stray, 2), 2);
  tcache_remote_t *rb = &tc->remote[1];
  for (int i = 0; i < 2; i++) {
    rb->objs[i] = stray[i];
    rb->classes[i] = SIZE_CLASS_FOR_48;
  }
  rb->count = 2;
  rb->bytes = 2 * 48;
  cr_assert_gt(tcache_cached_bytes(tc), 0);
  tcache_flush_all(tc);
  cr_assert_eq(tcache_cached_bytes(tc), 0);
  cr_assert_eq(rb->count, 0);
  cr_assert_eq(rb->bytes, 0);
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 4; i++) cr_assert(free_in_slab(objs[k][i]), "class %u, object %d", classes[k], i);
  for (int i = 0; i < 2; i++) cr_assert(free_in_slab(stray[i]), "a batch's object, to its slab");
  check_budget(tc);
  zone_verify_all();
  free(tc);
}

/* ---- The slow paths, on the calling thread's own cache ------------------------- */

static void *slow_alloc(unsigned cls) {
  tcache_hold(); /* as malloc's fast path, which found the bin empty */
  void *p = tcache_alloc_slow(cls);
  cr_assert_not_null(p);
  return p;
}

/* As free's fast path, which found p an object start of bin `small_map_at`
 * with no room, or holding the key. */
static void slow_free(void *p) {
  size_t bin = small_map_at(p);
  cr_assert_neq(bin, 0, "%p is in the small map", p);
  tcache_hold();
  tcache_free_slow(p, bin);
}

/* An object straight from a zone, as the program holds one (malloc wiped
 * its second word). */
static void *zone_object(unsigned zi, unsigned cls) {
  void *p;
  cr_assert_eq(zone_alloc_objects(&zones[zi], cls, &p, 1), 1);
  ((void **)p)[1] = NULL;
  return p;
}

Test(slow, the_first_allocation_makes_the_threads_cache) {
  cr_assert_eq(tcache_get(), &tcache_empty, "a thread starts on the static empty cache");
  cr_assert_eq(tcache_get_home(), (void ***)tcache_static_tops, "whose home bins show malloc a NULL");
  unsigned cls = SIZE_CLASS_FOR_48;
  void **p = slow_alloc(cls);
  cr_assert_eq(tcache_tls.busy, 0, "the slow path released what the fast path held");
  tcache_t *tc = tcache_get();
  cr_assert_eq(tc->state, TCACHE_LIVE);
  cr_assert_eq(tc, tcache_own);
  cr_assert_eq(tcache_get_home(), &tc->bin_top[tc->home_bins], "malloc's fast path finds its home bins");
  cr_assert_eq(tc->zone, &zones[0]);
  cr_assert_eq(tcache_registry, tc);
  cr_assert_eq(page_class_at(region_of_address(p), p), cls);
  cr_assert(size_class_is_object(cls, p));
  cr_assert_null(p[1], "handed out without the key");
  uint32_t start = tcache_bin_start(cls), first = tcache_objects_in(cls, TCACHE_FIRST_FILL_BYTES, (start + 1) / 2);
  cr_assert_eq(tc->bin_max[cls], start);
  cr_assert_lt(first, (start + 1) / 2, "a 48-byte class's first fill is less than half its start");
  cr_assert_eq(bin_count(tc, cls), first - 1, "a first fill refilled, one handed out");
  cr_assert_eq(tcache_bin_requests(tc, cls), 1);
  /* The cache is a page run of its home zone, the allocator's own. */
  region_t *r = pagemap_region_of(tc);
  page_desc_t *d = page_desc_of(r, tc);
  cr_assert_eq(d->kind, PAGE_RUN);
  cr_assert_eq(d->flags & PAGE_META, PAGE_META);
  cr_assert_geq(PAGE_SIZE << d->order, tcache_size());
  cr_assert_eq(r->zone, tc->zone);
}

/* A bin's first refill takes a few objects (TCACHE_FIRST_FILL_BYTES); it
 * runs empty before it has served half its start: refilled with half its
 * start, not grown; from then on an empty bin doubles and refills half. */
Test(slow, an_empty_bin_doubles_and_refills_half) {
  unsigned cls = SIZE_CLASS_FOR_256;
  void *first = slow_alloc(cls);
  tcache_t *tc = tcache_get();
  uint32_t max = tc->bin_max[cls];
  cr_assert_eq(max, tcache_bin_start(cls));
  cr_assert_eq(bin_count(tc, cls), TCACHE_FIRST_FILL_BYTES / 256 - 1, "a first fill of 1 KiB, one handed out");
  unsigned allocs = 1;
  while (bin_count(tc, cls) > 0) slow_alloc(cls), allocs++;
  slow_alloc(cls); /* empty, but it served less than half its start */
  allocs++;
  cr_assert_eq(tc->bin_max[cls], max, "not grown");
  cr_assert_eq(bin_count(tc, cls), (max + 1) / 2 - 1, "half refilled");
  for (int refill = 0; refill < 3; refill++) {
    while (bin_count(tc, cls) > 0) {
      slow_alloc(cls); /* a pop */
      allocs++;
      cr_assert_eq(tc->bin_max[cls], max);
    }
    slow_alloc(cls); /* empty: grows, refills half */
    allocs++;
    uint32_t grown = 2 * max < bin_ceiling(cls) ? 2 * max : bin_ceiling(cls);
    cr_assert_eq(tc->bin_max[cls], grown);
    cr_assert_eq(bin_count(tc, cls), (grown + 1) / 2 - 1);
    max = grown;
  }
  cr_assert_eq(tcache_bin_requests(tc, cls), allocs, "every object handed out is a request");
  cr_assert_eq(tc->slow_paths, allocs);
  (void)first;
  zone_verify_all();
}

/* Frees into the home bin; a full bin first sends its oldest quarter home,
 * to its zone's transfer stack. */
Test(slow, a_full_bin_flushes_a_quarter_then_takes_the_free) {
  options.tcache_max = 16;
  unsigned cls = SIZE_CLASS_FOR_64;
  enum { N = 40 };
  void *objs[N];
  for (int i = 0; i < N; i++) objs[i] = slow_alloc(cls);
  tcache_t *tc = tcache_get();
  cr_assert_eq(tc->bin_max[cls], 16);
  for (int i = 0; i < N && bin_room(tc, cls) > 0; i++) {
    slow_free(objs[i]);
    cr_assert_eq(tc->bin_top[tcache_home_bin(tc, cls)][-1], objs[i], "pushed on top");
  }
  cr_assert_eq(bin_count(tc, cls), 16);
  void **bottom = tc->bin_base[cls] + 1, *oldest[16 / TCACHE_FLUSH_DIVISOR];
  memcpy(oldest, bottom, sizeof oldest);
  void *more = objs[N - 1];
  slow_free(more);
  cr_assert_eq(bin_count(tc, cls), 16 - 16 / TCACHE_FLUSH_DIVISOR + 1);
  /* Home: to the zone's transfer stack, which has room (a flush stacks
   * before it gives objects back to their slabs). */
  zone_t *home = tc->zone;
  for (int i = 0; i < 16 / TCACHE_FLUSH_DIVISOR; i++) {
    cr_assert(pointers_hold(home->transfer[cls], home->transfer_count[cls], oldest[i]), "oldest %d went home", i);
    cr_assert(!free_in_slab(oldest[i]), "oldest %d is stacked, not free in its slab as well", i);
  }
  cr_assert_eq(tc->bin_top[tcache_home_bin(tc, cls)][-1], more);
  cr_assert_eq(((void **)more)[1], (void *)FREE_KEY);
  zone_verify_all();
}

Test(slow, flush_current_empties_the_threads_cache) {
  void *objs[10];
  for (int i = 0; i < 10; i++) objs[i] = slow_alloc(i % 2 ? SIZE_CLASS_FOR_32 : SIZE_CLASS_FOR_2048);
  for (int i = 0; i < 10; i++) slow_free(objs[i]);
  void *stray = zone_object(3, SIZE_CLASS_FOR_32);
  slow_free(stray); /* into zone 3's batch */
  tcache_t *tc = tcache_get();
  cr_assert_eq(tc->remote[3].count, 1);
  tcache_flush_current();
  cr_assert_eq(tcache_tls.busy, 0);
  cr_assert_eq(tcache_cached_bytes(tc), 0);
  cr_assert_eq(tc->remote[3].count, 0);
  for (int i = 0; i < 10; i++) cr_assert(free_in_slab(objs[i]), "object %d", i);
  cr_assert(free_in_slab(stray));
  zone_verify_all();
}

/* debug=1: no bin, every object straight from and to its slab (filled),
 * counted as an uncached request. */
Test(slow, debug_serves_every_object_uncached) {
  options.debug = 1;
  unsigned cls = SIZE_CLASS_FOR_112;
  void *p = slow_alloc(cls);
  tcache_t *tc = tcache_get();
  cr_assert_eq(tc->bin_max[cls], 0);
  cr_assert_eq(tcache_requests_uncached[cls], 1);
  slow_free(p);
  cr_assert(free_in_slab(p), "straight to its slab");
  cr_assert_eq(tcache_cached_bytes(tc), 0);
}

/* ---- Remote frees ------------------------------------------------------------ */

/* Objects of another zone wait in that zone's batch, never in a bin, until
 * the batch is full. */
Test(remote, another_zones_objects_wait_in_its_batch) {
  slow_free(slow_alloc(SIZE_CLASS_FOR_64)); /* the thread's cache exists, at home in zone 0 */
  tcache_t *tc = tcache_get();
  unsigned cls = SIZE_CLASS_FOR_64;
  uint32_t cached = bin_count(tc, cls);
  void *objs[TCACHE_REMOTE_MAX - 1];
  for (int i = 0; i < TCACHE_REMOTE_MAX - 1; i++) {
    objs[i] = zone_object(1, cls);
    slow_free(objs[i]);
    cr_assert_eq(((void **)objs[i])[1], (void *)FREE_KEY);
  }
  cr_assert_eq(tc->remote[1].count, TCACHE_REMOTE_MAX - 1);
  cr_assert_eq(tc->remote[1].bytes, (TCACHE_REMOTE_MAX - 1) * 64);
  cr_assert_eq(memcmp(tc->remote[1].objs, objs, sizeof objs), 0);
  cr_assert_eq(bin_count(tc, cls), cached, "no bin took them");
  for (int i = 0; i < TCACHE_REMOTE_MAX - 1; i++) cr_assert(!free_in_slab(objs[i]));
}

/* A full batch shows a consumer of that zone's blocks: the bins adopt what
 * they have room for; the rest goes home, to the zone's transfer stack. */
Test(remote, a_full_batch_goes_to_the_bins_with_room_then_home) {
  options.tcache_max = 32; /* a bin with room for part of a batch */
  unsigned cls = SIZE_CLASS_FOR_64;
  void *own = slow_alloc(cls); /* the home bin of class 64 starts */
  tcache_t *tc = tcache_get();
  uint32_t room = bin_room(tc, cls), count = bin_count(tc, cls);
  cr_assert_lt(room, TCACHE_REMOTE_MAX, "room for part of a batch: %u", room);
  void *objs[TCACHE_REMOTE_MAX];
  for (int i = 0; i < TCACHE_REMOTE_MAX; i++) objs[i] = zone_object(1, cls);
  for (int i = 0; i < TCACHE_REMOTE_MAX; i++) slow_free(objs[i]);
  cr_assert_eq(tc->remote[1].count, 0, "the batch emptied");
  cr_assert_eq(bin_count(tc, cls), count + room, "the bin adopted what fit");
  cr_assert_eq(zones[1].transfer_count[cls], TCACHE_REMOTE_MAX - room, "the rest waits in zone 1's stack");
  for (int i = 0; i < TCACHE_REMOTE_MAX; i++) {
    bool stacked = pointers_hold(zones[1].transfer[cls], zones[1].transfer_count[cls], objs[i]);
    bool binned = pointers_hold(tc->bin_base[cls] + 1, bin_count(tc, cls), objs[i]);
    cr_assert(stacked != binned, "object %d in one place", i);
  }
  slow_free(own);
  zone_verify_all();
}

/* Objects of a class whose bin has not started, in a batch full by its
 * bytes: all go home. */
Test(remote, a_batch_full_by_its_bytes_goes_home) {
  slow_free(slow_alloc(SIZE_CLASS_FOR_16));
  tcache_t *tc = tcache_get();
  unsigned cls = SIZE_CLASS_FOR_1024;
  enum { N = TCACHE_REMOTE_BYTES / 1024 };
  void *objs[N];
  for (int i = 0; i < N; i++) objs[i] = zone_object(2, cls);
  for (int i = 0; i < N - 1; i++) slow_free(objs[i]);
  cr_assert_eq(tc->remote[2].count, N - 1);
  slow_free(objs[N - 1]);
  cr_assert_eq(tc->remote[2].count, 0);
  cr_assert_eq(tc->bin_max[cls], 0, "no bin for the class");
  cr_assert_eq(zones[2].transfer_count[cls], N, "home, to the stack");
  zone_verify_all();
}

/* ---- Double frees ---------------------------------------------------------- */

Test(tcache_misuse, double_frees_are_found_in_the_bin_the_batch_and_the_slab) {
  void *p = slow_alloc(SIZE_CLASS_FOR_48), *q = slow_alloc(SIZE_CLASS_FOR_48);
  slow_free(p);
  slow_free(p); /* in this thread's bin */
  void *stray = zone_object(1, SIZE_CLASS_FOR_48);
  slow_free(stray);
  slow_free(stray); /* in its batch */
  tcache_t *tc = tcache_get();
  cr_assert_eq(tc->remote[1].count, 1, "not batched twice");
  slow_free(q);
  tcache_flush_current();
  slow_free(q); /* free in its slab */
  cr_assert_eq(bin_count(tc, SIZE_CLASS_FOR_48), 0, "none of them pushed again");
  const char *text = redirected_stderr();
  const char *at = text;
  for (int i = 0; i < 3; i++) {
    at = strstr(at, "double free of a small block");
    cr_assert_not_null(at, "report %d missing from:\n%s", i, text);
    at++;
  }
  zone_verify_all();
}

/* A thread's first call is a double free of a block free in its slab: it is
 * found before the cache is made (making it could take the block from its
 * slab and hide the double free). */
Test(tcache_misuse, a_double_free_as_a_threads_first_call_is_found) {
  void *p;
  cr_assert_eq(zone_alloc_objects(&zones[0], SIZE_CLASS_FOR_64, &p, 1), 1);
  zone_free_objects(&p, 1); /* free in its slab, with the key */
  slow_free(p);
  cr_assert_eq(tcache_get(), &tcache_empty, "no cache made for it");
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "double free of a small block"), "got:\n%s", text);
}

Test(tcache_fatal, a_double_free_in_the_bin_aborts, .signal = SIGABRT) {
  void *p = slow_alloc(SIZE_CLASS_FOR_48);
  slow_free(p);
  slow_free(p);
}

/* ---- A thread's cache, from its start to its exit ---------------------------- */

static tcache_t *exited_cache;

static void *allocate_and_exit(void *arg) {
  void **objs = arg;
  for (int i = 0; i < 30; i++) {
    tcache_hold();
    check((objs[i] = tcache_alloc_slow(SIZE_CLASS_FOR_80)) != NULL);
  }
  for (int i = 0; i < 20; i++) {
    tcache_hold();
    tcache_free_slow(objs[i], small_map_at(objs[i]));
  }
  check(tcache_get() == tcache_own && tcache_get()->state == TCACHE_LIVE);
  exited_cache = tcache_own;
  return NULL; /* its cache is flushed and freed by the key's destructor */
}

/* The static caches are zero-initialised, so that they cost a process no
 * page: nothing may write to them, whichever thread stands on them. */
static bool static_caches_untouched(void) {
  static const tcache_t zero;
  return memcmp(&tcache_empty, &zero, sizeof zero) == 0 && memcmp(&tcache_reclaimed, &zero, sizeof zero) == 0;
}

static buddy_stats_t caches_stats(void) {
  buddy_stats_t s;
  memset(&s, 0, sizeof s);
  tcache_collect_stats(&s);
  return s;
}

Test(threads, an_exiting_thread_gives_its_cache_back) {
  void *objs[30];
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, allocate_and_exit, objs), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_null(tcache_registry, "unregistered");
  for (int i = 0; i < 20; i++) cr_assert(free_in_slab(objs[i]), "object %d: its bin went home", i);
  for (int i = 20; i < 30; i++) cr_assert(!free_in_slab(objs[i]), "object %d: still the program's", i);
  buddy_stats_t s = caches_stats();
  cr_assert_eq(s.thread_caches, 0);
  cr_assert_eq(s.bytes_cached, 0);
  cr_assert_eq(s.class_requests[SIZE_CLASS_FOR_80], 30, "its requests are kept");
  region_t *r = pagemap_region_of(exited_cache);
  cr_assert_neq(page_desc_of(r, exited_cache)->kind, PAGE_RUN, "the cache's run went back to its zone");
  cr_assert(static_caches_untouched());
  zone_verify_all();
}

/* Requests per class: the live caches' tallies, the retired ones, and those
 * served uncached. */
Test(threads, requests_are_counted_per_class) {
  void *objs[30];
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, allocate_and_exit, objs), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  for (int i = 0; i < 7; i++) slow_alloc(SIZE_CLASS_FOR_80);
  for (int i = 0; i < 3; i++) slow_alloc(SIZE_CLASS_FOR_512);
  buddy_stats_t s = caches_stats();
  cr_assert_eq(s.thread_caches, 1);
  cr_assert_eq(s.class_requests[SIZE_CLASS_FOR_80], 37);
  cr_assert_eq(s.class_requests[SIZE_CLASS_FOR_512], 3);
  cr_assert_eq(s.class_cached[SIZE_CLASS_FOR_512], bin_count(tcache_get(), SIZE_CLASS_FOR_512));
  cr_assert_eq(s.bytes_cached, tcache_cached_bytes(tcache_get()));
}

/* ---- A fork child's orphans, an idle thread's cache ---------------------------- */

typedef struct worker {
  pthread_t thread;
  int ready[2], wake[2];
  void *objs[40];
  void *stray; /* a block of zone 0, freed into the worker's batch */
} worker_t;

/* The second thread's cache is at home in zone 1: zone 0's stray waits in
 * its batch. It fills its bins, says so, and blocks until woken; then its
 * cache must still serve it. */
static void *worker_main(void *arg) {
  worker_t *w = arg;
  for (int i = 0; i < 40; i++) {
    tcache_hold();
    check((w->objs[i] = tcache_alloc_slow(SIZE_CLASS_FOR_160)) != NULL);
  }
  for (int i = 0; i < 40; i++) {
    tcache_hold();
    tcache_free_slow(w->objs[i], small_map_at(w->objs[i]));
  }
  check(tcache_get()->zone == &zones[1]);
  tcache_hold();
  tcache_free_slow(w->stray, small_map_at(w->stray));
  char c = 1;
  check(write(w->ready[1], &c, 1) == 1);
  check(read(w->wake[0], &c, 1) == 1); /* idle, in a system call */
  tcache_hold();
  void *p = tcache_alloc_slow(SIZE_CLASS_FOR_160);
  check(p != NULL && tcache_get() == tcache_own && tcache_own->state == TCACHE_LIVE);
  tcache_hold();
  tcache_free_slow(p, small_map_at(p));
  return NULL;
}

static void worker_start(worker_t *w) {
  slow_free(slow_alloc(SIZE_CLASS_FOR_16)); /* this thread's cache first: zone 0 */
  w->stray = zone_object(0, SIZE_CLASS_FOR_32);
  cr_assert_eq(pipe(w->ready), 0);
  cr_assert_eq(pipe(w->wake), 0);
  cr_assert_eq(pthread_create(&w->thread, NULL, worker_main, w), 0);
  char c;
  cr_assert_eq(read(w->ready[0], &c, 1), 1);
}

static void worker_finish(worker_t *w) {
  char c = 1;
  cr_assert_eq(write(w->wake[1], &c, 1), 1);
  cr_assert_eq(pthread_join(w->thread, NULL), 0);
}

/* The runtime's fork handlers (fork.c), for the layers up to this one. */
static void fork_prepare(void) {
  tcache_fork_prepare();
  zone_fork_prepare();
  huge_fork_prepare();
}

static void fork_parent(void) {
  huge_fork_parent();
  zone_fork_parent();
  tcache_fork_parent();
}

/* In a fork child, the worker's cache is an orphan; the child's first sweep
 * flushes it. */
static int child_flushes_orphans(worker_t *w) {
  huge_fork_child();
  zone_fork_child();
  tcache_fork_child_locked();
  tcache_fork_child();
  if (tcache_registry != tcache_own || tcache_own->next != NULL) return 1;
  if (tcache_orphans == NULL) return 2;
  buddy_stats_t s = caches_stats();
  if (s.thread_caches != 1 || s.class_cached[SIZE_CLASS_FOR_160] == 0) return 3; /* orphans' objects count */
  if (free_in_slab(w->stray)) return 4;
  tcache_sweep();
  if (tcache_orphans != NULL) return 5;
  s = caches_stats();
  if (s.class_cached[SIZE_CLASS_FOR_160] != 0) return 6;
  for (int i = 0; i < 40; i++)
    if (!free_in_slab(w->objs[i])) return 7;
  if (!free_in_slab(w->stray)) return 8; /* the batch went home too */
  zone_verify_all();
  return 0;
}

Test(threads, a_fork_childs_first_sweep_flushes_the_caches_of_threads_it_does_not_have) {
  options.reclaim_idle = 0; /* orphans are flushed whether or not idle caches are */
  worker_t w;
  worker_start(&w);
  fork_prepare();
  pid_t pid = fork();
  if (pid == 0) _exit(child_flushes_orphans(&w));
  fork_parent();
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's status %#x", status);
  worker_finish(&w);
}

/* An owner blocked in a system call at the sweeps that look, its CPU time
 * unchanged: the third sweep that finds it idle empties its cache, and its
 * next slow path takes the cache back. */
Test(threads, an_idle_threads_cache_is_emptied_at_the_third_sweep, .timeout = 30) {
  if (TEST_TSAN) cr_skip_test("TSan builds do not reclaim idle caches (tcache_sweep.c)");
  worker_t w;
  worker_start(&w);
  cr_assert_gt(caches_stats().class_cached[SIZE_CLASS_FOR_160], 0);
  int sweeps = 0;
  while (caches_stats().caches_reclaimed == 0 && sweeps < 200) {
    test_sleep_ms(10); /* the worker reaches its read */
    tcache_sweep();
    sweeps++;
  }
  buddy_stats_t s = caches_stats();
  cr_assert_eq(s.caches_reclaimed, 1, "no reclaim in %d sweeps", sweeps);
  cr_assert_geq(sweeps, 3, "not before the third sweep");
  cr_assert_eq(s.class_cached[SIZE_CLASS_FOR_160], 0, "the cache was emptied");
  cr_assert_gt(s.bytes_reclaimed, 0);
  for (int i = 0; i < 40; i++) cr_assert(free_in_slab(w.objs[i]), "object %d went home", i);
  worker_finish(&w); /* it takes its cache back and allocates */
  cr_assert(static_caches_untouched());
  zone_verify_all();
}

Test(threads, no_reclaim_when_turned_off, .timeout = 30) {
  options.reclaim_idle = 0;
  worker_t w;
  worker_start(&w);
  for (int i = 0; i < 10; i++) {
    test_sleep_ms(10);
    tcache_sweep();
  }
  buddy_stats_t s = caches_stats();
  cr_assert_eq(s.caches_reclaimed, 0);
  cr_assert_gt(s.class_cached[SIZE_CLASS_FOR_160], 0, "the idle worker's cache is left alone");
  worker_finish(&w);
}

/* tcache_size.c: how many objects each bin of a thread's cache may hold.
 *
 * A bin's max starts at tcache_bin_start() on its class's first slow path and
 * doubles on each refill (the bin ran empty: the class is in demand), up to
 * its ceiling, while the thread's maxes (times their class sizes) stay
 * within TCACHE_BYTES_MAX. When the budget refuses, bins not used lately
 * close and larger classes give way to smaller ones (tcache_rebalance). So a
 * thread holds at most TCACHE_BYTES_MAX in its bins, and a thread that moves
 * on to other classes takes the budget of those it left.
 */
#include "tcache.h"

#include <string.h>

/* The slots of a bin's full stack of class cls above its NULL: its ceiling
 * with the largest tcache_max, so that no option makes a bin outgrow them. */
size_t tcache_bin_slots(unsigned cls) {
  return cls == 0 ? 0 : tcache_objects_in(cls, TCACHE_BIN_CEILING_BYTES, TCACHE_BIN_MAX);
}

/* The slots of class cls's nursery above its NULL: its start with the
 * largest tcache_max (tcache_bin_start), so that a bin moves to its full
 * stack only when it grows past its start. */
size_t tcache_bin_nursery_slots(unsigned cls) {
  return cls == 0 ? 0 : tcache_objects_in(cls, TCACHE_BIN_START_BYTES, TCACHE_BIN_START_MAX);
}

size_t tcache_size(void) {
  size_t slots = 0;
  for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) slots += 2 + tcache_bin_nursery_slots(c) + tcache_bin_slots(c);
  slots += TCACHE_REMOTE_SLOTS;
  /* With sampling on, the sampling stacks follow the slots (tcache_prof.c);
   * in secure mode, its blocks (secure_cache.c). */
  return sizeof(tcache_t) + slots * sizeof(void *) + (options_sampling() ? sizeof(tcache_prof_t) : 0) +
         secure_cache_size();
}

/* A bin outgrows its nursery: its `count` objects move to its full stack,
 * which it keeps from then on (a thread's demand for a class comes back). */
static void tcache_bin_move_to_stack(tcache_t *tc, unsigned cls, uint32_t count) {
  void **stack = tc->bin_stack[cls];
  stack[0] = NULL;
  memcpy(stack + 1, tc->bin_base[cls] + 1, count * sizeof(void *));
  __atomic_store_n(&tc->bin_base[cls], stack, __ATOMIC_RELAXED);
  tcache_set_top(tc, tcache_home_bin(tc, cls), stack + 1 + count);
}

/* Sets the max of tc's home bin of class cls, flushing the objects past it
 * and moving the bin to its full stack if its nursery is too small; keeps
 * the limit and the budget's sum. */
static void tcache_bin_resize(tcache_t *tc, unsigned cls, uint32_t max) {
  uint32_t old = tc->bin_max[cls], count = tcache_bin_count(tc, cls);
  if (count > max) tcache_flush_bin(tc, cls, count - max, false), count = max;
  if (max > tcache_bin_nursery_slots(cls) && tc->bin_base[cls] != tc->bin_stack[cls])
    tcache_bin_move_to_stack(tc, cls, count);
  tc->bin_limit[tcache_home_bin(tc, cls)] = tc->bin_base[cls] + 1 + max;
  tc->budget_used = tc->budget_used - (size_t)old * size_class_bytes[cls] + (size_t)max * size_class_bytes[cls];
  __atomic_store_n(&tc->bin_max[cls], max, __ATOMIC_RELAXED);
  assert_internal(tc->budget_used <= TCACHE_BYTES_MAX);
}

/* The budget is spent and class `wanting` asks for `need` more bytes.
 *  1. Bins that served no request since the last rebalance give up all of
 *     it (the class starts again at its next slow path). At most once in
 *     TCACHE_REBALANCE_SLOW_PATHS slow paths: a thread whose classes all run
 *     hot does not scan on every refill, and a class used once in a while
 *     is not taken for unused.
 *  2. If that is not enough, a bin below its start (starting, or started
 *     again) takes from any class at once, largest first, down to their
 *     starts: the starts of all classes fit the budget together (tested), so
 *     no class in use is left without a bin.
 *  3. A bin growing past its start takes, in the same rate-limited pass, from
 *     the bins that need their bytes least, down to their starts. A bin of
 *     max objects that served r requests in the period refills about
 *     2r / max times, so a byte of its budget saves it about r / (max^2 *
 *     size) refills (its score): the total of refills is least when the
 *     scores are level. So the growing class takes from the classes whose
 *     score is lowest, while it stays below the score it will have after
 *     doubling: with equal demand a smaller class takes from larger ones (a
 *     refill or a flush costs about the same per object whatever its size),
 *     and a large class that serves most of the requests keeps, or wins, the
 *     budget a small class in less demand would take. */
static double tcache_bin_score(uint64_t served, uint32_t max, unsigned cls) {
  return (double)served / ((double)max * (double)max * (double)size_class_bytes[cls]);
}

static void tcache_rebalance(tcache_t *tc, unsigned wanting, size_t need) {
  bool due = tc->slow_paths - tc->rebalanced_at >= TCACHE_REBALANCE_SLOW_PATHS;
  bool starting = tc->bin_max[wanting] < tcache_bin_start(wanting);
  uint64_t served[SIZE_CLASS_COUNT] = {0};
  if (due) {
    tc->rebalanced_at = tc->slow_paths;
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
      uint64_t requests = tcache_bin_requests(tc, c);
      served[c] = requests - tc->bin_requests_seen[c];
      tc->bin_requests_seen[c] = requests;
      if (c != wanting && served[c] == 0 && tc->bin_max[c] != 0) tcache_bin_resize(tc, c, 0);
    }
  }
  if (starting) {
    for (unsigned c = SIZE_CLASS_COUNT - 1; c > 0; c--) {
      if (tc->budget_used + need <= TCACHE_BYTES_MAX) return;
      uint32_t max = tc->bin_max[c], start = tcache_bin_start(c);
      if (c == wanting || max <= start) continue;
      size_t short_by = tc->budget_used + need - TCACHE_BYTES_MAX, bytes = size_class_bytes[c];
      size_t give = (short_by + bytes - 1) / bytes; /* no more than needed: a larger class would take it back */
      tcache_bin_resize(tc, c, give < max - start ? max - (uint32_t)give : start);
    }
    return;
  }
  if (!due) return;
  uint32_t want = tc->bin_max[wanting] + (uint32_t)(need / size_class_bytes[wanting]);
  double wanting_score = tcache_bin_score(served[wanting], want, wanting);
  while (tc->budget_used + need > TCACHE_BYTES_MAX) {
    unsigned donor = 0;
    double donor_score = wanting_score;
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
      uint32_t max = tc->bin_max[c];
      if (c == wanting || max <= tcache_bin_start(c)) continue;
      double score = tcache_bin_score(served[c], max, c);
      if (score < donor_score) donor = c, donor_score = score;
    }
    if (donor == 0) return;
    /* Half of its bin at most at a time, so that its score is looked at
     * again as it rises. */
    uint32_t max = tc->bin_max[donor], start = tcache_bin_start(donor);
    size_t short_by = tc->budget_used + need - TCACHE_BYTES_MAX, bytes = size_class_bytes[donor];
    uint32_t give = (uint32_t)((short_by + bytes - 1) / bytes), most = max - (max / 2 > start ? max / 2 : start);
    tcache_bin_resize(tc, donor, max - (give < most ? give : most));
  }
}

/* tcache_bin_grow when the bin may change. */
uint32_t tcache_bin_grow_slow(tcache_t *tc, unsigned cls) {
  uint32_t max = tc->bin_max[cls], ceiling = tcache_bin_objects(cls, TCACHE_BIN_CEILING_BYTES);
  uint32_t want = max == 0 ? tcache_bin_start(cls) : 2 * max;
  if (want > ceiling) want = ceiling;
  if (want <= max) return max;
  size_t bytes = size_class_bytes[cls], need = (want - max) * bytes;
  if (tc->budget_used + need > TCACHE_BYTES_MAX) tcache_rebalance(tc, cls, need);
  size_t fits = max + (TCACHE_BYTES_MAX - tc->budget_used) / bytes;
  if (want > fits) want = (uint32_t)fits;
  if (want > max) tcache_bin_resize(tc, cls, want);
  return tc->bin_max[cls];
}

/* tcache_prof.c: malloc's sampling stacks (prof=1 or leaks=1), so that the
 * allocation that reaches a sample point takes a slow path while malloc's
 * and free's fast paths stay as they are.
 *
 * Sampling: each class of each thread counts down the bytes to its next
 * sample point, drawn from an exponential distribution of mean prof_sample
 * (as jemalloc and tcmalloc do: no periodic pattern of the program lines up
 * with it). Since the exponential has no memory, a countdown per class is a
 * Poisson process of rate 1 / prof_sample over each class's bytes, and so
 * over all bytes: an allocation of s bytes is sampled with probability
 * 1 - exp(-s / prof_sample), which is what a profile's reader divides by.
 *
 * Exactness without a counter on the fast path: with sampling on, the cache's
 * `prof` block (types.h: tcache_prof_t) holds a stack per class, and
 * tcache_tls.home points at their tops, so malloc's fast path pops from
 * them; free's fast path still pushes on the home bins, which it reaches by
 * the cache's address (tcache_tls.current). A stack takes from its home bin
 * only the objects that stay below the class's sample point, so when it runs
 * empty (the slow path) every object given to it since the last slow path was
 * handed out: the bytes are exact there, and the allocation that reaches the
 * point is the slow path's own. That one is sampled (alloc.c serves it from a
 * page run of its own); the others are served as before. The home bin
 * counts the objects it gives to the stack as requests at once, and takes
 * back those an emptied stack did not hand out (tcache_prof_unload).
 *
 * A stack takes objects at two slow paths: malloc's, when it ran empty
 * (tcache_prof_alloc: the count, the pop and the fill in one call), and
 * free's, when the home bin is full (tcache_prof_absorb): there the objects
 * go to the stack, up to the bin's max, rather than back to their zone, and
 * the next allocations find them without a slow path. Each counts first
 * what the stack handed out since the last one, so that what it takes
 * stays below the sample point whenever it takes. With sampling on, a
 * thread so holds at most twice its bins' budget (TCACHE_BYTES_MAX): the
 * bins, and stacks of at most their bins' max.
 */
#include "tcache.h"

#include <string.h>

/* xorshift64*: a few instructions a draw, one draw a sample. */
static uint64_t tcache_prof_random(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

int64_t tcache_prof_draw(uint64_t *state) {
  /* u uniform in (0, 1]: 53 random bits. */
  double u = (double)((tcache_prof_random(state) >> 11) + 1) * (1.0 / 9007199254740992.0);
  double bytes = -base_ln(u) * (double)options.prof_sample;
  return bytes < 1 ? 1 : bytes > 1e15 ? (int64_t)1e15 : (int64_t)bytes + 1;
}

/* zeroed: pr's memory is known to hold zeros (then the stacks' NULLs are
 * there already, and their pages stay untouched until a class is used). */
void tcache_prof_setup(tcache_t *tc, tcache_prof_t *pr, bool zeroed) {
  pr->random = (os_random_seed() ^ ((uintptr_t)pr * 0x9E3779B97F4A7C15ULL)) | 1;
  for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) {
    if (!zeroed) pr->slots[c][0] = NULL;
    pr->top[c] = &pr->slots[c][1];
    pr->filled[c] = 0;
    pr->left[c] = tcache_prof_draw(&pr->random);
  }
  tc->prof = pr;
}

static size_t tcache_prof_count(const tcache_prof_t *pr, unsigned cls) {
  return (size_t)(pr->top[cls] - &pr->slots[cls][1]);
}

/* Counts what class cls's stack handed out since the last slow path, then
 * this allocation. True if it reaches the sample point: then it is the
 * sample, and the next point is drawn. */
static inline bool tcache_prof_due(tcache_prof_t *pr, unsigned cls, int64_t size) {
  size_t remaining = tcache_prof_count(pr, cls);
  int64_t left = pr->left[cls] - (int64_t)(pr->filled[cls] - remaining) * size;
  pr->filled[cls] = (uint32_t)remaining;
  if (unlikely(left <= size)) {
    pr->left[cls] = tcache_prof_draw(&pr->random) + (int64_t)remaining * size;
    return true;
  }
  pr->left[cls] = left - size;
  return false;
}

/* Tops class cls's home bin up from its zone with at most `want` objects,
 * within its max; returns how many it took. */
static noinline size_t tcache_prof_top_up(tcache_t *tc, unsigned cls, unsigned bin, size_t want) {
  size_t room = (size_t)(tc->bin_limit[bin] - tc->bin_top[bin]);
  if (want > room) want = room;
  return want == 0 ? 0 : tcache_bin_take_from_zone(tc, bin, cls, (unsigned)want);
}

/* How many of `n` more objects class cls's stack, holding `have`, may take:
 * within its slots and TCACHE_PROF_FILL_BYTES, and below the sample point
 * (with k objects in the stack, the next allocation reaches the point when
 * (k + 1) * size >= left; the division only when the point is what
 * limits). */
static inline size_t tcache_prof_room(const tcache_prof_t *pr, unsigned cls, size_t have, size_t n, int64_t size) {
  size_t cap = TCACHE_PROF_FILL_BYTES / (size_t)size;
  if (cap < TCACHE_PROF_FILL_MIN) cap = TCACHE_PROF_FILL_MIN;
  if (cap > TCACHE_PROF_SLOTS) cap = TCACHE_PROF_SLOTS;
  if (have >= cap) return 0;
  if (n > cap - have) n = cap - have;
  if ((int64_t)(have + n) * size >= pr->left[cls]) {
    int64_t below = (pr->left[cls] - 1) / size - (int64_t)have;
    n = below <= 0 ? 0 : (size_t)below;
  }
  return n;
}

/* Moves the n objects at the top of home bin `bin` onto class cls's stack,
 * counted as given to it and as the bin's requests. */
static inline void tcache_prof_move(tcache_t *tc, tcache_prof_t *pr, unsigned cls, unsigned bin, size_t n) {
  void **from = tc->bin_top[bin] - n;
  tcache_set_top(tc, bin, from);
  memcpy(pr->top[cls], from, n * sizeof(void *)); /* libc's: a few instructions per 8 pointers */
  counter_add(pr->top[cls], n);                   /* other threads read it (tcache_prof_waiting) */
  pr->filled[cls] += (uint32_t)n;
  counter_add(tc->bin_requests[bin], n);
}

/* Moves to class cls's stack, from the top of its home bin `bin`, the
 * objects that stay below the sample point, at most its slots,
 * TCACHE_PROF_FILL_BYTES (tcache_prof_room) and half the bin's max (all of
 * it but one once the bin has served TCACHE_PROF_HOT times its max: see
 * below): with k objects in the stack, the next
 * allocation reaches the point when (k + 1) * size >= left. (The division
 * only when the point is what limits the fill.)
 * Why half the max, and why the bin may be topped up first: with a class
 * allocated and freed in turn, the frees bring back to the bin as many
 * objects as the stack hands out, so the stack's length at its first fills
 * is its length from then on, and the slow path comes once per that many
 * allocations. A bin holding under half of what the stack may take (a bin's
 * first refill is small: types.h, TCACHE_FIRST_FILL_BYTES), or less than
 * that but at least what the stack handed out since its last fill `last`
 * (the frees brought them all back: they go round, and would go round at
 * that length for good), is topped up from its zone; and a stack of more
 * than half the max would leave the frees a full bin, and each round trip
 * would flush. `last` is SIZE_MAX after a refill (nothing known).
 * A hot class, whose bin has served TCACHE_PROF_HOT times its max, takes
 * all of it but one: a stack of half the max took the slow path twice as
 * often in a malloc/free loop, and a free that finds the bin full now moves
 * objects to the stack (tcache_prof_absorb) instead of flushing. Only a hot
 * one: a thread that lives for a few hundred allocations of a class would
 * give back at its exit the stack it did not use (tcache_prof_unload).
 * A bin of fewer than TCACHE_PROF_GROW_BELOW objects (a class of a few KiB:
 * its start is TCACHE_BIN_START_BYTES) grows before the fill (tcache.c,
 * with tcache_prof_starved): half of a max of 1, 2 or 3 is 0 or 1 object,
 * and every allocation or every other one took the slow path. */
static inline void tcache_prof_fill_from(tcache_t *tc, tcache_prof_t *pr, unsigned cls, unsigned bin, int64_t size,
                                         size_t last) {
  size_t have = tcache_prof_count(pr, cls), max = tc->bin_max[cls];
  bool hot = tc->bin_requests[bin] >= TCACHE_PROF_HOT * max && max != 0;
  size_t n = tcache_prof_room(pr, cls, have, hot ? max - 1 : max / 2, size);
  size_t in_bin = (size_t)(tc->bin_top[bin] - (tc->bin_base[cls] + 1));
  if (in_bin < n / 2 || (in_bin < n && in_bin >= last)) in_bin += tcache_prof_top_up(tc, cls, bin, n - in_bin);
  if (n > in_bin) n = in_bin;
  if (n != 0) tcache_prof_move(tc, pr, cls, bin, n);
}

void tcache_prof_fill(tcache_t *tc, unsigned cls) {
  tcache_prof_fill_from(tc, tc->prof, cls, tcache_home_bin(tc, cls), (int64_t)size_class_bytes[cls], SIZE_MAX);
}

bool tcache_prof_starved(const tcache_t *tc, unsigned cls) {
  const tcache_prof_t *pr = tc->prof;
  int64_t size = (int64_t)size_class_bytes[cls];
  size_t have = tcache_prof_count(pr, cls);
  /* left as the fill will see it: what the stack handed out, then this
   * allocation, counted */
  int64_t left = pr->left[cls] - (int64_t)(pr->filled[cls] - have + 1) * size;
  return (int64_t)(have + tc->bin_max[cls] / 2 + 1) * size < left;
}

/* The count, the pop and the fill in one function (a slow path every few
 * dozen allocations of a class: each call saved counts). */
void *tcache_prof_alloc(tcache_t *tc, unsigned cls) {
  tcache_prof_t *pr = tc->prof;
  int64_t size = (int64_t)size_class_bytes[cls];
  size_t last = pr->filled[cls] - tcache_prof_count(pr, cls);
  if (tcache_prof_due(pr, cls, size)) return TCACHE_SAMPLE;
  unsigned bin = tcache_home_bin(tc, cls);
  if (tc->bin_top[bin][-1] == NULL) return NULL;
  void *p = tcache_pop(tc, bin);
  tcache_prof_fill_from(tc, pr, cls, bin, size, last);
  return p;
}

/* Free's slow path found the home bin full: the stack takes the objects
 * at the bin's top that stay below the sample point, up to the bin's max in
 * all (the bin keeps the oldest, which a flush would take). Then the
 * allocations that follow pop them with no slow path, where they took one
 * each time the stack ran empty, and the bin, which would have flushed a
 * quarter of its objects to their zone under its lock, has room. */
bool tcache_prof_absorb(tcache_t *tc, unsigned cls) {
  tcache_prof_t *pr = tc->prof;
  int64_t size = (int64_t)size_class_bytes[cls];
  size_t have = tcache_prof_count(pr, cls), max = tc->bin_max[cls];
  /* What the stack handed out since the last slow path counts now. */
  pr->left[cls] -= (int64_t)(pr->filled[cls] - have) * size;
  pr->filled[cls] = (uint32_t)have;
  if (have >= max) return false;
  size_t n = tcache_prof_room(pr, cls, have, max - have, size);
  unsigned bin = tcache_home_bin(tc, cls);
  size_t in_bin = (size_t)(tc->bin_top[bin] - (tc->bin_base[cls] + 1));
  if (n > in_bin) n = in_bin;
  if (n == 0) return false;
  tcache_prof_move(tc, pr, cls, bin, n);
  return true;
}

uint32_t tcache_prof_waiting(const tcache_t *tc, unsigned cls) {
  const tcache_prof_t *pr = tc->prof;
  if (pr == NULL) return 0;
  uintptr_t top = (uintptr_t)__atomic_load_n(&pr->top[cls], __ATOMIC_RELAXED);
  uintptr_t bottom = (uintptr_t)&pr->slots[cls][1];
  if (top <= bottom) return 0;
  size_t n = (top - bottom) / sizeof(void *);
  return n < TCACHE_PROF_SLOTS ? (uint32_t)n : TCACHE_PROF_SLOTS;
}

/* Whether p waits in class cls's stack (a double free's scan). */
bool tcache_prof_holds(const tcache_t *tc, unsigned cls, const void *p) {
  return tc->prof != NULL && pointers_hold(&tc->prof->slots[cls][1], tcache_prof_count(tc->prof, cls), p);
}

/* Every stack's objects back to their zones (the cache is being emptied:
 * thread exit, a reclaim, a fork's orphan); what they handed out still
 * counts at the next slow path. A stack whose top is out of its bounds (an
 * orphan caught halfway) is left alone. */
void tcache_prof_unload(tcache_t *tc) {
  tcache_prof_t *pr = tc->prof;
  if (pr == NULL) return;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    size_t n = tcache_prof_count(pr, c);
    if (n == 0 || n > pr->filled[c]) continue;
    zone_free_objects(&pr->slots[c][1], (unsigned)n);
    pr->top[c] = &pr->slots[c][1];
    pr->filled[c] -= (uint32_t)n;
    /* Not requests after all. */
    counter_sub(tc->bin_requests[tcache_home_bin(tc, c)], n);
  }
}

/* tcache.c: the slow paths of the per-thread caches of free small objects.
 *
 * Every thread starts on tcache_empty, a static cache whose bins are all empty
 * with max 0: its first malloc or free fails the fast path's test and lands
 * here, where the thread's own cache is made (tcache_thread.c; so the fast
 * path never asks "initialised?"). A bin is a stack of pointers in the cache's own slots
 * (types.h), so that neither malloc nor free reads an object that another
 * core wrote last. Refills take half a bin from the home zone in one lock;
 * a full bin flushes its oldest quarter, each object to the zone of its
 * region (its transfer stack first, while that has room: transfer.c).
 * Bin sizes adapt to demand within a budget per thread (tcache_size.c).
 * A freed object of another zone than the home zone is a remote free and
 * waits in that zone's batch (tcache_remote_t) instead of a bin, so a stray
 * block one thread hands another is never reused by it (both would write one
 * cache line: false sharing). A batch that fills up shows a consumer of that
 * zone's blocks: the bins adopt what they have room for, the rest goes home
 * under one lock, to that zone's transfer stacks while they have room
 * (zone.c), so the owner's next refill takes it without touching a slab.
 */
#include "tcache.h"

#include <errno.h>

uint64_t tcache_requests_uncached[SIZE_CLASS_COUNT];

/* A thread with no cache of its own (dead, or out of memory for one). */
static void *tcache_alloc_uncached(zone_t *z, unsigned cls) {
  void *p = NULL;
  if (zone_alloc_objects(z, cls, &p, 1) == 0) return NULL;
  __atomic_fetch_add(&tcache_requests_uncached[cls], 1, __ATOMIC_RELAXED);
  ((void **)p)[1] = NULL;
  return p;
}

/* The thread's cache for a slow path: entered, and made first if the thread
 * had none (still tcache_empty if that failed). */
static tcache_t *tcache_enter_own(tcache_t *tc) {
  tc = tcache_enter(tc);
  if (tc == &tcache_empty && tcache_thread_init()) tc = tcache_enter(tcache_own);
  return tc;
}

/* How many objects a refill of the empty home bin of class cls takes. The
 * bin ran empty: the class is in demand, so the bin grows (tcache_bin_grow)
 * before half of it is refilled; but its first refill takes a few objects
 * only (TCACHE_FIRST_FILL_BYTES), and until the bin has served half its max,
 * the class has not shown demand: it is refilled without growing. 0: no
 * bin (debug=1, or no budget left). */
static uint32_t tcache_refill_count(tcache_t *tc, unsigned cls) {
  uint32_t max = tc->bin_max[cls];
  if (max != 0 && tcache_bin_requests(tc, cls) < (max + 1) / 2) return (max + 1) / 2;
  bool first = max == 0;
  max = tcache_bin_grow(tc, cls);
  if (max == 0) return 0;
  return first ? tcache_objects_in(cls, TCACHE_FIRST_FILL_BYTES, (max + 1) / 2) : (max + 1) / 2;
}

static void *tcache_refill_and_pop(tcache_t *tc, unsigned cls) {
  if (tc->state != TCACHE_LIVE) return tcache_alloc_uncached(tcache_home_zone(tc), cls);
  unsigned bin = tcache_home_bin(tc, cls);
  if (tc->bin_top[bin][-1] == NULL) {
    uint32_t count = tcache_refill_count(tc, cls);
    if (count == 0) return tcache_alloc_uncached(tc->zone, cls);
    if (tcache_bin_take_from_zone(tc, bin, cls, count) == 0) return NULL;
  }
  return tcache_pop(tc, bin);
}

/* Sampling on (tcache_prof.c): class cls's sampling stack ran empty. The
 * allocation is the sample, or it is served from the home bin, which then
 * fills the stack; an empty bin is refilled first. */
static void *tcache_prof_refill_and_pop(tcache_t *tc, unsigned cls) {
  if (tc->state != TCACHE_LIVE || tc->prof == NULL) return tcache_refill_and_pop(tc, cls); /* not sampled */
  if (unlikely(tc->bin_max[cls] < TCACHE_PROF_GROW_BELOW) && tcache_prof_starved(tc, cls)) tcache_bin_grow(tc, cls);
  void *p = tcache_prof_alloc(tc, cls);
  if (p != NULL) return p;
  p = tcache_refill_and_pop(tc, cls);
  if (p != NULL) tcache_prof_fill(tc, cls);
  return p;
}

tcache_t *tcache_enter_held(void) {
  tcache_hold();
  return tcache_enter_own(tcache_get());
}

void *tcache_alloc_slow(unsigned cls) {
  tcache_t *tc = tcache_enter_own(tcache_get());
  void *p = tc->prof == NULL ? tcache_refill_and_pop(tc, cls) : tcache_prof_refill_and_pop(tc, cls);
  tcache_release();
  if (p == NULL) errno = ENOMEM;
  return p;
}

/* A full batch: this thread freed many objects of that zone (a consumer of
 * its blocks, not one handed a stray block), so its bins adopt what they have
 * room for, to be reused here without a lock; the rest go home, to the
 * zone's transfer stacks while they have room (zone.c). Stray remote
 * frees, the false-sharing case, never fill a batch and are never reused. */
static noinline void tcache_remote_adopt(tcache_t *tc, tcache_remote_t *rb) {
  void *home[TCACHE_REMOTE_MAX];
  uint8_t home_classes[TCACHE_REMOTE_MAX];
  unsigned home_count = 0;
  for (unsigned i = 0; i < rb->count; i++) {
    unsigned bin = tcache_home_bin(tc, rb->classes[i]);
    if (!tcache_top_full(&tc->bin_top[bin])) {
      tcache_bin_push(tc, bin, rb->objs[i]);
    } else {
      home[home_count] = rb->objs[i];
      home_classes[home_count++] = rb->classes[i];
    }
  }
  if (home_count > 0) zone_free_remote_objects(&zones[rb - tc->remote], home, home_classes, home_count);
  rb->count = rb->bytes = 0;
}

static void tcache_remote_push(tcache_t *tc, tcache_remote_t *rb, void *p, unsigned cls) {
  ((void **)p)[1] = (void *)FREE_KEY;
  uint32_t n = rb->count, bytes = rb->bytes + size_class_bytes[cls];
  rb->objs[n] = p;
  rb->classes[n] = (uint8_t)cls;
  rb->count = n + 1;
  rb->bytes = bytes;
  if (unlikely(n + 1 >= TCACHE_REMOTE_MAX || bytes >= TCACHE_REMOTE_BYTES)) tcache_remote_adopt(tc, rb);
}

static bool tcache_bin_holds(const tcache_t *tc, unsigned cls, const void *p) {
  void **bottom = tc->bin_base[cls] + 1;
  return pointers_hold(bottom, (size_t)(tc->bin_top[tcache_home_bin(tc, cls)] - bottom), p);
}

/* The object's second word holds the key: confirm by a scan of this thread's
 * bin and remote batch (a live cache's: the static ones hold nothing and
 * have no slots), then by its free bit (set while it is free in its slab,
 * where flushes and exited threads put blocks) or its zone's transfer stack.
 * A block waiting in another live thread's cache cannot be seen here; the
 * zone finds the second copy when it comes home while the first is still
 * stacked or free in its slab, or handed out again (its key gone). */
static bool tcache_check_double_free(tcache_t *tc, void *p, unsigned cls, unsigned zone_index) {
  bool found = tc->state == TCACHE_LIVE &&
               (tcache_bin_holds(tc, cls, p) || tcache_prof_holds(tc, cls, p) ||
                pointers_hold(tc->remote[zone_index].objs, tc->remote[zone_index].count, p));
  if (!found) found = zone_holds_free_object(region_of_address(p), p); /* free found p in a zone region */
  if (found) error_misuse("double free of a small block", p);
  return found;
}

/* An entered, live cache takes p, of class cls and zone zone_index: into
 * its bin (flushing half when full), or into that zone's remote batch when
 * it is not the home zone. */
static void tcache_push(tcache_t *tc, void *p, unsigned cls, unsigned zone_index) {
  if (tc->state != TCACHE_LIVE || options.debug) return zone_free_small(p);
  if (!tcache_zone_is_home(tc, zone_index)) return tcache_remote_push(tc, &tc->remote[zone_index], p, cls);
  unsigned bin = tcache_home_bin(tc, cls);
  uint32_t max = tc->bin_max[cls];
  if (max == 0 && (max = tcache_bin_grow(tc, cls)) == 0) return zone_free_small(p); /* no budget */
  if (tcache_top_full(&tc->bin_top[bin]) && !(tc->prof != NULL && tcache_prof_absorb(tc, cls)))
    tcache_flush_bin(tc, cls, (max + TCACHE_FLUSH_DIVISOR - 1) / TCACHE_FLUSH_DIVISOR, true);
  tcache_bin_push(tc, bin, p);
}

/* Every case of tcache_free_slow but the remote shortcut, apart so that the
 * shortcut saves fewer registers. */
static noinline void tcache_free_other(void *p, unsigned cls, unsigned zone_index) {
  bool suspect = free_key_matches(((void **)p)[1]);
  tcache_t *tc = tcache_get();
  /* Confirmed before a first cache is made: making it (and pthread's own
   * allocation for its key) could take p from its slab. Not found there, p
   * is in no cache of this thread's either (it had none). */
  if (suspect && tc == &tcache_empty) {
    if (tcache_check_double_free(tc, p, cls, zone_index)) return tcache_release();
    suspect = false;
  }
  tc = tcache_enter_own(tc);
  if (!(suspect && tcache_check_double_free(tc, p, cls, zone_index))) tcache_push(tc, p, cls, zone_index);
  tcache_release();
}

/* The fast path could not push p (bin `bin`: its zone and class): a remote
 * object (another zone's bin has no room), a suspected double free, a full
 * bin, a class not started, or a thread with no cache of its own yet (or any
 * more, or reclaimed while idle). A remote free of a live cache goes straight
 * to its batch, with no other test.
 * Entered held; releases. */
void tcache_free_slow(void *p, size_t bin) {
  tcache_t *tc = tcache_get();
  unsigned zone_index = bin / SIZE_CLASS_COUNT, cls = small_map_bin_class(bin);
  if (likely(!free_key_matches(((void **)p)[1]) && tc->state == TCACHE_LIVE && !tcache_zone_is_home(tc, zone_index) &&
             !options.debug)) {
    tcache_remote_push(tc, &tc->remote[zone_index], p, cls);
    return tcache_release();
  }
  tcache_free_other(p, cls, zone_index);
}

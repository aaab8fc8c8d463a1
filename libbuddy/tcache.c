/* tcache.c: per-thread caches of free small objects, thread start and exit,
 * and taking back what idle threads' caches hold.
 *
 * Every thread starts on tcache_empty, a static cache whose bins are all empty
 * with max 0: its first malloc or free fails the fast path's test and lands
 * here, where the thread's own cache is made (so the fast path never asks
 * "initialised?"). A bin is a stack of pointers in the cache's own slots
 * (types.h), so that neither malloc nor free reads an object that another
 * core wrote last. Refills take half a bin from the home zone in one lock;
 * a full bin flushes its older half, each object to the zone of its region.
 * Bin sizes adapt to demand within a budget per thread (Bin sizes, below).
 * A freed object of another zone than the home zone is a remote free and
 * waits in that zone's batch (tcache_remote_t) instead of a bin, so a stray
 * block one thread hands another is never reused by it (both would write one
 * cache line: false sharing). A batch that fills up shows a consumer of that
 * zone's blocks: the bins adopt what they have room for, the rest goes home
 * under one lock, to that zone's transfer stacks while they have room
 * (zone.c), so the owner's next refill takes it without touching a slab.
 * At thread exit a pthread key destructor flushes the whole cache and leaves
 * the thread on tcache_dead, whose slow paths go straight to the zones, so a
 * later destructor that allocates still works and nothing is cached or leaked.
 *
 * Global start-up (tcache_global_init) runs at load time or at the first
 * allocation, whichever comes first, and takes no lock that an allocation
 * could need: pthread_atfork, which may call malloc, runs after
 * the state is published.
 *
 * Idle threads. A thread that blocks for good (a worker waiting on a queue)
 * would keep its cached objects, and the slabs under them, for ever. Every
 * live cache is in a registry. Once per reclaim period (the purge delay, at
 * least RECLAIM_PERIOD_MIN_MS) a sweep, run by a thread taking a slow path or
 * by the background purge thread, reads each other cache's owner state from
 * /proc. An owner seen blocked in a system call at two sweeps in a row, with
 * its CPU time and slow-path count unchanged since the sweep before, is idle,
 * and its cache is emptied without its help:
 *   1. the owner's tcache_tls.current, then its tcache_tls.home, are swapped
 *      to tcache_reclaimed's (static, empty bins, max 0: the owner's next
 *      malloc or free goes to a slow path);
 *   2. the owner is checked again: still blocked in a system call, CPU time
 *      still unchanged (it has not run since the first sighting), and its
 *      tcache_tls.busy zero (internal.h): every path that reads
 *      tcache_tls.current or .home raises it first and lowers it after its
 *      last use of the cache, so the owner is in none of them, not even in
 *      one that a signal handler interrupted before blocking. When it wakes
 *      it reads both afresh;
 *   3. the bins are flushed to the zones under tcache_registry_lock, which the
 *      owner's next slow path takes (tcache_resume) before using its cache.
 * When step 2 fails the swap stays (it costs the owner one slow path) and
 * later sweeps retry step 2. ThreadSanitizer cannot see the kernel's
 * ordering in step 2, so TSan builds never sweep; reclaim_idle=0 turns the
 * sweeps off everywhere.
 *
 * Lock order: tcache_registry_lock, then zone locks (lock.h). A fork child drops the
 * caches of threads it does not have onto an orphan list, which the next
 * sweep flushes (not the fork itself: a child that execs at once should not
 * write to, and so copy, the slabs those objects sit on).
 */
#include "tcache.h"

#include <errno.h>
#include <string.h>

/* The NULL every bin of a static cache shows below its top, so that malloc's
 * fast path goes slow; never written (their bins have no room). */
static void *tcache_no_objects[1];
#define STATIC_TOPS {[0 ... SIZE_CLASS_COUNT - 1] = &tcache_no_objects[1]} /* the home bins of zone 0 */
static tcache_t tcache_empty = {.bin_top = STATIC_TOPS, .zone = &zones[0], .state = TCACHE_EMPTY};
static tcache_t tcache_dead = {.bin_top = STATIC_TOPS, .zone = &zones[0], .state = TCACHE_DEAD};
static tcache_t tcache_reclaimed = {.bin_top = STATIC_TOPS, .zone = &zones[0], .state = TCACHE_RECLAIMED};
#undef STATIC_TOPS

__thread tcache_tls_t tcache_tls __attribute__((tls_model("initial-exec"))) = {.home = tcache_empty.bin_top,
                                                                                  .current = &tcache_empty};
/* The thread's own live cache, also while tcache_reclaimed stands in for it. */
static __thread tcache_t *tcache_own __attribute__((tls_model("initial-exec")));

#ifdef __SANITIZE_THREAD__
static const bool reclaim_supported = false;
#else
static const bool reclaim_supported = true;
#endif

static pthread_mutex_t tcache_registry_lock = PTHREAD_MUTEX_INITIALIZER;
/* Under tcache_registry_lock: the live caches, those a fork child found
 * without their threads, and the figures of caches gone. */
static tcache_t *tcache_registry, *tcache_orphans;
static uint64_t tcache_requests_retired[SIZE_CLASS_COUNT];
static size_t tcache_reclaims, tcache_reclaimed_bytes;
/* Requests served uncached (debug=1, a thread after its exit): atomic adds. */
static uint64_t tcache_requests_uncached[SIZE_CLASS_COUNT];

static pthread_key_t tcache_thread_key;

/* The owner's own counters: plain increments, which other threads read with
 * relaxed loads (TSan builds make the increment atomic too, to say so). */
#ifdef __SANITIZE_THREAD__
#define counter_add(x, n) __atomic_store_n(&(x), __atomic_load_n(&(x), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#else
#define counter_add(x, n) ((x) += (n))
#endif

/* ---- Bin sizes -----------------------------------------------------------
 *
 * A bin's max starts at tcache_bin_start() on its class's first slow path and
 * doubles on each refill (the bin ran empty: the class is in demand), up to
 * its ceiling, while the thread's maxes (times their class sizes) stay
 * within TCACHE_BYTES_MAX. When the budget refuses, bins not used lately
 * close and larger classes give way to smaller ones (tcache_rebalance). So a
 * thread holds at most TCACHE_BYTES_MAX in its bins, and a thread that moves
 * on to other classes takes the budget of those it left.
 */

/* Objects of class cls in about `bytes`: at least 1, at most `most`. */
static uint32_t tcache_objects_in(unsigned cls, size_t bytes, size_t most) {
  size_t n = bytes / size_class_bytes[cls];
  return (uint32_t)(n < 1 ? 1 : n > most ? most : n);
}

/* With debug=1 nothing is cached: every block goes through its slab, where
 * the fill is written and checked (slab.c). */
static uint32_t tcache_bin_objects(unsigned cls, size_t bytes) {
  return options.debug ? 0 : tcache_objects_in(cls, bytes, (size_t)options.tcache_max);
}

/* At most TCACHE_BIN_START_MAX objects: a thread's first small malloc
 * takes half of that from its zone, and the starts of all classes together
 * fit the budget; a class in demand doubles from there. */
uint32_t tcache_bin_start(unsigned cls) {
  uint32_t n = tcache_bin_objects(cls, TCACHE_BIN_START_BYTES);
  return n < TCACHE_BIN_START_MAX ? n : TCACHE_BIN_START_MAX;
}

/* The slots of a bin of class cls above its NULL: its ceiling with the
 * largest tcache_max, so that no option makes a bin outgrow them. */
static size_t tcache_bin_slots(unsigned cls) {
  return cls == 0 ? 0 : tcache_objects_in(cls, TCACHE_BIN_CEILING_BYTES, TCACHE_BIN_MAX);
}

size_t tcache_size(void) {
  size_t slots = 0;
  for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) slots += 1 + tcache_bin_slots(c);
  return sizeof(tcache_t) + slots * sizeof(void *);
}

/* ---- Flushing ------------------------------------------------------------ */

/* Moves the n oldest objects of tc's home bin of class cls (the bottom of
 * its stack, the coldest) back to their zones. */
static void tcache_flush_bin(tcache_t *tc, unsigned cls, uint32_t n) {
  if (n == 0) return;
  unsigned bin = tcache_home_bin(tc, cls);
  void **bottom = tc->bin_base[cls] + 1, **top = tc->bin_top[bin];
  zone_free_objects(bottom, n);
  memmove(bottom, bottom + n, (size_t)(top - bottom - n) * sizeof(void *));
  tc->bin_top[bin] = top - n;
  tc->bin_tally[bin] += n; /* room */
}

/* The tally of the home bin of class cls (relaxed: other threads read it). */
static uint64_t tcache_home_tally(const tcache_t *tc, unsigned cls) {
  return __atomic_load_n(&tc->bin_tally[tcache_home_bin(tc, cls)], __ATOMIC_RELAXED);
}

/* Sets the max of tc's home bin of class cls, flushing the objects past it;
 * keeps room = max - count and the budget's sum. */
static void tcache_bin_resize(tcache_t *tc, unsigned cls, uint32_t max) {
  unsigned bin = tcache_home_bin(tc, cls);
  uint32_t old = tc->bin_max[cls], count = old - tcache_bin_room(tc->bin_tally[bin]);
  if (count > max) tcache_flush_bin(tc, cls, count - max); /* room is now >= old - max */
  counter_add(tc->bin_tally[bin], (uint64_t)max - old);    /* modulo 2^64: the room stays >= 0 */
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
 *  2. If that is not enough, bins above their start size give up what is
 *     missing, down to their start, largest class first. A bin growing past
 *     its own start takes only from larger classes, in the same rate-limited
 *     pass: a refill or a flush costs about the same per object whatever its
 *     size, so a byte of budget saves the most zone traffic in the smallest
 *     class that wants it. A bin below its start (starting, or started
 *     again) takes from any class, at once: the starts of all classes fit the
 *     budget together (tested), so no class in use is left without a bin. */
static void tcache_rebalance(tcache_t *tc, unsigned wanting, size_t need) {
  bool due = tc->slow_paths - tc->rebalanced_at >= TCACHE_REBALANCE_SLOW_PATHS;
  bool starting = tc->bin_max[wanting] < tcache_bin_start(wanting);
  if (due) {
    tc->rebalanced_at = tc->slow_paths;
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
      uint64_t requests = tcache_bin_requests(tc->bin_tally[tcache_home_bin(tc, c)]);
      uint64_t served = requests - tc->bin_requests_seen[c];
      tc->bin_requests_seen[c] = requests;
      if (c != wanting && served == 0 && tc->bin_max[c] != 0) tcache_bin_resize(tc, c, 0);
    }
  }
  if (!due && !starting) return;
  for (unsigned c = SIZE_CLASS_COUNT - 1; c > (starting ? 0 : wanting); c--) {
    if (tc->budget_used + need <= TCACHE_BYTES_MAX) return;
    uint32_t max = tc->bin_max[c], start = tcache_bin_start(c);
    if (c == wanting || max <= start) continue;
    size_t short_by = tc->budget_used + need - TCACHE_BYTES_MAX, bytes = size_class_bytes[c];
    size_t give = (short_by + bytes - 1) / bytes; /* no more than needed: a larger class would take it back */
    tcache_bin_resize(tc, c, give < max - start ? max - (uint32_t)give : start);
  }
}

/* The class cls is in demand (its bin ran empty, or its first slow path):
 * its bin starts, or doubles, within its ceiling and the budget. Returns the
 * bin's max: 0 if it still has none (debug=1, or no budget left). */
static uint32_t tcache_bin_grow(tcache_t *tc, unsigned cls) {
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

/* Makes tc the calling thread's cache (or the one of the thread whose TLS
 * block `tls` is, under tcache_registry_lock: see the header). */
static void tcache_set_current(tcache_tls_t *tls, tcache_t *tc) {
  __atomic_store_n(&tls->current, tc, __ATOMIC_RELAXED);
  __atomic_store_n(&tls->home, &tc->bin_top[tc->home_bins], __ATOMIC_RELAXED);
}

static void tcache_remote_flush(tcache_remote_t *rb) {
  zone_free_objects(rb->objs, rb->count);
  rb->count = rb->bytes = 0;
}

static void tcache_flush_all(tcache_t *tc) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++)
    tcache_flush_bin(tc, c, tcache_bin_count(tc, c, tcache_home_tally(tc, c)));
  for (unsigned z = 0; z < ZONES_MAX; z++) tcache_remote_flush(&tc->remote[z]);
}

static size_t tcache_cached_bytes(const tcache_t *tc) {
  size_t bytes = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++)
    bytes += (size_t)tcache_bin_count(tc, c, tcache_home_tally(tc, c)) * size_class_bytes[c];
  return bytes;
}

/* ---- Entering and leaving slow paths ------------------------------------- */

/* A reclaim swapped tcache_reclaimed in: take the own cache back, once the
 * sweep that may be emptying it has finished. */
static cold_path tcache_t *tcache_resume(void) {
  tcache_t *own = tcache_own;
  lock_take(&tcache_registry_lock);
  tcache_set_current(&tcache_tls, own);
  lock_release(&tcache_registry_lock);
  return own;
}

/* Every slow path that touches the thread's cache starts here, held (the
 * fast path raised tcache_tls.busy): it takes the cache back if a reclaim swapped
 * it out, and counts the slow path. */
static tcache_t *tcache_enter(tcache_t *tc) {
  if (unlikely(tc->state == TCACHE_RECLAIMED)) tc = tcache_resume();
  if (tc->state == TCACHE_LIVE) {
    counter_add(tc->slow_paths, 1);
  }
  return tc;
}

void tcache_flush_current(void) {
  tcache_hold();
  tcache_t *tc = tcache_enter(tcache_get());
  if (tc->state == TCACHE_LIVE) tcache_flush_all(tc);
  tcache_release();
}

/* ---- Thread start and exit ----------------------------------------------- */

/* A cache's memory: a page run of its home zone, whose pages cost nothing
 * until a bin that uses them fills (tcache_size). */
static tcache_t *tcache_memory_alloc(zone_t *z, bool *zeroed) {
  unsigned order = buddy_order_for_pages((tcache_size() + PAGE_SIZE - 1) >> PAGE_SHIFT);
  return zone_alloc_meta_run(z, order, zeroed);
}

static void tcache_memory_free(tcache_t *tc) {
  zone_free_meta_run(tc);
}

static void tcache_register(tcache_t *tc) {
  lock_take(&tcache_registry_lock);
  tc->prev = NULL;
  tc->next = tcache_registry;
  if (tcache_registry != NULL) tcache_registry->prev = tc;
  tcache_registry = tc;
  lock_release(&tcache_registry_lock);
}

/* Under tcache_registry_lock: off the registry, its request counts kept. */
static void tcache_unregister_locked(tcache_t *tc) {
  if (tc->prev != NULL) tc->prev->next = tc->next;
  else tcache_registry = tc->next;
  if (tc->next != NULL) tc->next->prev = tc->prev;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) tcache_requests_retired[c] += tcache_bin_requests(tcache_home_tally(tc, c));
}

static void tcache_thread_exit(void *arg) {
  tcache_t *tc = arg;
  tcache_hold(); /* the lock below may block */
  lock_take(&tcache_registry_lock);
  tcache_unregister_locked(tc);
  tcache_set_current(&tcache_tls, &tcache_dead);
  tcache_own = NULL;
  lock_release(&tcache_registry_lock);
  tcache_flush_all(tc);
  tcache_memory_free(tc);
  tcache_release();
}

/* fork.c calls these, with the other layers' (see there). */
void tcache_fork_prepare(void) {
  lock_take(&tcache_registry_lock);
}

void tcache_fork_parent(void) {
  lock_release(&tcache_registry_lock);
}

/* The child has one thread, whose prepare handler held every lock: every
 * other live cache becomes an orphan. */
void tcache_fork_child_locked(void) {
  lock_reset(&tcache_registry_lock, NULL);
  tcache_t *own = tcache_own, *next;
  for (tcache_t *tc = tcache_registry; tc != NULL; tc = next) {
    next = tc->next;
    if (tc == own) continue;
    tcache_unregister_locked(tc);
    tc->next = tcache_orphans;
    tcache_orphans = tc;
  }
}

/* Any child: its thread has a new id. */
void tcache_fork_child(void) {
  if (tcache_own != NULL) tcache_own->tid = os_thread_id();
}

void tcache_init(void) {
  pthread_key_create(&tcache_thread_key, tcache_thread_exit);
}

/* Makes the calling thread's own cache; false if out of memory. */
static bool tcache_thread_init(void) {
  zone_t *z = zone_for_new_thread();
  bool zeroed = false;
  tcache_t *tc = tcache_memory_alloc(z, &zeroed);
  if (tc == NULL) return false;
  *tc = (tcache_t){.zone = z, .state = TCACHE_LIVE, .owner_tls = &tcache_tls, .owner_busy = &tcache_tls.busy,
                     .tid = os_thread_id(), .home_bins = small_map_bin_number((unsigned)(z - zones), 0)};
  /* Every bin starts empty, with max 0: a class's first slow path gives it
   * room. Its slots: a NULL (already there in fresh pages, which stay
   * untouched until the bin grows into them), then room for its ceiling. */
  void **slot = tc->slots;
  for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) {
    tc->bin_base[c] = slot;
    if (!zeroed) slot[0] = NULL;
    tc->bin_top[tcache_home_bin(tc, c)] = slot + 1;
    slot += 1 + tcache_bin_slots(c);
  }
  tcache_own = tc;
  tcache_set_current(&tcache_tls, tc);
  tcache_register(tc);
  pthread_setspecific(tcache_thread_key, tc); /* may allocate: the cache is ready */
  return true;
}

/* ---- Idle caches --------------------------------------------------------- */

static bool reclaim_enabled(void) {
  return reclaim_supported && options.reclaim_idle;
}

/* Steps 2 and 3 of the header's reclaim, after step 1 swapped the owner out. */
static void tcache_reclaim_locked(tcache_t *tc) {
  uint64_t run_ns;
  if (!os_thread_blocked(tc->tid, &run_ns) || run_ns != tc->idle_run_ns) return;
  if (__atomic_load_n(tc->owner_busy, __ATOMIC_RELAXED) != 0) return;
  tcache_reclaimed_bytes += tcache_cached_bytes(tc);
  tcache_reclaims++;
  tcache_flush_all(tc);
}

/* Orphans of a fork: their threads do not exist here. A cache whose thread
 * was in an allocator call (maybe halfway through a flush) is left alone, and
 * leaked: its bins may be half-written. Otherwise each bin holds what lies
 * between its NULL and its top, and each remote batch its first `count`
 * objects (each trusted only if within its bound). */
static void tcache_flush_orphans_locked(void) {
  for (tcache_t *tc = tcache_orphans, *next; tc != NULL; tc = next) {
    next = tc->next;
    if (*tc->owner_busy != 0) continue; /* its stack is still mapped here */
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
      unsigned bin = tcache_home_bin(tc, c);
      size_t n = (size_t)(tc->bin_top[bin] - (tc->bin_base[c] + 1));
      if (n <= tc->bin_max[c]) {
        tc->bin_tally[bin] = (tc->bin_tally[bin] & ~TCACHE_TALLY_ROOM_MASK) | (tc->bin_max[c] - n);
        tcache_flush_bin(tc, c, (uint32_t)n);
      }
    }
    for (unsigned z = 0; z < ZONES_MAX; z++)
      if (tc->remote[z].count < TCACHE_REMOTE_MAX) tcache_remote_flush(&tc->remote[z]);
    tcache_memory_free(tc);
  }
  tcache_orphans = NULL;
}

/* A cache is emptied at the third sweep that finds it idle: the first sees
 * no slow path since the one before (cheap: no /proc read for threads that
 * are busy), the second and third see the owner blocked in a system call
 * with the same CPU time. */
static void tcache_sweep_locked(void) {
  for (tcache_t *tc = tcache_registry; tc != NULL; tc = tc->next) {
    if (tc == tcache_own) continue;
    uint64_t run_ns = 0, slow_paths = __atomic_load_n(&tc->slow_paths, __ATOMIC_RELAXED);
    bool blocked = slow_paths == tc->idle_slow_paths && tcache_cached_bytes(tc) != 0 &&
                   os_thread_blocked(tc->tid, &run_ns);
    if (blocked && tc->idle_seen && run_ns == tc->idle_run_ns) {
      /* The slot may still hold tcache_reclaimed from a swap whose step 2
       * failed: the owner has not run since, so step 2 is simply retried. */
      tcache_t *expected = tc;
      if (__atomic_compare_exchange_n(&tc->owner_tls->current, &expected, &tcache_reclaimed, false,
                                      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) ||
          expected == &tcache_reclaimed) {
        /* The owner's slots change only under tcache_registry_lock, held
         * here; a fast path that read the old home meanwhile ran, which
         * step 2 sees. */
        __atomic_store_n(&tc->owner_tls->home, tcache_reclaimed.bin_top, __ATOMIC_SEQ_CST);
        tcache_reclaim_locked(tc);
      }
      blocked = false; /* emptied, or not idle after all: start over */
    }
    tc->idle_seen = blocked;
    tc->idle_run_ns = run_ns;
    tc->idle_slow_paths = slow_paths;
  }
}

/* The caches orphaned by a fork are flushed, and idle ones reclaimed (the
 * runtime calls this once per period: maintain.c). Never waits for the
 * registry: a sweep that finds it busy is skipped. */
void tcache_sweep(void) {
  if (!lock_try(&tcache_registry_lock)) return;
  tcache_flush_orphans_locked(); /* always: their threads do not exist */
  if (reclaim_enabled()) tcache_sweep_locked();
  lock_release(&tcache_registry_lock);
}

void tcache_collect_stats(buddy_stats_t *s) {
  lock_take(&tcache_registry_lock);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++)
    s->class_requests[c] = tcache_requests_retired[c] + __atomic_load_n(&tcache_requests_uncached[c], __ATOMIC_RELAXED);
  for (const tcache_t *tc = tcache_registry; tc != NULL; tc = tc->next) {
    s->thread_caches++;
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
      uint64_t tally = tcache_home_tally(tc, c);
      s->class_requests[c] += tcache_bin_requests(tally);
      s->class_cached[c] += tcache_bin_count(tc, c, tally);
    }
  }
  for (const tcache_t *tc = tcache_orphans; tc != NULL; tc = tc->next)
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) s->class_cached[c] += tcache_bin_count(tc, c, tcache_home_tally(tc, c));
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) s->bytes_cached += s->class_cached[c] * size_class_bytes[c];
  s->caches_reclaimed = tcache_reclaims;
  s->bytes_reclaimed = tcache_reclaimed_bytes;
  lock_release(&tcache_registry_lock);
}

/* ---- Slow paths ---------------------------------------------------------- */

/* One object off a bin, counted as a request (as on the fast path). */
static void *tcache_pop(tcache_t *tc, unsigned bin) {
  void **p = *--tc->bin_top[bin];
  counter_add(tc->bin_tally[bin], TCACHE_TALLY_POP);
  p[1] = NULL;
  return p;
}

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
  if (tc->state == TCACHE_EMPTY && tcache_thread_init()) tc = tcache_enter(tcache_own);
  return tc;
}

/* The bin ran empty: the class is in demand, so the bin grows (tcache_bin_grow)
 * before half of it is refilled. */
static void *tcache_refill_and_pop(tcache_t *tc, unsigned cls) {
  if (tc->state != TCACHE_LIVE) return tcache_alloc_uncached(tc->zone, cls);
  unsigned bin = tcache_home_bin(tc, cls);
  if (tc->bin_top[bin][-1] == NULL) {
    uint32_t max = tcache_bin_grow(tc, cls);
    if (max == 0) return tcache_alloc_uncached(tc->zone, cls);
    unsigned got = zone_alloc_objects(tc->zone, cls, tc->bin_top[bin], (max + 1) / 2);
    if (got == 0) return NULL;
    tc->bin_top[bin] += got;
    tc->bin_tally[bin] -= got; /* room */
  }
  return tcache_pop(tc, bin);
}

void *tcache_alloc_slow(unsigned cls) {
  tcache_t *tc = tcache_enter_own(tcache_get());
  void *p = tcache_refill_and_pop(tc, cls);
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
    if (tcache_bin_room(tc->bin_tally[bin]) > 0) {
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
  ((void **)p)[1] = (void *)free_key;
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
               (tcache_bin_holds(tc, cls, p) || pointers_hold(tc->remote[zone_index].objs, tc->remote[zone_index].count, p));
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
  if (tcache_bin_room(tc->bin_tally[bin]) == 0) tcache_flush_bin(tc, cls, (max + TCACHE_FLUSH_DIVISOR - 1) / TCACHE_FLUSH_DIVISOR);
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
  if (suspect && tc->state == TCACHE_EMPTY) {
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
 * to its batch: 48 instructions (clang) on top of the fast path.
 * Entered held; releases. */
void tcache_free_slow(void *p, size_t bin) {
  tcache_t *tc = tcache_get();
  unsigned zone_index = bin / SIZE_CLASS_COUNT, cls = bin % SIZE_CLASS_COUNT;
  if (likely(!free_key_matches(((void **)p)[1]) && tc->state == TCACHE_LIVE && !tcache_zone_is_home(tc, zone_index) &&
             !options.debug)) {
    tcache_remote_push(tc, &tc->remote[zone_index], p, cls);
    return tcache_release();
  }
  tcache_free_other(p, cls, zone_index);
}


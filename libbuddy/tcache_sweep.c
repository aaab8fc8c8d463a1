/* tcache_sweep.c: what walks other threads' caches: the sweep (caches
 * orphaned by a fork, and idle threads' caches taken back) and the
 * statistics of all caches.
 *
 * Idle threads. A thread that blocks for good (a worker waiting on a queue)
 * would keep its cached objects, and the slabs under them, for ever. Every
 * live cache is in a registry. Once per maintenance period (maintain.c) a sweep
 * reads each other cache's owner state from /proc. An owner seen blocked in a system call at two sweeps in a row, with
 * its CPU time and slow-path count unchanged since the sweep before, is idle,
 * and its cache is emptied without its help:
 *   1. the owner's tcache_tls.current, then its tcache_tls.home, are swapped
 *      to tcache_reclaimed's (static, empty bins, max 0: the owner's next
 *      malloc or free goes to a slow path);
 *   2. the owner is checked again: still blocked in a system call, CPU time
 *      still unchanged (it has not run since the first sighting), and its
 *      tcache_tls.busy zero (tcache.h): every path that reads
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
 */
#include "tcache.h"

#ifdef __SANITIZE_THREAD__
static const bool reclaim_supported = false;
#else
static const bool reclaim_supported = true;
#endif

/* Under tcache_registry_lock: what reclaims took. */
static size_t tcache_reclaims, tcache_reclaimed_bytes;

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
    if (tc->orphan_busy) continue; /* as its owner was at the fork (tcache_fork_child_locked) */
    tcache_prof_unload(tc);
    secure_cache_flush(tc);
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
      unsigned bin = tcache_home_bin(tc, c);
      size_t n = (size_t)(tc->bin_top[bin] - (tc->bin_base[c] + 1));
      if (n <= tc->bin_max[c]) tcache_flush_bin(tc, c, (uint32_t)n, false);
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
      if (__atomic_compare_exchange_n(&tc->owner_tls->current, &expected, &tcache_reclaimed, false, __ATOMIC_SEQ_CST,
                                      __ATOMIC_SEQ_CST) ||
          expected == &tcache_reclaimed) {
        /* The owner's slots change only under tcache_registry_lock, held
         * here; a fast path that read the old home meanwhile ran, which
         * step 2 sees. */
        __atomic_store_n(&tc->owner_tls->home, (void ***)tcache_static_tops, __ATOMIC_SEQ_CST);
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
      /* Objects in a sampling stack were counted as requests when the bin
       * gave them to it; they still wait. */
      uint32_t waiting = tcache_prof_waiting(tc, c);
      uint64_t requests = tcache_bin_requests(tc, c);
      s->class_requests[c] += requests > waiting ? requests - waiting : 0;
      s->class_cached[c] += tcache_bin_count(tc, c) + waiting;
    }
  }
  for (const tcache_t *tc = tcache_orphans; tc != NULL; tc = tc->next)
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++)
      s->class_cached[c] += tcache_bin_count(tc, c) + tcache_prof_waiting(tc, c);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) s->bytes_cached += s->class_cached[c] * size_class_bytes[c];
  s->caches_reclaimed = tcache_reclaims;
  s->bytes_reclaimed = tcache_reclaimed_bytes;
  lock_release(&tcache_registry_lock);
}

/* tcache_thread.c: a thread's cache from its first call to its exit.
 *
 * Every thread starts on tcache_empty, a static cache whose bins are all empty
 * with max 0: its first malloc or free fails the fast path's test and lands
 * in a slow path, where the thread's own cache is made (so the fast path
 * never asks "initialised?"): a page run of its home zone, flagged as the
 * allocator's own, in the registry of live caches. At thread exit a pthread
 * key destructor flushes the whole cache and leaves the thread on
 * tcache_dead, whose slow paths go straight to the zones, so a later
 * destructor that allocates still works and nothing is cached or leaked.
 *
 * Lock order: tcache_registry_lock, then zone locks (lock.h). A fork child
 * drops the caches of threads it does not have onto an orphan list, which the
 * next sweep flushes (tcache_sweep.c; not the fork itself: a child that execs
 * at once should not write to, and so copy, the slabs those objects sit on).
 */
#include "tcache.h"

#include <errno.h>
#include <string.h>

/* The static caches: zero-initialised (.bss), so that a process pays no
 * page for them until it uses one. Their bins' tops and limits are all NULL,
 * equal: free's fast path finds no room and goes slow; malloc's pops through
 * tcache_tls.home, which points at tcache_static_tops for them. Their state
 * is TCACHE_STATIC and their zone NULL (tcache_home_zone). */
tcache_t tcache_empty, tcache_reclaimed;
static tcache_t tcache_dead;

/* What malloc's fast path finds under a static cache's home bin tops: a NULL,
 * so it goes slow. The tops are constant (read-only after relocation), one
 * per class, and no fast path ever moves them: their bins are empty. */
static void *const tcache_no_objects[1];
#define STATIC_TOP ((void **)&tcache_no_objects[1])
void **const tcache_static_tops[SIZE_CLASS_COUNT] = {[0 ... SIZE_CLASS_COUNT - 1] = STATIC_TOP};
#undef STATIC_TOP

__thread tcache_tls_t tcache_tls
    __attribute__((tls_model("initial-exec"))) = {.home = (void ***)tcache_static_tops, .current = &tcache_empty};
__thread tcache_t *tcache_own __attribute__((tls_model("initial-exec")));

pthread_mutex_t tcache_registry_lock startup_state = PTHREAD_MUTEX_INITIALIZER;
tcache_t *tcache_registry startup_state, *tcache_orphans startup_state;
uint64_t tcache_requests_retired[SIZE_CLASS_COUNT];

static pthread_key_t tcache_thread_key startup_state;

/* Makes tc the calling thread's cache (or the one of the thread whose TLS
 * block `tls` is, under tcache_registry_lock: see the header). */
static void tcache_set_current(tcache_tls_t *tls, tcache_t *tc) {
  __atomic_store_n(&tls->current, tc, __ATOMIC_RELAXED);
  /* With sampling on, malloc pops from the sampling stacks (tcache_prof.c). */
  void ***home = tc->state != TCACHE_LIVE ? (void ***)tcache_static_tops
                 : tc->prof != NULL       ? tc->prof->top
                                          : &tc->bin_top[tc->home_bins];
  __atomic_store_n(&tls->home, home, __ATOMIC_RELAXED);
}

/* A reclaim swapped tcache_reclaimed in: take the own cache back, once the
 * sweep that may be emptying it has finished. */
cold_path tcache_t *tcache_resume(void) {
  tcache_t *own = tcache_own;
  lock_take(&tcache_registry_lock);
  tcache_set_current(&tcache_tls, own);
  lock_release(&tcache_registry_lock);
  return own;
}

void tcache_flush_current(void) {
  tcache_hold();
  tcache_t *tc = tcache_enter(tcache_get());
  if (tc->state == TCACHE_LIVE) tcache_flush_all(tc);
  tcache_release();
}

/* A cache's memory: a page run of its home zone, whose pages cost nothing
 * until a bin that uses them fills (tcache_size). */
static tcache_t *tcache_memory_alloc(zone_t *z, bool *zeroed) {
  unsigned order = buddy_order_for_pages((tcache_size() + PAGE_SIZE - 1) >> PAGE_SHIFT);
  return zone_alloc_meta_run(z, order, zeroed);
}

void tcache_memory_free(tcache_t *tc) {
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
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) tcache_requests_retired[c] += tcache_bin_requests(tc, c);
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
    /* Read now: the owner's TLS may be a new thread's once the child starts
     * one (glibc reuses the stacks, and TLS blocks, of the threads it does
     * not have), whose busy depth says nothing about this cache. */
    tc->orphan_busy = *tc->owner_busy != 0;
    tcache_unregister_locked(tc);
    tc->next = tcache_orphans;
    tcache_orphans = tc;
  }
}

/* Any child: its thread has a new id. */
void tcache_fork_child(void) {
  if (tcache_own != NULL) tcache_own->tid = os_thread_id();
}

startup_code void tcache_init(void) {
  pthread_key_create(&tcache_thread_key, tcache_thread_exit);
}

/* Every bin empty, with max 0, in its nursery (types.h: tcache_t). */
void **tcache_lay_out_bins(tcache_t *tc, bool zeroed) {
  void **slot = tc->slots;
  for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) {
    unsigned bin = tcache_home_bin(tc, c);
    tc->bin_base[c] = slot;
    if (!zeroed) slot[0] = NULL;
    tc->bin_top[bin] = tc->bin_limit[bin] = slot + 1;
    slot += 1 + tcache_bin_nursery_slots(c);
  }
  tc->remote = (tcache_remote_t *)(void *)slot;
  if (!zeroed) memset(tc->remote, 0, ZONES_MAX * sizeof(tcache_remote_t));
  slot += TCACHE_REMOTE_SLOTS;
  for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) {
    tc->bin_stack[c] = slot;
    slot += 1 + tcache_bin_slots(c);
  }
  return slot;
}

/* Makes the calling thread's own cache; false if out of memory. */
bool tcache_thread_init(void) {
  zone_t *z = zone_for_new_thread();
  bool zeroed = false;
  tcache_t *tc = tcache_memory_alloc(z, &zeroed);
  if (tc == NULL) return false;
  *tc = (tcache_t){.zone = z,
                   .state = TCACHE_LIVE,
                   .owner_tls = &tcache_tls,
                   .owner_busy = &tcache_tls.busy,
                   .tid = os_thread_id(),
                   .home_bins = small_map_bin_number((unsigned)(z - zones), 0)};
  void **end = tcache_lay_out_bins(tc, zeroed);
  if (options_sampling()) tcache_prof_setup(tc, (tcache_prof_t *)(void *)end, zeroed);
  if (secure_cache_size() != 0)
    secure_cache_setup(tc, (secure_cache_t *)(void *)((char *)end + (options_sampling() ? sizeof(tcache_prof_t) : 0)));
  tcache_own = tc;
  tcache_set_current(&tcache_tls, tc);
  tcache_register(tc);
  pthread_setspecific(tcache_thread_key, tc); /* may allocate: the cache is ready */
  return true;
}

/* tcache.c: per-thread caches of free small objects, and thread start/exit.
 *
 * Every thread starts on tcache_empty, a static cache whose bins are all empty
 * with max 0: its first malloc or free fails the fast path's test and lands
 * here, where the thread's own cache is made (so the fast path never asks
 * "initialised?"). Refills take half a bin from the home zone in one lock;
 * a full bin flushes half of itself, each object to the zone of its region.
 * A freed object of another zone than the home zone is a remote free and
 * waits in that zone's batch (tcache_remote_t) instead of a bin, so a stray
 * block one thread hands another is never reused by it (both would write one
 * cache line: false sharing). A batch that fills up shows a consumer of that
 * zone's blocks: the bins adopt what they have room for, the rest goes home
 * under one lock.
 * At thread exit a pthread key destructor flushes the whole cache and leaves
 * the thread on tcache_dead, whose slow paths go straight to the zones, so a
 * later destructor that allocates still works and nothing is cached or leaked.
 *
 * Global start-up (tcache_global_init) runs at load time or at the first
 * allocation, whichever comes first, and takes no lock that an allocation
 * could need: pthread_atfork, which may call malloc, runs after
 * the state is published.
 */
#include "internal.h"

#include <errno.h>

static tcache_t tcache_empty = {.zone = &zones[0], .state = TCACHE_EMPTY};
static tcache_t tcache_dead = {.zone = &zones[0], .state = TCACHE_DEAD};

__thread tcache_t *tcache_current __attribute__((tls_model("initial-exec"))) = &tcache_empty;

uintptr_t tcache_key;

static pthread_key_t tcache_thread_key;
static bool tcache_ready;
static pthread_mutex_t tcache_init_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- Bin sizes ----------------------------------------------------------- */

/* With debug=1 nothing is cached: every block goes through its slab, where
 * the fill is written and checked (slab.c). */
static uint32_t tcache_bin_max(unsigned cls) {
  if (options.debug) return 0;
  size_t n = TCACHE_BIN_BYTES / size_class_bytes[cls];
  if (n < TCACHE_BIN_MIN) n = TCACHE_BIN_MIN;
  if (n > (size_t)options.tcache_max) n = (size_t)options.tcache_max;
  return (uint32_t)n;
}

size_t tcache_max_bytes(void) {
  size_t total = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) total += tcache_bin_max(c) * size_class_bytes[c];
  return total;
}

/* ---- Flushing ------------------------------------------------------------ */

/* Moves the first n objects of bin b back to their zones. */
static void tcache_flush_bin(tcache_bin_t *b, uint32_t n) {
  if (n == 0) return;
  void **last = b->head;
  for (uint32_t i = 1; i < n; i++) last = last[0];
  void *rest = last[0];
  last[0] = NULL;
  zone_free_objects(b->head, n);
  b->head = rest;
  b->count -= n;
}

static void tcache_remote_flush(tcache_remote_t *rb) {
  if (rb->count == 0) return;
  zone_free_objects(rb->head, rb->count);
  *rb = (tcache_remote_t){.head = NULL};
}

static void tcache_flush_all(tcache_t *tc) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) tcache_flush_bin(&tc->bins[c], tc->bins[c].count);
  for (unsigned z = 0; z < ZONES_MAX; z++) tcache_remote_flush(&tc->remote[z]);
}

void tcache_flush_current(void) {
  tcache_t *tc = tcache_current;
  if (tc->state == TCACHE_LIVE) tcache_flush_all(tc);
}

/* ---- Thread start and exit ----------------------------------------------- */

static void tcache_thread_exit(void *arg) {
  tcache_t *tc = arg;
  tcache_current = &tcache_dead;
  tcache_flush_all(tc);
  zone_free_small(tc);
}

void tcache_global_init(void) {
  if (__atomic_load_n(&tcache_ready, __ATOMIC_ACQUIRE)) return;
  bool first = false;
  pthread_mutex_lock(&tcache_init_lock);
  if (!tcache_ready) {
    if (os_page_size() != PAGE_SIZE) error_fatal("unsupported system page size", NULL);
    options_init();
    stats_init();
    tcache_key = ((uintptr_t)os_random_seed() | 16) & ~(uintptr_t)3; /* never 0: fresh blocks hold 0 */
    pthread_key_create(&tcache_thread_key, tcache_thread_exit);
    __atomic_store_n(&tcache_ready, true, __ATOMIC_RELEASE);
    first = true;
  }
  pthread_mutex_unlock(&tcache_init_lock);
  if (first) pthread_atfork(zone_fork_prepare, zone_fork_parent, zone_fork_child);
}

/* At load time, so that buddymalloc's fork handlers come before any the
 * program registers (child handlers run in registration order, and one that
 * allocates must find the zone locks released). */
__attribute__((constructor(101))) static void tcache_at_load(void) {
  tcache_global_init();
}

/* Makes the calling thread's own cache; false if out of memory. */
static bool tcache_thread_init(void) {
  tcache_global_init();
  zone_t *z = zone_for_new_thread();
  void *list = NULL;
  if (zone_alloc_objects(z, size_class_of(sizeof(tcache_t)), &list, 1) == 0) return false;
  tcache_t *tc = list;
  *tc = (tcache_t){.zone = z, .state = TCACHE_LIVE};
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) tc->bins[c].max = tcache_bin_max(c);
  tcache_current = tc;
  pthread_setspecific(tcache_thread_key, tc); /* may allocate: the cache is ready */
  return true;
}

/* ---- Slow paths ---------------------------------------------------------- */

static void *tcache_pop(tcache_bin_t *b) {
  void **p = b->head;
  b->head = p[0];
  b->count--;
  p[1] = NULL;
  return p;
}

/* A thread with no cache of its own (dead, or out of memory for one). */
static void *tcache_alloc_uncached(zone_t *z, unsigned cls) {
  void *list = NULL;
  if (zone_alloc_objects(z, cls, &list, 1) == 0) return NULL;
  ((void **)list)[1] = NULL;
  return list;
}

static void *tcache_refill_and_pop(tcache_t *tc, unsigned cls) {
  if (unlikely(purge_thread_wanted())) purge_start_thread();
  if (tc->state == TCACHE_EMPTY) {
    if (!tcache_thread_init()) return tcache_alloc_uncached(tc->zone, cls);
    tc = tcache_current;
  }
  tcache_bin_t *b = &tc->bins[cls];
  if (tc->state == TCACHE_DEAD || b->max == 0) return tcache_alloc_uncached(tc->zone, cls);
  if (b->head == NULL) {
    b->count += zone_alloc_objects(tc->zone, cls, &b->head, (b->max + 1) / 2);
    if (b->head == NULL) return NULL;
  }
  return tcache_pop(b);
}

void *tcache_alloc_slow(tcache_t *tc, unsigned cls) {
  void *p = tcache_refill_and_pop(tc, cls);
  if (p == NULL) errno = ENOMEM;
  return p;
}

static zone_t *tcache_zone_of(void *p) {
  return ((region_t *)pagemap_lookup(p))->zone;
}

/* A full batch: this thread freed many objects of that zone (a consumer of
 * its blocks, not one handed a stray block), so its bins adopt what they have
 * room for, to be reused here without a lock; the rest go home. Stray remote
 * frees, the false-sharing case, never fill a batch and are never reused. */
static noinline void tcache_remote_adopt(tcache_t *tc, tcache_remote_t *rb) {
  void **home = NULL, **next;
  unsigned home_count = 0;
  for (void **p = rb->head; p != NULL; p = next) {
    next = p[0];
    region_t *r = pagemap_lookup(p);
    tcache_bin_t *b = &tc->bins[page_desc_of(r, p)->size_class];
    if (b->count < b->max) { /* p[1] already holds the key */
      p[0] = b->head;
      b->head = p;
      b->count++;
    } else {
      p[0] = home;
      home = p;
      home_count++;
    }
  }
  if (home_count > 0) zone_free_objects(home, home_count);
  *rb = (tcache_remote_t){.head = NULL};
}

static void tcache_remote_push(tcache_t *tc, tcache_remote_t *rb, void *p, unsigned cls) {
  void **obj = p;
  obj[0] = rb->head;
  obj[1] = (void *)tcache_key;
  rb->head = obj;
  rb->count++;
  rb->bytes += size_class_bytes[cls];
  if (unlikely(rb->count >= TCACHE_REMOTE_MAX || rb->bytes >= TCACHE_REMOTE_BYTES)) tcache_remote_adopt(tc, rb);
}

/* A remote free, from the fast path: into its zone's batch, which goes home
 * when full. Cost: about 20 instructions. The cases the batch cannot take
 * (a suspected double free, a thread with no cache, debug=1: bins of max 0)
 * take the general slow path. */
void tcache_free_remote(tcache_t *tc, region_t *r, void *p, unsigned cls) {
  if (unlikely(free_key_matches(((void **)p)[1]) || tc->bins[cls].max == 0)) return tcache_free_slow(tc, p, cls);
  tcache_remote_push(tc, &tc->remote[r->zone - zones], p, cls);
}

/* The fast path could not push: a suspected double free, a remote object, a
 * full bin, or a thread with no cache of its own yet (or any more). */
void tcache_free_slow(tcache_t *tc, void *p, unsigned cls) {
  if (free_key_matches(((void **)p)[1]) && tcache_check_double_free(tc, p, cls)) return;
  if (tc->state == TCACHE_EMPTY && tcache_thread_init()) tc = tcache_current;
  if (tc->state != TCACHE_LIVE || tc->bins[cls].max == 0) return zone_free_small(p);
  zone_t *z = tcache_zone_of(p);
  if (z != tc->zone) return tcache_remote_push(tc, &tc->remote[z - zones], p, cls);
  tcache_bin_t *b = &tc->bins[cls];
  if (b->count >= b->max) tcache_flush_bin(b, b->count - b->max / 2);
  void **obj = p;
  obj[0] = b->head;
  obj[1] = (void *)tcache_key;
  b->head = obj;
  b->count++;
}

static bool tcache_list_holds(void **list, const void *p) {
  for (void **q = list; q != NULL; q = q[0])
    if (q == p) return true;
  return false;
}

/* The object's second word holds the key: confirm by a scan of this thread's
 * bin and remote batch, then of its slab's free list (where flushes and
 * exited threads put blocks). A block waiting in another live thread's cache
 * cannot be seen. */
bool tcache_check_double_free(tcache_t *tc, void *p, unsigned cls) {
  zone_t *z = tcache_zone_of(p);
  bool found = tcache_list_holds(tc->bins[cls].head, p) || tcache_list_holds(tc->remote[z - zones].head, p);
  if (!found) found = zone_holds_free_object(pagemap_lookup(p), p);
  if (found) error_misuse("double free of a small block", p);
  return found;
}

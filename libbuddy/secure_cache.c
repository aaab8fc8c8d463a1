/* secure_cache.c: secure mode's freed blocks, from their free to their
 * reuse: a thread's batch, the zones' quarantines, and the blocks a thread
 * hands out next. secure.c writes and checks the blocks' own words.
 *
 * A freed block (small, or a page run's first SECURE_RUN_FILL bytes) holds
 * FILL_FREED, its first word its quarantine mark (secure_mark: the secret
 * and the address), its second FREE_KEY and, if small, its last 0
 * (secure.c: secure_fill_freed).
 *
 * A freed small block waits in its thread's batch (types.h: secure_cache_t).
 * A full batch moves to the quarantine of the thread's home zone under one
 * lock: a FIFO bounded in bytes (quarantine_kb, each) and in slots. The
 * oldest blocks over its bounds come back in the same call and join the
 * thread's ready blocks of their class, still marked, if the thread
 * allocates that class (SECURE_WANTED_SPILLS) and holds less than
 * SECURE_READY_BYTES of it; the others go back to their slabs. The zone
 * gives a thread blocks too, SECURE_READY_FILL at a time, each chosen at
 * random among the free ones of its slab (zone_alloc_objects_random), its
 * fill checked there. So a thread keeps at most a batch and
 * SECURE_READY_BYTES per class it allocates; a class it stops taking gives
 * its ready blocks back after SECURE_WANTED_SPILLS spills, and an idle
 * thread's blocks are reclaimed as its bins would be (secure_cache_bytes
 * counts them for tcache_sweep.c). malloc takes one of a
 * class's ready blocks at random and checks that it still holds its fill
 * whole (else a write after free, reported with the block's address and
 * class) before handing it out. So the next block is predictable neither
 * from the last one freed nor from the slab's order; a block is reused only
 * after quarantine_kb of others went through its zone's quarantine; and a
 * thread takes a lock once per SECURE_BATCH_SLOTS frees and once per
 * SECURE_READY_FILL mallocs of a class at most, not at every call.
 *
 * A freed page run goes to the quarantine at once, sealed (inaccessible)
 * while it waits where the kernel allows (secure.c), its pages given back
 * to the system past quarantine_kb of sealed runs in all the quarantines,
 * and back to its zone when it leaves. So do small blocks of
 * a thread without a cache of its own (it exited, or secure mode was set
 * after its cache was made).
 *
 * A second free of a block anywhere on that way finds its mark: a double
 * free (secure.c). Blocks that go back to their slabs (a run leaving the
 * quarantine, blocks a thread does not keep, a thread's exit) are checked
 * first; each batch that enters a quarantine checks
 * SECURE_CURSOR_CHECKS blocks waiting there in place (a cursor going
 * round); and every quarantine, and the exiting thread's blocks, are checked
 * at exit.
 *
 * Only the owner touches its cache, held (tcache_hold), or a flush while the
 * owner cannot (tcache_flush_all). A quarantine's lock is a leaf (lock.h):
 * blocks leave it with the lock released.
 */
#include "tcache.h"

#include <string.h>

#define SECURE_QUARANTINE_SLOTS 4096
/* A quarantine's ring takes a whole batch before its oldest leave. */
#define SECURE_RING_SLOTS 8192 /* a power of two, at least SECURE_QUARANTINE_SLOTS + SECURE_BATCH_SLOTS */
_Static_assert(SECURE_RING_SLOTS >= SECURE_QUARANTINE_SLOTS + SECURE_BATCH_SLOTS,
               "a ring takes a full quarantine and a batch");
_Static_assert((SECURE_RING_SLOTS & (SECURE_RING_SLOTS - 1)) == 0, "a ring's index wraps by a mask");
#define SECURE_CURSOR_CHECKS 4

typedef struct secure_quarantine {
  pthread_mutex_t lock;
  secure_entry_t slot[SECURE_RING_SLOTS];
  unsigned first, count, cursor; /* the oldest; how many; the next to check in place */
  size_t bytes;
} secure_quarantine_t;

/* A quarantine per zone: a block waits in its freeing thread's home zone's,
 * so that threads of different zones do not contend for one lock. Zone 0's
 * is static; the others are mapped at start-up in secure mode
 * (secure_init), and stay zone 0's if that fails. */
static secure_quarantine_t secure_quarantine0 = {.lock = PTHREAD_MUTEX_INITIALIZER};
static secure_quarantine_t *secure_quarantines[ZONES_MAX] = {[0 ... ZONES_MAX - 1] = &secure_quarantine0};

static uint64_t secure_sequence; /* atomic: the counter of the choices made without a cache */
/* Atomic: bytes of the sealed runs waiting in all the quarantines with
 * their pages kept (secure_cache_put_run). */
static size_t secure_sealed_resident;

uint64_t secure_secret;

void secure_init(void) {
  secure_secret = (uint64_t)os_random_seed() | 1;
  size_t others = (size_t)options.zones - 1;
  size_t bytes = (others * sizeof(secure_quarantine_t) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  secure_quarantine_t *q = others == 0 ? NULL : os_map_aligned(bytes, PAGE_SIZE);
  if (q == NULL) return; /* all of them zone 0's */
  for (size_t i = 0; i < others; i++) {
    /* pthread_mutex_init, not lock_reset: that is a fork child's, and
     * lowers lock_depth, which then said that the thread that ran the
     * start-up was inside a locked section: its forks took no locks
     * (tests/hang: fork_main_threads). */
    pthread_mutex_init(&q[i].lock, NULL);
    secure_quarantines[i + 1] = &q[i];
  }
}

/* Whether a zone before zone i has i's quarantine (zones may share zone
 * 0's): each quarantine is visited at its first zone only. */
static bool secure_quarantine_seen(unsigned i) {
  for (unsigned j = 0; j < i; j++)
    if (secure_quarantines[j] == secure_quarantines[i]) return true;
  return false;
}

/* Calls f on each quarantine once. */
static void secure_each_quarantine(void (*f)(secure_quarantine_t *q)) {
  for (unsigned i = 0; i < ZONES_MAX; i++)
    if (!secure_quarantine_seen(i)) f(secure_quarantines[i]);
}

/* A random number without a cache: splitmix64 of a shared counter. */
static uint64_t secure_random_shared(void) {
  uint64_t x = __atomic_add_fetch(&secure_sequence, 0x9e3779b97f4a7c15u, __ATOMIC_RELAXED) ^ secure_secret;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

/* A random number from the thread's own generator (xorshift64). */
static uint64_t secure_cache_random(secure_cache_t *sc) {
  uint64_t x = sc->random;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  sc->random = x;
  return x;
}

/* ---- A waiting block's words --------------------------------------------- */

static secure_entry_t secure_small_entry(void *p, unsigned cls) {
  return (secure_entry_t){.p = p, .what = size_class_bytes[cls] << SECURE_ENTRY_BYTES_SHIFT | cls};
}
static unsigned secure_entry_class(const secure_entry_t *e) {
  return (unsigned)(e->what & ((1u << SECURE_ENTRY_CLASS_BITS) - 1));
}
static size_t secure_entry_bytes(const secure_entry_t *e) {
  return e->what >> SECURE_ENTRY_BYTES_SHIFT;
}
/* A page run's head. */
static char *secure_entry_run(const secure_entry_t *e) {
  return (char *)e->p - (e->what & SECURE_ENTRY_HEADER ? PAGE_SIZE : 0);
}

/* The first byte of the freed block p, of class cls if small (else a
 * run's first `checked` bytes), that is not what its free wrote; NULL if
 * none. A small block's words are compared in a loop of its own (most
 * blocks are a few words long: a call to fill_find_other would cost
 * more), and looked at again byte by byte only if one differs. */
static const unsigned char *secure_find_written(void *p, unsigned cls, size_t checked) {
  void **w = p;
  if (w[0] != (void *)secure_mark(p)) return p;
  if (w[1] != (void *)FREE_KEY) return (unsigned char *)p + sizeof(void *);
  if (cls == 0) return fill_find_other(w + 2, checked - 2 * sizeof(void *), FILL_FREED);
  size_t last = size_class_bytes[cls] / sizeof(void *) - 1;
  if (w[last] != NULL) return (unsigned char *)(w + last);
  uintptr_t fill, diff = 0;
  memset(&fill, FILL_FREED, sizeof fill);
  for (size_t i = 2; i < last; i++) diff |= (uintptr_t)w[i] ^ fill;
  return diff == 0 ? NULL : fill_find_other(w + 2, (last - 2) * sizeof(void *), FILL_FREED);
}

/* False after reporting a write to the freed block p (of class cls, 0: a
 * page run of `bytes`) since its free. */
static bool secure_check_block(void *p, unsigned cls, size_t bytes) {
  const unsigned char *bad = secure_find_written(p, cls, bytes < SECURE_RUN_FILL ? bytes : SECURE_RUN_FILL);
  if (likely(bad == NULL)) return true;
  error_misuse_block("use after free: a freed block was written to while in the quarantine", bad, bytes, 0);
  return false;
}

static bool secure_check_waiting(const secure_entry_t *e) {
  if (e->what & SECURE_ENTRY_SEALED) return true; /* nothing could write to it */
  unsigned cls = secure_entry_class(e);
  size_t bytes = secure_entry_bytes(e);
  /* A run's block: from p to the run's end. */
  return secure_check_block(e->p, cls, cls != 0 ? bytes : bytes - (size_t)((char *)e->p - secure_entry_run(e)));
}

/* A small block's first word as slab.c's fill has it (its mark off), once
 * it leaves the quarantine's way. */
static void secure_unmark(void *p) {
  memset(p, FILL_FREED, sizeof(void *));
}

/* ---- Back to the slabs and the zones ------------------------------------- */

/* A block leaving for good, checked: a small one, if intact, into back[]
 * for zone_return_untouched (filled as slab.c fills a freed object: it goes
 * back as it is), returning how many back[] holds then; a page run back to
 * its zone. */
static unsigned secure_release(const secure_entry_t *e, void **back, unsigned n) {
  unsigned cls = secure_entry_class(e);
  char *run = secure_entry_run(e);
  region_t *r = region_of_address(e->p);
  if (e->what & SECURE_ENTRY_RESIDENT)
    __atomic_sub_fetch(&secure_sealed_resident, secure_entry_bytes(e), __ATOMIC_RELAXED);
  if (e->what & SECURE_ENTRY_SEALED) {
    if (!os_drop_counted_guard(run, secure_entry_bytes(e))) {
      base_warning("secure=1: a quarantined block cannot be made accessible again; it stays out of use",
                   (const char *)NULL);
      return n;
    }
    page_desc_of(r, run)->flags &= (uint8_t)~PAGE_SEALED;
  }
  bool intact = secure_check_waiting(e);
  if (cls != 0 && !intact) {
    zone_free_small(e->p); /* slab.c's fill replaces what was written */
  } else if (cls != 0) {
    secure_unmark(e->p);
    back[n++] = e->p;
  } else {
    ((void **)e->p)[0] = NULL; /* the run may come back to the program as it is */
    ((void **)run)[0] = NULL;  /* and its header, if it had one, is gone */
    zone_free_run(r, run);
  }
  return n;
}

/* The most ready blocks of class cls a thread keeps (types.h). */
static uint32_t secure_ready_cap(unsigned cls) {
  size_t n = SECURE_READY_BYTES / size_class_bytes[cls];
  return n < SECURE_READY_FILL ? SECURE_READY_FILL : n > SECURE_READY_MAX ? SECURE_READY_MAX : (uint32_t)n;
}

/* Class cls's ready blocks back to their slabs, each checked first. */
static void secure_ready_return(secure_cache_t *sc, unsigned cls) {
  uint32_t n = sc->ready_count[cls], kept = 0;
  for (uint32_t i = 0; i < n; i++) {
    secure_entry_t e = secure_small_entry(sc->ready[cls][i], cls);
    kept = secure_release(&e, sc->ready[cls], kept); /* kept <= i: in place */
  }
  zone_return_untouched(sc->ready[cls], kept);
  sc->ready_count[cls] = 0;
}

/* ---- The quarantines ----------------------------------------------------- */

static secure_entry_t *secure_slot(secure_quarantine_t *q, unsigned i) {
  return &q->slot[(q->first + i) % SECURE_RING_SLOTS];
}

static secure_quarantine_t *secure_home_quarantine(const tcache_t *tc) {
  return secure_quarantines[tcache_home_zone(tc) - zones];
}

/* Takes q's oldest entry into *out (q holds one; its lock held). */
static void secure_quarantine_pop_locked(secure_quarantine_t *q, secure_entry_t *out) {
  *out = *secure_slot(q, 0);
  q->bytes -= secure_entry_bytes(out);
  q->first = (q->first + 1) % SECURE_RING_SLOTS;
  q->count--;
}

/* Puts in[0..n) (n <= SECURE_BATCH_SLOTS) at the end of q; its oldest
 * entries over its bounds leave into out, at most n + SECURE_EVICT_MAX of
 * them, which may be `in` (read whole first). Returns how many left. Some
 * blocks still waiting are checked in place. */
static unsigned secure_quarantine_swap(secure_quarantine_t *q, const secure_entry_t *in, unsigned n,
                                       secure_entry_t *out) {
  size_t bound = (size_t)options.quarantine_kb << 10;
  unsigned left = 0;
  lock_take(&q->lock);
  for (unsigned i = 0; i < SECURE_CURSOR_CHECKS && q->count > 0; i++)
    secure_check_waiting(secure_slot(q, q->cursor++ % q->count));
  for (unsigned i = 0; i < n; i++) {
    *secure_slot(q, q->count++) = in[i];
    q->bytes += secure_entry_bytes(&in[i]);
  }
  while (left < n + SECURE_EVICT_MAX && q->count > 0 && (q->bytes > bound || q->count > SECURE_QUARANTINE_SLOTS))
    secure_quarantine_pop_locked(q, &out[left++]);
  lock_release(&q->lock);
  return left;
}

/* Every block waiting in q, checked, back to its slab or zone, a batch at
 * a time (its lock is not held while they go back); true if any did. */
static bool secure_quarantine_drain(secure_quarantine_t *q) {
  bool drained = false;
  for (;;) {
    secure_entry_t out[SECURE_BATCH_SLOTS];
    void *back[SECURE_BATCH_SLOTS];
    unsigned left = 0, n = 0;
    lock_take(&q->lock);
    while (left < SECURE_BATCH_SLOTS && q->count > 0) secure_quarantine_pop_locked(q, &out[left++]);
    lock_release(&q->lock);
    if (left == 0) return drained;
    drained = true;
    for (unsigned i = 0; i < left; i++) n = secure_release(&out[i], back, n);
    zone_return_untouched(back, n);
  }
}

bool secure_drain_quarantines(void) {
  bool drained = false;
  for (unsigned i = 0; i < ZONES_MAX; i++)
    if (!secure_quarantine_seen(i)) drained |= secure_quarantine_drain(secure_quarantines[i]);
  return drained;
}

/* One block into the quarantine at once, and those it pushes out back to
 * their slabs and zones. */
static noinline void secure_quarantine_put(const tcache_t *tc, const secure_entry_t *e) {
  secure_entry_t out[1 + SECURE_EVICT_MAX];
  void *back[1 + SECURE_EVICT_MAX];
  unsigned left = secure_quarantine_swap(secure_home_quarantine(tc), e, 1, out), n = 0;
  for (unsigned i = 0; i < left; i++) n = secure_release(&out[i], back, n);
  zone_return_untouched(back, n);
}

/* The thread's batch into its home zone's quarantine. A small block that
 * leaves it joins the thread's ready blocks of its class if the thread
 * took one of that class in the last SECURE_WANTED_SPILLS spills (`ready`:
 * not at a flush) and the class has room; the others go back to their
 * slabs. So a thread that frees what others allocate keeps nothing. */
static noinline void secure_batch_spill(const tcache_t *tc, secure_cache_t *sc, bool ready) {
  void *back[SECURE_BATCH_SLOTS + SECURE_EVICT_MAX];
  unsigned left = secure_quarantine_swap(secure_home_quarantine(tc), sc->batch, sc->batch_count, sc->batch), n = 0;
  sc->batch_count = 0;
  sc->batch_bytes = 0;
  for (unsigned i = 0; i < left; i++) {
    const secure_entry_t *e = &sc->batch[i];
    unsigned cls = secure_entry_class(e);
    if (ready && cls != 0 && sc->wanted[cls] != 0 && sc->ready_count[cls] < secure_ready_cap(cls))
      sc->ready[cls][sc->ready_count[cls]++] = e->p; /* checked when it is taken */
    else n = secure_release(e, back, n);
  }
  zone_return_untouched(back, n);
  if (!ready) return;
  /* A class the thread stopped taking gives its ready blocks back (checked):
   * nothing waits unchecked, or held, for a malloc that does not come. */
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    if (sc->wanted[c] == 1 && sc->ready_count[c] != 0) secure_ready_return(sc, c);
    sc->wanted[c] -= sc->wanted[c] != 0;
  }
}

/* A sealed run keeps its pages while the sealed runs waiting in all the
 * quarantines keep at most quarantine_kb of them before it
 * (secure_sealed_resident); past that, its pages go back to the system (its
 * bytes are never read
 * again), so that the quarantines of several zones do not hold several
 * times quarantine_kb of memory, while a run that comes back keeps its
 * pages where the quarantine holds them anyway (a purged run is faulted in
 * again when the program reuses it: realloc-vectors took 2x the time of
 * secure mode when every sealed run was purged). */
void secure_cache_put_run(const tcache_t *tc, void *p, void *head, size_t bytes, bool sealed) {
  uintptr_t what = bytes << SECURE_ENTRY_BYTES_SHIFT | (p != head ? SECURE_ENTRY_HEADER : 0);
  if (sealed) {
    what |= SECURE_ENTRY_SEALED;
    size_t budget = (size_t)options.quarantine_kb << 10;
    /* Before this one: a single quarantine never reaches the budget. */
    if (__atomic_fetch_add(&secure_sealed_resident, bytes, __ATOMIC_RELAXED) <= budget) {
      what |= SECURE_ENTRY_RESIDENT;
    } else {
      __atomic_sub_fetch(&secure_sealed_resident, bytes, __ATOMIC_RELAXED);
      os_purge(head, bytes, false);
    }
  }
  secure_entry_t e = {.p = p, .what = what};
  secure_quarantine_put(tc, &e);
}

void secure_cache_put_small(const tcache_t *tc, void *p, unsigned cls) {
  secure_cache_t *sc = tc->secure;
  if (unlikely(sc == NULL)) {
    secure_entry_t e = secure_small_entry(p, cls);
    return secure_quarantine_put(tc, &e);
  }
  /* Field by field: an entry built apart and copied would be read back
   * with a wider load than its stores, which the processor does not
   * forward. */
  secure_entry_t *e = &sc->batch[sc->batch_count++];
  e->p = p;
  e->what = size_class_bytes[cls] << SECURE_ENTRY_BYTES_SHIFT | cls;
  sc->batch_bytes += size_class_bytes[cls];
  if (sc->batch_count == SECURE_BATCH_SLOTS || sc->batch_bytes >= SECURE_BATCH_BYTES) secure_batch_spill(tc, sc, true);
}

/* ---- Taking a block ------------------------------------------------------ */

/* Blocks of class cls from the zone, marked, into the thread's ready ones
 * (their slab checked their fill): how many are ready then, 0 if out of
 * memory. (A slab's first object, its guard, never comes: slab_keep_guard.) */
static uint32_t secure_ready_refill(const tcache_t *tc, secure_cache_t *sc, unsigned cls) {
  void *got[SECURE_READY_FILL];
  while (sc->ready_count[cls] == 0) {
    unsigned n = zone_alloc_objects_random(tcache_home_zone(tc), cls, got, SECURE_READY_FILL, secure_cache_random(sc));
    if (n == 0) return 0;
    for (unsigned i = 0; i < n; i++) {
      ((void **)got[i])[0] = (void *)secure_mark(got[i]);
      sc->ready[cls][sc->ready_count[cls]++] = got[i];
    }
  }
  return sc->ready_count[cls];
}

/* A thread without a cache: one object chosen at random in a slab of its
 * zone, its fill checked there. */
static void *secure_take_uncached(zone_t *z, unsigned cls) {
  void *p = NULL;
  zone_alloc_objects_random(z, cls, &p, 1, secure_random_shared());
  return p;
}

void *secure_cache_take(const tcache_t *tc, unsigned cls) {
  secure_cache_t *sc = tc->secure;
  if (sc == NULL) return secure_take_uncached(tcache_home_zone(tc), cls);
  for (;;) {
    uint32_t n = sc->ready_count[cls];
    if (n == 0 && (n = secure_ready_refill(tc, sc, cls)) == 0) return NULL;
    uint32_t i = (uint32_t)(secure_cache_random(sc) % n);
    void *p = sc->ready[cls][i];
    sc->ready[cls][i] = sc->ready[cls][n - 1];
    sc->ready_count[cls] = n - 1;
    sc->wanted[cls] = SECURE_WANTED_SPILLS;
    if (likely(secure_check_block(p, cls, size_class_bytes[cls]))) {
      secure_unmark(p);
      return p;
    }
    zone_free_small(p); /* reported; slab.c's fill replaces what was written */
  }
}

/* ---- A thread's cache from its start to its end -------------------------- */

size_t secure_cache_size(void) {
  return options.secure ? sizeof(secure_cache_t) : 0;
}

/* Only the counts and the generator are written: the slots' pages are
 * touched when a class uses them. */
void secure_cache_setup(tcache_t *tc, secure_cache_t *sc) {
  sc->batch_count = 0;
  sc->batch_bytes = 0;
  sc->random = (secure_secret ^ (uintptr_t)sc) * 0x9e3779b97f4a7c15u | 1;
  memset(sc->ready_count, 0, sizeof sc->ready_count);
  memset(sc->wanted, 0, sizeof sc->wanted);
  tc->secure = sc;
}

/* An orphan's counts are trusted only within their bounds (its thread may
 * have stopped halfway: tcache_sweep.c). */
void secure_cache_flush(tcache_t *tc) {
  secure_cache_t *sc = tc->secure;
  if (sc == NULL) return;
  if (sc->batch_count <= SECURE_BATCH_SLOTS) secure_batch_spill(tc, sc, false);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++)
    if (sc->ready_count[c] <= SECURE_READY_MAX) secure_ready_return(sc, c);
  sc->batch_count = 0;
  memset(sc->ready_count, 0, sizeof sc->ready_count);
}

size_t secure_cache_bytes(const tcache_t *tc) {
  const secure_cache_t *sc = tc->secure;
  if (sc == NULL) return 0;
  size_t bytes = __atomic_load_n(&sc->batch_bytes, __ATOMIC_RELAXED);
  bytes = bytes < SECURE_BATCH_BYTES + SMALL_SIZE_MAX ? bytes : 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    uint32_t n = __atomic_load_n(&sc->ready_count[c], __ATOMIC_RELAXED);
    bytes += (size_t)(n <= SECURE_READY_MAX ? n : 0) * size_class_bytes[c];
  }
  return bytes;
}

/* ---- At exit, and fork ---------------------------------------------------- */

/* A trylock: at exit the lock may be held for good, by a frame a signal
 * handler interrupted before it forked this process (fork.c); the check is
 * then skipped rather than the exit hung. */
static void secure_check_quarantine(secure_quarantine_t *q) {
  if (!lock_try(&q->lock)) return;
  for (unsigned i = 0; i < q->count; i++) secure_check_waiting(secure_slot(q, i));
  lock_release(&q->lock);
}

void secure_check_quarantines(void) {
  secure_each_quarantine(secure_check_quarantine);
}

void secure_cache_check(const tcache_t *tc) {
  const secure_cache_t *sc = tc->secure;
  if (sc == NULL) return;
  for (unsigned i = 0; i < sc->batch_count && i < SECURE_BATCH_SLOTS; i++) secure_check_waiting(&sc->batch[i]);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++)
    for (uint32_t i = 0; i < sc->ready_count[c] && i < SECURE_READY_MAX; i++) {
      secure_entry_t e = secure_small_entry(sc->ready[c][i], c);
      secure_check_waiting(&e);
    }
}

/* fork(): the quarantines' locks are leaves (no two are held at once but
 * here, in zone order), taken last, re-made in the child. */
static void secure_lock_quarantine(secure_quarantine_t *q) {
  lock_take(&q->lock);
}
static void secure_unlock_quarantine(secure_quarantine_t *q) {
  lock_release(&q->lock);
}
static void secure_remake_quarantine_lock(secure_quarantine_t *q) {
  lock_reset(&q->lock, NULL);
}

void secure_fork_prepare(void) {
  secure_each_quarantine(secure_lock_quarantine);
}

void secure_fork_parent(void) {
  secure_each_quarantine(secure_unlock_quarantine);
}

void secure_fork_child(void) {
  secure_each_quarantine(secure_remake_quarantine_lock);
}

/* tcache.h: per-thread caches of free small objects: the TLS block and the
 * bin operations the fast paths inline, and the slow paths below them.
 */
#ifndef BUDDY_TCACHE_H
#define BUDDY_TCACHE_H

#include "huge.h"

#pragma GCC visibility push(hidden)

/* ---- tcache.c: per-thread caches ----------------------------------------- */

/* The calling thread's cache and busy depth, in one TLS block so that a fast
 * path finds them from one thread-pointer offset (one GOT load). `current`
 * is the cache (whose bin tops come first: free's fast path indexes them by
 * bin number); `home` points at its home zone's top of class 0 (for a
 * static cache, at tcache_static_tops), so malloc's fast path indexes it by
 * class. Both change together (tcache_set_current). */
typedef struct tcache_tls {
  void ***home;      /* &current->bin_top[current->home_bins] */
  tcache_t *current; /* the thread's cache, or a static stand-in (tcache.c) */
  unsigned busy;     /* see tcache_hold() */
} tcache_tls_t;
extern __thread tcache_tls_t tcache_tls __attribute__((tls_model("initial-exec")));

/* The owner's own counters and bin tops: plain increments, which other
 * threads read with relaxed loads (TSan builds make the increment atomic too, to say so). */
#ifdef __SANITIZE_THREAD__
#define counter_add(x, n) __atomic_store_n(&(x), __atomic_load_n(&(x), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define counter_sub(x, n) __atomic_store_n(&(x), __atomic_load_n(&(x), __ATOMIC_RELAXED) - (n), __ATOMIC_RELAXED)
#else
#define counter_add(x, n) ((x) += (n))
#define counter_sub(x, n) ((x) -= (n))
#endif

/* A bin's limit and request count, from its top's address: the limits
 * follow the tops, and the request counts the limits. */
_Static_assert(offsetof(tcache_t, bin_limit) == offsetof(tcache_t, bin_top) + TCACHE_BINS * sizeof(void *),
               "a bin's limit is TCACHE_BINS words after its top");
_Static_assert(offsetof(tcache_t, bin_requests) == offsetof(tcache_t, bin_limit) + TCACHE_BINS * sizeof(void *),
               "a bin's request count is TCACHE_BINS words after its limit");
static inline void ***tcache_limit_of(void ***top) {
  return top + TCACHE_BINS;
}
static inline uint64_t *tcache_requests_of(void ***top) {
  /* Byte arithmetic: the counts lie past the limits array, not in it. */
  return (uint64_t *)(void *)((char *)top + 2 * TCACHE_BINS * sizeof(void *));
}
/* The bin number of class cls in tc's home zone. */
static inline unsigned tcache_home_bin(const tcache_t *tc, unsigned cls) {
  return tc->home_bins + cls;
}
/* Whether zone_index is tc's home zone (else its objects are remote frees). */
static inline bool tcache_zone_is_home(const tcache_t *tc, unsigned zone_index) {
  return small_map_bin_number(zone_index, 0) == tc->home_bins;
}
/* Stores a bin's top, whole (other threads read it: tcache_bin_count). */
static inline void tcache_set_top(tcache_t *tc, unsigned bin, void **top) {
  __atomic_store_n(&tc->bin_top[bin], top, __ATOMIC_RELAXED);
}
/* One object off bin `bin`, which holds one, counted as a request (as on
 * the fast path), its key cleared. */
static inline void *tcache_pop(tcache_t *tc, unsigned bin) {
  void **top = tc->bin_top[bin] - 1, **p = *top;
  tcache_set_top(tc, bin, top);
  counter_add(tc->bin_requests[bin], 1);
  p[1] = NULL;
  return p;
}
/* Pushes up to n objects of class cls from tc's zone on tc's home bin `bin`,
 * which has room for them; returns how many (0: out of memory). */
static inline unsigned tcache_bin_take_from_zone(tcache_t *tc, unsigned bin, unsigned cls, unsigned n) {
  unsigned got = zone_alloc_objects(tc->zone, cls, tc->bin_top[bin], n);
  tcache_set_top(tc, bin, tc->bin_top[bin] + got);
  return got;
}
/* Objects in the home bin of class cls of tc. The owner may be moving the
 * top or resizing the bin while another thread reads (statistics, the idle
 * sweep): such a reader may see a count off by the change, never one below
 * 0 or above the max. Integer arithmetic: a static cache's bins have no
 * slot 0 (max 0). */
static inline uint32_t tcache_bin_count(const tcache_t *tc, unsigned cls) {
  uint32_t max = __atomic_load_n(&tc->bin_max[cls], __ATOMIC_RELAXED);
  uintptr_t top = (uintptr_t)__atomic_load_n(&tc->bin_top[tcache_home_bin(tc, cls)], __ATOMIC_RELAXED);
  uintptr_t bottom = (uintptr_t)(__atomic_load_n(&tc->bin_base[cls], __ATOMIC_RELAXED) + 1);
  if (max == 0 || top <= bottom) return 0;
  size_t n = (top - bottom) / sizeof(void *);
  return n < max ? (uint32_t)n : max;
}
/* Requests the home bin of class cls of tc has served (relaxed: other
 * threads read it). */
static inline uint64_t tcache_bin_requests(const tcache_t *tc, unsigned cls) {
  return __atomic_load_n(&tc->bin_requests[tcache_home_bin(tc, cls)], __ATOMIC_RELAXED);
}
/* Whether the bin whose top is at `top` has no room. */
static inline bool tcache_top_full(void ***top) {
  return *top == *tcache_limit_of(top);
}
/* Pushes p on the bin whose top is at `top`, which has room; p's second
 * word takes the key. */
static inline void tcache_top_push(void ***top, void *p) {
  **top = p;
  counter_add(*top, 1);
  ((void **)p)[1] = (void *)FREE_KEY;
}
static inline void tcache_bin_push(tcache_t *tc, size_t bin, void *p) {
  tcache_top_push(&tc->bin_top[bin], p);
}

/* Bytes to a next sample point: exponential, of mean prof_sample, >= 1,
 * from a generator's state (not 0) (tcache_prof.c). */
int64_t tcache_prof_draw(uint64_t *state);
/* Called held (tcache_hold) by the fast paths; they release. */
void *tcache_alloc_slow(unsigned cls); /* ENOMEM on failure */
/* The calling thread's cache, held (tcache_hold: the caller releases) and
 * entered, its own made first if it has none (a thread that never took a
 * small block's slow path is on a static cache, whose zone is zone 0):
 * secure mode, whose bins hold nothing, keeps its blocks there
 * (secure_cache.c) and takes them from its home zone, so that its threads
 * are spread over the zones. */
tcache_t *tcache_enter_held(void);
/* What tcache_alloc_slow returns, with sampling on, for the allocation that
 * reaches its class's sample point (tcache_prof.c): the caller serves and
 * records it. */
#define TCACHE_SAMPLE ((void *)1)
/* The fast path could not push p, an object start of bin `bin`. */
void tcache_free_slow(void *p, size_t bin);
void tcache_flush_current(void);
/* Global start-up of the caches, once, before any slow path (init.c). */
void tcache_init(void);
void tcache_fork_prepare(void);
void tcache_fork_parent(void);
void tcache_fork_child_locked(void);
void tcache_fork_child(void);
/* How many of the calling thread's allocator calls may hold a pointer to its
 * cache or a bin: raised before tcache_tls.current is read, lowered after the
 * last use (a slow path lowers what its fast path raised; calls nest). An
 * idle-cache reclaim leaves a thread alone while it is not zero, which also
 * covers a fast path interrupted by a signal handler that then blocks. The
 * signal fences keep the compiler from moving cache accesses across them;
 * the thread's own program order is all a signal handler or a sweep (which
 * reads it only while the thread is blocked in the kernel) can observe. */
static inline void tcache_hold(void) {
  tcache_tls.busy++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
static inline void tcache_release(void) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  tcache_tls.busy--;
}
/* The calling thread's cache: a relaxed load, because an idle-cache reclaim
 * (tcache.c) may store to another thread's tcache_tls.current. */
static inline tcache_t *tcache_get(void) {
  return __atomic_load_n(&tcache_tls.current, __ATOMIC_RELAXED);
}
/* The zone tc's thread allocates from: its home zone; zone 0 for a static
 * cache (a thread before its own cache, after its exit, or reclaimed). */
static inline zone_t *tcache_home_zone(const tcache_t *tc) {
  return tc->state == TCACHE_LIVE ? tc->zone : &zones[0];
}
/* Its home zone's bin tops, by class (tcache_tls.home). */
static inline void ***tcache_get_home(void) {
  return __atomic_load_n(&tcache_tls.home, __ATOMIC_RELAXED);
}
/* Objects of class cls in about `bytes`: at least 1, at most `most`. */
static inline uint32_t tcache_objects_in(unsigned cls, size_t bytes, size_t most) {
  size_t n = bytes / size_class_bytes[cls];
  return (uint32_t)(n < 1 ? 1 : n > most ? most : n);
}
/* With debug=1 nothing is cached: every block goes through its slab, where
 * the fill is written and checked (slab.c). */
static inline uint32_t tcache_bin_objects(unsigned cls, size_t bytes) {
  return options.debug ? 0 : tcache_objects_in(cls, bytes, (size_t)options.tcache_max);
}
/* The max a home bin of class cls starts at (tcache_size.c: bins adapt). At
 * most TCACHE_BIN_START_MAX objects: a thread's first small malloc takes a
 * first fill (TCACHE_FIRST_FILL_BYTES) from its zone, its next refill half
 * of the start, and the starts of all classes together fit the budget; a
 * class in demand doubles from there. */
static inline uint32_t tcache_bin_start(unsigned cls) {
  uint32_t n = tcache_bin_objects(cls, TCACHE_BIN_START_BYTES);
  return n < TCACHE_BIN_START_MAX ? n : TCACHE_BIN_START_MAX;
}
/* Bytes of a thread's cache with its bins' slots (a small block). */
size_t tcache_size(void);
/* Flushes caches orphaned by a fork and empties idle threads' caches
 * (once per maintenance period: maintain.c). */
void tcache_sweep(void);
/* Request counters, thread caches and reclaims, into s. */
void tcache_collect_stats(buddy_stats_t *s);

/* ---- Within the tcache layer ---------------------------------------------
 *
 * Files, bottom to top: secure_cache.c (secure mode's freed blocks, which
 * a flush empties), tcache_prof.c (malloc's sampling stacks),
 * tcache_flush.c (objects back to their zones),
 * tcache_size.c (bin sizes), tcache_thread.c (a cache from thread start to
 * exit, the registry, fork), tcache.c (the slow paths), tcache_sweep.c
 * (orphans, idle caches, statistics). */

/* tcache_prof.c (prof=1 or leaks=1) */
/* Gives tc its sampling stacks, in pr (the end of its memory). */
void tcache_prof_setup(tcache_t *tc, tcache_prof_t *pr, bool zeroed);
/* Class cls's stack ran empty (tc live, with stacks): TCACHE_SAMPLE if the
 * allocation reaches the sample point; else an object of the home bin, the
 * stack filled from it; NULL if the bin is empty (the caller refills it,
 * pops, then calls tcache_prof_fill). */
void *tcache_prof_alloc(tcache_t *tc, unsigned cls);
void tcache_prof_fill(tcache_t *tc, unsigned cls);
/* Whether class cls's stack, at its next fill, could take more than half
 * its bin's max before the sample point (then a bin of fewer than
 * TCACHE_PROF_GROW_BELOW objects grows first: tcache.c). */
bool tcache_prof_starved(const tcache_t *tc, unsigned cls);
/* Class cls's home bin is full (a free): moves objects from it to the
 * stack, if the stack may take them; false if it took none (the bin then
 * flushes). */
bool tcache_prof_absorb(tcache_t *tc, unsigned cls);
bool tcache_prof_holds(const tcache_t *tc, unsigned cls, const void *p);
void tcache_prof_unload(tcache_t *tc);
/* Objects waiting in class cls's sampling stack of tc (0 with sampling
 * off). Other threads may ask (statistics, the idle sweep): they get at
 * most the stack's slots, maybe off by the owner's last moves. */
uint32_t tcache_prof_waiting(const tcache_t *tc, unsigned cls);

/* tcache_flush.c */
/* Moves the n oldest objects of tc's home bin of class cls back to their
 * zones (with `stack`, to their transfer stacks while they have room). */
void tcache_flush_bin(tcache_t *tc, unsigned cls, uint32_t n, bool stack);
void tcache_remote_flush(tcache_remote_t *rb);
void tcache_flush_all(tcache_t *tc);
size_t tcache_cached_bytes(const tcache_t *tc);

/* tcache_size.c */
/* The slots (words) the remote batches take among a cache's slots. */
#define TCACHE_REMOTE_SLOTS ((ZONES_MAX * sizeof(tcache_remote_t) + sizeof(void *) - 1) / sizeof(void *))
_Static_assert(_Alignof(tcache_remote_t) <= _Alignof(void *), "a batch may follow a slot");
/* The slots of a bin's full stack of class cls above its NULL (its largest
 * ceiling), and of its nursery (its largest start). */
size_t tcache_bin_slots(unsigned cls);
size_t tcache_bin_nursery_slots(unsigned cls);
uint32_t tcache_bin_grow_slow(tcache_t *tc, unsigned cls);
/* The class is in demand (its bin ran empty, or its first slow path): its
 * bin starts, or doubles, within its ceiling and the budget (tcache_size.c).
 * Returns the bin's max: 0 if it still has none (debug=1, or no budget
 * left). Inline, the case of a thread whose budget is spent, which asks on
 * every refill: no room for one more object, no rebalance due, and the bin
 * past its start, so tcache_rebalance would give it nothing: it stays. */
static inline uint32_t tcache_bin_grow(tcache_t *tc, unsigned cls) {
  uint32_t max = tc->bin_max[cls];
  if (max != 0 && tc->budget_used + size_class_bytes[cls] > TCACHE_BYTES_MAX &&
      tc->slow_paths - tc->rebalanced_at < TCACHE_REBALANCE_SLOW_PATHS && max >= tcache_bin_start(cls))
    return max;
  return tcache_bin_grow_slow(tc, cls);
}

/* tcache_thread.c */
/* The thread's own live cache, also while tcache_reclaimed stands in for it. */
extern __thread tcache_t *tcache_own __attribute__((tls_model("initial-exec")));
/* The static cache every thread starts on, and the stand-in a reclaim swaps
 * in (no bins); the home bin tops of every static cache, each with a NULL
 * below it (tcache_thread.c). */
extern tcache_t tcache_empty, tcache_reclaimed;
extern void **const tcache_static_tops[SIZE_CLASS_COUNT];
/* Under tcache_registry_lock: the live caches, those a fork child found
 * without their threads, and the request counts of caches gone. */
extern pthread_mutex_t tcache_registry_lock;
extern tcache_t *tcache_registry, *tcache_orphans;
extern uint64_t tcache_requests_retired[SIZE_CLASS_COUNT];
/* A reclaim swapped tcache_reclaimed in: takes the own cache back. */
tcache_t *tcache_resume(void);
/* Lays out the bins of tc (home_bins set, the rest of its header zero):
 * every bin empty, with max 0 (a class's first slow path gives it room).
 * Its slots: a NULL (already there in zeroed memory, which stays untouched
 * until the bin grows into it), then room for its ceiling. Returns the end
 * of the last bin's slots. */
void **tcache_lay_out_bins(tcache_t *tc, bool zeroed);
/* Makes the calling thread's own cache; false if out of memory. */
bool tcache_thread_init(void);
void tcache_memory_free(tcache_t *tc);

/* Every slow path that touches the thread's cache starts here, held (the
 * fast path raised tcache_tls.busy): it takes the cache back if a reclaim
 * swapped it out, and counts the slow path (an idle cache's count stands
 * still: tcache_sweep.c). */
static inline tcache_t *tcache_enter(tcache_t *tc) {
  if (unlikely(tc == &tcache_reclaimed)) tc = tcache_resume();
  if (tc->state == TCACHE_LIVE) counter_add(tc->slow_paths, 1);
  return tc;
}

/* tcache.c */
/* Requests served uncached (debug=1, a thread after its exit): atomic adds. */
extern uint64_t tcache_requests_uncached[SIZE_CLASS_COUNT];

/* ---- secure_cache.c: secure mode's freed blocks on their way back -------- */

/* The secret of secure mode's canaries, quarantine marks and random
 * choices, drawn at start-up (secure_init): the library's code does not
 * tell them (FREE_KEY, a constant of the fast paths, would). */
extern uint64_t secure_secret;
static inline uintptr_t secure_cookie(void) {
  return (uintptr_t)(secure_secret * 0x9e3779b97f4a7c15u ^ 0x5a5a5a5a5a5a5a5au);
}
/* A freed block's first word while it waits to be reused. */
static inline uintptr_t secure_mark(const void *p) {
  return secure_cookie() ^ ~(uintptr_t)p;
}
/* Draws the secret and maps the zones' quarantines (start-up). */
void secure_init(void);
/* A freed block, filled and marked, on its way back: the small block p of
 * class cls into tc's batch (or into its zone's quarantine at once if tc
 * has no secure cache); the block p of the page run of `bytes` at head into
 * the quarantine, `sealed` if its pages were made inaccessible. tc: the
 * caller's, entered. */
void secure_cache_put_small(const tcache_t *tc, void *p, unsigned cls);
void secure_cache_put_run(const tcache_t *tc, void *p, void *head, size_t bytes, bool sealed);
/* A block of class cls for the program, its fill checked, its mark off (its
 * key still on); NULL if out of memory. */
void *secure_cache_take(const tcache_t *tc, unsigned cls);
/* Bytes of a thread cache's secure part (0 unless secure=1); gives tc that
 * part, at sc; everything it holds back to the quarantine and the slabs. */
size_t secure_cache_size(void);
void secure_cache_setup(tcache_t *tc, secure_cache_t *sc);
void secure_cache_flush(tcache_t *tc);
/* Bytes of the blocks in tc's batch and ready blocks, read from another
 * thread as the bins' counts are (tcache_bin_count): off by what the owner
 * is changing, within their bounds (the idle-cache reclaim). */
size_t secure_cache_bytes(const tcache_t *tc);
/* Checks every block waiting in tc's batch and ready blocks, and in the
 * quarantines (at exit). */
void secure_cache_check(const tcache_t *tc);
void secure_check_quarantines(void);
/* A mapping failed (alloc.c): every block waiting in the quarantines goes
 * back, checked, before the caller tries again; true if any did. */
bool secure_drain_quarantines(void);
void secure_fork_prepare(void);
void secure_fork_parent(void);
void secure_fork_child(void);

/* ---- secure.c: secure mode (secure=1), below the caches it bypasses ----- */

/* Who allocated a small block, and so who must free it: malloc and its
 * family, or C++ new or new[] (their unaligned forms; shim_cxx.c). The fast
 * paths pass it to their slow paths only, as a constant. */
typedef enum secure_kind { SECURE_MALLOC = 0, SECURE_NEW = 1, SECURE_NEW_ARRAY = 2 } secure_kind_t;
/* The canary and the request after each small block: a request of more
 * than SMALL_SIZE_MAX - SECURE_TRAILER bytes is a page run. */
#define SECURE_TRAILER (2 * sizeof(size_t))

/* The class that holds `size` bytes and the canary, aligned to `align`; 0 if
 * no small class does (the block is then a page run or a huge block). */
unsigned secure_class(size_t size, size_t align);
/* A block of class cls (secure_class) for `size` bytes, its canary written;
 * NULL with errno set if there is no memory. */
void *secure_alloc_small(unsigned cls, size_t size, secure_kind_t kind);
/* What a block of class cls can hold: its request. */
size_t secure_usable_small(void *p, unsigned cls);
/* realloc of the small block p of class cls from malloc to `size` bytes, in
 * place when `size` has the same class (secure_class): its tail and canary
 * checked, then rewritten for the new request. NULL if not (another class,
 * not malloc's, or a write past its end, reported): the caller moves it. */
void *secure_resize_small(void *p, unsigned cls, size_t size);
/* Frees (checked, filled, into the quarantine) the small block p, an object
 * start of class cls in region r; or the page run p of region r. */
void secure_free_small(region_t *r, void *p, unsigned cls, secure_kind_t kind);
void secure_free_run(region_t *r, void *p, secure_kind_t kind);
/* Reports a block of `bytes` (asked: its request, 0 if unknown) that
 * `made` allocated and `freed` frees, if the two do not match. */
void secure_check_made(void *p, size_t bytes, size_t asked, secure_kind_t made, secure_kind_t freed);
/* The kinds (bit 1 << SECURE_NEW, 1 << SECURE_NEW_ARRAY) whose operators
 * the program replaced in part (shim_cxx.c finds out at load): its own
 * operator new may allocate with malloc, and its own delete free what the
 * runtime's new allocated; the standard lets a replaced operator and the
 * default one of the pair meet. So a block of malloc's kind freed by such
 * an operator, or one of that kind freed by free, is no mismatch; new
 * against new[] still is. */
extern unsigned secure_replaced_kinds;
/* Sets secure_replaced_kinds (the preload library's shim_cxx.c defines it,
 * with the operators; linked use has neither). */
void secure_find_replaced_operators(void) __attribute__((weak));
/* The SIGSEGV handler's check of a medium block used after its free. */
void secure_fault(void *addr);
/* Medium blocks have a header page in secure mode: the run at head is
 * given one, holding the block's kind, and the block after it returned; the
 * head of p's run if p is such a block, else NULL. */
void *secure_header_run(void *head, secure_kind_t kind);
void *secure_run_head(region_t *r, void *p);
/* realloc of such a block p (its run's head at head, in region r) to `size`
 * bytes, in place when `size` and the header still need the run's order and
 * malloc made it: its tail checked, then armed at the new end. NULL if not
 * (another order, not malloc's, or a write past its end, reported): the
 * caller moves it. A string appended to was copied whole at each step. */
void *secure_resize_run(region_t *r, void *p, char *head, size_t size);

#pragma GCC visibility pop

#endif /* BUDDY_TCACHE_H */

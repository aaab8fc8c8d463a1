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
 * bin number); `home` points at its home zone's top of class 0, so malloc's
 * fast path indexes it by class. Both change together (tcache_set_current). */
typedef struct tcache_tls {
  void ***home;      /* &current->bin_top[current->home_bins] */
  tcache_t *current; /* the thread's cache, or a static stand-in (tcache.c) */
  unsigned busy;     /* see tcache_hold() */
} tcache_tls_t;
extern __thread tcache_tls_t tcache_tls __attribute__((tls_model("initial-exec")));

/* The room of a bin read in place, as the 16 bits it is (little-endian: the
 * low half-word of the tally). A narrow read that may alias the tally keeps
 * free's fast path to a compare in memory and one decrement in memory. */
typedef uint16_t __attribute__((may_alias)) tcache_room_t;
_Static_assert(TCACHE_TALLY_ROOM_BITS == 16 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the room is the tally's first half-word");
static inline uint32_t tcache_bin_room(uint64_t tally) {
  return (uint32_t)(tally & TCACHE_TALLY_ROOM_MASK);
}
/* A bin's tally, from its top's address: the tallies follow the tops. */
_Static_assert(offsetof(tcache_t, bin_tally) == offsetof(tcache_t, bin_top) + TCACHE_BINS * sizeof(void *),
               "a bin's tally is TCACHE_BINS words after its top");
static inline uint64_t *tcache_tally_of(void ***top) {
  /* Byte arithmetic: the tally lies past the tops array, not in it. */
  return (uint64_t *)(void *)((char *)top + TCACHE_BINS * sizeof(void *));
}
/* The bin number of class cls in tc's home zone. */
static inline unsigned tcache_home_bin(const tcache_t *tc, unsigned cls) {
  return tc->home_bins + cls;
}
/* Whether zone_index is tc's home zone (else its objects are remote frees). */
static inline bool tcache_zone_is_home(const tcache_t *tc, unsigned zone_index) {
  return small_map_bin_number(zone_index, 0) == tc->home_bins;
}
/* Objects in the home bin of class cls of tc, from a tally read of it. The
 * owner may be resizing the bin while another thread reads (statistics): such
 * a reader may see a count off by the change, never one below 0. */
static inline uint32_t tcache_bin_count(const tcache_t *tc, unsigned cls, uint64_t tally) {
  uint32_t max = __atomic_load_n(&tc->bin_max[cls], __ATOMIC_RELAXED), room = tcache_bin_room(tally);
  return room < max ? max - room : 0;
}
static inline uint64_t tcache_bin_requests(uint64_t tally) {
  return tally >> TCACHE_TALLY_ROOM_BITS;
}
/* Whether the bin whose top is at `top` has no room. */
static inline bool tcache_top_full(void ***top) {
  return *(const tcache_room_t *)tcache_tally_of(top) == 0;
}
/* Pushes p on the bin whose top is at `top`, which has room; p's second
 * word takes the key. */
static inline void tcache_top_push(void ***top, void *p) {
  **top = p;
  (*top)++;
  ((void **)p)[1] = (void *)free_key;
  (*tcache_tally_of(top))--;
}
static inline void tcache_bin_push(tcache_t *tc, size_t bin, void *p) {
  tcache_top_push(&tc->bin_top[bin], p);
}

/* Called held (tcache_hold) by the fast paths; they release. */
void *tcache_alloc_slow(unsigned cls); /* ENOMEM on failure */
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
/* Its home zone's bin tops, by class (tcache_tls.home). */
static inline void ***tcache_get_home(void) {
  return __atomic_load_n(&tcache_tls.home, __ATOMIC_RELAXED);
}
/* The max a home bin of class cls starts at (tcache.c: bins adapt). */
uint32_t tcache_bin_start(unsigned cls);
/* Bytes of a thread's cache with its bins' slots (a small block). */
size_t tcache_size(void);
/* Flushes caches orphaned by a fork and empties idle threads' caches
 * (once per maintenance period: maintain.c). */
void tcache_sweep(void);
/* Request counters, thread caches and reclaims, into s. */
void tcache_collect_stats(buddy_stats_t *s);

#pragma GCC visibility pop

#endif /* BUDDY_TCACHE_H */

/* api.h: the public buddy_* API's fast paths (alloc.c, free.c), inlined
 * into buddy_malloc / buddy_free and into the shim's malloc / free.
 */
#ifndef BUDDY_API_H
#define BUDDY_API_H

#include "runtime.h"

#pragma GCC visibility push(hidden)

/* ---- alloc.c ------------------------------------------------------------- */

size_t alloc_usable_size(const void *p);
void *alloc_aligned(size_t alignment, size_t size);
/* Medium and huge blocks, aligned to at least `align` (a power of two). */
void *alloc_large(size_t size, size_t align, bool *zeroed, secure_kind_t kind);
/* The order of the page run that serves a sampled small block of class cls
 * (prof=1: alloc.c), which is also what sized delete expects of it. */
static inline unsigned alloc_sampled_order(unsigned cls) {
  return buddy_order_for_pages((size_class_bytes[cls] + PAGE_SIZE - 1) >> PAGE_SHIFT);
}
/* alloc_fast's slow path (alloc.c); `size` as asked (secure mode), first:
 * it stays in the register it came in, the class takes another, and the
 * fast path copies neither. */
void *alloc_small_slow(size_t size, unsigned cls, secure_kind_t kind);

/* malloc's fast path (buddy_malloc, and the shim's malloc with no call in
 * between): the class from a table indexed by the size, then a pop from the
 * home bin of that class, counted, between raising and lowering the busy
 * depth; the slow paths are tail calls, so the fast path saves no registers
 * (docs/benchmarks.md has its instruction count). The second word is
 * cleared so that a block handed out never looks like a cached one
 * (FREE_KEY) when freed. */
static inline void *alloc_fast_as(size_t size, secure_kind_t kind) {
  size_t cls;
  if (likely(size <= SIZE_CLASS_LOOKUP_MAX)) cls = size_class_lookup[size];
  else if (size <= SMALL_SIZE_MAX) cls = size_class_of(size);
  else return alloc_large(size, PAGE_SIZE, NULL, kind);
  tcache_hold();
  void ***top = tcache_get_home() + cls;
  void **p = (*top)[-1];
  /* sets errno when it fails; releases */
  if (unlikely(p == NULL)) return alloc_small_slow(size, (unsigned)cls, kind);
  /* The top is decremented in memory (one instruction) rather than from the
   * register it was loaded into (two): the empty asm says it may have
   * changed. */
  __asm__("" : "+m"(*top));
  counter_sub(*top, 1);
  /* Static caches never get here: their bins are empty. */
  counter_add(*tcache_requests_of(top), 1);
  p[1] = NULL;
  tcache_release();
  return p;
}
/* malloc's; alloc_fast_as is C++ new's too, whose kind secure mode keeps. */
static inline void *alloc_fast(size_t size) {
  return alloc_fast_as(size, SECURE_MALLOC);
}

/* ---- free.c -------------------------------------------------------------- */

/* p does not start an object by the small map: a page run, a huge block, a
 * foreign or interior pointer, or a small object whose map byte could not be
 * written (then freed as the fast path would). */
void free_not_small_object(void *p, secure_kind_t kind);

/* free's fast path (buddy_free, and the shim's free): the small map gives the
 * bin number of p's slab (zone and class) and, from the same base, the
 * object-start test (a multiply and a compare); then a push on that bin of
 * the thread's cache. Bins of other zones have no room, so a remote free
 * goes to the slow path with no test of its own.
 * Misuse is caught before anything is written: a pointer that is in no slab
 * or does not start an object goes to the page map (foreign, interior, or
 * not small); one whose second word holds the cache key is checked for a
 * double free by the slow path. In order: the map and the
 * object test; the cache (raising the busy depth); the key; the room test
 * and the push; lowering the busy depth. Every exit is a tail call
 * (docs/benchmarks.md has the instruction counts). */
static inline void free_fast_as(void *p, secure_kind_t kind) {
  size_t bin;
  if (unlikely(!small_map_object(p, &bin))) return free_not_small_object(p, kind);
  tcache_hold();
  tcache_t *tc = tcache_get();
  void ***top = &tc->bin_top[bin];
  /* A key in the 2nd word may be a double free; the top at the limit: a
   * full bin, another zone's bin, a class the thread has not used yet, or a
   * static cache. */
  if (unlikely(free_key_matches(((void **)p)[1]) || tcache_top_full(top))) return tcache_free_slow(p, bin);
  tcache_top_push(top, p);
  tcache_release();
}
/* free's; free_fast_as is C++ delete's too (secure mode checks the kind). */
static inline void free_fast(void *p) {
  free_fast_as(p, SECURE_MALLOC);
}
/* Sized delete (free.c): the size is checked against the block. */
void free_sized_as(void *p, size_t size, secure_kind_t kind);

#pragma GCC visibility pop

#endif /* BUDDY_API_H */

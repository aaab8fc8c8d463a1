/* api.h: what every file of the API conformance suite includes.
 *
 * The suite is built twice from the same sources. The linked build calls the
 * prefixed buddy_* functions of buddymalloc.h directly; the plain build
 * (compiled with -DAPI_PLAIN, run under LD_PRELOAD=libbuddymalloc.so) maps each
 * buddy_* name below onto the standard name, so the same tests exercise the
 * preloaded malloc. It also declares the helpers of this suite's test files
 * (api_util.c): value hiding, range and alignment checks. Sizes, the random
 * generator and the byte patterns are tests/support/test_support.h's.
 */
#ifndef API_H
#define API_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "test_support.h"

#ifdef API_PLAIN
#include <malloc.h>

static inline void *buddy_malloc(size_t size) {
  return malloc(size);
}
static inline void buddy_free(void *ptr) {
  free(ptr);
}
static inline void *buddy_calloc(size_t count, size_t size) {
  return calloc(count, size);
}
static inline void *buddy_realloc(void *ptr, size_t size) {
  return realloc(ptr, size);
}
static inline void *buddy_reallocarray(void *ptr, size_t count, size_t size) {
  return reallocarray(ptr, count, size);
}
static inline int buddy_posix_memalign(void **out, size_t alignment, size_t size) {
  return posix_memalign(out, alignment, size);
}
static inline void *buddy_aligned_alloc(size_t alignment, size_t size) {
  return aligned_alloc(alignment, size);
}
static inline void *buddy_memalign(size_t alignment, size_t size) {
  return memalign(alignment, size);
}
static inline void *buddy_valloc(size_t size) {
  return valloc(size);
}
static inline void *buddy_pvalloc(size_t size) {
  return pvalloc(size);
}
static inline size_t buddy_malloc_usable_size(void *ptr) {
  return malloc_usable_size(ptr);
}
/* The standard library has no sized free before C23: plain free stands in. */
static inline void buddy_free_sized(void *ptr, size_t size) {
  (void)size;
  free(ptr);
}
static inline int buddy_trim(size_t pad) {
  return malloc_trim(pad);
}
#else
#include "buddymalloc.h"
#endif

/* The alignment glibc gives every block on x86_64, and what buddymalloc
 * promises for blocks of 16 bytes or more. */
#define API_MIN_ALIGN ((size_t)16)

/* Returns value unchanged, through a volatile object, so that the compiler can
 * neither fold a constant size into a call (and warn about it) nor reason
 * about what an allocation function does with it. */
size_t api_hide(size_t value);
void *api_hide_ptr(void *ptr);

/* A block's address range [start, start+len). */
struct api_range {
  uintptr_t start;
  size_t len;
};
/* Sorts ranges by address; returns the index i (>= 1) of the first range that
 * starts at or before the end of range i-1 (an overlap or a repeated address),
 * or count if they are pairwise disjoint. */
size_t api_first_overlap(struct api_range *ranges, size_t count);

int api_is_aligned(const void *ptr, size_t alignment);
size_t api_page_size(void);
/* The smallest power of two >= value (value >= 1). */
size_t api_next_pow2(size_t value);

#endif /* API_H */

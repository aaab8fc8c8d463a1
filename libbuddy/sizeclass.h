/* sizeclass.h: the size classes (sizeclass.c): request size -> class,
 * class -> object and slab sizes, and the object-start test.
 */
#ifndef BUDDY_SIZECLASS_H
#define BUDDY_SIZECLASS_H

#include "base.h"

#pragma GCC visibility push(hidden)

/* ---- sizeclass.c --------------------------------------------------------- */

extern const uint32_t size_class_bytes[SIZE_CLASS_COUNT];
extern const uint32_t size_class_slab_bytes_used[SIZE_CLASS_COUNT];
extern const uint8_t size_class_slab_order[SIZE_CLASS_COUNT];
extern const uint16_t size_class_slab_count[SIZE_CLASS_COUNT];

/* What the object-start test needs of a class (see sizeclass.c for the test
 * these fields make); the small map keeps a copy per bin (pagemap.c). */
typedef struct size_class_info {
  uint64_t magic;     /* ceil(2^64 / class bytes); 0 for class 0 */
  uint32_t slab_mask; /* slab bytes - 1: slabs are aligned to their size */
  uint32_t limit;     /* an offset starts an object iff offset * magic < limit */
} size_class_info_t;

extern const size_class_info_t size_class_info[SIZE_CLASS_COUNT];
extern const uint8_t size_class_lookup[SIZE_CLASS_LOOKUP_MAX + 1];

/* Class of a request of `size` <= SMALL_SIZE_MAX bytes; malloc(0) gets class 1.
 * Cost: a load up to SIZE_CLASS_LOOKUP_MAX, about 10 instructions above. */
static inline unsigned size_class_of(size_t size) {
  if (size <= SIZE_CLASS_LOOKUP_MAX) return size_class_lookup[size];
  unsigned lg = 63u - (unsigned)__builtin_clzl(size - 1); /* 2^lg < size <= 2^(lg+1) */
  return 8u + (lg - 7u) * 4u + (unsigned)(((size - 1) >> (lg - 2)) & 3u) + 1u;
}

/* True when `offset` from the slab's start is the start of one of its
 * objects: a multiple of the class size before the slab's unused tail.
 * Cost: a multiply and a compare. Class 0 never passes. */
static inline bool size_class_test_object_start(uint64_t offset, uint64_t magic, uint64_t limit) {
  return offset * magic < limit;
}
static inline bool size_class_is_object_start(unsigned cls, size_t offset) {
  return size_class_test_object_start(offset, size_class_info[cls].magic, size_class_info[cls].limit);
}
/* The same for a pointer into a slab of class cls, from its address alone. */
static inline bool size_class_is_object(unsigned cls, const void *p) {
  return size_class_is_object_start(cls, (uintptr_t)p & size_class_info[cls].slab_mask);
}

#pragma GCC visibility pop

#endif /* BUDDY_SIZECLASS_H */

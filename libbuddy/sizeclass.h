/* sizeclass.h: the small size classes, everything derived from their rows.
 *
 * The rows are SIZE_CLASSES in types.h, the bytes and slab order of each
 * class: the one place the classes are written down. Derived from them at
 * compile time:
 *  - here: the class numbers (SIZE_CLASS_FOR_<bytes>), the class that fits a
 *    size (SIZE_CLASS_FIT, and the arithmetic size_class_of uses past its
 *    table), and the formulas of a class's slab and object-start test;
 *  - in sizeclass.c, by those formulas: the tables indexed by class (bytes,
 *    slab order, objects per slab, object-start numbers) and the lookup
 *    table that malloc's fast path indexes by the size.
 * sizeclass.c refuses to compile rows that break what the derivations assume
 * (multiples of SMALL_ALIGN, ascending, the arithmetic's spacing);
 * tests/unit/test_sizeclass.c checks the tables against the rows and against
 * each other.
 *
 * The layer above base (base.h), which brings types.h.
 */
#ifndef BUDDY_SIZECLASS_H
#define BUDDY_SIZECLASS_H

#include "base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

/* ---- Derived at compile time ----------------------------------------------
 * The macros below give constant expressions. Those handed a row's (bytes,
 * order) by SIZE_CLASSES and naming a class by its bytes (SIZE_CLASS_FOR_##)
 * need the bytes as the rows write them: a decimal literal. */

/* Class numbers, named by their bytes: SIZE_CLASS_FOR_16 is 1, and so on in
 * row order. The enumeration has one constant per row, so two rows of the
 * same bytes do not compile. */
#define SIZE_CLASS_FOR_ROW_(bytes, order) SIZE_CLASS_FOR_##bytes,
enum size_class_number { SIZE_CLASS_NONE, SIZE_CLASSES(SIZE_CLASS_FOR_ROW_) SIZE_CLASS_NUMBER_END };
_Static_assert(SIZE_CLASS_NUMBER_END == SIZE_CLASS_COUNT, "a class number per row, after class 0");
_Static_assert(SIZE_CLASS_COUNT <= 256, "a class number fits the lookup table's byte");

/* The smallest class of at least `size` bytes, 0 if none. The rows expand to
 * the chain "size <= 16 ? 1 : size <= 32 ? 2 : ... : 0": each row is handed
 * the "(size) <=" before it and adds the rest of its link. The first row
 * that fits is the smallest because the rows ascend (checked in
 * sizeclass.c). It must not be used inside a SIZE_CLASSES row macro (the
 * preprocessor does not expand SIZE_CLASSES within itself). */
#define SIZE_CLASS_FIT_ROW_(bytes, order) (bytes) ? SIZE_CLASS_FOR_##bytes:
#define SIZE_CLASS_FIT(size) (SIZE_CLASSES((size) <= SIZE_CLASS_FIT_ROW_) 0)

/* A slab of a class is a block of its order, aligned to its size; its
 * objects lie from its start, and what is left after the last whole object
 * is its unused tail. */
#define SIZE_CLASS_SLAB_BYTES(order) (PAGE_SIZE << (order))
#define SIZE_CLASS_SLAB_COUNT(bytes, order) (SIZE_CLASS_SLAB_BYTES(order) / (bytes))

/* The object-start test (size_class_test_object_start). With magic =
 * ceil(2^64 / bytes), bytes * magic == 2^64 + e (mod 2^64: e) for a small e
 * (0 <= e < bytes). An offset n = k * bytes then gives n * magic == k * e, at
 * most (count - 1) * e for an object (k < count); any other offset below 2^32
 * gives at least magic, far above that (Lemire, Kaser and Kurz: "n is a
 * multiple of d iff n * ceil(2^64/d) mod 2^64 < ceil(2^64/d)"). So one
 * multiply and one compare against limit = (count - 1) * e + 1 cover both "a
 * multiple of bytes" and "before the slab's unused tail". For a power of two,
 * e == 0 and limit == 1: the slab has no tail. Class 0 has magic and limit 0:
 * nothing passes, which sends page runs off free's fast path. */
#define SIZE_CLASS_MAGIC(bytes) (UINT64_MAX / (uint64_t)(bytes) + 1)
#define SIZE_CLASS_LIMIT(bytes, order)                                                                                 \
  ((uint64_t)(SIZE_CLASS_SLAB_COUNT(bytes, order) - 1) * ((uint64_t)(bytes)*SIZE_CLASS_MAGIC(bytes)) + 1)

/* The class of a request of 128 < size <= SMALL_SIZE_MAX bytes, by
 * arithmetic: above 128 (2^7) bytes the classes are four per power of two,
 * so with 2^lg < size <= 2^(lg + 1) the class is SIZE_CLASS_FOR_128, plus four
 * per doubling from 2^7 to 2^lg, plus the quarter steps of 2^lg that size
 * reaches. A macro, so that sizeclass.c checks it against every row above
 * SIZE_CLASS_LOOKUP_MAX at compile time. */
#define SIZE_CLASS_LG_(size) (63u - (unsigned)__builtin_clzl((size_t)(size)-1))
#define SIZE_CLASS_ARITHMETIC(size)                                                                                    \
  ((unsigned)SIZE_CLASS_FOR_128 + (SIZE_CLASS_LG_(size) - 7u) * 4u +                                                   \
   (unsigned)((((size_t)(size)-1) >> (SIZE_CLASS_LG_(size) - 2)) & 3u) + 1u)

/* ---- The tables (sizeclass.c), indexed by class; class 0 is all zeros ---- */

extern const uint32_t size_class_bytes[SIZE_CLASS_COUNT];
extern const uint32_t size_class_slab_bytes_used[SIZE_CLASS_COUNT];
extern const uint8_t size_class_slab_order[SIZE_CLASS_COUNT];
extern const uint16_t size_class_slab_count[SIZE_CLASS_COUNT];

/* What the object-start test needs of a class (see SIZE_CLASS_MAGIC for the
 * test these fields make); the small map keeps a copy per bin (pagemap.c). */
typedef struct size_class_info {
  uint64_t magic;     /* ceil(2^64 / class bytes); 0 for class 0 */
  uint32_t slab_mask; /* slab bytes - 1: slabs are aligned to their size */
  uint32_t limit;     /* an offset starts an object iff offset * magic < limit */
} size_class_info_t;

extern const size_class_info_t size_class_info[SIZE_CLASS_COUNT];
/* The class of each size 0 .. SIZE_CLASS_LOOKUP_MAX: SIZE_CLASS_FIT(size). */
extern const uint8_t size_class_lookup[SIZE_CLASS_LOOKUP_MAX + 1];

/* Class of a request of `size` <= SMALL_SIZE_MAX bytes; malloc(0) gets class 1.
 * Cost: a load up to SIZE_CLASS_LOOKUP_MAX, a few arithmetic instructions
 * above. */
static inline unsigned size_class_of(size_t size) {
  if (size <= SIZE_CLASS_LOOKUP_MAX) return size_class_lookup[size];
  return SIZE_CLASS_ARITHMETIC(size);
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

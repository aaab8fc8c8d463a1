/* test_sizeclass.c: the size-class tables against the rows they are derived
 * from (SIZE_CLASSES), against each other, and against the rules the rows
 * were chosen by. It includes the size-class layer alone. */
#include <criterion/criterion.h>

#include "sizeclass.h"

/* The rows, read back through the X-macro: index c is class c. */
typedef struct row {
  unsigned bytes, order, number;
} row_t;
#define ROW(bytes, order) {bytes, order, SIZE_CLASS_FOR_##bytes},
static const row_t rows[] = {{0, 0, SIZE_CLASS_NONE}, SIZE_CLASSES(ROW)};
#define ROWS (sizeof rows / sizeof rows[0])

Test(sizeclass, the_tables_hold_the_rows) {
  cr_assert_eq(ROWS, SIZE_CLASS_COUNT, "class 0 and one class per row");
  cr_assert_eq(sizeof size_class_lookup, SIZE_CLASS_LOOKUP_MAX + 1);
  for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) {
    cr_assert_eq(rows[c].number, c, "SIZE_CLASS_FOR_%u is class %u", rows[c].bytes, c);
    cr_assert_eq(size_class_bytes[c], rows[c].bytes, "class %u", c);
    cr_assert_eq(size_class_slab_order[c], rows[c].order, "class %u", c);
  }
}

Test(sizeclass, class_zero_is_all_zeros) {
  cr_assert_eq(size_class_bytes[0], 0);
  cr_assert_eq(size_class_slab_order[0], 0);
  cr_assert_eq(size_class_slab_count[0], 0);
  cr_assert_eq(size_class_slab_bytes_used[0], 0);
  cr_assert(size_class_info[0].magic == 0 && size_class_info[0].slab_mask == 0 && size_class_info[0].limit == 0);
}

Test(sizeclass, every_size_maps_to_the_smallest_class_that_fits) {
  for (size_t size = 0; size <= SMALL_SIZE_MAX; size++) {
    unsigned c = size_class_of(size);
    cr_assert(c >= 1 && c < SIZE_CLASS_COUNT, "size %zu: class %u", size, c);
    cr_assert_geq(size_class_bytes[c], size, "size %zu fits class %u", size, c);
    cr_assert(c == 1 || size_class_bytes[c - 1] < size, "size %zu: class %u is the smallest", size, c);
    cr_assert_eq(SIZE_CLASS_FIT(size), (int)c, "size %zu", size);
    if (size <= SIZE_CLASS_LOOKUP_MAX) /* malloc's fast path reads the table alone */
      cr_assert_eq(size_class_lookup[size], c, "size %zu", size);
    else cr_assert_eq(SIZE_CLASS_ARITHMETIC(size), c, "size %zu", size);
  }
  cr_assert_eq(SIZE_CLASS_FIT(SMALL_SIZE_MAX + 1), 0, "no class above SMALL_SIZE_MAX");
  cr_assert_eq(size_class_of(0), 1, "malloc(0) is class 1");
}

Test(sizeclass, classes_ascend_are_16_aligned_and_waste_little) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    cr_assert_eq(size_class_bytes[c] % SMALL_ALIGN, 0);
    cr_assert_gt(size_class_bytes[c], size_class_bytes[c - 1]);
    if (size_class_bytes[c - 1] >= 128) /* a request just above the class below */
      cr_assert_leq((size_class_bytes[c] - size_class_bytes[c - 1] - 1) * 4, size_class_bytes[c - 1] + 1,
                    "class %u wastes at most a quarter of the class below", c);
  }
  cr_assert_eq(size_class_bytes[SIZE_CLASS_COUNT - 1], SMALL_SIZE_MAX);
}

Test(sizeclass, slabs_hold_their_counts_with_small_tails) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    size_t slab = PAGE_SIZE << size_class_slab_order[c], bytes = size_class_bytes[c];
    cr_assert_leq(size_class_slab_order[c], SLAB_MAX_ORDER);
    cr_assert_eq(size_class_slab_count[c], slab / bytes, "class %u", c);
    cr_assert_eq(size_class_slab_count[c], SIZE_CLASS_SLAB_COUNT(rows[c].bytes, rows[c].order), "class %u", c);
    cr_assert_eq(size_class_slab_bytes_used[c], size_class_slab_count[c] * bytes, "class %u", c);
    cr_assert(size_class_slab_bytes_used[c] <= slab && slab - size_class_slab_bytes_used[c] < bytes,
              "class %u: the tail holds no further object", c);
    cr_assert_geq(size_class_slab_count[c], 4);
    cr_assert_leq((slab % bytes) * 8, slab, "class %u tail under 1/8 of its slab", c);
  }
}

/* The rule of types.h: a class's slab order is the smallest that holds at
 * least 8 objects (4 above 4 KiB) with at most 1/16 of the slab left over. */
static bool slab_order_fits(size_t bytes, unsigned order) {
  size_t slab = PAGE_SIZE << order, least = bytes > 4096 ? 4 : 8;
  return slab / bytes >= least && (slab % bytes) * 16 <= slab;
}
Test(sizeclass, slab_orders_follow_the_rule) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    unsigned order = size_class_slab_order[c];
    cr_assert(slab_order_fits(size_class_bytes[c], order), "class %u: order %u fits the rule", c, order);
    for (unsigned smaller = 0; smaller < order; smaller++)
      cr_assert(!slab_order_fits(size_class_bytes[c], smaller), "class %u: order %u is the smallest", c, order);
  }
}

Test(sizeclass, object_start_test_is_exact) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    size_t slab = PAGE_SIZE << size_class_slab_order[c];
    for (size_t off = 0; off < slab; off++)
      cr_assert_eq(size_class_is_object_start(c, off),
                   off % size_class_bytes[c] == 0 && off / size_class_bytes[c] < size_class_slab_count[c],
                   "class %u off %zu", c, off);
  }
}

Test(sizeclass, object_start_numbers_follow_from_the_rows) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    const size_class_info_t *ci = &size_class_info[c];
    uint64_t bytes = size_class_bytes[c];
    unsigned __int128 two_64 = (unsigned __int128)1 << 64;
    cr_assert(ci->magic == (uint64_t)((two_64 + bytes - 1) / bytes), "class %u: magic is ceil(2^64 / bytes)", c);
    cr_assert_eq(ci->magic, SIZE_CLASS_MAGIC(rows[c].bytes), "class %u", c);
    uint64_t e = bytes * ci->magic; /* mod 2^64 */
    cr_assert_lt(e, bytes, "class %u", c);
    cr_assert_eq(ci->limit, (size_class_slab_count[c] - 1) * e + 1, "class %u", c);
    cr_assert_eq(ci->limit, SIZE_CLASS_LIMIT(rows[c].bytes, rows[c].order), "class %u", c);
    cr_assert_leq(ci->limit, ci->magic, "class %u: no offset but an object's passes", c);
    cr_assert_eq(ci->slab_mask, (PAGE_SIZE << size_class_slab_order[c]) - 1, "class %u", c);
    cr_assert_eq(size_class_bytes[c] * size_class_slab_count[c] <= ci->slab_mask + 1, true, "class %u", c);
  }
}

Test(sizeclass, object_test_by_address_ignores_the_slab_base) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    size_t slab = PAGE_SIZE << size_class_slab_order[c];
    uintptr_t base = (uintptr_t)7 << 40; /* any slab-aligned address */
    for (size_t off = 0; off < slab; off += 8)
      cr_assert_eq(size_class_is_object(c, (void *)(base + off)), size_class_is_object_start(c, off),
                   "class %u off %zu", c, off);
  }
}

/* free's fast path relies on class 0 (page runs) failing the object test. */
Test(sizeclass, class_zero_has_no_object_starts) {
  for (size_t off = 0; off < ((size_t)PAGE_SIZE << BUDDY_MAX_ORDER); off += 4096) {
    cr_assert(!size_class_is_object_start(0, off), "off %zu", off);
    cr_assert(!size_class_is_object(0, (void *)(((uintptr_t)5 << 40) + off)), "off %zu", off);
  }
}

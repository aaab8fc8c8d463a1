/* test_sizeclass.c: the size-class tables against the rules they were built by. */
#include <criterion/criterion.h>

#include "internal.h"

Test(sizeclass, every_size_maps_to_the_smallest_class_that_fits) {
  for (size_t size = 0; size <= SMALL_SIZE_MAX; size++) {
    unsigned c = size_class_of(size);
    cr_assert(c >= 1 && c < SIZE_CLASS_COUNT, "size %zu: class %u", size, c);
    cr_assert_geq(size_class_bytes[c], size, "size %zu fits class %u", size, c);
    cr_assert(c == 1 || size_class_bytes[c - 1] < size, "size %zu: class %u is the smallest", size, c);
    if (size <= SIZE_CLASS_LOOKUP_MAX) /* malloc's fast path reads the table alone */
      cr_assert_eq(size_class_lookup[size], c, "size %zu", size);
  }
}

Test(sizeclass, classes_are_16_aligned_and_waste_little) {
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
    size_t slab = PAGE_SIZE << size_class_slab_order[c];
    cr_assert_leq(size_class_slab_order[c], SLAB_MAX_ORDER);
    cr_assert_eq(size_class_slab_count[c], slab / size_class_bytes[c], "class %u", c);
    cr_assert_eq(size_class_slab_bytes_used[c], size_class_slab_count[c] * size_class_bytes[c], "class %u", c);
    cr_assert_geq(size_class_slab_count[c], 4);
    cr_assert_leq((slab % size_class_bytes[c]) * 8, slab, "class %u tail under 1/8 of its slab", c);
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

Test(sizeclass, fast_path_table_agrees_with_the_slab_tables) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    const size_class_info_t *ci = &size_class_info[c];
    cr_assert_eq(ci->slab_mask, (PAGE_SIZE << size_class_slab_order[c]) - 1, "class %u", c);
    cr_assert_eq(ci->magic, UINT64_MAX / size_class_bytes[c] + 1, "class %u", c);
    cr_assert_eq(size_class_bytes[c] * size_class_slab_count[c] <= ci->slab_mask + 1, true, "class %u", c);
  }
}

Test(sizeclass, object_test_by_address_ignores_the_slab_base) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    size_t slab = PAGE_SIZE << size_class_slab_order[c];
    uintptr_t base = (uintptr_t)7 << 40; /* any slab-aligned address */
    for (size_t off = 0; off < slab; off += 8)
      cr_assert_eq(size_class_is_object(c, (void *)(base + off)),
                   size_class_is_object_start(c, off), "class %u off %zu", c, off);
  }
}

/* free's fast path relies on class 0 (page runs) failing the object test. */
Test(sizeclass, class_zero_has_no_object_starts) {
  for (size_t off = 0; off < ((size_t)PAGE_SIZE << BUDDY_MAX_ORDER); off += 4096) {
    cr_assert(!size_class_is_object_start(0, off), "off %zu", off);
    cr_assert(!size_class_is_object(0, (void *)(((uintptr_t)5 << 40) + off)), "off %zu", off);
  }
}

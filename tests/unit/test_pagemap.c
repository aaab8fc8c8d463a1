/* test_pagemap.c: unit tests of the page map (pagemap.c), the map from an
 * address to the region or huge block holding it, on its own: entries are
 * registered by hand, with no zone and no allocation. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "pagemap.h"

/* Root slots without a leaf of their own share one all-NULL leaf: every
 * address in them is foreign, and registering in one slot (which maps it a
 * leaf) must not make another slot's addresses look owned. */
Test(pagemap, page_map_slots_without_a_leaf_are_foreign) {
  const uintptr_t slot_span = (uintptr_t)1 << (BUDDY_REGION_SHIFT + PAGEMAP_LEAF_BITS);
  /* Two slots near the top of the user address space: no mapping is there. */
  uintptr_t slot_a = ((uintptr_t)1 << PAGEMAP_ROOT_BITS) - 3, slot_b = slot_a + 1;
  void *in_a = (void *)(slot_a * slot_span + 5 * BUDDY_REGION_SIZE);
  void *in_b = (void *)(slot_b * slot_span + 5 * BUDDY_REGION_SIZE);
  for (uintptr_t slot = 0; slot < ((uintptr_t)1 << PAGEMAP_ROOT_BITS); slot += 7)
    if (pagemap_root[slot] == pagemap_root[slot_a])
      cr_assert_eq(pagemap_entry((void *)(slot * slot_span + slot_span / 2)), 0, "slot %zu", (size_t)slot);
  static region_t fake_chunk; /* never dereferenced by the page map */
  cr_assert(pagemap_register(in_a, BUDDY_REGION_SIZE, pagemap_region_entry(&fake_chunk)));
  cr_assert_eq(pagemap_region_of(in_a), &fake_chunk);
  cr_assert_eq(pagemap_region_of((char *)in_a + BUDDY_REGION_SIZE - 1), &fake_chunk);
  cr_assert_eq(pagemap_entry((char *)in_a + BUDDY_REGION_SIZE), 0, "the next region is not registered");
  cr_assert_eq(pagemap_entry(in_b), 0, "another slot still has no entry");
  cr_assert_neq(pagemap_root[slot_a], pagemap_root[slot_b], "slot a got a leaf of its own");
  pagemap_unregister(in_a, BUDDY_REGION_SIZE);
  cr_assert_eq(pagemap_entry(in_a), 0);
  cr_assert_eq(pagemap_entry((void *)(uintptr_t)-1), 0, "past 48 bits");
}

/* test_os.c: unit tests of the OS layer (os_linux.c) beneath the core:
 * aligned mappings with a prefix (a region and its metadata) and read-only
 * reservations made writable page by page (the small map's leaves). */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>

#include "os.h"
#include "types.h"

Test(os, mapping_with_a_prefix_is_aligned_after_it) {
  for (int i = 0; i < 4; i++) {
    char *p = os_map_aligned_with_prefix(REGION_META_SIZE, BUDDY_REGION_SIZE, BUDDY_REGION_SIZE);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p & (BUDDY_REGION_SIZE - 1), 0);
    p[-(ptrdiff_t)REGION_META_SIZE] = 1; /* both ends are mapped and zeroed */
    cr_assert_eq(p[-1], 0);
    p[BUDDY_REGION_SIZE - 1] = 1;
    os_unmap(p - REGION_META_SIZE, REGION_META_SIZE + BUDDY_REGION_SIZE);
  }
}

Test(os, readonly_reservation_becomes_writable_page_by_page) {
  const size_t size = 64 * PAGE_SIZE;
  unsigned char *p = os_map_readonly(size);
  cr_assert_not_null(p);
  for (size_t i = 0; i < size; i += PAGE_SIZE) cr_assert_eq(p[i], 0);
  cr_assert(os_make_writable(p + 5 * PAGE_SIZE, PAGE_SIZE));
  p[5 * PAGE_SIZE + 7] = 42;
  cr_assert_eq(p[5 * PAGE_SIZE + 7], 42);
  cr_assert_eq(p[6 * PAGE_SIZE], 0);
  os_unmap(p, size);
}

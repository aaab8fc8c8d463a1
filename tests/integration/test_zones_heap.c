/* test_zones_heap.c: the zones (zone.c) through the linked API: regions mapped on
 * demand and given back (trim, purge delay), each region's metadata just
 * below its pages whatever the block kind, and the small map's bytes kept by
 * the slabs of each zone (set with a slab, cleared with it), on which free's
 * fast path relies, with the page map's fallback when they are missing. The
 * transfer stacks have test_transfer_heap.c, the zone layer alone
 * tests/unit/test_zone.c. Each test runs in a process of its own. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buddymalloc.h"
#include "core_util.h"

/* ---- Regions mapped on demand and given back ------------------------------ */

enum { ZONE_TEST_BLOCKS = 6 };

/* Maps ZONE_TEST_BLOCKS regions through 4 MiB runs, fills and frees them. */
static size_t zone_fill_and_free(void **blocks) {
  size_t before = heap_test_zone_regions();
  for (int i = 0; i < ZONE_TEST_BLOCKS; i++) {
    blocks[i] = buddy_malloc(BUDDY_REGION_SIZE / 2 + 1); /* one 4 MiB run each */
    cr_assert_not_null(blocks[i]);
    memset(blocks[i], 0x5a, BUDDY_REGION_SIZE / 2 + 1);
  }
  cr_assert_geq(heap_test_zone_regions(), before + ZONE_TEST_BLOCKS, "regions grow on demand");
  for (int i = 0; i < ZONE_TEST_BLOCKS; i++) buddy_free(blocks[i]);
  return before;
}

Test(zones, free_regions_are_unmapped_by_trim) {
  options.purge_delay_ms = 3600000; /* only the trim may release them */
  void *blocks[ZONE_TEST_BLOCKS];
  size_t before = zone_fill_and_free(blocks);
  cr_assert_geq(heap_test_zone_regions(), before + ZONE_TEST_BLOCKS, "kept mapped until the purge is due");
  cr_assert_eq(buddy_trim(0), 1);
  cr_assert_eq(heap_test_zone_regions(), 0, "trim unmaps every wholly free region");
  for (int i = 0; i < ZONE_TEST_BLOCKS; i++) cr_assert_eq(pagemap_entry(blocks[i]), 0);
}

Test(zones, free_regions_are_unmapped_after_the_purge_delay) {
  options.purge_delay_ms = 50;
  void *blocks[ZONE_TEST_BLOCKS];
  size_t before = zone_fill_and_free(blocks);
  test_sleep_ms(120);
  void *probe = buddy_malloc(SMALL_SIZE_MAX + 1); /* any zone slow path purges what is due */
  size_t after = heap_test_zone_regions();
  /* what was there before, the reserve, and the region the probe took */
  cr_assert_leq(after, before + REGION_RESERVE + 1, "wholly free regions beyond the reserve are unmapped");
  buddy_free(probe);
}

Test(zones, foreign_pointers_are_not_in_the_page_map) {
  static char static_buffer[64];
  int on_stack;
  cr_assert_eq(pagemap_entry(static_buffer), 0);
  cr_assert_eq(pagemap_entry(&on_stack), 0);
  cr_assert_eq(pagemap_entry((void *)(uintptr_t)0xffff800000001000ull), 0);
  void *mine = buddy_malloc(100);
  cr_assert(pagemap_is_region(pagemap_entry(mine)));
  buddy_free(mine);
}

/* ---- Region metadata and the small map, which free's fast path reads ----- */

/* free's fast path computes a block's region from its address and only
 * compares the page-map entry with it: every zone region must have its
 * metadata just below its pages, for blocks of every kind it holds. */
Test(zones, region_metadata_lies_just_below_its_pages) {
  const size_t sizes[] = {1, 16, 1000, SMALL_SIZE_MAX, SMALL_SIZE_MAX + 1, 1 << 20, MEDIUM_SIZE_MAX};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *p = buddy_malloc(sizes[i]);
    cr_assert_not_null(p);
    uintptr_t entry = pagemap_entry(p);
    cr_assert(pagemap_is_region(entry), "size %zu", sizes[i]);
    region_t *r = pagemap_region(entry);
    cr_assert_eq(region_of_address(p), r, "size %zu", sizes[i]);
    cr_assert_eq(region_of_address(p + sizes[i] - 1), r, "size %zu: last byte", sizes[i]);
    cr_assert_eq(region_of_address(r->base), r);
    cr_assert_eq(region_of_address(r->base + BUDDY_REGION_SIZE - 1), r);
    cr_assert_eq((uintptr_t)r->base & (BUDDY_REGION_SIZE - 1), 0);
    unsigned cls = sizes[i] <= SMALL_SIZE_MAX ? size_class_of(sizes[i]) : 0;
    cr_assert_eq(page_class_at(r, p), cls, "size %zu", sizes[i]);
    cr_assert_eq(small_map_at(p), cls == 0 ? 0 : small_map_bin_number(r->zone_index, cls), "free's bin, size %zu",
                 sizes[i]);
    buddy_free(p);
  }
  char *huge = buddy_malloc(MEDIUM_SIZE_MAX + 1);
  cr_assert_not_null(huge);
  uintptr_t entry = pagemap_entry(huge);
  cr_assert(entry != 0 && !pagemap_is_region(entry), "a huge block's entry is not a region's");
  cr_assert_eq(pagemap_huge(entry)->base, huge);
  buddy_free(huge);
}

/* A region entry whose metadata is not below the address can only be heap
 * corruption (zone.c never registers one): free stops there. */
Test(zones, region_entry_without_metadata_below_is_fatal, .signal = SIGABRT) {
  const uintptr_t slot_span = (uintptr_t)1 << (BUDDY_REGION_SHIFT + PAGEMAP_LEAF_BITS);
  char *far = (char *)((((uintptr_t)1 << PAGEMAP_ROOT_BITS) - 5) * slot_span + 7 * BUDDY_REGION_SIZE);
  static region_t fake_chunk; /* not below `far` */
  cr_assert(pagemap_register(far, BUDDY_REGION_SIZE, pagemap_region_entry(&fake_chunk)));
  buddy_free(far + 64);
}

/* The small map, free's fast test: each slab page holds its bin (zone and
 * class), every other address 0; below its bytes, each bin's object-start
 * fields are its class's. */
Test(zones, small_map_marks_slab_pages_only) {
  static char static_buffer[64];
  int on_stack;
  char *small = buddy_malloc(64), *medium = buddy_malloc(SMALL_SIZE_MAX + 1);
  char *huge = buddy_malloc(MEDIUM_SIZE_MAX + 1), *big_small = buddy_malloc(SMALL_SIZE_MAX);
  cr_assert_neq(small_map.leaf_offset[(uintptr_t)small >> SMALL_MAP_LEAF_SPAN_BITS], 0, "a leaf with the region");
  cr_assert_eq(small_map_at((void *)(uintptr_t)-1), 0, "past the map");
  cr_assert_eq(small_map_at((void *)((uintptr_t)1 << SMALL_MAP_ADDRESS_BITS)), 0, "just past the map");
  cr_assert_eq(small_map_at((void *)(uintptr_t)0xffff800000001000ull), 0, "a kernel address");
  region_t *r = pagemap_region_of(small);
  unsigned bin = small_map_bin_number(r->zone_index, size_class_of(64));
  cr_assert_eq(small_map_at(small), bin);
  cr_assert_eq(small_map_at(big_small),
               small_map_bin_number(pagemap_region_of(big_small)->zone_index, SIZE_CLASS_COUNT - 1));
  cr_assert_eq(small_map_at(big_small + SMALL_SIZE_MAX - 1), small_map_at(big_small), "every page of a slab");
  cr_assert_eq(small_map_at(static_buffer), 0);
  cr_assert_eq(small_map_at(&on_stack), 0);
  cr_assert_eq(small_map_at(NULL), 0);
  cr_assert_eq(small_map_at(medium), 0);
  cr_assert_eq(small_map_at(huge), 0);
  const small_map_info_t *info = &small_map.info;
  for (unsigned b = 0; b < 256; b++) {
    unsigned c = b % SIZE_CLASS_COUNT;
    bool real = b < TCACHE_BINS && c != 0;
    cr_assert_eq(info->limit[b], real ? size_class_info[c].limit : 0, "bin %u", b);
    cr_assert_eq(info->magic[b], real ? size_class_info[c].magic : 0, "bin %u", b);
    cr_assert_eq(info->slab_mask[b], real ? size_class_info[c].slab_mask : 0, "bin %u", b);
  }
  buddy_free(small);
  buddy_free(medium);
  buddy_free(huge);
  buddy_free(big_small);
}

/* A slab's pages lose their bytes when it goes back to the core, so a
 * region is all zeros when it is unmapped (checked there at level 3). */
Test(zones, small_map_bytes_are_cleared_with_their_slabs) {
  options.purge_delay_ms = 3600000;
  options.tcache_max = 1; /* bins keep next to nothing: the slabs empty */
  enum { N = 600 };
  static char *blocks[N];
  /* Not the class of the thread's cache (about 4 KiB), whose slab stays. */
  const size_t sizes[] = {100, 2000, 3000, 6000, 7000, 8000};
  for (int i = 0; i < N; i++) blocks[i] = buddy_malloc(sizes[i % 6]);
  char *first = blocks[0];
  cr_assert_neq(small_map_at(first), 0);
  for (int i = 0; i < N; i++) buddy_free(blocks[i]);
  tcache_flush_current();
  buddy_trim(0);
  for (int i = 0; i < N; i++) cr_assert_eq(small_map_at(blocks[i]), 0, "block %d", i);
}

/* A small block whose map byte is missing (its page of the map could not be
 * made writable, or the map could not be reserved) still frees, through the
 * page map, onto the bin the fast path would have used. */
Test(zones, a_small_block_missing_from_the_map_still_frees) {
  char *small = buddy_malloc(64), *other = buddy_malloc(64);
  unsigned bin = small_map_at(small);
  small_map_set(small, 1, 0);
  buddy_free(small);
  cr_assert_eq(buddy_malloc(64), small, "it went on this thread's bin, as the fast path would put it");
  small_map_set(small, 1, bin);
  buddy_free(small);
  buddy_free(other);
}

/* With no map at all (no leaf mapped: the map covers no page), every kind of
 * block still frees, and misuse is still caught. */
Test(zones, frees_work_without_the_small_map, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  char *warm = buddy_malloc(64);
  static intptr_t saved[SMALL_MAP_ROOT_ENTRIES]; /* every leaf hidden: the map covers nothing */
  memcpy(saved, small_map.leaf_offset, sizeof saved);
  memset(small_map.leaf_offset, 0, sizeof saved);
  char *small = buddy_malloc(48), *medium = buddy_malloc(SMALL_SIZE_MAX + 1);
  char *huge = buddy_malloc(MEDIUM_SIZE_MAX + 1);
  cr_assert(small != NULL && medium != NULL && huge != NULL);
  buddy_free(small);
  cr_assert_eq(buddy_malloc(48), small, "onto this thread's bin");
  buddy_free(small);
  buddy_free(small); /* a double free: warned, not pushed twice */
  cr_assert_neq(buddy_malloc(48), buddy_malloc(48));
  buddy_free(small + 16);
  buddy_free(medium);
  buddy_free(huge);
  memcpy(small_map.leaf_offset, saved, sizeof saved);
  buddy_free(warm);
  zone_verify_all();
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "double free of a small block"), "got:\n%s", text);
  cr_assert_not_null(strstr(text, "inside a small block"), "got:\n%s", text);
}

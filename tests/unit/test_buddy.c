/* test_buddy.c: unit tests of the page-level buddy core (buddy.c).
 *
 * The core takes its regions from the caller, so these tests give it memory
 * of their own (from the test binary's libc) and check, after every step,
 * the whole-heap invariant walker buddy_heap_verify(). Later tests reach the
 * zone layer through the public API to check growth and release of regions.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buddymalloc.h"
#include "core_util.h"

#define TEST_REGIONS_MAX 4

typedef struct test_heap {
  buddy_heap_t heap;
  region_t *meta[TEST_REGIONS_MAX];
  char *base[TEST_REGIONS_MAX];
  unsigned regions;
} test_heap_t;

static test_heap_t th;

static void test_heap_add(void) {
  cr_assert_lt(th.regions, TEST_REGIONS_MAX);
  region_t *r = aligned_alloc(REGION_META_SIZE, REGION_META_SIZE);
  char *base = aligned_alloc(BUDDY_REGION_SIZE, BUDDY_REGION_SIZE);
  cr_assert(r != NULL && base != NULL);
  th.meta[th.regions] = r;
  th.base[th.regions] = base;
  th.regions++;
  buddy_heap_add_region(&th.heap, r, base, false);
}

static void setup_one_region(void) {
  memset(&th, 0, sizeof th);
  buddy_heap_init(&th.heap);
  test_heap_add();
}

static void teardown(void) {
  for (unsigned i = 0; i < th.regions; i++) {
    free(th.meta[i]);
    free(th.base[i]);
  }
}

static char *block_address(page_desc_t *d) {
  return page_address_of(d);
}

static size_t verify(void) {
  return buddy_heap_verify(&th.heap);
}

TestSuite(buddy, .init = setup_one_region, .fini = teardown);

Test(buddy, fresh_region_is_one_free_block) {
  cr_assert_eq(verify(), BUDDY_REGION_PAGES);
  cr_assert_eq(th.heap.free_blocks[BUDDY_MAX_ORDER], 1);
  for (unsigned k = 0; k < BUDDY_MAX_ORDER; k++) cr_assert_eq(th.heap.free_blocks[k], 0);
  cr_assert_eq(th.heap.regions_free, 1);
}

Test(buddy, every_order_is_aligned_and_coalesces_back) {
  for (unsigned k = 0; k <= BUDDY_MAX_ORDER; k++) {
    page_desc_t *d = buddy_heap_alloc(&th.heap, k, NULL);
    cr_assert_not_null(d, "order %u", k);
    char *p = block_address(d);
    cr_assert_eq(((uintptr_t)p) & ((PAGE_SIZE << k) - 1), 0, "order %u block aligned to its size", k);
    cr_assert_eq(th.heap.pages_used, (size_t)1 << k);
    /* a split of order 10 down to k leaves one free block at each order in between */
    for (unsigned j = k; j < BUDDY_MAX_ORDER; j++) cr_assert_eq(th.heap.free_blocks[j], 1);
    verify();
    cr_assert_eq(buddy_heap_free(&th.heap, d), th.meta[0], "region wholly free again");
    verify();
    cr_assert_eq(th.heap.free_blocks[BUDDY_MAX_ORDER], 1);
  }
}

/* Every order-0 page of a region, then freed in a shuffled order. */
Test(buddy, exhaustive_split_then_merge_in_any_order) {
  static page_desc_t *blocks[BUDDY_REGION_PAGES];
  for (size_t i = 0; i < BUDDY_REGION_PAGES; i++) {
    blocks[i] = buddy_heap_alloc(&th.heap, 0, NULL);
    cr_assert_not_null(blocks[i]);
    if (i % 64 == 0) verify();
  }
  verify();
  cr_assert_null(buddy_heap_alloc(&th.heap, 0, NULL), "region exhausted");
  cr_assert_eq(th.heap.pages_free, 0);
  test_rng rng = test_rng_seeded(12345);
  for (size_t i = BUDDY_REGION_PAGES - 1; i > 0; i--) {
    size_t j = (size_t)test_rng_below(&rng, i + 1);
    page_desc_t *t = blocks[i];
    blocks[i] = blocks[j];
    blocks[j] = t;
  }
  for (size_t i = 0; i < BUDDY_REGION_PAGES; i++) {
    region_t *whole = buddy_heap_free(&th.heap, blocks[i]);
    cr_assert_eq(whole != NULL, i == BUDDY_REGION_PAGES - 1, "wholly free only after the last free");
    verify();
  }
  cr_assert_eq(th.heap.free_blocks[BUDDY_MAX_ORDER], 1);
}

/* Every split of a small tree: all (order a, order b) pairs allocated and freed
 * in both orders come back to one block. */
Test(buddy, exhaustive_pairs_of_orders) {
  for (unsigned a = 0; a < BUDDY_MAX_ORDER; a++)
    for (unsigned b = 0; b < BUDDY_MAX_ORDER; b++)
      for (int reverse = 0; reverse < 2; reverse++) {
        page_desc_t *x = buddy_heap_alloc(&th.heap, a, NULL);
        page_desc_t *y = buddy_heap_alloc(&th.heap, b, NULL);
        cr_assert(x != NULL && y != NULL && x != y);
        verify();
        buddy_heap_free(&th.heap, reverse ? y : x);
        verify();
        buddy_heap_free(&th.heap, reverse ? x : y);
        cr_assert_eq(verify(), BUDDY_REGION_PAGES);
        cr_assert_eq(th.heap.free_blocks[BUDDY_MAX_ORDER], 1);
      }
}

/* ---- Random sequences against a reference model -------------------------- */

#define MODEL_STEPS 20000
#define MODEL_LIVE_MAX 256

typedef struct model_block {
  page_desc_t *d;
  unsigned order;
} model_block_t;

/* page_owner[r][i]: 1 + slot of the live block covering page i, or 0. */
static unsigned short page_owner[TEST_REGIONS_MAX][BUDDY_REGION_PAGES];

static unsigned region_number(page_desc_t *d) {
  for (unsigned i = 0; i < th.regions; i++)
    if (region_of_desc(d) == th.meta[i]) return i;
  cr_assert_fail("block of an unknown region");
  return 0;
}

static void model_mark(model_block_t *b, unsigned short owner, unsigned short expect) {
  unsigned r = region_number(b->d);
  size_t first = (size_t)(b->d - th.meta[r]->pages);
  for (size_t i = first; i < first + ((size_t)1 << b->order); i++) {
    cr_assert_eq(page_owner[r][i], expect, "page %zu of region %u: owner %u, expected %u", i, r,
                 page_owner[r][i], expect);
    page_owner[r][i] = owner;
  }
}

Test(buddy, random_sequences_match_a_reference_model) {
  test_heap_add(); /* two regions: blocks come from both */
  static model_block_t live[MODEL_LIVE_MAX];
  unsigned live_count = 0;
  size_t model_used = 0;
  memset(page_owner, 0, sizeof page_owner);
  test_rng rng = test_rng_seeded(777);
  for (int step = 0; step < MODEL_STEPS; step++) {
    bool do_alloc = live_count == 0 || (live_count < MODEL_LIVE_MAX && test_rng_below(&rng, 2) == 0);
    if (do_alloc) {
      unsigned order = (unsigned)test_rng_below(&rng, test_rng_below(&rng, 4) == 0 ? BUDDY_ORDERS : 4);
      page_desc_t *d = buddy_heap_alloc(&th.heap, order, NULL);
      /* The model says whether it must fit: some free block of order >= k. */
      bool fits = false;
      for (unsigned k = order; k <= BUDDY_MAX_ORDER; k++) fits |= th.heap.free_blocks[k] > 0 || d != NULL;
      if (d == NULL) {
        cr_assert(!fits, "allocation of order %u failed with room left", order);
        continue;
      }
      cr_assert_eq(d->order, order);
      cr_assert_eq(((uintptr_t)block_address(d)) & ((PAGE_SIZE << order) - 1), 0);
      live[live_count] = (model_block_t){d, order};
      model_mark(&live[live_count], (unsigned short)(live_count + 1), 0);
      live_count++;
      model_used += (size_t)1 << order;
    } else {
      unsigned i = (unsigned)test_rng_below(&rng, live_count);
      model_mark(&live[i], 0, (unsigned short)(i + 1));
      model_used -= (size_t)1 << live[i].order;
      buddy_heap_free(&th.heap, live[i].d);
      live[i] = live[--live_count];
      if (i < live_count) {
        model_mark(&live[i], 0, (unsigned short)(live_count + 1));
        model_mark(&live[i], (unsigned short)(i + 1), 0);
      }
    }
    cr_assert_eq(th.heap.pages_used, model_used);
    verify(); /* the whole-heap walk after every step */
  }
  while (live_count > 0) buddy_heap_free(&th.heap, live[--live_count].d);
  cr_assert_eq(verify(), 2 * BUDDY_REGION_PAGES, "everything freed coalesces back to whole regions");
  cr_assert_eq(th.heap.free_blocks[BUDDY_MAX_ORDER], 2);
  cr_assert_eq(th.heap.regions_free, 2);
}

/* ---- Exhaustion, several regions, release ------------------------------- */

Test(buddy, exhaustion_returns_null_then_recovers) {
  page_desc_t *all = buddy_heap_alloc(&th.heap, BUDDY_MAX_ORDER, NULL);
  cr_assert_not_null(all);
  for (unsigned k = 0; k <= BUDDY_MAX_ORDER; k++) cr_assert_null(buddy_heap_alloc(&th.heap, k, NULL));
  cr_assert_null(buddy_heap_alloc(&th.heap, BUDDY_MAX_ORDER + 1, NULL), "orders past the largest fail");
  buddy_heap_free(&th.heap, all);
  cr_assert_not_null(buddy_heap_alloc(&th.heap, 3, NULL));
  verify();
}

Test(buddy, several_regions_and_removal_of_a_free_one) {
  test_heap_add();
  test_heap_add();
  cr_assert_eq(verify(), 3 * BUDDY_REGION_PAGES);
  page_desc_t *blocks[3];
  for (int i = 0; i < 3; i++) blocks[i] = buddy_heap_alloc(&th.heap, BUDDY_MAX_ORDER, NULL);
  cr_assert_null(buddy_heap_alloc(&th.heap, 0, NULL));
  cr_assert_eq(th.heap.regions_free, 0);
  region_t *r = buddy_heap_free(&th.heap, blocks[1]);
  cr_assert_not_null(r);
  buddy_heap_remove_region(&th.heap, r);
  cr_assert_eq(th.heap.regions, 2);
  cr_assert_eq(verify(), 0);
  buddy_heap_free(&th.heap, blocks[0]);
  buddy_heap_free(&th.heap, blocks[2]);
  cr_assert_eq(verify(), 2 * BUDDY_REGION_PAGES);
}

Test(buddy, zero_flag_follows_split_and_merge) {
  buddy_heap_t h;
  buddy_heap_init(&h);
  buddy_heap_add_region(&h, th.meta[0], th.base[0], false); /* re-add as ours */
  memset(&th.heap, 0, sizeof th.heap);
  region_t *r2 = aligned_alloc(REGION_META_SIZE, REGION_META_SIZE);
  char *b2 = aligned_alloc(BUDDY_REGION_SIZE, BUDDY_REGION_SIZE);
  buddy_heap_add_region(&h, r2, b2, true);
  bool zeroed = false;
  /* The zeroed region is the newest: its blocks come first from the list head. */
  page_desc_t *a = buddy_heap_alloc(&h, 2, &zeroed);
  cr_assert(zeroed, "a block split from a zeroed region is zeroed");
  page_desc_t *b = buddy_heap_alloc(&h, 2, &zeroed);
  cr_assert(zeroed);
  buddy_heap_free(&h, a); /* used: no longer known zero */
  page_desc_t *c = buddy_heap_alloc(&h, 2, &zeroed);
  cr_assert_eq(c, a);
  cr_assert_not(zeroed, "a block that held data is not zero");
  buddy_heap_free(&h, b);
  buddy_heap_free(&h, c);
  buddy_heap_verify(&h);
  free(r2);
  free(b2);
}

Test(buddy, grow_and_shrink_in_place) {
  page_desc_t *d = buddy_heap_alloc(&th.heap, 2, NULL);
  cr_assert(buddy_heap_grow(&th.heap, d, 5), "upper buddies are free");
  cr_assert_eq(d->order, 5);
  cr_assert_eq(th.heap.pages_used, 32);
  verify();
  page_desc_t *e = buddy_heap_alloc(&th.heap, 5, NULL); /* the buddy at order 5 */
  cr_assert_not(buddy_heap_grow(&th.heap, d, 6), "blocked by a used buddy");
  cr_assert_eq(d->order, 5);
  buddy_heap_shrink(&th.heap, d, 1);
  cr_assert_eq(d->order, 1);
  cr_assert_eq(th.heap.pages_used, 2 + 32);
  verify();
  cr_assert_not(buddy_heap_grow(&th.heap, e, 7), "not the lower half at order 6");
  buddy_heap_free(&th.heap, d);
  buddy_heap_free(&th.heap, e);
  cr_assert_eq(verify(), BUDDY_REGION_PAGES);
}

/* ---- Misuse is reported and aborts ---------------------------------------- */

Test(buddy, free_of_a_free_block_aborts, .signal = SIGABRT) {
  page_desc_t *d = buddy_heap_alloc(&th.heap, 1, NULL);
  char *p = block_address(d);
  buddy_heap_free(&th.heap, d);
  buddy_heap_check_block(th.meta[0], p);
}

Test(buddy, free_inside_a_block_aborts, .signal = SIGABRT) {
  page_desc_t *d = buddy_heap_alloc(&th.heap, 3, NULL);
  buddy_heap_check_block(th.meta[0], block_address(d) + PAGE_SIZE);
}

Test(buddy, free_of_an_unaligned_pointer_aborts, .signal = SIGABRT) {
  page_desc_t *d = buddy_heap_alloc(&th.heap, 0, NULL);
  buddy_heap_check_block(th.meta[0], block_address(d) + 8);
}

Test(buddy, check_of_a_live_block_passes) {
  page_desc_t *d = buddy_heap_alloc(&th.heap, 4, NULL);
  cr_assert_eq(buddy_heap_check_block(th.meta[0], block_address(d)), d);
}

Test(buddy, verifier_catches_a_corrupt_count, .signal = SIGABRT) {
  buddy_heap_alloc(&th.heap, 0, NULL);
  th.heap.free_blocks[3]++;
  verify();
}

Test(buddy, verifier_catches_unmerged_buddies, .signal = SIGABRT) {
  page_desc_t *a = buddy_heap_alloc(&th.heap, 0, NULL);
  page_desc_t *b = buddy_heap_alloc(&th.heap, 0, NULL);
  cr_assert_eq(b, a + 1);
  b->kind = PAGE_FREE; /* forge a free buddy without merging */
  a->kind = PAGE_FREE;
  verify();
}

/* ---- Through the zones: regions mapped on demand and given back ----------- */

static size_t zone_regions(void) {
  size_t n = 0;
  for (unsigned i = 0; i < ZONES_MAX; i++) {
    zone_lock(&zones[i]);
    n += zones[i].heap.regions;
    buddy_heap_verify(&zones[i].heap);
    zone_unlock(&zones[i]);
  }
  return n;
}

enum { ZONE_TEST_BLOCKS = 6 };

/* Maps ZONE_TEST_BLOCKS regions through 4 MiB runs, fills and frees them. */
static size_t zone_fill_and_free(void **blocks) {
  size_t before = zone_regions();
  for (int i = 0; i < ZONE_TEST_BLOCKS; i++) {
    blocks[i] = buddy_malloc(BUDDY_REGION_SIZE / 2 + 1); /* one 4 MiB run each */
    cr_assert_not_null(blocks[i]);
    memset(blocks[i], 0x5a, BUDDY_REGION_SIZE / 2 + 1);
  }
  cr_assert_geq(zone_regions(), before + ZONE_TEST_BLOCKS, "regions grow on demand");
  for (int i = 0; i < ZONE_TEST_BLOCKS; i++) buddy_free(blocks[i]);
  return before;
}

Test(zones, free_regions_are_unmapped_by_trim) {
  options.purge_delay_ms = 3600000; /* only the trim may release them */
  void *blocks[ZONE_TEST_BLOCKS];
  size_t before = zone_fill_and_free(blocks);
  cr_assert_geq(zone_regions(), before + ZONE_TEST_BLOCKS, "kept mapped until the purge is due");
  cr_assert_eq(buddy_trim(0), 1);
  cr_assert_eq(zone_regions(), 0, "trim unmaps every wholly free region");
  for (int i = 0; i < ZONE_TEST_BLOCKS; i++) cr_assert_eq(pagemap_entry(blocks[i]), 0);
}

Test(zones, free_regions_are_unmapped_after_the_purge_delay) {
  options.purge_delay_ms = 50;
  void *blocks[ZONE_TEST_BLOCKS];
  size_t before = zone_fill_and_free(blocks);
  test_sleep_ms(120);
  void *probe = buddy_malloc(SMALL_SIZE_MAX + 1); /* any zone slow path purges what is due */
  size_t after = zone_regions();
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

/* Root slots without a leaf of their own share one all-NULL leaf: every
 * address in them is foreign, and registering in one slot (which maps it a
 * leaf) must not make another slot's addresses look owned. */
Test(zones, page_map_slots_without_a_leaf_are_foreign) {
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
    cr_assert_eq(small_map_at(p), cls == 0 ? 0 : small_map_bin_number(r->zone_index, cls), "free's bin, size %zu", sizes[i]);
    buddy_free(p);
  }
  char *huge = buddy_malloc(MEDIUM_SIZE_MAX + 1);
  cr_assert_not_null(huge);
  uintptr_t entry = pagemap_entry(huge);
  cr_assert(entry != 0 && !pagemap_is_region(entry), "a huge block's entry is not a region's");
  cr_assert_eq(pagemap_huge(entry)->base, huge);
  buddy_free(huge);
}

Test(zones, mapping_with_a_prefix_is_aligned_after_it) {
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
  cr_assert_eq(small_map_at(big_small), small_map_bin_number(pagemap_region_of(big_small)->zone_index,
                                                             SIZE_CLASS_COUNT - 1));
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

Test(zones, readonly_reservation_becomes_writable_page_by_page) {
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

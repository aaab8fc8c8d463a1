/* test_buddy.c: unit tests of the page-level buddy core (buddy.c).
 *
 * The core takes its regions from the caller, so these tests give it memory
 * of their own (from the test binary's libc) and check, after every step,
 * the whole-heap invariant walker buddy_heap_verify(). The slabs above it
 * have test_slab.c.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "buddy.h"
#include "test_support.h"

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
    cr_assert_eq(page_owner[r][i], expect, "page %zu of region %u: owner %u, expected %u", i, r, page_owner[r][i],
                 expect);
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

/* Pages of [p, p + bytes) the process has touched (mincore: resident). */
static size_t resident_pages(void *p, size_t bytes) {
  unsigned char vec[REGION_META_SIZE / PAGE_SIZE];
  cr_assert_leq(bytes / PAGE_SIZE, sizeof vec);
  cr_assert_eq(mincore(p, bytes, vec), 0);
  size_t n = 0;
  for (size_t i = 0; i < bytes / PAGE_SIZE; i++) n += vec[i] & 1;
  return n;
}

/* A region just mapped keeps its metadata untouched but for the pages its
 * blocks' descriptors lie in: its descriptors alone are 32 KiB, which every
 * process that allocates would pay for at once if they were cleared. */
Test(buddy_fresh, a_fresh_regions_metadata_is_touched_only_where_used) {
  char *base = os_map_aligned_with_prefix(REGION_META_SIZE, BUDDY_REGION_SIZE, BUDDY_REGION_SIZE);
  cr_assert_not_null(base);
  region_t *r = region_of_address(base);
  buddy_heap_t h;
  buddy_heap_init(&h);
  buddy_heap_add_fresh_region(&h, r, base);
  bool zeroed = false;
  page_desc_t *d = buddy_heap_alloc(&h, 0, &zeroed);
  cr_assert(zeroed, "a fresh region's pages are zeroed");
  /* The header with the first descriptors, and the pages of the splits'
   * buddies' descriptors (one per order, for the region's pages 1, 2, 4,
   * ... 512: 16 KiB of descriptors). No whole-heap walk here: it reads
   * every descriptor. */
  size_t touched = resident_pages(r, REGION_META_SIZE);
  cr_assert_leq(touched, 5, "%zu of %zu metadata pages touched", touched, REGION_META_SIZE / PAGE_SIZE);
  buddy_heap_free(&h, d);
  buddy_heap_remove_region(&h, r);
  os_unmap(r, REGION_META_SIZE + BUDDY_REGION_SIZE);
}

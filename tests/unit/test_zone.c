/* test_zone.c: unit tests of the zone layer (zone.c, run.c, zone_verify.c;
 * the transfer stacks have test_transfer.c), linked to that layer alone and
 * driving the zones through zone.h: objects taken from and given back to a
 * zone's slabs, page runs, regions mapped on demand and given back (trim,
 * purge delay), each region's metadata just below its pages, the small
 * map's bytes kept by the slabs of each zone, misuse, and the debug walk.
 * The same things seen through malloc and free, with the thread caches and
 * the runtime, are in tests/integration/test_zones_heap.c. Each test runs in
 * a process of its own, on zones that start empty. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "zone.h"
#include "heap_util.h"

static void setup(void) {}

static void setup_warnings(void) {
  setup();
  heap_test_warn_on_misuse();
}

TestSuite(zones, .init = setup);
TestSuite(objects, .init = setup);
TestSuite(runs, .init = setup);
TestSuite(zone_misuse, .init = setup_warnings);
TestSuite(zone_fatal, .init = setup);

static void *run_alloc(zone_t *z, unsigned order) {
  bool zeroed = false;
  void *p = zone_alloc_run(z, order, &zeroed);
  cr_assert_not_null(p, "a run of order %u", order);
  return p;
}

static void run_free(void *p) {
  zone_free_run(pagemap_region_of(p), p);
}

/* n objects of class cls from zone z, all of them or the test fails. */
static void objects_alloc(zone_t *z, unsigned cls, void **out, unsigned n) {
  cr_assert_eq(zone_alloc_objects(z, cls, out, n), n, "%u objects of class %u", n, cls);
}

static zone_t *zone_of(const void *p) {
  return region_of_address(p)->zone;
}

static page_desc_t *slab_of(const void *p) {
  region_t *r = pagemap_region_of(p);
  return slab_head_of(r, page_desc_of(r, p));
}

/* ---- Regions mapped on demand and given back ------------------------------ */

enum { ZONE_TEST_BLOCKS = 6 };

/* Maps ZONE_TEST_BLOCKS regions for runs of the largest order (a whole
 * region each), writes them and frees them. */
static void zone_fill_and_free(void **blocks) {
  for (int i = 0; i < ZONE_TEST_BLOCKS; i++) {
    blocks[i] = run_alloc(&zones[0], BUDDY_MAX_ORDER);
    memset(blocks[i], 0x5a, BUDDY_REGION_SIZE);
  }
  cr_assert_eq(heap_test_zone_regions(), ZONE_TEST_BLOCKS, "regions are mapped on demand");
  for (int i = 0; i < ZONE_TEST_BLOCKS; i++) run_free(blocks[i]);
}

Test(zones, free_regions_are_unmapped_by_trim) {
  options.purge_delay_ms = 3600000; /* only the trim may release them */
  void *blocks[ZONE_TEST_BLOCKS];
  zone_fill_and_free(blocks);
  cr_assert_eq(heap_test_zone_regions(), ZONE_TEST_BLOCKS, "kept mapped until the purge is due");
  cr_assert_eq(zones[0].dirty_pages, ZONE_TEST_BLOCKS * BUDDY_REGION_PAGES, "their pages wait for the purge");
  cr_assert_eq(zone_trim_all(), 1);
  cr_assert_eq(heap_test_zone_regions(), 0, "trim unmaps every wholly free region");
  for (int i = 0; i < ZONE_TEST_BLOCKS; i++) cr_assert_eq(pagemap_entry(blocks[i]), 0);
  cr_assert_eq(zone_trim_all(), 0, "a second trim finds nothing to give back");
}

Test(zones, free_regions_are_unmapped_after_the_purge_delay) {
  options.purge_delay_ms = 50;
  void *blocks[ZONE_TEST_BLOCKS];
  zone_fill_and_free(blocks);
  test_sleep_ms(120);
  void *probe = run_alloc(&zones[0], 0); /* a zone's unlock purges what is due */
  /* the reserve, and the region the probe took */
  cr_assert_leq(heap_test_zone_regions(), REGION_RESERVE + 1, "wholly free regions beyond the reserve are unmapped");
  cr_assert_eq(zones[0].dirty_pages, 0);
  run_free(probe);
}

/* A zone no thread calls into any more: the runtime's round (the background
 * thread's) purges it. */
Test(zones, the_purge_round_purges_an_idle_zone) {
  options.purge_delay_ms = 300; /* long enough that the first round is early even on a busy machine */
  void *blocks[ZONE_TEST_BLOCKS];
  zone_fill_and_free(blocks);
  zone_purge_due();
  cr_assert_eq(heap_test_zone_regions(), ZONE_TEST_BLOCKS, "not yet due");
  test_sleep_ms(400);
  zone_purge_due();
  cr_assert_eq(heap_test_zone_regions(), REGION_RESERVE);
  cr_assert_eq(zones[0].dirty_pages, 0);
  cr_assert_geq(zones[0].purged_pages, (ZONE_TEST_BLOCKS - REGION_RESERVE) * BUDDY_REGION_PAGES);
}

/* A purge makes the pages it gave back known zero: calloc relies on it. A
 * block freed and not purged is not. */
Test(zones, a_purged_block_comes_back_known_zero) {
  options.purge_delay_ms = 0; /* a free is purged as its zone's lock is released */
  enum { ORDER = 3 };
  const size_t bytes = PAGE_SIZE << ORDER;
  bool zeroed = false;
  unsigned char *p = zone_alloc_run(&zones[0], ORDER, &zeroed);
  cr_assert(zeroed, "fresh from the OS");
  memset(p, 0xab, bytes);
  run_free(p);
  cr_assert_eq(zones[0].dirty_pages, 0, "purged");
  unsigned char *q = zone_alloc_run(&zones[0], ORDER, &zeroed);
  cr_assert_eq(q, p);
  cr_assert(zeroed, "its pages were purged");
  cr_assert_eq(test_first_nonzero(q, bytes), bytes);
  /* The purge is due an hour after this free: none comes. */
  options.purge_delay_ms = 3600000;
  memset(q, 0xcd, bytes);
  run_free(q);
  unsigned char *r = zone_alloc_run(&zones[0], ORDER, &zeroed);
  cr_assert_eq(r, p);
  cr_assert_not(zeroed, "it held data, and no purge came");
  run_free(r);
}

Test(zones, foreign_pointers_are_not_in_the_page_map) {
  static char static_buffer[64];
  int on_stack;
  cr_assert_eq(pagemap_entry(static_buffer), 0);
  cr_assert_eq(pagemap_entry(&on_stack), 0);
  cr_assert_eq(pagemap_entry((void *)(uintptr_t)0xffff800000001000ull), 0);
  void *mine;
  objects_alloc(&zones[0], size_class_of(100), &mine, 1);
  cr_assert(pagemap_is_region(pagemap_entry(mine)));
  zone_free_objects(&mine, 1);
}

Test(zones, threads_are_spread_over_the_zones_in_use) {
  options.zones = 3;
  for (unsigned i = 0; i < 9; i++) cr_assert_eq(zone_for_new_thread(), &zones[i % 3], "thread %u", i);
}

/* ---- Region metadata and the small map, which free's fast path reads ----- */

/* Every block a zone hands out, of any kind, finds its region by address:
 * the metadata lies just below the region's pages. */
Test(zones, region_metadata_lies_just_below_its_pages) {
  const size_t sizes[] = {1, 16, 1000, SMALL_SIZE_MAX};
  const unsigned orders[] = {0, 5, BUDDY_MAX_ORDER};
  void *blocks[4 + 3];
  size_t lengths[4 + 3];
  unsigned classes[4 + 3];
  zone_t *z = &zones[1];
  for (int i = 0; i < 4; i++) {
    classes[i] = size_class_of(sizes[i]);
    objects_alloc(z, classes[i], &blocks[i], 1);
    lengths[i] = size_class_bytes[classes[i]];
  }
  for (int i = 0; i < 3; i++) {
    classes[4 + i] = 0;
    blocks[4 + i] = run_alloc(z, orders[i]);
    lengths[4 + i] = PAGE_SIZE << orders[i];
  }
  for (int i = 0; i < 4 + 3; i++) {
    char *p = blocks[i];
    uintptr_t entry = pagemap_entry(p);
    cr_assert(pagemap_is_region(entry), "block %d", i);
    region_t *r = pagemap_region(entry);
    cr_assert_eq(region_of_address(p), r, "block %d", i);
    cr_assert_eq(region_of_address(p + lengths[i] - 1), r, "block %d: last byte", i);
    cr_assert_eq(region_of_address(r->base), r);
    cr_assert_eq(region_of_address(r->base + BUDDY_REGION_SIZE - 1), r);
    cr_assert_eq((uintptr_t)r->base & (BUDDY_REGION_SIZE - 1), 0);
    cr_assert_eq(r->zone, z);
    cr_assert_eq(r->zone_index, 1);
    cr_assert_eq(page_class_at(r, p), classes[i], "block %d", i);
    cr_assert_eq(small_map_at(p), classes[i] == 0 ? 0 : small_map_bin_number(1, classes[i]), "free's bin, block %d", i);
  }
  zone_free_objects(blocks, 4);
  for (int i = 0; i < 3; i++) run_free(blocks[4 + i]);
  zone_verify_all();
}

/* The small map, free's fast test: each slab page holds its bin (zone and
 * class), every other address 0; below its bytes, each bin's object-start
 * fields are its class's. */
Test(zones, small_map_marks_slab_pages_only) {
  static char static_buffer[64];
  int on_stack;
  unsigned c64 = size_class_of(64), largest = SIZE_CLASS_COUNT - 1;
  void *objs[3];
  objects_alloc(&zones[0], c64, &objs[0], 1);
  objects_alloc(&zones[2], c64, &objs[1], 1);
  objects_alloc(&zones[0], largest, &objs[2], 1);
  char *small = objs[0], *other_zone = objs[1], *big_small = objs[2];
  char *run = run_alloc(&zones[0], 3);
  cr_assert_neq(small_map.leaf_offset[(uintptr_t)small >> SMALL_MAP_LEAF_SPAN_BITS], 0, "a leaf with the region");
  cr_assert_eq(small_map_at((void *)(uintptr_t)-1), 0, "past the map");
  cr_assert_eq(small_map_at((void *)((uintptr_t)1 << SMALL_MAP_ADDRESS_BITS)), 0, "just past the map");
  cr_assert_eq(small_map_at((void *)(uintptr_t)0xffff800000001000ull), 0, "a kernel address");
  cr_assert_eq(small_map_at(small), small_map_bin_number(0, c64));
  cr_assert_eq(small_map_at(other_zone), small_map_bin_number(2, c64), "another zone's bin");
  for (size_t off = 0; off < PAGE_SIZE << size_class_slab_order[largest]; off += PAGE_SIZE)
    cr_assert_eq(small_map_at(big_small + off), small_map_bin_number(0, largest), "every page of a slab");
  cr_assert_eq(small_map_at(static_buffer), 0);
  cr_assert_eq(small_map_at(&on_stack), 0);
  cr_assert_eq(small_map_at(NULL), 0);
  cr_assert_eq(small_map_at(run), 0, "a run");
  const small_map_info_t *info = &small_map.info;
  for (unsigned b = 0; b < 256; b++) {
    unsigned c = b % SIZE_CLASS_COUNT;
    bool real = b < TCACHE_BINS && c != 0;
    cr_assert_eq(info->limit[b], real ? size_class_info[c].limit : 0, "bin %u", b);
    cr_assert_eq(info->magic[b], real ? size_class_info[c].magic : 0, "bin %u", b);
    cr_assert_eq(info->slab_mask[b], real ? size_class_info[c].slab_mask : 0, "bin %u", b);
  }
  zone_free_objects(objs, 3);
  run_free(run);
}

/* A slab's pages lose their bytes when it goes back to the core, so a
 * region is all zeros when it is unmapped. */
Test(zones, small_map_bytes_are_cleared_with_their_slabs) {
  options.purge_delay_ms = 3600000;
  enum { N = 600, CLASSES = 6 };
  static void *blocks[N];
  const size_t sizes[CLASSES] = {100, 2000, 3000, 6000, 7000, 8000};
  for (int k = 0; k < CLASSES; k++)
    objects_alloc(&zones[0], size_class_of(sizes[k]), blocks + k * N / CLASSES, N / CLASSES);
  for (int i = 0; i < N; i++) cr_assert_neq(small_map_at(blocks[i]), 0, "block %d", i);
  char *bases[8];
  size_t regions = 0;
  for (region_t *r = zones[0].heap.region_list; r != NULL; r = r->next) bases[regions++] = r->base;
  zone_free_objects(blocks, N);
  cr_assert_eq(zone_trim_all(), 1);
  cr_assert_eq(heap_test_zone_regions(), 0);
  for (int i = 0; i < N; i++) cr_assert_eq(small_map_at(blocks[i]), 0, "block %d", i);
  for (size_t i = 0; i < regions; i++) cr_assert(small_map_region_clear(bases[i]), "region %zu", i);
}

/* ---- Objects --------------------------------------------------------------- */

/* Every class: objects from a zone are distinct object starts of slabs of
 * that class in that zone, holding the key; given back, they are free in
 * their slabs, and the walk finds every structure intact. */
Test(objects, each_class_comes_from_its_slabs_and_goes_back) {
  enum { MAX = 600 };
  static void *out[MAX];
  zone_t *z = &zones[0];
  for (unsigned cls = 1; cls < SIZE_CLASS_COUNT; cls++) {
    unsigned n = 2 * size_class_slab_count[cls] + 1; /* three slabs */
    if (n > MAX) n = MAX;
    objects_alloc(z, cls, out, n);
    for (unsigned i = 0; i < n; i++) {
      region_t *r = pagemap_region_of(out[i]);
      cr_assert_not_null(r);
      cr_assert_eq(r->zone, z);
      cr_assert_eq(page_class_at(r, out[i]), cls);
      cr_assert(size_class_is_object(cls, out[i]), "class %u: object %u", cls, i);
      cr_assert_eq(((void **)out[i])[1], (void *)FREE_KEY);
      cr_assert(!free_in_slab(out[i]));
      cr_assert_not(pointers_hold(out, i, out[i]), "class %u: object %u handed out twice", cls, i);
    }
    zone_verify_all();
    zone_free_objects(out, n);
    for (unsigned i = 0; i < n; i++) {
      region_t *r = pagemap_region_of(out[i]);
      page_desc_t *d = page_desc_of(r, out[i]);
      cr_assert(d->kind != PAGE_SLAB || free_in_slab(out[i]), "class %u: object %u is back", cls, i);
    }
    zone_verify_all();
  }
}

/* A slab all of whose objects are out is on no list; a give puts it back on
 * its class's partial list, and its last one moves it to the reserve. */
Test(objects, slabs_move_between_the_lists_as_objects_come_and_go) {
  zone_t *z = &zones[0];
  unsigned cls = size_class_of(256), count = size_class_slab_count[cls];
  void *out[64];
  cr_assert_leq(count, 64);
  objects_alloc(z, cls, out, count);
  slab_list_t *s = &z->slabs[cls];
  page_desc_t *head = slab_of(out[0]);
  cr_assert_eq(head->slab_used, count);
  cr_assert_eq(s->partial.next, &s->partial, "a full slab is on no list");
  zone_free_objects(out, 1);
  cr_assert_eq(s->partial.next, head, "partial again");
  cr_assert_eq(head->slab_used, count - 1);
  zone_free_objects(out + 1, count - 1);
  cr_assert_eq(s->partial.next, &s->partial);
  cr_assert_eq(s->empty.next, head, "an empty slab waits in the reserve");
  cr_assert_eq(s->empty_count, 1);
  cr_assert_eq(z->empty_slab_bytes, PAGE_SIZE << size_class_slab_order[cls]);
  objects_alloc(z, cls, out, 1);
  cr_assert_eq(slab_of(out[0]), head, "the reserve serves the next request");
  cr_assert_eq(s->empty_count, 0);
  cr_assert_eq(z->empty_slab_bytes, 0);
  zone_verify_all();
}

/* The reserve keeps at least SLAB_EMPTY_RESERVE empty slabs of a class, and
 * more only while the zone's reserve stays within ZONE_EMPTY_SLAB_BYTES; a
 * trim gives it all back. */
Test(objects, the_empty_slab_reserve_is_bounded_and_a_trim_empties_it) {
  options.purge_delay_ms = 3600000;
  zone_t *z = &zones[0];
  unsigned cls = SIZE_CLASS_COUNT - 1, count = size_class_slab_count[cls];
  size_t slab = PAGE_SIZE << size_class_slab_order[cls], slabs = 2 * ZONE_EMPTY_SLAB_BYTES / slab;
  static void *out[1024];
  cr_assert_leq(slabs * count, 1024);
  objects_alloc(z, cls, out, (unsigned)(slabs * count));
  zone_free_objects(out, (unsigned)(slabs * count));
  cr_assert_geq(z->slabs[cls].empty_count, SLAB_EMPTY_RESERVE);
  cr_assert_leq(z->empty_slab_bytes, ZONE_EMPTY_SLAB_BYTES);
  cr_assert_eq(z->empty_slab_bytes, z->slabs[cls].empty_count * slab);
  cr_assert_lt(z->slabs[cls].empty_count, slabs, "the rest went back to the core");
  zone_verify_all();
  cr_assert_eq(zone_trim_all(), 1);
  cr_assert_eq(z->slabs[cls].empty_count, 0);
  cr_assert_eq(z->empty_slab_bytes, 0);
  cr_assert_eq(heap_test_zone_regions(), 0);
}

/* Whether the process may read the byte at p: write(2) from it to a pipe
 * fails with EFAULT where it may not (no signal). */
static bool readable(const void *p) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  bool ok = write(fds[1], p, 1) == 1;
  cr_assert(ok || errno == EFAULT);
  close(fds[0]);
  close(fds[1]);
  return ok;
}

/* Secure mode: every slab has a guard page just past its end, inaccessible
 * and of the allocator's own; emptied and given back, the slab takes its
 * guard with it and the region comes back whole. */
Test(objects, secure_slabs_have_a_guard_page_past_their_end) {
  options.secure = 1;
  options.purge_delay_ms = 3600000;
  zone_t *z = &zones[0];
  static const unsigned classes[] = {1, SIZE_CLASS_FOR_64, SIZE_CLASS_FOR_2048, SIZE_CLASS_COUNT - 1};
  static void *out[4][300];
  for (unsigned i = 0; i < 4; i++) {
    unsigned cls = classes[i], n = size_class_slab_count[cls] + 1; /* two slabs */
    cr_assert_leq(n, 300);
    objects_alloc(z, cls, out[i], n);
    for (unsigned j = 0; j < n; j++) {
      page_desc_t *slab = slab_of(out[i][j]);
      char *end = (char *)page_address_of(slab) + (PAGE_SIZE << slab->order);
      region_t *r = pagemap_region_of(out[i][j]);
      page_desc_t *guard = page_desc_of(r, end);
      cr_assert_eq(guard->kind, PAGE_RUN, "class %u: a run past the slab", cls);
      cr_assert_eq(guard->order, 0, "one page");
      cr_assert_eq(guard->flags, PAGE_META | PAGE_GUARD, "the allocator's own guard");
      cr_assert(readable(end - 1), "the slab's last byte may be read");
      cr_assert_not(readable(end), "class %u: the guard page may not", cls);
    }
  }
  zone_verify_all();
  for (unsigned i = 0; i < 4; i++) zone_free_objects(out[i], size_class_slab_count[classes[i]] + 1);
  cr_assert_eq(zone_trim_all(), 1);
  cr_assert_eq(heap_test_zone_regions(), 0, "guards and slabs went back: the region was whole again");
}

/* Objects of several zones and classes in one call each go home. */
Test(objects, a_mixed_batch_goes_to_each_objects_zone) {
  enum { PER = 40 };
  void *out[3 * 2 * PER];
  unsigned n = 0;
  for (unsigned zi = 0; zi < 3; zi++) {
    objects_alloc(&zones[zi], size_class_of(48), out + n, PER);
    n += PER;
    objects_alloc(&zones[zi], size_class_of(700), out + n, PER);
    n += PER;
  }
  void *mixed[3 * 2 * PER];
  memcpy(mixed, out, sizeof out);
  test_rng rng = test_rng_seeded(42);
  for (unsigned i = n; i > 1; i--) {
    unsigned j = (unsigned)test_rng_below(&rng, i);
    void *t = mixed[i - 1];
    mixed[i - 1] = mixed[j];
    mixed[j] = t;
  }
  zone_free_objects(mixed, n);
  for (unsigned i = 0; i < n; i++) {
    cr_assert_eq(zone_of(out[i]), &zones[i / (2 * PER)]);
    cr_assert(free_in_slab(out[i]), "object %u", i);
  }
  zone_verify_all();
}

/* One object at a time: zone_free_object (its region and page known) and
 * zone_free_small (its address alone); zone_holds_free_object says which
 * are free. */
Test(objects, single_objects_go_back_and_are_seen_free) {
  unsigned cls = size_class_of(160);
  void *out[3];
  objects_alloc(&zones[0], cls, out, 3);
  region_t *r = pagemap_region_of(out[0]);
  cr_assert_not(zone_holds_free_object(r, out[0]));
  zone_free_object(r, page_desc_of(r, out[0]), out[0]);
  zone_free_small(out[1]);
  cr_assert(zone_holds_free_object(r, out[0]));
  cr_assert(zone_holds_free_object(r, out[1]));
  cr_assert_not(zone_holds_free_object(r, out[2]));
  char *run = run_alloc(&zones[0], 0);
  cr_assert_not(zone_holds_free_object(pagemap_region_of(run), run), "a run holds no objects");
  zone_verify_all();
}

/* ---- Page runs ------------------------------------------------------------- */

Test(runs, every_order_is_a_run_aligned_to_its_size) {
  zone_t *z = &zones[0];
  uint64_t requests = zone_run_requests;
  void *runs[BUDDY_ORDERS];
  for (unsigned k = 0; k <= BUDDY_MAX_ORDER; k++) {
    bool zeroed = false;
    char *p = runs[k] = zone_alloc_run(z, k, &zeroed);
    cr_assert_not_null(p);
    cr_assert(zeroed, "order %u: fresh pages", k);
    cr_assert_eq((uintptr_t)p & ((PAGE_SIZE << k) - 1), 0, "order %u", k);
    region_t *r = pagemap_region_of(p);
    page_desc_t *d = page_desc_of(r, p);
    cr_assert_eq(d->kind, PAGE_RUN);
    cr_assert_eq(d->order, k);
    cr_assert_eq(d->flags & PAGE_META, 0);
    cr_assert_eq(page_class_at(r, p), 0);
    memset(p, 1, PAGE_SIZE << k);
  }
  cr_assert_eq(zone_run_requests - requests, BUDDY_ORDERS, "each run counted");
  zone_verify_all();
  for (unsigned k = 0; k <= BUDDY_MAX_ORDER; k++) run_free(runs[k]);
  zone_lock(z);
  cr_assert_eq(z->heap.pages_used, 0);
  zone_unlock(z);
  zone_verify_all();
}

Test(runs, a_run_grows_and_shrinks_in_place) {
  options.purge_delay_ms = 3600000;
  zone_t *z = &zones[0];
  char *p = run_alloc(z, 2);
  region_t *r = pagemap_region_of(p);
  page_desc_t *d = page_desc_of(r, p);
  cr_assert(zone_grow_run(r, p, 4), "its upper buddies are free");
  cr_assert_eq(d->order, 4);
  char *next = run_alloc(z, 4); /* the buddy of order 4 */
  cr_assert_eq(next, p + (PAGE_SIZE << 4));
  cr_assert_not(zone_grow_run(r, p, 5), "blocked by a used buddy");
  cr_assert_eq(d->order, 4);
  size_t dirty = z->dirty_pages;
  zone_shrink_run(r, p, 1);
  cr_assert_eq(d->order, 1);
  cr_assert_eq(z->dirty_pages - dirty, 16 - 2, "the pages shrunk away wait for the purge");
  zone_verify_all();
  run_free(p);
  run_free(next);
}

/* A run of the allocator's own (a thread's cache): flagged, not counted
 * among the program's runs, not the program's to free. */
Test(runs, a_meta_run_is_flagged_and_freed_apart) {
  uint64_t requests = zone_run_requests;
  bool zeroed = false;
  char *meta = zone_alloc_meta_run(&zones[0], 2, &zeroed);
  cr_assert_not_null(meta);
  region_t *r = pagemap_region_of(meta);
  cr_assert_eq(page_desc_of(r, meta)->kind, PAGE_RUN);
  cr_assert_eq(page_desc_of(r, meta)->flags & PAGE_META, PAGE_META);
  cr_assert_eq(zone_run_requests, requests);
  zone_free_meta_run(meta);
  cr_assert_eq(page_desc_of(r, meta)->kind, PAGE_FREE);
  zone_verify_all();
}

/* ---- Misuse: reported, and the block left alone ---------------------------- */

Test(zone_misuse, runs_refuse_what_is_not_a_run_of_the_program) {
  zone_t *z = &zones[0];
  char *p = run_alloc(z, 2), *freed = run_alloc(z, 0);
  bool zeroed;
  char *meta = zone_alloc_meta_run(z, 0, &zeroed);
  void *obj;
  objects_alloc(z, size_class_of(64), &obj, 1);
  char *slab_start = page_address_of(slab_of(obj));
  run_free(freed);
  region_t *r = pagemap_region_of(p);
  run_free(p + PAGE_SIZE);
  run_free(p + 64);
  run_free(freed);
  zone_free_run(r, meta);
  zone_free_run(r, slab_start);
  cr_assert_not(zone_grow_run(r, meta, 1));
  zone_shrink_run(r, p + PAGE_SIZE, 0);
  cr_assert_eq(page_desc_of(r, p)->order, 2, "the run is left alone");
  cr_assert_eq(page_desc_of(r, meta)->kind, PAGE_RUN, "so is the allocator's own");
  cr_assert_eq(page_desc_of(r, slab_start)->kind, PAGE_SLAB, "and the slab");
  zone_verify_all();
  const char *text = redirected_stderr();
  const char *expected[] = {"free of a pointer inside a block (not its start)",
                            "free of a pointer that is not a block's start", "double free: block is already free",
                            "free of a pointer buddymalloc does not own"};
  for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
    cr_assert_not_null(strstr(text, expected[i]), "'%s' missing from:\n%s", expected[i], text);
  cr_assert_null(strstr(text, "error:"), "nothing was fatal:\n%s", text);
  run_free(p);
  zone_free_meta_run(meta);
}

/* An object that comes back from a cache holds the key; one without it was
 * written after its free, or handed out again since (freed twice): it is
 * reported and left alone. One free in its slab is a double free. */
Test(zone_misuse, objects_coming_back_wrong_are_refused) {
  unsigned cls = size_class_of(64);
  void *out[3];
  objects_alloc(&zones[0], cls, out, 3);
  page_desc_t *head = slab_of(out[0]);
  ((void **)out[0])[1] = NULL; /* the key wiped */
  zone_free_objects(out, 1);
  cr_assert(!free_in_slab(out[0]), "left alone");
  cr_assert_eq(head->slab_used, 3);
  zone_free_objects(out + 1, 1);
  zone_free_objects(out + 1, 1); /* free in its slab, key intact */
  cr_assert_eq(head->slab_used, 2, "given back once");
  zone_free_small((char *)out[2] + 16);
  cr_assert_eq(head->slab_used, 2);
  zone_verify_all();
  const char *text = redirected_stderr();
  const char *expected[] = {"double free of a small block (or a write to it after its free)",
                            "double free of a small block (address", "free of a pointer inside a small block"};
  for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
    cr_assert_not_null(strstr(text, expected[i]), "'%s' missing from:\n%s", expected[i], text);
}

Test(zone_fatal, a_double_free_reaching_the_slab_aborts, .signal = SIGABRT) {
  void *p;
  objects_alloc(&zones[0], size_class_of(48), &p, 1);
  zone_free_objects(&p, 1);
  zone_free_objects(&p, 1);
}

Test(zone_fatal, a_double_free_of_a_run_aborts, .signal = SIGABRT) {
  void *p = run_alloc(&zones[0], 1);
  run_free(p);
  run_free(p);
}

/* ---- The debug walk ---------------------------------------------------------- */

Test(zones, the_walk_counts_the_regions_mapped) {
  cr_assert_eq(zone_verify_all(), 0);
  void *a = run_alloc(&zones[0], BUDDY_MAX_ORDER), *b = run_alloc(&zones[3], BUDDY_MAX_ORDER);
  cr_assert_eq(zone_verify_all(), 2);
  run_free(a);
  run_free(b);
}

Test(zone_fatal, the_walk_catches_a_slab_whose_bits_disagree, .signal = SIGABRT) {
  void *out[2];
  objects_alloc(&zones[0], size_class_of(64), out, 2);
  slab_of(out[0])->slab_used--;
  zone_verify_all();
}

Test(zone_fatal, the_walk_catches_a_wrong_reserve_count, .signal = SIGABRT) {
  void *p;
  objects_alloc(&zones[0], size_class_of(64), &p, 1);
  zone_free_objects(&p, 1); /* its slab goes to the reserve */
  zones[0].slabs[size_class_of(64)].empty_count++;
  zone_verify_all();
}

Test(zone_fatal, the_walk_catches_a_used_slab_in_the_reserve, .signal = SIGABRT) {
  void *p[2];
  objects_alloc(&zones[0], size_class_of(64), p, 2);
  zone_free_objects(p, 2);
  objects_alloc(&zones[0], size_class_of(64), p, 1); /* out of the reserve */
  page_desc_t *head = slab_of(p[0]);
  zone_t *z = &zones[0];
  slab_list_t *s = &z->slabs[size_class_of(64)];
  /* Forged: back on the reserve list while an object is out. */
  head->prev->next = head->next;
  head->next->prev = head->prev;
  head->next = s->empty.next;
  head->prev = &s->empty;
  s->empty.next->prev = head;
  s->empty.next = head;
  s->empty_count++;
  z->empty_slab_bytes += PAGE_SIZE;
  zone_verify_all();
}

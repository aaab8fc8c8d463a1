/* test_slab.c: unit tests of the slab layer (slab.c, slab.h): a buddy block
 * carved into objects of one class, with a free bit per object.
 *
 * Linked to the slab layer alone. A test maps a region as a zone does (its
 * metadata just below its pages, zeroed: the free bits must start clear, and
 * the buddy core does not clear them), carves slabs from it with the buddy
 * core, and checks slab_verify after its steps. Nothing here takes a zone
 * lock: the slab functions expect their caller to hold one, and a test is
 * one thread. What the API shows of the same checks (a double free that
 * reaches a slab, a free of an object never handed out, the free bits after
 * frees) stays in tests/integration/test_heap.c (review, misuse). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <signal.h>
#include <string.h>

#include "slab.h"
#include "heap_util.h"

static buddy_heap_t heap;
static region_t *region;

static void setup(void) {
  char *base = os_map_aligned_with_prefix(REGION_META_SIZE, BUDDY_REGION_SIZE, BUDDY_REGION_SIZE);
  cr_assert_not_null(base);
  region = region_of_address(base);
  buddy_heap_init(&heap);
  buddy_heap_add_region(&heap, region, base, true);
}

static void teardown(void) {
  os_unmap(region, REGION_META_SIZE + BUDDY_REGION_SIZE);
}

/* Misuse warns instead of aborting, into a stderr the test reads back. */
static void setup_warnings(void) {
  setup();
  heap_test_warn_on_misuse();
}

TestSuite(slab, .init = setup, .fini = teardown);
TestSuite(slab_misuse, .init = setup_warnings, .fini = teardown);
TestSuite(slab_fatal, .init = setup, .fini = teardown);

static size_t slab_bytes(unsigned cls) {
  return PAGE_SIZE << size_class_slab_order[cls];
}

/* A new slab of class cls, carved from the heap as a zone carves one. */
static page_desc_t *slab_new(unsigned cls) {
  page_desc_t *head = buddy_heap_alloc(&heap, size_class_slab_order[cls], NULL);
  cr_assert_not_null(head, "class %u", cls);
  slab_init(head, cls);
  return head;
}

/* Gives an empty slab's block back to the core, as a zone does (zone.c:
 * zone_release_slab_locked): its pages untyped, its free bits cleared. */
static void slab_release(page_desc_t *head) {
  for (size_t i = 0; i < ((size_t)1 << head->order); i++) head[i].kind = PAGE_INNER;
  page_class_set(head, (size_t)1 << head->order, 0);
  slab_clear_free_bits(head);
  head->kind = PAGE_USED;
  buddy_heap_free(&heap, head);
}

/* The free bits set in the slab's bitmap words. */
static size_t free_bits(const page_desc_t *head) {
  const uint64_t *words = slab_free_words(head);
  size_t n = 0;
  for (size_t w = 0; w < slab_free_word_count(head); w++) n += (size_t)__builtin_popcountll(words[w]);
  return n;
}

/* The index of obj among its slab's objects, after checking that slab_take
 * may have handed it out: an object start of the class within the slab,
 * before its unused tail, aligned as its offset makes it, holding the key,
 * not free in the slab, and found back from its address alone. */
static size_t check_taken(page_desc_t *head, unsigned cls, void *obj) {
  const char *start = page_address_of(head);
  size_t bytes = size_class_bytes[cls], offset = (size_t)((char *)obj - start);
  cr_assert((char *)obj >= start && offset + bytes <= slab_bytes(cls), "class %u: %p outside its slab", cls, obj);
  cr_assert_eq(offset % bytes, 0, "class %u: offset %zu is not an object start", cls, offset);
  cr_assert_lt(offset / bytes, size_class_slab_count[cls], "class %u: in the slab's tail", cls);
  cr_assert(size_class_is_object_start(cls, offset));
  /* The slab is aligned to its size: the object to its bytes' lowest bit. */
  size_t align = bytes & (~bytes + 1);
  cr_assert_eq((uintptr_t)obj % (align > SMALL_ALIGN ? align : SMALL_ALIGN), 0, "class %u: %p", cls, obj);
  cr_assert_eq(((void **)obj)[1], (void *)FREE_KEY, "class %u: handed out with the key", cls);
  cr_assert(!slab_holds_free(head, obj));
  cr_assert_eq(slab_head_at(region, obj, cls), head);
  cr_assert_eq(slab_head_of(region, page_desc_of(region, obj)), head);
  cr_assert_eq(slab_offset_of(head, obj), offset);
  return offset / bytes;
}

/* Shuffles objs[0..n) with a generator of the given seed. */
static void shuffle(void **objs, size_t n, uint64_t seed) {
  test_rng rng = test_rng_seeded(seed);
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)test_rng_below(&rng, i);
    void *t = objs[i - 1];
    objs[i - 1] = objs[j];
    objs[j] = t;
  }
}

/* Room for every object of any slab (16-byte objects on a page: 256). */
#define OBJECTS_MAX 4096
static void *objs[OBJECTS_MAX], *again[OBJECTS_MAX];

/* ---- A slab, fresh ---------------------------------------------------------- */

Test(slab, init_types_every_page_of_the_slab) {
  static const unsigned classes[] = {SIZE_CLASS_FOR_16, SIZE_CLASS_FOR_640, SIZE_CLASS_FOR_7168, SIZE_CLASS_FOR_28672};
  for (size_t k = 0; k < sizeof classes / sizeof classes[0]; k++) {
    unsigned cls = classes[k], order = size_class_slab_order[cls];
    page_desc_t *head = slab_new(cls);
    char *start = page_address_of(head);
    cr_assert_eq((uintptr_t)start & (slab_bytes(cls) - 1), 0, "aligned to its size");
    for (size_t i = 0; i < ((size_t)1 << order); i++) {
      cr_assert_eq(head[i].kind, PAGE_SLAB, "class %u, page %zu", cls, i);
      cr_assert_eq(head[i].order, order);
      cr_assert_eq(page_class_at(region, start + i * PAGE_SIZE), cls);
      cr_assert_eq(page_class_of_desc(&head[i]), cls);
      cr_assert_eq(slab_head_of(region, &head[i]), head);
    }
    cr_assert_eq(head->slab_used, 0);
    cr_assert_eq(head->slab_carved, 0);
    cr_assert_eq(head->slab_scan, 0);
    cr_assert_eq(free_bits(head), 0);
    cr_assert_eq(slab_free_objects(head, cls), size_class_slab_count[cls]);
    cr_assert_eq(slab_free_word_count(head), slab_bytes(cls) / SMALL_ALIGN / 64);
    slab_verify(head);
    slab_release(head);
  }
  cr_assert_eq(buddy_heap_verify(&heap), BUDDY_REGION_PAGES, "every slab went back whole");
}

/* A fresh slab carves its objects as they are taken: the rest of it is never
 * written (a fresh slab costs no writes), and an object given back is taken
 * again before any new one is carved. */
Test(slab, a_fresh_slab_is_carved_as_it_is_taken) {
  unsigned cls = SIZE_CLASS_FOR_48;
  page_desc_t *head = slab_new(cls);
  char *start = page_address_of(head);
  cr_assert_eq(slab_take(head, page_class_of_desc(head), objs, 1), 1);
  cr_assert_eq(objs[0], (void *)start, "the first object is the slab's start");
  cr_assert_eq(head->slab_carved, 1);
  cr_assert_eq(slab_take(head, page_class_of_desc(head), objs + 1, 5), 5);
  cr_assert_eq(head->slab_carved, 6);
  cr_assert_eq(head->slab_used, 6);
  for (int i = 0; i < 6; i++) cr_assert_eq(objs[i], (void *)(start + (size_t)i * 48));
  cr_assert_eq(test_first_nonzero(start + 6 * 48, PAGE_SIZE - 6 * 48), PAGE_SIZE - 6 * 48, "the rest is untouched");
  cr_assert(slab_give(region_of_desc(head), head, objs[2], cls));
  cr_assert_eq(slab_take(head, page_class_of_desc(head), again, 1), 1);
  cr_assert_eq(again[0], objs[2], "a free object before a new one");
  cr_assert_eq(head->slab_carved, 6);
  slab_verify(head);
}

/* Every class: all of a slab's objects, taken in batches of growing size,
 * are distinct object starts; given back in any order, they restore the
 * slab's counts and bits, and are taken again, lowest address first. */
Test(slab, every_class_hands_out_each_object_once_and_takes_it_back) {
  static bool seen[OBJECTS_MAX];
  for (unsigned cls = 1; cls < SIZE_CLASS_COUNT; cls++) {
    unsigned count = size_class_slab_count[cls];
    cr_assert_leq(count, OBJECTS_MAX);
    page_desc_t *head = slab_new(cls);
    memset(seen, 0, sizeof seen);
    unsigned taken = 0;
    for (unsigned batch = 1; taken < count; batch++) {
      unsigned got = slab_take(head, page_class_of_desc(head), objs + taken, batch);
      cr_assert_eq(got, batch < count - taken ? batch : count - taken, "class %u", cls);
      for (unsigned i = taken; i < taken + got; i++) {
        size_t index = check_taken(head, cls, objs[i]);
        cr_assert(!seen[index], "class %u: object %zu handed out twice", cls, index);
        seen[index] = true;
      }
      taken += got;
      cr_assert_eq(head->slab_used, taken);
      slab_verify(head);
    }
    cr_assert_eq(slab_take(head, page_class_of_desc(head), again, 1), 0, "class %u: a full slab hands out nothing",
                 cls);
    cr_assert_eq(slab_free_objects(head, cls), 0);
    shuffle(objs, count, cls);
    for (unsigned i = 0; i < count; i++) {
      cr_assert_null(slab_check_give(head, objs[i], cls));
      cr_assert(slab_give(region_of_desc(head), head, objs[i], cls));
      cr_assert(slab_holds_free(head, objs[i]));
      cr_assert_eq(((void **)objs[i])[1], (void *)FREE_KEY, "a free object holds the key");
      cr_assert_eq(head->slab_used, count - 1 - i);
      cr_assert_eq(free_bits(head), i + 1);
    }
    slab_verify(head);
    cr_assert_eq(slab_free_objects(head, cls), count);
    cr_assert_eq(slab_take(head, page_class_of_desc(head), again, count), count);
    for (unsigned i = 0; i < count; i++) {
      cr_assert_eq(check_taken(head, cls, again[i]), i, "class %u: lowest address first", cls);
    }
    cr_assert_eq(free_bits(head), 0);
    for (unsigned i = 0; i < count; i++) cr_assert(slab_give(region_of_desc(head), head, again[i], cls));
    slab_verify(head);
    slab_release(head);
  }
  cr_assert_eq(buddy_heap_verify(&heap), BUDDY_REGION_PAGES);
}

/* Part of a slab given back: its bits are set for exactly those objects, and
 * a take hands out exactly those, lowest address first. Classes with several
 * objects to a bitmap word, and classes whose objects span words (the
 * strided walk, slab.c). */
Test(slab, the_free_bits_are_the_objects_given_back) {
  static const unsigned classes[] = {SIZE_CLASS_FOR_16,   SIZE_CLASS_FOR_96,    SIZE_CLASS_FOR_1024,
                                     SIZE_CLASS_FOR_2048, SIZE_CLASS_FOR_10240, SIZE_CLASS_FOR_32768};
  for (size_t k = 0; k < sizeof classes / sizeof classes[0]; k++) {
    unsigned cls = classes[k], count = size_class_slab_count[cls];
    page_desc_t *head = slab_new(cls);
    cr_assert_eq(slab_take(head, page_class_of_desc(head), objs, count), count);
    unsigned given = 0;
    for (unsigned i = 1; i < count; i += 2, given++) cr_assert(slab_give(region_of_desc(head), head, objs[i], cls));
    for (unsigned i = 0; i < count; i++)
      cr_assert_eq(slab_holds_free(head, objs[i]), i % 2 == 1, "class %u, object %u", cls, i);
    cr_assert_eq(free_bits(head), given);
    cr_assert_eq(head->slab_used, count - given);
    cr_assert_eq(slab_free_objects(head, cls), given);
    slab_verify(head);
    /* A take of one more than is free hands out only the free ones. */
    cr_assert_eq(slab_take(head, page_class_of_desc(head), again, given + 1), given, "class %u", cls);
    for (unsigned i = 0; i < given; i++) cr_assert_eq(again[i], objs[2 * i + 1], "class %u, object %u", cls, i);
    cr_assert_eq(free_bits(head), 0);
    cr_assert_eq(head->slab_used, count);
    slab_verify(head);
    for (unsigned i = 0; i < count; i++) cr_assert(slab_give(region_of_desc(head), head, objs[i], cls));
    cr_assert_eq(head->slab_used, 0);
    slab_verify(head);
    slab_release(head);
  }
}

/* Secure mode's take: each object once, any free one (a fresh slab carves
 * eight to choose among), the counts and bits right after every take; and
 * over many takes and gives the choice falls on every free object, not on
 * the lowest. */
Test(slab, a_random_take_hands_out_each_object_once_and_any_free_one) {
  static const unsigned classes[] = {SIZE_CLASS_FOR_16, SIZE_CLASS_FOR_1024, SIZE_CLASS_FOR_32768};
  test_rng rng = test_rng_seeded(7);
  for (size_t k = 0; k < sizeof classes / sizeof classes[0]; k++) {
    unsigned cls = classes[k], count = size_class_slab_count[cls];
    page_desc_t *head = slab_new(cls);
    objs[0] = slab_take_random(head, cls, test_rng_below(&rng, 1u << 30));
    check_taken(head, cls, objs[0]);
    cr_assert_eq(head->slab_carved, count < 8 ? count : 8, "class %u: carved to choose among eight", cls);
    for (unsigned i = 1; i < count; i++) {
      objs[i] = slab_take_random(head, cls, test_rng_below(&rng, 1u << 30));
      check_taken(head, cls, objs[i]);
      for (unsigned j = 0; j < i; j++) cr_assert_neq(objs[i], objs[j], "class %u: object %u handed out twice", cls, i);
      cr_assert_eq(head->slab_used, i + 1);
      cr_assert_eq(free_bits(head), (size_t)head->slab_carved - head->slab_used);
      slab_verify(head);
    }
    cr_assert_eq(head->slab_carved, count);
    /* With the first eight taken given back, take one and give it back,
     * again and again: every pick is one of the eight, and each comes. */
    unsigned free_now = count < 8 ? count : 8, seen = 0;
    bool picked[8] = {false};
    for (unsigned i = 0; i < free_now; i++) cr_assert(slab_give(region_of_desc(head), head, objs[i], cls));
    for (int round = 0; round < 400; round++) {
      void *p = slab_take_random(head, cls, test_rng_below(&rng, 1u << 30));
      check_taken(head, cls, p);
      unsigned i = 0;
      while (i < free_now && objs[i] != p) i++;
      cr_assert_lt(i, free_now, "class %u: only a free object is picked", cls);
      if (!picked[i]) seen++, picked[i] = true;
      cr_assert(slab_give(region_of_desc(head), head, p, cls));
    }
    cr_assert_eq(seen, free_now, "class %u: %u of the %u free objects ever picked", cls, seen, free_now);
    slab_verify(head);
    slab_release(head);
  }
}

/* An object leaves its slab with the key in its second word, even if a write
 * after free wiped it there: a bin must not hold an object without it. */
Test(slab, a_take_writes_the_key_again) {
  unsigned cls = SIZE_CLASS_FOR_64;
  page_desc_t *head = slab_new(cls);
  cr_assert_eq(slab_take(head, page_class_of_desc(head), objs, 2), 2);
  cr_assert(slab_give(region_of_desc(head), head, objs[0], cls));
  ((void **)objs[0])[1] = NULL;
  cr_assert_eq(slab_take(head, page_class_of_desc(head), again, 1), 1);
  cr_assert_eq(again[0], objs[0]);
  cr_assert_eq(((void **)again[0])[1], (void *)FREE_KEY);
}

/* Slabs of one class side by side keep their bits apart. */
Test(slab, neighbouring_slabs_keep_their_own_bits) {
  unsigned cls = SIZE_CLASS_FOR_32;
  page_desc_t *a = slab_new(cls), *b = slab_new(cls);
  unsigned count = size_class_slab_count[cls];
  cr_assert_eq(slab_take(a, page_class_of_desc(a), objs, count), count);
  cr_assert_eq(slab_take(b, page_class_of_desc(b), again, count), count);
  for (unsigned i = 0; i < count; i++) cr_assert(slab_give(region_of_desc(b), b, again[i], cls));
  cr_assert_eq(free_bits(a), 0);
  cr_assert_eq(free_bits(b), count);
  for (unsigned i = 0; i < count; i++) cr_assert(!slab_holds_free(a, objs[i]));
  slab_clear_free_bits(b);
  cr_assert_eq(free_bits(b), 0);
  b->slab_carved = 0; /* as released: no object handed out, none free */
  slab_verify(a);
  slab_verify(b);
}

/* ---- What slab_check_give reports ---------------------------------------- */

#define INSIDE "free of a pointer inside a small block (not its start)"
#define NEVER "free of a small block that was never allocated"
#define TWICE "double free of a small block"
#define TWICE_EMPTY "double free of a small block (slab already empty)"

/* A slab of class 48 with objects 0, 1 and 2 carved and out, 1 given back. */
static page_desc_t *slab_of_three(void) {
  page_desc_t *head = slab_new(SIZE_CLASS_FOR_48);
  cr_assert_eq(slab_take(head, page_class_of_desc(head), objs, 3), 3);
  cr_assert(slab_give(region_of_desc(head), head, objs[1], SIZE_CLASS_FOR_48));
  return head;
}

static void check_unchanged(const page_desc_t *head, unsigned used, unsigned carved, size_t bits) {
  cr_assert_eq(head->slab_used, used);
  cr_assert_eq(head->slab_carved, carved);
  cr_assert_eq(free_bits(head), bits);
  slab_verify(head);
}

Test(slab, check_give_names_each_misuse_and_changes_nothing) {
  unsigned cls = SIZE_CLASS_FOR_48;
  page_desc_t *head = slab_of_three();
  char *start = page_address_of(head), *obj = objs[0];
  cr_assert_null(slab_check_give(head, objs[0], cls), "an object out of the slab");
  cr_assert_null(slab_check_give(head, objs[2], cls));
  for (size_t off = SMALL_ALIGN; off < 48; off += SMALL_ALIGN)
    cr_assert_str_eq(slab_check_give(head, obj + off, cls), INSIDE, "%zu bytes in", off);
  cr_assert_str_eq(slab_check_give(head, start + 10 * 48, cls), NEVER, "an object start past the carved ones");
  cr_assert_str_eq(slab_check_give(head, start + 84 * 48, cls), NEVER, "the slab's last object");
  cr_assert_str_eq(slab_check_give(head, start + 85 * 48, cls), INSIDE, "the slab's tail (85 objects of 48)");
  cr_assert_str_eq(slab_check_give(head, objs[1], cls), TWICE, "an object free in its slab");
  check_unchanged(head, 2, 3, 1);
}

/* A slab with no object out whose bits do not say so (a bit lost to a
 * corruption): its count still catches the double free. */
Test(slab, check_give_catches_a_double_free_into_an_empty_slab) {
  unsigned cls = SIZE_CLASS_FOR_48;
  page_desc_t *head = slab_new(cls);
  cr_assert_eq(slab_take(head, page_class_of_desc(head), objs, 1), 1);
  cr_assert(slab_give(region_of_desc(head), head, objs[0], cls));
  slab_clear_free_bits(head);
  cr_assert_str_eq(slab_check_give(head, objs[0], cls), TWICE_EMPTY);
}

/* slab_give refuses each misuse: it reports it (abort_on_error=0: a warning)
 * and leaves the object and the slab as they were. */
Test(slab_misuse, give_refuses_each_misuse_and_leaves_the_slab_alone) {
  unsigned cls = SIZE_CLASS_FOR_48;
  page_desc_t *head = slab_of_three();
  char *start = page_address_of(head);
  void *never = start + 10 * 48;
  cr_assert_not(slab_give(region_of_desc(head), head, (char *)objs[0] + 16, cls));
  cr_assert_not(slab_give(region_of_desc(head), head, never, cls));
  cr_assert_not(slab_give(region_of_desc(head), head, objs[1], cls));
  check_unchanged(head, 2, 3, 1);
  cr_assert_eq(test_first_nonzero(never, 48), 48, "a refused object is not written");
  const char *text = redirected_stderr();
  const char *expected[] = {INSIDE, NEVER, TWICE};
  for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
    cr_assert_not_null(strstr(text, expected[i]), "'%s' missing from:\n%s", expected[i], text);
  cr_assert_null(strstr(text, "error:"), "nothing was fatal:\n%s", text);
  /* The slab still works. */
  cr_assert(slab_give(region_of_desc(head), head, objs[0], cls));
  cr_assert(slab_give(region_of_desc(head), head, objs[2], cls));
  check_unchanged(head, 0, 3, 3);
}

/* With abort_on_error=1 (the default) misuse aborts. */
Test(slab_fatal, a_double_give_aborts, .signal = SIGABRT) {
  page_desc_t *head = slab_of_three();
  slab_give(region_of_desc(head), head, objs[1], SIZE_CLASS_FOR_48);
}

Test(slab_fatal, a_give_of_an_inner_pointer_aborts, .signal = SIGABRT) {
  page_desc_t *head = slab_of_three();
  slab_give(region_of_desc(head), head, (char *)objs[0] + 32, SIZE_CLASS_FOR_48);
}

Test(slab_fatal, a_give_of_an_object_never_handed_out_aborts, .signal = SIGABRT) {
  page_desc_t *head = slab_of_three();
  slab_give(region_of_desc(head), head, page_address_of(head) + 3 * 48, SIZE_CLASS_FOR_48);
}

/* ---- debug=1: the fill ---------------------------------------------------- */

/* A given-back object holds the fill, all but its key word and its last
 * word (0), until it is taken again. */
Test(slab, debug_fills_a_given_object_and_takes_it_back_intact) {
  options.debug = 1;
  unsigned cls = SIZE_CLASS_FOR_80;
  page_desc_t *head = slab_new(cls);
  cr_assert_eq(slab_take(head, page_class_of_desc(head), objs, 2), 2);
  memset(objs[0], 0x11, 80);
  cr_assert(slab_give(region_of_desc(head), head, objs[0], cls));
  const unsigned char *bytes = objs[0];
  cr_assert_neq(bytes[0], 0x11);
  for (size_t i = 0; i < 80 - sizeof(void *); i++)
    if (i / sizeof(void *) != 1) cr_assert_eq(bytes[i], bytes[0], "byte %zu holds the fill", i);
  cr_assert_eq(((void **)objs[0])[1], (void *)FREE_KEY);
  cr_assert_null(((void **)objs[0])[80 / sizeof(void *) - 1]);
  cr_assert_eq(slab_take(head, page_class_of_desc(head), again, 1), 1);
  cr_assert_eq(again[0], objs[0]);
}

/* With debug=1, an object of class cls is handed out and given back, byte
 * `at` of it is written (a use after free), and the slab hands it out again:
 * the fill check aborts. */
static void debug_write_after_give(unsigned cls, size_t at) {
  options.debug = 1;
  page_desc_t *head = slab_new(cls);
  cr_assert_eq(slab_take(head, page_class_of_desc(head), objs, 1), 1);
  cr_assert(slab_give(region_of_desc(head), head, objs[0], cls));
  ((char *)objs[0])[at] = 7;
  slab_take(head, page_class_of_desc(head), again, 1);
}

Test(slab_fatal, debug_reports_a_write_after_the_give, .signal = SIGABRT) {
  debug_write_after_give(SIZE_CLASS_FOR_80, 40);
}

Test(slab_fatal, debug_reports_a_write_to_the_last_word, .signal = SIGABRT) {
  debug_write_after_give(SIZE_CLASS_FOR_80, 79);
}

Test(slab_fatal, debug_reports_a_write_to_the_first_word, .signal = SIGABRT) {
  debug_write_after_give(SIZE_CLASS_FOR_16, 0);
}

/* Classes checked by their words first (up to SLAB_DEBUG_WORDS_MAX) and
 * those compared by memcmp in fill_find_other: a write anywhere is found. */
Test(slab_fatal, debug_reports_a_write_inside_a_large_object, .signal = SIGABRT) {
  debug_write_after_give(SIZE_CLASS_FOR_1024, 700);
}

Test(slab_fatal, debug_reports_a_write_to_the_last_word_of_a_large_object, .signal = SIGABRT) {
  debug_write_after_give(SIZE_CLASS_FOR_4096, 4095);
}

Test(slab_fatal, debug_reports_a_write_to_the_third_word, .signal = SIGABRT) {
  debug_write_after_give(SIZE_CLASS_FOR_256, 16);
}

/* fill_find_other (the checks of every fill) names the first byte that is
 * not the pattern, whatever the start's alignment, the length (around the
 * word steps and the memcmp blocks) and the byte. */
Test(fill, find_other_names_the_first_other_byte) {
  static unsigned char buffer[2200];
  const unsigned char bytes[] = {FILL_FREED, FILL_TAIL, 0};
  const size_t lengths[] = {0, 1, 7, 8, 9, 31, 32, 33, 255, 256, 257, 1023, 1024, 1025, 2100};
  for (size_t b = 0; b < sizeof bytes; b++)
    for (size_t start = 0; start < 8; start++)
      for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        size_t n = lengths[l];
        unsigned char *p = buffer + start;
        memset(buffer, bytes[b], sizeof buffer);
        cr_assert_null(fill_find_other(p, n, bytes[b]), "byte %#x, start %zu, length %zu", bytes[b], start, n);
        const size_t at[] = {0, n / 3, n / 2, n - 1};
        for (size_t a = 0; a < sizeof at / sizeof at[0] && n > 0; a++) {
          memset(buffer, bytes[b], sizeof buffer);
          p[at[a]] ^= 0x40;
          if (at[a] + 1 < n) p[n - 1] ^= 0x01; /* a later difference too */
          cr_assert_eq(fill_find_other(p, n, bytes[b]), p + at[a], "byte %#x, start %zu, length %zu, at %zu", bytes[b],
                       start, n, at[a]);
        }
        memset(buffer, bytes[b], sizeof buffer);
        p[n] ^= 0x40; /* just past the end: not looked at */
        cr_assert_null(fill_find_other(p, n, bytes[b]));
      }
}

/* ---- slab_verify catches what does not add up ------------------------------ */

Test(slab_fatal, verify_catches_a_free_bit_past_the_carved_objects, .signal = SIGABRT) {
  page_desc_t *head = slab_of_three();
  size_t g = slab_free_granule(page_address_of(head) + 5 * 48);
  region->slab_free_bits[g / 64] |= slab_free_mask(g);
  slab_verify(head);
}

Test(slab_fatal, verify_catches_a_free_bit_off_an_object_start, .signal = SIGABRT) {
  page_desc_t *head = slab_of_three();
  size_t g = slab_free_granule((char *)objs[0] + 16);
  region->slab_free_bits[g / 64] |= slab_free_mask(g);
  head->slab_used--; /* the counts agree with the bits: only the place is wrong */
  slab_verify(head);
}

Test(slab_fatal, verify_catches_counts_that_disagree_with_the_bits, .signal = SIGABRT) {
  page_desc_t *head = slab_of_three();
  head->slab_used--; /* one more free object than free bits */
  slab_verify(head);
}

Test(slab_fatal, verify_catches_a_free_bit_below_the_scan_start, .signal = SIGABRT) {
  unsigned cls = SIZE_CLASS_FOR_16; /* four objects to a bitmap word */
  page_desc_t *head = slab_new(cls);
  unsigned count = size_class_slab_count[cls];
  cr_assert_eq(slab_take(head, page_class_of_desc(head), objs, count), count);
  cr_assert(slab_give(region_of_desc(head), head, objs[0], cls));
  head->slab_scan = 1; /* a take would start past object 0's word */
  slab_verify(head);
}

Test(slab_fatal, verify_catches_more_used_than_carved, .signal = SIGABRT) {
  page_desc_t *head = slab_of_three();
  head->slab_used = 4;
  slab_verify(head);
}

/* test_pool.c: many live blocks at once: distinct, non-overlapping blocks of
 * each small size, a seeded random churn of mixed sizes with contents checked
 * before every free and realloc, trim, and sized free. */
#include "api.h"

#include <criterion/criterion.h>
#include <string.h>

/* Many-blocks test: this many blocks of each size, or fewer so that one size
 * never holds more than DISTINCT_BYTES_CAP bytes. */
#define DISTINCT_COUNT ((size_t)10000)
#define DISTINCT_BYTES_CAP (32 * MIB)

/* Churn test. */
#define CHURN_SEED UINT64_C(0xC0FFEE)
#define CHURN_SLOTS ((size_t)4096)
#define CHURN_OPS ((size_t)80000)
/* Out of 1000 allocations: tiny (<= 256 B), small (<= 16 KiB), medium
 * (<= 256 KiB) and the rest large (<= 4 MiB). */
#define CHURN_PERMILLE_TINY 700
#define CHURN_PERMILLE_SMALL 950
#define CHURN_PERMILLE_MEDIUM 997
#define CHURN_LARGE_MAX (4 * MIB)
/* Out of 100 operations on a live slot: how many are reallocs. */
#define CHURN_PERCENT_REALLOC 30
/* Out of 100 allocations: how many go through calloc, and through memalign. */
#define CHURN_PERCENT_CALLOC 5
#define CHURN_PERCENT_MEMALIGN 5

Test(pool, many_blocks_of_each_small_size_are_distinct) {
  static const size_t sizes[] = {1,   8,   16,  24,  32,  40,   48,   64,   80,   96,
                                 128, 192, 256, 384, 512, 1024, 2048, 3000, 4096, 8192};
  void **blocks = buddy_malloc(api_hide(DISTINCT_COUNT * sizeof(void *)));
  struct api_range *ranges = buddy_malloc(api_hide(DISTINCT_COUNT * sizeof *ranges));
  cr_assert(blocks != NULL && ranges != NULL);
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t size = sizes[s];
    size_t count = DISTINCT_BYTES_CAP / size;
    if (count > DISTINCT_COUNT) count = DISTINCT_COUNT;
    for (size_t i = 0; i < count; i++) {
      blocks[i] = buddy_malloc(api_hide(size));
      cr_assert_not_null(blocks[i], "block %zu of size %zu", i, size);
      ranges[i].start = (uintptr_t)blocks[i];
      ranges[i].len = size;
      /* Tag each block with its index in its first bytes. */
      size_t tag_len = size < sizeof i ? size : sizeof i;
      test_fill(blocks[i], tag_len, i);
    }
    size_t bad = api_first_overlap(ranges, count);
    cr_assert_eq(bad, count, "size %zu: blocks at %#zx and %#zx overlap", size, (size_t)ranges[bad - 1].start,
                 (size_t)ranges[bad < count ? bad : 0].start);
    for (size_t i = 0; i < count; i++) {
      size_t tag_len = size < sizeof i ? size : sizeof i;
      cr_assert_eq(test_check(blocks[i], tag_len, i), tag_len, "size %zu: block %zu (%p) was overwritten", size, i,
                   blocks[i]);
    }
    /* Free every other block first, then the rest. */
    for (size_t i = 0; i < count; i += 2) buddy_free(blocks[i]);
    for (size_t i = 1; i < count; i += 2) buddy_free(blocks[i]);
  }
  buddy_free(ranges);
  buddy_free(blocks);
}

struct slot {
  unsigned char *ptr;
  size_t size;
  uint64_t seed;
};

static size_t churn_size(test_rng *rng) {
  size_t kind = test_rng_range(rng, 0, 999);
  if (kind < CHURN_PERMILLE_TINY) return test_rng_range(rng, 0, 256);
  if (kind < CHURN_PERMILLE_SMALL) return test_rng_range(rng, 257, 16 * KIB);
  if (kind < CHURN_PERMILLE_MEDIUM) return test_rng_range(rng, 16 * KIB + 1, 256 * KIB);
  return test_rng_range(rng, 256 * KIB + 1, CHURN_LARGE_MAX);
}

static void churn_check(const struct slot *s, size_t index, size_t op) {
  size_t bad = test_check(s->ptr, s->size, s->seed);
  cr_assert_eq(bad, s->size, "op %zu: slot %zu (%p, %zu bytes) corrupt at byte %zu", op, index, (void *)s->ptr, s->size,
               bad);
}

static void churn_allocate(struct slot *s, test_rng *rng, size_t index, size_t op) {
  size_t size = churn_size(rng);
  size_t how = test_rng_range(rng, 0, 99);
  if (how < CHURN_PERCENT_CALLOC) {
    s->ptr = buddy_calloc(api_hide(1), api_hide(size));
    cr_assert_not_null(s->ptr);
    cr_assert_eq(test_first_nonzero(s->ptr, size), size, "op %zu: calloc(%zu) not zeroed", op, size);
  } else if (how < CHURN_PERCENT_CALLOC + CHURN_PERCENT_MEMALIGN) {
    size_t align = (size_t)1 << test_rng_range(rng, 4, 16);
    s->ptr = buddy_memalign(api_hide(align), api_hide(size));
    cr_assert_not_null(s->ptr);
    cr_assert(api_is_aligned(s->ptr, align));
  } else {
    s->ptr = buddy_malloc(api_hide(size));
    cr_assert_not_null(s->ptr);
  }
  cr_assert(api_is_aligned(s->ptr, API_MIN_ALIGN));
  cr_assert_geq(buddy_malloc_usable_size(s->ptr), size);
  s->size = size;
  s->seed = CHURN_SEED ^ ((uint64_t)op << 16) ^ index;
  test_fill(s->ptr, size, s->seed);
}

Test(pool, random_churn_keeps_every_block_intact) {
  test_rng rng = test_rng_seeded(CHURN_SEED);
  struct slot *slots = buddy_calloc(api_hide(CHURN_SLOTS), api_hide(sizeof *slots));
  cr_assert_not_null(slots);
  for (size_t op = 0; op < CHURN_OPS; op++) {
    size_t i = test_rng_range(&rng, 0, CHURN_SLOTS - 1);
    struct slot *s = &slots[i];
    if (s->ptr == NULL) {
      churn_allocate(s, &rng, i, op);
      continue;
    }
    churn_check(s, i, op);
    if (test_rng_range(&rng, 0, 99) < CHURN_PERCENT_REALLOC) {
      size_t size = churn_size(&rng);
      unsigned char *q = buddy_realloc(s->ptr, api_hide(size));
      if (size == 0) {
        /* realloc(p, 0) frees p. */
        cr_assert_null(q);
        s->ptr = NULL;
        continue;
      }
      cr_assert_not_null(q, "op %zu: realloc %zu -> %zu", op, s->size, size);
      size_t keep = size < s->size ? size : s->size;
      size_t bad = test_check(q, keep, s->seed);
      cr_assert_eq(bad, keep, "op %zu: realloc %zu -> %zu lost byte %zu", op, s->size, size, bad);
      /* Extend the same pattern over the new tail. */
      s->ptr = q;
      s->size = size;
      test_fill(s->ptr, size, s->seed);
    } else {
      buddy_free(s->ptr);
      s->ptr = NULL;
    }
  }
  for (size_t i = 0; i < CHURN_SLOTS; i++) {
    if (slots[i].ptr != NULL) {
      churn_check(&slots[i], i, CHURN_OPS);
      buddy_free(slots[i].ptr);
    }
  }
  buddy_free(slots);
}

Test(pool, trim_returns_and_heap_still_works) {
  static const size_t sizes[] = {24, 600, 5000, 70 * KIB, MIB, 6 * MIB, 20 * MIB};
  enum { N = sizeof sizes / sizeof sizes[0], COPIES = 4 };
  void *keep[N];
  void *drop[N * COPIES];
  for (size_t i = 0; i < N; i++) {
    keep[i] = buddy_malloc(api_hide(sizes[i]));
    cr_assert_not_null(keep[i]);
    test_fill(keep[i], sizes[i], 900 + i);
    for (size_t c = 0; c < COPIES; c++) {
      drop[i * COPIES + c] = buddy_malloc(api_hide(sizes[i]));
      cr_assert_not_null(drop[i * COPIES + c]);
      memset(drop[i * COPIES + c], 0xEE, sizes[i]);
    }
  }
  for (size_t i = 0; i < N * COPIES; i++) buddy_free(drop[i]);

  int rc = buddy_trim(0);
  cr_assert(rc == 0 || rc == 1, "trim returned %d", rc);

  /* Live blocks are untouched by the trim. */
  for (size_t i = 0; i < N; i++)
    cr_assert_eq(test_check(keep[i], sizes[i], 900 + i), sizes[i], "trim changed a live %zu-byte block", sizes[i]);
  /* And every size can be allocated, written and freed again. */
  for (size_t i = 0; i < N; i++) {
    void *p = buddy_malloc(api_hide(sizes[i]));
    void *z = buddy_calloc(api_hide(1), api_hide(sizes[i]));
    cr_assert(p != NULL && z != NULL);
    cr_assert_eq(test_first_nonzero(z, sizes[i]), sizes[i], "calloc after trim not zeroed");
    test_fill(p, sizes[i], 950 + i);
    cr_assert_eq(test_check(p, sizes[i], 950 + i), sizes[i]);
    buddy_free(z);
    buddy_free(p);
    buddy_free(keep[i]);
  }
  /* Trimming an idle heap twice in a row is fine too. */
  rc = buddy_trim(api_hide(64 * KIB));
  cr_assert(rc == 0 || rc == 1);
  rc = buddy_trim(0);
  cr_assert(rc == 0 || rc == 1);
  void *p = buddy_malloc(api_hide(100));
  cr_assert_not_null(p);
  buddy_free(p);
}

Test(pool, free_sized_with_right_size) {
  static const size_t sizes[] = {0, 1, 16, 24, 100, 4096, 70 * KIB, 2 * MIB, 9 * MIB};
  enum { N = sizeof sizes / sizeof sizes[0] };
  for (size_t round = 0; round < 2; round++) {
    void *blocks[N];
    for (size_t i = 0; i < N; i++) {
      blocks[i] = round == 0 ? buddy_malloc(api_hide(sizes[i])) : buddy_calloc(api_hide(1), api_hide(sizes[i]));
      cr_assert_not_null(blocks[i]);
      memset(blocks[i], 0x77, sizes[i]);
    }
    for (size_t i = 0; i < N; i++) buddy_free_sized(blocks[i], sizes[i]);
  }
  /* A block that realloc moved, freed with its new size. */
  void *p = buddy_malloc(api_hide(32));
  cr_assert_not_null(p);
  p = buddy_realloc(p, api_hide(300 * KIB));
  cr_assert_not_null(p);
  buddy_free_sized(p, 300 * KIB);
  /* Blocks that realloc shrank or grew (in place or not), freed with their
   * new sizes: every size a realloc was given is a size free_sized takes. */
  static const size_t resized[][2] = {{100, 60}, {100, 90}, {64, 33}, {4000, 2100}, {70 * KIB, 40 * KIB}, {20, 30}};
  for (size_t i = 0; i < sizeof resized / sizeof resized[0]; i++) {
    void *r = buddy_malloc(api_hide(resized[i][0]));
    cr_assert_not_null(r);
    r = buddy_realloc(r, api_hide(resized[i][1]));
    cr_assert_not_null(r);
    buddy_free_sized(r, resized[i][1]);
  }
  /* The freed memory is reusable. */
  for (size_t i = 0; i < N; i++) {
    void *q = buddy_malloc(api_hide(sizes[i]));
    cr_assert_not_null(q);
    test_fill(q, sizes[i], i);
    cr_assert_eq(test_check(q, sizes[i], i), sizes[i]);
    buddy_free_sized(q, sizes[i]);
  }
}

/* test_realloc.c: realloc growing and shrinking across every size class with
 * contents checked, the NULL and zero-size cases, keeping all usable bytes,
 * and failure leaving the old block untouched. */
#include "api.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

/* Every size up to this one is visited by the dense part of the walk. */
#define DENSE_LIMIT ((size_t)256)
/* Past the dense part, sizes around each power of two up to this one. */
#define SMALL_WALK_LIMIT (64 * KIB)
#define MEDIUM_WALK_LIMIT (4 * MIB)
#define MAX_WALK_SIZES 512

static const size_t huge_walk_sizes[] = {4 * MIB + 1, 6 * MIB, 12 * MIB, 40 * MIB};

/* Fills out[] with increasing sizes crossing every class boundary: 1..256
 * densely, then each power of two p up to 4 MiB as p-1, p, p+1, 3p/2, then the
 * huge sizes. Returns how many. */
static size_t walk_sizes(size_t *out) {
  size_t n = 0;
  for (size_t s = 1; s <= DENSE_LIMIT; s++) out[n++] = s;
  for (size_t p = 2 * DENSE_LIMIT; p <= MEDIUM_WALK_LIMIT; p <<= 1) {
    out[n++] = p - 1;
    out[n++] = p;
    out[n++] = p + 1;
    if (p < MEDIUM_WALK_LIMIT) out[n++] = p + p / 2;
  }
  for (size_t i = 0; i < sizeof huge_walk_sizes / sizeof huge_walk_sizes[0]; i++) out[n++] = huge_walk_sizes[i];
  cr_assert_leq(n, MAX_WALK_SIZES);
  return n;
}

/* Reallocs one block through sizes[0..count) in order, checking that the
 * first min(old, new) bytes survive each step and refilling with a new seed. */
static void walk(const size_t *sizes, size_t count, uint64_t seed) {
  size_t old = sizes[0];
  unsigned char *p = buddy_realloc(NULL, api_hide(old));
  cr_assert_not_null(p);
  test_fill(p, old, seed);
  for (size_t i = 1; i < count; i++) {
    size_t want = sizes[i];
    unsigned char *q = buddy_realloc(p, api_hide(want));
    cr_assert_not_null(q, "realloc from %zu to %zu failed", old, want);
    cr_assert(api_is_aligned(q, API_MIN_ALIGN));
    cr_assert_geq(buddy_malloc_usable_size(q), want);
    size_t keep = old < want ? old : want;
    size_t bad = test_check(q, keep, seed);
    cr_assert_eq(bad, keep, "realloc from %zu to %zu lost byte %zu", old, want, bad);
    seed++;
    test_fill(q, want, seed);
    p = q;
    old = want;
  }
  buddy_free(p);
}

Test(realloc, grows_through_every_class) {
  size_t sizes[MAX_WALK_SIZES];
  size_t n = walk_sizes(sizes);
  walk(sizes, n, 1000);
}

/* A block grown a byte at a time stays where it is while its class holds
 * the request, as glibc's grows in place into its chunk: a string built by
 * appending moves about once per class (a size class is at most 25% above
 * the one before: 40 classes to 32 KiB), not at every step. In secure mode
 * too, where the usable size is the request (it moved at every step once,
 * copying all it held: quadratic). */
Test(realloc, a_block_grown_a_byte_at_a_time_moves_once_per_class_at_most) {
  enum { GROWN_TO = 16384, MOVES_MAX = 48 };
  char *p = buddy_malloc(1);
  cr_assert_not_null(p);
  p[0] = 'a';
  int moves = 0;
  for (size_t size = 2; size <= GROWN_TO; size++) {
    char *q = buddy_realloc(p, size);
    cr_assert_not_null(q);
    if (q != p) moves++;
    cr_assert_eq(q[size - 2], (char)('a' + (size - 2) % 26), "size %zu: the last byte kept", size);
    q[size - 1] = (char)('a' + (size - 1) % 26);
    p = q;
  }
  cr_assert_leq(moves, MOVES_MAX, "%d moves growing to %d bytes", moves, GROWN_TO);
  buddy_free(p);
}

/* The same past the small classes, in steps of a line appended: a page run
 * moves when its order no longer holds the block (secure mode: with its
 * header page), not at each step. */
Test(realloc, a_medium_block_grown_in_steps_moves_once_per_order_at_most) {
  enum { GROWN_FROM = 33000, GROWN_TO = 250000, STEP = 61, MOVES_MAX = 8 };
  char *p = buddy_malloc(GROWN_FROM);
  cr_assert_not_null(p);
  memset(p, 'a', GROWN_FROM);
  int moves = 0;
  for (size_t size = GROWN_FROM + STEP; size <= GROWN_TO; size += STEP) {
    char *q = buddy_realloc(p, size);
    cr_assert_not_null(q);
    if (q != p) moves++;
    char last = size == GROWN_FROM + STEP ? 'a' : 'b';
    cr_assert_eq(q[size - STEP - 1], last, "size %zu: the last byte kept", size);
    memset(q + size - STEP, 'b', STEP);
    p = q;
  }
  cr_assert_leq(moves, MOVES_MAX, "%d moves growing to %d bytes", moves, GROWN_TO);
  buddy_free(p);
}

Test(realloc, shrinks_through_every_class) {
  size_t sizes[MAX_WALK_SIZES];
  size_t n = walk_sizes(sizes);
  for (size_t i = 0; i < n / 2; i++) {
    size_t t = sizes[i];
    sizes[i] = sizes[n - 1 - i];
    sizes[n - 1 - i] = t;
  }
  walk(sizes, n, 2000);
}

Test(realloc, jumps_between_distant_classes) {
  static const size_t sizes[] = {
      1,        40 * MIB, 24,       3 * MIB,  100 * KIB, 16,          6 * MIB,     70 * KIB, 5000,
      12 * MIB, 2 * MIB,  64 * KIB, 65 * KIB, 8,         4 * MIB + 1, 4 * MIB - 1, 1,
  };
  walk(sizes, sizeof sizes / sizeof sizes[0], 3000);
}

Test(realloc, up_and_down_around_each_size) {
  /* For a spread of sizes, up by a little and a lot, then back down, with
   * other blocks live so growing in place is not always possible. */
  static const size_t bases[] = {1, 16, 100, 1000, 4096, 60 * KIB, 300 * KIB, 3 * MIB, 7 * MIB};
  for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
    size_t b = bases[i];
    void *neighbour = buddy_malloc(api_hide(b));
    cr_assert_not_null(neighbour);
    const size_t sizes[] = {b, b + 1, 2 * b, b, 8 * b, b / 2 + 1, b};
    walk(sizes, sizeof sizes / sizeof sizes[0], 4000 + i * 100);
    buddy_free(neighbour);
  }
}

Test(realloc, null_pointer_acts_as_malloc) {
  static const size_t sizes[] = {1, 100, 70 * KIB, 5 * MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = buddy_realloc(NULL, api_hide(sizes[i]));
    cr_assert_not_null(p);
    cr_assert(api_is_aligned(p, API_MIN_ALIGN));
    cr_assert_geq(buddy_malloc_usable_size(p), sizes[i]);
    test_fill(p, sizes[i], i);
    cr_assert_eq(test_check(p, sizes[i], i), sizes[i]);
    buddy_free(p);
  }
}

Test(realloc, null_pointer_and_zero_size_gives_a_block) {
  void *a = buddy_realloc(NULL, api_hide(0));
  void *b = buddy_realloc(NULL, api_hide(0));
  cr_assert_not_null(a);
  cr_assert_not_null(b);
  cr_assert_neq(a, b);
  buddy_free(a);
  buddy_free(b);
}

Test(realloc, zero_size_frees_and_returns_null) {
  static const size_t sizes[] = {0, 1, 64, 4096, 200 * KIB, 10 * MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = buddy_malloc(api_hide(sizes[i]));
    cr_assert_not_null(p);
    void *q = buddy_realloc(p, api_hide(0));
    cr_assert_null(q, "realloc(%zu-byte block, 0) returned %p", sizes[i], q);
  }
  /* The heap still works after those frees. */
  void *p = buddy_malloc(api_hide(64));
  cr_assert_not_null(p);
  buddy_free(p);
}

Test(realloc, keeps_every_usable_byte) {
  static const size_t sizes[] = {1, 13, 24, 100, 1000, 3000, 5000, 40000, 65 * KIB, 500 * KIB, 3 * MIB, 5 * MIB + 7};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    const uint64_t seed = 5000 + i;
    unsigned char *p = buddy_malloc(api_hide(sizes[i]));
    cr_assert_not_null(p);
    size_t usable = buddy_malloc_usable_size(p);
    test_fill(p, usable, seed);

    /* Asking for exactly the usable size must keep the block's bytes. */
    p = buddy_realloc(p, api_hide(usable));
    cr_assert_not_null(p);
    cr_assert_eq(test_check(p, usable, seed), usable, "realloc to usable size %zu", usable);

    size_t bigger = 2 * usable + 1;
    unsigned char *q = buddy_realloc(p, api_hide(bigger));
    cr_assert_not_null(q);
    size_t bad = test_check(q, usable, seed);
    cr_assert_eq(bad, usable, "malloc(%zu): usable byte %zu of %zu lost growing to %zu", sizes[i], bad, usable, bigger);
    buddy_free(q);
  }
}

Test(realloc, same_size_keeps_contents) {
  static const size_t sizes[] = {1, 48, 4096, 100 * KIB, 6 * MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = buddy_malloc(api_hide(sizes[i]));
    cr_assert_not_null(p);
    test_fill(p, sizes[i], i + 1);
    p = buddy_realloc(p, api_hide(sizes[i]));
    cr_assert_not_null(p);
    cr_assert_eq(test_check(p, sizes[i], i + 1), sizes[i]);
    buddy_free(p);
  }
}

Test(realloc, failure_leaves_block_untouched) {
  static const size_t sizes[] = {1, 64, 5000, 300 * KIB, 9 * MIB};
  static const size_t impossible[] = {SIZE_MAX, SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX + 1};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    const uint64_t seed = 6000 + i;
    void *p = buddy_malloc(api_hide(sizes[i]));
    cr_assert_not_null(p);
    size_t usable = buddy_malloc_usable_size(p);
    test_fill(p, usable, seed);
    for (size_t k = 0; k < sizeof impossible / sizeof impossible[0]; k++) {
      errno = 0;
      void *q = buddy_realloc(p, api_hide(impossible[k]));
      cr_assert_null(q, "realloc(%zu-byte block, %zu) succeeded", sizes[i], impossible[k]);
      cr_assert_eq(errno, ENOMEM);
      cr_assert_eq(buddy_malloc_usable_size(p), usable);
      size_t bad = test_check(p, usable, seed);
      cr_assert_eq(bad, usable, "failed realloc changed byte %zu of a %zu-byte block", bad, sizes[i]);
    }
    /* Still a live block: it can grow for real, then be freed. */
    void *q = buddy_realloc(p, api_hide(usable + 1));
    cr_assert_not_null(q);
    cr_assert_eq(test_check(q, usable, seed), usable);
    buddy_free(q);
  }
}

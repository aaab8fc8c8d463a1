/* test_basic.c: malloc, free, calloc, reallocarray and malloc_usable_size:
 * zero sizes, errno, impossible sizes, overflow, alignment, usable size and
 * zeroing of recycled memory. */
#include "api.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

/* An errno value no allocator call sets on its own. */
#define SENTINEL_ERRNO EDOM
/* Sizes covering the small, medium and huge classes. */
#define SMALL_SIZE ((size_t)48)
#define MEDIUM_SIZE (256 * KIB)
#define HUGE_SIZE (12 * MIB)
/* Every size up to this one gets its own alignment check. */
#define DENSE_ALIGN_LIMIT ((size_t)4096)
/* How many blocks of one size calloc tests dirty and then take back. */
#define CALLOC_ROUNDS 4

static const size_t class_sizes[] = {SMALL_SIZE, MEDIUM_SIZE, HUGE_SIZE};
#define N_CLASS_SIZES (sizeof class_sizes / sizeof class_sizes[0])

/* Requests no allocator can meet, on a 64-bit address space. */
static const size_t impossible_sizes[] = {
    SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX + 1, SIZE_MAX - 4096 + 1,
};
#define N_IMPOSSIBLE (sizeof impossible_sizes / sizeof impossible_sizes[0])

Test(basic, malloc_zero_returns_unique_freeable_blocks) {
  void *a = buddy_malloc(api_hide(0));
  void *b = buddy_malloc(api_hide(0));
  cr_assert_not_null(a);
  cr_assert_not_null(b);
  cr_assert_neq(a, b, "two malloc(0) blocks share address %p", a);
  cr_assert(api_is_aligned(a, API_MIN_ALIGN) && api_is_aligned(b, API_MIN_ALIGN));
  buddy_free(a);
  buddy_free(b);
}

Test(basic, free_null_does_nothing) {
  errno = SENTINEL_ERRNO;
  buddy_free(api_hide_ptr(NULL));
  cr_assert_eq(errno, SENTINEL_ERRNO);
  /* The heap still works. */
  void *p = buddy_malloc(api_hide(SMALL_SIZE));
  cr_assert_not_null(p);
  buddy_free(p);
}

Test(basic, free_preserves_errno) {
  for (size_t i = 0; i < N_CLASS_SIZES; i++) {
    void *p = buddy_malloc(api_hide(class_sizes[i]));
    cr_assert_not_null(p);
    memset(p, 0xA5, class_sizes[i]);
    errno = SENTINEL_ERRNO;
    buddy_free(p);
    cr_assert_eq(errno, SENTINEL_ERRNO, "free of a %zu-byte block changed errno to %d", class_sizes[i], errno);
  }
}

Test(basic, malloc_impossible_size_is_enomem) {
  for (size_t i = 0; i < N_IMPOSSIBLE; i++) {
    errno = 0;
    void *p = buddy_malloc(api_hide(impossible_sizes[i]));
    cr_assert_null(p, "malloc(%zu) succeeded", impossible_sizes[i]);
    cr_assert_eq(errno, ENOMEM, "malloc(%zu): errno %d", impossible_sizes[i], errno);
  }
}

Test(basic, calloc_impossible_size_is_enomem) {
  for (size_t i = 0; i < N_IMPOSSIBLE; i++) {
    errno = 0;
    void *p = buddy_calloc(api_hide(1), api_hide(impossible_sizes[i]));
    cr_assert_null(p, "calloc(1, %zu) succeeded", impossible_sizes[i]);
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    p = buddy_calloc(api_hide(impossible_sizes[i]), api_hide(1));
    cr_assert_null(p, "calloc(%zu, 1) succeeded", impossible_sizes[i]);
    cr_assert_eq(errno, ENOMEM);
  }
}

Test(basic, calloc_overflow_is_enomem) {
  static const struct {
    size_t count, size;
  } cases[] = {
      {SIZE_MAX / 2, 3},
      {3, SIZE_MAX / 2},
      {SIZE_MAX, SIZE_MAX},
      {(size_t)1 << 32, (size_t)1 << 32},             /* the product wraps to exactly 0 */
      {((size_t)1 << 32) + 1, ((size_t)1 << 32) - 1}, /* wraps to SIZE_MAX */
      {SIZE_MAX / 16 + 1, 16},                        /* wraps to 0 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    errno = 0;
    void *p = buddy_calloc(api_hide(cases[i].count), api_hide(cases[i].size));
    cr_assert_null(p, "calloc(%zu, %zu) succeeded", cases[i].count, cases[i].size);
    cr_assert_eq(errno, ENOMEM, "calloc(%zu, %zu): errno %d", cases[i].count, cases[i].size, errno);
  }
}

Test(basic, calloc_zero_returns_unique_blocks) {
  void *a = buddy_calloc(api_hide(0), api_hide(SIZE_MAX));
  void *b = buddy_calloc(api_hide(SIZE_MAX), api_hide(0));
  void *c = buddy_calloc(api_hide(0), api_hide(0));
  cr_assert(a != NULL && b != NULL && c != NULL);
  cr_assert(a != b && b != c && a != c);
  buddy_free(a);
  buddy_free(b);
  buddy_free(c);
}

Test(basic, reallocarray_grows_and_keeps_contents) {
  const size_t elem = sizeof(uint32_t);
  uint32_t *arr = buddy_reallocarray(NULL, api_hide(10), api_hide(elem));
  cr_assert_not_null(arr);
  for (uint32_t i = 0; i < 10; i++) arr[i] = i * 7u;
  static const size_t counts[] = {100, 5000, 300000, 40, 3};
  size_t filled = 10;
  for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
    size_t n = counts[k];
    arr = buddy_reallocarray(arr, api_hide(n), api_hide(elem));
    cr_assert_not_null(arr, "reallocarray to %zu elements failed", n);
    size_t keep = filled < n ? filled : n;
    for (size_t i = 0; i < keep; i++) cr_assert_eq(arr[i], (uint32_t)i * 7u, "element %zu lost growing to %zu", i, n);
    for (size_t i = keep; i < n; i++) arr[i] = (uint32_t)i * 7u;
    filled = n;
  }
  buddy_free(arr);
}

Test(basic, reallocarray_overflow_keeps_block) {
  const size_t len = 64;
  const uint64_t seed = 77;
  unsigned char *p = buddy_malloc(api_hide(len));
  cr_assert_not_null(p);
  test_fill(p, len, seed);
  static const struct {
    size_t count, size;
  } cases[] = {
      {SIZE_MAX / 2, 3},
      {3, SIZE_MAX / 2},
      {(size_t)1 << 32, (size_t)1 << 32},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    errno = 0;
    /* Hidden, so the compiler does not take p for freed after the call. */
    void *q = buddy_reallocarray(api_hide_ptr(p), api_hide(cases[i].count), api_hide(cases[i].size));
    cr_assert_null(q, "reallocarray(p, %zu, %zu) succeeded", cases[i].count, cases[i].size);
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(test_check(p, len, seed), len, "the old block changed");
    errno = 0;
    q = buddy_reallocarray(NULL, api_hide(cases[i].count), api_hide(cases[i].size));
    cr_assert_null(q);
    cr_assert_eq(errno, ENOMEM);
  }
  buddy_free(p);
}

Test(basic, every_size_is_16_aligned) {
  void **blocks = buddy_malloc(api_hide((DENSE_ALIGN_LIMIT + 1) * sizeof(void *)));
  cr_assert_not_null(blocks);
  /* All live together, so no size just reuses the previous block. */
  for (size_t n = 0; n <= DENSE_ALIGN_LIMIT; n++) {
    blocks[n] = buddy_malloc(api_hide(n));
    cr_assert_not_null(blocks[n]);
    cr_assert(api_is_aligned(blocks[n], API_MIN_ALIGN), "malloc(%zu) = %p is not 16-aligned", n, blocks[n]);
  }
  for (size_t n = 0; n <= DENSE_ALIGN_LIMIT; n++) buddy_free(blocks[n]);
  buddy_free(blocks);

  /* Larger sizes: each power of two and its neighbours up to 64 MiB. */
  for (size_t p2 = 8 * KIB; p2 <= 64 * MIB; p2 <<= 1) {
    for (size_t n = p2 - 1; n <= p2 + 1; n++) {
      void *p = buddy_malloc(api_hide(n));
      cr_assert_not_null(p);
      cr_assert(api_is_aligned(p, API_MIN_ALIGN), "malloc(%zu) = %p", n, p);
      void *c = buddy_calloc(api_hide(1), api_hide(n));
      cr_assert_not_null(c);
      cr_assert(api_is_aligned(c, API_MIN_ALIGN), "calloc(1, %zu) = %p", n, c);
      buddy_free(c);
      buddy_free(p);
    }
  }
}

Test(basic, usable_size_of_null_is_zero) {
  cr_assert_eq(buddy_malloc_usable_size(api_hide_ptr(NULL)), 0);
}

/* Sizes whose usable size is checked: around class edges of a buddy heap. */
static const size_t usable_sizes[] = {
    0,      1,      7,      8,       9,       15,          16,          17,          24,          31,    33,    48,
    63,     65,     100,    127,     129,     200,         255,         257,         500,         1000,  1023,  1025,
    2047,   2049,   3000,   4095,    4097,    10000,       16383,       16385,       32767,       32769, 65535, 65537,
    100000, 262143, 262145, 1048575, 1048577, 2 * MIB + 1, 4 * MIB - 1, 4 * MIB + 1, 9 * MIB + 3,
};
#define N_USABLE_SIZES (sizeof usable_sizes / sizeof usable_sizes[0])

Test(basic, usable_size_covers_request_and_every_byte_is_writable) {
  void *blocks[N_USABLE_SIZES];
  size_t usable[N_USABLE_SIZES];
  for (size_t i = 0; i < N_USABLE_SIZES; i++) {
    blocks[i] = buddy_malloc(api_hide(usable_sizes[i]));
    cr_assert_not_null(blocks[i]);
    usable[i] = buddy_malloc_usable_size(blocks[i]);
    cr_assert_geq(usable[i], usable_sizes[i], "malloc(%zu): usable size %zu", usable_sizes[i], usable[i]);
    test_fill(blocks[i], usable[i], i + 1);
  }
  /* Neighbours of every size come and go, some staying live. */
  void *others[2 * N_USABLE_SIZES];
  for (size_t i = 0; i < N_USABLE_SIZES; i++) {
    others[2 * i] = buddy_malloc(api_hide(usable_sizes[i]));
    void *brief = buddy_malloc(api_hide(usable_sizes[i]));
    others[2 * i + 1] = buddy_calloc(api_hide(1), api_hide(usable_sizes[i]));
    cr_assert(others[2 * i] && brief && others[2 * i + 1]);
    memset(others[2 * i], 0x5A, usable_sizes[i]);
    memset(brief, 0xC3, usable_sizes[i]);
    buddy_free(brief);
  }
  for (size_t i = 0; i < N_USABLE_SIZES; i++) {
    size_t bad = test_check(blocks[i], usable[i], i + 1);
    cr_assert_eq(bad, usable[i], "malloc(%zu): usable byte %zu of %zu was overwritten", usable_sizes[i], bad,
                 usable[i]);
    cr_assert_eq(buddy_malloc_usable_size(blocks[i]), usable[i], "usable size of a live malloc(%zu) block changed",
                 usable_sizes[i]);
  }
  for (size_t i = 0; i < 2 * N_USABLE_SIZES; i++) buddy_free(others[i]);
  for (size_t i = 0; i < N_USABLE_SIZES; i++) {
    cr_assert_eq(buddy_malloc_usable_size(blocks[i]), usable[i]);
    buddy_free(blocks[i]);
  }
}

/* Dirties `rounds` blocks of `size` bytes with 0xFF, frees them, then checks
 * that calloc of the same shape hands back only zeroes. */
static void check_calloc_recycled(size_t count, size_t size, size_t rounds) {
  void *blocks[CALLOC_ROUNDS];
  size_t total = count * size;
  for (size_t r = 0; r < rounds; r++) {
    blocks[r] = buddy_malloc(api_hide(total));
    cr_assert_not_null(blocks[r]);
    memset(blocks[r], 0xFF, buddy_malloc_usable_size(blocks[r]));
  }
  for (size_t r = 0; r < rounds; r++) buddy_free(blocks[r]);
  for (size_t r = 0; r < rounds; r++) {
    blocks[r] = buddy_calloc(api_hide(count), api_hide(size));
    cr_assert_not_null(blocks[r]);
    size_t bad = test_first_nonzero(blocks[r], total);
    cr_assert_eq(bad, total, "calloc(%zu, %zu): byte %zu is not zero", count, size, bad);
    /* Dirty it again for the next calloc of this round. */
    memset(blocks[r], 0xFF, total);
  }
  for (size_t r = 0; r < rounds; r++) buddy_free(blocks[r]);
  /* Once more, now over memory calloc itself handed out. */
  void *again = buddy_calloc(api_hide(count), api_hide(size));
  cr_assert_not_null(again);
  cr_assert_eq(test_first_nonzero(again, total), total, "calloc(%zu, %zu) reuse", count, size);
  buddy_free(again);
}

Test(basic, calloc_zeroes_recycled_small) {
  static const size_t sizes[] = {1, 8, 16, 24, 40, 64, 100, 256, 1000, 2048, 4000, 8192, 30000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    check_calloc_recycled(1, sizes[i], CALLOC_ROUNDS);
    check_calloc_recycled(3, sizes[i], CALLOC_ROUNDS);
  }
}

Test(basic, calloc_zeroes_recycled_medium) {
  static const size_t sizes[] = {64 * KIB, 64 * KIB + 1, 100 * KIB, 512 * KIB - 16, MIB, 3 * MIB / 2, 2 * MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_calloc_recycled(1, sizes[i], CALLOC_ROUNDS);
  check_calloc_recycled(64, 16 * KIB, CALLOC_ROUNDS);
}

Test(basic, calloc_zeroes_recycled_huge) {
  static const size_t sizes[] = {8 * MIB, 12 * MIB + 1, 32 * MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_calloc_recycled(1, sizes[i], 2);
  check_calloc_recycled(2048, 4096, 2);
}

#ifdef API_PLAIN
/* malloc_info as glibc's: options must be 0 (EINVAL, returned, not set in
 * errno, otherwise), and the report is XML, as its readers expect. */
Test(basic, malloc_info_takes_options_zero_only) {
  FILE *out = tmpfile();
  cr_assert_not_null(out);
  cr_assert_eq(malloc_info(api_hide(1) != 0, out), EINVAL);
  cr_assert_eq(malloc_info(0, out), 0);
  rewind(out);
  char head[16] = {0};
  cr_assert_gt(fread(head, 1, sizeof head - 1, out), 0);
  cr_assert_eq(strncmp(head, "<malloc", 7), 0, "got '%s'", head);
  fclose(out);
}
#endif

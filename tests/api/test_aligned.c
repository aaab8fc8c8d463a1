/* test_aligned.c: posix_memalign, aligned_alloc, memalign, valloc and pvalloc:
 * invalid alignments, every power of two up to 16 MiB with sizes around it,
 * and aligned blocks interleaved with plain ones without overlap. */
#include "api.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#define MAX_ALIGN (16 * MIB)
/* The largest alignment of the interleaving test. */
#define INTERLEAVE_MAX_ALIGN (4 * MIB)
#define INTERLEAVE_ROUNDS 3
/* What posix_memalign must leave in *out when it fails. */
#define OUT_SENTINEL ((void *)(uintptr_t)0x5EED)
/* A power-of-two alignment no address space can honour with a block. */
#define IMPOSSIBLE_ALIGN ((size_t)1 << 62)

typedef void *(*align_fn)(size_t alignment, size_t size);

/* The sizes tried with each alignment a: 0, 1, 100, a-1, a, a+1, 3a. */
#define N_SIZES_PER_ALIGN 7
static void sizes_for(size_t a, size_t out[N_SIZES_PER_ALIGN]) {
  out[0] = 0;
  out[1] = 1;
  out[2] = 100;
  out[3] = a - 1;
  out[4] = a;
  out[5] = a + 1;
  out[6] = 3 * a;
}

/* Checks one successful aligned block: aligned, usable, writable, and freed
 * by plain free. */
static void check_and_free(void *p, size_t alignment, size_t size, const char *what) {
  cr_assert_not_null(p, "%s(%zu, %zu) failed", what, alignment, size);
  cr_assert(api_is_aligned(p, alignment), "%s(%zu, %zu) = %p is misaligned", what, alignment, size, p);
  size_t usable = buddy_malloc_usable_size(p);
  cr_assert_geq(usable, size, "%s(%zu, %zu): usable %zu", what, alignment, size, usable);
  const uint64_t seed = alignment ^ (size << 1);
  test_fill(p, size, seed);
  cr_assert_eq(test_check(p, size, seed), size);
  buddy_free(p);
}

Test(aligned, posix_memalign_rejects_bad_alignment) {
  static const size_t bad[] = {
      0,    1,        2,       sizeof(void *) / 2, sizeof(void *) - 1, 3, 12, 24, 48, 100, 4095,
      4097, 3 * 4096, 5 * MIB, SIZE_MAX,           SIZE_MAX / 2 + 2,
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    void *out = OUT_SENTINEL;
    int rc = buddy_posix_memalign(&out, api_hide(bad[i]), api_hide(100));
    cr_assert_eq(rc, EINVAL, "posix_memalign(alignment %zu) returned %d", bad[i], rc);
    cr_assert_eq(out, OUT_SENTINEL, "posix_memalign(alignment %zu) wrote *out", bad[i]);
  }
}

Test(aligned, posix_memalign_impossible_is_enomem) {
  void *out = OUT_SENTINEL;
  int rc = buddy_posix_memalign(&out, api_hide(API_MIN_ALIGN), api_hide(SIZE_MAX));
  cr_assert_eq(rc, ENOMEM);
  cr_assert_eq(out, OUT_SENTINEL);
  rc = buddy_posix_memalign(&out, api_hide(4096), api_hide(SIZE_MAX - 4096));
  cr_assert_eq(rc, ENOMEM);
  cr_assert_eq(out, OUT_SENTINEL);
  rc = buddy_posix_memalign(&out, api_hide(IMPOSSIBLE_ALIGN), api_hide(100));
  cr_assert_eq(rc, ENOMEM);
  cr_assert_eq(out, OUT_SENTINEL);
}

Test(aligned, posix_memalign_every_power_of_two) {
  for (size_t a = sizeof(void *); a <= MAX_ALIGN; a <<= 1) {
    size_t sizes[N_SIZES_PER_ALIGN];
    sizes_for(a, sizes);
    for (size_t k = 0; k < N_SIZES_PER_ALIGN; k++) {
      void *p = OUT_SENTINEL;
      int rc = buddy_posix_memalign(&p, api_hide(a), api_hide(sizes[k]));
      cr_assert_eq(rc, 0, "posix_memalign(%zu, %zu) returned %d", a, sizes[k], rc);
      check_and_free(p, a, sizes[k], "posix_memalign");
    }
  }
}

Test(aligned, aligned_alloc_every_power_of_two) {
  for (size_t a = 1; a <= MAX_ALIGN; a <<= 1) {
    size_t sizes[N_SIZES_PER_ALIGN];
    sizes_for(a, sizes);
    for (size_t k = 0; k < N_SIZES_PER_ALIGN; k++)
      check_and_free(buddy_aligned_alloc(api_hide(a), api_hide(sizes[k])), a, sizes[k], "aligned_alloc");
  }
}

Test(aligned, memalign_every_power_of_two) {
  for (size_t a = 1; a <= MAX_ALIGN; a <<= 1) {
    size_t sizes[N_SIZES_PER_ALIGN];
    sizes_for(a, sizes);
    for (size_t k = 0; k < N_SIZES_PER_ALIGN; k++)
      check_and_free(buddy_memalign(api_hide(a), api_hide(sizes[k])), a, sizes[k], "memalign");
  }
}

/* Alignments that are not powers of two (nor 0). */
static const size_t odd_alignments[] = {3, 12, 24, 48, 100, 4097, 3 * 4096, 5 * MIB};
#define N_ODD_ALIGNMENTS (sizeof odd_alignments / sizeof odd_alignments[0])

Test(aligned, memalign_rounds_odd_alignment_up) {
  /* glibc rounds an alignment that is not a power of two up to the next one. */
  for (size_t i = 0; i < N_ODD_ALIGNMENTS; i++) {
    size_t a = odd_alignments[i];
    check_and_free(buddy_memalign(api_hide(a), api_hide(100)), api_next_pow2(a), 100, "memalign");
    check_and_free(buddy_memalign(api_hide(a), api_hide(a + 1)), api_next_pow2(a), a + 1, "memalign");
  }
}

Test(aligned, memalign_zero_alignment_acts_as_malloc) {
  check_and_free(buddy_memalign(api_hide(0), api_hide(100)), API_MIN_ALIGN, 100, "memalign");
  check_and_free(buddy_memalign(api_hide(0), api_hide(0)), API_MIN_ALIGN, 0, "memalign");
}

Test(aligned, memalign_impossible_fails) {
  /* Above the largest power of two of size_t there is nothing to round up
   * to: EINVAL. A valid but enormous alignment or size: ENOMEM. */
  errno = 0;
  cr_assert_null(buddy_memalign(api_hide(SIZE_MAX / 2 + 2), api_hide(100)));
  cr_assert_eq(errno, EINVAL);
  errno = 0;
  cr_assert_null(buddy_memalign(api_hide(SIZE_MAX), api_hide(100)));
  cr_assert_eq(errno, EINVAL);
  errno = 0;
  cr_assert_null(buddy_memalign(api_hide(IMPOSSIBLE_ALIGN), api_hide(100)));
  cr_assert_eq(errno, ENOMEM);
  errno = 0;
  cr_assert_null(buddy_memalign(api_hide(64), api_hide(SIZE_MAX)));
  cr_assert_eq(errno, ENOMEM);
  errno = 0;
  cr_assert_null(buddy_aligned_alloc(api_hide(64), api_hide(SIZE_MAX - 64)));
  cr_assert_eq(errno, ENOMEM);
}

Test(aligned, aligned_alloc_odd_alignment_is_einval_or_rounded) {
  /* C17 leaves this to the implementation: glibc up to 2.37 rounds up like
   * memalign, later ones fail with EINVAL. Either is accepted; a misaligned
   * block or another errno is not. */
  for (size_t i = 0; i < N_ODD_ALIGNMENTS; i++) {
    size_t a = odd_alignments[i];
    errno = 0;
    void *p = buddy_aligned_alloc(api_hide(a), api_hide(2 * a));
    if (p == NULL) cr_assert_eq(errno, EINVAL, "aligned_alloc(%zu) failed with errno %d", a, errno);
    else check_and_free(p, api_next_pow2(a), 2 * a, "aligned_alloc");
  }
}

Test(aligned, valloc_is_page_aligned) {
  const size_t page = api_page_size();
  const size_t sizes[] = {0, 1, 100, page - 1, page, page + 1, 100000, 5 * MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    check_and_free(buddy_valloc(api_hide(sizes[i])), page, sizes[i], "valloc");
  errno = 0;
  cr_assert_null(buddy_valloc(api_hide(SIZE_MAX)));
  cr_assert_eq(errno, ENOMEM);
}

Test(aligned, pvalloc_rounds_to_whole_pages) {
  const size_t page = api_page_size();
  const size_t sizes[] = {1, 100, page - 1, page, page + 1, 3 * page + 5, 5 * MIB + 1};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    unsigned char *p = buddy_pvalloc(api_hide(sizes[i]));
    cr_assert_not_null(p);
    cr_assert(api_is_aligned(p, page));
    size_t rounded = (sizes[i] + page - 1) / page * page;
    size_t usable = buddy_malloc_usable_size(p);
    cr_assert_geq(usable, rounded, "pvalloc(%zu): usable %zu, want at least %zu", sizes[i], usable, rounded);
    /* The whole rounded size belongs to the caller. */
    test_fill(p, rounded, i);
    cr_assert_eq(test_check(p, rounded, i), rounded);
    buddy_free(p);
  }
  errno = 0;
  cr_assert_null(buddy_pvalloc(api_hide(SIZE_MAX)));
  cr_assert_eq(errno, ENOMEM);
}

Test(aligned, pvalloc_zero_gives_one_page) {
  const size_t page = api_page_size();
  unsigned char *p = buddy_pvalloc(api_hide(0));
  cr_assert_not_null(p);
  cr_assert(api_is_aligned(p, page));
  size_t usable = buddy_malloc_usable_size(p);
  cr_assert_geq(usable, page, "pvalloc(0): usable %zu, want a page (%zu)", usable, page);
  test_fill(p, page, 1);
  cr_assert_eq(test_check(p, page, 1), page);
  buddy_free(p);
}

/* One live block of the interleaving test. */
struct live_block {
  void *ptr;
  size_t usable;
  uint64_t seed;
};

Test(aligned, interleaved_with_plain_blocks_never_overlap) {
  enum { PER_ALIGN = 3, N_ALIGNS = 20, PER_ROUND = N_ALIGNS * PER_ALIGN * 2 };
  struct live_block blocks[PER_ROUND * INTERLEAVE_ROUNDS];
  struct api_range ranges[PER_ROUND * INTERLEAVE_ROUNDS];
  test_rng rng = test_rng_seeded(42);
  size_t n = 0;
  for (size_t round = 0; round < INTERLEAVE_ROUNDS; round++) {
    for (size_t a = 8; a <= INTERLEAVE_MAX_ALIGN; a <<= 1) {
      for (size_t k = 0; k < PER_ALIGN; k++) {
        /* Sizes below, at and above the alignment, capped at 1 MiB. */
        size_t cap = a < MIB ? 2 * a : MIB;
        size_t size = test_rng_range(&rng, 0, cap);
        void *p = NULL;
        switch ((round + k) % 3) {
        case 0:
          cr_assert_eq(buddy_posix_memalign(&p, a, api_hide(size)), 0);
          break;
        case 1:
          p = buddy_aligned_alloc(api_hide(a), api_hide(size));
          break;
        default:
          p = buddy_memalign(api_hide(a), api_hide(size));
          break;
        }
        cr_assert_not_null(p);
        cr_assert(api_is_aligned(p, a), "alignment %zu: %p", a, p);
        blocks[n].ptr = p;
        n++;
        /* And a plain block of a random small-to-medium size. */
        size_t plain = test_rng_range(&rng, 0, (test_rng_next(&rng) & 1) ? 512 : 256 * KIB);
        blocks[n].ptr = buddy_malloc(api_hide(plain));
        cr_assert_not_null(blocks[n].ptr);
        n++;
      }
    }
    /* Free a third of the blocks so far, then go again over the holes. */
    for (size_t i = 0; i < n; i++) {
      if (blocks[i].ptr != NULL && test_rng_next(&rng) % 3 == 0) {
        buddy_free(blocks[i].ptr);
        blocks[i].ptr = NULL;
      }
    }
  }
  size_t live = 0;
  for (size_t i = 0; i < n; i++) {
    if (blocks[i].ptr == NULL) continue;
    blocks[i].usable = buddy_malloc_usable_size(blocks[i].ptr);
    blocks[i].seed = 0xB10C0000u + i;
    test_fill(blocks[i].ptr, blocks[i].usable, blocks[i].seed);
    ranges[live].start = (uintptr_t)blocks[i].ptr;
    ranges[live].len = blocks[i].usable;
    live++;
  }
  size_t bad = api_first_overlap(ranges, live);
  cr_assert_eq(bad, live, "block [%#zx, +%zu) overlaps [%#zx, +%zu)", (size_t)ranges[bad - 1].start,
               ranges[bad - 1].len, (size_t)ranges[bad < live ? bad : 0].start, ranges[bad < live ? bad : 0].len);
  for (size_t i = 0; i < n; i++) {
    if (blocks[i].ptr == NULL) continue;
    size_t off = test_check(blocks[i].ptr, blocks[i].usable, blocks[i].seed);
    cr_assert_eq(off, blocks[i].usable, "block %p: byte %zu of %zu overwritten", blocks[i].ptr, off, blocks[i].usable);
    buddy_free(blocks[i].ptr);
  }
}

/* rlimit_reuse.c: memory the program freed is memory it can have again
 * under an address-space limit (the idea of glibc's tst-malloc-thread-fail:
 * allocation under RLIMIT_AS).
 *
 * An allocator that keeps freed memory mapped for a while (so that it is
 * reused without being faulted in again) must give that address space back
 * when a new mapping would pass RLIMIT_AS, before it answers ENOMEM: glibc
 * serves these requests. The scenario lowers RLIMIT_AS to the address space
 * it has (after a first allocation of each kind) plus HEADROOM, then twice
 * fills FILLED of the headroom with blocks (of a medium size, then small
 * ones), frees them all, and asks for one block of BIG: it fits in the
 * headroom only if the freed blocks' address space went back. Last, small
 * blocks fill the headroom until malloc fails, a RESERVE allocated before
 * them is freed, and small blocks must come again, a share of RESERVE.
 *
 * Also run in secure mode with a quarantine large enough to hold every
 * block freed here (meson.build): its blocks, waiting before reuse, must
 * give way too. FILLED leaves room for secure mode's larger blocks (a
 * medium block's header page doubles its run).
 */
#include <sys/resource.h>

#include "hang_common.h"

#define HEADROOM (192 * MIB)
#define FILLED (64 * MIB)
#define BIG (160 * MIB)
#define MEDIUM_BLOCK MIB
#define SMALL_BLOCK 1000
#define SMALL_COUNT (FILLED / SMALL_BLOCK)
#define RESERVE (32 * MIB)
#define FILL_COUNT (HEADROOM / SMALL_BLOCK)

/* Fills FILLED with blocks of `size`, each written, frees them all, then
 * asks for BIG. */
static void fill_free_then_big(const char *what, size_t size) {
  static void *blocks[SMALL_COUNT];
  size_t count = FILLED / size;
  for (size_t i = 0; i < count; i++) {
    blocks[i] = malloc(size);
    if (blocks[i] == NULL)
      hang_fail("%s: malloc(%zu) number %zu of %zu failed (%s) under RLIMIT_AS", what, size, i + 1, count,
                strerror(errno));
    memset(blocks[i], (int)i, size < 64 ? size : 64);
  }
  for (size_t i = 0; i < count; i++) free(blocks[i]);
  char *big = malloc(BIG);
  if (big == NULL)
    hang_fail("%s: after %zu MiB of blocks of %zu bytes were freed, malloc(%zu MiB) failed (%s) with %zu MiB of "
              "address space under a limit of %zu MiB more",
              what, (size_t)FILLED / MIB, size, (size_t)BIG / MIB, strerror(errno), test_vsize_bytes() / MIB,
              (size_t)HEADROOM / MIB);
  big[0] = big[BIG - 1] = 1;
  free(big);
}

/* Small blocks until malloc fails, RESERVE freed, then RESERVE / 4 of small
 * blocks again (a share of it: a small block's slab takes more than its
 * bytes, and secure mode's about twice that: a guard page per slab, a
 * trailer per block). */
static void fill_to_the_limit_then_free_a_reserve(void) {
  static void *blocks[FILL_COUNT];
  char *reserve = malloc(RESERVE);
  if (reserve == NULL) hang_fail("malloc(%zu MiB) for the reserve failed", (size_t)RESERVE / MIB);
  reserve[0] = 1;
  size_t n = 0;
  while (n < FILL_COUNT && (blocks[n] = malloc(SMALL_BLOCK)) != NULL) n++;
  if (n == FILL_COUNT) hang_fail("%zu blocks of %d bytes did not reach the limit", n, SMALL_BLOCK);
  free(reserve);
  size_t again = 0, want = RESERVE / 4 / SMALL_BLOCK;
  while (again < want && n < FILL_COUNT && (blocks[n] = malloc(SMALL_BLOCK)) != NULL) n++, again++;
  if (again < want)
    hang_fail("at the limit, after a reserve of %zu MiB was freed, only %zu blocks of %d bytes came (%s)",
              (size_t)RESERVE / MIB, again, SMALL_BLOCK, strerror(errno));
  for (size_t i = 0; i < n; i++) free(blocks[i]);
}

int main(void) {
  /* Whatever the allocator reserves at its first allocations of each kind
   * is in place before the limit is set. */
  free(malloc(SMALL_BLOCK));
  free(malloc(MEDIUM_BLOCK));
  free(malloc(BIG));
  struct rlimit rl;
  hang_check_errno(getrlimit(RLIMIT_AS, &rl), "getrlimit");
  rlim_t limit = (rlim_t)(test_vsize_bytes() + HEADROOM);
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > limit) {
    rl.rlim_cur = limit;
    hang_check_errno(setrlimit(RLIMIT_AS, &rl), "setrlimit");
  }
  fill_free_then_big("medium blocks", MEDIUM_BLOCK);
  fill_free_then_big("small blocks", SMALL_BLOCK);
  fill_to_the_limit_then_free_a_reserve();
  return 0;
}

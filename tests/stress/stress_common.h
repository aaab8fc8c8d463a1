/* stress_common.h: helpers shared by the multi-thread stress programs.
 *
 * The stress programs are written against the standard malloc names so the
 * same source runs two ways:
 *  - preloaded: built plainly and run with LD_PRELOAD=libbuddymalloc.so;
 *  - linked: built with -DSTRESS_LINKED, which maps the malloc family used by
 *    the test onto the prefixed buddy_* API and links the static core.
 *
 * Besides that mapping (tests/support/linked_names.h) this header holds: a
 * size picker (16 B .. 256 KiB, occasionally a few MiB) over the shared
 * random generator, blocks filled and checked with the shared pattern
 * (tests/support/test_support.h) of a cookie derived from address, thread and
 * sequence, an RSS bound check, and a thread-safe pass/fail tally. Everything
 * here is data-race free so the programs can run under ThreadSanitizer.
 */
#ifndef STRESS_COMMON_H
#define STRESS_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_support.h"

#include "linked_names.h"

#ifdef STRESS_LINKED
#define STRESS_MODE "linked"
#else
#define STRESS_MODE "preloaded"
#endif

/* Sanitizer builds run much slower; the programs scale their work down. */
#define STRESS_SANITIZED (TEST_ASAN || TEST_TSAN)

/* Size distribution of stress_pick_size(). */
#define STRESS_MIN_SIZE ((size_t)16)
#define STRESS_MAX_SMALL_SHIFT 18 /* small/medium sizes stay below 256 KiB */
#define STRESS_MIN_SHIFT 4        /* 16 B */
#define STRESS_HUGE_ONE_IN 1024   /* one pick in this many is multi-MiB */
#define STRESS_HUGE_MIN (1 * MIB)
#define STRESS_HUGE_MAX (6 * MIB)

/* Blocks are filled and checked sampled (test_fill_sampled: whole up to
 * 4 KiB, larger ones one word in 64 bytes and their tail); a realloc's kept
 * prefix is checked whole over its first STRESS_REALLOC_PROBE bytes. */
#define STRESS_REALLOC_PROBE (4 * KIB)

/* Work multiplier: 1 normally, smaller under sanitizers; BUDDY_SOAK=1 makes
 * every program run many times longer. */
#define STRESS_SOAK_FACTOR 50
#define STRESS_SANITIZER_DIVISOR 4

/* ---- failure tally ------------------------------------------------------ */

static atomic_ulong stress_failures;
static atomic_ulong stress_passes;
static pthread_mutex_t stress_print_lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((format(printf, 1, 2))) static inline void stress_fail(const char *fmt, ...) {
  va_list ap;
  atomic_fetch_add(&stress_failures, 1);
  pthread_mutex_lock(&stress_print_lock);
  fputs("FAIL: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  pthread_mutex_unlock(&stress_print_lock);
}

/* Records the result of one named check of the program; true if it passed. */
static inline bool stress_check(bool ok, const char *what) {
  if (ok) {
    atomic_fetch_add(&stress_passes, 1);
    printf("ok: %s\n", what);
  } else {
    stress_fail("%s", what);
  }
  fflush(stdout);
  return ok;
}

/* Prints the summary line and returns the process exit status. */
static inline int stress_finish(const char *prog) {
  unsigned long failed = atomic_load(&stress_failures);
  unsigned long passed = atomic_load(&stress_passes);
  printf("%s (%s): %lu passed, %lu failed\n", prog, STRESS_MODE, passed, failed);
  fflush(stdout);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Aborts the run for failures that leave nothing sensible to check. */
__attribute__((noreturn)) static inline void stress_die(const char *what, int err) {
  fprintf(stderr, "FATAL: %s: %s\n", what, strerror(err));
  exit(EXIT_FAILURE);
}

static inline unsigned stress_scale(void) {
  const char *soak = getenv("BUDDY_SOAK");
  unsigned scale = STRESS_SANITIZER_DIVISOR;
  if (soak != NULL && soak[0] != '\0' && strcmp(soak, "0") != 0) scale *= STRESS_SOAK_FACTOR;
  if (STRESS_SANITIZED) scale /= STRESS_SANITIZER_DIVISOR;
  return scale; /* in quarters of the nominal work */
}

/* Nominal work count n, scaled by stress_scale(); never below 1. */
static inline unsigned long stress_work(unsigned long n) {
  unsigned long w = n * stress_scale() / STRESS_SANITIZER_DIVISOR;
  return w == 0 ? 1 : w;
}

/* ---- sizes, from the shared generator ------------------------------------ */

static inline size_t stress_pick_size(test_rng *r) {
  if (test_rng_below(r, STRESS_HUGE_ONE_IN) == 0)
    return STRESS_HUGE_MIN + test_rng_below(r, STRESS_HUGE_MAX - STRESS_HUGE_MIN);
  unsigned shift = STRESS_MIN_SHIFT + (unsigned)test_rng_below(r, STRESS_MAX_SMALL_SHIFT - STRESS_MIN_SHIFT);
  size_t lo = (size_t)1 << shift;
  return lo + test_rng_below(r, lo);
}

/* Log-uniform size in [16 B, limit); limit is a power of two above 16. */
static inline size_t stress_pick_small(test_rng *r, size_t limit) {
  unsigned top = STRESS_MIN_SHIFT;
  while (((size_t)2 << top) <= limit) top++;
  unsigned shift = STRESS_MIN_SHIFT + (unsigned)test_rng_below(r, top - STRESS_MIN_SHIFT);
  size_t lo = (size_t)1 << shift;
  return lo + test_rng_below(r, lo);
}

/* ---- block cookies ------------------------------------------------------- */

/* Cookie of one block, the seed of its pattern: depends on where it lives,
 * who made it and when. */
static inline uint64_t stress_cookie(const void *p, unsigned tid, uint64_t seq) {
  return test_mix64((uint64_t)(uintptr_t)p ^ ((uint64_t)tid << 48) ^ (seq * 0x9E3779B97F4A7C15ull));
}

/* One live block with everything needed to check it. */
typedef struct {
  unsigned char *p;
  size_t size;
  unsigned tid;
  uint64_t seq;
} stress_block;

/* Allocates a block of `size` with malloc, calloc or posix_memalign (chosen by
 * the rng), checks what the standard promises (non-NULL, 16-byte alignment,
 * zeroed calloc memory, requested alignment) and fills it. Returns false and
 * reports on failure. */
#define STRESS_ALIGNMENT 16u
#define STRESS_MAX_MEMALIGN_SHIFT 12 /* posix_memalign alignments up to 4 KiB */
#define STRESS_CALLOC_CHECK_LIMIT (64 * KIB)

static inline bool stress_alloc(stress_block *blk, test_rng *r, size_t size, unsigned tid, uint64_t seq) {
  void *p = NULL;
  size_t align = STRESS_ALIGNMENT;
  unsigned how = (unsigned)test_rng_below(r, 8);
  if (how == 0) {
    p = calloc(1, size);
    if (p != NULL) {
      size_t lim = size < STRESS_CALLOC_CHECK_LIMIT ? size : STRESS_CALLOC_CHECK_LIMIT;
      const unsigned char *b = p;
      size_t nonzero = test_first_nonzero(b, lim);
      if (nonzero != lim) stress_fail("calloc(1, %zu) = %p not zero at offset %zu", size, p, nonzero);
      if (b[size - 1] != 0) stress_fail("calloc(1, %zu) = %p last byte not zero", size, p);
    }
  } else if (how == 1) {
    align = (size_t)1 << (3 + test_rng_below(r, STRESS_MAX_MEMALIGN_SHIFT - 2));
    int rc = posix_memalign(&p, align, size);
    if (rc != 0) {
      stress_fail("posix_memalign(%zu, %zu) returned %d", align, size, rc);
      return false;
    }
    if (align < STRESS_ALIGNMENT) align = STRESS_ALIGNMENT;
  } else {
    p = malloc(size);
  }
  if (p == NULL) {
    stress_fail("allocation of %zu bytes returned NULL", size);
    return false;
  }
  if ((uintptr_t)p % align != 0) stress_fail("block %p of %zu bytes not aligned to %zu", p, size, align);
  blk->p = p;
  blk->size = size;
  blk->tid = tid;
  blk->seq = seq;
  test_fill_sampled(p, size, stress_cookie(p, tid, seq));
  return true;
}

/* Checks a block's contents; reports and returns false if they changed. */
static inline bool stress_check_block(const stress_block *blk, const char *where) {
  size_t bad = test_check_sampled(blk->p, blk->size, stress_cookie(blk->p, blk->tid, blk->seq));
  if (bad != blk->size) {
    stress_fail("%s: block %p (%zu bytes, thread %u, seq %" PRIu64 ") corrupted at offset %zu", where, (void *)blk->p,
                blk->size, blk->tid, blk->seq, bad);
    return false;
  }
  return true;
}

/* Checks then frees a block, and clears the record. */
static inline bool stress_release(stress_block *blk, const char *where) {
  bool ok = stress_check_block(blk, where);
  free(blk->p);
  blk->p = NULL;
  return ok;
}

/* Swaps *mine with a slot of a table the threads share, under the table's
 * lock: *mine then holds what another thread left there (often a block it
 * made), or nothing. */
static inline void stress_swap_shared(pthread_mutex_t *lock, stress_block *slot, stress_block *mine) {
  pthread_mutex_lock(lock);
  stress_block theirs = *slot;
  *slot = *mine;
  *mine = theirs;
  pthread_mutex_unlock(lock);
}

/* Grows or shrinks a block with realloc; checks the kept prefix survived,
 * then refills it as block new_seq of thread new_tid. */
static inline bool stress_resize(stress_block *blk, size_t new_size, unsigned new_tid, uint64_t new_seq,
                                 const char *where) {
  if (!stress_check_block(blk, where)) return false;
  uint64_t old_cookie = stress_cookie(blk->p, blk->tid, blk->seq);
  size_t keep = blk->size < new_size ? blk->size : new_size;
  /* Put a pattern the realloc must preserve that does not depend on the
   * address (the block may move). Only the first bytes: cheap enough. */
  size_t probe = keep < STRESS_REALLOC_PROBE ? keep : STRESS_REALLOC_PROBE;
  test_fill(blk->p, probe, old_cookie);
  unsigned char *q = realloc(blk->p, new_size);
  if (q == NULL) {
    stress_fail("%s: realloc(%p, %zu) returned NULL", where, (void *)blk->p, new_size);
    free(blk->p);
    blk->p = NULL;
    return false;
  }
  bool ok = true;
  size_t lost = test_check(q, probe, old_cookie);
  if (lost != probe) {
    stress_fail("%s: realloc %zu -> %zu lost byte %zu", where, blk->size, new_size, lost);
    ok = false;
  }
  if ((uintptr_t)q % STRESS_ALIGNMENT != 0) {
    stress_fail("%s: realloc returned misaligned %p", where, (void *)q);
    ok = false;
  }
  blk->p = q;
  blk->size = new_size;
  blk->tid = new_tid;
  blk->seq = new_seq;
  test_fill_sampled(q, new_size, stress_cookie(q, new_tid, new_seq));
  return ok;
}

/* ---- RSS (test_rss_bytes) ------------------------------------------------ */

/* RSS growth allowed between the warm-up round and the end. Tests with an
 * RSS bound do not scale their work down under sanitizers (see
 * STRESS_CHURN_FACTOR), only up for soaks. */
#define STRESS_RSS_BOUND (96 * MIB)

/* A bound only means something if far more memory went through the
 * allocator than the bound: the run must churn at least this many times it. */
#define STRESS_CHURN_FACTOR 4

/* Checks that RSS after the run stayed within bound of the warm RSS, and that
 * the run churned enough memory for that to prove anything. */
static inline bool stress_check_rss(const char *what, size_t warm, size_t final, size_t churned) {
  char msg[256];
  if (churned < STRESS_CHURN_FACTOR * (size_t)STRESS_RSS_BOUND) {
    stress_fail("%s: only %zu MiB churned, too little to test an RSS bound of %zu MiB", what, churned / MIB,
                (size_t)STRESS_RSS_BOUND / MIB);
    return false;
  }
  size_t growth = final > warm ? final - warm : 0;
#if TEST_ASAN || TEST_TSAN
  /* Under ASan or TSan the RSS is mostly the sanitizer's own shadow and
   * metadata (60-120 MiB of growth seen under TSan where the plain build
   * grows 2-20 MiB): report it, and leave the bound to the plain builds,
   * which run this same check linked and preloaded. */
  printf("skip: %s: RSS growth %zu KiB under a sanitizer (bound checked in the plain builds)\n", what, growth / KIB);
  return true;
#endif
  snprintf(msg, sizeof msg,
           "%s: RSS after warm-up %zu KiB, at end %zu KiB (growth %zu KiB, bound %zu KiB, %zu MiB churned)", what,
           warm / KIB, final / KIB, growth / KIB, (size_t)STRESS_RSS_BOUND / KIB, churned / MIB);
  return stress_check(growth <= STRESS_RSS_BOUND, msg);
}

/* ---- threads ------------------------------------------------------------- */

static inline void stress_spawn(pthread_t *t, void *(*fn)(void *), void *arg) {
  int rc = pthread_create(t, NULL, fn, arg);
  if (rc != 0) stress_die("pthread_create", rc);
}

static inline void *stress_join(pthread_t t) {
  void *ret = NULL;
  int rc = pthread_join(t, &ret);
  if (rc != 0) stress_die("pthread_join", rc);
  return ret;
}

#endif /* STRESS_COMMON_H */

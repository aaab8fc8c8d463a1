/* test_support.h: what every test suite shares (unit/, integration/, api/,
 * stress/, hang/, fuzz/): sizes, the sanitizer in use, a deterministic random
 * generator, byte patterns to fill blocks with and check them by, and readers
 * of the clock and of /proc/self/statm.
 *
 * Header only, plain C11 with no allocation of its own: the same helpers serve
 * the Criterion suites, the stress and hang programs (TSan builds included:
 * nothing here touches shared state), the API suite's plain build that runs
 * preloaded, and the fuzzer. It includes no allocator header and maps no
 * name: linked_names.h does that for the programs built in both forms.
 */
#ifndef TEST_SUPPORT_H
#define TEST_SUPPORT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)
#define GIB (KIB * MIB)

#define NS_PER_MS ((uint64_t)1000000)

/* ---- sanitizers ------------------------------------------------------------ */

/* TEST_ASAN / TEST_TSAN: 1 in a build under AddressSanitizer / ThreadSanitizer
 * (gcc says so with __SANITIZE_*__, clang with __has_feature), else 0. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif
#ifndef TEST_TSAN
#define TEST_TSAN 0
#endif

/* ---- random numbers ---------------------------------------------------------- */

/* xorshift64*: a seed gives the same stream on every run, in every build and
 * under every allocator, so a failing run can be repeated. */
typedef struct {
  uint64_t s;
} test_rng;

static inline void test_rng_seed(test_rng *r, uint64_t seed) {
  r->s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  if (r->s == 0) r->s = 1;
}

/* A generator seeded with `seed`, for initialisers. */
static inline test_rng test_rng_seeded(uint64_t seed) {
  test_rng r;
  test_rng_seed(&r, seed);
  return r;
}

static inline uint64_t test_rng_next(test_rng *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n), n >= 1. */
static inline uint64_t test_rng_below(test_rng *r, uint64_t n) {
  return test_rng_next(r) % n;
}

/* Uniform in [lo, hi], lo <= hi (the whole of size_t included). */
static inline size_t test_rng_range(test_rng *r, size_t lo, size_t hi) {
  uint64_t span = (uint64_t)(hi - lo) + 1;
  if (span == 0) return (size_t)test_rng_next(r);
  return lo + (size_t)test_rng_below(r, span);
}

/* A 64-bit mixer (murmur3's finaliser): spreads a block's identity (address,
 * thread, sequence number) into a pattern seed. */
static inline uint64_t test_mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  x ^= x >> 33;
  return x;
}

/* ---- byte patterns ----------------------------------------------------------- */

/* A block is filled with a pattern of a seed: the byte at each offset depends
 * on the seed and on that offset alone, so any part of a block (the prefix
 * realloc keeps, both ends of a large block) can be written and checked on its
 * own, and a block moved or shifted by some bytes no longer matches. Offsets
 * [8w, 8w + 8) hold the bytes of test_pattern_word(seed, w) in memory order. */
static inline uint64_t test_pattern_word(uint64_t seed, size_t word) {
  uint64_t x = (seed ^ (uint64_t)word) * 0x9E3779B97F4A7C15ull;
  return x ^ (x >> 29) ^ seed;
}

static inline unsigned char test_pattern_byte(uint64_t seed, size_t offset) {
  uint64_t w = test_pattern_word(seed, offset / sizeof w);
  unsigned char bytes[sizeof w];
  memcpy(bytes, &w, sizeof w);
  return bytes[offset % sizeof w];
}

/* Writes the pattern of `seed` at offsets [from, to) of block. */
static inline void test_fill_range(void *block, size_t from, size_t to, uint64_t seed) {
  unsigned char *b = block;
  size_t i = from;
  for (; i < to && i % sizeof(uint64_t) != 0; i++) b[i] = test_pattern_byte(seed, i);
  for (; i + sizeof(uint64_t) <= to; i += sizeof(uint64_t)) {
    uint64_t w = test_pattern_word(seed, i / sizeof w);
    memcpy(b + i, &w, sizeof w);
  }
  for (; i < to; i++) b[i] = test_pattern_byte(seed, i);
}

/* The first offset in [from, to) of block that differs from the pattern of
 * `seed`, or `to` if none does. */
static inline size_t test_check_range(const void *block, size_t from, size_t to, uint64_t seed) {
  const unsigned char *b = block;
  size_t i = from;
  for (; i < to && i % sizeof(uint64_t) != 0; i++)
    if (b[i] != test_pattern_byte(seed, i)) return i;
  for (; i + sizeof(uint64_t) <= to; i += sizeof(uint64_t)) {
    uint64_t w = test_pattern_word(seed, i / sizeof w);
    if (memcmp(b + i, &w, sizeof w) != 0) break; /* the byte loop below finds which */
  }
  for (; i < to; i++)
    if (b[i] != test_pattern_byte(seed, i)) return i;
  return to;
}

/* The whole of [p, p + len): test_check returns the offset of the first wrong
 * byte, or len if the block is intact. */
static inline void test_fill(void *p, size_t len, uint64_t seed) {
  test_fill_range(p, 0, len, seed);
}

static inline size_t test_check(const void *p, size_t len, uint64_t seed) {
  return test_check_range(p, 0, len, seed);
}

/* Sampled, for programs that keep many large blocks: a block of up to
 * TEST_SAMPLE_WHOLE_MAX bytes is filled whole; a larger one gets the pattern's
 * word at every TEST_SAMPLE_STRIDE bytes (each of its pages is touched) and its
 * last 8 bytes. test_check_sampled checks those same bytes. */
#define TEST_SAMPLE_WHOLE_MAX (4 * KIB)
#define TEST_SAMPLE_STRIDE 64

static inline void test_fill_sampled(void *p, size_t len, uint64_t seed) {
  if (len <= TEST_SAMPLE_WHOLE_MAX) {
    test_fill(p, len, seed);
    return;
  }
  for (size_t i = 0; i + sizeof(uint64_t) <= len; i += TEST_SAMPLE_STRIDE)
    test_fill_range(p, i, i + sizeof(uint64_t), seed);
  test_fill_range(p, len - sizeof(uint64_t), len, seed);
}

static inline size_t test_check_sampled(const void *p, size_t len, uint64_t seed) {
  if (len <= TEST_SAMPLE_WHOLE_MAX) return test_check(p, len, seed);
  for (size_t i = 0; i + sizeof(uint64_t) <= len; i += TEST_SAMPLE_STRIDE) {
    size_t bad = test_check_range(p, i, i + sizeof(uint64_t), seed);
    if (bad != i + sizeof(uint64_t)) return bad;
  }
  return test_check_range(p, len - sizeof(uint64_t), len, seed);
}

/* The offset of the first non-zero byte of [p, p + len), or len. */
static inline size_t test_first_nonzero(const void *p, size_t len) {
  const unsigned char *b = p;
  for (size_t i = 0; i < len; i++)
    if (b[i] != 0) return i;
  return len;
}

/* ---- time -------------------------------------------------------------------- */

/* Monotonic nanoseconds. clock_gettime is not a cancellation point. */
static inline uint64_t test_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps ms milliseconds, the whole of them even if a signal interrupts. */
static inline void test_sleep_ms(long ms) {
  struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

/* ---- /proc/self/statm -------------------------------------------------------- */

/* This process's virtual size (VmSize) and resident set size in bytes, from
 * /proc/self/statm, into *vsize and *rss (either may be NULL). False if the
 * file cannot be read. */
static inline bool test_statm_read(size_t *vsize, size_t *rss) {
  unsigned long size_pages = 0, rss_pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return false;
  bool ok = fscanf(f, "%lu %lu", &size_pages, &rss_pages) == 2;
  fclose(f);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (vsize != NULL) *vsize = (size_t)size_pages * page;
  if (rss != NULL) *rss = (size_t)rss_pages * page;
  return ok;
}

/* The same, for callers with nothing sensible to do without them: a process
 * that cannot read its own statm reports it and aborts, which fails any test
 * (a test that expects an abort reads test_statm_read itself). */
static inline size_t test_statm_or_abort(bool want_rss) {
  size_t vsize = 0, rss = 0;
  if (!test_statm_read(&vsize, &rss)) {
    fprintf(stderr, "test_support: cannot read /proc/self/statm: %s\n", strerror(errno));
    abort();
  }
  return want_rss ? rss : vsize;
}

static inline size_t test_vsize_bytes(void) {
  return test_statm_or_abort(false);
}

static inline size_t test_rss_bytes(void) {
  return test_statm_or_abort(true);
}

#endif /* TEST_SUPPORT_H */

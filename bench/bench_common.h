/* bench_common.h: helpers shared by every buddymalloc benchmark workload.
 *
 * Holds the deterministic PRNG (xorshift64*), the monotonic clock, the
 * command-line parser every workload uses, /proc/self/status readers for
 * RSS, a checksum mixer and the one-line result printer.  Everything is
 * `static inline` so each workload stays a single translation unit and the
 * workloads only ever call the standard malloc API: any allocator can be
 * LD_PRELOADed into the same binary.
 *
 * Common options (each workload documents its own defaults):
 *   -n N     iterations / operations (the workload's main size knob)
 *   -t T     thread count (multi-threaded workloads only)
 *   -m MODE  variant of the workload (e.g. "small" or "mixed")
 *   -z SIZE  block size in bytes (pair microbench)
 *   -k K     blocks kept live (pair microbench)
 *   -q       quick: scale the default work down for a smoke run
 * Output: exactly one line on stdout,
 *   workload=NAME ops=N seconds=S checksum=0x... [key=value ...]
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Fixed seed so that every allocator sees exactly the same request stream. */
#define BENCH_SEED 0x9E3779B97F4A7C15ULL

/* ---- PRNG ------------------------------------------------------------- */

typedef struct {
  uint64_t state;
} bench_rng;

static inline void bench_rng_init(bench_rng *rng, uint64_t stream) {
  /* Mix the stream id so that per-thread generators are decorrelated; the
   * state must never be zero for xorshift. */
  uint64_t s = BENCH_SEED ^ (stream * 0xD1B54A32D192ED03ULL);
  rng->state = s ? s : BENCH_SEED;
}

static inline uint64_t bench_rng_next(bench_rng *rng) {
  uint64_t x = rng->state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng->state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, bound); bound > 0.  The tiny modulo bias is irrelevant here. */
static inline uint64_t bench_rng_below(bench_rng *rng, uint64_t bound) {
  return (bench_rng_next(rng) >> 11) % bound;
}

/* Uniform in [lo, hi]. */
static inline size_t bench_rng_range(bench_rng *rng, size_t lo, size_t hi) {
  return lo + (size_t)bench_rng_below(rng, (uint64_t)(hi - lo) + 1);
}

/* Roughly log-uniform in [lo, hi]: picks a power-of-two bucket uniformly,
 * then a uniform size inside it.  Models "many small, few large". */
static inline size_t bench_rng_logsize(bench_rng *rng, size_t lo, size_t hi) {
  unsigned lo_bits = 0, hi_bits = 0;
  while (((size_t)1 << (lo_bits + 1)) <= lo) lo_bits++;
  while (((size_t)1 << (hi_bits + 1)) <= hi) hi_bits++;
  unsigned bits = lo_bits + (unsigned)bench_rng_below(rng, hi_bits - lo_bits + 1);
  size_t base = (size_t)1 << bits;
  size_t size = base + (size_t)bench_rng_below(rng, base);
  if (size < lo) size = lo;
  if (size > hi) size = hi;
  return size;
}

/* ---- time and memory -------------------------------------------------- */

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reads a "Field:   123 kB" line from /proc/self/status; -1 if unavailable. */
static inline long bench_status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  size_t len = strlen(field);
  long value = -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, field, len) == 0 && line[len] == ':') {
      value = strtol(line + len + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return value;
}

static inline long bench_rss_kb(void) {
  return bench_status_kb("VmRSS");
}
static inline long bench_peak_rss_kb(void) {
  return bench_status_kb("VmHWM");
}

/* ---- allocation helpers ---------------------------------------------- */

static inline void *bench_xmalloc(size_t size) {
  void *p = malloc(size);
  if (!p) {
    fprintf(stderr, "bench: malloc(%zu) failed\n", size);
    exit(2);
  }
  return p;
}

static inline void *bench_xrealloc(void *old, size_t size) {
  void *p = realloc(old, size);
  if (!p) {
    fprintf(stderr, "bench: realloc(%zu) failed\n", size);
    exit(2);
  }
  return p;
}

/* Stamps a block: a tag in the first word-sized bytes and in the last byte,
 * as a program filling a header and a terminator would. */
static inline void bench_stamp(void *block, size_t size, uint64_t tag) {
  unsigned char *b = block;
  size_t head = size < sizeof tag ? size : sizeof tag;
  memcpy(b, &tag, head);
  b[size - 1] = (unsigned char)tag;
}

/* Reads back what bench_stamp wrote; aborts if the block was corrupted.
 * Returns the head bytes as stored (the tag, for blocks over 8 bytes). */
static inline uint64_t bench_check(const void *block, size_t size, uint64_t tag) {
  const unsigned char *b = block;
  unsigned char want[sizeof tag];
  size_t head = size < sizeof tag ? size : sizeof tag;
  memcpy(want, &tag, sizeof want);
  /* In a block of at most 8 bytes the last byte, stamped after the tag,
   * overwrote one of the tag's bytes. */
  if (size <= sizeof want) want[size - 1] = (unsigned char)tag;
  if (memcmp(b, want, head) != 0 || b[size - 1] != (unsigned char)tag) {
    fprintf(stderr, "bench: block %p (size %zu) corrupted\n", block, size);
    abort();
  }
  uint64_t got = 0;
  memcpy(&got, b, head);
  return got;
}

/* Order-independent checksum combiner (addition of mixed values), so
 * multi-threaded workloads produce the same checksum whatever the schedule. */
static inline uint64_t bench_mix(uint64_t value) {
  value ^= value >> 33;
  value *= 0xFF51AFD7ED558CCDULL;
  value ^= value >> 33;
  return value;
}

/* ---- options ---------------------------------------------------------- */

typedef struct {
  long n;           /* iterations / operations */
  int threads;      /* thread count */
  const char *mode; /* workload variant */
  long size;        /* block size (pair) */
  int keep;         /* blocks kept live (pair) */
  int quick;        /* -q given */
  int n_given;      /* -n given explicitly (quick then does not rescale) */
} bench_opts;

static inline void bench_usage(const char *prog, const char *help) {
  fprintf(stderr, "usage: %s [-n N] [-t THREADS] [-m MODE] [-z SIZE] [-k KEEP] [-q]\n%s\n", prog, help ? help : "");
}

/* Parses argv into *opts (which holds the defaults on entry).  With -q and
 * no -n, n becomes quick_n.  Exits on bad usage. */
static inline void bench_parse(int argc, char **argv, bench_opts *opts, long quick_n, const char *help) {
  int c;
  while ((c = getopt(argc, argv, "n:t:m:z:k:qh")) != -1) {
    switch (c) {
    case 'n':
      opts->n = strtol(optarg, NULL, 0);
      opts->n_given = 1;
      break;
    case 't':
      opts->threads = (int)strtol(optarg, NULL, 0);
      break;
    case 'm':
      opts->mode = optarg;
      break;
    case 'z':
      opts->size = strtol(optarg, NULL, 0);
      break;
    case 'k':
      opts->keep = (int)strtol(optarg, NULL, 0);
      break;
    case 'q':
      opts->quick = 1;
      break;
    case 'h':
      bench_usage(argv[0], help);
      exit(0);
    default:
      bench_usage(argv[0], help);
      exit(1);
    }
  }
  if (opts->quick && !opts->n_given) opts->n = quick_n;
  if (opts->n < 1 || opts->threads < 1 || opts->keep < 1 || opts->size < 0) {
    bench_usage(argv[0], help);
    exit(1);
  }
}

static inline int bench_mode_is(const bench_opts *opts, const char *mode) {
  return opts->mode && strcmp(opts->mode, mode) == 0;
}

/* Prints the single result line; `extra` (may be NULL or "") is appended. */
static inline void bench_report(const char *name, long ops, double seconds, uint64_t checksum, const char *extra) {
  printf("workload=%s ops=%ld seconds=%.6f checksum=0x%016llx%s%s\n", name, ops, seconds, (unsigned long long)checksum,
         extra && *extra ? " " : "", extra ? extra : "");
  fflush(stdout);
}

/* Keeps a pointer "used" so the compiler cannot drop an allocation whose
 * only purpose is to exist (leaks, live sets). */
static void *volatile bench_sink;

static inline void bench_escape(void *p) {
  bench_sink = p;
}

#endif /* BENCH_COMMON_H */

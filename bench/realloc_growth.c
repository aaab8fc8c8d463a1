/* realloc_growth.c: blocks that grow through realloc.
 *
 * Stresses: realloc's in-place growth, its copy path and the size-class
 * transitions a growing block walks through (small -> medium -> large).
 *   -m vectors : many dynamic arrays growing geometrically (x1.5), each
 *                reset once it reaches a random cap of 4 KiB..4 MiB
 *   -m strings : many string builders appending 1..32 bytes at a time with
 *                an exact-size realloc per append, reset at 256 B..64 KiB
 * The contents written before a realloc are verified after it.
 */
#include "bench_common.h"

#define VECTOR_COUNT 256
#define VECTOR_INITIAL 16
#define VECTOR_CAP_MIN (4 * 1024)
#define VECTOR_CAP_MAX (4 * 1024 * 1024)
#define STRING_COUNT 512
#define STRING_STEP_MAX 32
#define STRING_CAP_MIN 256
#define STRING_CAP_MAX (64 * 1024)
#define DEFAULT_VECTOR_OPS 50000L
#define QUICK_VECTOR_OPS 10000L
#define DEFAULT_STRING_OPS 6000000L
#define QUICK_STRING_OPS 300000L

typedef struct {
  unsigned char *data;
  size_t len;   /* bytes in use (== allocated size for both modes) */
  size_t limit; /* reset once len reaches this */
  uint64_t generation;
} growable;

/* Byte expected at offset `pos` of a buffer of generation `gen`. */
static unsigned char pattern(uint64_t gen, size_t pos) {
  return (unsigned char)(gen * 131 + pos * 7);
}

static void reset(growable *g, bench_rng *rng, size_t cap_min, size_t cap_max, uint64_t gen) {
  free(g->data);
  g->data = NULL;
  g->len = 0;
  g->limit = bench_rng_logsize(rng, cap_min, cap_max);
  g->generation = gen;
}

static uint64_t run_vectors(long ops, bench_rng *rng) {
  growable vec[VECTOR_COUNT] = {{0}};
  uint64_t checksum = 0, gen = 0;
  for (size_t i = 0; i < VECTOR_COUNT; i++) reset(&vec[i], rng, VECTOR_CAP_MIN, VECTOR_CAP_MAX, gen++);
  for (long op = 0; op < ops; op++) {
    growable *g = &vec[bench_rng_below(rng, VECTOR_COUNT)];
    if (g->len >= g->limit) {
      reset(g, rng, VECTOR_CAP_MIN, VECTOR_CAP_MAX, gen++);
      continue;
    }
    size_t old_len = g->len;
    size_t new_len = old_len ? old_len + old_len / 2 : VECTOR_INITIAL;
    g->data = bench_xrealloc(g->data, new_len);
    if (old_len) {
      /* The first and last bytes written so far must have survived. */
      if (g->data[0] != pattern(g->generation, 0) || g->data[old_len - 1] != pattern(g->generation, old_len - 1)) {
        fprintf(stderr, "realloc_growth: vector contents lost\n");
        abort();
      }
      checksum += bench_mix(g->data[old_len - 1] + old_len);
    }
    /* "Append elements": write the start and end of the new region and one
     * byte per 4 KiB page in between, as filling an array would touch it. */
    for (size_t pos = old_len; pos < new_len; pos += 4096) g->data[pos] = pattern(g->generation, pos);
    g->data[new_len - 1] = pattern(g->generation, new_len - 1);
    g->len = new_len;
  }
  for (size_t i = 0; i < VECTOR_COUNT; i++) free(vec[i].data);
  return checksum;
}

static uint64_t run_strings(long ops, bench_rng *rng) {
  growable str[STRING_COUNT] = {{0}};
  uint64_t checksum = 0, gen = 0;
  for (size_t i = 0; i < STRING_COUNT; i++) reset(&str[i], rng, STRING_CAP_MIN, STRING_CAP_MAX, gen++);
  for (long op = 0; op < ops; op++) {
    growable *g = &str[bench_rng_below(rng, STRING_COUNT)];
    if (g->len >= g->limit) {
      checksum += bench_mix(g->len + (g->len ? g->data[g->len / 2] : 0));
      reset(g, rng, STRING_CAP_MIN, STRING_CAP_MAX, gen++);
      continue;
    }
    size_t step = bench_rng_range(rng, 1, STRING_STEP_MAX);
    size_t old_len = g->len;
    /* +1 for the terminating NUL a C string builder would keep. */
    g->data = bench_xrealloc(g->data, old_len + step + 1);
    if (old_len && g->data[old_len - 1] != pattern(g->generation, old_len - 1)) {
      fprintf(stderr, "realloc_growth: string contents lost\n");
      abort();
    }
    for (size_t pos = old_len; pos < old_len + step; pos++) g->data[pos] = pattern(g->generation, pos);
    g->data[old_len + step] = 0;
    g->len = old_len + step;
  }
  for (size_t i = 0; i < STRING_COUNT; i++) free(str[i].data);
  return checksum;
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = 0, .threads = 1, .mode = "vectors", .keep = 1};
  int strings = 0;
  /* The default op count depends on the mode, so peek at -m first. */
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], "-m") == 0 && strcmp(argv[i + 1], "strings") == 0) strings = 1;
  opts.n = strings ? DEFAULT_STRING_OPS : DEFAULT_VECTOR_OPS;
  bench_parse(argc, argv, &opts, strings ? QUICK_STRING_OPS : QUICK_VECTOR_OPS, "modes: vectors (default), strings");
  if (!bench_mode_is(&opts, "vectors") && !bench_mode_is(&opts, "strings")) {
    fprintf(stderr, "realloc_growth: unknown mode %s\n", opts.mode);
    return 1;
  }
  strings = bench_mode_is(&opts, "strings");

  bench_rng rng;
  bench_rng_init(&rng, 3);
  double start = bench_now();
  uint64_t checksum = strings ? run_strings(opts.n, &rng) : run_vectors(opts.n, &rng);
  double seconds = bench_now() - start;
  bench_report(strings ? "realloc-strings" : "realloc-vectors", opts.n, seconds, checksum, NULL);
  return 0;
}

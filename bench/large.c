/* large.c: large-block churn.
 *
 * Stresses: the large-allocation path (typically mmap/munmap or a page
 * cache), page-fault cost and how much freed address space is retained
 * or returned to the OS.
 *   -m churn   : a pool of 16 blocks of 64 KiB..32 MiB (log-uniform),
 *                randomly replaced; one byte written per 4 KiB page
 *   -m huge    : 6 live blocks of 5..25 MiB, randomly replaced, each new
 *                block zero-filled with memset as a buffer would be
 *   -m replace : the same with 20 live blocks (about 300 MiB live): the
 *                freed block rarely matches the next request's size, so
 *                an allocator that caches freed large blocks must split,
 *                merge or return them, and one that maps each block anew
 *                pays the page faults every time.  300 replacements by
 *                default; the published form of this pattern does 2000
 *                (-n 2000)
 */
#include "bench_common.h"

#define CHURN_SLOTS 16
#define CHURN_MIN (64 * 1024)
#define CHURN_MAX (32 * 1024 * 1024)
#define HUGE_SLOTS 6
#define REPLACE_SLOTS 20
#define HUGE_MIN (5 * 1024 * 1024)
#define HUGE_MAX (25 * 1024 * 1024)
#define MAX_SLOTS REPLACE_SLOTS
_Static_assert(MAX_SLOTS >= CHURN_SLOTS && MAX_SLOTS >= HUGE_SLOTS, "pool too small");
#define PAGE_BYTES 4096
#define DEFAULT_CHURN_OPS 150L
#define QUICK_CHURN_OPS 20L
#define DEFAULT_HUGE_OPS 150L
#define QUICK_HUGE_OPS 10L
#define DEFAULT_REPLACE_OPS 300L
#define QUICK_REPLACE_OPS 30L

typedef struct {
  unsigned char *ptr;
  size_t size;
  unsigned char fill;
} slot;

int main(int argc, char **argv) {
  bench_opts opts = {.n = 0, .threads = 1, .mode = "churn", .keep = 1};
  /* The defaults depend on the mode, so look for it before parsing. */
  const char *mode = "churn";
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], "-m") == 0) mode = argv[i + 1];
  int replace = strcmp(mode, "replace") == 0;
  int huge = replace || strcmp(mode, "huge") == 0;
  opts.n = replace ? DEFAULT_REPLACE_OPS : huge ? DEFAULT_HUGE_OPS : DEFAULT_CHURN_OPS;
  bench_parse(argc, argv, &opts,
              replace ? QUICK_REPLACE_OPS
              : huge  ? QUICK_HUGE_OPS
                      : QUICK_CHURN_OPS,
              "modes: churn (default), huge, replace");
  if (!bench_mode_is(&opts, "churn") && !bench_mode_is(&opts, "huge") && !bench_mode_is(&opts, "replace")) {
    fprintf(stderr, "large: unknown mode %s\n", opts.mode);
    return 1;
  }
  replace = bench_mode_is(&opts, "replace");
  huge = replace || bench_mode_is(&opts, "huge");
  size_t slots = replace ? REPLACE_SLOTS : huge ? HUGE_SLOTS : CHURN_SLOTS;
  slot pool[MAX_SLOTS] = {{0}};
  bench_rng rng;
  bench_rng_init(&rng, 5);
  uint64_t checksum = 0;
  double start = bench_now();

  for (long op = 0; op < opts.n + (long)slots; op++) {
    /* The first `slots` operations fill the pool in order. */
    slot *s = op < (long)slots ? &pool[op] : &pool[bench_rng_below(&rng, slots)];
    if (s->ptr) {
      if (s->ptr[0] != s->fill || s->ptr[s->size - 1] != s->fill) {
        fprintf(stderr, "large: block contents lost\n");
        abort();
      }
      checksum += bench_mix(s->size + s->fill);
      free(s->ptr);
    }
    s->size = huge ? bench_rng_range(&rng, HUGE_MIN, HUGE_MAX) : bench_rng_logsize(&rng, CHURN_MIN, CHURN_MAX);
    s->ptr = bench_xmalloc(s->size);
    if (huge) {
      s->fill = 0;
      memset(s->ptr, 0, s->size);
    } else {
      s->fill = (unsigned char)(op | 1);
      for (size_t pos = 0; pos < s->size; pos += PAGE_BYTES) s->ptr[pos] = s->fill;
      s->ptr[s->size - 1] = s->fill;
    }
  }
  for (size_t i = 0; i < slots; i++) free(pool[i].ptr);
  double seconds = bench_now() - start;
  char extra[96];
  snprintf(extra, sizeof extra, "rss_peak_kb=%ld", bench_peak_rss_kb());
  bench_report(replace ? "large-replace" : huge ? "large-huge" : "large-churn", opts.n, seconds, checksum, extra);
  return 0;
}

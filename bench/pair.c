/* pair.c: malloc+free pair microbenchmark.
 *
 * Stresses: the pure fast path for one size class.  A ring of K live
 * blocks of SIZE bytes is kept; each iteration frees the oldest block and
 * allocates a replacement, i.e. one malloc+free pair with a few blocks of
 * the same size live (so the allocator cannot just hand back one block).
 * The harness runs it under callgrind with N and 2N iterations and takes
 * (Ir(2N) - Ir(N)) / N as instructions per pair, which cancels startup.
 *   -z SIZE (default 64)  -k K live blocks (default 8)  -n N pairs
 */
#include "bench_common.h"

#define DEFAULT_SIZE 64
#define DEFAULT_KEEP 8
#define MAX_KEEP 4096
#define DEFAULT_PAIRS 150000000L
#define QUICK_PAIRS 5000000L

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_PAIRS, .threads = 1, .size = DEFAULT_SIZE, .keep = DEFAULT_KEEP};
  bench_parse(argc, argv, &opts, QUICK_PAIRS, "-z: block size; -k: live blocks; -n: pairs");
  size_t size = opts.size > 0 ? (size_t)opts.size : 1;
  int keep = opts.keep > MAX_KEEP ? MAX_KEEP : opts.keep;
  unsigned char *ring[MAX_KEEP];
  for (int i = 0; i < keep; i++) {
    ring[i] = bench_xmalloc(size);
    ring[i][0] = (unsigned char)i;
  }
  uint64_t checksum = 0;
  double start = bench_now();
  int at = 0;
  for (long i = 0; i < opts.n; i++) {
    checksum += ring[at][0];
    free(ring[at]);
    ring[at] = bench_xmalloc(size);
    ring[at][0] = (unsigned char)i;
    if (++at == keep) at = 0;
  }
  double seconds = bench_now() - start;
  for (int i = 0; i < keep; i++) free(ring[i]);
  char extra[64];
  snprintf(extra, sizeof extra, "size=%zu keep=%d", size, keep);
  bench_report("pair", opts.n, seconds, checksum, extra);
  return 0;
}

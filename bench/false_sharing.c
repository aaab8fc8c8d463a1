/* false_sharing.c: allocator-induced false sharing.
 *
 * Stresses: whether small objects used by different threads end up on the
 * same cache line.  Each thread repeatedly allocates a small object, writes
 * to it in a tight loop, and frees it; if the allocator packs objects of
 * different threads into one 64-byte line, the line ping-pongs between
 * cores and the write loop slows down by an order of magnitude.
 *   -m active  : each thread allocates its own objects from the start
 *                (the allocator itself puts threads' objects side by side)
 *   -m passive : the main thread allocates one object per thread, adjacent
 *                in memory, and hands them out; each worker frees the
 *                object it was given and then allocates its own (an
 *                allocator that reuses the freed slot for that thread keeps
 *                the threads on the shared line)
 *   -m floor   : no allocator: each thread writes a cache line of its own,
 *                the time no allocator can beat (the write loop alone)
 * -n is the number of allocate/write/free rounds per thread.
 */
#include <pthread.h>

#include "bench_common.h"

#define OBJECT_SIZE 8
#define WRITES_PER_ROUND 2000
#define DEFAULT_ROUNDS 400000L
#define QUICK_ROUNDS 20000L
#define DEFAULT_THREADS 2
#define MAX_THREADS 256

/* Floor mode: one line per thread, outside the allocator. */
static _Alignas(64) unsigned char floor_lines[MAX_THREADS][64];
static int floor_mode;

typedef struct {
  pthread_t thread;
  int index;
  long rounds;
  unsigned char *handed; /* passive mode: object to free first */
  uint64_t checksum;
  pthread_barrier_t *start;
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  pthread_barrier_wait(w->start);
  if (w->handed) free(w->handed);
  uint64_t checksum = 0;
  for (long r = 0; r < w->rounds; r++) {
    volatile unsigned char *obj = floor_mode ? floor_lines[w->index] : bench_xmalloc(OBJECT_SIZE);
    memset((void *)obj, 0, OBJECT_SIZE);
    obj[0] = (unsigned char)w->index;
    for (int i = 0; i < WRITES_PER_ROUND; i++) obj[i % OBJECT_SIZE] += (unsigned char)i;
    checksum += bench_mix(obj[0] + obj[OBJECT_SIZE - 1]);
    if (!floor_mode) free((void *)obj);
  }
  w->checksum = checksum;
  return NULL;
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_ROUNDS, .threads = DEFAULT_THREADS, .mode = "active", .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_ROUNDS, "modes: active (default), passive, floor; -n: rounds per thread");
  int passive = bench_mode_is(&opts, "passive");
  floor_mode = bench_mode_is(&opts, "floor");
  if (!passive && !floor_mode && !bench_mode_is(&opts, "active")) {
    fprintf(stderr, "false_sharing: unknown mode %s\n", opts.mode);
    return 1;
  }
  int threads = opts.threads > MAX_THREADS ? MAX_THREADS : opts.threads;
  worker *workers = calloc((size_t)threads, sizeof *workers);
  pthread_barrier_t start_barrier;
  pthread_barrier_init(&start_barrier, NULL, (unsigned)threads + 1);
  for (int i = 0; i < threads; i++) {
    workers[i].index = i;
    workers[i].rounds = opts.n;
    workers[i].start = &start_barrier;
    /* Passive: consecutive small allocations from one thread are typically
     * adjacent, i.e. on the same cache line. */
    if (passive) workers[i].handed = bench_xmalloc(OBJECT_SIZE);
  }
  for (int i = 0; i < threads; i++) {
    if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
      fprintf(stderr, "false_sharing: pthread_create failed\n");
      return 2;
    }
  }
  pthread_barrier_wait(&start_barrier);
  double start = bench_now();
  uint64_t checksum = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(workers[i].thread, NULL);
    checksum += workers[i].checksum;
  }
  double seconds = bench_now() - start;
  pthread_barrier_destroy(&start_barrier);
  free(workers);
  char extra[64];
  snprintf(extra, sizeof extra, "threads=%d", threads);
  bench_report(passive      ? "false-sharing-passive"
               : floor_mode ? "false-sharing-floor"
                            : "false-sharing-active",
               opts.n * threads, seconds, checksum, extra);
  return 0;
}

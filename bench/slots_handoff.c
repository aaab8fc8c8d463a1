/* slots_handoff.c: per-thread slot arrays handed down to new threads.
 *
 * Stresses: objects that outlive the thread that allocated them, under a
 * steady multi-threaded replacement load.  T lineages run at once; each
 * owns an array of slots holding live blocks.  The thread currently owning
 * an array replaces random slots with blocks of random size (16..1024 B,
 * one in eight up to 4 KiB), freeing the old block, which an earlier
 * (usually already exited) thread allocated.  After a fixed number of
 * replacements the thread starts a new thread, hands it the array and
 * exits.  So the allocator has to cope with a constant stream of thread
 * creations and exits while most of the heap belongs to dead threads: how
 * fast their memory becomes reusable and whether frees of it stay cheap.
 * Each lineage is sequential and uses its own PRNG stream, which it passes
 * on with the array, so the request stream and the checksum do not depend
 * on the schedule.  -t is the number of lineages; -n the total number of
 * replacements (split evenly between lineages).
 */
#include <pthread.h>

#include "bench_common.h"

#define SLOTS_PER_ARRAY 1000
#define REPLACEMENTS_PER_THREAD 10000L
#define SIZE_MIN 16
#define SIZE_MAX_BYTES 1024
#define BIG_SIZE_MAX 4096
#define BIG_ONE_IN 8
#define DEFAULT_REPLACEMENTS 10000000L
#define QUICK_REPLACEMENTS 1000000L
#define DEFAULT_THREADS 4

typedef struct {
  void *ptr;
  uint32_t size;
  uint64_t tag;
} slot;

/* One lineage: the array and everything the next thread needs. */
typedef struct {
  slot slots[SLOTS_PER_ARRAY];
  bench_rng rng;
  long remaining; /* replacements left for the lineage */
  long threads;   /* threads this lineage has run so far */
  uint64_t checksum;
  pthread_t parent; /* the thread that handed the array over */
  int has_parent;
  pthread_t last; /* set by the final thread itself, for main to join */
} lineage;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int lineages_done;

static size_t block_size(bench_rng *rng) {
  return bench_rng_below(rng, BIG_ONE_IN) ? bench_rng_range(rng, SIZE_MIN, SIZE_MAX_BYTES)
                                          : bench_rng_range(rng, SIZE_MAX_BYTES + 1, BIG_SIZE_MAX);
}

static void *owner_main(void *arg) {
  lineage *l = arg;
  /* Reap the thread that handed the array over (it has returned or is
   * about to): keeps at most two threads per lineage alive. */
  if (l->has_parent) pthread_join(l->parent, NULL);
  l->threads++;
  long todo = l->remaining < REPLACEMENTS_PER_THREAD ? l->remaining : REPLACEMENTS_PER_THREAD;
  uint64_t checksum = 0;
  for (long r = 0; r < todo; r++) {
    slot *s = &l->slots[bench_rng_below(&l->rng, SLOTS_PER_ARRAY)];
    if (s->ptr) {
      checksum += bench_mix(bench_check(s->ptr, s->size, s->tag) + s->size);
      free(s->ptr);
    }
    s->size = (uint32_t)block_size(&l->rng);
    s->tag = bench_rng_next(&l->rng);
    s->ptr = bench_xmalloc(s->size);
    bench_stamp(s->ptr, s->size, s->tag);
  }
  l->checksum += checksum;
  l->remaining -= todo;
  if (l->remaining > 0) {
    l->parent = pthread_self();
    l->has_parent = 1;
    pthread_t next;
    if (pthread_create(&next, NULL, owner_main, l) != 0) {
      fprintf(stderr, "slots_handoff: pthread_create failed\n");
      exit(2);
    }
    return NULL; /* the array now belongs to `next` */
  }
  l->last = pthread_self();
  pthread_mutex_lock(&done_lock);
  lineages_done++;
  pthread_cond_signal(&done_cond);
  pthread_mutex_unlock(&done_lock);
  return NULL;
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_REPLACEMENTS, .threads = DEFAULT_THREADS, .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_REPLACEMENTS, "-n: total replacements; -t: lineages (threads running at once)");
  int count = opts.threads;
  lineage *lines = calloc((size_t)count, sizeof *lines);
  if (!lines) return 2;
  long per_lineage = opts.n / count;
  if (per_lineage < 1) per_lineage = 1;
  double start = bench_now();
  for (int i = 0; i < count; i++) {
    lines[i].remaining = per_lineage;
    bench_rng_init(&lines[i].rng, 7000 + (uint64_t)i);
    pthread_t first;
    if (pthread_create(&first, NULL, owner_main, &lines[i]) != 0) {
      fprintf(stderr, "slots_handoff: pthread_create failed\n");
      return 2;
    }
  }
  pthread_mutex_lock(&done_lock);
  while (lineages_done < count) pthread_cond_wait(&done_cond, &done_lock);
  pthread_mutex_unlock(&done_lock);
  uint64_t checksum = 0;
  long threads = 0, live_objects = 0;
  for (int i = 0; i < count; i++) {
    pthread_join(lines[i].last, NULL);
    checksum += lines[i].checksum;
    threads += lines[i].threads;
  }
  /* The survivors: allocated by long-gone threads, freed by main. */
  for (int i = 0; i < count; i++) {
    for (size_t k = 0; k < SLOTS_PER_ARRAY; k++) {
      slot *s = &lines[i].slots[k];
      if (s->ptr) {
        checksum += bench_mix(bench_check(s->ptr, s->size, s->tag) + s->size);
        free(s->ptr);
        live_objects++;
      }
    }
  }
  double seconds = bench_now() - start;
  free(lines);
  char extra[128];
  snprintf(extra, sizeof extra, "threads=%d threads_created=%ld live_objects=%ld", count, threads, live_objects);
  bench_report("slots-handoff", per_lineage * count, seconds, checksum, extra);
  return 0;
}

/* mixed_xthread.c: mixed sizes, a share of the frees done by another thread.
 *
 * Stresses: a wide spread of sizes (8 B..16 KiB, uniform, so most requests
 * are "medium": above the small classes many allocators serve from per-
 * thread caches) combined with remote frees.  Each of T threads (default
 * 2) keeps its own live set and replaces random entries in it; the block a
 * replacement drops is freed by the thread itself three times in four, and
 * otherwise passed through a bounded single-producer/single-consumer queue
 * to the next thread in a ring, which frees it.  A thread whose outgoing
 * queue is full frees what its own incoming queue holds until there is
 * room, so the ring cannot deadlock.  Which blocks are passed and their
 * contents come from each thread's own PRNG stream; the checksum is a sum
 * over every freed block, so it is the same whoever frees a block and
 * whenever.  -n is the total number of replacements (split between threads).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "bench_common.h"

#define LIVE_SLOTS 1000
#define SIZE_MIN 8
#define SIZE_MAX_BYTES (16 * 1024)
#define PASS_ONE_IN 4
#define QUEUE_CAPACITY 1024 /* a power of two */
#define DRAIN_EVERY 32      /* replacements between looks at the incoming queue */
#define CACHE_LINE 64
#define DEFAULT_REPLACEMENTS 1500000L
#define QUICK_REPLACEMENTS 150000L
#define DEFAULT_THREADS 2
#define MAX_THREADS 256

typedef struct {
  void *ptr;
  uint32_t size;
  uint64_t tag;
} item;

/* Lock-free SPSC ring: `tail` is written only by the producer, `head`
 * only by the consumer; both only grow (indices taken modulo capacity). */
typedef struct {
  _Alignas(CACHE_LINE) atomic_size_t head;
  _Alignas(CACHE_LINE) atomic_size_t tail;
  _Alignas(CACHE_LINE) atomic_int producer_done;
  _Alignas(CACHE_LINE) item items[QUEUE_CAPACITY];
} queue;

typedef struct {
  pthread_t thread;
  int index;
  long replacements;
  queue *inbox;  /* filled by the previous thread in the ring */
  queue *outbox; /* the next thread's inbox */
  uint64_t checksum;
  long local_frees, passed, remote_frees, full_waits;
} worker;

static uint64_t free_item(const item *it) {
  uint64_t sum = bench_mix(bench_check(it->ptr, it->size, it->tag) + it->size);
  free(it->ptr);
  return sum;
}

static int queue_push(queue *q, const item *it) {
  size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
  size_t head = atomic_load_explicit(&q->head, memory_order_acquire);
  if (tail - head == QUEUE_CAPACITY) return 0;
  q->items[tail % QUEUE_CAPACITY] = *it;
  atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
  return 1;
}

/* Frees everything currently in the worker's inbox; returns the count. */
static long drain(worker *w) {
  queue *q = w->inbox;
  size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
  size_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
  for (size_t i = head; i != tail; i++) w->checksum += free_item(&q->items[i % QUEUE_CAPACITY]);
  atomic_store_explicit(&q->head, tail, memory_order_release);
  w->remote_frees += (long)(tail - head);
  return (long)(tail - head);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  bench_rng rng;
  bench_rng_init(&rng, 400 + (uint64_t)w->index);
  item *live = calloc(LIVE_SLOTS, sizeof *live);
  if (!live) exit(2);
  for (long r = 0; r < w->replacements; r++) {
    if (r % DRAIN_EVERY == 0) drain(w);
    item *s = &live[bench_rng_below(&rng, LIVE_SLOTS)];
    if (s->ptr) {
      if (bench_rng_below(&rng, PASS_ONE_IN) == 0) {
        while (!queue_push(w->outbox, s)) {
          w->full_waits++;
          if (drain(w) == 0) sched_yield();
        }
        w->passed++;
      } else {
        w->checksum += free_item(s);
        w->local_frees++;
      }
    }
    s->size = (uint32_t)bench_rng_range(&rng, SIZE_MIN, SIZE_MAX_BYTES);
    s->tag = bench_rng_next(&rng);
    s->ptr = bench_xmalloc(s->size);
    bench_stamp(s->ptr, s->size, s->tag);
  }
  for (size_t i = 0; i < LIVE_SLOTS; i++) {
    if (live[i].ptr) {
      w->checksum += free_item(&live[i]);
      w->local_frees++;
    }
  }
  free(live);
  atomic_store_explicit(&w->outbox->producer_done, 1, memory_order_release);
  /* Keep freeing what the previous thread passes until it is done too. */
  for (;;) {
    int done = atomic_load_explicit(&w->inbox->producer_done, memory_order_acquire);
    if (drain(w) == 0) {
      if (done) break;
      sched_yield();
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_REPLACEMENTS, .threads = DEFAULT_THREADS, .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_REPLACEMENTS, "-n: total replacements; -t: threads in the ring (at least 2)");
  int count = opts.threads < 2 ? 2 : (opts.threads > MAX_THREADS ? MAX_THREADS : opts.threads);
  long per_thread = opts.n / count;
  if (per_thread < 1) per_thread = 1;
  /* Queues and worker records live for the whole run; only blocks move. */
  queue *queues = aligned_alloc(CACHE_LINE, (size_t)count * sizeof *queues);
  worker *workers = calloc((size_t)count, sizeof *workers);
  if (!queues || !workers) return 2;
  for (int i = 0; i < count; i++) {
    atomic_init(&queues[i].head, 0);
    atomic_init(&queues[i].tail, 0);
    atomic_init(&queues[i].producer_done, 0);
  }
  double start = bench_now();
  for (int i = 0; i < count; i++) {
    workers[i].index = i;
    workers[i].replacements = per_thread;
    workers[i].inbox = &queues[i];
    workers[i].outbox = &queues[(i + 1) % count];
    if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
      fprintf(stderr, "mixed_xthread: pthread_create failed\n");
      return 2;
    }
  }
  uint64_t checksum = 0;
  long local = 0, passed = 0, remote = 0, waits = 0;
  for (int i = 0; i < count; i++) {
    pthread_join(workers[i].thread, NULL);
    checksum += workers[i].checksum;
    local += workers[i].local_frees;
    passed += workers[i].passed;
    remote += workers[i].remote_frees;
    waits += workers[i].full_waits;
  }
  double seconds = bench_now() - start;
  if (passed != remote) {
    fprintf(stderr, "mixed_xthread: %ld blocks passed but %ld freed remotely\n", passed, remote);
    return 1;
  }
  free(queues);
  free(workers);
  char extra[128];
  snprintf(extra, sizeof extra, "threads=%d local_frees=%ld remote_frees=%ld queue_full_waits=%ld", count, local,
           remote, waits);
  bench_report("mixed-xthread", per_thread * count, seconds, checksum, extra);
  return 0;
}

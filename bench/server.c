/* server.c: server-like workload with short-lived worker threads.
 *
 * Stresses: blocks that outlive the thread that allocated them.  A shared
 * table (think: a cache or session store) holds live objects; waves of
 * short-lived worker threads each handle a few thousand "requests": build
 * a temporary request buffer, replace a random table entry (freeing an
 * object that some earlier, often already exited, thread allocated), and
 * drop the buffer.  Threads exit and are replaced continually, so the
 * allocator's thread-exit path and the reuse of orphaned memory matter.
 * -t sets how many workers run at once; -n the total number of requests.
 */
#include <pthread.h>

#include "bench_common.h"

#define TABLE_SLOTS 65536
#define LOCK_STRIPES 64
#define REQUESTS_PER_WORKER 5000
#define REQUEST_BUF_MIN 64
#define REQUEST_BUF_MAX 8192
#define OBJECT_MIN 16
#define OBJECT_MAX 2048
#define BIG_OBJECT_MAX (64 * 1024)
#define DEFAULT_REQUESTS 1000000L
#define QUICK_REQUESTS 100000L
#define DEFAULT_THREADS 4

typedef struct {
  void *ptr;
  uint32_t size;
  uint64_t tag;
} entry;

static entry table[TABLE_SLOTS];
static pthread_mutex_t stripes[LOCK_STRIPES];

typedef struct {
  pthread_t thread;
  long id;
  uint64_t checksum;
} worker;

static size_t object_size(bench_rng *rng) {
  return bench_rng_below(rng, 64) ? bench_rng_logsize(rng, OBJECT_MIN, OBJECT_MAX)
                                  : bench_rng_range(rng, OBJECT_MAX + 1, BIG_OBJECT_MAX);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  bench_rng rng;
  bench_rng_init(&rng, 1000 + (uint64_t)w->id);
  uint64_t checksum = 0;
  for (int req = 0; req < REQUESTS_PER_WORKER; req++) {
    /* Request buffer: allocated, filled a bit, freed by this thread. */
    size_t buf_size = bench_rng_logsize(&rng, REQUEST_BUF_MIN, REQUEST_BUF_MAX);
    unsigned char *buf = bench_xmalloc(buf_size);
    memset(buf, (int)(req & 0xFF), buf_size < 256 ? buf_size : 256);
    buf[buf_size - 1] = (unsigned char)req;

    /* Replace an entry of the shared table. */
    size_t slot = bench_rng_below(&rng, TABLE_SLOTS);
    size_t size = object_size(&rng);
    uint64_t tag = bench_rng_next(&rng);
    void *fresh = bench_xmalloc(size);
    bench_stamp(fresh, size, tag);
    pthread_mutex_t *lock = &stripes[slot % LOCK_STRIPES];
    pthread_mutex_lock(lock);
    entry old = table[slot];
    table[slot] = (entry){fresh, (uint32_t)size, tag};
    pthread_mutex_unlock(lock);
    if (old.ptr) {
      /* The old tag's value depends on the interleaving, so it is only
       * verified, not added to the checksum. */
      bench_check(old.ptr, old.size, old.tag);
      free(old.ptr);
    }
    checksum += bench_mix(buf[0] + buf[buf_size - 1] + size);
    free(buf);
  }
  w->checksum = checksum;
  return NULL;
}

int main(int argc, char **argv) {
  bench_opts opts = {.n = DEFAULT_REQUESTS, .threads = DEFAULT_THREADS, .keep = 1};
  bench_parse(argc, argv, &opts, QUICK_REQUESTS, "-n: total requests; -t: concurrent workers");
  for (int i = 0; i < LOCK_STRIPES; i++) pthread_mutex_init(&stripes[i], NULL);
  long total_workers = opts.n / REQUESTS_PER_WORKER;
  if (total_workers < 1) total_workers = 1;
  int live = opts.threads;
  worker *slots = calloc((size_t)live, sizeof *slots);
  uint64_t checksum = 0;
  double start = bench_now();

  /* Keep `live` workers running: whenever the oldest one is joined, start
   * its replacement in the same slot. */
  long started = 0, joined = 0;
  for (int i = 0; i < live && started < total_workers; i++, started++) {
    slots[i].id = started;
    if (pthread_create(&slots[i].thread, NULL, worker_main, &slots[i]) != 0) return 2;
  }
  while (joined < started) {
    int i = (int)(joined % live);
    pthread_join(slots[i].thread, NULL);
    checksum += slots[i].checksum;
    joined++;
    if (started < total_workers) {
      slots[i].id = started++;
      if (pthread_create(&slots[i].thread, NULL, worker_main, &slots[i]) != 0) return 2;
    }
  }
  long live_objects = 0;
  for (size_t s = 0; s < TABLE_SLOTS; s++) {
    if (table[s].ptr) {
      bench_check(table[s].ptr, table[s].size, table[s].tag);
      free(table[s].ptr);
      live_objects++;
    }
  }
  double seconds = bench_now() - start;
  free(slots);
  char extra[96];
  snprintf(extra, sizeof extra, "threads=%d workers=%ld live_objects=%ld", live, total_workers, live_objects);
  bench_report("server", total_workers * REQUESTS_PER_WORKER, seconds, checksum, extra);
  return 0;
}

/* test_tcache_heap.c: thread caches seen from outside their threads, as
 * malloc's and free's fast paths reach them: a thread without a cache, the
 * per-class request counters, the bins' sizes within the budget, the
 * idle-cache reclaim (tcache_sweep.c's header has the protocol), and a fork
 * child's orphaned caches. Linked to the static library with internal.h, so
 * a test can run a sweep itself and read every counter; each Criterion test
 * runs in a process of its own. The layer alone (bins, budget, slow paths
 * called directly) has tests/unit/test_tcache.c. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buddymalloc.h"
#include "core_util.h"

#define SMALL_SIZE 64    /* class 4 */
#define OTHER_SIZE 448   /* a class four doublings up */
#define FILL_BLOCKS 4000 /* more than a bin holds: bins end up full */
#define RECLAIM_WAIT_MS 5000

/* Checks in threads other than the test's own: report and abort (a crash
 * fails the test). */
#define check(cond)                                                                                                    \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                                         \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

static buddy_stats_t stats_now(void) {
  buddy_stats_t s;
  stats_collect(&s);
  return s;
}

static void skip_under_tsan(void) {
  if (TEST_TSAN) cr_skip_test("TSan builds do not reclaim idle caches (tcache.c)");
}

/* Allocates blocks of two classes, writes each, frees them all: the thread's
 * bins of both classes end up full. */
static void fill_own_cache(unsigned char seed) {
  void *blocks[FILL_BLOCKS];
  for (int i = 0; i < FILL_BLOCKS; i++) {
    size_t size = i % 2 ? OTHER_SIZE : SMALL_SIZE;
    memset(blocks[i] = buddy_malloc(size), seed, size);
  }
  for (int i = 0; i < FILL_BLOCKS; i++) buddy_free(blocks[i]);
}

/* Allocates, fills and checks blocks of both classes: a corrupt cache (an
 * object handed out twice, a broken list) shows as a wrong byte or a crash. */
static void churn_and_check(int rounds) {
  enum { LIVE = 300 };
  unsigned char *live[LIVE];
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < LIVE; i++) {
      size_t size = i % 2 ? OTHER_SIZE : SMALL_SIZE;
      live[i] = buddy_malloc(size);
      test_fill(live[i], size, (uint64_t)(i + r));
    }
    for (int i = 0; i < LIVE; i++) {
      size_t size = i % 2 ? OTHER_SIZE : SMALL_SIZE;
      check(test_check(live[i], size, (uint64_t)(i + r)) == size);
      buddy_free(live[i]);
    }
  }
}

/* ---- A thread whose cache could not be made --------------------------------- */

static void *no_cache_block; /* free in its slab: the thread frees it again */
static int no_cache_go[2];

/* Its first call finds no memory for a cache (its zone has no region yet,
 * and the address space is capped), so it runs on the static empty cache:
 * allocations are served uncached, and a double free is still reported. */
static void *no_cache_main(void *arg) {
  (void)arg;
  char c;
  if (read(no_cache_go[0], &c, 1) != 1) _exit(3);
  void *q = buddy_malloc(48);
  if (q == NULL) _exit(4); /* served by a zone that has room */
  buddy_stats_t s;
  stats_collect(&s);
  if (s.thread_caches != 1) _exit(5); /* the main thread's alone */
  buddy_free(q);
  buddy_free(no_cache_block); /* double free: aborts */
  _exit(6);
}

/* In a child, so that the test can be skipped under ASan. */
static void no_cache_child(void) {
  no_cache_block = buddy_malloc(48);
  buddy_free(no_cache_block);
  tcache_flush_current(); /* free in its slab, key and bit */
  if (pipe(no_cache_go) != 0) _exit(8);
  pthread_t t;
  if (pthread_create(&t, NULL, no_cache_main, NULL) != 0) _exit(9); /* its stack mapped before the cap */
  size_t address_space = 0;
  if (!test_statm_read(&address_space, NULL)) _exit(13); /* not an abort: the test expects one */
  struct rlimit cap = {.rlim_cur = address_space + (1u << 20), .rlim_max = RLIM_INFINITY};
  if (setrlimit(RLIMIT_AS, &cap) != 0) _exit(10);
  if (write(no_cache_go[1], "x", 1) != 1) _exit(11);
  pthread_join(t, NULL);
  _exit(12);
}

Test(no_cache, a_thread_without_a_cache_allocates_and_reports_a_double_free) {
  if (TEST_ASAN) cr_skip_test("capping the address space starves AddressSanitizer itself; checked in the plain build");
  pid_t pid = fork();
  if (pid == 0) no_cache_child();
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "the child's status: %#x", status);
}

/* A thread's first call is a double free of a small block in its own zone:
 * it is confirmed before the cache is made (making it, and pthread's own
 * allocation for the cache's key, could take the block from its slab and
 * hide the double free). */
static void *free_first(void *p) {
  buddy_free(p); /* aborts here, not later (its exit would flush a bin holding p) */
  _exit(3);
}

Test(no_cache, a_double_free_as_a_threads_first_call_is_reported, .signal = SIGABRT) {
  options.zones = 1; /* the thread's cache comes from the block's zone */
  void *p = buddy_malloc(SMALL_SIZE);
  buddy_free(p);
  tcache_flush_current(); /* free in its slab */
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, free_first, p), 0);
  pthread_join(t, NULL);
}

/* ---- A worker that fills its cache, then blocks reading a pipe ------------- */

typedef struct worker {
  pthread_t thread;
  int wake[2];  /* the worker blocks reading wake[0] */
  int ready[2]; /* it writes one byte to ready[1] when its cache is full */
  void *stray;  /* if set, a block of the main thread's zone it frees first */
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  if (w->stray != NULL) buddy_free(w->stray); /* a remote free: into a batch */
  fill_own_cache(0x5a);
  char c = 1;
  check(write(w->ready[1], &c, 1) == 1);
  check(read(w->wake[0], &c, 1) == 1); /* idle here, in a system call */
  churn_and_check(20);                 /* takes its cache back and uses it */
  fill_own_cache(0x6b);
  return NULL;
}

static void worker_start(worker_t *w) {
  cr_assert_eq(pipe(w->wake), 0);
  cr_assert_eq(pipe(w->ready), 0);
  cr_assert_eq(pthread_create(&w->thread, NULL, worker_main, w), 0);
  char c;
  cr_assert_eq(read(w->ready[0], &c, 1), 1);
}

static void worker_finish(worker_t *w) {
  char c = 1;
  cr_assert_eq(write(w->wake[1], &c, 1), 1);
  cr_assert_eq(pthread_join(w->thread, NULL), 0);
  for (int i = 0; i < 2; i++) {
    close(w->wake[i]);
    close(w->ready[i]);
  }
}

/* Calls the allocator the way a busy program does (slow paths included: the
 * main thread's flushes), until a reclaim happened or RECLAIM_WAIT_MS passed. */
static bool wait_for_reclaim(size_t reclaims_before, long wait_ms) {
  for (long waited = 0; waited < wait_ms; waited += 5) {
    churn_and_check(1);
    tcache_flush_current();
    if (stats_now().caches_reclaimed > reclaims_before) return true;
    test_sleep_ms(5);
  }
  return false;
}

/* A worker idle with a full cache, reclaim periods of 100 ms, and the
 * calling thread's own cache empty. */
static void idle_worker_start(worker_t *w) {
  skip_under_tsan();
  options.purge_delay_ms = 100;
  worker_start(w);
  tcache_flush_current();
}

Test(reclaim, an_idle_threads_cache_is_emptied_by_a_busy_thread, .timeout = 30) {
  worker_t w = {.stray = NULL};
  idle_worker_start(&w);
  buddy_stats_t before = stats_now();
  cr_assert_geq(before.bytes_cached, 8 * 1024, "the idle worker holds %zu bytes", before.bytes_cached);
  cr_assert_eq(before.caches_reclaimed, 0);
  cr_assert(wait_for_reclaim(0, RECLAIM_WAIT_MS), "no reclaim within %d ms", RECLAIM_WAIT_MS);
  tcache_flush_current();
  buddy_stats_t after = stats_now();
  cr_assert_eq(after.bytes_cached, 0, "%zu bytes still cached", after.bytes_cached);
  cr_assert_geq(after.bytes_reclaimed, before.bytes_cached);
  worker_finish(&w); /* it wakes on tcache_reclaimed, takes its cache back, checks its blocks */
  zone_verify_all();
}

Test(reclaim, the_background_thread_empties_caches_of_an_idle_program, .timeout = 30) {
  options.background_purge = 1;
  worker_t w = {.stray = NULL};
  idle_worker_start(&w);
  cr_assert_gt(stats_now().bytes_cached, 0);
  /* The main thread makes no allocator call while it waits. */
  size_t reclaims = 0;
  for (long waited = 0; waited < RECLAIM_WAIT_MS && reclaims == 0; waited += 50) {
    test_sleep_ms(50);
    reclaims = stats_now().caches_reclaimed;
  }
  cr_assert_eq(reclaims, 1, "the background thread emptied the idle worker's cache");
  worker_finish(&w);
  zone_verify_all();
}

Test(reclaim, off_when_asked, .timeout = 30) {
  options.reclaim_idle = 0;
  worker_t w = {.stray = NULL};
  idle_worker_start(&w);
  size_t cached = stats_now().bytes_cached;
  cr_assert_geq(cached, 8 * 1024);
  /* Ten reclaim periods: the test above sees its reclaim within two or three. */
  cr_assert(!wait_for_reclaim(0, 1000), "reclaim_idle=0 still reclaimed");
  tcache_flush_current();
  cr_assert_eq(stats_now().bytes_cached, cached, "the idle worker's cache is left alone");
  worker_finish(&w);
}

/* ---- Idle caches and RSS --------------------------------------------------- */

#define PIN_THREADS 8
static const size_t pin_sizes[] = {64, 256, 1024, 4096, 16384};
#define PIN_CLASSES (sizeof pin_sizes / sizeof pin_sizes[0])

/* What one thread's bins pin below when each cached object sits on a slab
 * of its own: a whole slab per object, for bins of their starting size (they
 * may grow, which pins more). */
static size_t pinned_per_thread(void) {
  size_t bytes = 0;
  for (size_t i = 0; i < PIN_CLASSES; i++) {
    unsigned cls = size_class_of(pin_sizes[i]);
    bytes += tcache_bin_start(cls) * (PAGE_SIZE << size_class_slab_order[cls]);
  }
  return bytes;
}

/* Fills slabs of several classes, frees every object but the first of each
 * slab, then the firsts: the bins end up holding one object on each of as
 * many slabs as they have room for, and those slabs stay resident. */
static void *pin_worker(void *arg) {
  worker_t *w = arg;
  for (size_t i = 0; i < PIN_CLASSES; i++) {
    unsigned cls = size_class_of(pin_sizes[i]);
    size_t slab_bytes = PAGE_SIZE << size_class_slab_order[cls];
    size_t n = 4 * TCACHE_BIN_MAX * (size_t)size_class_slab_count[cls];
    if (n * pin_sizes[i] > (16u << 20)) n = (16u << 20) / pin_sizes[i];
    /* Not libc's malloc: its per-thread arenas would keep RSS of their own. */
    char **blocks = mmap(NULL, n * sizeof *blocks, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(blocks != MAP_FAILED);
    for (size_t k = 0; k < n; k++) memset(blocks[k] = buddy_malloc(pin_sizes[i]), 7, pin_sizes[i]);
    for (size_t k = 0; k < n; k++)
      if ((uintptr_t)blocks[k] % slab_bytes != 0) buddy_free(blocks[k]);
    for (size_t k = 0; k < n; k++)
      if ((uintptr_t)blocks[k] % slab_bytes == 0) buddy_free(blocks[k]);
    munmap(blocks, n * sizeof *blocks);
  }
  char c = 1;
  check(write(w->ready[1], &c, 1) == 1);
  check(read(w->wake[0], &c, 1) == 1);
  return NULL;
}

Test(reclaim, idle_threads_caches_do_not_pin_memory, .timeout = 60) {
  skip_under_tsan();
  if (TEST_ASAN) cr_skip_test("the RSS is AddressSanitizer's own under ASan; checked in the plain build");
  options.purge_delay_ms = 100;
  options.background_purge = 1; /* purges every zone while the threads idle */
  options.reclaim_idle = 0;     /* first: what the caches pin */
  size_t start = test_rss_bytes();
  worker_t w[PIN_THREADS];
  for (int t = 0; t < PIN_THREADS; t++) {
    cr_assert_eq(pipe(w[t].wake), 0);
    cr_assert_eq(pipe(w[t].ready), 0);
    cr_assert_eq(pthread_create(&w[t].thread, NULL, pin_worker, &w[t]), 0);
  }
  char c;
  for (int t = 0; t < PIN_THREADS; t++) cr_assert_eq(read(w[t].ready[0], &c, 1), 1);
  test_sleep_ms(500); /* everything not cached is purged by now */
  size_t pinned = test_rss_bytes() - start, expected = PIN_THREADS * pinned_per_thread();
  cr_assert_geq(pinned, expected / 2, "caches pin %zu KiB (expected about %zu KiB)", pinned >> 10, expected >> 10);
  options.reclaim_idle = 1;
  for (int waited = 0; waited < RECLAIM_WAIT_MS && stats_now().caches_reclaimed < PIN_THREADS; waited += 50)
    test_sleep_ms(50);
  cr_assert_eq(stats_now().caches_reclaimed, PIN_THREADS);
  test_sleep_ms(400); /* the purge delay, with the background thread's half-delay wakes */
  size_t left = test_rss_bytes() - start;
  fprintf(stderr, "pinned %zu KiB, left %zu KiB\n", pinned >> 10, left >> 10);
  cr_assert_leq(left, pinned / 4, "after reclaim %zu KiB of %zu KiB pinned still resident", left >> 10, pinned >> 10);
  for (int t = 0; t < PIN_THREADS; t++) {
    cr_assert_eq(write(w[t].wake[1], &c, 1), 1);
    cr_assert_eq(pthread_join(w[t].thread, NULL), 0);
  }
}

/* A thread that runs (or blocks only briefly) between sweeps is never
 * reclaimed, and one that sleeps long enough is reclaimed again and again
 * while the sweeps race with its waking: its blocks stay intact throughout.
 * A cache is emptied at the third sweep (one per RECLAIM_PERIOD_MIN_MS, 100)
 * after its last slow path, so a nap of 250 ms is reclaimed only when the
 * first sweep comes early in it: the naps lengthen from 200 to 550 ms, so
 * that sweeps land at every point of a wake-up, and the last ones leave
 * room for a loaded machine's late sweeps. */
static bool napper_done;

static void *napper_main(void *arg) {
  (void)arg;
  for (int i = 0; i < 16; i++) {
    churn_and_check(10);
    fill_own_cache((unsigned char)i);
    test_sleep_ms(i % 2 ? 1 : 200 + 50 * (i / 2)); /* a short nap: busy; a long one: idle across sweeps */
  }
  __atomic_store_n(&napper_done, true, __ATOMIC_RELEASE);
  return NULL;
}

Test(reclaim, races_with_waking_owners_lose_nothing, .timeout = 60) {
  skip_under_tsan();
  options.purge_delay_ms = 0; /* a sweep every RECLAIM_PERIOD_MIN_MS */
  pthread_t thread;
  cr_assert_eq(pthread_create(&thread, NULL, napper_main, NULL), 0);
  while (!__atomic_load_n(&napper_done, __ATOMIC_ACQUIRE)) {
    maintain_tick();
    test_sleep_ms(1);
  }
  cr_assert_eq(pthread_join(thread, NULL), 0);
  cr_assert_geq(stats_now().caches_reclaimed, 1, "the long naps were seen as idle");
  churn_and_check(5);
  zone_verify_all();
}

/* A signal handler that blocks while the thread it interrupted was in the
 * middle of a malloc or free: the thread looks idle (blocked in a system
 * call, CPU time unchanged), but its fast path holds bin pointers. */
static bool signalled_stop;
static long signal_hits;

static void blocking_handler(int sig) {
  (void)sig;
  __atomic_add_fetch(&signal_hits, 1, __ATOMIC_RELAXED);
  test_sleep_ms(350); /* three reclaim periods and more */
}

static void *interrupted_worker(void *arg) {
  (void)arg;
  enum { LIVE = 64, SIZE = 48 };
  unsigned char *v[LIVE];
  for (int i = 0; i < LIVE; i++) memset(v[i] = buddy_malloc(SIZE), i, SIZE);
  for (unsigned k = 0; !__atomic_load_n(&signalled_stop, __ATOMIC_ACQUIRE); k++) {
    unsigned i = k % LIVE;
    check(v[i][0] == (unsigned char)i && v[i][SIZE - 1] == (unsigned char)i);
    buddy_free(v[i]);
    memset(v[i] = buddy_malloc(SIZE), i, SIZE);
  }
  for (int i = 0; i < LIVE; i++) buddy_free(v[i]);
  return NULL;
}

Test(reclaim, a_blocking_signal_handler_inside_malloc_is_not_idle, .timeout = 60) {
  skip_under_tsan();
  options.purge_delay_ms = 0; /* a sweep every RECLAIM_PERIOD_MIN_MS */
  struct sigaction sa = {.sa_handler = blocking_handler};
  sigemptyset(&sa.sa_mask);
  cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
  pthread_t thread;
  cr_assert_eq(pthread_create(&thread, NULL, interrupted_worker, NULL), 0);
  for (int round = 0; round < 12; round++) {
    pthread_kill(thread, SIGUSR1);
    for (int i = 0; i < 40; i++) { /* the handler's sleep, and the worker's run after it */
      maintain_tick();
      test_sleep_ms(10);
    }
  }
  __atomic_store_n(&signalled_stop, true, __ATOMIC_RELEASE);
  cr_assert_eq(pthread_join(thread, NULL), 0);
  cr_assert_geq(__atomic_load_n(&signal_hits, __ATOMIC_RELAXED), 1);
  zone_verify_all();
}

/* ---- Request counters ------------------------------------------------------ */

#define COUNT_THREADS 6
#define COUNT_PER_THREAD 5003

static int threads_counted;
static bool threads_released;

/* Odd-numbered threads stay alive (their counters in their caches) until
 * released; even ones exit (their counters retired). */
static void *count_requests(void *arg) {
  int stay = (int)(intptr_t)arg % 2;
  for (int i = 0; i < COUNT_PER_THREAD; i++) buddy_free(buddy_malloc(SMALL_SIZE));
  __atomic_fetch_add(&threads_counted, 1, __ATOMIC_ACQ_REL);
  while (stay && !__atomic_load_n(&threads_released, __ATOMIC_ACQUIRE)) test_sleep_ms(1);
  return NULL;
}

/* ---- Bin sizes: adapting within the thread's budget ------------------------ */

/* The most objects a bin of class cls may grow to (types.h). */
static uint32_t bin_ceiling(unsigned cls) {
  size_t n = TCACHE_BIN_CEILING_BYTES / size_class_bytes[cls];
  return (uint32_t)(n < 1 ? 1 : n > TCACHE_BIN_MAX ? TCACHE_BIN_MAX : n);
}

/* Checks the calling thread's cache: each bin's count within its max, the
 * budget's sum right and within TCACHE_BYTES_MAX, the bytes cached too.
 * Returns the bytes its bins could hold. */
static size_t check_own_budget(void) {
  const tcache_t *tc = tcache_get();
  check(tc->state == TCACHE_LIVE);
  size_t sum = 0, cached = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    unsigned bin = tcache_home_bin(tc, c);
    check(tc->bin_limit[bin] == tc->bin_base[c] + 1 + tc->bin_max[c] && tc->bin_max[c] <= bin_ceiling(c));
    /* The stack: a NULL below it, its top at most its limit, within its
     * slots: its nursery's (which end where the next class's nursery
     * begins) or its full stack's (which end where the next class's full
     * stack begins). */
    check(tc->bin_base[c][0] == NULL && tc->bin_top[bin] > tc->bin_base[c] && tc->bin_top[bin] <= tc->bin_limit[bin]);
    check((size_t)(tc->bin_top[bin] - tc->bin_base[c] - 1) == tcache_bin_count(tc, c));
    if (tc->bin_base[c] == tc->bin_stack[c]) {
      if (c + 1 < SIZE_CLASS_COUNT) check(tc->bin_stack[c] + 1 + bin_ceiling(c) <= tc->bin_stack[c + 1]);
    } else {
      check(tc->bin_max[c] <= tcache_bin_nursery_slots(c) && tc->bin_base[c] < tc->bin_stack[1]);
    }
    sum += (size_t)tc->bin_max[c] * size_class_bytes[c];
    cached += (size_t)tcache_bin_count(tc, c) * size_class_bytes[c];
  }
  check(sum == tc->budget_used && sum <= TCACHE_BYTES_MAX && cached <= sum);
  return sum;
}

/* Allocates `count` blocks of class cls, writes them, checks and frees them:
 * the bin runs empty (refills) and then full (flushes). */
static void churn_class(unsigned cls, int count) {
  size_t size = size_class_bytes[cls];
  unsigned char **blocks = mmap(NULL, (size_t)count * sizeof *blocks, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  check(blocks != MAP_FAILED);
  for (int i = 0; i < count; i++) {
    check((blocks[i] = buddy_malloc(size)) != NULL);
    memset(blocks[i], (unsigned char)(i + cls), size);
  }
  for (int i = 0; i < count; i++) {
    check(blocks[i][0] == (unsigned char)(i + cls) && blocks[i][size - 1] == (unsigned char)(i + cls));
    buddy_free(blocks[i]);
  }
  munmap(blocks, (size_t)count * sizeof *blocks);
}

Test(bins, the_starts_fit_the_budget_and_every_class_in_use_gets_its_start) {
  size_t starts = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) starts += (size_t)tcache_bin_start(c) * size_class_bytes[c];
  cr_assert_leq(starts, TCACHE_BYTES_MAX, "the starts need %zu KiB", starts >> 10);
  for (int round = 0; round < 3; round++)
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) churn_class(c, 2 * (int)tcache_bin_start(c) + 1);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    churn_class(c, 2 * (int)tcache_bin_start(c) + 1);
    cr_assert_geq(tcache_get()->bin_max[c], tcache_bin_start(c), "class %u has no bin", c);
  }
  check_own_budget();
}

/* A thread's cache is a page run of its home zone, as large as its slots
 * need (its pages are touched only as bins fill). */
Test(bins, a_threads_cache_with_its_slots_is_a_page_run) {
  buddy_free(buddy_malloc(SMALL_SIZE));
  tcache_t *tc = tcache_get();
  cr_assert_eq(tc->state, TCACHE_LIVE);
  region_t *r = pagemap_region_of(tc);
  page_desc_t *d = page_desc_of(r, tc);
  cr_assert_eq(d->kind, PAGE_RUN);
  cr_assert_eq((uintptr_t)tc & (PAGE_SIZE - 1), 0);
  cr_assert_geq(PAGE_SIZE << d->order, tcache_size());
  cr_assert_eq(r->zone, tc->zone, "from its home zone");
}

Test(bins, a_class_in_demand_grows_and_every_class_together_stays_within_the_budget) {
  unsigned hot = size_class_of(320);
  churn_class(hot, 1); /* the class's first slow path: its bin starts */
  cr_assert_eq(tcache_get()->bin_max[hot], tcache_bin_start(hot));
  for (int round = 0; round < 4; round++) churn_class(hot, 2 * TCACHE_BIN_MAX);
  cr_assert_eq(tcache_get()->bin_max[hot], bin_ceiling(hot), "refills double the bin up to its ceiling");
  cr_assert_gt(bin_ceiling(hot), tcache_bin_start(hot));
  /* Every class in demand at once asks for more than the budget. */
  size_t asked = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) asked += (size_t)bin_ceiling(c) * size_class_bytes[c];
  cr_assert_gt(asked, TCACHE_BYTES_MAX);
  size_t most = 0;
  for (int round = 0; round < 6; round++) {
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
      churn_class(c, 3 * (int)bin_ceiling(c));
      size_t held = check_own_budget();
      if (held > most) most = held;
    }
  }
  cr_assert_geq(most, TCACHE_BYTES_MAX * 3 / 4, "the budget is used: %zu KiB", most >> 10);
  cr_assert_leq(stats_now().bytes_cached, TCACHE_BYTES_MAX);
  zone_verify_all();
}

/* The classes above 4 KiB, which the helper below runs until they hold at
 * least 3/4 of the budget. */
#define FIRST_LARGE_SIZE 5000
static const unsigned middle_classes[] = {13, 14, 15, 16}; /* 320 .. 512 bytes */
#define MIDDLE_CLASSES (sizeof middle_classes / sizeof middle_classes[0])

static unsigned fill_budget_with_large_classes(void) {
  unsigned first_large = size_class_of(FIRST_LARGE_SIZE);
  for (int round = 0; round < 8; round++)
    for (unsigned c = first_large; c < SIZE_CLASS_COUNT; c++) churn_class(c, 3 * (int)bin_ceiling(c));
  cr_assert_geq(check_own_budget(), TCACHE_BYTES_MAX * 3 / 4);
  return first_large;
}

Test(bins, the_middle_classes_are_320_to_512_bytes) {
  for (unsigned i = 0; i < MIDDLE_CLASSES; i++) cr_assert_eq(size_class_bytes[middle_classes[i]], 320 + 64 * i);
}

Test(bins, a_new_working_set_takes_the_budget_of_classes_no_longer_used) {
  /* Phase 1: the largest classes fill the budget. */
  unsigned first_large = fill_budget_with_large_classes();
  /* Phase 2: four middle classes only. Their bins must grow past their start,
   * which only the budget the large classes give up allows. */
  const unsigned *middle = middle_classes;
  size_t middle_ceilings = 0;
  for (unsigned i = 0; i < MIDDLE_CLASSES; i++)
    middle_ceilings += (size_t)bin_ceiling(middle[i]) * size_class_bytes[middle[i]];
  cr_assert_gt(middle_ceilings, TCACHE_BYTES_MAX - check_own_budget(), "phase 2 needs budget from phase 1");
  for (int round = 0; round < 200; round++)
    for (unsigned i = 0; i < MIDDLE_CLASSES; i++) churn_class(middle[i], 2 * (int)bin_ceiling(middle[i]));
  const tcache_t *tc = tcache_get();
  for (unsigned i = 0; i < MIDDLE_CLASSES; i++)
    cr_assert_eq(tc->bin_max[middle[i]], bin_ceiling(middle[i]), "class %u: %u", middle[i], tc->bin_max[middle[i]]);
  size_t large = 0, starts = 0;
  for (unsigned c = first_large; c < SIZE_CLASS_COUNT; c++) {
    large += (size_t)tc->bin_max[c] * size_class_bytes[c];
    starts += (size_t)tcache_bin_start(c) * size_class_bytes[c];
  }
  cr_assert_leq(large, starts, "bins of unused classes gave up all but their start: %zu KiB left", large >> 10);
  check_own_budget();
  zone_verify_all();
}

Test(bins, a_smaller_class_in_demand_takes_budget_from_larger_ones_still_in_use) {
  unsigned first_large = fill_budget_with_large_classes();
  uint32_t large_max[SIZE_CLASS_COUNT];
  for (unsigned c = first_large; c < SIZE_CLASS_COUNT; c++) large_max[c] = tcache_get()->bin_max[c];
  /* The large classes stay in use (each serves more than its max between
   * rebalances), so only the rule for larger classes frees budget. */
  const unsigned *middle = middle_classes;
  size_t large_before = 0, large_after = 0;
  for (unsigned c = first_large; c < SIZE_CLASS_COUNT; c++) large_before += (size_t)large_max[c] * size_class_bytes[c];
  for (int round = 0; round < 200; round++) {
    for (unsigned c = first_large; c < SIZE_CLASS_COUNT; c++) churn_class(c, 3 * (int)bin_ceiling(c));
    for (unsigned i = 0; i < MIDDLE_CLASSES; i++) churn_class(middle[i], 2 * (int)bin_ceiling(middle[i]));
  }
  const tcache_t *tc = tcache_get();
  size_t middle_bytes = 0, middle_starts = 0;
  for (unsigned i = 0; i < MIDDLE_CLASSES; i++) {
    middle_bytes += (size_t)tc->bin_max[middle[i]] * size_class_bytes[middle[i]];
    middle_starts += (size_t)tcache_bin_start(middle[i]) * size_class_bytes[middle[i]];
  }
  cr_assert_geq(middle_bytes, 2 * middle_starts, "the smaller classes grew: %zu KiB from %zu KiB", middle_bytes >> 10,
                middle_starts >> 10);
  for (unsigned c = first_large; c < SIZE_CLASS_COUNT; c++) {
    /* In use every round: never below its start (a class below it takes budget from any other). */
    cr_assert_geq(tc->bin_max[c], tcache_bin_start(c), "class %u went from %u to %u", c, large_max[c], tc->bin_max[c]);
    large_after += (size_t)tc->bin_max[c] * size_class_bytes[c];
  }
  cr_assert_lt(large_after, large_before, "the larger classes gave up budget: %zu KiB, were %zu KiB", large_after >> 10,
               large_before >> 10);
  check_own_budget();
  zone_verify_all();
}

/* ---- Secure mode's zones ---------------------------------------------------- */

static void *secure_zone_main(void *arg) {
  void *p = buddy_malloc(SMALL_SIZE);
  check(p != NULL);
  *(unsigned *)arg = pagemap_region_of(p)->zone_index;
  buddy_free(p);
  return NULL;
}

/* Secure mode's bins hold nothing, so its threads never take the slow path
 * that makes their caches; it makes them itself (tcache_enter_held), so that
 * each thread takes its blocks from its own home zone, not all from zone 0
 * (one lock for every thread's every malloc). */
Test(secure, threads_take_blocks_from_their_own_zones) {
  options.secure = 1;
  options.debug = 1; /* as secure=1 in BUDDY_OPTIONS sets it */
  options.zones = 3;
  void *p = buddy_malloc(SMALL_SIZE);
  cr_assert_not_null(p);
  cr_assert_eq(pagemap_region_of(p)->zone_index, 0, "the first thread's home zone");
  unsigned zone = 0;
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, secure_zone_main, &zone), 0);
  pthread_join(t, NULL);
  cr_assert_neq(zone, 0, "a second thread alive at the same time takes another zone");
  buddy_free(p);
}

/* ---- Secure mode's freed blocks on their way back (secure_cache.c) -------- */

/* 48 bytes and the trailer: blocks of 64 bytes, or of the next class if
 * that is the huge descriptors' (secure_class). */
#define SECURE_SIZE 48
#define SECURE_QUARANTINE_KB 16
#define SECURE_CLASS secure_class(SECURE_SIZE, SMALL_ALIGN)
#define SECURE_QUARANTINE_BLOCKS ((int)(SECURE_QUARANTINE_KB * 1024 / size_class_bytes[SECURE_CLASS]))
/* More than the quarantine and two batches hold: enough to push a block
 * through both, in fewer than SECURE_WANTED_SPILLS spills (so its class
 * still counts as taken). SECURE_OTHERS_MAX: for the smallest class. */
#define SECURE_OTHERS ((unsigned)SECURE_QUARANTINE_BLOCKS + 2 * SECURE_BATCH_SLOTS)
#define SECURE_OTHERS_MAX (SECURE_QUARANTINE_KB * 1024 / 16 + 2 * SECURE_BATCH_SLOTS)

/* Secure mode as BUDDY_OPTIONS sets it, on for the caches made from now on
 * (the test's threads): each of them keeps its freed blocks. */
static void secure_mode(long quarantine_kb) {
  options.secure = 1;
  options.debug = 1;
  options.quarantine_kb = quarantine_kb;
}

static void run_thread(void *(*fn)(void *), void *arg) {
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
}

/* Whether p is one of the calling thread's ready blocks of its class. */
static bool secure_ready_holds(const void *p) {
  const secure_cache_t *sc = tcache_get()->secure;
  unsigned cls = SECURE_CLASS;
  for (uint32_t i = 0; i < sc->ready_count[cls]; i++)
    if (sc->ready[cls][i] == p) return true;
  return false;
}

/* Frees p, then frees `others` blocks of its class that were live before
 * it, in one go (no malloc between, so that p is not handed out): p goes
 * through the thread's batch and the quarantine. */
static void secure_free_then_others(void *p, void **others, unsigned count) {
  buddy_free(p);
  for (unsigned i = 0; i < count; i++) buddy_free(others[i]);
}

typedef struct secure_reuse {
  int first_reuse; /* pairs after p's free until p came back; -1: never */
} secure_reuse_t;

static void *secure_reuse_main(void *arg) {
  secure_reuse_t *r = arg;
  void *p = buddy_malloc(SECURE_SIZE);
  check(p != NULL);
  buddy_free(p);
  r->first_reuse = -1;
  for (int i = 0; i < 20 * SECURE_QUARANTINE_BLOCKS && r->first_reuse < 0; i++) {
    void *q = buddy_malloc(SECURE_SIZE);
    check(q != NULL);
    if (q == p) r->first_reuse = i;
    buddy_free(q);
  }
  return NULL;
}

/* A freed block waits while quarantine_kb of others are freed after it
 * (its batch, then its zone's quarantine), then joins its thread's ready
 * blocks and is handed out again: not lost on the way. */
Test(secure, a_freed_block_comes_back_after_the_quarantine_and_not_before) {
  secure_mode(SECURE_QUARANTINE_KB);
  secure_reuse_t r;
  run_thread(secure_reuse_main, &r);
  cr_assert_geq(r.first_reuse, SECURE_QUARANTINE_BLOCKS, "came back after %d frees, before the quarantine's %d",
                r.first_reuse, SECURE_QUARANTINE_BLOCKS);
  zone_verify_all();
}

typedef struct secure_ready {
  bool in_ready, written;
} secure_ready_t;

/* A block of the thread's that went through the quarantine into its ready
 * blocks (checked there), the others it freed after it. */
static void *secure_block_made_ready(void) {
  static void *others[SECURE_OTHERS_MAX];
  for (unsigned i = 0; i < SECURE_OTHERS; i++) check((others[i] = buddy_malloc(SECURE_SIZE)) != NULL);
  void *p = buddy_malloc(SECURE_SIZE);
  check(p != NULL);
  secure_free_then_others(p, others, SECURE_OTHERS);
  return p;
}

static void *secure_double_free_main(void *arg) {
  secure_ready_t *r = arg;
  void *p = buddy_malloc(SECURE_SIZE);
  check(p != NULL);
  buddy_free(p);
  buddy_free(p); /* it waits in the thread's batch */
  void *q = secure_block_made_ready();
  r->in_ready = secure_ready_holds(q);
  buddy_free(q); /* it waits among the ready blocks */
  return NULL;
}

/* Runs fn in a thread of secure mode, which puts a block among its ready
 * ones (checked): what it reported. */
static const char *secure_ready_run(void *(*fn)(void *), secure_ready_t *r) {
  secure_mode(SECURE_QUARANTINE_KB);
  run_thread(fn, r);
  cr_assert(r->in_ready, "the block left the quarantine into the thread's ready blocks");
  return redirected_stderr();
}

/* A second free finds the block's quarantine mark wherever it waits: in the
 * freeing thread's batch, or among the blocks it hands out next. */
Test(secure, a_double_free_is_found_in_the_batch_and_among_the_ready_blocks, .init = heap_test_warn_on_misuse) {
  secure_ready_t r = {0};
  const char *text = secure_ready_run(secure_double_free_main, &r);
  const char *first = strstr(text, "double free");
  cr_assert(first != NULL && strstr(first + 1, "double free") != NULL, "both double frees reported:\n%s", text);
  zone_verify_all();
}

static void *secure_write_after_free_main(void *arg) {
  secure_ready_t *r = arg;
  unsigned char *p = secure_block_made_ready();
  r->in_ready = secure_ready_holds(p);
  p[SECURE_SIZE / 2] = 'x'; /* a write through a stale pointer */
  /* Every ready block is handed out (and checked) before the class refills. */
  void *taken[SECURE_READY_MAX + 1];
  unsigned n = 0;
  while (n < SECURE_READY_MAX + 1 && secure_ready_holds(p)) check((taken[n++] = buddy_malloc(SECURE_SIZE)) != NULL);
  /* Reported, p went back to its slab refilled, and a refill in the same
   * malloc may choose it again (its slab's only free object, say): only
   * the written byte must never come back. */
  for (unsigned i = 0; i < n; i++) r->written |= taken[i] == (void *)p && p[SECURE_SIZE / 2] == 'x';
  for (unsigned i = 0; i < n; i++) buddy_free(taken[i]);
  return NULL;
}

/* A ready block is checked when malloc takes it: one written to after its
 * free is reported and not handed out. */
Test(secure, a_write_to_a_ready_block_is_reported_when_it_is_taken, .init = heap_test_warn_on_misuse) {
  secure_ready_t r = {0};
  const char *text = secure_ready_run(secure_write_after_free_main, &r);
  cr_assert_not(r.written, "the written block is not handed out as it was written");
  cr_assert_not_null(strstr(text, "use after free: a freed block was written to"), "got:\n%s", text);
  zone_verify_all();
}

typedef struct secure_exit {
  size_t live_before_exit;
} secure_exit_t;

static void *secure_exit_main(void *arg) {
  enum { BLOCKS = 300 };
  void *blocks[BLOCKS];
  for (unsigned i = 0; i < BLOCKS; i++) check((blocks[i] = buddy_malloc(SECURE_SIZE)) != NULL);
  for (unsigned i = 0; i < BLOCKS; i++) buddy_free(blocks[i]);
  check(buddy_malloc(SECURE_SIZE) != NULL); /* the class is one the thread takes: ready blocks kept, one leaked */
  ((secure_exit_t *)arg)->live_before_exit = stats_now().class_live[SECURE_CLASS];
  return NULL;
}

/* An exiting thread's batch goes to the quarantine and its ready blocks to
 * their slabs: with quarantine_kb=0, all of them, so that out of the slabs
 * remains the one block it kept (a slab's guard, its first object, is not a
 * block: the statistics leave it out). */
Test(secure, an_exiting_thread_gives_its_blocks_back) {
  secure_mode(0);
  secure_exit_t r;
  run_thread(secure_exit_main, &r);
  unsigned cls = SECURE_CLASS;
  buddy_stats_t s = stats_now();
  cr_assert_gt(r.live_before_exit, 1, "the thread held blocks before its exit: %zu", r.live_before_exit);
  cr_assert_eq(s.class_live[cls], 1, "%zu blocks out of %zu slabs after the exit", s.class_live[cls],
               s.class_slabs[cls]);
  zone_verify_all();
}

typedef struct secure_guard_free {
  unsigned used_before, used_after;
  bool guarded, handed_out;
} secure_guard_free_t;

enum { GUARD_FREE_ROUNDS = 20, GUARD_FREE_BLOCKS = 4 * SECURE_BATCH_SLOTS };

static void *secure_guard_free_main(void *arg) {
  secure_guard_free_t *r = arg;
  void *p = buddy_malloc(SECURE_SIZE);
  check(p != NULL);
  unsigned cls = SECURE_CLASS;
  region_t *reg = pagemap_region_of(p);
  page_desc_t *head = slab_head_at(reg, p, cls);
  void *guard = (void *)((uintptr_t)p & ~(uintptr_t)size_class_info[cls].slab_mask);
  r->guarded = slab_kept(head) == 1;
  r->used_before = head->slab_used;
  buddy_free(guard);
  r->used_after = head->slab_used;
  buddy_free(p);
  /* Batches spilled through the quarantine (quarantine_kb=0) into the
   * ready blocks: the guard, if taken in, would be handed out. */
  static void *blocks[GUARD_FREE_BLOCKS];
  for (unsigned round = 0; round < GUARD_FREE_ROUNDS; round++) {
    for (unsigned i = 0; i < GUARD_FREE_BLOCKS; i++) {
      check((blocks[i] = buddy_malloc(SECURE_SIZE)) != NULL);
      r->handed_out |= blocks[i] == guard;
    }
    for (unsigned i = 0; i < GUARD_FREE_BLOCKS; i++) buddy_free(blocks[i]);
  }
  return NULL;
}

/* A free of a slab's guard (its first object, never handed out) is
 * reported and refused: let through, it would come back to the program as
 * a block of a slab that counts as empty without it (and may go back to the
 * core while the program holds it). */
Test(secure, a_free_of_a_slabs_guard_is_refused, .init = heap_test_warn_on_misuse) {
  secure_mode(0);
  secure_guard_free_t r = {0};
  run_thread(secure_guard_free_main, &r);
  cr_assert(r.guarded, "a secure slab keeps its guard");
  cr_assert_eq(r.used_after, r.used_before, "the slab's count unchanged");
  cr_assert_not(r.handed_out, "the guard was handed out as a block");
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "free of a small block that was never allocated (a slab's guard)"), "got:\n%s", text);
  zone_verify_all();
}

typedef struct secure_requests {
  uint64_t before, after;
} secure_requests_t;

static void *secure_requests_main(void *arg) {
  secure_requests_t *r = arg;
  enum { REQUESTS = 100 };
  void *blocks[REQUESTS];
  buddy_free(buddy_malloc(SECURE_SIZE)); /* the thread's cache made */
  r->before = stats_now().class_requests[SECURE_CLASS];
  for (unsigned i = 0; i < REQUESTS; i++) check((blocks[i] = buddy_malloc(SECURE_SIZE)) != NULL);
  r->after = stats_now().class_requests[SECURE_CLASS];
  for (unsigned i = 0; i < REQUESTS; i++) buddy_free(blocks[i]);
  return NULL;
}

/* Secure mode's mallocs count in the per-class requests of the statistics
 * (malloc_stats, stats=1), as the default mode's bin pops do: they showed 0. */
Test(secure, requests_are_counted_per_class) {
  secure_mode(0);
  secure_requests_t r;
  run_thread(secure_requests_main, &r);
  cr_assert_eq(r.after - r.before, 100, "%llu requests counted", (unsigned long long)(r.after - r.before));
}

enum { SECURE_SLABS_BLOCKS = 3000 }; /* over several slabs of SECURE_SIZE's class */

static void *secure_slabs_main(void *arg) {
  (void)arg;
  static void *blocks[SECURE_SLABS_BLOCKS];
  for (unsigned i = 0; i < SECURE_SLABS_BLOCKS; i++) check((blocks[i] = buddy_malloc(SECURE_SIZE)) != NULL);
  for (unsigned i = 0; i < SECURE_SLABS_BLOCKS; i++) buddy_free(blocks[i]);
  return NULL;
}

static uint32_t empty_slabs_of(unsigned cls) {
  uint32_t count = 0;
  for (unsigned z = 0; z < ZONES_MAX; z++) count += zones[z].slabs[cls].empty_count;
  return count;
}

/* A slab's guard (its first object, kept out for good) does not keep the
 * slab in use: once every block came back, the slab is empty (kept in its
 * zone's reserve, or back to the core with its guard page). Before, no
 * slab of secure mode ever emptied: a program that freed everything kept
 * every slab, and each one's guard page, a mapping of the kernel's count,
 * until mmap failed (tests/programs/secure_rounds.sh). */
Test(secure, a_slab_whose_blocks_all_came_back_is_empty) {
  secure_mode(0);
  unsigned cls = SECURE_CLASS;
  run_thread(secure_slabs_main, NULL);
  buddy_stats_t s = stats_now();
  cr_assert_eq(s.class_live[cls], 0, "%zu blocks out after all came back", s.class_live[cls]);
  cr_assert_eq(empty_slabs_of(cls), s.class_slabs[cls], "%u of the class's %zu slabs empty", empty_slabs_of(cls),
               s.class_slabs[cls]);
  zone_verify_all();
}

/* Guard pages (and sealed runs) stop at their budget (os.h:
 * os_counted_guards_max), past which slabs go without one: each splits a
 * mapping, and the kernel's count of mappings is the program's too. */
Test(secure, guard_pages_stop_at_their_budget) {
  secure_mode(0);
  enum { BUDGET_LEFT = 3 };
  os_counted_guards_max = os_counted_guards() + BUDGET_LEFT;
  unsigned cls = SECURE_CLASS;
  size_t slabs_before = stats_now().class_slabs[cls];
  static void *blocks[SECURE_SLABS_BLOCKS];
  for (unsigned i = 0; i < SECURE_SLABS_BLOCKS; i++) {
    cr_assert_not_null(blocks[i] = buddy_malloc(SECURE_SIZE));
    memset(blocks[i], 0x5a, SECURE_SIZE);
  }
  size_t made = stats_now().class_slabs[cls] - slabs_before;
  cr_assert_gt(made, BUDGET_LEFT, "the blocks took %zu new slabs", made);
  cr_assert_eq(os_counted_guards(), os_counted_guards_max, "%zu guards live, budget %zu", os_counted_guards(),
               os_counted_guards_max);
  zone_verify_all();
  for (unsigned i = 0; i < SECURE_SLABS_BLOCKS; i++) buddy_free(blocks[i]);
  os_counted_guards_max = OS_COUNTED_GUARDS_MAX;
}

typedef struct secure_decay {
  uint32_t ready_after_first_spill, ready_at_end;
} secure_decay_t;

static uint32_t secure_ready_count(unsigned cls) {
  return tcache_get()->secure->ready_count[cls];
}

/* Takes and frees blocks of SECURE_SIZE's class, then frees only blocks of
 * another class for SECURE_WANTED_SPILLS + 2 batches. */
static void *secure_decay_main(void *arg) {
  secure_decay_t *r = arg;
  enum { OTHER = 200, SPILLS = SECURE_WANTED_SPILLS + 2 };
  static void *mine[SECURE_BATCH_SLOTS], *others[SPILLS * SECURE_BATCH_SLOTS];
  for (unsigned i = 0; i < SPILLS * SECURE_BATCH_SLOTS; i++) check((others[i] = buddy_malloc(OTHER)) != NULL);
  for (unsigned i = 0; i < SECURE_BATCH_SLOTS; i++) check((mine[i] = buddy_malloc(SECURE_SIZE)) != NULL);
  for (unsigned i = 0; i < SECURE_BATCH_SLOTS; i++) buddy_free(mine[i]); /* a spill: into the ready ones */
  r->ready_after_first_spill = secure_ready_count(SECURE_CLASS);
  for (unsigned i = 0; i < SPILLS * SECURE_BATCH_SLOTS; i++) buddy_free(others[i]);
  r->ready_at_end = secure_ready_count(SECURE_CLASS);
  return NULL;
}

/* The ready blocks of a class the thread stopped taking go back to their
 * slabs after SECURE_WANTED_SPILLS spills: nothing is held for a malloc
 * that does not come. */
Test(secure, a_class_no_longer_taken_gives_its_ready_blocks_back) {
  secure_mode(0); /* blocks leave the quarantine at once */
  secure_decay_t r;
  run_thread(secure_decay_main, &r);
  cr_assert_gt(r.ready_after_first_spill, 0, "the class's blocks came back as ready ones");
  cr_assert_eq(r.ready_at_end, 0, "%u ready blocks still held", r.ready_at_end);
  zone_verify_all();
}

/* An idle thread's batch and ready blocks are reclaimed as its bins would
 * be (tcache_cached_bytes counts them). */
Test(secure, an_idle_threads_blocks_are_reclaimed, .timeout = 30) {
  secure_mode(0);
  worker_t w = {.stray = NULL};
  idle_worker_start(&w);
  cr_assert_gt(stats_now().class_live[SECURE_CLASS], 0, "the idle worker holds blocks");
  cr_assert(wait_for_reclaim(0, RECLAIM_WAIT_MS), "no reclaim within %d ms", RECLAIM_WAIT_MS);
  cr_assert_gt(stats_now().bytes_reclaimed, 0);
  worker_finish(&w); /* it takes its cache back and checks its blocks */
  zone_verify_all();
}

/* A medium block of secure mode: a run of SECURE_RUN_BYTES with its header
 * page. */
#define SECURE_RUN_BYTES ((size_t)64 << 10)
#define SECURE_RUN_SIZE (SECURE_RUN_BYTES - PAGE_SIZE)

/* Pages of the page run holding block p (after its header page) that are
 * resident. */
static size_t secure_run_resident_pages(void *p) {
  char *head = (char *)p - PAGE_SIZE;
  unsigned char in[SECURE_RUN_BYTES / PAGE_SIZE];
  cr_assert_eq(mincore(head, SECURE_RUN_BYTES, in), 0);
  size_t n = 0;
  for (size_t i = 0; i < SECURE_RUN_BYTES / PAGE_SIZE; i++) n += in[i] & 1;
  return n;
}

static void *secure_written_run(void) {
  void *p = buddy_malloc(SECURE_RUN_SIZE);
  check(p != NULL);
  memset(p, 'r', SECURE_RUN_SIZE);
  return p;
}

/* The calling thread's home zone, whose quarantine its frees go to. */
static zone_t *secure_home_zone(void) {
  return tcache_home_zone(tcache_get());
}

typedef struct secure_runs {
  zone_t *zone; /* the thread's home zone */
  void *last;   /* its last run freed, still in its quarantine */
} secure_runs_t;

static void *secure_free_three_runs_main(void *arg) {
  secure_runs_t *r = arg;
  void *runs[3];
  for (unsigned i = 0; i < 3; i++) runs[i] = secure_written_run();
  for (unsigned i = 0; i < 3; i++) buddy_free(runs[i]);
  r->zone = secure_home_zone();
  r->last = runs[2];
  return NULL;
}

/* Sealed runs keep their pages while those of all the quarantines hold
 * quarantine_kb at most before them; past that, a sealed run's pages go
 * back to the system. One quarantine alone never purges: it holds no more
 * than quarantine_kb. */
Test(secure, sealed_runs_keep_their_pages_up_to_quarantine_kb_in_all_quarantines) {
  secure_mode((long)(2 * SECURE_RUN_BYTES >> 10));
  secure_init(); /* a quarantine per zone, as at start-up */
  secure_runs_t other;
  run_thread(secure_free_three_runs_main, &other); /* 2 runs stay sealed in its zone's quarantine */
  void *first = secure_written_run(), *second = secure_written_run();
  buddy_free(first);  /* 2 runs' bytes sealed before it: kept */
  buddy_free(second); /* 3 before it: purged */
  cr_assert_neq(secure_home_zone(), other.zone, "the test's thread has a quarantine of its own");
  cr_assert_eq(secure_run_resident_pages(other.last), SECURE_RUN_BYTES / PAGE_SIZE,
               "the other quarantine's keep theirs");
  cr_assert_eq(page_desc_of(pagemap_region_of(first), (char *)first - PAGE_SIZE)->flags & PAGE_SEALED, PAGE_SEALED,
               "sealed");
  cr_assert_eq(secure_run_resident_pages(first), SECURE_RUN_BYTES / PAGE_SIZE, "the first keeps its pages");
  cr_assert_eq(secure_run_resident_pages(second), 0, "the second's pages went back");
}

/* ---- Sampling stacks (prof=1: tcache_prof.c) ------------------------------ */

enum { PROF_LIVE = 8, PROF_WARM = 20000, PROF_PAIRS = 100000 };

/* A thread whose cache has sampling stacks (options.prof was set before its
 * first malloc) frees and allocates blocks of one size in turn, as
 * bench/pair does: its slow paths over the last PROF_PAIRS pairs, and the
 * most objects its class's stack held after a malloc. */
typedef struct prof_pairs {
  size_t size;
  uint64_t slow_paths;
  uint32_t most_waiting;
} prof_pairs_t;

static void *prof_pairs_main(void *arg) {
  prof_pairs_t *t = arg;
  unsigned cls = size_class_of(t->size);
  void *live[PROF_LIVE];
  for (int i = 0; i < PROF_LIVE; i++) check((live[i] = buddy_malloc(t->size)) != NULL);
  check(tcache_own != NULL && tcache_own->prof != NULL);
  uint64_t before = 0;
  for (int i = 0; i < PROF_WARM + PROF_PAIRS; i++) {
    if (i == PROF_WARM) before = tcache_own->slow_paths;
    buddy_free(live[i % PROF_LIVE]);
    check((live[i % PROF_LIVE] = buddy_malloc(t->size)) != NULL);
    uint32_t waiting = tcache_prof_waiting(tcache_own, cls);
    if (waiting > t->most_waiting) t->most_waiting = waiting;
  }
  t->slow_paths = tcache_own->slow_paths - before;
  for (int i = 0; i < PROF_LIVE; i++) buddy_free(live[i]);
  return NULL;
}

/* prof_pairs_main, run in a thread of its own with sampling on and no sample
 * point within reach. */
static prof_pairs_t prof_pairs_run(size_t size) {
  options.prof = 1;
  options.prof_sample = (long)1 << 40; /* no sample point is reached */
  prof_pairs_t t = {.size = size};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, prof_pairs_main, &t), 0);
  pthread_join(th, NULL);
  options.prof = 0; /* no profile written at exit */
  return t;
}

/* With a class allocated and freed in turn, a sampling stack is refilled
 * with as many objects as the bin gets back: its first fills must be long
 * (half the bin's max, the bin topped up from the zone if need be), or the
 * slow path comes every few allocations for the rest of the run (it came
 * every 16 of 64 bytes once a bin's first refill became 1 KiB, and each
 * round trip flushed a full bin). */
Test(sampling, a_class_allocated_and_freed_in_turn_rarely_takes_the_slow_path) {
  uint64_t slow_paths = prof_pairs_run(SMALL_SIZE).slow_paths;
  cr_assert_leq(slow_paths, PROF_PAIRS / 32, "%llu slow paths in %d pairs", (unsigned long long)slow_paths, PROF_PAIRS);
}

/* Once its bin has served TCACHE_PROF_HOT times its max, a class allocated
 * and freed in turn fills its stack with all of the bin but one, not half:
 * the slow path comes about once per max allocations (64 bytes, a bin of
 * 128: 1563 slow paths in 100000 pairs with half, about 790 now). */
Test(sampling, a_hot_class_allocated_and_freed_in_turn_takes_the_slow_path_once_per_bin) {
  uint64_t slow_paths = prof_pairs_run(SMALL_SIZE).slow_paths;
  cr_assert_leq(slow_paths, PROF_PAIRS / 100, "%llu slow paths in %d pairs", (unsigned long long)slow_paths,
                PROF_PAIRS);
}

/* A stack hands out objects freed up to its length earlier (free pushes on
 * the bin), so a fill takes at most TCACHE_PROF_FILL_BYTES of objects: 16 of
 * 1 KiB, where the hot class's stack took all of its bin but one (127). */
Test(sampling, a_stack_takes_at_most_its_fill_bytes) {
  uint32_t most = prof_pairs_run(1024).most_waiting;
  cr_assert_leq(most * (size_t)1024, TCACHE_PROF_FILL_BYTES, "%u objects of 1 KiB in the stack", most);
  cr_assert_geq(most, TCACHE_PROF_FILL_BYTES / 1024 / 2, "the stack was filled (%u objects)", most);
}

/* Blocks of 16 KiB, whose bin starts at one object (TCACHE_BIN_START_BYTES),
 * allocated and freed in bursts of a few: the stack took at most half the
 * bin's max, 0 objects, so every allocation took the slow path (50000 in
 * 100000 allocations and frees, bursts of 4 or 16), and the frees flushed
 * the full bin. Now such a bin grows (TCACHE_PROF_GROW_BELOW), and a free
 * that finds it full moves its objects to the stack (tcache_prof_absorb). */
typedef struct prof_burst {
  size_t size;
  int burst;
  uint64_t slow_paths; /* over PROF_PAIRS allocations and as many frees */
} prof_burst_t;

static void *prof_burst_main(void *arg) {
  prof_burst_t *t = arg;
  void *live[16];
  check(t->burst <= 16);
  uint64_t before = 0;
  for (long n = 0; n < PROF_WARM + PROF_PAIRS; n += t->burst) {
    if (n == PROF_WARM) before = tcache_own->slow_paths;
    for (int i = 0; i < t->burst; i++) check((live[i] = buddy_malloc(t->size)) != NULL);
    for (int i = 0; i < t->burst; i++) buddy_free(live[i]);
  }
  check(tcache_own != NULL && tcache_own->prof != NULL);
  t->slow_paths = tcache_own->slow_paths - before;
  return NULL;
}

Test(sampling, blocks_of_16_kib_allocated_and_freed_in_bursts_take_the_slow_path_once_in_four_at_most) {
  options.prof = 1;
  options.prof_sample = (long)1 << 40; /* no sample point is reached */
  const int bursts[] = {4, 16};
  for (size_t i = 0; i < sizeof bursts / sizeof bursts[0]; i++) {
    prof_burst_t t = {.size = 16384, .burst = bursts[i]};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, prof_burst_main, &t), 0);
    pthread_join(th, NULL);
    cr_assert_leq(t.slow_paths, PROF_PAIRS / 4, "bursts of %d: %llu slow paths in %d allocations", bursts[i],
                  (unsigned long long)t.slow_paths, PROF_PAIRS);
  }
  options.prof = 0; /* no profile written at exit */
}

/* Exactness: from a countdown of `left` bytes set in the thread's cache, the
 * allocation that reaches the sample point, and that one alone, is sampled
 * (served from a page run flagged PAGE_SAMPLED): the ceil(left / size)-th,
 * whatever the stack, the bin and the zone held, and however the bin grew
 * on the way. */
typedef struct prof_exact {
  size_t size;
  int64_t left;
  int keep;     /* blocks kept live: freed and allocated in turn (pair), or all freed at once (batch) */
  bool batch;   /* allocate `keep`, free them all, again */
  long sampled; /* the index (from 1) of the one sampled allocation; 0: none */
  long samples; /* how many were sampled */
} prof_exact_t;

enum { PROF_EXACT_WARM = 3000, PROF_EXACT_ALLOCS = 6000, PROF_EXACT_KEEP_MAX = 300 };
/* Points drawn at random (mean prof_sample, at most 2^40 bytes) are moved
 * this far, so that only the point the test sets is reached. */
#define PROF_EXACT_OUT_OF_REACH ((int64_t)1 << 50)
#define PROF_EXACT_OTHER_SIZE 96

static bool prof_was_sampled(void *p) {
  region_t *r = pagemap_region_of(p);
  return page_class_at(r, p) == 0 && (page_desc_of(r, p)->flags & PAGE_SAMPLED) != 0;
}

static void *prof_exact_main(void *arg) {
  prof_exact_t *t = arg;
  void *live[PROF_EXACT_KEEP_MAX];
  unsigned cls = size_class_of(t->size);
  /* The thread's cache made by another class, then the class's first point,
   * drawn at random, moved out of reach of the warm-up (below). */
  check(size_class_of(PROF_EXACT_OTHER_SIZE) != cls);
  buddy_free(buddy_malloc(PROF_EXACT_OTHER_SIZE));
  tcache_t *tc = tcache_own;
  check(tc != NULL && tc->prof != NULL);
  tc->prof->left[cls] += PROF_EXACT_OUT_OF_REACH;
  /* The class in use first, in the pattern to come: its bin and stack hold objects. */
  for (int i = 0; i < t->keep; i++) check((live[i] = buddy_malloc(t->size)) != NULL);
  for (int n = 0; n < PROF_EXACT_WARM; n += t->keep)
    for (int i = 0; i < t->keep; i++) {
      buddy_free(live[i]);
      check((live[i] = buddy_malloc(t->size)) != NULL);
      check(!prof_was_sampled(live[i]));
    }
  /* The stack's objects back to the zone, nothing handed out since: the
   * next allocation takes the slow path with `left` bytes to the point. */
  tcache_prof_unload(tc);
  tc->prof->filled[cls] = 0;
  tc->prof->left[cls] = t->left;
  long n = 0;
  t->sampled = t->samples = 0;
  while (n < PROF_EXACT_ALLOCS) {
    for (int i = 0; i < t->keep && n < PROF_EXACT_ALLOCS; i++) {
      if (!t->batch) buddy_free(live[i]);
      check((live[i] = buddy_malloc(t->size)) != NULL);
      n++;
      if (prof_was_sampled(live[i])) {
        t->samples++;
        if (t->sampled == 0) {
          t->sampled = n;
          /* The next point, drawn at random, would be reached within the
           * up to 200 MB this thread still allocates with a chance of 1 in
           * 5000 (about 1% over the test's 240 threads, as CI once saw). */
          tc->prof->left[cls] += PROF_EXACT_OUT_OF_REACH;
        }
      }
    }
    if (t->batch)
      for (int i = 0; i < t->keep; i++) buddy_free(live[i]);
  }
  if (!t->batch)
    for (int i = 0; i < t->keep; i++) buddy_free(live[i]);
  return NULL;
}

Test(sampling, the_allocation_that_reaches_the_sample_point_is_the_one_sampled) {
  options.prof = 1;
  options.prof_sample = (long)1 << 40; /* after the one set here, no point is reached */
  const size_t sizes[] = {16, 64, 448, 1024, 4096, 8192, 16384, 32768};
  const int64_t objects[] = {1, 2, 7, 300, 4000}; /* the sampled one's index */
  const int keeps[] = {1, 8, 300};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (size_t o = 0; o < sizeof objects / sizeof objects[0]; o++)
      for (size_t k = 0; k < sizeof keeps / sizeof keeps[0]; k++)
        for (int batch = 0; batch < 2; batch++) {
          /* left just over objects - 1 sizes: the objects-th allocation reaches it */
          int64_t size = (int64_t)sizes[s], left = (objects[o] - 1) * size + 1 + (int64_t)(o % 3) * (size / 3);
          prof_exact_t t = {.size = sizes[s], .left = left, .keep = keeps[k], .batch = batch};
          pthread_t th;
          cr_assert_eq(pthread_create(&th, NULL, prof_exact_main, &t), 0);
          pthread_join(th, NULL);
          cr_assert_eq(t.samples, 1, "%zu bytes, left %lld, keep %d, batch %d: %ld samples", sizes[s], (long long)left,
                       keeps[k], batch, t.samples);
          cr_assert_eq(t.sampled, objects[o], "%zu bytes, left %lld, keep %d, batch %d: allocation %ld sampled",
                       sizes[s], (long long)left, keeps[k], batch, t.sampled);
        }
  options.prof = 0;
}

Test(stats, requests_are_counted_exactly_per_class) {
  unsigned cls = size_class_of(SMALL_SIZE), other = size_class_of(OTHER_SIZE);
  buddy_stats_t before = stats_now();
  pthread_t threads[COUNT_THREADS];
  for (int t = 0; t < COUNT_THREADS; t++)
    cr_assert_eq(pthread_create(&threads[t], NULL, count_requests, (void *)(intptr_t)t), 0);
  for (int i = 0; i < 777; i++) buddy_free(buddy_malloc(OTHER_SIZE));
  for (int i = 0; i < 3; i++) buddy_free(buddy_malloc(96 * 1024));
  buddy_free(buddy_malloc(9u << 20));
  while (__atomic_load_n(&threads_counted, __ATOMIC_ACQUIRE) < COUNT_THREADS) test_sleep_ms(1);
  for (int t = 0; t < COUNT_THREADS; t += 2) pthread_join(threads[t], NULL);
  buddy_stats_t during = stats_now(); /* three threads gone, three live */
  __atomic_store_n(&threads_released, true, __ATOMIC_RELEASE);
  for (int t = 1; t < COUNT_THREADS; t += 2) pthread_join(threads[t], NULL);
  buddy_stats_t after = stats_now();
  cr_assert_eq(during.class_requests[cls] - before.class_requests[cls], COUNT_THREADS * COUNT_PER_THREAD);
  cr_assert_eq(after.class_requests[cls] - before.class_requests[cls], COUNT_THREADS * COUNT_PER_THREAD);
  cr_assert_eq(after.class_requests[other] - before.class_requests[other], 777);
  cr_assert_eq(after.medium_requests - before.medium_requests, 3);
  cr_assert_eq(after.huge_requests - before.huge_requests, 1);
}

Test(stats, requests_appear_in_the_json_report) {
  for (int i = 0; i < 1234; i++) buddy_free(buddy_malloc(OTHER_SIZE));
  char *json = buddy_stats_json();
  char pattern[64];
  snprintf(pattern, sizeof pattern, "{\"class\":%u,\"bytes\":%u,\"requests\":", size_class_of(OTHER_SIZE),
           (unsigned)size_class_bytes[size_class_of(OTHER_SIZE)]);
  const char *at = strstr(json, pattern);
  cr_assert_not_null(at, "%s in %s", pattern, json);
  cr_assert_geq(strtoull(at + strlen(pattern), NULL, 10), 1234);
  cr_assert_not_null(strstr(json, "\"caches_reclaimed\":"));
  buddy_free(json);
}

/* ---- fork(): caches of threads the child does not have --------------------- */

static void *orphan_stray; /* in the worker's remote batch at the fork */

static int child_flushes_orphans(void) {
  if (free_in_slab(orphan_stray)) return 3;
  buddy_stats_t s = stats_now();
  if (s.thread_caches != 1 || s.bytes_cached == 0) return 1; /* the worker's cache is an orphan */
  tcache_flush_current();
  maintain_tick(); /* the first sweep in a child is due at once */
  s = stats_now();
  if (s.bytes_cached != 0) return 2;
  if (!free_in_slab(orphan_stray)) return 4; /* the batch went home too */
  zone_verify_all();
  churn_and_check(5);
  return 0;
}

Test(fork, the_child_gives_back_caches_of_threads_it_does_not_have, .timeout = 30) {
  skip_under_tsan();
  options.reclaim_idle = 0;              /* orphans are flushed whether or not idle caches are */
  buddy_free(buddy_malloc(SMALL_SIZE));  /* the main thread has a cache too */
  void *keep = buddy_malloc(SMALL_SIZE); /* keeps the stray's slab in use */
  worker_t w = {.stray = orphan_stray = buddy_malloc(SMALL_SIZE)};
  worker_start(&w); /* the next thread: another zone than this one's */
  pid_t pid = fork();
  if (pid == 0) _exit(child_flushes_orphans());
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", WEXITSTATUS(status));
  worker_finish(&w);
  buddy_free(keep);
}

/* cancel_pending_idle.c: malloc and free must never be cancellation points,
 * not even while the allocator does housekeeping on another thread's behalf.
 *
 * buddymalloc's sweep of idle thread caches (at most once per purge delay,
 * from whichever thread takes a slow path) reads files under
 * /proc/self/task/TID/ with open and read, both cancellation points, under
 * its registry lock. A thread
 * with a pending deferred cancellation that runs the sweep inside malloc or
 * free is cancelled right there: it dies inside the allocator, holding its
 * lock, and the next thread start, thread exit or fork hangs.
 *
 * Run with BUDDY_OPTIONS=purge_delay_ms=100 (meson sets it) so that several
 * sweeps fall within one short run. Threads:
 *  - I (idle) fills its cache (IDLE_BLOCKS small blocks allocated, then
 *    freed), then blocks in read() on a pipe nobody writes: a cache the
 *    sweep will inspect;
 *  - W (worker) is cancelled before it can pass a barrier (main cancels,
 *    then joins the barrier; pthread_barrier_wait is not a cancellation
 *    point), so it leaves the barrier with the cancellation pending, having
 *    reached no cancellation point; it then allocates and frees in
 *    bursts for RUN_MS (taking many slow paths) and calls no cancellation
 *    point of its own; after the loop it sets `worker_finished` and
 *    returns.
 * Main joins W: either result is accepted (a cancellation point in its exit
 * path is fine), except PTHREAD_CANCELED with `worker_finished` unset, which
 * means W was cancelled inside malloc or free. Then main starts and joins a
 * thread that allocates, forks a child that allocates, closes the pipe and
 * joins I. A hang anywhere is the failure the driver's timeout reports.
 */
#include <sys/wait.h>

#include "hang_common.h"

#define IDLE_BLOCKS 200
#define BURST_BLOCKS 2000
#define BURST_MIN_SIZE 16
#define BURST_MAX_SIZE 4096
#define RUN_MS 400
#define PROBE_SIZE 100 /* the allocations after W is gone */
#define WORKER_DONE ((void *)1)

static const size_t idle_sizes[] = {24, 48, 96, 160}; /* a few small classes */
#define IDLE_SIZE_COUNT (sizeof idle_sizes / sizeof idle_sizes[0])

static int pipe_fds[2];
static pthread_barrier_t idle_ready; /* I has filled its cache */
static pthread_barrier_t worker_go;  /* W's cancellation is pending */
static atomic_bool worker_finished;  /* W got through its whole loop */
static atomic_bool worker_out_of_memory;

static void *idle_thread(void *arg) {
  (void)arg;
  static void *blocks[IDLE_BLOCKS];
  for (unsigned i = 0; i < IDLE_BLOCKS; i++) {
    blocks[i] = malloc(idle_sizes[i % IDLE_SIZE_COUNT]);
    if (blocks[i] == NULL) hang_fail("idle thread: malloc(%zu) returned NULL", idle_sizes[i % IDLE_SIZE_COUNT]);
  }
  for (unsigned i = 0; i < IDLE_BLOCKS; i++) free(blocks[i]);
  hang_barrier_wait(&idle_ready);
  char c;
  ssize_t n;
  while ((n = read(pipe_fds[0], &c, 1)) < 0 && errno == EINTR)
    ;
  if (n != 0) hang_fail("idle thread: read on the pipe returned %zd, expected end of file", n);
  return NULL;
}

/* No printing, sleeping or other cancellation point in here: the only ones
 * W can reach are inside the allocator, if it has any. */
static void *worker_thread(void *arg) {
  (void)arg;
  static void *blocks[BURST_BLOCKS];
  test_rng rng;
  test_rng_seed(&rng, hang_seed());
  hang_barrier_wait(&worker_go);
  uint64_t deadline = test_now_ns() + RUN_MS * NS_PER_MS;
  while (test_now_ns() < deadline) {
    for (unsigned i = 0; i < BURST_BLOCKS; i++) {
      size_t size = test_rng_range(&rng, BURST_MIN_SIZE, BURST_MAX_SIZE);
      unsigned char *p = malloc(size);
      if (p == NULL) {
        atomic_store(&worker_out_of_memory, true);
        break;
      }
      p[0] = (unsigned char)i;
      blocks[i] = p;
    }
    for (unsigned i = 0; i < BURST_BLOCKS; i++) {
      free(blocks[i]);
      blocks[i] = NULL;
    }
  }
  atomic_store(&worker_finished, true);
  return WORKER_DONE;
}

static void *probe_thread(void *arg) {
  (void)arg;
  void *p = malloc(PROBE_SIZE);
  if (p == NULL) hang_fail("new thread: malloc(%d) returned NULL", PROBE_SIZE);
  free(p);
  return NULL;
}

int main(void) {
  hang_check_errno(pipe(pipe_fds), "pipe");
  hang_check_rc(pthread_barrier_init(&idle_ready, NULL, 2), "pthread_barrier_init");
  hang_check_rc(pthread_barrier_init(&worker_go, NULL, 2), "pthread_barrier_init");

  pthread_t idle = hang_spawn(idle_thread, NULL);
  hang_barrier_wait(&idle_ready);

  pthread_t worker = hang_spawn(worker_thread, NULL);
  hang_check_rc(pthread_cancel(worker), "pthread_cancel");
  hang_barrier_wait(&worker_go);
  void *result = hang_join(worker);
  if (atomic_load(&worker_out_of_memory)) hang_fail("worker: malloc returned NULL");
  if (result == PTHREAD_CANCELED && !atomic_load(&worker_finished))
    hang_fail("worker cancelled inside the allocator: malloc/free must not be cancellation points");
  if (result != PTHREAD_CANCELED && result != WORKER_DONE) hang_fail("worker returned %p", result);

  hang_join(hang_spawn(probe_thread, NULL));

  pid_t pid = fork();
  if (pid < 0) hang_fail("fork: %s", strerror(errno));
  if (pid == 0) {
    void *p = malloc(PROBE_SIZE);
    if (p == NULL) hang_child_fail("malloc(%d) returned NULL", PROBE_SIZE);
    free(p);
    _exit(0);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) hang_fail("waitpid: %s", strerror(errno));
  if (status != 0) hang_fail("forked child ended with status 0x%x", (unsigned)status);

  close(pipe_fds[1]);
  hang_join(idle);
  close(pipe_fds[0]);
  return 0;
}

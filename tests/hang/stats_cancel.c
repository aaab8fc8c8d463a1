/* stats_cancel.c: a thread cancelled inside malloc_stats() or malloc_info()
 * must not leave the allocator locked (the idea of glibc's
 * tst-malloc-stats-cancellation).
 *
 * Both functions write their report, and write(2) and stdio output are
 * cancellation points. A thread with a pending deferred cancellation that
 * calls them is cancelled at that write; if the allocator holds a lock
 * across it (and no cleanup handler releases it), the lock stays held by a
 * thread that is gone, and the next malloc_stats(), or even malloc, hangs.
 *
 * Each round: main calls malloc_stats() once; a thread is cancelled while it
 * waits on a barrier (not a cancellation point), so its cancellation is
 * pending when it calls malloc_stats() (or malloc_info() in the odd rounds);
 * after the call it reaches pthread_testcancel(), so it ends cancelled
 * either way; main joins it, then calls malloc_stats(), malloc_info() and
 * malloc/free, which must all return. stderr goes to /dev/null meanwhile;
 * failures are reported on a duplicate of the original stderr.
 */
#include <fcntl.h>

#include "hang_common.h"

#define ROUNDS 20
#define PROBE_SIZE 100 /* the malloc/free after each round */

static FILE *devnull;
static pthread_barrier_t cancelled;

enum { REPORT_STATS, REPORT_INFO };

static void report(int which) {
  if (which == REPORT_STATS) malloc_stats();
  else if (malloc_info(0, devnull) != 0) hang_fail("malloc_info(0, /dev/null) failed");
}

static void *victim(void *arg) {
  int which = (int)(intptr_t)arg;
  hang_barrier_wait(&cancelled);
  report(which);
  pthread_testcancel();
  hang_fail("thread not cancelled at pthread_testcancel()");
}

int main(void) {
  hang_report_fd = dup(STDERR_FILENO);
  if (hang_report_fd < 0) hang_fail("dup stderr: %s", strerror(errno));
  int null_fd = open("/dev/null", O_WRONLY);
  if (null_fd < 0) hang_fail("open /dev/null: %s", strerror(errno));
  if (dup2(null_fd, STDERR_FILENO) < 0) hang_fail("dup2 to stderr: %s", strerror(errno));
  devnull = fdopen(null_fd, "w");
  if (devnull == NULL) hang_fail("fdopen /dev/null: %s", strerror(errno));
  hang_check_rc(pthread_barrier_init(&cancelled, NULL, 2), "pthread_barrier_init");

  malloc_stats();
  for (int round = 0; round < ROUNDS; round++) {
    int which = round % 2 == 0 ? REPORT_STATS : REPORT_INFO;
    pthread_t t = hang_spawn(victim, (void *)(intptr_t)which);
    hang_check_rc(pthread_cancel(t), "pthread_cancel");
    hang_barrier_wait(&cancelled);
    if (hang_join(t) != PTHREAD_CANCELED) hang_fail("round %d: the thread was not cancelled", round);
    /* Whatever the cancelled thread held must be free again. */
    report(REPORT_STATS);
    report(REPORT_INFO);
    void *p = malloc(PROBE_SIZE);
    if (p == NULL) hang_fail("malloc(%d) returned NULL", PROBE_SIZE);
    free(p);
  }
  fclose(devnull);
  pthread_barrier_destroy(&cancelled);
  return 0;
}

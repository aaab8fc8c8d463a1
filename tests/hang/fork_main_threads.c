/* fork_main_threads.c: the main thread forks while other threads allocate
 * (the idea of Scudo's fork test in wrappers_cpp_test.cpp and of glibc's
 * tst-mallocfork3), and each child allocates before it exits.
 *
 * The main thread is the one that ran the allocator's start-up, so this
 * checks that start-up leaves it able to fork: a fork handler that thinks
 * the forking thread is inside a locked section (lock_depth) takes no
 * locks, and a child then inherits a lock held by a thread it does not
 * have, and waits for it at its first refill. WORKERS threads malloc and
 * free blocks of 8 bytes to 1 MiB in a loop; the main thread forks FORKS
 * times; each child does the same once and leaves with CHILD_STATUS, which
 * the parent checks. A child that waits forever makes the run outlive its
 * timeout: reported by run_scenario.sh as a hang.
 */
#include <sys/wait.h>

#include "hang_common.h"

#define WORKERS 4
#define FORKS 20
#define CHILD_STATUS 23
#define SMALLEST_LOG 3
#define LARGEST_LOG 20

static atomic_bool stopping;

static void churn_once(void) {
  for (unsigned lg = SMALLEST_LOG; lg <= LARGEST_LOG; lg++) {
    char *p = malloc((size_t)1 << lg);
    if (p == NULL) hang_fail("malloc(%zu) failed", (size_t)1 << lg);
    p[0] = (char)lg;
    free(p);
  }
}

static void *worker_main(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stopping, memory_order_relaxed)) churn_once();
  return NULL;
}

int main(void) {
  pthread_t workers[WORKERS];
  for (int i = 0; i < WORKERS; i++) workers[i] = hang_spawn(worker_main, NULL);
  for (int n = 0; n < FORKS; n++) {
    pid_t pid = fork();
    if (pid < 0) hang_fail("fork: %s", strerror(errno));
    if (pid == 0) {
      churn_once();
      _exit(CHILD_STATUS);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) hang_fail("waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_STATUS)
      hang_fail("child %d of %d: status %#x", n + 1, FORKS, (unsigned)status);
  }
  atomic_store(&stopping, true);
  for (int i = 0; i < WORKERS; i++) hang_join(workers[i]);
  return 0;
}

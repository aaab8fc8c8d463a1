/* test_fork.c: fork() across the whole heap, linked to the static library:
 * the fork handlers (fork.c) must leave a child every lock free, the huge
 * cache's among them, whatever the parent's other threads were doing. Each
 * Criterion test runs in a process of its own. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buddymalloc.h"

/* Threads replacing huge blocks while the main thread forks: a child whose
 * small allocations run a sweep (which expires cached huge blocks) must find
 * the huge cache's lock free. */
static bool huge_cyclers_stop;

static void *huge_cycler(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&huge_cyclers_stop, __ATOMIC_ACQUIRE)) {
    buddy_free(buddy_malloc(5u << 20));
    buddy_free(buddy_malloc(6u << 20));
  }
  return NULL;
}

static void child_sweeps(void) {
  for (int r = 0; r < 100; r++) { /* well over RECLAIM_CHECK_SLOW_PATHS slow paths */
    enum { N = 600 };
    void *v[N];
    for (int i = 0; i < N; i++) v[i] = buddy_malloc(16 + (size_t)(i * 37) % 3000);
    for (int i = 0; i < N; i++) buddy_free(v[i]);
  }
  _exit(0);
}

Test(fork, children_find_the_huge_cache_unlocked, .timeout = 120) {
  buddy_free(buddy_malloc(9u << 20)); /* a cached huge block: expiry takes the lock */
  pthread_t threads[2];
  for (int t = 0; t < 2; t++) cr_assert_eq(pthread_create(&threads[t], NULL, huge_cycler, NULL), 0);
  for (int f = 0; f < 150; f++) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(10); /* a deadlocked child dies of SIGALRM */
      child_sweeps();
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork %d: child status %#x", f, status);
  }
  __atomic_store_n(&huge_cyclers_stop, true, __ATOMIC_RELEASE);
  for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
}

/* fork_signal_threads.c: a multi-threaded process forks from a signal handler
 * that interrupted malloc or free (the idea of glibc's tst-mallocfork).
 *
 * As fork_signal_single.c, but the signals come from a sender thread in the
 * same process, which sends SIGUSR1 to the main thread in a loop (paced: one
 * signal in flight, see fork_signal.h; SIGUSR1 is blocked in the sender, so
 * it can only land on the main thread).
 * The handler forks; the child leaves with exit(0), which runs the atexit
 * handlers and destructors in the child, so the allocator must be usable
 * there; the handler waits for it. The main thread churns blocks through
 * every allocation function (fork_signal.h) meanwhile.
 *
 * glibc's own malloc does not pass this one (it deadlocks within a few
 * hundred signals): in a multi-threaded process glibc's fork() takes the
 * arena locks, one of which the interrupted malloc holds. glibc promises an
 * async-signal-safe fork only in single-threaded processes (its
 * tst-mallocfork3 uses _Fork, which runs no fork handlers, for the
 * multi-threaded case). So the plain binary is no reference here; with
 * buddymalloc preloaded or linked, glibc's arenas are idle and only
 * buddymalloc's own fork handlers decide, and they must cope with a lock
 * held by the very thread that forks.
 */
#include "fork_signal.h"

static atomic_bool stop_sending;
static pthread_t main_thread;

static void *send_signals(void *arg) {
  (void)arg;
  test_rng rng;
  test_rng_seed(&rng, hang_seed());
  do {
    pace_delay(&rng);
    if (atomic_load(&stop_sending)) break;
    int rc = pthread_kill(main_thread, SIGUSR1);
    if (rc != 0) hang_fail("pthread_kill: %s", strerror(rc));
  } while (wait_for_ack());
  return NULL;
}

int main(void) {
  install_fork_handler(true);
  main_thread = pthread_self();

  /* The sender inherits a mask with SIGUSR1 blocked; main unblocks it. */
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  hang_check_rc(pthread_sigmask(SIG_BLOCK, &usr1, NULL), "pthread_sigmask");
  pthread_t sender = hang_spawn(send_signals, NULL);
  hang_check_rc(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL), "pthread_sigmask");

  unsigned landed = churn_until_signalled();

  /* A signal still pending stays so: the sender, waiting for its
   * acknowledgement, sees the pipe closed instead. */
  hang_check_rc(pthread_sigmask(SIG_BLOCK, &usr1, NULL), "pthread_sigmask");
  atomic_store(&stop_sending, true);
  close(ack_pipe[1]);
  hang_join(sender);
  check_handler_results();
  printf("%u signals landed in allocator calls\n", landed);
  return 0;
}

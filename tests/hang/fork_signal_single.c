/* fork_signal_single.c: a single-threaded process forks from a signal handler
 * that interrupted malloc or free (the idea of glibc's tst-mallocfork2).
 *
 * A sender process, forked first, sends SIGUSR1 to this process in a loop
 * (paced: one signal in flight, see fork_signal.h). The handler forks; the
 * child leaves with _exit(0) and the handler waits for it. Meanwhile the
 * only thread churns blocks through every allocation function
 * (fork_signal.h), so most signals interrupt an allocator call. SIGUSR1 is never blocked during the churn: interrupting
 * the allocator anywhere is the point. A fork handler that takes a lock the
 * interrupted call holds hangs the process; the driver's timeout reports it.
 */
#include <sys/prctl.h>

#include "fork_signal.h"

/* The sender: signals the parent until killed (or the parent is gone). */
static _Noreturn void send_signals(pid_t parent) {
  test_rng rng;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(0);
  close(ack_pipe[1]); /* so that the parent's exit ends the wait */
  test_rng_seed(&rng, hang_seed());
  do {
    pace_delay(&rng);
    if (kill(parent, SIGUSR1) != 0) _exit(0);
  } while (wait_for_ack());
  _exit(0);
}

int main(void) {
  install_fork_handler(false);
  pid_t parent = getpid();
  pid_t sender = fork();
  if (sender < 0) hang_fail("fork of the sender: %s", strerror(errno));
  if (sender == 0) send_signals(parent);

  unsigned landed = churn_until_signalled();

  /* Tear down with the signal blocked: the churn is over. */
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  hang_check_errno(sigprocmask(SIG_BLOCK, &usr1, NULL), "sigprocmask");
  kill(sender, SIGKILL);
  while (waitpid(sender, NULL, 0) < 0 && errno == EINTR)
    ;
  check_handler_results();
  printf("%u signals landed in allocator calls\n", landed);
  return 0;
}

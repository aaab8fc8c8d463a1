/* fork_signal.h: the part fork_signal_single.c and fork_signal_threads.c
 * share: a SIGUSR1 handler that forks, and an allocation loop for it to
 * interrupt (the idea of glibc's tst-mallocfork and tst-mallocfork2).
 *
 * A fork from a signal handler that interrupted malloc or free runs the
 * allocator's pthread_atfork handlers while the interrupted call is halfway
 * through: a prepare handler that takes a lock the interrupted call holds
 * deadlocks the process against itself, and a child that inherits a
 * half-updated heap may crash or hang when it allocates.
 *
 * The loop keeps SLOTS live blocks; each step replaces a random one with a
 * block of a random size from MIN_SIZE to MAX_SIZE (now and then BIG_SIZE),
 * cycling through malloc, realloc, memalign, posix_memalign and calloc so
 * that every allocation path gets interrupted. It stops once TARGET_SIGNALS signals
 * arrived during a malloc/free call, or after MAX_RUN_MS.
 *
 * The sender keeps one signal in flight: it blocks until the handler has
 * acknowledged the previous one (a byte through a pipe), waits a random
 * moment of up to MAX_PACE_DELAY_US, then sends the next. A sender that never waits keeps
 * the process in its handler (the next signal is pending as soon as the
 * handler returns) and the loop hardly runs; the random delay makes the
 * signals land anywhere in it.
 */
#ifndef FORK_SIGNAL_H
#define FORK_SIGNAL_H

#include <sys/wait.h>

#include "hang_common.h"

#define SLOTS 1009
#define MIN_SIZE 16 /* smaller blocks need not be aligned to max_align_t */
#define MAX_SIZE 70000
#define BIG_SIZE (5 * MIB)
#define BIG_ONE_IN 97 /* steps per 5 MiB block, on average */
#define ALIGNMENT 64
#define TARGET_SIGNALS 150
#define MAX_RUN_MS 500
#define TAG_BYTE 0xA5 /* first byte of every block, checked before free */
#define MAX_PACE_DELAY_US 50
#define NS_PER_US 1000

/* The handler writes a byte here for each signal it handled; the sender
 * (a process in fork_signal_single.c, a thread in fork_signal_threads.c)
 * reads one before it sends the next signal. */
static int ack_pipe[2];

/* Set by the handler; cleared by the loop before each allocator call. */
static volatile sig_atomic_t signal_landed;
/* Set by the handler when something went wrong (it may not print). */
static volatile sig_atomic_t handler_fork_errno;
static volatile sig_atomic_t handler_child_status_bad;
static volatile sig_atomic_t handler_child_status;
/* How the forked child leaves: _exit(0) or exit(0) (which also runs the
 * atexit handlers and flushes stdio in the child). */
static bool child_calls_exit;

static void fork_in_handler(int sig) {
  (void)sig;
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) {
    if (child_calls_exit) exit(0);
    _exit(0);
  }
  if (pid < 0) {
    handler_fork_errno = errno;
  } else {
    int status;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        status = -1;
        break;
      }
    }
    if (status != 0) {
      handler_child_status_bad = 1;
      handler_child_status = status;
    }
  }
  signal_landed = 1;
  ssize_t written = write(ack_pipe[1], "", 1);
  (void)written; /* a sender that is gone needs no acknowledgement */
  errno = saved;
}

/* Opens the acknowledgement pipe and installs the handler; before the
 * sender starts. */
static void install_fork_handler(bool use_exit) {
  hang_check_errno(pipe(ack_pipe), "pipe");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fork_in_handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  child_calls_exit = use_exit;
  hang_check_errno(sigaction(SIGUSR1, &sa, NULL), "sigaction");
}

/* For the sender, between two signals: waits a random moment (busy, it is
 * short). */
static void pace_delay(test_rng *rng) {
  uint64_t until = test_now_ns() + test_rng_below(rng, MAX_PACE_DELAY_US + 1) * NS_PER_US;
  while (test_now_ns() < until)
    ;
}

/* For the sender, after a signal: blocks until the handler acknowledged it.
 * False once every write end of the pipe is closed. */
static bool wait_for_ack(void) {
  char c;
  ssize_t n;
  while ((n = read(ack_pipe[0], &c, 1)) < 0 && errno == EINTR)
    ;
  return n == 1;
}

/* Reports what the handler could not. */
static void check_handler_results(void) {
  if (handler_fork_errno != 0) hang_fail("fork in the signal handler failed: %s", strerror(handler_fork_errno));
  if (handler_child_status_bad)
    hang_fail("child forked in the signal handler ended with status 0x%x, expected exit(0)",
              (unsigned)handler_child_status);
}

static void check_block(const unsigned char *p, size_t size, size_t align, const char *how) {
  if (p == NULL) hang_fail("%s(%zu) returned NULL", how, size);
  if ((uintptr_t)p % align != 0)
    hang_fail("%s(%zu) returned %p, not aligned to %zu", how, size, (const void *)p, align);
}

enum { USE_MALLOC, USE_REALLOC, USE_MEMALIGN, USE_POSIX_MEMALIGN, USE_CALLOC, USE_COUNT };

/* One step: slot *s gets a new block by method `how`. Returns true if a
 * signal arrived during the allocator calls. */
static bool replace_block(unsigned char **s, size_t size, unsigned how) {
  unsigned char *old = *s, *p = NULL;
  if (old != NULL && old[0] != TAG_BYTE) hang_fail("block %p lost its first byte", (void *)old);
  signal_landed = 0;
  switch (how) {
  case USE_REALLOC:
    p = realloc(old, size); /* frees old, or is malloc if old is NULL */
    check_block(p, size, _Alignof(max_align_t), "realloc");
    break;
  case USE_MEMALIGN:
    free(old);
    p = memalign(ALIGNMENT, size);
    check_block(p, size, ALIGNMENT, "memalign");
    break;
  case USE_POSIX_MEMALIGN: {
    free(old);
    void *q = NULL;
    int rc = posix_memalign(&q, ALIGNMENT, size);
    if (rc != 0) hang_fail("posix_memalign(%d, %zu): %s", ALIGNMENT, size, strerror(rc));
    p = q;
    check_block(p, size, ALIGNMENT, "posix_memalign");
    break;
  }
  case USE_CALLOC:
    free(old);
    p = calloc(1, size);
    check_block(p, size, _Alignof(max_align_t), "calloc");
    if (p[0] != 0 || p[size - 1] != 0) hang_fail("calloc(1, %zu) returned a block that is not zeroed", size);
    break;
  default:
    free(old);
    p = malloc(size);
    check_block(p, size, _Alignof(max_align_t), "malloc");
    break;
  }
  bool landed = signal_landed != 0;
  p[0] = TAG_BYTE;
  p[size - 1] = TAG_BYTE;
  *s = p;
  return landed;
}

/* Runs the loop until enough signals landed inside allocator calls or time
 * is up; frees everything. Returns how many signals landed inside calls. */
static unsigned churn_until_signalled(void) {
  static unsigned char *slots[SLOTS];
  test_rng rng;
  unsigned landed = 0;
  uint64_t deadline = test_now_ns() + MAX_RUN_MS * NS_PER_MS;
  test_rng_seed(&rng, hang_seed());
  for (unsigned step = 0; landed < TARGET_SIGNALS; step++) {
    if (step % USE_COUNT == 0 && test_now_ns() > deadline) break;
    size_t size = test_rng_below(&rng, BIG_ONE_IN) == 0 ? BIG_SIZE : test_rng_range(&rng, MIN_SIZE, MAX_SIZE);
    if (replace_block(&slots[test_rng_below(&rng, SLOTS)], size, step % USE_COUNT)) landed++;
  }
  for (unsigned i = 0; i < SLOTS; i++) {
    free(slots[i]);
    slots[i] = NULL;
  }
  return landed;
}

#endif /* FORK_SIGNAL_H */

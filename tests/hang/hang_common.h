/* hang_common.h: helpers shared by the hang scenarios (tests/hang/).
 *
 * Each scenario is a small program that hangs, crashes or reports a failure
 * when the allocator mishandles fork, signals, thread cancellation or address
 * space limits; tests/hang/run_scenario.sh runs it many times, each run under
 * a timeout, because these bugs show up only in some runs.
 *
 * Like the stress programs (tests/stress/stress_common.h), every scenario is
 * built twice from one source written against the standard malloc names:
 *  - preloaded: built plainly and run with LD_PRELOAD=libbuddymalloc.so;
 *  - linked: built with -DSTRESS_LINKED, which maps the names the scenarios
 *    call onto the prefixed buddy_* API (libbuddy/include/buddymalloc.h) and
 *    links the static core. In that form the C library keeps its own malloc
 *    for its internal needs (stdio buffers, getline, ...): memory the C
 *    library hands out must go back with the C library's free, which a
 *    scenario reaches as `libc_free(p)`.
 * The same plain binary run without LD_PRELOAD uses glibc's malloc: the
 * reference every scenario must pass.
 *
 * Besides the mapping (tests/support/linked_names.h): a failure reporter
 * (one line on stderr, exit 1), a per-run seed for the shared generator and
 * checked thread helpers. Sizes, the generator, the clock and the fill/check
 * patterns are tests/support/test_support.h's.
 */
#ifndef HANG_COMMON_H
#define HANG_COMMON_H

/* Every system header a scenario uses comes before the name mapping below:
 * a function-like macro named malloc_stats would break <malloc.h>'s own
 * declaration of it. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

/* Exit status of a scenario that found a failure (0 is success). */
#define HANG_EXIT_FAILURE 1

/* The C library's own free, never remapped: `(free)` is not followed by an
 * argument list, so the function-like macro below does not apply to it. */
#define libc_free(p) (free)(p)

#include "linked_names.h"

#ifdef STRESS_LINKED
/* buddymalloc has no prefixed malloc_stats or malloc_info: the preload shim
 * implements them on internal functions. The linked form uses the public
 * buddy_stats_json() instead (same statistics gathered under the same zone
 * and registry locks) and writes the text out itself. What this cannot
 * reach is the shim's write to stderr inside the allocator: only the
 * preloaded form covers that. */
#define malloc_stats() hang_linked_malloc_stats()
#define malloc_info(options, out) hang_linked_malloc_info((options), (out))

static inline void hang_linked_malloc_stats(void) {
  char *text = buddy_stats_json();
  if (text != NULL) {
    fputs(text, stderr);
    buddy_free(text);
  }
}

static inline int hang_linked_malloc_info(int options, FILE *out) {
  if (options != 0 || out == NULL) return -1;
  char *text = buddy_stats_json();
  if (text == NULL) return -1;
  fputs(text, out);
  buddy_free(text);
  return 0;
}
#endif

/* The form a run is in, for messages: linked, preloaded, or plain (glibc's
 * malloc: the plain binary run without LD_PRELOAD). */
static inline const char *hang_form(void) {
#ifdef STRESS_LINKED
  return "linked";
#else
  const char *preload = getenv("LD_PRELOAD");
  return preload != NULL && preload[0] != '\0' ? "preloaded" : "plain";
#endif
}

/* ---- failures -------------------------------------------------------------- */

/* Where failure messages go: stderr, unless a scenario redirected stderr and
 * kept a duplicate of the original here. */
static int hang_report_fd = STDERR_FILENO;

/* Writes one line "PROGRAM (FORM[, child]): message". Uses only dprintf,
 * so a scenario that must not touch stdio locks may call it. */
static inline void hang_report(bool child, const char *fmt, va_list ap) {
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  dprintf(hang_report_fd, "%s (%s%s): %s\n", program_invocation_short_name, hang_form(), child ? ", child" : "", msg);
}

/* Reports and exits with a failure. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void hang_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hang_report(false, fmt, ap);
  va_end(ap);
  exit(HANG_EXIT_FAILURE);
}

/* Same from a forked child: _exit, so the parent's stdio buffers and atexit
 * handlers are not run twice. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void hang_child_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hang_report(true, fmt, ap);
  va_end(ap);
  _exit(HANG_EXIT_FAILURE);
}

/* For a call returning an error number (pthread_*) or -1 with errno. */
static inline void hang_check_rc(int rc, const char *what) {
  if (rc != 0) hang_fail("%s: %s", what, strerror(rc));
}

static inline void hang_check_errno(int rc, const char *what) {
  if (rc != 0) hang_fail("%s: %s", what, strerror(errno));
}

/* ---- random seeds ------------------------------------------------------------ */

/* A seed that differs between runs (the driver repeats each scenario). */
static inline uint64_t hang_seed(void) {
  return test_now_ns() ^ ((uint64_t)getpid() << 32);
}

/* ---- threads ------------------------------------------------------------- */

static inline pthread_t hang_spawn(void *(*fn)(void *), void *arg) {
  pthread_t t;
  hang_check_rc(pthread_create(&t, NULL, fn, arg), "pthread_create");
  return t;
}

static inline void *hang_join(pthread_t t) {
  void *ret = NULL;
  hang_check_rc(pthread_join(t, &ret), "pthread_join");
  return ret;
}

/* pthread_barrier_wait's two success results folded into one. */
static inline void hang_barrier_wait(pthread_barrier_t *b) {
  int rc = pthread_barrier_wait(b);
  if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) hang_fail("pthread_barrier_wait: %s", strerror(rc));
}

#endif /* HANG_COMMON_H */

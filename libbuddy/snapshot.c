/* snapshot.c: the statistics whenever the process gets the signal that
 * stats_signal= names, written as the report at exit is (stats_report), and
 * a heap profile on the one prof_signal= names (prof_dump_on_signal).
 *
 * The handler runs on whichever thread the kernel picks: maybe one inside
 * malloc that holds a zone lock, or inside a report that holds the report's
 * lock. So it takes no lock and calls nothing of the allocator: it posts a
 * semaphore (sem_post is async-signal-safe) and returns. A thread of the
 * allocator's own waits on that semaphore and writes the report, taking the
 * locks as any thread does; a lock the interrupted thread holds is released
 * once the handler has returned and that thread goes on. The thread blocks
 * every signal (os_start_thread), so that none meant for the program is
 * delivered to it, and allocates nothing.
 *
 * It starts on the first slow path of the API after start-up
 * (runtime_enter), as the background purge thread does: pthread_create
 * allocates, and start-up may run inside the first malloc. A signal that
 * comes before is not lost: the semaphore keeps it.
 */
#include "report.h"

#include <errno.h>
#include <semaphore.h>

bool snapshot_thread_running;
static bool snapshot_caught; /* a handler is installed */
static sem_t snapshot_wanted;
/* What the signals since the thread last looked asked for. */
enum { SNAPSHOT_STATS = 1, SNAPSHOT_PROF = 2 };
static unsigned snapshot_what;

static void snapshot_on_signal(int sig) {
  int saved = errno;
  unsigned what = (sig == options.stats_signal ? SNAPSHOT_STATS : 0) | (sig == options.prof_signal ? SNAPSHOT_PROF : 0);
  __atomic_fetch_or(&snapshot_what, what, __ATOMIC_RELEASE);
  sem_post(&snapshot_wanted);
  errno = saved;
}

startup_code void snapshot_init(void) {
  if (options.prof_signal != 0 && !options_sampling()) options.prof_signal = 0; /* nothing to write */
  if (options.stats_signal == 0 && options.prof_signal == 0) return;
  sem_init(&snapshot_wanted, 0, 0);
  if (options.stats_signal != 0) {
    snapshot_caught = os_catch_signal((int)options.stats_signal, snapshot_on_signal);
    if (!snapshot_caught)
      base_warning("BUDDY_OPTIONS: stats_signal: that signal cannot be caught, so no snapshots", (const char *)NULL);
  }
  if (options.prof_signal != 0 && options.prof_signal != options.stats_signal) {
    bool caught = os_catch_signal((int)options.prof_signal, snapshot_on_signal);
    if (!caught)
      base_warning("BUDDY_OPTIONS: prof_signal: that signal cannot be caught, so no heap profiles", (const char *)NULL);
    snapshot_caught |= caught;
  }
}

static void *snapshot_thread_main(void *arg) {
  (void)arg;
  for (;;) {
    if (sem_wait(&snapshot_wanted) != 0) continue; /* interrupted */
    /* Signals that arrived together make one report. */
    while (sem_trywait(&snapshot_wanted) == 0) {
    }
    unsigned what = __atomic_exchange_n(&snapshot_what, 0, __ATOMIC_ACQUIRE);
    if (what & SNAPSHOT_STATS) stats_report(STATS_ON_SIGNAL);
    if (what & SNAPSHOT_PROF) prof_dump_on_signal();
  }
  return NULL;
}

/* Once per process (and once per fork child): a thread that could not be
 * started is not tried again on every slow path. */
void snapshot_start_thread(void) {
  if (__atomic_exchange_n(&snapshot_thread_running, true, __ATOMIC_ACQ_REL) || !snapshot_caught) return;
  if (!os_start_thread(snapshot_thread_main))
    base_warning("cannot start the thread that writes the stats_signal snapshots", (const char *)NULL);
}

/* The thread is not in the child; its next slow path starts one. Signals
 * the parent had not reported yet are the parent's. */
startup_code void snapshot_fork_child(void) {
  if (!snapshot_caught) return;
  sem_init(&snapshot_wanted, 0, 0);
  snapshot_thread_running = false;
}

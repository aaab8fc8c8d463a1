/* snapshot.c: the statistics whenever the process gets the signal that
 * stats_signal= names, written as the report at exit is (stats_report).
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
static bool snapshot_caught; /* the handler is installed */
static sem_t snapshot_wanted;

static void snapshot_on_signal(int sig) {
  (void)sig;
  int saved = errno;
  sem_post(&snapshot_wanted);
  errno = saved;
}

void snapshot_init(void) {
  if (options.stats_signal == 0) return;
  sem_init(&snapshot_wanted, 0, 0);
  snapshot_caught = os_catch_signal((int)options.stats_signal, snapshot_on_signal);
  if (!snapshot_caught)
    base_warning("BUDDY_OPTIONS: stats_signal: that signal cannot be caught, so no snapshots", (const char *)NULL);
}

static void *snapshot_thread_main(void *arg) {
  (void)arg;
  for (;;) {
    if (sem_wait(&snapshot_wanted) != 0) continue; /* interrupted */
    /* Signals that arrived together make one report. */
    while (sem_trywait(&snapshot_wanted) == 0) {
    }
    stats_report(STATS_ON_SIGNAL);
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
void snapshot_fork_child(void) {
  if (!snapshot_caught) return;
  sem_init(&snapshot_wanted, 0, 0);
  snapshot_thread_running = false;
}

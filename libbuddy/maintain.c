/* maintain.c: the periodic maintenance, which calls down into every layer
 * that keeps something for later.
 *
 * Once per period (the purge delay, at least MAINTAIN_PERIOD_MIN_MS), the
 * first thread to find it due, on one of its slow paths, or the background
 * thread: cached huge blocks past the delay are unmapped (so a program that
 * stopped making huge allocations does not keep them), transfer stacks no
 * refill used go back to their slabs, caches orphaned by a fork are flushed
 * and idle threads' caches reclaimed (tcache_sweep). Nothing here waits for
 * a lock another thread holds: each layer's sweep uses trylocks.
 *
 * A program that goes idle takes no slow path, so background_purge=1 starts
 * a thread that wakes every half delay, purges what is due in each zone (the
 * zones purge on their own slow paths otherwise: zone.c) and runs the
 * periodic work above. After fork() the child starts its own on its next
 * slow path.
 */
#include "runtime.h"

/* The periodic work runs at most this often, whatever the purge delay. */
#define MAINTAIN_PERIOD_MIN_MS 100

__thread unsigned maintain_slow_paths __attribute__((tls_model("initial-exec")));
bool maintain_thread_running startup_state;
/* The background thread could not be started (out of threads or of address
 * space for its stack): maintain_thread_running stays set until the next
 * period, so that the slow paths in between do not each try again. */
static bool maintain_thread_failed startup_state;
uint64_t maintain_thread_failures startup_state;
/* When the next period is due: MAINTAIN_CLOCK_UNSTARTED until the first
 * tick, which starts the clock (the first period is due
 * MAINTAIN_PERIOD_MIN_MS after it, whatever the purge delay is set to
 * later: nothing the periodic work does can be due sooner); at once in a
 * fork child. Start-up does not read the clock: a process that ends before
 * its first tick (most short ones) never runs this code, nor maps the pages
 * of libc's clock_gettime (a 64 KiB window of libc's code: preload/meson.build
 * says why a window counts). */
uint64_t maintain_next_ns startup_state = MAINTAIN_CLOCK_UNSTARTED;

static uint64_t maintain_period_ns(void) {
  long period_ms = options.purge_delay_ms > MAINTAIN_PERIOD_MIN_MS ? options.purge_delay_ms : MAINTAIN_PERIOD_MIN_MS;
  return (uint64_t)period_ms * 1000000u;
}

void maintain_tick(void) {
  uint64_t now = os_now_ns(), due = __atomic_load_n(&maintain_next_ns, __ATOMIC_RELAXED);
  if (due == MAINTAIN_CLOCK_UNSTARTED) {
    uint64_t first = now + (uint64_t)MAINTAIN_PERIOD_MIN_MS * 1000000u;
    __atomic_compare_exchange_n(&maintain_next_ns, &due, first, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return;
  }
  if (now < due) return;
  if (!__atomic_compare_exchange_n(&maintain_next_ns, &due, now + maintain_period_ns(), false, __ATOMIC_RELAXED,
                                   __ATOMIC_RELAXED))
    return;
  if (__atomic_exchange_n(&maintain_thread_failed, false, __ATOMIC_ACQ_REL))
    __atomic_store_n(&maintain_thread_running, false, __ATOMIC_RELEASE); /* the next slow path tries again */
  huge_expire();
  zone_transfer_expire();
  tcache_sweep();
}

static void *maintain_thread_main(void *arg) {
  (void)arg;
  long half = options.purge_delay_ms / 2 > 0 ? options.purge_delay_ms / 2 : 1;
  for (;;) {
    os_sleep_ms(half);
    zone_purge_due();
    huge_expire(); /* cached huge blocks past the delay, every half delay */
    maintain_tick();
  }
  return NULL;
}

/* Called with no lock held (pthread_create allocates). The thread blocks
 * every signal (os_start_thread): a signal the program sends to the process
 * goes to one of the program's own threads, never to ours. A start that
 * fails is tried again once per period (maintain_tick). */
void maintain_start_thread(void) {
  if (!options.background_purge || __atomic_exchange_n(&maintain_thread_running, true, __ATOMIC_ACQ_REL)) return;
  if (!os_start_thread(maintain_thread_main)) {
    __atomic_add_fetch(&maintain_thread_failures, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&maintain_thread_failed, true, __ATOMIC_RELEASE);
  }
}

/* In the child of fork() the thread does not exist, and the first period
 * is due at once. */
void maintain_fork_child(void) {
  maintain_thread_running = maintain_thread_failed = false;
  maintain_next_ns = 0;
}

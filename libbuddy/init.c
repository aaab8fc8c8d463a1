/* init.c: global start-up, once per process, and the entry the API's slow
 * paths take into the runtime.
 *
 * Start-up runs at load time (a constructor) or at the first allocation,
 * whichever comes first (another library's constructor may allocate before
 * ours runs). It reads the options, readies each layer that needs it (the
 * signal for snapshots is caught here), and takes no lock that an
 * allocation could need:
 * pthread_atfork, which may call malloc, runs after the state is published.
 */
#include "runtime.h"

bool runtime_ready;
static pthread_mutex_t runtime_init_lock = PTHREAD_MUTEX_INITIALIZER;

void runtime_init(void) {
  if (__atomic_load_n(&runtime_ready, __ATOMIC_ACQUIRE)) return;
  bool first = false;
  pthread_mutex_lock(&runtime_init_lock);
  if (!runtime_ready) {
    if (os_page_size() != PAGE_SIZE) error_fatal("unsupported system page size", NULL);
    options_init();
    prof_init();
    stats_init();
    snapshot_init();
    tcache_init();
    /* Secure mode: its secret, and a fault in a huge block's guard page is
     * reported. */
    if (options.secure) secure_init();
    if (options.secure && !os_catch_faults(huge_fault))
      base_warning("secure=1: cannot catch SIGSEGV", (const char *)NULL);
    __atomic_store_n(&runtime_ready, true, __ATOMIC_RELEASE);
    first = true;
  }
  pthread_mutex_unlock(&runtime_init_lock);
  if (first) {
    fork_install_handlers();
    prof_start(); /* takes the loader's lock: not under ours */
  }
}

/* At load time, so that buddymalloc's fork handlers come before any the
 * program registers (child handlers run in registration order, and one that
 * allocates must find the zone locks released). */
__attribute__((constructor(101))) static void runtime_at_load(void) {
  runtime_init();
}

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

bool runtime_ready startup_state;
static pthread_mutex_t runtime_init_lock startup_state = PTHREAD_MUTEX_INITIALIZER;

/* Secure mode's SIGSEGV handler: a fault in a huge block's guard page or in
 * a sealed block (huge.c, secure.c) is reported; anything else goes on to
 * the action the signal had (os_catch_faults). */
static void runtime_fault(void *addr) {
  huge_fault(addr);
  secure_fault(addr);
}

startup_code void runtime_init(void) {
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
    /* Secure mode: its secret, and faults in guard pages and sealed blocks
     * are reported. */
    if (options.secure) secure_init();
    if (options.secure && !os_catch_faults(runtime_fault))
      base_warning("secure=1: cannot catch SIGSEGV", (const char *)NULL);
    __atomic_store_n(&runtime_ready, true, __ATOMIC_RELEASE);
    first = true;
  }
  pthread_mutex_unlock(&runtime_init_lock);
  if (first) {
    fork_install_handlers();
    prof_start(); /* takes the loader's lock: not under ours */
    if (options.secure && secure_find_replaced_operators != NULL) secure_find_replaced_operators(); /* the same */
  }
}

/* The dynamic linker calls this at unload (exit) in place of the C runtime's
 * _fini (-Wl,-fini: preload/meson.build), which does nothing but lies at the
 * end of the library's code, in a 64 KiB window of it that every process
 * would touch at exit for nothing. */
startup_code void runtime_at_unload(void) {}

/* At load time, so that buddymalloc's fork handlers come before any the
 * program registers (child handlers run in registration order, and one that
 * allocates must find the zone locks released). */
__attribute__((constructor(101))) startup_code static void runtime_at_load(void) {
  runtime_init();
}

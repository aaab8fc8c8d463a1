/* fork.c: fork() in every form glibc supports, over every layer.
 *
 * pthread_atfork handlers, registered at start-up (runtime_init, at
 * load time), so that the prepare handler runs after every handler the
 * program registers (those may allocate) and the child handler before them.
 *
 * The usual case, a process with threads: the prepare handler takes every
 * lock of the allocator in lock order (lock.h), so that no other thread is
 * inside a locked section when the process is copied; the parent releases
 * them, the child (one thread: the forking one) re-makes them and orphans
 * the caches of threads it does not have (tcache.c). Before them it takes
 * stdio's list lock, as glibc's malloc does: glibc's fork takes that lock
 * after the prepare handlers, and a thread in fflush(NULL) holds it while it
 * waits for a stream whose owner, inside getline, waits for a zone lock.
 * Taken first, it makes that cycle impossible.
 *
 * Two cases take nothing, so that fork stays async-signal-safe where glibc's
 * is:
 *  - a single-threaded process (glibc's __libc_single_threaded): no other
 *    thread can hold a lock, and the forking thread may be a signal handler
 *    that interrupted malloc inside a locked section;
 *  - a thread whose own frame may hold an allocator lock (lock_depth > 0):
 *    a signal handler that interrupted a locked section, or fork itself.
 *    Its child must keep to async-signal-safe calls, as POSIX asks of the
 *    child of a multi-threaded process forked from a signal handler.
 * In both, a lock the interrupted frame holds stays held in the child too,
 * which is consistent: if the handler returns there, the frame finishes its
 * section and releases it.
 *
 * A signal handler may fork while fork's own handlers run: the nesting level
 * indexes a per-thread record of what each level's prepare handler took.
 */
#include "runtime.h"

/* Deeper forks (handlers forking inside handlers) take nothing. */
#define FORK_NESTING_MAX 64
static __thread unsigned fork_level __attribute__((tls_model("initial-exec")));
static __thread uint64_t fork_took __attribute__((tls_model("initial-exec"))); /* bit L: level L took the locks */

static void fork_prepare(void) {
  unsigned level = fork_level++; /* first: a nested fork uses the next level */
  bool take = level < FORK_NESTING_MAX && lock_depth == 0 && !os_single_threaded();
  if (take) {
    prof_dump_fork_prepare();
    os_stdio_lock();
    tcache_fork_prepare();
    zone_fork_prepare();
    huge_fork_prepare();
    secure_fork_prepare();
    prof_fork_prepare();
  }
  if (level < FORK_NESTING_MAX) {
    uint64_t bit = (uint64_t)1 << level;
    fork_took = take ? fork_took | bit : fork_took & ~bit;
  }
}

/* Pops the level the prepare handler pushed; whether it took the locks. */
static bool fork_pop_level(void) {
  unsigned level = fork_level - 1;
  bool took = level < FORK_NESTING_MAX && (fork_took >> level & 1);
  fork_level = level;
  return took;
}

static void fork_parent(void) {
  if (!fork_pop_level()) return;
  prof_fork_parent();
  secure_fork_parent();
  huge_fork_parent();
  zone_fork_parent();
  tcache_fork_parent();
  os_stdio_unlock();
  prof_dump_fork_parent();
}

static void fork_child(void) {
  if (fork_pop_level()) {
    os_stdio_reset();
    prof_dump_fork_child();
    prof_fork_child();
    secure_fork_child();
    huge_fork_child();
    zone_fork_child();
    tcache_fork_child_locked();
    stats_fork_child();
  }
  tcache_fork_child();
  maintain_fork_child(); /* the background thread, if any, is not here */
  snapshot_fork_child(); /* nor the snapshot thread */
  heap_bytes_fork_child();
}

startup_code void fork_install_handlers(void) {
  os_at_fork(fork_prepare, fork_parent, fork_child);
}

/* lock.h: how every lock of the allocator is taken and released.
 *
 * The registry, zone, page-map and huge-cache locks go through these
 * wrappers, which keep lock_depth: how many of them the calling thread holds
 * or is waiting for. It is raised before the thread waits and lowered after
 * it unlocks, so that at any instant a signal handler on this thread sees a
 * depth above 0 if its interrupted frame may hold one. fork's prepare handler
 * (fork.c) reads it: a fork from a signal handler that interrupted a locked
 * section must not wait for a lock its own frame holds.
 *
 * Lock order (the only nesting there is): tcache_registry_lock, then zones
 * by ascending index, then pagemap_lock; the huge cache's lock is a leaf.
 * fork.c takes them all in that order, after stdio's list lock.
 */
#ifndef BUDDY_LOCK_H
#define BUDDY_LOCK_H

#include <pthread.h>
#include <stdbool.h>

extern __thread unsigned lock_depth __attribute__((tls_model("initial-exec")));

static inline void lock_take(pthread_mutex_t *m) {
  lock_depth++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  pthread_mutex_lock(m);
}

/* False, with nothing held, if another thread has it. */
static inline bool lock_try(pthread_mutex_t *m) {
  lock_depth++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  if (pthread_mutex_trylock(m) == 0) return true;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  lock_depth--;
  return false;
}

static inline void lock_release(pthread_mutex_t *m) {
  pthread_mutex_unlock(m);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  lock_depth--;
}

/* In a fork child, for a lock its only thread took in the prepare handler:
 * re-made unlocked, and no longer counted. */
static inline void lock_reset(pthread_mutex_t *m, const pthread_mutexattr_t *attr) {
  pthread_mutex_init(m, attr);
  lock_depth--;
}

#endif /* BUDDY_LOCK_H */

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
 * by ascending index, then pagemap_lock; the huge cache's lock, the secure
 * mode's quarantine lock (secure.c) and the heap profile's samples' lock
 * (prof.c) are leaves. fork.c takes them all in that order, after stdio's
 * list lock, the samples' lock last; before all of them, the heap profile
 * writer's lock (prof_dump.c), under which nothing else is taken.
 */
#ifndef BUDDY_LOCK_H
#define BUDDY_LOCK_H

#include <pthread.h>
#include <stdbool.h>

#include "types.h"

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

/* The zone locks are lock words (types.h), not pthread mutexes: a thread
 * takes its zone's on every refill and every flush, and a free lock word is
 * taken with one compare-and-swap and given back with one exchange, far
 * fewer instructions than glibc's mutex calls (docs/benchmarks.md). A thread that
 * finds the word held spins a while (a zone's sections are short: glibc's
 * adaptive mutex spins for the same reason), then marks it 2 and sleeps on
 * it; the release wakes one sleeper when it finds 2 (Drepper, "Futexes Are
 * Tricky", mutex 3). The depth is kept as for the mutexes above. */
/* A lock word that is free. */
#define LOCK_WORD_INITIALISER                                                                                          \
  { 0 }
void lock_word_wait(lock_word_t *l); /* base.c: held by another thread */
void lock_word_wake(lock_word_t *l);

static inline void lock_word_take(lock_word_t *l) {
  lock_depth++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  uint32_t free_state = 0;
  if (!__atomic_compare_exchange_n(&l->state, &free_state, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
    lock_word_wait(l);
}

/* False, with nothing held, if another thread has it. */
static inline bool lock_word_try(lock_word_t *l) {
  lock_depth++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  uint32_t free_state = 0;
  if (__atomic_compare_exchange_n(&l->state, &free_state, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return true;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  lock_depth--;
  return false;
}

static inline void lock_word_release(lock_word_t *l) {
  if (__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) == 2) lock_word_wake(l);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  lock_depth--;
}

/* In a fork child, for a lock its only thread took in the prepare handler:
 * free again (no thread of the child sleeps on it), and no longer counted. */
static inline void lock_word_reset(lock_word_t *l) {
  __atomic_store_n(&l->state, 0, __ATOMIC_RELAXED);
  lock_depth--;
}

#endif /* BUDDY_LOCK_H */

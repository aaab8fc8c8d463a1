/* base.c: the base layer's own state: each thread's lock depth (lock.h)
 * and the free key (base.h), which start-up sets (init.c); and the lock
 * words' waits (lock.h).
 */
#include "base.h"

__thread unsigned lock_depth __attribute__((tls_model("initial-exec")));

/* How many times a thread looks at a held lock word before it sleeps: about
 * what glibc's adaptive mutex spins at most. */
#define LOCK_WORD_SPINS 100

static inline void lock_word_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

void lock_word_wait(lock_word_t *l) {
  for (unsigned i = 0; i < LOCK_WORD_SPINS; i++) {
    lock_word_relax();
    uint32_t free_state = 0;
    if (__atomic_load_n(&l->state, __ATOMIC_RELAXED) == 0 &&
        __atomic_compare_exchange_n(&l->state, &free_state, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
      return;
  }
  /* Marked 2 before sleeping, so that the holder's release wakes a sleeper;
   * a thread that takes it this way leaves it 2 (there may be others). */
  while (__atomic_exchange_n(&l->state, 2, __ATOMIC_ACQUIRE) != 0) os_futex_wait(&l->state, 2);
}

void lock_word_wake(lock_word_t *l) {
  os_futex_wake(&l->state);
}

uintptr_t free_key;

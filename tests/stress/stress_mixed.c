/* stress_mixed.c: 8+ threads hammering malloc/calloc/posix_memalign/realloc/
 * free with sizes from 16 B to 256 KiB and the odd multi-MiB block. Every
 * block carries a cookie derived from its address, owner thread and sequence
 * number, checked before every realloc and free. Threads also swap blocks
 * through a small shared table, so many blocks are freed by a thread other
 * than the one that allocated them. The workload runs in rounds with fresh
 * threads, so thread caches are also created and torn down while blocks
 * they handed out are still alive in the shared table.
 */
#include "stress_common.h"

#define MIXED_THREADS 8
#define MIXED_SLOTS 256        /* live blocks per thread */
#define MIXED_OPS 20000        /* operations per thread per round (nominal) */
#define MIXED_ROUNDS 2         /* rounds of fresh threads */
#define MIXED_SHARED_SLOTS 64  /* blocks parked for other threads */
#define MIXED_SHARE_ONE_IN 16  /* one op in this many swaps with the table */
#define MIXED_REALLOC_ONE_IN 6 /* one op in this many on a live slot reallocs */

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static stress_block shared_table[MIXED_SHARED_SLOTS];

typedef struct {
  unsigned tid;
  unsigned round;
  unsigned long ops;
  size_t churned; /* bytes allocated by this thread in the round */
} mixed_arg;

static void *mixed_worker(void *argp) {
  mixed_arg *arg = argp;
  stress_block *slots = calloc(MIXED_SLOTS, sizeof *slots);
  test_rng rng;
  uint64_t seq = 0;
  if (slots == NULL) {
    stress_fail("thread %u: calloc of slot table failed", arg->tid);
    return NULL;
  }
  test_rng_seed(&rng, ((uint64_t)arg->round << 32) | (arg->tid + 1u));
  for (unsigned long op = 0; op < arg->ops; op++) {
    stress_block *s = &slots[test_rng_below(&rng, MIXED_SLOTS)];
    if (test_rng_below(&rng, MIXED_SHARE_ONE_IN) == 0) {
      /* Swap this slot with a shared one: whatever comes back was
       * probably made by another thread and will be freed here. */
      stress_swap_shared(&shared_lock, &shared_table[test_rng_below(&rng, MIXED_SHARED_SLOTS)], s);
      continue;
    }
    if (s->p != NULL) {
      if (test_rng_below(&rng, MIXED_REALLOC_ONE_IN) == 0) {
        size_t n = stress_pick_size(&rng);
        if (stress_resize(s, n, arg->tid, ++seq, "mixed realloc")) arg->churned += n;
      } else {
        stress_release(s, "mixed free");
      }
    } else {
      size_t n = stress_pick_size(&rng);
      if (stress_alloc(s, &rng, n, arg->tid, ++seq)) arg->churned += n;
    }
  }
  for (unsigned i = 0; i < MIXED_SLOTS; i++)
    if (slots[i].p != NULL) stress_release(&slots[i], "mixed final free");
  free(slots);
  return NULL;
}

static void run_round(unsigned round, unsigned long ops) {
  pthread_t th[MIXED_THREADS];
  mixed_arg args[MIXED_THREADS];
  size_t churned = 0;
  unsigned long before = atomic_load(&stress_failures);
  for (unsigned t = 0; t < MIXED_THREADS; t++) {
    args[t] = (mixed_arg){.tid = t + 1, .round = round, .ops = ops, .churned = 0};
    stress_spawn(&th[t], mixed_worker, &args[t]);
  }
  for (unsigned t = 0; t < MIXED_THREADS; t++) {
    stress_join(th[t]);
    churned += args[t].churned;
  }
  char msg[160];
  snprintf(msg, sizeof msg, "round %u: %d threads x %lu ops (%zu MiB allocated), every block intact", round,
           MIXED_THREADS, ops, churned / MIB);
  stress_check(atomic_load(&stress_failures) == before, msg);
}

int main(void) {
  unsigned long ops = stress_work(MIXED_OPS);
  unsigned rounds = MIXED_ROUNDS;
  if (stress_scale() > STRESS_SANITIZER_DIVISOR)
    rounds *= STRESS_SOAK_FACTOR; /* soak: many more rounds of fresh threads */
  /* The shared table keeps blocks of finished threads alive across rounds;
   * it is emptied only at the very end. */
  for (unsigned r = 1; r <= rounds; r++) run_round(r, ops);
  unsigned long before = atomic_load(&stress_failures);
  for (unsigned k = 0; k < MIXED_SHARED_SLOTS; k++)
    if (shared_table[k].p != NULL) stress_release(&shared_table[k], "mixed shared drain");
  stress_check(atomic_load(&stress_failures) == before, "blocks left by exited threads intact");
  return stress_finish("stress_mixed");
}

/* stress_prodcons.c: blocks allocated by one thread and freed by another.
 *
 * Part 1: producer/consumer pairs. Each producer allocates blocks (sizes
 * 16 B .. 256 KiB, rarely multi-MiB), fills them with an address/thread/seq
 * cookie and pushes them through a bounded ring; its consumer checks every
 * block and frees it. Every block is therefore freed by a thread that did
 * not allocate it.
 * Part 2: the asymmetric form, 2 producers feeding 1 consumer, so frees pile
 * up against the producers' heaps faster than they are drained.
 *
 * Both parts run many rounds with fresh threads; RSS after the last round
 * must stay within a fixed bound of RSS after the first round, while the
 * total allocated is many times that bound: an allocator that never reuses
 * remotely freed memory, or leaks it, fails this.
 */
#include "stress_common.h"

#define PC_PAIRS 4               /* producer/consumer pairs in part 1 */
#define PC_ASYM_PRODUCERS 2      /* producers sharing one consumer in part 2 */
#define PC_RING_CAP 128          /* blocks in flight per ring */
#define PC_BLOCKS 3000           /* blocks per producer per round */
#define PC_ROUNDS 6              /* round 1 warms up, the rest are measured */
#define PC_MAX_SMALL (256 * KIB) /* sizes below this, except the huge picks */

/* A bounded ring guarded by a mutex and two condition variables. */
typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t not_full;
  pthread_cond_t not_empty;
  stress_block slot[PC_RING_CAP];
  unsigned head, count;
} pc_ring;

static void ring_init(pc_ring *r) {
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->not_full, NULL);
  pthread_cond_init(&r->not_empty, NULL);
  r->head = 0;
  r->count = 0;
}

static void ring_destroy(pc_ring *r) {
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->not_full);
  pthread_cond_destroy(&r->not_empty);
}

static void ring_push(pc_ring *r, const stress_block *b) {
  pthread_mutex_lock(&r->lock);
  while (r->count == PC_RING_CAP) pthread_cond_wait(&r->not_full, &r->lock);
  r->slot[(r->head + r->count) % PC_RING_CAP] = *b;
  r->count++;
  pthread_cond_signal(&r->not_empty);
  pthread_mutex_unlock(&r->lock);
}

static stress_block ring_pop(pc_ring *r) {
  pthread_mutex_lock(&r->lock);
  while (r->count == 0) pthread_cond_wait(&r->not_empty, &r->lock);
  stress_block b = r->slot[r->head];
  r->head = (r->head + 1) % PC_RING_CAP;
  r->count--;
  pthread_cond_signal(&r->not_full);
  pthread_mutex_unlock(&r->lock);
  return b;
}

typedef struct {
  pc_ring *ring;
  unsigned tid; /* producers: their id; consumers: unused */
  unsigned round;
  unsigned long blocks; /* producers: blocks to make; consumers: to take */
  size_t churned;       /* producers: bytes allocated */
} pc_arg;

static void *producer(void *argp) {
  pc_arg *a = argp;
  test_rng rng;
  test_rng_seed(&rng, ((uint64_t)a->round << 32) ^ (a->tid * 7919u));
  for (unsigned long i = 0; i < a->blocks; i++) {
    stress_block b;
    size_t n = stress_pick_size(&rng);
    if (!stress_alloc(&b, &rng, n, a->tid, i)) {
      /* Still hand something over so the consumer's count is exact. */
      b = (stress_block){.p = NULL, .size = 0, .tid = a->tid, .seq = i};
    } else {
      a->churned += n;
    }
    ring_push(a->ring, &b);
  }
  return NULL;
}

static void *consumer(void *argp) {
  pc_arg *a = argp;
  for (unsigned long i = 0; i < a->blocks; i++) {
    stress_block b = ring_pop(a->ring);
    if (b.p != NULL) stress_release(&b, "consumer free");
  }
  return NULL;
}

/* Runs one round of `groups` rings, each with `producers` producers and one
 * consumer; returns the bytes allocated. */
static size_t run_round(unsigned groups, unsigned producers, unsigned round, unsigned long blocks) {
  enum { MAX_GROUPS = PC_PAIRS, MAX_PRODUCERS = PC_ASYM_PRODUCERS };
  pc_ring rings[MAX_GROUPS];
  pthread_t pth[MAX_GROUPS][MAX_PRODUCERS], cth[MAX_GROUPS];
  pc_arg pargs[MAX_GROUPS][MAX_PRODUCERS], cargs[MAX_GROUPS];
  size_t churned = 0;
  for (unsigned g = 0; g < groups; g++) {
    ring_init(&rings[g]);
    cargs[g] = (pc_arg){.ring = &rings[g], .round = round, .blocks = blocks * producers};
    stress_spawn(&cth[g], consumer, &cargs[g]);
    for (unsigned p = 0; p < producers; p++) {
      pargs[g][p] = (pc_arg){.ring = &rings[g], .tid = 1 + g * MAX_PRODUCERS + p, .round = round, .blocks = blocks};
      stress_spawn(&pth[g][p], producer, &pargs[g][p]);
    }
  }
  for (unsigned g = 0; g < groups; g++) {
    for (unsigned p = 0; p < producers; p++) {
      stress_join(pth[g][p]);
      churned += pargs[g][p].churned;
    }
    stress_join(cth[g]);
    ring_destroy(&rings[g]);
  }
  return churned;
}

static void run_part(const char *name, unsigned groups, unsigned producers) {
  /* Not scaled down under sanitizers: the RSS bound needs the churn. */
  unsigned long blocks = PC_BLOCKS;
  unsigned rounds = PC_ROUNDS;
  unsigned long before = atomic_load(&stress_failures);
  char msg[160];
  if (stress_scale() > STRESS_SANITIZER_DIVISOR) rounds *= STRESS_SOAK_FACTOR;
  size_t churned = run_round(groups, producers, 1, blocks);
  size_t warm = test_rss_bytes();
  for (unsigned r = 2; r <= rounds; r++) churned += run_round(groups, producers, r, blocks);
  size_t final = test_rss_bytes();
  snprintf(msg, sizeof msg, "%s: %u rounds, %lu blocks each freed by another thread, all intact", name, rounds,
           (unsigned long)rounds * groups * producers * blocks);
  stress_check(atomic_load(&stress_failures) == before, msg);
  stress_check_rss(name, warm, final, churned);
}

int main(void) {
  run_part("pairs (1 producer : 1 consumer)", PC_PAIRS, 1);
  run_part("asymmetric (2 producers : 1 consumer)", 1, PC_ASYM_PRODUCERS);
  return stress_finish("stress_prodcons");
}

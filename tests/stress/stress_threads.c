/* stress_threads.c: thousands of short-lived threads.
 *
 * 4000 threads run in waves of 8. Each allocates a batch of blocks, checks and
 * frees most of them, parks a few in a shared table (taking out, checking and
 * freeing whatever another, probably dead, thread left there) and exits with
 * some blocks freed only just before exit, so its thread cache dies warm.
 * RSS after the last wave must stay within a fixed bound of RSS after the
 * first tenth of the waves: memory cached by exited threads must come back.
 */
#include "stress_common.h"

#define ST_THREADS 4000     /* threads in total */
#define ST_WAVE 8           /* threads alive at once */
#define ST_WARM_FRACTION 10 /* RSS baseline after 1/10 of the waves */
#define ST_BLOCKS 40        /* blocks each thread allocates */
#define ST_PARK 3           /* of which it parks this many for others */
#define ST_SHARED_SLOTS 128 /* size of the shared table */
#define ST_MAX_SIZE (128 * KIB)

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static stress_block shared_table[ST_SHARED_SLOTS];

typedef struct {
  unsigned tid;
  size_t churned;
} st_arg;

static void *short_thread(void *argp) {
  st_arg *a = argp;
  stress_block blocks[ST_BLOCKS];
  test_rng rng;
  test_rng_seed(&rng, a->tid);
  for (unsigned i = 0; i < ST_BLOCKS; i++) {
    size_t n = stress_pick_small(&rng, ST_MAX_SIZE);
    if (!stress_alloc(&blocks[i], &rng, n, a->tid, i)) blocks[i].p = NULL;
    else a->churned += n;
    /* Free every other earlier block right away, LIFO-ish. */
    if (i % 2 == 1 && blocks[i - 1].p != NULL) stress_release(&blocks[i - 1], "short thread early free");
  }
  for (unsigned i = 0; i < ST_PARK; i++) {
    stress_block *mine = &blocks[ST_BLOCKS - 1 - 2 * i];
    if (mine->p == NULL) continue;
    stress_swap_shared(&shared_lock, &shared_table[test_rng_below(&rng, ST_SHARED_SLOTS)], mine);
    if (mine->p != NULL) stress_release(mine, "block of an exited thread");
  }
  for (unsigned i = 0; i < ST_BLOCKS; i++)
    if (blocks[i].p != NULL) stress_release(&blocks[i], "short thread late free");
  return NULL;
}

static size_t run_wave(unsigned first_tid) {
  pthread_t th[ST_WAVE];
  st_arg args[ST_WAVE];
  size_t churned = 0;
  for (unsigned t = 0; t < ST_WAVE; t++) {
    args[t] = (st_arg){.tid = first_tid + t, .churned = 0};
    stress_spawn(&th[t], short_thread, &args[t]);
  }
  for (unsigned t = 0; t < ST_WAVE; t++) {
    stress_join(th[t]);
    churned += args[t].churned;
  }
  return churned;
}

int main(void) {
  /* Not scaled down under sanitizers: the RSS bound needs the churn. */
  unsigned long threads = ST_THREADS;
  if (stress_scale() > STRESS_SANITIZER_DIVISOR) threads *= STRESS_SOAK_FACTOR;
  unsigned long waves = threads / ST_WAVE;
  unsigned long warm_waves = waves / ST_WARM_FRACTION;
  size_t churned = 0, warm = 0;
  for (unsigned long w = 0; w < waves; w++) {
    churned += run_wave((unsigned)(1 + w * ST_WAVE));
    if (w + 1 == warm_waves) {
      warm = test_rss_bytes();
      churned = 0;
    }
  }
  size_t final = test_rss_bytes();
  unsigned long parked_before = atomic_load(&stress_failures);
  for (unsigned k = 0; k < ST_SHARED_SLOTS; k++)
    if (shared_table[k].p != NULL) stress_release(&shared_table[k], "shared drain");
  char msg[128];
  snprintf(msg, sizeof msg, "%lu threads in waves of %d, every block intact", threads, ST_WAVE);
  stress_check(atomic_load(&stress_failures) == 0 && parked_before == 0, msg);
  stress_check_rss("short-lived threads", warm, final, churned);
  return stress_finish("stress_threads");
}

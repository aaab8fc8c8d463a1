/* stress_fork.c: fork() while other threads allocate.
 *
 * Background threads keep allocating, checking and freeing blocks while the
 * main thread forks 50 times. Each child, which has only the forking thread,
 * allocates small blocks, a few MiB, a calloc'd block (checked zero) and a
 * realloc'd block, checks and frees a block the parent allocated before the
 * fork, and leaves with _exit(0). Any lock the allocator held at fork time
 * and did not reset would deadlock the child: an alarm() in the child turns
 * that into a SIGALRM death the parent reports, and the test timeout covers
 * the parent itself.
 */
#include <signal.h>
#include <sys/wait.h>

#include "stress_common.h"

#define FK_FORKS 50
#define FK_BACKGROUND 3           /* allocating threads while forking */
#define FK_BG_MAX_SIZE (64 * KIB) /* their blocks stay below this */
#define FK_SLOTS 128              /* live blocks per background thread */
#define FK_CHILD_ALARM_S 20       /* a child still running then is stuck */
#define FK_CHILD_SMALL 64         /* small blocks per child */
#define FK_CHILD_BIG (3 * MIB)    /* the few-MiB block */
#define FK_CHILD_CALLOC (256 * KIB)
#define FK_PARENT_BLOCK (8 * KIB) /* allocated by the parent, freed by a child */
#define FK_MIN_BG_OPS 1000        /* background ops per fork before the next */

/* Child exit codes, one per thing that can go wrong. */
enum {
  FK_OK = 0,
  FK_ENOMEM = 2,
  FK_CALLOC_DIRTY = 3,
  FK_CORRUPT = 4,
  FK_REALLOC_LOST = 5,
};

static atomic_bool stop_background;
static atomic_ulong background_ops;

static void *background(void *argp) {
  unsigned tid = (unsigned)(uintptr_t)argp;
  stress_block *slots = calloc(FK_SLOTS, sizeof *slots);
  test_rng rng;
  uint64_t seq = 0;
  if (slots == NULL) {
    stress_fail("background %u: calloc failed", tid);
    return NULL;
  }
  test_rng_seed(&rng, tid);
  while (!atomic_load(&stop_background)) {
    stress_block *s = &slots[test_rng_below(&rng, FK_SLOTS)];
    if (s->p != NULL) stress_release(s, "background free");
    else stress_alloc(s, &rng, stress_pick_small(&rng, FK_BG_MAX_SIZE), tid, ++seq);
    atomic_fetch_add(&background_ops, 1);
  }
  for (unsigned i = 0; i < FK_SLOTS; i++)
    if (slots[i].p != NULL) stress_release(&slots[i], "background final free");
  free(slots);
  return NULL;
}

/* Runs in the child: only async-signal-safe calls besides the allocator. */
static int child_work(const stress_block *parent_block) {
  void *small[FK_CHILD_SMALL];
  alarm(FK_CHILD_ALARM_S);
  if (test_check_sampled(parent_block->p, parent_block->size,
                         stress_cookie(parent_block->p, parent_block->tid, parent_block->seq)) != parent_block->size)
    return FK_CORRUPT;
  free(parent_block->p);
  for (unsigned i = 0; i < FK_CHILD_SMALL; i++) {
    small[i] = malloc(16 + i * 24);
    if (small[i] == NULL) return FK_ENOMEM;
    memset(small[i], (int)i, 16 + i * 24);
  }
  unsigned char *big = malloc(FK_CHILD_BIG);
  if (big == NULL) return FK_ENOMEM;
  memset(big, 0xA5, FK_CHILD_BIG);
  unsigned char *z = calloc(1, FK_CHILD_CALLOC);
  if (z == NULL) return FK_ENOMEM;
  for (size_t i = 0; i < FK_CHILD_CALLOC; i++)
    if (z[i] != 0) return FK_CALLOC_DIRTY;
  unsigned char *r = realloc(small[0], 2 * FK_CHILD_BIG);
  if (r == NULL) return FK_ENOMEM;
  small[0] = r;
  for (size_t i = 0; i < 16; i++)
    if (r[i] != 0) return FK_REALLOC_LOST;
  for (unsigned i = 1; i < FK_CHILD_SMALL; i++)
    for (size_t k = 0; k < 16 + i * 24; k++)
      if (((unsigned char *)small[i])[k] != (unsigned char)i) return FK_CORRUPT;
  for (unsigned i = 0; i < FK_CHILD_SMALL; i++) free(small[i]);
  free(big);
  free(z);
  return FK_OK;
}

int main(void) {
  pthread_t th[FK_BACKGROUND];
  unsigned forks = (unsigned)stress_work(FK_FORKS);
  unsigned good = 0;
  test_rng rng;
  test_rng_seed(&rng, 0xF0F0);
  for (unsigned t = 0; t < FK_BACKGROUND; t++) stress_spawn(&th[t], background, (void *)(uintptr_t)(t + 1));
  for (unsigned i = 0; i < forks; i++) {
    /* Let the background threads get going between forks. */
    unsigned long target = atomic_load(&background_ops) + FK_MIN_BG_OPS;
    while (atomic_load(&background_ops) < target) sched_yield();
    stress_block pb;
    if (!stress_alloc(&pb, &rng, FK_PARENT_BLOCK, 0, i)) continue;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) stress_die("fork", errno);
    if (pid == 0) _exit(child_work(&pb));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) stress_die("waitpid", errno);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == FK_OK) good++;
    else if (WIFSIGNALED(status))
      stress_fail("fork %u: child killed by signal %d%s", i, WTERMSIG(status),
                  WTERMSIG(status) == SIGALRM ? " (deadlocked in the allocator?)" : "");
    else stress_fail("fork %u: child exited with status %d", i, WEXITSTATUS(status));
    /* The parent's copy of the block is untouched by the child's free. */
    stress_release(&pb, "parent block after fork");
  }
  atomic_store(&stop_background, true);
  for (unsigned t = 0; t < FK_BACKGROUND; t++) stress_join(th[t]);
  char msg[96];
  snprintf(msg, sizeof msg, "%u of %u children allocated and exited cleanly", good, forks);
  stress_check(good == forks, msg);
  stress_check(atomic_load(&stress_failures) == 0, "background threads' blocks intact across forks");
  return stress_finish("stress_fork");
}

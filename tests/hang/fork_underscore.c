/* fork_underscore.c: _Fork() in a single-threaded process (glibc 2.34+).
 *
 * _Fork runs no fork handlers, so the allocator learns of it only in the
 * child's next call. A single-threaded parent holds no allocator lock at the
 * call, so its child must be able to do everything: allocate (small, medium
 * and huge blocks), free and reallocate blocks from before the fork, and
 * start threads that allocate and free across each other. Each run forks
 * FORKS children from a parent that allocates between forks (so each
 * child inherits a different heap) and checks every child's exit status; a
 * child that hangs is the driver's timeout.
 */
#include <sys/wait.h>

#include "hang_common.h"

#define FORKS 20
#define PARENT_BLOCKS 64 /* live in the parent at each fork */
#define CHILD_THREADS 4
#define CHILD_BLOCKS 500 /* per child thread */
#define SMALL_MAX (4 * KIB)
#define MEDIUM_BYTES (256 * KIB)
#define HUGE_BYTES (6 * MIB)
#define FILL 0x5a

static void *parent_blocks[PARENT_BLOCKS];
static size_t parent_sizes[PARENT_BLOCKS];

/* A child thread: allocates, writes, frees half, hands the rest back. */
static void *child_thread(void *arg) {
  test_rng rng;
  test_rng_seed(&rng, (uint64_t)(uintptr_t)arg);
  void **kept = malloc(CHILD_BLOCKS * sizeof *kept);
  if (kept == NULL) hang_child_fail("child thread: malloc failed");
  for (int i = 0; i < CHILD_BLOCKS; i++) {
    size_t size = test_rng_range(&rng, 1, SMALL_MAX);
    if ((kept[i] = malloc(size)) == NULL) hang_child_fail("child thread: malloc(%zu) failed", size);
    memset(kept[i], FILL, size);
  }
  for (int i = 0; i < CHILD_BLOCKS; i += 2) free(kept[i]);
  return kept; /* the odd ones: freed by the child's main thread */
}

static _Noreturn void child_main(void) {
  for (int i = 0; i < PARENT_BLOCKS; i++) {
    if (test_check(parent_blocks[i], parent_sizes[i], (uint64_t)i) != parent_sizes[i])
      hang_child_fail("a block from before _Fork changed in the child");
    if (i % 2 == 0) {
      free(parent_blocks[i]);
    } else if ((parent_blocks[i] = realloc(parent_blocks[i], parent_sizes[i] * 2 + 1)) == NULL) {
      hang_child_fail("realloc of a block from before _Fork failed");
    }
  }
  void *medium = malloc(MEDIUM_BYTES), *huge = calloc(1, HUGE_BYTES);
  if (medium == NULL || huge == NULL) hang_child_fail("child: medium or huge malloc failed");
  memset(medium, FILL, MEDIUM_BYTES);
  free(medium);
  free(huge);
  pthread_t threads[CHILD_THREADS];
  for (int t = 0; t < CHILD_THREADS; t++) threads[t] = hang_spawn(child_thread, (void *)(uintptr_t)(t + 1));
  for (int t = 0; t < CHILD_THREADS; t++) {
    void **kept = hang_join(threads[t]);
    for (int i = 1; i < CHILD_BLOCKS; i += 2) free(kept[i]);
    free(kept);
  }
  for (int i = 1; i < PARENT_BLOCKS; i += 2) free(parent_blocks[i]);
  _exit(0);
}

int main(void) {
  test_rng rng;
  test_rng_seed(&rng, hang_seed());
  for (int f = 0; f < FORKS; f++) {
    for (int i = 0; i < PARENT_BLOCKS; i++) {
      free(parent_blocks[i]);
      parent_sizes[i] = test_rng_range(&rng, 1, i % 8 == 0 ? MEDIUM_BYTES : SMALL_MAX);
      if ((parent_blocks[i] = malloc(parent_sizes[i])) == NULL)
        hang_fail("parent: malloc(%zu) failed", parent_sizes[i]);
      test_fill(parent_blocks[i], parent_sizes[i], (uint64_t)i);
    }
    pid_t pid = _Fork();
    if (pid < 0) hang_fail("_Fork: %s", strerror(errno));
    if (pid == 0) child_main();
    int status;
    while (waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) hang_fail("waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) hang_fail("child %d of _Fork ended with status %#x", f, status);
  }
  for (int i = 0; i < PARENT_BLOCKS; i++) free(parent_blocks[i]);
  return 0;
}

/* ulimit_large.c: a generous address-space limit must leave a program all the
 * memory it asks for.
 *
 * Shells and batch systems often set `ulimit -v` to a limit far above what a
 * program uses; an allocator whose own reservations eat most of such a limit
 * makes ordinary allocations fail there. Run without arguments, this forks a
 * child that lowers RLIMIT_AS to LIMIT (never raises it) and re-executes
 * this program with CHILD_FLAG, keeping the environment (so LD_PRELOAD
 * stays): the limit is in force from the program's first instruction, as
 * under `ulimit -v`. The re-executed child allocates BLOCKS blocks of
 * BLOCK_SIZE, writes a byte in each, and frees them; every allocation must
 * succeed. BLOCKS x BLOCK_SIZE is a small part of LIMIT.
 *
 * The address space the allocator takes at start-up is checked on its own by
 * vsz.c.
 */
#include <sys/resource.h>
#include <sys/wait.h>

#include "hang_common.h"

#define LIMIT (33 * GIB)
#define BLOCKS 2048
#define BLOCK_SIZE MIB
#define CHILD_FLAG "--child"
#define SELF_PATH "/proc/self/exe"

static int run_child(void) {
  static unsigned char *blocks[BLOCKS];
  struct rlimit rl;
  hang_check_errno(getrlimit(RLIMIT_AS, &rl), "getrlimit");
  for (unsigned i = 0; i < BLOCKS; i++) {
    blocks[i] = malloc(BLOCK_SIZE);
    if (blocks[i] == NULL)
      hang_fail("malloc(%zu) number %u of %u returned NULL (%s) under RLIMIT_AS of %llu MiB", BLOCK_SIZE, i + 1, BLOCKS,
                strerror(errno), (unsigned long long)(rl.rlim_cur / MIB));
    blocks[i][i % BLOCK_SIZE] = (unsigned char)i;
  }
  for (unsigned i = 0; i < BLOCKS; i++) free(blocks[i]);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], CHILD_FLAG) == 0) return run_child();

  pid_t pid = fork();
  if (pid < 0) hang_fail("fork: %s", strerror(errno));
  if (pid == 0) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0) hang_child_fail("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > LIMIT) {
      rl.rlim_cur = LIMIT;
      if (setrlimit(RLIMIT_AS, &rl) != 0) hang_child_fail("setrlimit: %s", strerror(errno));
    }
    char *child_argv[] = {argv[0], CHILD_FLAG, NULL};
    execv(SELF_PATH, child_argv);
    hang_child_fail("execv %s: %s", SELF_PATH, strerror(errno));
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) hang_fail("waitpid: %s", strerror(errno));
  if (WIFSIGNALED(status)) hang_fail("the child under RLIMIT_AS died of signal %d", WTERMSIG(status));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return HANG_EXIT_FAILURE; /* the child reported why */
  return 0;
}

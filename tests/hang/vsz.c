/* vsz.c: prints this process's virtual size (VmSize, in KiB, from
 * /proc/self/statm) right after the allocator's first malloc and free.
 *
 * Address space is a resource too: under `ulimit -v`, or an RLIMIT_AS a
 * program sets itself, every byte an allocator reserves up front is a byte
 * the program cannot map. run_scenario.sh (scenario "vsz") runs this once
 * without LD_PRELOAD (glibc's malloc) and once with libbuddymalloc.so
 * preloaded, and fails if the preloaded VmSize exceeds the plain one by more
 * than its threshold. There is no linked form: a linked binary has no plain
 * twin to compare with.
 */
#include "hang_common.h"

#define FIRST_SIZE 16

int main(void) {
  void *p = malloc(FIRST_SIZE);
  if (p == NULL) hang_fail("malloc(%d) returned NULL", FIRST_SIZE);
  free(p);

  size_t vsize = 0;
  if (!test_statm_read(&vsize, NULL)) /* statm's first field: VmSize */
    hang_fail("cannot read /proc/self/statm: %s", strerror(errno));
  printf("%zu\n", vsize / KIB);
  return 0;
}

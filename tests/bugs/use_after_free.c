/* use_after_free.c: a freed block used through a stale pointer.
 *   use_after_free small|medium|large write    written after its free
 *   use_after_free small|medium|large reuse    freed, reused (malloc of the
 *                                              same size), then written
 *                                              through the stale pointer
 *   use_after_free small|medium|large read     read after its free
 * Then blocks of the size come and go (bug_churn). */
#include "bugs.h"

int main(int argc, char **argv) {
  size_t size = bug_size(argc > 1 ? argv[1] : NULL);
  const char *how = argc > 2 ? argv[2] : "";
  if (size == 0) return bug_usage("use_after_free small|medium|large write|reuse|read");
  unsigned char *keep = bug_hide(malloc(size)), *p = bug_hide(malloc(size));
  if (keep == NULL || p == NULL) return 3;
  memset(p, 1, size);
  free(bug_hide(p));
  volatile unsigned char *stale = bug_hide(p);
  if (strcmp(how, "write") == 0) {
    stale[0] = 0x44;
    stale[size / 2] = 0x44;
  } else if (strcmp(how, "reuse") == 0) {
    unsigned char *again = bug_hide(malloc(size));
    stale[0] = 0x45;
    stale[size / 2] = 0x45;
    free(bug_hide(again));
  } else if (strcmp(how, "read") == 0) {
    unsigned sum = stale[0] + stale[size / 2];
    printf("read %u\n", sum);
  } else {
    return bug_usage("use_after_free small|medium|large write|reuse|read");
  }
  free(bug_hide(keep));
  bug_churn(size);
  return bug_survived();
}

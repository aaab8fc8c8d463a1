/* overflow.c: a write of N bytes just past a block's requested end,
 * directly (a loop of stores) or through memcpy.
 *   overflow small|medium|large BYTES direct|memcpy
 * The block sits between two others of its size; all three are freed, then
 * blocks of the size come and go (bug_churn). */
#include "bugs.h"

int main(int argc, char **argv) {
  size_t size = bug_size(argc > 1 ? argv[1] : NULL);
  size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
  const char *how = argc > 3 ? argv[3] : "";
  if (size == 0 || n == 0 || (strcmp(how, "direct") != 0 && strcmp(how, "memcpy") != 0))
    return bug_usage("overflow small|medium|large BYTES direct|memcpy");
  unsigned char *before = bug_hide(malloc(size)), *p = bug_hide(malloc(size)), *after = bug_hide(malloc(size));
  if (before == NULL || p == NULL || after == NULL) return 3;
  if (strcmp(how, "direct") == 0) {
    volatile unsigned char *q = bug_hide(p);
    for (size_t i = 0; i < size + n; i++) q[i] = 0x42;
  } else {
    unsigned char *src = bug_hide(malloc(size + n));
    if (src == NULL) return 3;
    memset(src, 0x43, size + n);
    memcpy(bug_hide(p), src, size + n);
    free(bug_hide(src));
  }
  free(bug_hide(p));
  free(bug_hide(before));
  free(bug_hide(after));
  bug_churn(size);
  return bug_survived();
}

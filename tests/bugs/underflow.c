/* underflow.c: a write of N bytes just before a block's start.
 *   underflow small|medium|large 1|32
 * The block sits between two others of its size; all three are freed, then
 * blocks of the size come and go (bug_churn). */
#include "bugs.h"

int main(int argc, char **argv) {
  size_t size = bug_size(argc > 1 ? argv[1] : NULL);
  size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
  if (size == 0 || n == 0) return bug_usage("underflow small|medium|large BYTES");
  unsigned char *before = bug_hide(malloc(size)), *p = bug_hide(malloc(size)), *after = bug_hide(malloc(size));
  if (before == NULL || p == NULL || after == NULL) return 3;
  memset(bug_hide(p - n), 0x41, n);
  free(bug_hide(p));
  free(bug_hide(before));
  free(bug_hide(after));
  bug_churn(size);
  return bug_survived();
}

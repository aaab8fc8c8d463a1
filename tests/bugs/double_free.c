/* double_free.c: a block freed twice.
 *   double_free small|medium|large reuse        freed, reused by a malloc of
 *                                               its size, freed through the
 *                                               stale pointer, then freed by
 *                                               its new owner
 *   double_free small|medium|large delayed      freed, blocks of other sizes
 *                                               come and go, freed again
 *   double_free small|medium|large interleaved  free(a), free(b), free(a)
 * Then blocks of the size come and go (bug_churn). */
#include "bugs.h"

int main(int argc, char **argv) {
  size_t size = bug_size(argc > 1 ? argv[1] : NULL);
  const char *how = argc > 2 ? argv[2] : "";
  if (size == 0) return bug_usage("double_free small|medium|large reuse|delayed|interleaved");
  unsigned char *keep = bug_hide(malloc(size)), *a = bug_hide(malloc(size)), *b = bug_hide(malloc(size));
  if (keep == NULL || a == NULL || b == NULL) return 3;
  if (strcmp(how, "reuse") == 0) {
    free(bug_hide(a));
    unsigned char *again = bug_hide(malloc(size));
    free(bug_hide(a)); /* the stale pointer: frees `again` if it is a */
    free(bug_hide(again));
    free(bug_hide(b));
  } else if (strcmp(how, "delayed") == 0) {
    free(bug_hide(a));
    bug_churn(size * 2 + 16);
    bug_churn(24);
    free(bug_hide(a));
    free(bug_hide(b));
  } else if (strcmp(how, "interleaved") == 0) {
    free(bug_hide(a));
    free(bug_hide(b));
    free(bug_hide(a));
  } else {
    return bug_usage("double_free small|medium|large reuse|delayed|interleaved");
  }
  free(bug_hide(keep));
  bug_churn(size);
  return bug_survived();
}

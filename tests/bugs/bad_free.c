/* bad_free.c: free of a pointer malloc never returned.
 *   bad_free stack              a local variable
 *   bad_free alloca             memory from alloca
 *   bad_free near small|medium|large       a few bytes (8) past a block's start
 *   bad_free far small|medium|large        1 GiB past a block's start
 *   bad_free unaligned small|medium|large  1 byte past a block's start
 * Then blocks of the size come and go (bug_churn). */
#include "bugs.h"

#include <alloca.h>

int main(int argc, char **argv) {
  const char *how = argc > 1 ? argv[1] : "";
  if (strcmp(how, "stack") == 0) {
    char local[64];
    memset(local, 0, sizeof local);
    free(bug_hide(local));
    bug_churn(BUG_SMALL);
    return bug_survived();
  }
  if (strcmp(how, "alloca") == 0) {
    char *a = alloca(64);
    memset(a, 0, 64);
    free(bug_hide(a));
    bug_churn(BUG_SMALL);
    return bug_survived();
  }
  size_t size = bug_size(argc > 2 ? argv[2] : NULL), offset;
  if (strcmp(how, "near") == 0) offset = 8;
  else if (strcmp(how, "far") == 0) offset = (size_t)1 << 30;
  else if (strcmp(how, "unaligned") == 0) offset = 1;
  else offset = 0;
  if (size == 0 || offset == 0) return bug_usage("bad_free stack|alloca|near|far|unaligned [small|medium|large]");
  unsigned char *p = bug_hide(malloc(size));
  if (p == NULL) return 3;
  free(bug_hide(p + offset));
  free(bug_hide(p));
  bug_churn(size);
  return bug_survived();
}

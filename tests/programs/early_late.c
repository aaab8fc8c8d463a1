/* early_late.c: the allocator before any constructor and after exit handlers.
 *
 * Built as a shared library linked into early_late_main: its constructor runs
 * before main and before libbuddymalloc.so could have run any set-up of its
 * own (it has none: initialisation is lazy), and its destructor runs after
 * exit handlers. Both allocate, reallocate and free. The program prints one
 * line per phase; the test compares plain and preloaded output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *early_block;

__attribute__((constructor(101))) static void early(void) {
  free(NULL);
  early_block = malloc(100);
  strcpy(early_block, "early");
  early_block = realloc(early_block, 5000);
  void *aligned = NULL;
  if (posix_memalign(&aligned, 64, 256) == 0) free(aligned);
}

__attribute__((destructor(101))) static void late(void) {
  char *p = malloc(64);
  strcpy(p, "late");
  char *q = calloc(10, 1000);
  fprintf(stdout, "destructor: %s %d\n", p, q[9999]);
  fflush(stdout);
  free(q);
  free(p);
  free(early_block);
}

const char *early_late_block(void) {
  return early_block;
}

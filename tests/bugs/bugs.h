/* bugs.h: what the bug programs share (tests/bugs/, one program per kind of
 * heap bug, the case chosen by the arguments).
 *
 * Each program commits one bug, then goes on as a program would: it frees
 * what it holds and allocates and frees blocks of the same size again, so
 * that an allocator that checks a block when it is freed, reused or its slab
 * or run is next touched has the chance to. A program the allocator did not
 * stop prints "survived" and exits 0. The pointers go through bug_hide so
 * that the compiler can neither see the bug nor fold a malloc away.
 */
#ifndef BUGS_H
#define BUGS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The three kinds of block: a small object, a medium page run and a large
 * block (above the huge threshold, 4 MiB: a mapping of its own). None is a
 * multiple of a page or a class size, as most requests are not. */
#define BUG_SMALL ((size_t)40)
#define BUG_MEDIUM ((size_t)100000)
#define BUG_LARGE ((size_t)5000000)
#define BUG_CHURN_BLOCKS 64

static void *volatile bug_sink;

static __attribute__((noinline, unused)) void *bug_hide(void *p) {
  bug_sink = p;
  return bug_sink;
}

/* small|medium|large: the size, or 0 (the program says why). */
static inline size_t bug_size(const char *kind) {
  if (kind == NULL) return 0;
  if (strcmp(kind, "small") == 0) return BUG_SMALL;
  if (strcmp(kind, "medium") == 0) return BUG_MEDIUM;
  if (strcmp(kind, "large") == 0) return BUG_LARGE;
  return 0;
}

static inline int bug_usage(const char *usage) {
  fprintf(stderr, "usage: %s\n", usage);
  return 2;
}

/* Blocks of `size` allocated, written and freed again, twice: reuse of what
 * the bug touched, and a second pass over the slabs, runs and caches. */
static inline void bug_churn(size_t size) {
  void *blocks[BUG_CHURN_BLOCKS];
  int n = size >= BUG_LARGE ? 4 : BUG_CHURN_BLOCKS;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < n; i++) {
      blocks[i] = bug_hide(malloc(size));
      if (blocks[i] != NULL) memset(blocks[i], i, 16);
    }
    for (int i = 0; i < n; i++) free(bug_hide(blocks[i]));
  }
}

static inline int bug_survived(void) {
  printf("survived\n");
  fflush(stdout);
  return 0;
}

#endif /* BUGS_H */

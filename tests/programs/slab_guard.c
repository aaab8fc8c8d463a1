/* slab_guard.c: runs off the end of a slab's last small block, as a write of
 * one byte past the end of a block of the largest small class (32 KiB) that
 * lies last in its slab (of 128 KiB: types.h, SIZE_CLASSES). In secure mode
 * a guard page follows every slab, so the write faults and is reported; the
 * program prints "survived" if it goes on. Exits 1 if no block was found
 * last in its slab. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SLAB_GUARD_CLASS ((size_t)32768)
#define SLAB_GUARD_SLAB ((size_t)131072)
#define SLAB_GUARD_TRIES 64

/* Through a volatile store: the compiler sees neither the pointer's origin
 * nor the bug. */
static char *volatile slab_guard_sink;

int main(void) {
  for (int i = 0; i < SLAB_GUARD_TRIES; i++) {
    slab_guard_sink = malloc(SLAB_GUARD_CLASS - 1000);
    char *p = slab_guard_sink;
    if (p == NULL) return 2;
    if (((uintptr_t)p & (SLAB_GUARD_SLAB - 1)) == SLAB_GUARD_SLAB - SLAB_GUARD_CLASS) {
      volatile char *q = p;
      q[SLAB_GUARD_CLASS] = 1; /* the first byte past the slab */
      printf("survived\n");
      return 0;
    }
  }
  return 1;
}

/* fill.c: the fill patterns of the hardening checks, and the search for a
 * byte that is not the pattern any more.
 *
 * The tail of a page run or a huge block (the bytes just past what the
 * program asked for, run.c and huge.c) holds FILL_TAIL from allocation to
 * free: a byte that changed there is a write past the block's end. The start
 * of a freed huge block waiting in the cache holds FILL_FREED: a byte that
 * changed there was written after the free. Neither is on malloc's or
 * free's fast path.
 */
#include "base.h"

#include <string.h>

/* Bytes of the tail [asked, end) checked: at most FILL_TAIL_MAX, and none
 * past the end of the page that holds byte `asked` (a page the program did
 * not touch stays untouched). 0 when asked ends a page or the block. */
size_t fill_tail_bytes(size_t asked, size_t end) {
  size_t in_page = (size_t)(-asked) & (PAGE_SIZE - 1), n = end - asked;
  if (n > in_page) n = in_page;
  return n < FILL_TAIL_MAX ? n : FILL_TAIL_MAX;
}

size_t fill_tail_arm(char *p, size_t asked, size_t bytes) {
  size_t tail = fill_tail_bytes(asked, bytes);
  memset(p + asked, FILL_TAIL, tail);
  return tail;
}

/* The first of p[0..n) that is not `byte`, or NULL. */
const unsigned char *fill_find_other(const void *p, size_t n, unsigned char byte) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != byte) return b + i;
  return NULL;
}

void fill_tail_check(const char *from, size_t n, const char *what, size_t block_bytes, size_t asked) {
  const unsigned char *bad = fill_find_other(from, n, FILL_TAIL);
  if (unlikely(bad != NULL)) error_misuse_block(what, bad, block_bytes, asked);
}

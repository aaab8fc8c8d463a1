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

#include <stdint.h>
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

/* The first of p[0..n) that is not `byte`, or NULL. Secure and debug
 * modes check every freed block whole with it: FILL_FREED, the fill of
 * freed blocks, is compared FILL_COMPARE_BYTES at a time with libc's
 * memcmp (vector code) against a block of it in .rodata (whose page is
 * touched only in those modes); shorter runs and other bytes
 * FILL_WORDS_AT_ONCE words a step
 * (no branch but the loop's). Bytes are read one by one only around the
 * aligned words and where a difference was seen. */
#define FILL_WORDS_AT_ONCE 4
#define FILL_COMPARE_BYTES 1024
#define FILL_COMPARE_MIN 256 /* below this, the words are quicker than a call */
static const unsigned char fill_freed_block[FILL_COMPARE_BYTES] = {[0 ... FILL_COMPARE_BYTES - 1] = FILL_FREED};

static const unsigned char *fill_find_other_words(const unsigned char *b, const unsigned char *end,
                                                  unsigned char byte) {
  const uint64_t pattern = 0x0101010101010101ULL * byte;
  for (; b < end && ((uintptr_t)b & (sizeof(uint64_t) - 1)) != 0; b++)
    if (*b != byte) return b;
  const size_t step = FILL_WORDS_AT_ONCE * sizeof(uint64_t);
  for (; (size_t)(end - b) >= step; b += step) {
    uint64_t w[FILL_WORDS_AT_ONCE];
    memcpy(w, b, step); /* loads of the words, whatever the bytes were written as */
    if (((w[0] ^ pattern) | (w[1] ^ pattern) | (w[2] ^ pattern) | (w[3] ^ pattern)) != 0) break;
  }
  for (; (size_t)(end - b) >= sizeof(uint64_t); b += sizeof(uint64_t)) {
    uint64_t w;
    memcpy(&w, b, sizeof w);
    if (w != pattern) break;
  }
  for (; b < end; b++)
    if (*b != byte) return b;
  return NULL;
}

const unsigned char *fill_find_other(const void *p, size_t n, unsigned char byte) {
  const unsigned char *b = p, *end = b + n;
  if (byte == FILL_FREED && n >= FILL_COMPARE_MIN) {
    for (; (size_t)(end - b) >= FILL_COMPARE_BYTES; b += FILL_COMPARE_BYTES)
      if (memcmp(b, fill_freed_block, FILL_COMPARE_BYTES) != 0) return fill_find_other_words(b, end, byte);
    if (memcmp(b, fill_freed_block, (size_t)(end - b)) == 0) return NULL;
  }
  return fill_find_other_words(b, end, byte);
}

bool fill_tail_check(const char *from, size_t n, const char *what, size_t block_bytes, size_t asked) {
  const unsigned char *bad = fill_find_other(from, n, FILL_TAIL);
  if (unlikely(bad != NULL)) error_misuse_block(what, bad, block_bytes, asked);
  return bad == NULL;
}

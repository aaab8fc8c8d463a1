/* slab.c: a buddy block carved into objects of one size class.
 *
 * A slab is a block of size_class_slab_order[class]; every one of its page
 * descriptors says PAGE_SLAB, the class and the order, so a pointer anywhere
 * in it finds the class in one load and the head page by masking. The head
 * descriptor keeps the slab's state:
 *   slab_carved  objects [0, slab_carved) have been handed out at least once;
 *                the rest were never touched (so a fresh slab costs no writes);
 *   slab_used    objects out of the slab (in thread caches, in transfer
 *                stacks, or with the program);
 *   slab_scan    the first of the slab's bitmap words that may hold a free bit.
 * The carved objects that are back in the slab are those whose free bit is
 * set (the region's slab_free_bits, one bit per SMALL_ALIGN bytes): the
 * bitmap is the slab's free set, not a list through the objects. Why: the
 * objects a thread frees to a zone are often refilled by another thread (a
 * remote free goes home to its zone, its owner takes it from there), and
 * popping a list threaded through them would be a chain of dependent loads,
 * each missing on a line the freeing core holds. Taking objects from the bits
 * reads none of them; it writes the key into each (stores that miss
 * overlap, and malloc writes the same line when it hands the object out).
 * The key is already there from slab_give unless a write after free wiped
 * it, and a bin must not hold an object without it: free's fast path would
 * not suspect a double free of it, and a stack bin would hand it out twice.
 * The caller holds the zone lock for every function here.
 */
#include "slab.h"

#include <string.h>

void slab_init(page_desc_t *head, unsigned cls) {
  unsigned order = size_class_slab_order[cls];
  assert_internal(head->kind == PAGE_USED && head->order == order);
  for (size_t i = 0; i < ((size_t)1 << order); i++) {
    head[i].kind = PAGE_SLAB;
    head[i].order = (uint8_t)order;
  }
  page_class_set(head, (size_t)1 << order, cls);
  head->slab_used = 0;
  head->slab_carved = 0;
  head->slab_scan = 0;
}

/* debug=1: a freed object's bytes hold DEBUG_FILL until it is handed out
 * again, all but its second word (the key, written after the fill); anything
 * else there was written after free. */
#define DEBUG_FILL 0xdf
#define DEBUG_KEY_WORD 1

void slab_debug_fill(void *obj, size_t bytes) {
  memset(obj, DEBUG_FILL, bytes);
}

static void slab_debug_check(void *obj, size_t bytes) {
  const unsigned char *p = obj;
  for (size_t i = 0; i < bytes; i++)
    if (i / sizeof(void *) != DEBUG_KEY_WORD && p[i] != DEBUG_FILL)
      error_fatal("use after free: a freed block was written to", p + i);
}

/* The object leaves the slab for a cache: it gets the key again (a write
 * after free may have wiped it), after the fill check with debug=1. */
static void *slab_hand_out(void **obj, unsigned cls) {
  if (options.debug) slab_debug_check(obj, size_class_bytes[cls]);
  obj[1] = (void *)free_key;
  return obj;
}

/* slab_take_free for classes of at least SLAB_STRIDE_MIN_BYTES: a bitmap
 * word holds at most one object's bit, so the walk steps from object to
 * object rather than over the words between them (an 8 KiB object spans
 * eight words). */
#define SLAB_STRIDE_MIN_BYTES (64 * SMALL_ALIGN)
static unsigned slab_take_free_strided(page_desc_t *head, void **out, unsigned n, unsigned cls) {
  size_t bytes = size_class_bytes[cls], stride = bytes / SMALL_ALIGN, carved = head->slab_carved;
  char *start = page_address_of(head);
  uint64_t *words = slab_free_words(head);
  size_t index = ((size_t)head->slab_scan * 64 + stride - 1) / stride; /* the first object not below slab_scan */
  unsigned taken = 0;
  for (; taken < n; index++) {
    if (index >= carved) error_fatal("heap corrupted: a slab has fewer free bits than free objects", start);
    size_t g = index * stride;
    uint64_t mask = slab_free_mask(g);
    if (!(words[g / 64] & mask)) continue;
    words[g / 64] &= ~mask;
    out[taken++] = slab_hand_out((void **)(start + index * bytes), cls);
  }
  /* Every object below `index` is out: the words below its bit's are clear. */
  head->slab_scan = (uint16_t)(index * stride / 64);
  return taken;
}

/* Moves up to n of the slab's free objects, lowest address first, from its
 * bits into out[0..n); returns how many. */
static unsigned slab_take_free(page_desc_t *head, void **out, unsigned n) {
  unsigned cls = page_class_of_desc(head), taken = 0;
  unsigned free_count = (unsigned)head->slab_carved - head->slab_used;
  if (n > free_count) n = free_count;
  if (n == 0) return 0;
  if (size_class_bytes[cls] >= SLAB_STRIDE_MIN_BYTES) return slab_take_free_strided(head, out, n, cls);
  char *start = page_address_of(head);
  uint64_t *words = slab_free_words(head);
  size_t w = head->slab_scan, word_count = slab_free_word_count(head);
  while (taken < n) {
    if (w >= word_count) error_fatal("heap corrupted: a slab has fewer free bits than free objects", start);
    uint64_t bits = words[w];
    while (bits != 0 && taken < n) {
      void **obj = (void **)(start + (w * 64 + (size_t)__builtin_ctzll(bits)) * SMALL_ALIGN);
      bits &= bits - 1;
      out[taken++] = slab_hand_out(obj, cls);
    }
    words[w] = bits;
    if (bits == 0) w++;
  }
  head->slab_scan = (uint16_t)w;
  return taken;
}

unsigned slab_take(page_desc_t *head, void **out, unsigned n) {
  unsigned cls = page_class_of_desc(head), taken = slab_take_free(head, out, n);
  size_t bytes = size_class_bytes[cls];
  char *start = page_address_of(head);
  while (taken < n && head->slab_carved < size_class_slab_count[cls]) {
    void **obj = (void **)(start + head->slab_carved++ * bytes);
    obj[1] = (void *)free_key;
    out[taken++] = obj;
  }
  head->slab_used = (uint16_t)(head->slab_used + taken);
  return taken;
}

void slab_clear_free_bits(page_desc_t *head) {
  memset(slab_free_words(head), 0, slab_free_word_count(head) * sizeof(uint64_t));
}

/* Checks a slab's counts against its free bits; aborts with a report. */
void slab_verify(const page_desc_t *head) {
  unsigned cls = page_class_of_desc(head);
  const char *start = page_address_of(head);
  const uint64_t *words = slab_free_words(head);
  size_t word_count = slab_free_word_count(head), free_bits = 0;
  if (head->slab_carved > size_class_slab_count[cls] || head->slab_used > head->slab_carved)
    error_fatal("heap check failed: slab counts out of range", start);
  for (size_t w = 0; w < word_count; w++) {
    if (w < head->slab_scan && words[w] != 0)
      error_fatal("heap check failed: a free bit below the slab's scan start", start);
    for (uint64_t bits = words[w]; bits != 0; bits &= bits - 1) {
      size_t offset = (w * 64 + (size_t)__builtin_ctzll(bits)) * SMALL_ALIGN;
      if (!size_class_is_object_start(cls, offset) || offset >= (size_t)head->slab_carved * size_class_bytes[cls])
        error_fatal("heap check failed: a free bit off the slab's carved objects", start + offset);
      free_bits++;
    }
  }
  if (free_bits != (size_t)head->slab_carved - head->slab_used)
    error_fatal("heap check failed: a slab's free bits disagree with its counts", start);
}

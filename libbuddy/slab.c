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
 * The key is already there from the cache that gave it back unless a write
 * after free wiped it, and a bin must not hold an object without it: free's
 * fast path would not suspect a double free of it, and a stack bin would
 * hand it out twice.
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
  head->flags = 0;
}

void slab_keep_guard(page_desc_t *head, unsigned cls) {
  assert_internal(head->slab_carved == 0);
  size_t bytes = size_class_bytes[cls];
  void **first = (void **)page_address_of(head);
  memset(first, FILL_FREED, bytes);
  if (bytes > 2 * sizeof(void *)) first[bytes / sizeof(void *) - 1] = NULL;
  head->slab_carved = 1;
  head->slab_used = 1;
  head->flags |= PAGE_SLAB_GUARD;
}

/* debug=1: a freed object's bytes hold DEBUG_FILL until it is handed out
 * again, all but its second word (the key, written after the fill) and, in
 * objects of more than two words, its last word, which holds 0: a delete[]
 * of the block after it (a block from new, not new[]) reads a count of 0
 * there, not a huge one (secure.c). Anything else there was written after
 * free. */
#define DEBUG_FILL FILL_FREED
#define DEBUG_KEY_WORD 1

void slab_debug_fill(void *obj, size_t bytes) {
  memset(obj, DEBUG_FILL, bytes);
  ((void **)obj)[DEBUG_KEY_WORD] = (void *)FREE_KEY;
  if (bytes > 2 * sizeof(void *)) ((void **)obj)[bytes / sizeof(void *) - 1] = NULL;
}

/* Objects up to this are checked by a loop over their words first (most
 * of secure mode's blocks: each allocation checks several). */
#define SLAB_DEBUG_WORDS_MAX 256

/* Whether obj (of `bytes`, a multiple of 16) holds slab_debug_fill's pattern. */
static bool slab_debug_intact(const void *obj, size_t bytes) {
  const size_t words = bytes / sizeof(uint64_t);
  uint64_t fill, w, diff;
  memset(&fill, DEBUG_FILL, sizeof fill);
  memcpy(&w, obj, sizeof w);
  diff = w ^ fill;
  const unsigned char *p = (const unsigned char *)obj + (DEBUG_KEY_WORD + 1) * sizeof w;
  size_t left = words - (DEBUG_KEY_WORD + 1) - (words > 2 ? 1 : 0);
  for (size_t i = 0; i < left; i++, p += sizeof w) {
    memcpy(&w, p, sizeof w);
    diff |= w ^ fill;
  }
  if (words > 2) {
    memcpy(&w, p, sizeof w);
    diff |= w;
  }
  return diff == 0;
}

static void slab_debug_check(void *obj, size_t bytes) {
  if (bytes <= SLAB_DEBUG_WORDS_MAX && slab_debug_intact(obj, bytes)) return;
  const unsigned char *p = obj, *bad = fill_find_other(p, sizeof(void *), DEBUG_FILL);
  const size_t word = sizeof(void *), from = (DEBUG_KEY_WORD + 1) * word;
  if (bad == NULL && bytes > from) {
    bool zero_last = bytes > 2 * word; /* slab_debug_fill's last word */
    bad = fill_find_other(p + from, bytes - from - (zero_last ? word : 0), DEBUG_FILL);
    if (bad == NULL && zero_last) bad = fill_find_other(p + bytes - word, word, 0);
  }
  if (bad != NULL)
    error_misuse_block("use after free: a freed block was written to (found when it was reused)", bad, bytes, 0);
}

/* debug=1: objects that were free in their slab leave it after the fill
 * check (which skips the key word, already written). */
static void slab_debug_hand_out(void **out, unsigned n, unsigned cls) {
  for (unsigned i = 0; i < n; i++) slab_debug_check(out[i], size_class_bytes[cls]);
}

/* Objects leave the slab for a cache with the key in their second word
 * again (a write after free may have wiped it). The walks below write it as
 * they go, with the key and the class's constants in registers: a refill's
 * cost per object is the walk itself. */

/* slab_take_free for classes of at least SLAB_STRIDE_MIN_BYTES: a bitmap
 * word holds at most one object's bit, so the walk steps from object to
 * object rather than over the words between them (an 8 KiB object spans
 * eight words). */
#define SLAB_STRIDE_MIN_BYTES (64 * SMALL_ALIGN)
static unsigned slab_take_free_strided(page_desc_t *head, char *start, uint64_t *words, void **out, unsigned n,
                                       unsigned cls) {
  const uintptr_t key = FREE_KEY;
  size_t bytes = size_class_bytes[cls], stride = bytes / SMALL_ALIGN, carved = head->slab_carved;
  size_t index = ((size_t)head->slab_scan * 64 + stride - 1) / stride; /* the first object not below slab_scan */
  unsigned taken = 0;
  for (; taken < n; index++) {
    if (index >= carved) error_fatal("heap corrupted: a slab has fewer free bits than free objects", start);
    size_t g = index * stride;
    uint64_t mask = slab_free_mask(g);
    if (!(words[g / 64] & mask)) continue;
    words[g / 64] &= ~mask;
    void **obj = (void **)(start + index * bytes);
    obj[1] = (void *)key;
    out[taken++] = obj;
  }
  /* Every object below `index` is out: the words below its bit's are clear. */
  head->slab_scan = (uint16_t)(index * stride / 64);
  return taken;
}

/* Moves n of the slab's free objects (it has as many), lowest address
 * first, from its bits into out[0..n). */
static void slab_take_free(page_desc_t *head, char *start, uint64_t *words, void **out, unsigned n, unsigned cls) {
  if (size_class_bytes[cls] >= SLAB_STRIDE_MIN_BYTES) {
    slab_take_free_strided(head, start, words, out, n, cls);
    return;
  }
  const uintptr_t key = FREE_KEY;
  size_t w = head->slab_scan, word_count = slab_free_word_count(head);
  unsigned taken = 0;
  for (;; w++) {
    if (w >= word_count) error_fatal("heap corrupted: a slab has fewer free bits than free objects", start);
    uint64_t bits = words[w];
    char *base = start + w * 64 * SMALL_ALIGN; /* the bytes word w covers */
    for (; bits != 0 && taken < n; bits &= bits - 1) {
      void **obj = (void **)(base + (size_t)__builtin_ctzll(bits) * SMALL_ALIGN);
      obj[1] = (void *)key;
      out[taken++] = obj;
    }
    words[w] = bits;
    if (taken == n) {
      head->slab_scan = (uint16_t)(bits == 0 ? w + 1 : w);
      return;
    }
  }
}

/* Free objects first (they are the ones a slab of the partial list was
 * chosen for), lowest address first, then objects never handed out. */
unsigned slab_take(page_desc_t *head, unsigned cls, void **out, unsigned n) {
  region_t *r = region_of_desc(head);
  size_t page = (size_t)(head - r->pages);
  char *start = r->base + (page << PAGE_SHIFT);
  uint64_t *words = &r->slab_free_bits[page * (PAGE_SIZE / SMALL_ALIGN / 64)];
  unsigned used = head->slab_used, carved = head->slab_carved, taken = carved - used;
  if (taken > n) taken = n;
  if (taken > 0) slab_take_free(head, start, words, out, taken, cls);
  /* Then objects never handed out, from the slab's untouched end. */
  unsigned fresh = n - taken, left = (unsigned)size_class_slab_count[cls] - carved;
  if (fresh > left) fresh = left;
  if (fresh > 0) {
    const uintptr_t key = FREE_KEY;
    size_t bytes = size_class_bytes[cls];
    char *obj = start + carved * bytes;
    for (unsigned i = 0; i < fresh; i++, obj += bytes) {
      ((void **)obj)[1] = (void *)key;
      out[taken + i] = obj;
    }
    head->slab_carved = (uint16_t)(carved + fresh);
    /* debug=1: they leave filled as freed ones do, never with what the pages
     * held before (secure.c reads the end of the block before a block). */
    if (unlikely(options.debug))
      for (unsigned i = 0; i < fresh; i++) slab_debug_fill(out[taken + i], bytes);
  }
  if (unlikely(options.debug)) slab_debug_hand_out(out, taken, cls); /* carved ones were never written */
  taken += fresh;
  head->slab_used = (uint16_t)(used + taken);
  return taken;
}

/* Secure mode's choice: at least this many free objects to choose among,
 * carved from the slab's untouched end while it has any. */
#define SLAB_RANDOM_CHOICE 8

void *slab_take_random(page_desc_t *head, unsigned cls, uint64_t random) {
  uint64_t *words = slab_free_words(head);
  char *start = page_address_of(head);
  size_t bytes = size_class_bytes[cls];
  unsigned carved = head->slab_carved, free_count = carved - head->slab_used, carved_before = carved;
  unsigned left = (unsigned)size_class_slab_count[cls] - carved;
  /* Carved objects are free ones: filled (debug=1), their bits set. */
  for (; free_count < SLAB_RANDOM_CHOICE && left > 0; left--, free_count++, carved++) {
    char *obj = start + (size_t)carved * bytes;
    if (unlikely(options.debug)) slab_debug_fill(obj, bytes);
    size_t g = (size_t)carved * bytes / SMALL_ALIGN;
    words[g / 64] |= slab_free_mask(g);
    if (g / 64 < head->slab_scan) head->slab_scan = (uint16_t)(g / 64);
  }
  head->slab_carved = (uint16_t)carved;
  if (free_count == 0) error_fatal("heap corrupted: a slab with room gave no object", start);
  /* The chosen free bit: the pick-th set one from slab_scan on. */
  unsigned pick = (unsigned)(random % free_count);
  size_t w = head->slab_scan, word_count = slab_free_word_count(head);
  for (;; w++) {
    if (w >= word_count) error_fatal("heap corrupted: a slab has fewer free bits than free objects", start);
    unsigned here = (unsigned)__builtin_popcountll(words[w]);
    if (pick < here) break;
    pick -= here;
  }
  uint64_t bits = words[w];
  while (pick-- > 0) bits &= bits - 1;
  unsigned bit = (unsigned)__builtin_ctzll(bits);
  words[w] &= ~((uint64_t)1 << bit);
  void **obj = (void **)(start + (w * 64 + bit) * SMALL_ALIGN);
  obj[1] = (void *)FREE_KEY;
  /* One carved by this call was filled just now: nothing to check yet. */
  bool carved_now = (char *)obj >= start + (size_t)carved_before * bytes;
  if (unlikely(options.debug) && !carved_now) slab_debug_hand_out((void **)&obj, 1, cls);
  head->slab_used++;
  return obj;
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

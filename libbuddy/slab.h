/* slab.h: a buddy block carved into objects of one class (slab.c).
 */
#ifndef BUDDY_SLAB_H
#define BUDDY_SLAB_H

#include "buddy.h"

#pragma GCC visibility push(hidden)

/* ---- slab.c: a buddy block carved into objects of one class -------------- */

/* obj's free bit (region_t.slab_free_bits): granule g is bit g % 64 of
 * word g / 64. */
static inline size_t slab_free_granule(const void *obj) {
  return ((uintptr_t)obj & (BUDDY_REGION_SIZE - 1)) / SMALL_ALIGN;
}
static inline uint64_t slab_free_mask(size_t granule) {
  return (uint64_t)1 << (granule % 64);
}

/* The free-bit words of the slab headed by `head`: slab_free_word_count()
 * of them from this one (slabs are aligned to their size, at least a page:
 * a whole number of words). */
static inline uint64_t *slab_free_words(const page_desc_t *head) {
  return &region_of_desc(head)->slab_free_bits[slab_free_granule(page_address_of(head)) / 64];
}
static inline size_t slab_free_word_count(const page_desc_t *head) {
  return (PAGE_SIZE << head->order) / SMALL_ALIGN / 64;
}

void slab_init(page_desc_t *head, unsigned cls);
/* Secure mode, on a slab slab_init just made: its first object is carved
 * and kept out for good, filled as a freed block ends (secure.c reads it
 * as the end of the block before the second), and the slab is flagged
 * PAGE_SLAB_GUARD. */
void slab_keep_guard(page_desc_t *head, unsigned cls);
/* The objects a slab keeps out for good: counted in slab_used, the slab is
 * empty when slab_used is this. */
static inline unsigned slab_kept(const page_desc_t *head) {
  return (head->flags & PAGE_SLAB_GUARD) ? 1 : 0;
}
/* Whether the object at `offset` in the slab is its guard (never handed out). */
static inline bool slab_guard_at(const page_desc_t *head, size_t offset) {
  return offset == 0 && slab_kept(head);
}
/* Takes up to n objects of the slab (of class cls) into out[0..n), each with
 * FREE_KEY in its second word; returns the count. */
unsigned slab_take(page_desc_t *head, unsigned cls, void **out, unsigned n);
/* Secure mode: one free object of the slab (which has room), chosen by
 * `random` among its free objects, of which it first carves enough from
 * its untouched end to choose among several; its fill checked (debug=1). */
void *slab_take_random(page_desc_t *head, unsigned cls, uint64_t random);
/* Whether obj is free in its slab (its free bit). */
static inline bool slab_holds_free(const page_desc_t *head, const void *obj) {
  size_t g = slab_free_granule(obj);
  return (region_of_desc(head)->slab_free_bits[g / 64] & slab_free_mask(g)) != 0;
}
/* Clears the free bits of a slab going back to the core (set for its free
 * objects, which is all it carved). */
void slab_clear_free_bits(page_desc_t *head);
/* debug=1: fills a freed object (all but its key word, which it sets). */
void slab_debug_fill(void *obj, size_t bytes);
/* Checks a slab's counts against its free bits (zone_verify_all). */
void slab_verify(const page_desc_t *head);
/* What is wrong with giving obj, at `offset` in its slab (class cls, headed
 * by head, in region r), back to that slab, or NULL. A multiply, not a
 * division, for "never handed out"; a bit, not a scan, for "already free". */
static inline const char *slab_check_give_at(const region_t *r, const page_desc_t *head, const void *obj, size_t offset,
                                             unsigned cls) {
  if (!size_class_is_object_start(cls, offset)) return "free of a pointer inside a small block (not its start)";
  if (offset >= (size_t)head->slab_carved * size_class_bytes[cls])
    return "free of a small block that was never allocated";
  size_t g = slab_free_granule(obj);
  if (r->slab_free_bits[g / 64] & slab_free_mask(g)) return "double free of a small block";
  if (head->slab_used <= slab_kept(head)) return "double free of a small block (slab already empty)";
  if (slab_guard_at(head, offset)) return "free of a small block that was never allocated (a slab's guard)";
  return NULL;
}
/* The same, from the slab's head alone. Slabs are aligned to their size: the
 * offset is in the address bits. */
static inline const char *slab_check_give(const page_desc_t *head, const void *obj, unsigned cls) {
  return slab_check_give_at(region_of_desc(head), head, obj, (uintptr_t)obj & size_class_info[cls].slab_mask, cls);
}
/* Returns one object of class cls to its slab (head, in region r), under the
 * zone lock; checks it is an object start handed out and not already free
 * (false, after reporting misuse, if not: the object is left alone). The
 * object must already hold the key in its second word: every caller either
 * checked it there (a bin, a batch, a transfer stack) or writes it once the
 * give succeeded (a block freed straight to its zone); so the objects a
 * flush sends home are not written here. Inline: every object a flush or a
 * remote batch sends to its slab comes through here. */
static inline bool slab_give_as(region_t *r, page_desc_t *head, void *obj, unsigned cls, bool untouched) {
  size_t offset = (uintptr_t)obj & size_class_info[cls].slab_mask;
  const char *wrong = slab_check_give_at(r, head, obj, offset, cls);
  if (unlikely(wrong != NULL)) {
    error_misuse(wrong, obj);
    return false;
  }
  if (unlikely(options.debug) && !untouched) slab_debug_fill(obj, size_class_bytes[cls]);
  head->slab_used--;
  size_t g = slab_free_granule(obj);
  r->slab_free_bits[g / 64] |= slab_free_mask(g);
  /* The slab starts on a bitmap word (it spans whole pages), so its word
   * holding obj's bit is the offset's. */
  size_t scan = offset / SMALL_ALIGN / 64;
  if (scan < head->slab_scan) head->slab_scan = (uint16_t)scan;
  return true;
}
/* With debug=1 an object is filled as it goes back, unless it is
 * `untouched`: handed out by slab_take (its fill checked) and given back
 * unused (zone_return_untouched), so still filled. */
static inline bool slab_give(region_t *r, page_desc_t *head, void *obj, unsigned cls) {
  return slab_give_as(r, head, obj, cls, false);
}
static inline unsigned slab_free_objects(const page_desc_t *head, unsigned cls) {
  return size_class_slab_count[cls] - head->slab_used;
}
static inline page_desc_t *slab_head_of(region_t *r, page_desc_t *d) {
  size_t index = (size_t)(d - r->pages) & ~(((size_t)1 << d->order) - 1);
  return &r->pages[index];
}
/* The head of p's slab, of class cls: slabs are aligned to their order. */
static inline page_desc_t *slab_head_at(region_t *r, const void *p, unsigned cls) {
  return &r->pages[page_index_of(r, p) & ~(((size_t)1 << size_class_slab_order[cls]) - 1)];
}
/* Offset of p from the start of its slab: slabs are aligned to their size. */
static inline size_t slab_offset_of(const page_desc_t *d, const void *p) {
  return (uintptr_t)p & ((PAGE_SIZE << d->order) - 1);
}

#pragma GCC visibility pop

#endif /* BUDDY_SLAB_H */

/* buddy.h: the page-level buddy core (buddy.c): regions of 4 KiB pages,
 * blocks of 2^order pages split on allocation and coalesced on free.
 */
#ifndef BUDDY_BUDDY_H
#define BUDDY_BUDDY_H

#include "pagemap.h"

#pragma GCC visibility push(hidden)

/* ---- buddy.c: the page-level core ---------------------------------------- */

/* The region_t of an address in a zone's region, computed, not loaded: zone.c
 * maps each region's metadata just below its pages. Only valid once the
 * small map or the page map has said the address is in a zone region. */
static inline region_t *region_of_address(const void *p) {
  return (region_t *)(((uintptr_t)p & ~(uintptr_t)(BUDDY_REGION_SIZE - 1)) - REGION_META_SIZE);
}
static inline region_t *region_of_desc(const page_desc_t *d) {
  return (region_t *)((uintptr_t)d & ~(uintptr_t)(REGION_META_SIZE - 1));
}
/* Regions are aligned to their size: the page index is in the address bits. */
static inline size_t page_index_of(const region_t *r, const void *p) {
  (void)r;
  return ((uintptr_t)p >> PAGE_SHIFT) & (BUDDY_REGION_PAGES - 1);
}
static inline char *page_address_of(const page_desc_t *d) {
  const region_t *r = region_of_desc(d);
  return r->base + ((size_t)(d - r->pages) << PAGE_SHIFT);
}
static inline page_desc_t *page_desc_of(region_t *r, const void *p) {
  return &r->pages[page_index_of(r, p)];
}
/* The size class of p's page (0: not a slab). */
static inline unsigned page_class_at(const region_t *r, const void *p) {
  return r->page_class[page_index_of(r, p)];
}
/* The size class of the page d describes (0: not a slab). */
static inline unsigned page_class_of_desc(const page_desc_t *d) {
  const region_t *r = region_of_desc(d);
  return r->page_class[d - r->pages];
}
/* Sets the class of the `pages` pages from d on (0: not a slab), in the
 * region and, as its bin number, in the small map. */
static inline void page_class_set(page_desc_t *d, size_t pages, unsigned cls) {
  region_t *r = region_of_desc(d);
  for (size_t i = 0; i < pages; i++) r->page_class[(size_t)(d - r->pages) + i] = (uint8_t)cls;
  if (r->small_mapped)
    small_map_set(page_address_of(d), pages, cls == 0 ? 0 : small_map_bin_number(r->zone_index, cls));
}

void buddy_heap_init(buddy_heap_t *h);
/* Adds a region (meta aligned to REGION_META_SIZE, base to BUDDY_REGION_SIZE)
 * whose pages are all free; `zeroed` says they hold only zeros. */
void buddy_heap_add_region(buddy_heap_t *h, region_t *r, void *base, bool zeroed);
/* The same for a region just mapped, its pages and metadata all zeros. */
void buddy_heap_add_fresh_region(buddy_heap_t *h, region_t *r, void *base);
/* Takes a wholly free region out of the heap (the caller unmaps it). */
void buddy_heap_remove_region(buddy_heap_t *h, region_t *r);
/* A block of `order` (kind PAGE_USED), or NULL when no region has room.
 * *zeroed tells whether its pages are known to hold zeros. */
page_desc_t *buddy_heap_alloc(buddy_heap_t *h, unsigned order, bool *zeroed);
/* Frees the block headed by `d`; coalesces. Returns the region if it became
 * wholly free (the caller may release it), else NULL. */
region_t *buddy_heap_free(buddy_heap_t *h, page_desc_t *d);
/* Splits the used block d (order >= 1) into its two halves, both used, d
 * the lower one; returns the upper one's head. Each is freed on its own,
 * and they merge again when both are. */
page_desc_t *buddy_heap_split(page_desc_t *d);
/* Grows the block headed by `d` in place to `order` if the blocks above it are
 * free; returns false (nothing changed) otherwise. */
bool buddy_heap_grow(buddy_heap_t *h, page_desc_t *d, unsigned order);
/* Shrinks the block headed by `d` to `order`, freeing its upper halves. */
void buddy_heap_shrink(buddy_heap_t *h, page_desc_t *d, unsigned order);
/* Validates a pointer freed to the core: a block's start, not free. Returns
 * the head descriptor, or NULL after reporting misuse (error_misuse). */
page_desc_t *buddy_heap_check_block(region_t *r, const void *p);
/* Walks every region and free list, checking all invariants; aborts with a
 * message on the first violation. Returns the number of free pages seen. */
size_t buddy_heap_verify(const buddy_heap_t *h);
/* Order of the smallest block holding `pages` pages. */
static inline unsigned buddy_order_for_pages(size_t pages) {
  return pages <= 1 ? 0 : 64u - (unsigned)__builtin_clzl(pages - 1);
}

#pragma GCC visibility pop

#endif /* BUDDY_BUDDY_H */

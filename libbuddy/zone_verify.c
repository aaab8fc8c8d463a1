/* zone_verify.c: the debug builds' walk over every zone (zone_verify_all):
 * each region's free lists and blocks (buddy.c), each slab's counts and free
 * bits (slab.c), the empty-slab reserve, the transfer stacks (transfer.c).
 * Aborts with a report at the first thing wrong.
 */
#include "zone.h"

/* Every slab of the zone's regions, found by walking their blocks; and the
 * empty slabs' count and bytes. */
static void zone_verify_slabs_locked(zone_t *z) {
  for (region_t *r = z->heap.region_list; r != NULL; r = r->next)
    for (size_t i = 0; i < BUDDY_REGION_PAGES; i += (size_t)1 << r->pages[i].order) {
      const page_desc_t *d = &r->pages[i];
      if (d->kind == PAGE_SLAB) slab_verify(&r->pages[i]);
      /* A guard page follows the last page of its slab (zone.c). */
      if (d->kind == PAGE_RUN && (d->flags & PAGE_GUARD) &&
          (d->order != 0 || !(d->flags & PAGE_META) || i == 0 || d[-1].kind != PAGE_SLAB))
        error_fatal("heap check failed: a guard page that follows no slab", page_address_of(d));
    }
  size_t empty_bytes = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    uint32_t count = 0;
    for (page_desc_t *d = z->slabs[c].empty.next; d != &z->slabs[c].empty; d = d->next, count++) {
      if (d->slab_used != slab_kept(d))
        error_fatal("heap check failed: a slab in reserve holds objects", page_address_of(d));
      empty_bytes += PAGE_SIZE << d->order;
    }
    if (count != z->slabs[c].empty_count) error_fatal("heap check failed: an empty-slab count is wrong", z);
  }
  if (empty_bytes != z->empty_slab_bytes) error_fatal("heap check failed: the empty slabs' bytes are wrong", z);
}

size_t zone_verify_all(void) {
  size_t regions = 0;
  for (unsigned i = 0; i < ZONES_MAX; i++) {
    zone_lock(&zones[i]);
    buddy_heap_verify(&zones[i].heap);
    zone_verify_slabs_locked(&zones[i]);
    transfer_verify_locked(&zones[i]);
    regions += zones[i].heap.regions;
    zone_unlock(&zones[i]);
  }
  return regions;
}
